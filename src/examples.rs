//! The example payloads in the documentation, made by the real monitors from fixture objects and
//! rendered by the real sinks, so a page cannot promise what kpulse does not send.
//!
//! A page keeps its prose; each example sits between a `<!-- generated: NAME -->` line and a
//! `<!-- end generated -->` line, which `kpulse generate` rewrites. A test fails when a page is
//! stale.

mod messages;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{Value, json};

use crate::alert::{Alert, Notification, State};
use crate::config::Config;
use crate::engine::{DispatchItem, DispatchKind};
use crate::monitors::pods::pod_crashes;
use crate::monitors::watch::ObjectMonitor;
use crate::monitors::{job_failed, warning_events};
use crate::sinks::{Batch, alertmanager, opsgenie, pagerduty, webhook};

/// The pages holding generated examples, relative to the repository root.
pub const PAGES: [&str; 3] = ["docs/webhook.md", "docs/sinks.md", "docs/monitors.md"];

/// `page` (read from `path`) with every generated block rewritten.
pub fn refresh(path: &str, page: &str) -> Result<String, String> {
    let blocks = blocks();
    crate::generated::rewrite(path, page, &crate::generated::MARKDOWN, |name| {
        let language = if name.starts_with("message-") {
            "text"
        } else {
            "json"
        };
        blocks
            .get(name)
            .map(|content| format!("```{language}\n{content}\n```\n"))
    })
}

/// Every generated block by name.
pub fn blocks() -> BTreeMap<String, String> {
    let t0: Timestamp = "2027-01-15T08:00:00Z".parse().expect("a valid timestamp");
    let oom = oom_killed(t0);
    let firing = item(State::Firing, &oom, t0);
    let resolved = item(State::Resolved, &oom, t0 + SignedDuration::from_mins(5));
    let one = |i: &DispatchItem| batch(DispatchKind::Immediate, vec![i.clone()]);
    let later = t0 + SignedDuration::from_mins(15);
    let digest = batch(
        DispatchKind::Digest,
        vec![
            item(State::Firing, &failed_job(later), later),
            item(State::Firing, &warning_event(later), later),
        ],
    );
    let firing_until = t0 + SignedDuration::from_mins(4);
    [
        (
            "webhook-firing",
            webhook::WebhookSink::payload(&one(&firing)),
        ),
        (
            "webhook-resolved",
            changed(
                &webhook::WebhookSink::payload(&one(&firing))["alerts"][0],
                &webhook::WebhookSink::payload(&one(&resolved))["alerts"][0],
            ),
        ),
        ("webhook-digest", webhook::WebhookSink::payload(&digest)),
        (
            "pagerduty-trigger",
            pagerduty::event("<routing key>", &one(&firing), &firing.notification),
        ),
        (
            "pagerduty-resolve",
            pagerduty::event("<routing key>", &one(&resolved), &resolved.notification),
        ),
        (
            "opsgenie-create",
            opsgenie::body(&one(&firing), &firing.notification),
        ),
        (
            "alertmanager-firing",
            alertmanager::alerts(&one(&firing), firing_until),
        ),
    ]
    .into_iter()
    .map(|(name, v)| {
        let text = serde_json::to_string_pretty(&v).expect("JSON values always serialize");
        (name.to_string(), text)
    })
    .chain(
        messages::messages(t0)
            .into_iter()
            .map(|(monitor, text)| (format!("message-{monitor}"), text)),
    )
    .collect()
}

