//! Two replicas with leader election: only the leader notifies; when it dies, the standby takes
//! over within the lease duration, loads the state, and resolves what the old leader fired, once.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Kpulse, TestNamespace, client, count, eventually, log_config, status_oom_killed, status_running,
};

const HA: [&str; 4] = ["--lease-name", "kpulse-leader", "--lease-duration", "4s"];

fn logged(k: &Kpulse, message: &str) -> bool {
    k.stderr
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
}

#[tokio::test]
async fn the_standby_takes_over_and_resolves_once() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "ha").await;
    let config = log_config(&ns.name, "monitors: {pod_crashes: {resolve_after: 0s}}\n");
    let a = Kpulse::start_with(&config, &ns.name, &HA).await;
    eventually(
        "the first replica to lead",
        Duration::from_secs(20),
        || async { logged(&a, "leader: took over").then_some(()) },
    )
    .await;
    let b = Kpulse::start_with(&config, &ns.name, &HA).await;
    a.wait_log("watches synced", Duration::from_secs(30)).await;
    b.wait_log("watches synced", Duration::from_secs(30)).await;
    assert!(
        logged(&b, "standby"),
        "second replica is standby:\n{}",
        b.logs()
    );

    ns.create_pod("api", Default::default()).await;
    ns.patch_pod_status("api", status_oom_killed()).await;
    let key = format!("pod_crashes/{}/Pod/api/OOMKilled", ns.name);
    a.wait_notification("leader fires", Duration::from_secs(20), |n| {
        n["key"] == key.as_str() && n["state"] == "firing"
    })
    .await;
    // The leader writes its state within about a second of a notification.
    eventually("leader state write", Duration::from_secs(10), || async {
        a.stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["message"] == "state written" && l["active"] == 1)
            .then_some(())
    })
    .await;
    assert_eq!(count(&b, &key, "firing"), 0, "the standby sends nothing");

    a.kill().await;
    let started = std::time::Instant::now();
    eventually(
        "the standby to take over",
        Duration::from_secs(15),
        || async { logged(&b, "leader: took over").then_some(()) },
    )
    .await;
    let handover = started.elapsed();
    assert!(
        handover <= Duration::from_secs(10),
        "takeover took {handover:?}"
    );

    ns.patch_pod_status("api", status_running(1, Some(("OOMKilled", 137))))
        .await;
    b.wait_notification("new leader resolves", Duration::from_secs(30), |n| {
        n["key"] == key.as_str() && n["state"] == "resolved"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        (count(&b, &key, "firing"), count(&b, &key, "resolved")),
        (0, 1),
        "{:#?}",
        b.notifications()
    );
    assert!(b.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// Two replicas of one configuration, the first leading and both synced.
async fn leader_and_standby(ns: &TestNamespace, config: &str) -> (Kpulse, Kpulse) {
    let a = Kpulse::start_with(config, &ns.name, &HA).await;
    eventually(
        "the first replica to lead",
        Duration::from_secs(20),
        || async { logged(&a, "leader: took over").then_some(()) },
    )
    .await;
    let b = Kpulse::start_with(config, &ns.name, &HA).await;
    a.wait_log("watches synced", Duration::from_secs(30)).await;
    b.wait_log("watches synced", Duration::from_secs(30)).await;
    assert!(
        logged(&b, "standby"),
        "second replica is standby:\n{}",
        b.logs()
    );
    (a, b)
}

/// When a replica logged `message` first, from its JSON log's timestamp.
fn logged_at(k: &Kpulse, message: &str) -> Option<jiff::Timestamp> {
    k.stderr
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .and_then(|l| l["timestamp"].as_str()?.parse().ok())
}

#[tokio::test]
async fn a_warning_event_raised_while_no_replica_leads_is_delivered_once() {
    use k8s_openapi::api::core::v1::Event;
    use kube::api::{Api, PostParams};
    let client = client().await;
    let ns = TestNamespace::new(&client, "hagap").await;
    let config = log_config(&ns.name, "");
    let (a, b) = leader_and_standby(&ns, &config).await;

    a.kill().await;
    // The leader is gone and its lease has not expired yet: nobody sends.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let gap = crate::nodes_events::event(&ns.name, "Pod", "api", "Warning", "FailedKillPod", 1);
    events
        .create(&PostParams::default(), &gap)
        .await
        .expect("create event");
    let key = format!("warning_events/{}/Pod/api/FailedKillPod", ns.name);
    b.wait_notification(
        "the new leader delivers the gap's event",
        Duration::from_secs(30),
        |n| n["key"] == key.as_str() && n["state"] == "firing",
    )
    .await;
    assert!(logged(&b, "leader: took over"));
    // Its state write after the takeover records it; nothing more is sent for it.
    eventually(
        "the new leader's state write",
        Duration::from_secs(10),
        || async { logged(&b, "state written").then_some(()) },
    )
    .await;
    assert_eq!(count(&b, &key, "firing"), 1, "{:#?}", b.notifications());
    assert!(b.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn a_standby_takes_a_released_lease_within_a_second_or_two() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "hatakeover").await;
    // A long lease: waiting for it to expire would take 30 s.
    let ha = ["--lease-name", "kpulse-leader", "--lease-duration", "30s"];
    let config = log_config(&ns.name, "");
    let a = Kpulse::start_with(&config, &ns.name, &ha).await;
    eventually(
        "the first replica to lead",
        Duration::from_secs(20),
        || async { logged(&a, "leader: took over").then_some(()) },
    )
    .await;
    let b = Kpulse::start_with(&config, &ns.name, &ha).await;
    b.wait_log("watches synced", Duration::from_secs(30)).await;
    assert!(logged(&b, "standby"), "{}", b.logs());

    let a_logs = a.stderr.clone();
    assert!(a.terminate(Duration::from_secs(30)).await.success());
    // The log reader may still be taking in the last lines of the exited process.
    let released = eventually(
        "the leader logged its release",
        Duration::from_secs(10),
        || async {
            a_logs
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["message"] == "lease released")
                .and_then(|l| l["timestamp"].as_str()?.parse::<jiff::Timestamp>().ok())
        },
    )
    .await;
    let took_over = eventually(
        "the standby to take over",
        Duration::from_secs(20),
        || async { logged_at(&b, "leader: took over") },
    )
    .await;
    let handover = took_over.duration_since(released);
    assert!(
        handover < jiff::SignedDuration::from_secs(2),
        "released at {released}, taken over at {took_over}: {handover:#}"
    );
    assert!(b.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
