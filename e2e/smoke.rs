//! The harness works: kpulse starts, syncs and stops cleanly; the real controllers run.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::harness::{Kpulse, TestNamespace, client, eventually, log_config};

#[tokio::test]
async fn kpulse_starts_syncs_and_exits_cleanly_on_sigterm() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "smoke").await;
    let kpulse = Kpulse::start(&log_config(&ns.name, ""), &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    // Watch events are counted per resource.
    ns.create_pod("counted", Default::default()).await;
    eventually(
        "pod watch events in /metrics",
        Duration::from_secs(10),
        || async {
            let body = kpulse.metrics().await?;
            body.lines()
                .find(|l| l.starts_with("kpulse_watch_events_total{resource=\"pods\"}"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .filter(|n| *n >= 1.0)
        },
    )
    .await;
    let status = kpulse.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "kpulse exited with {status}");
    ns.delete().await;
}

#[tokio::test]
async fn deployment_controller_reports_progress_deadline_exceeded() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "deadline").await;
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "stuck"},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 10,
            "selector": {"matchLabels": {"app": "stuck"}},
            "template": {
                "metadata": {"labels": {"app": "stuck"}},
                "spec": {
                    "nodeSelector": {"kpulse.io/no-such-node": "true"},
                    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]
                }
            }
        }
    }))
    .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &deploy).await.unwrap();
    let reason = eventually("Progressing=False", Duration::from_secs(90), || async {
        let d = api.get("stuck").await.ok()?;
        let c = d
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Progressing")?;
        (c.status == "False").then_some(c.reason.unwrap_or_default())
    })
    .await;
    assert_eq!(reason, "ProgressDeadlineExceeded");
    ns.delete().await;
}
