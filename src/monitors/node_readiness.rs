//! Which nodes are Ready, as the Node watch last saw them. `pod_not_ready` reads it: when a node
//! stops reporting, the node lifecycle controller marks every pod on it not ready (without a
//! reason since Kubernetes 1.35), and that is the node's problem (`node_conditions`), not the
//! pods' readiness probes.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use super::watch::Index;
use crate::config::Config;

/// What kpulse knows of one node's `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Not known (yet): the Node watch has not listed, or the node is not in its list.
    Unknown,
    /// `Ready` is False or Unknown, or not reported at all.
    NotReady,
    /// `Ready` has been True since this time.
    ReadySince(Timestamp),
}

/// Per node: since when it is Ready, `None` while it is not.
type Known = HashMap<String, Option<Timestamp>>;

/// The readiness of every node, kept current by the Node watch, and the labels of each (for
/// `startup_latency`'s `node_pool` label).
#[derive(Debug, Default)]
pub struct NodeReadiness(
    RwLock<Known>,
    RwLock<HashMap<String, BTreeMap<String, String>>>,
);

/// Since when `node` is Ready (its `Ready` condition's `lastTransitionTime`, else its creation),
/// or `None` when it is not Ready.
fn ready_since(node: &Node) -> Option<Timestamp> {
    let ready = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    let since = ready
        .last_transition_time
        .as_ref()
        .or(node.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    Some(since)
}

impl NodeReadiness {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        // A poisoned lock only means a writer panicked mid-update; the map is still whole.
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Known> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The state of the node named `node`.
    pub fn state(&self, node: &str) -> NodeState {
        match self.read().get(node) {
            Some(Some(since)) => NodeState::ReadySince(*since),
            Some(None) => NodeState::NotReady,
            None => NodeState::Unknown,
        }
    }

    /// The value of the label `key` on the node named `node`, when the node is known.
    pub fn label(&self, node: &str, key: &str) -> Option<String> {
        let labels = self.1.read().unwrap_or_else(|e| e.into_inner());
        labels.get(node)?.get(key).cloned()
    }

    fn labels(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        self.1.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Index<Node> for NodeReadiness {
    fn enabled(&self, config: &Config) -> bool {
        let startup = &config.monitors.startup_latency;
        config.monitors.pod_not_ready.enabled
            || (startup.enabled && !startup.node_pool_label.is_empty())
    }

    fn listed(&self, nodes: &mut dyn Iterator<Item = &Node>) {
        let (mut known, mut labels) = (Known::new(), HashMap::new());
        for n in nodes {
            known.insert(n.name_any(), ready_since(n));
            labels.insert(n.name_any(), n.labels().clone());
        }
        *self.write() = known;
        *self.labels() = labels;
    }

    fn applied(&self, node: &Node) {
        self.write().insert(node.name_any(), ready_since(node));
        self.labels().insert(node.name_any(), node.labels().clone());
    }

    fn deleted(&self, node: &Node) {
        self.write().remove(&node.name_any());
        self.labels().remove(&node.name_any());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::at;
    use serde_json::json;

    fn node(name: &str, conditions: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": "2026-11-01T00:00:00Z"},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    fn ready(status: &str, since: Option<&str>) -> serde_json::Value {
        json!([{"type": "Ready", "status": status, "lastTransitionTime": since}])
    }

    #[test]
    fn follows_the_ready_condition_of_each_node() {
        let index = NodeReadiness::default();
        assert_eq!(
            index.state("n1"),
            NodeState::Unknown,
            "nothing is known before the first list"
        );
        let nodes = [
            node("n1", ready("True", Some("2026-11-22T11:00:00Z"))),
            node("n2", ready("Unknown", Some("2026-11-22T11:00:00Z"))),
            node("n3", ready("False", None)),
            node("n4", json!([])),
            node("n5", ready("True", None)),
        ];
        index.listed(&mut nodes.iter());
        assert_eq!(
            index.state("n1"),
            NodeState::ReadySince(at("2026-11-22T11:00:00Z"))
        );
        assert_eq!(index.state("n2"), NodeState::NotReady);
        assert_eq!(index.state("n3"), NodeState::NotReady);
        assert_eq!(index.state("n4"), NodeState::NotReady, "Ready not reported");
        assert_eq!(
            index.state("n5"),
            NodeState::ReadySince(at("2026-11-01T00:00:00Z")),
            "no transition time: since the node was created"
        );
        assert_eq!(index.state("n6"), NodeState::Unknown);

        index.applied(&node("n2", ready("True", Some("2026-11-22T12:00:00Z"))));
        assert_eq!(
            index.state("n2"),
            NodeState::ReadySince(at("2026-11-22T12:00:00Z"))
        );
        index.applied(&node("n1", ready("Unknown", Some("2026-11-22T12:01:00Z"))));
        assert_eq!(index.state("n1"), NodeState::NotReady);
        index.deleted(&nodes[2]);
        assert_eq!(index.state("n3"), NodeState::Unknown);

        // A re-list replaces everything: nodes gone meanwhile are forgotten.
        index.listed(&mut nodes[..1].iter());
        assert_eq!(
            index.state("n1"),
            NodeState::ReadySince(at("2026-11-22T11:00:00Z"))
        );
        assert_eq!(index.state("n2"), NodeState::Unknown);
    }
}
