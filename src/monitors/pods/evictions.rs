//! The open eviction groups of `pod_evicted`, per namespace and node, and the one message a
//! closed group becomes. Kept apart from the monitor so the watch wiring can own the groups.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

use crate::alert::{Alert, AlertKey, Severity};

/// The monitor's name, in the alert keys of its messages.
pub const MONITOR: &str = "pod_evicted";
const NAME: &str = MONITOR;

/// One evicted pod, as listed in the group's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Eviction {
    pub namespace: String,
    pub name: String,
    pub owner: Option<String>,
    /// The kubelet's reason, e.g. "The node was low on resource: memory. ..."
    pub message: String,
}

#[derive(Debug)]
struct Group {
    opened: Timestamp,
    pods: Vec<Eviction>,
}

/// What a group is per: (namespace, node).
type GroupKey = (String, String);

/// Open eviction groups, per namespace and node.
#[derive(Debug, Default)]
pub struct Groups(Mutex<BTreeMap<GroupKey, Group>>);

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<GroupKey, Group>> {
        // A poisoned lock only means another thread panicked mid-update; the map is still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an eviction on `node` to its namespace's group there, opening one at `now` if none
    /// is open.
    pub fn record(&self, node: &str, eviction: Eviction, now: Timestamp) {
        let mut groups = self.lock();
        let g = groups
            .entry((eviction.namespace.clone(), node.to_string()))
            .or_insert_with(|| Group {
                opened: now,
                pods: Vec::new(),
            });
        if !g.pods.contains(&eviction) {
            g.pods.push(eviction);
        }
    }

    /// Closes the groups opened at least `window` before `now`, one alert per namespace and node.
    pub fn due(&self, now: Timestamp, window: SignedDuration) -> Vec<Alert> {
        let mut groups = self.lock();
        let closed: Vec<GroupKey> = groups
            .iter()
            .filter(|(_, g)| g.opened + window <= now)
            .map(|(k, _)| k.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|key| {
                let g = groups.remove(&key)?;
                let (ns, node) = key;
                Some(summary(&ns, &node, g, now))
            })
            .collect()
    }
}

fn summary(ns: &str, node: &str, g: Group, now: Timestamp) -> Alert {
    let n = g.pods.len();
    let title = if n == 1 {
        format!("{}/{} evicted", g.pods[0].namespace, g.pods[0].name)
    } else {
        format!("{n} pods evicted")
    };
    let list: Vec<String> = g
        .pods
        .iter()
        .map(|p| {
            let owner = p
                .owner
                .as_deref()
                .map(|o| format!(" ({o})"))
                .unwrap_or_default();
            format!("{}/{}{owner}: {}", p.namespace, p.name, p.message)
        })
        .collect();
    let mut a = Alert::new(
        AlertKey::new(NAME, ns, "Node", node, "Evicted"),
        Severity::Warning,
        title,
        now,
    )
    .message(format!(
        "The kubelet on node {node} evicted {n} pod{} in namespace {ns} to reclaim resources:\n{}",
        if n == 1 { "" } else { "s" },
        list.join("\n")
    ))
    .node(node)
    .field("Pods", n.to_string())
    .one_shot();
    // The owner only says something when every pod shares it.
    if let Some(o) = g.pods[0].owner.clone()
        && g.pods.iter().all(|p| p.owner.as_ref() == Some(&o))
    {
        a.owner = Some(o);
    }
    a.first_seen = g.opened;
    a
}
