//! Live configuration: edits to the ConfigMap apply without a restart; an invalid edit keeps the
//! last good configuration and says so on the ConfigMap.

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::Api;

use crate::harness::{Kpulse, TestNamespace, client, eventually, status_oom_killed};

fn config(ns: &str, default: &str) -> String {
    format!(
        "cluster: e2e\nchannels:\n  a: {{type: log}}\n  b: {{type: log}}\nrouting: {{default: [{default}]}}\nnamespaces: {{include: [{ns}]}}\n"
    )
}

/// Makes pod `name` OOMKilled and returns the channel its alert went to.
async fn alert_channel(ns: &TestNamespace, kpulse: &Kpulse, name: &str) -> String {
    ns.create_pod(name, Default::default()).await;
    ns.patch_pod_status(name, status_oom_killed()).await;
    let n = kpulse
        .wait_notification(&format!("alert for {name}"), Duration::from_secs(20), |n| {
            n["alert"]["key"]["name"] == name && n["state"] == "firing"
        })
        .await;
    n["channel"].as_str().unwrap().to_string()
}

async fn wait_applied(kpulse: &Kpulse, times: usize) {
    let lines = kpulse.stderr.clone();
    eventually(
        &format!("{times} configuration reload(s)"),
        Duration::from_secs(5),
        || async {
            let n = lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("configuration applied"))
                .count();
            (n >= times).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_routing_change_applies_within_seconds_without_a_restart() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "reload").await;
    ns.apply_config(&config(&ns.name, "a")).await;
    let kpulse = Kpulse::start_from_configmap(&ns.name, None).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let pid = kpulse.pid();
    assert_eq!(alert_channel(&ns, &kpulse, "first").await, "a");

    ns.apply_config(&config(&ns.name, "b")).await;
    wait_applied(&kpulse, 1).await;
    assert_eq!(alert_channel(&ns, &kpulse, "second").await, "b");
    assert_eq!(kpulse.pid(), pid, "same process");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_last_good_config_and_is_reported_on_the_configmap() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "invalid").await;
    ns.apply_config(&config(&ns.name, "a")).await;
    let kpulse = Kpulse::start_from_configmap(&ns.name, None).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;

    ns.apply_config(&config(&ns.name, "pager")).await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let note = eventually(
        "an InvalidConfig event on the ConfigMap",
        Duration::from_secs(15),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                let about_cm = e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("ConfigMap") && r.name.as_deref() == Some("kpulse")
                });
                (about_cm
                    && e.reason.as_deref() == Some("InvalidConfig")
                    && e.type_.as_deref() == Some("Warning"))
                .then(|| e.note.unwrap_or_default())
            })
        },
    )
    .await;
    assert!(
        note.contains("routing.default[0]: unknown channel \"pager\""),
        "{note}"
    );
    assert_eq!(
        alert_channel(&ns, &kpulse, "during").await,
        "a",
        "the last good config still routes"
    );

    ns.apply_config(&config(&ns.name, "b")).await;
    wait_applied(&kpulse, 1).await;
    assert_eq!(
        alert_channel(&ns, &kpulse, "after").await,
        "b",
        "a later valid edit recovers"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// The Secret `kpulse-secrets` with `HOOK_TOKEN=token`, and a configuration whose webhook
/// channel to a new receiver sends it as a bearer token.
async fn webhook_with_secret(ns: &TestNamespace, token: &str) -> crate::harness::Receiver {
    let receiver = crate::harness::Receiver::start().await;
    ns.apply_secret("kpulse-secrets", &[("HOOK_TOKEN", token)])
        .await;
    ns.apply_config(&format!(
        "cluster: e2e\nchannels:\n  hook: {{type: webhook, url: '{}', headers: {{Authorization: 'Bearer $HOOK_TOKEN'}}, delivery: {{allow_http: true}}}}\nrouting: {{default: [hook]}}\nnamespaces: {{include: [{}]}}\n",
        receiver.url("/hook"),
        ns.name
    ))
    .await;
    receiver
}

#[tokio::test]
async fn a_rotated_secret_is_used_by_the_next_delivery() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "rotate").await;
    let receiver = webhook_with_secret(&ns, "first-token").await;
    let kpulse = Kpulse::start_from_configmap(&ns.name, Some("kpulse-secrets")).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let pid = kpulse.pid();

    let alert_for = |name: &'static str| {
        let ns = &ns;
        let receiver = &receiver;
        async move {
            ns.create_pod(name, Default::default()).await;
            ns.patch_pod_status(name, status_oom_killed()).await;
            receiver
                .wait_for(
                    &format!("webhook for {name}"),
                    Duration::from_secs(20),
                    |r| r.body["alerts"][0]["key"]["name"] == name,
                )
                .await
        }
    };
    let first = alert_for("before").await;
    assert_eq!(first.headers["authorization"], "Bearer first-token");

    ns.apply_secret("kpulse-secrets", &[("HOOK_TOKEN", "second-token")])
        .await;
    wait_applied(&kpulse, 1).await;
    let second = alert_for("after").await;
    assert_eq!(second.headers["authorization"], "Bearer second-token");
    assert_eq!(kpulse.pid(), pid, "same process");
    assert!(
        !kpulse.logs().contains("first-token") && !kpulse.logs().contains("second-token"),
        "a secret value reached the log"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn a_valid_configuration_with_a_secret_is_accepted_on_every_start() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "startsecret").await;
    // Kept for the whole test, so the channel points at a live receiver.
    let _receiver = webhook_with_secret(&ns, "a-token").await;
    // The ConfigMap and the Secret are listed by two watches; whichever finishes first, the
    // configuration must be read whole.
    for start in 1..=20 {
        let kpulse = Kpulse::start_from_configmap(&ns.name, Some("kpulse-secrets")).await;
        kpulse
            .wait_log(
                "the configuration in use is current",
                Duration::from_secs(30),
            )
            .await;
        let logs = kpulse.logs();
        assert!(
            !logs.contains("invalid configuration"),
            "start {start}: a valid configuration was rejected:\n{logs}"
        );
        assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    }
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let invalid = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("InvalidConfig"))
        .count();
    assert_eq!(invalid, 0, "no InvalidConfig event");
    ns.delete().await;
}

/// The note of the newest InvalidConfig Event on the ConfigMap `kpulse`.
async fn newest_invalid_note(events: &Api<Event>) -> Option<String> {
    let list = events.list(&Default::default()).await.ok()?;
    list.items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("InvalidConfig")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("kpulse")
        })
        .max_by_key(|e| {
            e.series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0))
        })
        .and_then(|e| e.note)
}

#[tokio::test]
async fn a_second_different_bad_edit_is_the_error_the_configmap_shows() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "twobad").await;
    ns.apply_config(&config(&ns.name, "a")).await;
    let kpulse = Kpulse::start_from_configmap(&ns.name, None).await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    for bad in ["pager", "oncall"] {
        ns.apply_config(&config(&ns.name, bad)).await;
        let wanted = format!("routing.default[0]: unknown channel \"{bad}\"");
        eventually(
            &format!("the newest InvalidConfig event to say {wanted}"),
            Duration::from_secs(15),
            || async {
                newest_invalid_note(&events)
                    .await
                    .filter(|n| n.contains(&wanted))
            },
        )
        .await;
    }
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
