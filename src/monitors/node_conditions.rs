//! `node_conditions`: node health as the node's own conditions report it. Resolvable: each alert
//! resolves when its condition returns to normal, or the node is deleted.
//!
//! - `Ready` False or Unknown for `not_ready_for`: critical (the node stops running pods; after
//!   about 5 minutes its pods are evicted). Cordoned nodes and nodes the cluster autoscaler is
//!   removing are expected to go away and are not reported.
//! - `MemoryPressure`, `DiskPressure`, `PIDPressure`, `NetworkUnavailable` True for
//!   `pressure_for`: warning.
//! - Any other condition True for `pressure_for` — node-problem-detector (`KernelDeadlock`,
//!   `ReadonlyFilesystem`, ...), cloud-specific or custom conditions: warning, critical for the
//!   ones that mean a broken machine, info for planned maintenance.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::ResourceExt;

use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "node_conditions";
crate::monitors::feeds::feed!(NODES: Node, NAME, |_| Arc::new(NodeConditions));

/// Conditions that are healthy when False.
const PRESSURE: [&str; 4] = [
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
];

/// node-problem-detector conditions that mean the machine is broken.
const CRITICAL: [&str; 4] = [
    "KernelDeadlock",
    "ReadonlyFilesystem",
    "XfsShutdown",
    "CperHardwareErrorFatal",
];

/// Admin-owned conditions announcing planned work (core/v1).
const MAINTENANCE: [&str; 5] = [
    "GracefulNodeShutdownInProgress",
    "DrainInProgress",
    "Drained",
    "MaintenancePlanned",
    "MaintenanceInProgress",
];

/// The taint the cluster autoscaler puts on a node it is about to delete.
const AUTOSCALER_DELETING: &str = "ToBeDeletedByClusterAutoscaler";

pub struct NodeConditions;

fn since(c: &NodeCondition, node: &Node, now: Timestamp) -> Timestamp {
    c.last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now)
}

fn going_away(node: &Node) -> bool {
    let spec = node.spec.as_ref();
    spec.and_then(|s| s.unschedulable).unwrap_or(false)
        || spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .any(|t| t.key == AUTOSCALER_DELETING)
}

fn sentence(m: &str) -> &str {
    m.trim_end().trim_end_matches('.')
}

fn detail(c: &NodeCondition) -> String {
    match (c.reason.as_deref(), c.message.as_deref()) {
        (Some(r), Some(m)) if !m.is_empty() => format!(" {r}: {}.", sentence(m)),
        (Some(r), _) if !r.is_empty() => format!(" Reason: {r}."),
        (_, Some(m)) if !m.is_empty() => format!(" {}.", sentence(m)),
        _ => String::new(),
    }
}

impl ObjectMonitor<Node> for NodeConditions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.node_conditions.enabled
    }

    /// Timed while a condition is in the state that fires once it has held a while (Ready not
    /// True, a pressure or other condition True).
    fn timed(&self, _config: &Config, node: &Node, _now: Timestamp) -> bool {
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| (c.type_ == "Ready") != (c.status == "True"))
    }

    fn firing(&self, config: &Config, node: &Node, now: Timestamp) -> Vec<Finding> {
        let settings = &config.monitors.node_conditions;
        let name = node.name_any();
        let mut out = Vec::new();
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten();
        for c in conditions {
            let since = since(c, node, now);
            let (reason, severity, title, message, wait) = if c.type_ == "Ready" {
                if c.status == "True" || going_away(node) {
                    continue;
                }
                let state = if c.status == "Unknown" {
                    "has stopped reporting (Ready=Unknown)"
                } else {
                    "is not ready"
                };
                (
                    "NotReady".to_string(),
                    Severity::Critical,
                    format!("{name} NotReady"),
                    format!(
                        "Node {name} {state} since {since}.{} Its pods are evicted after about 5 minutes.",
                        detail(c),
                        since = display_time(since)
                    ),
                    settings.not_ready_for,
                )
            } else {
                if c.status != "True" {
                    continue;
                }
                let severity = if CRITICAL.contains(&c.type_.as_str()) {
                    Severity::Critical
                } else if MAINTENANCE.contains(&c.type_.as_str()) {
                    Severity::Info
                } else {
                    Severity::Warning
                };
                let what = if PRESSURE.contains(&c.type_.as_str()) {
                    "reports"
                } else {
                    "has condition"
                };
                (
                    c.type_.clone(),
                    severity,
                    format!("{name} {}", c.type_),
                    format!(
                        "Node {name} {what} {} since {since}.{}",
                        c.type_,
                        detail(c),
                        since = display_time(since)
                    ),
                    settings.pressure_for,
                )
            };
            if since + wait.signed() > now {
                continue;
            }
            let mut a = Alert::new(
                AlertKey::new(NAME, "", "Node", name.clone(), reason),
                severity,
                title,
                now,
            )
            .message(message)
            .node(name.clone())
            .labels(node.labels().clone());
            if let Some(r) = c.reason.clone() {
                a = a.field("Reason", r);
            }
            a.first_seen = since;
            out.push(Finding::firing(a));
        }
        out
    }
}

