//! Incidents: the pods of one workload failing together are one message and one resolution.
//!
//! Why patched status here: 20 replicas spread over three nodes, which one real node cannot show;
//! the whole-cluster scenario (e2e/scenario.rs) has a crashing Deployment on real containers.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use serde_json::json;

use crate::harness::{
    TestNamespace, WAIT, client, eventually, start, status_crash_loop, status_running,
};
use crate::workloads::{create, template};

const REPLICAS: usize = 20;

/// The names of the `want` pods labelled `app`, once the scheduler has placed all of them.
pub(crate) async fn scheduled_pods(ns: &TestNamespace, app: &str, want: usize) -> Vec<String> {
    let pods = ns.pods();
    let selector = format!("app={app}");
    eventually(
        &format!("{want} pods of {app}, scheduled"),
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let names: Vec<String> = list
                .items
                .iter()
                .filter(|p: &&Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (names.len() == want).then_some(names)
        },
    )
    .await
}

#[tokio::test]
async fn twenty_crashing_replicas_are_one_message_and_one_resolution() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "incident").await;
    let kpulse = start(
        &ns,
        "incidents: {group_wait: 10s}\nmonitors: {pod_crashes: {resolve_after: 0s}, replicas_unavailable: {for: 20s, none_available_for: 20s}}\n",
    )
    .await;
    create::<Deployment>(&ns, json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "api"}}, "template": template("api", json!({}))}
    }))
    .await;
    let pods = scheduled_pods(&ns, "api", REPLICAS).await;
    for pod in &pods {
        ns.patch_pod_status(pod, status_crash_loop("Error", 1, 3))
            .await;
    }
    let key = format!("pod_crashes/{}/Deployment/api", ns.name);
    let is_incident = |n: &serde_json::Value, state: &str| {
        n["key"].as_str().is_some_and(|k| k.starts_with(&key)) && n["state"] == state
    };
    let fired = kpulse
        .wait_notification("the incident", WAIT, |n| is_incident(n, "firing"))
        .await;
    let title = fired["alert"]["title"].as_str().unwrap();
    assert!(
        title.starts_with(&format!("Deployment api: {REPLICAS} pods ")),
        "{title}"
    );
    // The Deployment short of every replica folds into the incident (it fires after 20s).
    let short = format!("replicas_unavailable/{}/Deployment/api", ns.name);
    kpulse.wait_log(&short, Duration::from_secs(60)).await;

    for pod in &pods {
        ns.patch_pod_status(pod, status_running(3, Some(("Error", 1))))
            .await;
    }
    kpulse
        .wait_notification("the incident's resolution", WAIT, |n| {
            is_incident(n, "resolved")
        })
        .await;
    let sent = kpulse.notifications_in(&ns.name);
    assert_eq!(
        sent.len(),
        2,
        "one message and one resolution for {REPLICAS} crashing replicas: {sent:#?}"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_an_incident_sends_no_second_message_and_one_resolution() {
    if crate::harness::in_cluster() {
        // Restarting kpulse in-cluster is state.rs's business; this checks the incident's part.
        return;
    }
    let client = client().await;
    let ns = TestNamespace::new(&client, "incident-restart").await;
    let config = crate::harness::log_config(
        &ns.name,
        "incidents: {group_wait: 5s}\nmonitors: {pod_crashes: {resolve_after: 0s}, replicas_unavailable: {enabled: false}, rollout_stuck: {enabled: false}}\n",
    );
    let first = crate::harness::Kpulse::start(&config, &ns.name).await;
    first
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    create::<Deployment>(&ns, json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}}, "template": template("api", json!({}))}
    }))
    .await;
    let pods = scheduled_pods(&ns, "api", 4).await;
    for pod in &pods[..2] {
        ns.patch_pod_status(pod, status_crash_loop("Error", 1, 3))
            .await;
    }
    let key = format!("pod_crashes/{}/Deployment/api/CrashLoopBackOff", ns.name);
    first
        .wait_notification("the incident", WAIT, |n| {
            n["key"] == key && n["state"] == "firing"
        })
        .await;
    assert!(first.terminate(Duration::from_secs(15)).await.success());

    // While kpulse is away, two more pods of the incident crash.
    for pod in &pods[2..] {
        ns.patch_pod_status(pod, status_crash_loop("Error", 1, 3))
            .await;
    }
    let second = crate::harness::Kpulse::start(&config, &ns.name).await;
    second
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    crate::harness::re_evaluated(&second, &["pods"], 2.0).await;
    let firing: Vec<_> = second
        .notifications_in(&ns.name)
        .into_iter()
        .filter(|n| n["state"] == "firing" && n["key"] == key)
        .collect();
    // The incident was told; what joined while kpulse was away is at most its one update.
    assert!(
        firing.iter().all(|n| n["alert"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Deployment api: 4 pods")),
        "no second incident message, only the update: {firing:#?}"
    );
    assert!(firing.len() <= 1, "{firing:#?}");

    for pod in &pods {
        ns.patch_pod_status(pod, status_running(3, Some(("Error", 1))))
            .await;
    }
    second
        .wait_notification("the incident's resolution", WAIT, |n| {
            n["key"] == key && n["state"] == "resolved"
        })
        .await;
    let resolved = second
        .notifications_in(&ns.name)
        .into_iter()
        .filter(|n| n["state"] == "resolved")
        .count();
    assert_eq!(resolved, 1, "one [RESOLVED] for the incident");
    let others: Vec<_> = second
        .notifications_in(&ns.name)
        .into_iter()
        .filter(|n| n["key"] != key)
        .collect();
    assert!(others.is_empty(), "nothing about single pods: {others:#?}");
    assert!(second.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
