//! kpulse under test: a process on this machine, or (the kind suite) the pod the chart runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::cluster::{TestNamespace, client, kubeconfig};
use super::receiver::Receiver;
use super::waits::{WAIT, eventually};

/// One sample from kpulse's `/metrics` (`series` with its labels), 0 when absent; `None` while
/// the endpoint cannot be read.
pub async fn metric(kpulse: &Kpulse, series: &str) -> Option<f64> {
    let body = kpulse.metrics().await?;
    let prefix = format!("{series} ");
    Some(
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0.0),
    )
}

/// Waits until each of these watches (`pods`, `deployments`, ...) has re-evaluated everything
/// `times` more times: what is firing then has been held that long, without an event.
pub async fn re_evaluated(kpulse: &Kpulse, resources: &[&str], times: f64) {
    let counts = || async {
        let mut counts = Vec::new();
        for resource in resources {
            let series = format!("kpulse_watch_evaluations_total{{resource=\"{resource}\"}}");
            counts.push(metric(kpulse, &series).await.unwrap_or(0.0));
        }
        counts
    };
    let before = counts().await;
    eventually(
        &format!("{times} more full re-evaluations of {resources:?}"),
        Duration::from_secs(180),
        || async {
            let now = counts().await;
            now.iter()
                .zip(&before)
                .all(|(n, b)| *n >= b + times)
                .then_some(())
        },
    )
    .await;
}

/// Starts kpulse with the `log` sink watching `ns` (plus `monitors` settings) and waits until
/// its watches have synced.
pub async fn start(ns: &TestNamespace, monitors: &str) -> Kpulse {
    let kpulse = Kpulse::start(&log_config(&ns.name, monitors), &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    kpulse
}

/// Starts kpulse with one `webhook` channel to a new [`Receiver`] on 127.0.0.1, watching `ns`
/// (plus `monitors` settings), and waits until its watches have synced.
pub async fn start_webhook(ns: &TestNamespace, monitors: &str) -> (Kpulse, Receiver) {
    let receiver = Receiver::start().await;
    let config = format!(
        "cluster: e2e\nchannels:\n  hook: {{type: webhook, url: '{}', delivery: {{allow_http: true}}}}\nrouting: {{default: [hook]}}\nnamespaces: {{include: [{}]}}\n{monitors}",
        receiver.url("/hook"),
        ns.name
    );
    let kpulse = Kpulse::start(&config, &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    (kpulse, receiver)
}

/// Waits for the `log` sink notification of `key` in `state` (`firing`, `resolved`).
pub async fn wait_state(kpulse: &Kpulse, key: &str, state: &str) -> Value {
    kpulse
        .wait_notification(&format!("{state} {key}"), WAIT, |n| {
            n["key"] == key && n["state"] == state
        })
        .await
}

/// How many notifications of `key` in `state` the `log` sink wrote.
pub fn count(kpulse: &Kpulse, key: &str, state: &str) -> usize {
    kpulse
        .notifications()
        .iter()
        .filter(|n| n["key"] == key && n["state"] == state)
        .count()
}

/// The kpulse binary, running on the host against the test cluster.
pub struct Kpulse {
    /// Host mode: the process. In-cluster mode: `None`, and `pod` is set.
    child: Option<Child>,
    pod: Option<InClusterPod>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

/// Runs a kpulse subcommand (`silence add ...`) with the test cluster's kubeconfig; returns
/// whether it succeeded, its stdout and its stderr.
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(binary())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .output()
        .expect("run kpulse");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn binary() -> PathBuf {
    std::env::var("KPULSE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_kpulse")))
}

fn pump(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    echo: &'static str,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var_os("E2E_VERBOSE").is_some() {
                eprintln!("[kpulse {echo}] {line}");
            }
            into.lock().unwrap().push(line);
        }
    });
}

impl Kpulse {
    /// Starts `kpulse run` with `config` read from a file (and `secrets` for `$NAME`s); its own
    /// ConfigMaps live in `namespace`.
    pub async fn start(config: &str, namespace: &str) -> Self {
        Self::start_with(config, namespace, &[]).await
    }