/// Keeps what the monitor reads: labels, the ignore switch, cordon and taints, conditions.
/// Drops the image list, addresses, capacity and the rest.
pub fn trim(node: &mut Node) {
    super::watch::trim_meta(node);
    if let Some(spec) = node.spec.as_mut() {
        spec.pod_cidr = None;
        spec.pod_cidrs = None;
        spec.provider_id = None;
        spec.config_source = None;
    }
    if let Some(status) = node.status.as_mut() {
        status.images = None;
        status.addresses = None;
        status.allocatable = None;
        status.capacity = None;
        status.daemon_endpoints = None;
        status.node_info = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
        status.config = None;
        status.features = None;
        status.runtime_handlers = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{at, config};
    use serde_json::json;

    fn node(spec: serde_json::Value, conditions: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-11-01T00:00:00Z", "labels": {"pool": "a"}},
            "spec": spec,
            "status": {"conditions": conditions, "images": [{"names": ["x"], "sizeBytes": 1}]}
        }))
        .unwrap()
    }

    fn cond(t: &str, status: &str, since: &str) -> serde_json::Value {
        json!({"type": t, "status": status, "reason": "KubeletNotReady",
            "message": "PLEG is not healthy", "lastTransitionTime": since})
    }

    const LONG: &str = "2026-11-22T11:00:00Z";
    const JUST: &str = "2026-11-22T11:59:30Z";

    #[test]
    fn a_healthy_node_is_not_re_evaluated_at_each_tick_and_a_troubled_one_is() {
        let healthy = || {
            [
                cond("Ready", "True", LONG),
                cond("DiskPressure", "False", LONG),
            ]
        };
        let nodes = [
            ("a healthy node", node(json!({}), json!(healthy()))),
            (
                "a node just NotReady",
                node(json!({}), json!([cond("Ready", "False", JUST)])),
            ),
            (
                "a node just Unknown",
                node(json!({}), json!([cond("Ready", "Unknown", JUST)])),
            ),
            (
                "a node just under disk pressure",
                node(
                    json!({}),
                    json!([
                        cond("Ready", "True", LONG),
                        cond("DiskPressure", "True", JUST)
                    ]),
                ),
            ),
        ];
        let monitors: Vec<Arc<dyn ObjectMonitor<Node>>> = vec![Arc::new(NodeConditions)];
        let (changed, timed) = crate::monitors::testkit::timed_contract(
            &monitors,
            &config(""),
            &nodes,
            at("2026-11-22T12:00:00Z"),
        );
        assert_eq!(changed, [NAME].into());
        assert_eq!(timed, [vec![], vec![NAME], vec![NAME], vec![NAME]]);
    }

    #[test]
    fn decision_table() {
        let c = config(""); // not_ready_for 5m, pressure_for 2m
        let healthy = || {
            json!([
                cond("Ready", "True", LONG),
                cond("MemoryPressure", "False", LONG),
                cond("KernelDeadlock", "False", LONG)
            ])
        };
        type Case<'a> = (&'a str, Node, Vec<(&'a str, Severity)>);
        let cases: Vec<Case> = vec![
            ("healthy", node(json!({}), healthy()), vec![]),
            (
                "not ready for an hour",
                node(json!({}), json!([cond("Ready", "False", LONG)])),
                vec![("NotReady", Severity::Critical)],
            ),
            (
                "unknown for an hour",
                node(json!({}), json!([cond("Ready", "Unknown", LONG)])),
                vec![("NotReady", Severity::Critical)],
            ),
            (
                "not ready for 30s",
                node(json!({}), json!([cond("Ready", "False", JUST)])),
                vec![],
            ),
            (
                "cordoned and not ready",
                node(
                    json!({"unschedulable": true}),
                    json!([cond("Ready", "False", LONG)]),
                ),
                vec![],
            ),
            (
                "being removed by the autoscaler",
                node(
                    json!({"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}),
                    json!([cond("Ready", "Unknown", LONG)]),
                ),
                vec![],
            ),
            (
                "disk pressure",
                node(
                    json!({}),
                    json!([
                        cond("Ready", "True", LONG),
                        cond("DiskPressure", "True", LONG)
                    ]),
                ),
                vec![("DiskPressure", Severity::Warning)],
            ),
            (
                "disk pressure just now",
                node(json!({}), json!([cond("DiskPressure", "True", JUST)])),
                vec![],
            ),
            (
                "npd kernel deadlock",
                node(json!({}), json!([cond("KernelDeadlock", "True", LONG)])),
                vec![("KernelDeadlock", Severity::Critical)],
            ),
            (
                "custom condition",
                node(
                    json!({}),
                    json!([cond("FrequentKubeletRestart", "True", LONG)]),
                ),
                vec![("FrequentKubeletRestart", Severity::Warning)],
            ),
            (
                "planned maintenance",
                node(json!({}), json!([cond("MaintenancePlanned", "True", LONG)])),
                vec![("MaintenancePlanned", Severity::Info)],
            ),
        ];
        for (name, n, want) in cases {
            let got: Vec<(String, Severity)> = NodeConditions
                .firing(&c, &n, at("2026-11-22T12:00:00Z"))
                .into_iter()
                .map(|f| (f.alert.key.reason, f.alert.severity))
                .collect();
            let want: Vec<(String, Severity)> =
                want.into_iter().map(|(r, s)| (r.to_string(), s)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn not_ready_alert_reads_in_plain_words() {
        let n = node(json!({}), json!([cond("Ready", "False", LONG)]));
        let a = &NodeConditions.firing(&config(""), &n, at("2026-11-22T12:00:00Z"))[0].alert;
        assert_eq!(a.key.to_string(), "node_conditions//Node/n1/NotReady");
        assert_eq!(a.title, "n1 NotReady");
        assert_eq!(
            a.message,
            "Node n1 is not ready since 2026-11-22T11:00:00Z. KubeletNotReady: PLEG is not healthy. Its pods are evicted after about 5 minutes."
        );
        assert_eq!(a.first_seen, at(LONG));
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert!(a.resolvable);
    }

    #[test]
    fn trim_drops_the_image_list() {
        let mut n = node(json!({}), json!([cond("Ready", "True", LONG)]));
        trim(&mut n);
        let s = n.status.unwrap();
        assert!(s.images.is_none());
        assert_eq!(s.conditions.unwrap().len(), 1);
    }
}
