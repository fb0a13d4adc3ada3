//! `pod_unschedulable`: pods the scheduler cannot place (`PodScheduled=False`, reason
//! `Unschedulable`) for `for`, with the scheduler's own explanation ("0/3 nodes are available:
//! ..."). Pods held back by scheduling gates are not reported. Resolvable: resolves once the pod
//! is scheduled or gone.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod;
use crate::alert::{Severity, display_time};
use crate::config::Config;
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "pod_unschedulable";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |_| Arc::new(PodUnschedulable));

pub struct PodUnschedulable;

impl ObjectMonitor<Pod> for PodUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pod_unschedulable.enabled
    }

    /// Timed while the scheduler reports it unschedulable: it fires once that held `for`.
    fn timed(&self, _config: &Config, pod: &Pod, _now: Timestamp) -> bool {
        pod.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
    }

    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding> {
        let Some(cond) = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled")
        else {
            return Vec::new();
        };
        if cond.status != "False" || cond.reason.as_deref() != Some("Unschedulable") {
            return Vec::new();
        }
        let since = cond
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        if since + config.monitors.pod_unschedulable.r#for.signed() > now {
            return Vec::new();
        }
        let name = pod.name_any();
        let ns = pod.namespace().unwrap_or_default();
        let why = cond
            .message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| format!(" The scheduler says: {m}"))
            .unwrap_or_default();
        let mut a = pod::alert(
            NAME,
            pod,
            "Unschedulable",
            Severity::Warning,
            format!("{name} unschedulable"),
            now,
        )
        .message(format!(
            "Pod {ns}/{name} cannot be scheduled on any node since {since}.{why}",
            since = display_time(since)
        ));
        if let Some(m) = cond.message.as_deref().filter(|m| !m.is_empty()) {
            // For the hints: "Insufficient memory" names what no node has room for.
            a.evidence.facts.insert("Scheduler".into(), m.to_string());
        }
        a.first_seen = since;
        vec![Finding::firing(a)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{at, config};
    use serde_json::json;

    fn pod(conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "creationTimestamp": "2026-11-22T11:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Pending", "conditions": conditions}
        }))
        .unwrap()
    }

    const MSG: &str =
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.";

    #[test]
    fn decision_table() {
        let c = config(""); // for: 5m
        let unsched = |since: &str| {
            pod(
                json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": MSG, "lastTransitionTime": since}]),
            )
        };
        let cases: Vec<(&str, Pod, bool)> = vec![
            (
                "unschedulable for 10m",
                unsched("2026-11-22T11:50:00Z"),
                true,
            ),
            (
                "unschedulable for 1m",
                unsched("2026-11-22T11:59:00Z"),
                false,
            ),
            (
                "scheduling gated",
                pod(
                    json!([{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated",
                    "lastTransitionTime": "2026-11-22T10:00:00Z"}]),
                ),
                false,
            ),
            (
                "scheduled",
                pod(json!([{"type": "PodScheduled", "status": "True",
                    "lastTransitionTime": "2026-11-22T10:00:00Z"}])),
                false,
            ),
            ("no conditions yet", pod(json!([])), false),
        ];
        for (name, p, want) in cases {
            let got = PodUnschedulable.firing(&c, &p, at("2026-11-22T12:00:00Z"));
            assert_eq!(!got.is_empty(), want, "{name}");
        }
    }

    #[test]
    fn alert_quotes_the_scheduler() {
        let p = pod(
            json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": MSG, "lastTransitionTime": "2026-11-22T11:50:00Z"}]),
        );
        let a = &PodUnschedulable.firing(&config(""), &p, at("2026-11-22T12:00:00Z"))[0].alert;
        assert_eq!(
            a.key.to_string(),
            "pod_unschedulable/shop/Pod/web-0/Unschedulable"
        );
        assert_eq!(a.title, "web-0 unschedulable");
        assert_eq!(
            a.message,
            format!(
                "Pod shop/web-0 cannot be scheduled on any node since 2026-11-22T11:50:00Z. The scheduler says: {MSG}"
            )
        );
        assert_eq!(a.owner.as_deref(), Some("StatefulSet/web"));
        assert_eq!(a.first_seen, at("2026-11-22T11:50:00Z"));
        assert!(a.resolvable);
    }
}