    pub async fn start_with(config: &str, namespace: &str, extra: &[&str]) -> Self {
        if in_cluster() {
            return Self::start_in_cluster(config).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, config).unwrap();
        let mut args = vec!["--config-file".to_string(), file.display().to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        Self::spawn(namespace, &args, dir).await
    }

    /// Starts `kpulse run` reading its configuration live from the ConfigMap `kpulse` (and the
    /// Secret `secret`, when given) in `namespace`, as in a cluster.
    pub async fn start_from_configmap(namespace: &str, secret: Option<&str>) -> Self {
        let mut args = Vec::new();
        if let Some(s) = secret {
            args.extend(["--secret".to_string(), s.to_string()]);
        }
        Self::spawn(namespace, &args, tempfile::tempdir().unwrap()).await
    }

    /// [`Kpulse::start_from_configmap`] without a Secret, with more `kpulse run` flags.
    pub async fn start_from_configmap_with(namespace: &str, extra: &[&str]) -> Self {
        let args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        Self::spawn(namespace, &args, tempfile::tempdir().unwrap()).await
    }

    async fn spawn(namespace: &str, extra: &[String], dir: tempfile::TempDir) -> Self {
        // Port 0: the kernel picks free ports and kpulse logs them, so parallel tests never race
        // for a port that was free a moment ago.
        let mut cmd = Command::new(binary());
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .arg("--namespace")
            .arg(namespace)
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "info,kpulse=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start kpulse");
        let stdout: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr: Arc<Mutex<Vec<String>>> = Arc::default();
        pump(child.stdout.take().unwrap(), stdout.clone(), "out");
        pump(child.stderr.take().unwrap(), stderr.clone(), "err");
        Kpulse {
            child: Some(child),
            pod: None,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The process id (host mode), or a number derived from the pod's UID (in-cluster mode):
    /// either way it changes exactly when kpulse restarts.
    pub fn pid(&self) -> u32 {
        match (&self.child, &self.pod) {
            (Some(child), _) => child.id().expect("running"),
            (None, Some(pod)) => pod
                .uid
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)),
            (None, None) => unreachable!("a Kpulse is a process or a pod"),
        }
    }