/// The fields of `after` that differ from `before`.
fn changed(before: &Value, after: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for (k, v) in after {
            if before.get(k) != Some(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn config() -> Config {
    crate::config::load(
        "cluster: prod-eks-1\nchannels: {hook: {type: webhook, url: 'https://receiver.example.com/kpulse'}}\nrouting: {default: [hook]}\nlinks: {runbook: 'https://runbooks.example/{monitor}#{reason}'}\n",
        &Default::default(),
    )
    .expect("the example configuration is valid")
}

fn batch(kind: DispatchKind, items: Vec<DispatchItem>) -> Batch {
    let config = config();
    Batch {
        cluster: config.cluster,
        channel: "hook".to_string(),
        kind,
        items,
        links: config.links,
        at: jiff::Timestamp::UNIX_EPOCH,
    }
}

fn item(state: State, alert: &Alert, at: Timestamp) -> DispatchItem {
    DispatchItem {
        notification: Notification {
            state,
            alert: alert.clone(),
            at,
        },
        reference: None,
    }
}

fn object<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("example objects are valid Kubernetes objects")
}

/// The one alert `monitor` reports for `obj` at `now`.
fn only<K>(monitor: &dyn ObjectMonitor<K>, obj: &K, now: Timestamp) -> Alert {
    let mut findings = monitor.firing(&config(), obj, now);
    assert_eq!(
        findings.len(),
        1,
        "the example object for {} fires exactly one alert (fix its fixture in src/examples.rs)",
        monitor.name()
    );
    findings.remove(0).alert
}

/// `pod_crashes`: a container in CrashLoopBackOff after an OOM kill.
fn oom_killed(now: Timestamp) -> Alert {
    let pod: Pod = object(json!({
        "metadata": {
            "name": "api-7d9f", "namespace": "checkout",
            "labels": {"app": "api", "pod-template-hash": "5c6b8"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5c6b8", "uid": "u1", "controller": true}]
        },
        "spec": {"nodeName": "ip-10-0-1-7", "containers": [{"name": "server"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "server", "image": "api:1.4", "imageID": "", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
        }]}
    }));
    only(&pod_crashes::PodCrashes, &pod, now)
}

/// `job_failed`: a Job that ran out of retries.
fn failed_job(now: Timestamp) -> Alert {
    let job: Job = object(json!({
        "metadata": {"name": "db-migrate-42", "namespace": "shop", "creationTimestamp": "2027-01-15T08:02:00Z", "labels": {"app": "db-migrate"}},
        "spec": {"template": {}},
        "status": {"failed": 4, "conditions": [{
            "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
            "lastTransitionTime": "2027-01-15T08:10:00Z"
        }]}
    }));
    only(&job_failed::JobFailed::default(), &job, now)
}

/// `warning_events`: a volume that cannot be mounted.
fn warning_event(now: Timestamp) -> Alert {
    let event: Event = object(json!({
        "metadata": {"name": "api-7d9f.17a2", "namespace": "checkout"},
        "involvedObject": {"kind": "Pod", "name": "api-7d9f", "namespace": "checkout"},
        "type": "Warning", "reason": "FailedMount", "count": 5,
        "message": "MountVolume.SetUp failed for volume \"config\" : configmap \"api-config\" not found",
        "source": {"component": "kubelet", "host": "ip-10-0-1-7"},
        "firstTimestamp": "2027-01-15T08:09:00Z", "lastTimestamp": "2027-01-15T08:14:00Z"
    }));
    warning_events::alert(&event, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = crate::generated::MARKDOWN.begin;

    #[test]
    fn pages_with_examples_are_fresh() {
        for page in PAGES {
            let path = format!("{}/{page}", env!("CARGO_MANIFEST_DIR"));
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            let fresh = refresh(page, &on_disk).unwrap_or_else(|e| panic!("{e}"));
            assert!(fresh == on_disk, "{page} is stale: run `make generate`");
        }
    }

    #[test]
    fn every_example_is_on_a_page() {
        let pages: String = PAGES
            .iter()
            .map(|p| std::fs::read_to_string(format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))))
            .collect::<Result<_, _>>()
            .unwrap();
        for name in blocks().keys() {
            assert!(
                pages.contains(&format!("{BEGIN}{name} -->\n")),
                "no page shows the example {name:?}"
            );
        }
    }

    #[test]
    fn refresh_rewrites_blocks_and_names_mistakes() {
        let page = "intro\n<!-- generated: pagerduty-resolve -->\nold text\n<!-- end generated -->\nrest\n";
        let fresh = refresh("p.md", page).unwrap();
        assert!(fresh.starts_with("intro\n<!-- generated: pagerduty-resolve -->\n```json\n{"));
        assert!(fresh.ends_with("}\n```\n<!-- end generated -->\nrest\n"));
        assert!(fresh.contains("\"event_action\": \"resolve\""));
        assert_eq!(refresh("p.md", &fresh).unwrap(), fresh, "idempotent");
        assert_eq!(
            refresh("p.md", "<!-- generated: nope -->\n<!-- end generated -->\n").unwrap_err(),
            "p.md: unknown generated block \"nope\""
        );
        assert_eq!(
            refresh("p.md", "<!-- generated: webhook-firing -->\n").unwrap_err(),
            "p.md: generated block \"webhook-firing\" has no `<!-- end generated -->` line"
        );
    }

    /// Every alert shown in docs/webhook.md says what the monitor that made it really sends, and
    /// the page shows both a resolvable and a point-in-time alert.
    #[test]
    fn documented_alerts_say_what_the_monitors_send() {
        let alerts_in = |text: &str| -> Vec<Value> {
            text.split("```json\n")
                .skip(1)
                .filter_map(|rest| serde_json::from_str::<Value>(rest.split("\n```").next()?).ok())
                .filter_map(|v| v.get("alerts").and_then(Value::as_array).cloned())
                .flatten()
                .collect()
        };
        let real: BTreeMap<String, Value> = blocks()
            .values()
            .flat_map(|b| alerts_in(&format!("```json\n{b}\n```")))
            .map(|a| (a["key_string"].as_str().unwrap_or_default().to_string(), a))
            .collect();
        let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhook.md"))
            .unwrap();
        let documented = alerts_in(&page);
        for shown in &documented {
            let key = shown["key_string"].as_str().unwrap_or_default();
            let sent = real
                .get(key)
                .unwrap_or_else(|| panic!("no monitor sends the documented alert {key}"));
            for field in [
                "severity",
                "resolvable",
                "key",
                "title",
                "message",
                "fields",
            ] {
                assert_eq!(shown[field], sent[field], "{key}: {field}");
            }
        }
        for resolvable in [true, false] {
            assert!(
                documented.iter().any(|a| a["resolvable"] == resolvable),
                "docs/webhook.md shows no alert with resolvable={resolvable}"
            );
        }
    }
}
