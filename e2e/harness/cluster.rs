//! The cluster under test and what a test makes in it: its own namespace, pods and the statuses
//! a kubelet would write, certificates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::waits::eventually;

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

/// A timestamp `secs` seconds ago, so "for" windows have already elapsed.
pub fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}
