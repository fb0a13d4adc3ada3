//! `pod_not_ready`: Running pods whose `Ready` condition has been False for `for` — typically a
//! failing readiness probe. Not reported: pods of Jobs, pods with a waiting container (that is
//! `pod_crashes` or `container_waiting`), and pods on a node that is not Ready (`node_conditions`
//! reports the node; the node lifecycle controller marks its pods not ready, without a reason).
//! After such a node is Ready again, a pod still not ready fires once it has stayed so for `for`
//! since the node's recovery. Resolvable: resolves once the pod is Ready, no longer Running, or
//! gone.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod;
use crate::alert::{Severity, display_time};
use crate::config::Config;
use crate::monitors::node_readiness::{NodeReadiness, NodeState};
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "pod_not_ready";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |w| Arc::new(PodNotReady::new(w.nodes.clone())));

/// The monitor; `nodes` says which nodes are Ready.
pub struct PodNotReady {
    nodes: Arc<NodeReadiness>,
}

impl PodNotReady {
    pub fn new(nodes: Arc<NodeReadiness>) -> Self {
        PodNotReady { nodes }
    }
}

/// The decision for `pod`, whose node is in `node` state.
fn decide(config: &Config, pod: &Pod, node: NodeState, now: Timestamp) -> Vec<Finding> {
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
    if ready.status != "False" {
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
    let wait = config.monitors.pod_not_ready.r#for.signed();
    if since + wait > now {
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
    let mut a = pod::alert(
        NAME,
        pod,
        "NotReady",
        Severity::Warning,
        format!("{name} not ready"),
        now,
    )
    .message(format!(
            "Pod {ns}/{name} is running but has not been ready since {since}{detail}.{which} It receives no Service traffic; check its readiness probe.",
            since = display_time(since)
        ));
    a.first_seen = since;
    match node {
        // The node's own trouble (or not known yet): keep an alert already active, start none.
        NodeState::NotReady | NodeState::Unknown => vec![Finding::holding(a)],
        // The node came back recently: give the kubelet `for` to report the pod again.
        NodeState::ReadySince(back) if back + wait > now => vec![Finding::holding(a)],
        NodeState::ReadySince(_) => vec![Finding::firing(a)],
    }
}

impl ObjectMonitor<Pod> for PodNotReady {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pod_not_ready.enabled
    }

    /// Timed while a running pod is not ready: it fires once that held `for`, and its node's
    /// readiness (another watch's view) decides whether it may.
    fn timed(&self, _config: &Config, pod: &Pod, _now: Timestamp) -> bool {
        let Some(status) = pod.status.as_ref() else {
            return false;
        };
        status.phase.as_deref() == Some("Running")
            && status
                .conditions
                .as_ref()
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "False")
    }

    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding> {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .map_or(NodeState::Unknown, |n| self.nodes.state(n));
        decide(config, pod, node, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{at, config};
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

    /// What the monitor reports: `fire`, `hold` (keep an active alert, start none) or `none`.
    fn outcome(findings: &[Finding]) -> &'static str {
        match findings {
            [] => "none",
            [f] if f.hold_only => "hold",
            [_] => "fire",
            _ => panic!("one finding per pod at most: {findings:?}"),
        }
    }

    const LONG_READY: NodeState = NodeState::ReadySince(Timestamp::UNIX_EPOCH);

    #[test]
    fn decision_table() {
        let c = config(""); // for: 15m
        let not_ready = |since: &str| {
            json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                "message": "containers with unready status: [server]", "lastTransitionTime": since})
        };
        // What the node lifecycle controller (v1.35) writes on the pods of a node gone NotReady.
        let marked_by_node_controller = json!({"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-22T11:00:00Z"});
        let running = json!({"running": {"startedAt": "2026-11-22T11:00:00Z"}});
        let rs = |ready: &serde_json::Value| {
            pod("ReplicaSet", "Running", ready.clone(), running.clone())
        };
        let cases: Vec<(&str, Pod, NodeState, &str)> = vec![
            (
                "not ready for 20m",
                rs(&not_ready("2026-11-22T11:40:00Z")),
                LONG_READY,
                "fire",
            ),
            (
                "not ready for 5m",
                rs(&not_ready("2026-11-22T11:55:00Z")),
                LONG_READY,
                "none",
            ),
            (
                "ready",
                rs(
                    &json!({"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-22T11:00:00Z"}),
                ),
                LONG_READY,
                "none",
            ),
            (
                "owned by a Job",
                pod(
                    "Job",
                    "Running",
                    not_ready("2026-11-22T11:00:00Z"),
                    running.clone(),
                ),
                LONG_READY,
                "none",
            ),
            (
                "pending",
                pod(
                    "ReplicaSet",
                    "Pending",
                    not_ready("2026-11-22T11:00:00Z"),
                    running.clone(),
                ),
                LONG_READY,
                "none",
            ),
            (
                "crash looping is pod_crashes'",
                pod(
                    "ReplicaSet",
                    "Running",
                    not_ready("2026-11-22T11:00:00Z"),
                    json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                ),
                LONG_READY,
                "none",
            ),
            (
                "node not ready is node_conditions'",
                rs(&marked_by_node_controller),
                NodeState::NotReady,
                "hold",
            ),
            (
                "a failing probe on a node gone not ready is held, not resolved",
                rs(&not_ready("2026-11-22T11:00:00Z")),
                NodeState::NotReady,
                "hold",
            ),
            (
                "node state not known yet",
                rs(&marked_by_node_controller),
                NodeState::Unknown,
                "hold",
            ),
            (
                "node Ready again 5m ago: the kubelet has `for` to report the pod",
                rs(&marked_by_node_controller),
                NodeState::ReadySince(at("2026-11-22T11:55:00Z")),
                "hold",
            ),
            (
                "node Ready again 15m ago, pod still not ready",
                rs(&marked_by_node_controller),
                NodeState::ReadySince(at("2026-11-22T11:45:00Z")),
                "fire",
            ),
        ];
        for (name, p, node, want) in cases {
            let got = decide(&c, &p, node, at("2026-11-22T12:00:00Z"));
            assert_eq!(outcome(&got), want, "{name}");
        }
    }

    #[test]
    fn reads_the_node_state_from_the_node_watch() {
        use crate::monitors::watch::Index;
        let c = config(""); // for: 15m
        let node = |status: &str, since: &str| -> k8s_openapi::api::core::v1::Node {
            serde_json::from_value(
                json!({"metadata": {"name": "n1"}, "status": {"conditions": [
                {"type": "Ready", "status": status, "lastTransitionTime": since}]}}),
            )
            .unwrap()
        };
        let nodes = Arc::new(NodeReadiness::default());
        let monitor = PodNotReady::new(nodes.clone());
        // The controller marked the pod not ready at 11:00, without a reason, as its node died.
        let p = pod(
            "ReplicaSet",
            "Running",
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-22T11:00:00Z"}),
            json!({"running": {}}),
        );
        nodes.listed(&mut [node("Unknown", "2026-11-22T10:59:00Z")].iter());
        assert_eq!(
            outcome(&monitor.firing(&c, &p, at("2026-11-22T12:00:00Z"))),
            "hold"
        );
        nodes.applied(&node("True", "2026-11-22T12:00:00Z"));
        assert_eq!(
            outcome(&monitor.firing(&c, &p, at("2026-11-22T12:14:59Z"))),
            "hold"
        );
        let fired = monitor.firing(&c, &p, at("2026-11-22T12:15:00Z"));
        assert_eq!(outcome(&fired), "fire");
        assert_eq!(fired[0].alert.first_seen, at("2026-11-22T11:00:00Z"));
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
        let f = decide(&config(""), &p, LONG_READY, at("2026-11-22T12:00:00Z"));
        assert_eq!(outcome(&f), "fire");
        let a = &f[0].alert;
        assert_eq!(a.key.to_string(), "pod_not_ready/shop/Pod/api-1/NotReady");
        assert_eq!(
            a.message,
            "Pod shop/api-1 is running but has not been ready since 2026-11-22T11:40:00Z (containers with unready status: [server]). Containers not ready: server. It receives no Service traffic; check its readiness probe."
        );
        assert_eq!(a.owner.as_deref(), Some("StatefulSet/api"));
        assert_eq!(a.first_seen, at("2026-11-22T11:40:00Z"));
    }
}
