//! Many workloads of several kinds failing at once, held over several full re-evaluations: the
//! failures that only show when one monitor sees objects of many kinds.
//!
//! No container runs: the workloads' pods are left unschedulable on purpose (no status is
//! patched); e2e/scenario.rs does the same with real containers.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use serde_json::json;

use crate::harness::{TestNamespace, client, re_evaluated, start, wait_state};
use crate::workloads::{create, template};

#[tokio::test]
async fn stuck_deployment_unready_statefulset_and_a_daemonset_each_fire_once_and_never_flap() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "flap").await;
    let kpulse = start(
        &ns,
        "monitors: {replicas_unavailable: {for: 1s, none_available_for: 1s}}\n",
    )
    .await;
    let nowhere = json!({"kpulse.io/no-such-node": "true"});
    create::<Deployment>(&ns, json!({
        "metadata": {"name": "checkout"},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 10, "selector": {"matchLabels": {"app": "checkout"}},
                 "template": template("checkout", nowhere.clone())}
    }))
    .await;
    create::<StatefulSet>(
        &ns,
        json!({
            "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": template("db", nowhere.clone())}
        }),
    )
    .await;
    // A DaemonSet that wants no pods: healthy, but its watch re-evaluates the same monitors.
    create::<DaemonSet>(&ns, json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", nowhere)}
    }))
    .await;
    let key = |monitor: &str, kind: &str, name: &str, reason: &str| {
        format!("{monitor}/{}/{kind}/{name}/{reason}", ns.name)
    };
    let expected = [
        key(
            "rollout_stuck",
            "Deployment",
            "checkout",
            "ProgressDeadlineExceeded",
        ),
        key(
            "replicas_unavailable",
            "Deployment",
            "checkout",
            "ReplicasUnavailable",
        ),
        key(
            "replicas_unavailable",
            "StatefulSet",
            "db",
            "ReplicasUnavailable",
        ),
    ];
    for k in &expected {
        wait_state(&kpulse, k, "firing").await;
    }
    // Hold the failures over at least three full re-evaluations of every workload watch.
    re_evaluated(&kpulse, &["deployments", "statefulsets", "daemonsets"], 3.0).await;
    let sent = kpulse.notifications_in(&ns.name);
    for k in &expected {
        let of = |state: &str| {
            sent.iter()
                .filter(|n| n["key"] == k.as_str() && n["state"] == state)
                .count()
        };
        assert_eq!(
            (of("firing"), of("resolved")),
            (1, 0),
            "{k}: one firing, no resolution while it holds; sent: {sent:#?}"
        );
    }
    let resolved: Vec<_> = sent.iter().filter(|n| n["state"] == "resolved").collect();
    assert!(resolved.is_empty(), "nothing was fixed: {resolved:#?}");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
