//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The kubeconfig of the cluster under test.
pub fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var("KUBECONFIG").expect(
        "KUBECONFIG must point at a test cluster: run the e2e tests with `make test` (it starts one)",
    ))
}

/// A client for this test (clients hold connections tied to the test's runtime).
pub async fn client() -> Client {
    kpulse::install_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).expect("readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("valid kubeconfig");
    Client::try_from(config).expect("client")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A namespace of its own for one test, labelled so it is easy to find.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let suffix: u32 = rand::random_range(0..0xffffff);
        let name = format!("e2e-{prefix}-{suffix:06x}");
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kpulse.io/e2e": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        // Pods need the default ServiceAccount, which the controller creates.
        let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        eventually(
            "default ServiceAccount",
            Duration::from_secs(30),
            || async { sas.get_opt("default").await.ok().flatten() },
        )
        .await;
        TestNamespace {
            name,
            client: client.clone(),
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// A bare pod with one container `app`, scheduled by the real scheduler onto a fake node.
    pub async fn create_pod(&self, name: &str, labels: BTreeMap<String, String>) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        let pods = self.pods();
        eventually(
            &format!("pod {name} scheduled"),
            Duration::from_secs(30),
            || async {
                pods.get(name)
                    .await
                    .ok()
                    .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            },
        )
        .await
    }

    /// Writes pod status the way a kubelet would (the `status` subresource).
    pub async fn patch_pod_status(&self, name: &str, status: Value) {
        self.pods()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .expect("patch pod status");
    }

    /// Creates or replaces the ConfigMap `kpulse` with this configuration.
    pub async fn apply_config(&self, config: &str) {
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), &self.name);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kpulse"}, "data": {"config.yaml": config}});
        api.patch(
            "kpulse",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&cm),
        )
        .await
        .expect("apply ConfigMap kpulse");
    }

    /// Creates or replaces a Secret with these string values.
    pub async fn apply_secret(&self, name: &str, values: &[(&str, &str)]) {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), &self.name);
        let data: BTreeMap<&str, &str> = values.iter().copied().collect();
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
        api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&s))
            .await
            .expect("apply Secret");
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &Default::default())
            .await;
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Pod status: container `app` terminated by the OOM killer.
pub fn status_oom_killed() -> Value {
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}},
            "lastState": {}
        }]
    })
}

/// Pod status: container `app` in CrashLoopBackOff after exiting with `reason`.
pub fn status_crash_loop(reason: &str, exit_code: i32, restarts: i32) -> Value {
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10", "imageID": "", "ready": false, "restartCount": restarts,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}},
            "lastState": {"terminated": {"reason": reason, "exitCode": exit_code, "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}}
        }]
    })
}

/// Pod status: container `app` running and ready, after `restarts` restarts.
pub fn status_running(restarts: i32, last: Option<(&str, i32)>) -> Value {
    let last_state = match last {
        Some((reason, code)) => {
            json!({"terminated": {"reason": reason, "exitCode": code, "startedAt": now_rfc3339(), "finishedAt": now_rfc3339()}})
        }
        None => json!({}),
    };
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10", "imageID": "", "ready": true, "restartCount": restarts,
            "state": {"running": {"startedAt": now_rfc3339()}},
            "lastState": last_state
        }]
    })
}

/// One HTTP request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

/// A webhook receiver on 127.0.0.1 that records every request and answers 200.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        use warp::Filter;
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        let route = warp::any()
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect();
                    let body = serde_json::from_slice(&body)
                        .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()));
                    sink.lock().unwrap().push(Received {
                        method: method.to_string(),
                        path: path.as_str().to_string(),
                        headers,
                        body,
                    });
                    warp::reply()
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver { addr, got }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The first alert of `key` (its `key_string`) in `state` that a webhook channel delivered
    /// here, waiting for it.
    pub async fn alert(&self, key: &str, state: &str) -> Value {
        let matches = |a: &Value| a["key_string"] == key && a["state"] == state;
        let got = self
            .wait_for(&format!("webhook: {state} {key}"), WAIT, |r| {
                r.body["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(matches))
            })
            .await;
        got.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| matches(a))
            .unwrap()
            .clone()
    }

    /// Waits for a request matching `pred`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        eventually(what, timeout, || async {
            self.received().into_iter().find(|r| pred(r))
        })
        .await
    }
}

/// A self-signed certificate and key valid for `days` days, PEM, made with the openssl CLI.
pub fn certificate(days: u32) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=web.e2e.example",
            "-days",
        ])
        .arg(days.to_string())
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command (hack/test-deps.sh installs it)");
    assert!(status.success());
    (
        std::fs::read_to_string(crt).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

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

/// How long an end-to-end test waits for one notification.
pub const WAIT: Duration = Duration::from_secs(90);

/// A timestamp `secs` seconds ago, so "for" windows have already elapsed.
pub fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
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

    /// The body of `GET /metrics`, or `None` while it is not served yet. A host process is asked
    /// on the address it logged; a pod through the API server's pod proxy.
    pub async fn metrics(&self) -> Option<String> {
        if let Some(pod) = &self.pod {
            let path = format!(
                "/api/v1/namespaces/{}/pods/{}:9090/proxy/metrics",
                release_namespace(),
                pod.name
            );
            let request = http::Request::get(path).body(Vec::new()).ok()?;
            return client().await.request_text(request).await.ok();
        }
        let addr = self
            .stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message"] == "HTTP servers listening")
            .and_then(|v| v["metrics"].as_str()?.parse::<SocketAddr>().ok())?;
        let url = format!("http://{addr}/metrics");
        reqwest::get(url).await.ok()?.text().await.ok()
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
            pod.delete(Duration::from_secs(60), Some(0)).await;
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
        tokio::spawn(async move {
            let mut stream = stream.lines();
            while let Ok(Some(line)) = stream.try_next().await {
                into.lock().unwrap().push(line);
            }
        });
        Kpulse {
            child: None,
            pod: Some(InClusterPod { pods, name, uid }),
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

fn release_namespace() -> String {
    std::env::var("KPULSE_E2E_RELEASE_NAMESPACE").unwrap_or_else(|_| "kpulse".to_string())
}

struct InClusterPod {
    pods: Api<Pod>,
    name: String,
    uid: String,
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
