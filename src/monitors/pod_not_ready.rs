//! `pod_not_ready`: Running pods whose `Ready` condition has been False for `for` — typically a
//! failing readiness probe. Not reported: pods of Jobs, pods with a waiting container (that is
//! `pod_crashes` or `container_waiting`), and pods marked not ready because their node is
//! (`node_conditions`). Resolvable: resolves once the pod is Ready, no longer Running, or gone.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pods::about;
use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "pod_not_ready";

/// The Ready reason the node lifecycle controller sets on every pod of an unresponsive node.
const NODE_NOT_READY: &str = "NodeNotReady";

pub struct PodNotReady;

impl ObjectMonitor<Pod> for PodNotReady {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pod_not_ready.enabled
    }

    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding> {
        let Some(status) = pod.status.as_ref() else {
            return Vec::new();
        };
        if status.phase.as_deref() != Some("Running")
            || pod.owner_references().iter().any(|o| o.kind == "Job")
        {
            return Vec::new();
        }
        let Some(ready) = status
            .conditions
            .as_ref()
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
        else {
            return Vec::new();
        };
        if ready.status != "False" || ready.reason.as_deref() == Some(NODE_NOT_READY) {
            return Vec::new();
        }
        let containers = status.container_statuses.as_deref().unwrap_or_default();
        if containers
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_some()))
        {
            return Vec::new();
        }
        let since = ready
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| status.start_time.as_ref().map(|t| t.0))
            .unwrap_or(now);
        if since + config.monitors.pod_not_ready.r#for.signed() > now {
            return Vec::new();
        }
        let name = pod.name_any();
        let ns = pod.namespace().unwrap_or_default();
        let unready: Vec<&str> = containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let which = if unready.is_empty() {
            String::new()
        } else {
            format!(" Containers not ready: {}.", unready.join(", "))
        };
        let detail = ready
            .message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let key = AlertKey::new(NAME, ns.clone(), "Pod", name.clone(), "NotReady");
        let mut a = Alert::new(key, Severity::Warning, format!("{name} not ready"), now)
            .message(format!(
                "Pod {ns}/{name} is running but has not been ready since {since}{detail}.{which} It receives no Service traffic; check its readiness probe.",
                since = display_time(since)
            ));
        a.first_seen = since;
        vec![Finding::firing(about(a, pod))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(
        owner_kind: &str,
        phase: &str,
        ready: serde_json::Value,
        state: serde_json::Value,
    ) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-1", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "v1", "kind": owner_kind, "name": "api", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "server"}]},
            "status": {"phase": phase, "conditions": [ready],
                "containerStatuses": [{"name": "server", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}]}
        }))
        .unwrap()
    }

    fn config(extra: &str) -> Config {
        crate::config::load(
            &format!("channels: {{l: {{type: log}}}}\nrouting: {{default: [l]}}\n{extra}"),
            &Default::default(),
        )
        .unwrap()
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn decision_table() {
        let c = config(""); // for: 15m
        let not_ready = |since: &str| {
            json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                "message": "containers with unready status: [server]", "lastTransitionTime": since})
        };
        let running = json!({"running": {"startedAt": "2026-11-22T11:00:00Z"}});
        let cases: Vec<(&str, Pod, bool)> = vec![
            (
                "not ready for 20m",
                pod(
                    "ReplicaSet",
                    "Running",
                    not_ready("2026-11-22T11:40:00Z"),
                    running.clone(),
                ),
                true,
            ),
            (
                "not ready for 5m",
                pod(
                    "ReplicaSet",
                    "Running",
                    not_ready("2026-11-22T11:55:00Z"),
                    running.clone(),
                ),
                false,
            ),
            (
                "ready",
                pod(
                    "ReplicaSet",
                    "Running",
                    json!({"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-22T11:00:00Z"}),
                    running.clone(),
                ),
                false,
            ),
            (
                "owned by a Job",
                pod(
                    "Job",
                    "Running",
                    not_ready("2026-11-22T11:00:00Z"),
                    running.clone(),
                ),
                false,
            ),
            (
                "pending",
                pod(
                    "ReplicaSet",
                    "Pending",
                    not_ready("2026-11-22T11:00:00Z"),
                    running.clone(),
                ),
                false,
            ),
            (
                "crash looping is pod_crashes'",
                pod(
                    "ReplicaSet",
                    "Running",
                    not_ready("2026-11-22T11:00:00Z"),
                    json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                ),
                false,
            ),
            (
                "node not ready is node_conditions'",
                pod(
                    "ReplicaSet",
                    "Running",
                    json!({"type": "Ready", "status": "False", "reason": "NodeNotReady", "lastTransitionTime": "2026-11-22T11:00:00Z"}),
                    running,
                ),
                false,
            ),
        ];
        for (name, p, want) in cases {
            let got = PodNotReady.firing(&c, &p, at("2026-11-22T12:00:00Z"));
            assert_eq!(!got.is_empty(), want, "{name}");
        }
    }

    #[test]
    fn alert_names_the_unready_containers() {
        let p = pod(
            "StatefulSet",
            "Running",
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-22T11:40:00Z",
                "message": "containers with unready status: [server]"}),
            json!({"running": {}}),
        );
        let a = &PodNotReady.firing(&config(""), &p, at("2026-11-22T12:00:00Z"))[0].alert;
        assert_eq!(a.key.to_string(), "pod_not_ready/shop/Pod/api-1/NotReady");
        assert_eq!(
            a.message,
            "Pod shop/api-1 is running but has not been ready since 2026-11-22T11:40:00Z (containers with unready status: [server]). Containers not ready: server. It receives no Service traffic; check its readiness probe."
        );
        assert_eq!(a.owner.as_deref(), Some("StatefulSet/api"));
        assert_eq!(a.first_seen, at("2026-11-22T11:40:00Z"));
    }
}
