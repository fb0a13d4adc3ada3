//! The canary end to end: the real scheduler places (or cannot place) the canary pod; a
//! ResourceQuota makes its creation fail; with no kubelet on the fake nodes it never runs. The
//! canary Running on a kubelet is in e2e/real_workloads.rs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::harness::{
    TestNamespace, client, count, eventually, in_cluster, metric, start, wait_state,
};

fn canary(ns: &TestNamespace, settings: &str) -> String {
    format!(
        "monitors: {{canary: {{enabled: true, namespace: {}, {settings}}}}}\n",
        ns.name
    )
}

/// `kpulse_canary_runs_total{routine="pod",result=...}`, or 0 before the first such run.
async fn runs(kpulse: &crate::harness::Kpulse, result: &str) -> Option<f64> {
    metric(
        kpulse,
        &format!("kpulse_canary_runs_total{{routine=\"pod\",result=\"{result}\"}}"),
    )
    .await
}

async fn canary_pods(ns: &TestNamespace) -> Vec<Pod> {
    ns.pods()
        .list(&ListParams::default().labels("app.kubernetes.io/name=kpulse-canary"))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn canary_that_cannot_create_its_pod_fires_and_resolves_once_pods_schedule_again() {
    if in_cluster() {
        eprintln!("skipped in-cluster: the chart grants the canary Role only in its own namespace");
        return;
    }
    let client = client().await;
    let ns = TestNamespace::new(&client, "canary").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns.name);
    let quota: ResourceQuota = serde_json::from_value(
        json!({"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}),
    )
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();

    let kpulse = start(
        &ns,
        &canary(&ns, "schedule_only: true, interval: 5s, timeout: 10s"),
    )
    .await;
    let key = format!("canary/{}/Pod/kpulse-canary/CanaryFailed", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["severity"], "critical");
    assert_eq!(fired["alert"]["title"], "new pods cannot be created");
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "kpulse's canary pod in namespace {} failed at stage created: cannot create the pod: ",
            ns.name
        )) && message.contains("quota"),
        "{message}"
    );

    quotas
        .delete("no-pods", &DeleteParams::default())
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(
        count(&kpulse, &key, "firing"),
        1,
        "failed runs in a row fire once"
    );
    eventually(
        "a successful run counted",
        Duration::from_secs(20),
        || async { runs(&kpulse, "success").await.filter(|n| *n >= 1.0) },
    )
    .await;
    assert!(runs(&kpulse, "failure").await.unwrap() >= 1.0);
    let in_namespace = kpulse.notifications_in(&ns.name);
    assert!(
        in_namespace.iter().all(|n| n["key"] == key.as_str()),
        "no other monitor reports the canary pod: {in_namespace:#?}"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    eventually(
        "canary pods cleaned up",
        Duration::from_secs(20),
        || async { canary_pods(&ns).await.is_empty().then_some(()) },
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn canary_pod_that_never_runs_times_out_with_the_reason_and_is_deleted() {
    if in_cluster() {
        eprintln!("skipped in-cluster: the chart grants the canary Role only in its own namespace");
        return;
    }
    let client = client().await;
    let ns = TestNamespace::new(&client, "canary-run").await;
    // The fake nodes have no kubelet: the pod is scheduled but never Running.
    let kpulse = start(&ns, &canary(&ns, "interval: 1h, timeout: 3s")).await;
    let key = format!("canary/{}/Pod/kpulse-canary/CanaryFailed", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["title"], "new pods cannot start");
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("did not reach stage running within 3s: scheduled on node kpulse-node-"),
        "{message}"
    );
    eventually(
        "the timed-out canary pod deleted",
        Duration::from_secs(20),
        || async { canary_pods(&ns).await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(runs(&kpulse, "timeout").await, Some(1.0));
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
