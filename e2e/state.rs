//! kpulse-state end to end: a restart never re-fires an alert nor forgets one.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Kpulse, TestNamespace, client, count, eventually, in_cluster, log_config, state_namespace,
    status_oom_killed, status_running,
};

fn config(ns: &str) -> String {
    log_config(
        ns,
        // Node alerts are cluster-wide: other tests' NotReady nodes would count as active here.
        "state: {interval: 5s}\nmonitors: {pod_crashes: {resolve_after: 0s}, node_conditions: {enabled: false}}\n",
    )
}

fn json_logs(kpulse: &Kpulse) -> Vec<Value> {
    kpulse.json_logs()
}

/// Waits until kpulse has logged a state write that includes `active` active alerts.
async fn state_written_with(kpulse: &Kpulse, active: u64) {
    eventually(
        &format!("a state write with {active} active alert(s)"),
        Duration::from_secs(30),
        || async {
            json_logs(kpulse)
                .iter()
                .any(|l| l["message"] == "state written" && l["active"] == active)
                .then_some(())
        },
    )
    .await;
}

async fn firing_pod(ns: &TestNamespace, kpulse: &Kpulse) -> String {
    ns.create_pod("api", Default::default()).await;
    ns.patch_pod_status("api", status_oom_killed()).await;
    let key = format!("pod_crashes/{}/Pod/api/OOMKilled", ns.name);
    kpulse
        .wait_notification("firing", Duration::from_secs(20), |n| {
            n["key"] == key.as_str() && n["state"] == "firing"
        })
        .await;
    key
}

#[tokio::test]
async fn killed_while_firing_then_cleared_resolves_exactly_once_after_restart() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "state-kill").await;
    let first = Kpulse::start(&config(&ns.name), &ns.name).await;
    first
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let key = firing_pod(&ns, &first).await;
    state_written_with(&first, 1).await;
    first.kill().await; // SIGKILL: no shutdown write, only the periodic one

    ns.patch_pod_status("api", status_running(1, Some(("OOMKilled", 137))))
        .await;
    let second = Kpulse::start(&config(&ns.name), &ns.name).await;
    second
        .wait_notification("resolved after restart", Duration::from_secs(30), |n| {
            n["key"] == key.as_str() && n["state"] == "resolved"
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (
            count(&second, &key, "firing"),
            count(&second, &key, "resolved")
        ),
        (0, 1),
        "{:#?}",
        second.notifications()
    );
    assert!(second.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn restarted_while_firing_sends_nothing_new_and_still_resolves_later() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "state-restart").await;
    let first = Kpulse::start(&config(&ns.name), &ns.name).await;
    first
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let key = firing_pod(&ns, &first).await;
    assert!(
        first.terminate(Duration::from_secs(15)).await.success(),
        "SIGTERM writes the state"
    );

    let second = Kpulse::start(&config(&ns.name), &ns.name).await;
    second
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    // The first full reconcile has run at sync; give a tick's worth of margin.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        second.notifications_in(&ns.name).is_empty(),
        "re-fired after restart: {:#?}",
        second.notifications()
    );

    // The restored active set still knows the alert, so its resolution is sent.
    ns.patch_pod_status("api", status_running(1, Some(("OOMKilled", 137))))
        .await;
    second
        .wait_notification("resolved", Duration::from_secs(20), |n| {
            n["key"] == key.as_str() && n["state"] == "resolved"
        })
        .await;
    assert!(second.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// How many periodic state writes kpulse skipped because nothing had changed.
fn unchanged_writes(kpulse: &Kpulse) -> usize {
    json_logs(kpulse)
        .iter()
        .filter(|l| l["message"] == "state unchanged: not written")
        .count()
}

/// The resourceVersion of `kpulse-state` (in the test namespace, or the release's in-cluster).
async fn state_version(client: &kube::Client, ns: &TestNamespace) -> String {
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &state_namespace(&ns.name));
    api.get("kpulse-state")
        .await
        .expect("kpulse-state exists")
        .metadata
        .resource_version
        .expect("a stored object has a resourceVersion")
}

/// Waits until kpulse has passed over `n` more periodic writes with nothing to write.
async fn idle_for_writes(kpulse: &Kpulse, n: usize) {
    let start = unchanged_writes(kpulse);
    eventually(
        &format!("{n} periodic state writes skipped"),
        Duration::from_secs(60),
        || async { (unchanged_writes(kpulse) >= start + n).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn an_idle_kpulse_writes_no_state_not_even_after_a_restart() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "state-idle").await;
    if in_cluster() {
        // The release's kpulse-state holds earlier tests' alerts, which a restart prunes (and
        // writes): start from none, as a host process in a new namespace does.
        let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(client.clone(), &state_namespace(&ns.name));
        let _ = api.delete("kpulse-state", &Default::default()).await;
    }
    let first = Kpulse::start(&config(&ns.name), &ns.name).await;
    first
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    firing_pod(&ns, &first).await;
    state_written_with(&first, 1).await;
    let written = state_version(&client, &ns).await;
    // Several 5 s periods pass with the alert still active and nothing new: no write.
    idle_for_writes(&first, 3).await;
    assert_eq!(state_version(&client, &ns).await, written);
    assert!(first.terminate(Duration::from_secs(15)).await.success());
    assert_eq!(
        state_version(&client, &ns).await,
        written,
        "the shutdown write had nothing new"
    );

    // A restart loads the same state; with nothing changed it writes nothing either.
    let second = Kpulse::start(&config(&ns.name), &ns.name).await;
    second
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    idle_for_writes(&second, 2).await;
    assert_eq!(state_version(&client, &ns).await, written);
    assert!(second.notifications_in(&ns.name).is_empty());
    assert!(second.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn a_first_start_with_nothing_to_remember_creates_no_state() {
    if in_cluster() {
        // The release's kpulse-state already exists (earlier tests wrote it).
        return;
    }
    let client = client().await;
    let ns = TestNamespace::new(&client, "state-none").await;
    let config = format!("{}welcome: {{enabled: false}}\n", config(&ns.name));
    let kpulse = Kpulse::start(&config, &ns.name).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    idle_for_writes(&kpulse, 3).await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), &state_namespace(&ns.name));
    assert!(
        api.get_opt("kpulse-state").await.unwrap().is_none(),
        "a quiet cluster's first start wrote an empty kpulse-state"
    );
    // The first alert is the first write.
    let second = Kpulse::start(&config, &ns.name).await;
    second
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    firing_pod(&ns, &second).await;
    state_written_with(&second, 1).await;
    state_version(&client, &ns).await;
    assert!(second.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
