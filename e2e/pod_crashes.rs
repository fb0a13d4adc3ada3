//! pod_crashes end to end: a container OOMKilled (status patched as a kubelet would) fires an
//! alert; back to Running, the same key resolves.
//!
//! Why patched status here: these tests are about kpulse's rules (ignore labels, namespaces,
//! resolution), shown faster with exact statuses; the same detections on real containers are in
//! e2e/real_node.rs.

use std::time::Duration;

use crate::harness::{
    Kpulse, TestNamespace, client, log_config, status_oom_killed, status_running,
};

#[tokio::test]
async fn oom_killed_fires_then_resolves_when_running_again() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "oom").await;
    let config = log_config(&ns.name, "monitors: {pod_crashes: {resolve_after: 0s}}\n");
    let kpulse = Kpulse::start(&config, &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;

    ns.create_pod("api", Default::default()).await;
    ns.patch_pod_status("api", status_oom_killed()).await;
    let key = format!("pod_crashes/{}/Pod/api/OOMKilled", ns.name);
    let fired = kpulse
        .wait_notification("firing OOMKilled", Duration::from_secs(20), |n| {
            n["key"] == key && n["state"] == "firing"
        })
        .await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/api api/app OOMKilled", ns.name)
    );
    // No memory limit: the node ran out, not the container; the evidence says so, and names
    // the node the scheduler chose.
    let evidence = &fired["alert"]["evidence"];
    assert!(
        evidence["hints"][0]["cause"]
            .as_str()
            .unwrap_or_default()
            .starts_with("OOMKilled with no memory limit"),
        "{evidence:#}"
    );
    assert!(
        evidence["container"].get("memory_limit").is_none(),
        "{evidence:#}"
    );
    assert_eq!(evidence["container"]["exit_code"], 137, "{evidence:#}");
    assert_eq!(
        evidence["node"]["name"], fired["alert"]["node"],
        "{evidence:#}"
    );

    ns.patch_pod_status("api", status_running(1, Some(("OOMKilled", 137))))
        .await;
    let resolved = kpulse
        .wait_notification("resolved OOMKilled", Duration::from_secs(20), |n| {
            n["key"] == key && n["state"] == "resolved"
        })
        .await;
    assert_eq!(
        resolved["text"],
        format!("✅ [RESOLVED] [e2e] {}/pod/api api/app OOMKilled", ns.name)
    );
    // Exactly one of each: the restart notice inside the dedupe window does not fire again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let count = |state: &str| {
        kpulse
            .notifications()
            .iter()
            .filter(|n| n["key"] == key && n["state"] == state)
            .count()
    };
    assert_eq!(
        (count("firing"), count("resolved")),
        (1, 1),
        "{:#?}",
        kpulse.notifications()
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn crashes_in_an_ignored_namespace_or_with_the_ignore_label_do_not_alert() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "ignored").await;
    let config = log_config(&ns.name, "");
    let kpulse = Kpulse::start(&config, &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;

    let ignore = [("kpulse.io/ignore".to_string(), "true".to_string())].into();
    ns.create_pod("quiet", ignore).await;
    ns.patch_pod_status("quiet", status_oom_killed()).await;
    // A control pod in the same namespace proves the monitor is running.
    ns.create_pod("loud", Default::default()).await;
    ns.patch_pod_status("loud", status_oom_killed()).await;
    kpulse
        .wait_notification("control alert", Duration::from_secs(20), |n| {
            n["alert"]["key"]["name"] == "loud"
        })
        .await;
    assert!(
        !kpulse
            .notifications()
            .iter()
            .any(|n| n["alert"]["key"]["name"] == "quiet"),
        "ignored pod alerted: {:#?}",
        kpulse.notifications()
    );

    // A namespace outside `namespaces.include` is not watched at all.
    let other = TestNamespace::new(&client, "outside").await;
    other.create_pod("x", Default::default()).await;
    other.patch_pod_status("x", status_oom_killed()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !kpulse
            .notifications()
            .iter()
            .any(|n| n["alert"]["key"]["namespace"] == other.name.as_str()),
        "excluded namespace alerted"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
    other.delete().await;
}
