//! hpa_at_max end to end: the real HPA controller clamps a Deployment running above maxReplicas
//! (it does so even without a metrics server), leaving the HPA pinned at its maximum.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::harness::{Kpulse, TestNamespace, client, log_config};

#[tokio::test]
async fn hpa_pinned_at_max_fires_and_resolves_on_delete() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "hpamax").await;
    let config = log_config(
        &ns.name,
        "monitors: {hpa_at_max: {for: 0s}, hpa_unhealthy: {enabled: false}, replicas_unavailable: {enabled: false}, rollout_stuck: {enabled: false}}\n",
    );
    let kpulse = Kpulse::start(&config, &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "10m"}}}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns.name);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minReplicas": 1, "maxReplicas": 2, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &hpa).await.unwrap();

    let key = format!(
        "hpa_at_max/{}/HorizontalPodAutoscaler/web/AtMaxReplicas",
        ns.name
    );
    let n = kpulse
        .wait_notification("hpa at max", Duration::from_secs(90), |n| {
            n["key"] == key.as_str() && n["state"] == "firing"
        })
        .await;
    assert_eq!(
        n["alert"]["title"],
        "HPA web is at its maximum of 2 replicas"
    );
    assert_eq!(n["alert"]["owner"], "Deployment/web");
    hpas.delete("web", &DeleteParams::default()).await.unwrap();
    kpulse
        .wait_notification("hpa at max resolved", Duration::from_secs(30), |n| {
            n["key"] == key.as_str() && n["state"] == "resolved"
        })
        .await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
