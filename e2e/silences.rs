//! Run-time silences: `kpulse silence add` stops a firing incident's follow-ups, the silence
//! expires on time with a notice at its start and end, and what it held back is sent then; the
//! HTTP API adds and expires one too. Both write the ConfigMap `kpulse-silences`, which kpulse
//! watches.
//!
//! Why patched status here: the incident grows from 3 to 6 crashing pods of one Deployment on
//! three nodes, at the moments the test chooses; crash loops on real containers are in
//! e2e/real_node.rs.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{
    Kpulse, TestNamespace, WAIT, client, log_config, status_crash_loop, status_running,
};
use crate::incidents::scheduled_pods;
use crate::workloads::{create, template};

fn notice(n: &Value, id: &str, reason: &str) -> bool {
    n["key"] == format!("silences//Silence/{id}/{reason}")
}

/// Index of the first notification matching `pred`.
fn position(kpulse: &Kpulse, pred: impl Fn(&Value) -> bool) -> Option<usize> {
    kpulse.notifications().iter().position(pred)
}

#[tokio::test]
async fn a_run_time_silence_stops_an_incidents_follow_ups_and_expires_on_time_with_both_notices() {
    if crate::harness::in_cluster() {
        // The CLI and the HTTP API both run against the host process's namespace.
        return;
    }
    let client = client().await;
    let ns = TestNamespace::new(&client, "silence").await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.env");
    std::fs::write(&secrets, "SILENCE_TOKEN=e2e-silence-token\n").unwrap();
    let config = log_config(
        &ns.name,
        "incidents: {group_wait: 5s, group_interval: 5s}\nmonitors: {pod_crashes: {resolve_after: 0s}, replicas_unavailable: {enabled: false}, rollout_stuck: {enabled: false}}\nhttp: {silence_token: $SILENCE_TOKEN}\n",
    );
    let secrets_arg = secrets.display().to_string();
    let kpulse = Kpulse::start_with(&config, &ns.name, &["--secrets", &secrets_arg]).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;

    let deployments = create::<Deployment>(&ns, json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}}, "template": template("api", json!({}))}
    }))
    .await;
    let first = scheduled_pods(&ns, "api", 3).await;
    for pod in &first {
        ns.patch_pod_status(pod, status_crash_loop("Error", 1, 3))
            .await;
    }
    let incident = format!("pod_crashes/{}/Deployment/api/CrashLoopBackOff", ns.name);
    let told = kpulse
        .wait_notification("the incident", WAIT, |n| {
            n["key"] == incident && n["state"] == "firing"
        })
        .await;
    assert!(
        told["alert"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Deployment api: 3 pods")
    );

    // Silence the namespace for 30 s with the CLI; it prints the id.
    let (ok, out, err) = crate::harness::cli(&[
        "silence",
        "add",
        "-n",
        &ns.name,
        "--match",
        &format!("namespace={}", ns.name),
        "--for",
        "30s",
        "--comment",
        "e2e maintenance",
        "--by",
        "e2e",
    ]);
    assert!(ok, "silence add failed: {err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    assert!(id.starts_with("s-"), "{out}");
    let started = kpulse
        .wait_notification("the start notice", WAIT, |n| notice(n, &id, "Started"))
        .await;
    assert_eq!(
        started["alert"]["title"],
        "Silence started: e2e maintenance"
    );
    let (ok, list, err) = crate::harness::cli(&["silence", "list", "-n", &ns.name]);
    assert!(ok, "{err}");
    assert!(list.contains(&format!("{id}\tactive\t")), "{list}");

    // The incident grows while silenced: no follow-up.
    deployments
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 6}})),
        )
        .await
        .unwrap();
    let more: Vec<String> = scheduled_pods(&ns, "api", 6)
        .await
        .into_iter()
        .filter(|p| !first.contains(p))
        .collect();
    for pod in &more {
        ns.patch_pod_status(pod, status_crash_loop("Error", 1, 3))
            .await;
    }
    kpulse.wait_log("not sent: silenced", WAIT).await;

    // On time: the end notice names what it held back, then the update it held is sent.
    let ended = kpulse
        .wait_notification("the end notice", Duration::from_secs(60), |n| {
            notice(n, &id, "Ended")
        })
        .await;
    let held = ended["alert"]["fields"]["Held back"]
        .as_str()
        .unwrap_or_default();
    assert!(held.contains("deployment/api"), "{ended:#}");
    let update = kpulse
        .wait_notification("the update after the silence", WAIT, |n| {
            n["key"] == incident
                && n["state"] == "firing"
                && n["alert"]["title"]
                    .as_str()
                    .unwrap()
                    .starts_with("Deployment api: 6 pods")
        })
        .await;
    let at = |v: &Value| {
        v["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let added = at(&started);
    let lasted = at(&ended).duration_since(added);
    assert!(
        lasted >= jiff::SignedDuration::from_secs(29)
            && lasted <= jiff::SignedDuration::from_secs(45),
        "the silence ended {lasted:?} after it started"
    );
    let end_pos = position(&kpulse, |n| notice(n, &id, "Ended")).unwrap();
    let update_pos = position(&kpulse, |n| n == &update).unwrap();
    assert!(update_pos > end_pos, "the update came after the end notice");
    let firings: Vec<Value> = kpulse
        .notifications_in(&ns.name)
        .into_iter()
        .filter(|n| n["state"] == "firing")
        .collect();
    assert_eq!(
        firings.len(),
        2,
        "the incident and one update: {firings:#?}"
    );

    // The HTTP API: add with the token, expire with DELETE; each has its notices.
    let addr = kpulse.metrics_addr().expect("metrics address");
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("http://{addr}/silences"))
        .json(&json!({"match": {"namespace": ns.name}, "for": "10m", "comment": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let added = http
        .post(format!("http://{addr}/silences"))
        .bearer_auth("e2e-silence-token")
        .json(&json!({"match": {"namespace": ns.name, "reason": "OOMKilled"}, "for": "10m", "comment": "over http"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let second: Value = added.json().await.unwrap();
    let second_id = second["id"].as_str().unwrap().to_string();
    kpulse
        .wait_notification("the HTTP silence's start notice", WAIT, |n| {
            notice(n, &second_id, "Started")
        })
        .await;
    let listed: Value = http
        .get(format!("http://{addr}/silences"))
        .bearer_auth("e2e-silence-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == second_id)
        .unwrap_or_else(|| panic!("{listed:#}"));
    assert_eq!(row["state"], "active");
    assert_eq!(row["origin"], "runtime");
    let expired = http
        .delete(format!("http://{addr}/silences/{second_id}"))
        .bearer_auth("e2e-silence-token")
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 200);
    kpulse
        .wait_notification("the HTTP silence's end notice", WAIT, |n| {
            notice(n, &second_id, "Ended")
        })
        .await;
    assert!(
        !kpulse.logs().contains("e2e-silence-token"),
        "the token is never logged"
    );

    // Told before the silence: the incident's resolution is sent.
    for pod in first.iter().chain(&more) {
        ns.patch_pod_status(pod, status_running(3, Some(("Error", 1))))
            .await;
    }
    kpulse
        .wait_notification("the incident's resolution", WAIT, |n| {
            n["key"] == incident && n["state"] == "resolved"
        })
        .await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn a_maintenance_window_holds_a_crash_loop_back_and_its_close_sends_the_summary_and_the_alert()
 {
    if crate::harness::in_cluster() {
        return;
    }
    let client = client().await;
    let ns = TestNamespace::new(&client, "window").await;
    let base = log_config(&ns.name, "monitors: {pod_crashes: {resolve_after: 0s}}\n");
    // Open all week, every week: for the test, open now.
    let window = "maintenance:\n  - {name: upgrade, match: {monitor: pod_crashes}, schedule: '0 0 * * *', duration: 7d}\n";
    ns.apply_config(&format!("{base}{window}")).await;
    let kpulse = Kpulse::start_from_configmap(&ns.name, None).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    ns.create_pod("db-0", Default::default()).await;
    ns.patch_pod_status("db-0", status_crash_loop("Error", 1, 3))
        .await;
    kpulse
        .wait_log("not sent: maintenance window open", WAIT)
        .await;
    let crashes = |kpulse: &Kpulse| -> Vec<Value> {
        kpulse
            .notifications_in(&ns.name)
            .into_iter()
            .filter(|n| {
                n["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("pod_crashes/"))
            })
            .collect()
    };
    assert!(
        crashes(&kpulse).is_empty(),
        "held back: {:#?}",
        crashes(&kpulse)
    );
    // The window leaves the configuration: it closes now.
    ns.apply_config(&base).await;
    let summary = kpulse
        .wait_notification("the window's summary", WAIT, |n| {
            n["key"] == "maintenance//Window/upgrade/Summary"
        })
        .await;
    // The crash loop and the container's crash notice.
    assert_eq!(
        summary["alert"]["title"],
        "Maintenance upgrade ended: 2 alerts during it"
    );
    let fields = &summary["alert"]["fields"]["Alerts"];
    assert!(
        fields.as_str().unwrap().contains("(still firing)"),
        "{summary:#}"
    );
    let key = format!("pod_crashes/{}/Pod/db-0/CrashLoopBackOff", ns.name);
    kpulse
        .wait_notification("the crash loop, after the window", WAIT, |n| {
            n["key"] == key && n["state"] == "firing"
        })
        .await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