    /// The metrics listener's address (host mode), once kpulse logged it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listening("metrics")
    }

    /// The address of listener `which` (`http`, `metrics`), once kpulse logged it.
    fn listening(&self, which: &str) -> Option<SocketAddr> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "HTTP servers listening")
            .and_then(|v| v[which].as_str()?.parse::<SocketAddr>().ok())
    }

    /// `GET /status`, or `None` while it is not served yet.
    pub async fn status(&self) -> Option<Value> {
        self.status_at("status").await
    }

    /// `GET /PATH` on the main HTTP port, as JSON: `status`, `status/startup`.
    pub async fn status_at(&self, path: &str) -> Option<Value> {
        let text = self.get(8080, "http", path).await?;
        serde_json::from_str(&text).ok()
    }

    /// `GET /PATH` on the listener `which` (`http` on port 8080 in a pod, `metrics` on 9090): a
    /// host process on the address it logged, a pod through the API server's pod proxy.
    async fn get(&self, pod_port: u16, which: &str, path: &str) -> Option<String> {
        if let Some(pod) = &self.pod {
            let path = format!(
                "/api/v1/namespaces/{}/pods/{}:{pod_port}/proxy/{path}",
                release_namespace(),
                pod.name
            );
            let request = http::Request::get(path).body(Vec::new()).ok()?;
            return client().await.request_text(request).await.ok();
        }
        let addr = self.listening(which)?;
        reqwest::get(format!("http://{addr}/{path}"))
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// The body of `GET /metrics`, or `None` while it is not served yet.
    pub async fn metrics(&self) -> Option<String> {
        self.get(9090, "metrics", "metrics").await
    }

    /// Log lines (stderr) so far, joined, for assertion messages.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing `needle`.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) {
        let lines = self.stderr.clone();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if lines.lock().unwrap().iter().any(|l| l.contains(needle)) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if found.is_err() {
            panic!(
                "kpulse did not log {needle:?} within {timeout:?}; its log:\n{}",
                self.logs()
            );
        }
    }

    /// kpulse's JSON log lines so far (host mode).
    pub fn json_logs(&self) -> Vec<Value> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// Notifications the `log` sink wrote to stdout.
    pub fn notifications(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kpulse"] == "notification")
            .collect()
    }

    /// Notifications about objects in namespace `ns`. The control plane is
    /// shared, so cluster-scoped alerts raised by other tests (node events,
    /// node conditions) can reach any kpulse; a test that asserts "nothing
    /// else was sent" checks its own namespace.
    pub fn notifications_in(&self, ns: &str) -> Vec<Value> {
        self.notifications()
            .into_iter()
            .filter(|n| n["alert"]["key"]["namespace"] == ns)
            .collect()
    }

    /// Waits for a `log` sink notification matching `pred`.
    pub async fn wait_notification(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(n) = self.notifications().into_iter().find(|n| pred(n)) {
                    return n;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        match found {
            Ok(n) => n,
            Err(_) => panic!(
                "no notification {what} within {timeout:?}; got {:#?}\nkpulse log:\n{}",
                self.notifications(),
                self.logs()
            ),
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        if let Some(pod) = self.pod.take() {
            return pod.delete(timeout, None).await;
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        match tokio::time::timeout(timeout, self.child.as_mut().expect("host mode").wait()).await {
            Ok(status) => status.expect("wait for kpulse"),
            Err(_) => panic!(
                "kpulse did not exit within {timeout:?} of SIGTERM; log:\n{}",
                self.logs()
            ),
        }
    }

    /// SIGKILL: no chance to write state or flush.
    pub async fn kill(mut self) {
        if let Some(pod) = self.pod.take() {
            let ended = pod.ended.clone();
            pod.delete(Duration::from_secs(60), Some(0)).await;
            // A force-deleted pod's object is gone at once, its container a moment later: wait
            // until the process is really dead, or it would still see (and act on) what the test
            // does next.
            eventually(
                "the killed kpulse container stopped",
                Duration::from_secs(60),
                || {
                    let ended = ended.clone();
                    async move {
                        ended
                            .load(std::sync::atomic::Ordering::SeqCst)
                            .then_some(())
                    }
                },
            )
            .await;
            return;
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }

    /// In-cluster mode (the kind suite): kpulse runs from the chart in the release namespace. The
    /// test's configuration replaces the ConfigMap `kpulse`, the pod is recreated so each test
    /// starts fresh, and its log stream feeds the same buffers as a host process's output.
    async fn start_in_cluster(config: &str) -> Self {
        use futures::{AsyncBufReadExt as _, TryStreamExt as _};
        let client = client().await;
        let release = release_namespace();
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &release);
        let patch = json!({"data": {"config.yaml": config}});
        cms.patch("kpulse", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("update ConfigMap kpulse");
        let pods: Api<Pod> = Api::namespaced(client.clone(), &release);
        let selector = "app.kubernetes.io/name=kpulse";
        let old: Vec<String> = pods
            .list(&kube::api::ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let _ = pods
            .delete_collection(
                &Default::default(),
                &kube::api::ListParams::default().labels(selector),
            )
            .await;
        let pod = eventually(
            "a new running kpulse pod",
            Duration::from_secs(120),
            || async {
                let list = pods
                    .list(&kube::api::ListParams::default().labels(selector))
                    .await
                    .ok()?;
                list.items.into_iter().find(|p| {
                    !old.contains(p.metadata.uid.as_ref().unwrap())
                        && p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                })
            },
        )
        .await;
        let name = pod.metadata.name.clone().unwrap();
        let uid = pod.metadata.uid.clone().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let params = kube::api::LogParams {
            follow: true,
            ..Default::default()
        };
        let stream = pods
            .log_stream(&name, &params)
            .await
            .expect("follow kpulse logs");
        let into = lines.clone();
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let end = ended.clone();
        tokio::spawn(async move {
            let mut stream = stream.lines();
            while let Ok(Some(line)) = stream.try_next().await {
                into.lock().unwrap().push(line);
            }
            // The container stopped (or the stream broke): the process is gone.
            end.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Kpulse {
            child: None,
            pod: Some(InClusterPod {
                pods,
                name,
                uid,
                ended,
            }),
            stdout: lines.clone(),
            stderr: lines,
            _dir: tempfile::tempdir().unwrap(),
        }
    }
}

/// Whether the tests drive kpulse installed in-cluster by the chart (`KPULSE_E2E_MODE=in-cluster`,
/// set by hack/kind-e2e.sh) instead of a process on this machine.
pub fn in_cluster() -> bool {
    std::env::var("KPULSE_E2E_MODE").is_ok_and(|m| m == "in-cluster")
}

/// Where kpulse keeps `kpulse-state` for a test in `ns`: `ns` for a host process, the release
/// namespace in-cluster.
pub fn state_namespace(ns: &str) -> String {
    if in_cluster() {
        release_namespace()
    } else {
        ns.to_string()
    }
}

fn release_namespace() -> String {
    std::env::var("KPULSE_E2E_RELEASE_NAMESPACE").unwrap_or_else(|_| "kpulse".to_string())
}

struct InClusterPod {
    pods: Api<Pod>,
    name: String,
    uid: String,
    /// Set when the pod's log stream ended: its container has stopped.
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl InClusterPod {
    /// Deletes the pod (SIGTERM, or SIGKILL with grace 0) and waits until it is gone.
    async fn delete(self, timeout: Duration, grace: Option<u32>) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        let dp = kube::api::DeleteParams {
            grace_period_seconds: grace,
            ..Default::default()
        };
        let _ = self.pods.delete(&self.name, &dp).await;
        let pods = self.pods.clone();
        let name = self.name.clone();
        eventually("kpulse pod gone", timeout, || async {
            match pods.get_opt(&name).await {
                Ok(None) => Some(()),
                _ => None,
            }
        })
        .await;
        ExitStatusExt::from_raw(0)
    }
}

/// A config whose monitors only look at `namespace`, sending everything to the `log` sink.
pub fn log_config(namespace: &str, extra: &str) -> String {
    format!(
        "cluster: e2e\nchannels:\n  log: {{type: log}}\nrouting: {{default: [log]}}\nnamespaces: {{include: [{namespace}]}}\n{extra}"
    )
}
