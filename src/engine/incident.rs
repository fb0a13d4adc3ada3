//! Incidents: the pod alerts of one workload, told as one.
//!
//! A pod alert whose pod has an owning workload (`alert.owner`, e.g. `Deployment/api`) does not
//! go out on its own: it joins the open incident of that workload, or opens one. `group_wait`
//! after the incident opened, one message goes out for everything that joined by then: the
//! number of pods, their nodes and reasons. An incident of a single alert is sent as that alert,
//! unchanged. Later members join silently; at most once per `group_interval`, when more pods are
//! affected or the severity rose, an update is sent. When every member condition has cleared,
//! one `[RESOLVED]` goes out. Point-in-time members (a crash notice) are counted in the incident,
//! never sent on their own: the crash notice and the crash loop of one container are one thing.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKey, Severity};

/// The engine's share of `incidents` in the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentSettings {
    pub enabled: bool,
    pub group_wait: jiff::SignedDuration,
    pub group_interval: jiff::SignedDuration,
}

/// The group a pod alert opens or joins (`namespace/Kind/name` of its workload).
pub fn group_of(alert: &Alert) -> Option<String> {
    let owner = alert.owner.as_deref()?;
    (alert.key.kind == "Pod").then(|| format!("{}/{owner}", alert.key.namespace))
}

/// Workload monitors whose alerts say what the workload's pods already say: a Deployment short
/// of replicas, or stuck in its rollout, because its pods crash is the same incident.
pub const FOLDED: &[&str] = &[
    "replicas_unavailable",
    "rollout_stuck",
    "daemonset_unscheduled",
];

/// The group a workload's own alert folds into when its pods are already an incident.
pub fn fold_of(alert: &Alert) -> Option<String> {
    let key = &alert.key;
    (FOLDED.contains(&key.monitor.as_str())
        && matches!(
            key.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet"
        ))
    .then(|| format!("{}/{}/{}", key.namespace, key.kind, key.name))
}

/// One open incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The first alert that joined: its monitor, reason, labels and detail route and describe
    /// the incident.
    pub first: Alert,
    pub opened_at: Timestamp,
    /// Resolvable members still firing (they are in the active set, never sent on their own).
    pub members: BTreeSet<AlertKey>,
    /// Every pod, node and reason that joined, for the message.
    pub pods: BTreeSet<String>,
    pub nodes: BTreeSet<String>,
    pub reasons: BTreeSet<String>,
    /// Point-in-time alerts folded in (crash notices).
    pub notices: u32,
    /// The worst severity that joined.
    pub severity: Severity,
    /// What was told, once the incident was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told: Option<Told>,
}

/// The message of an incident as last sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Told {
    /// The key of the incident's own alert, in the active set.
    pub key: AlertKey,
    pub at: Timestamp,
    pub pods: usize,
    pub severity: Severity,
}

impl Incident {
    pub fn open(first: &Alert, now: Timestamp) -> Self {
        Incident {
            first: first.clone(),
            opened_at: now,
            members: BTreeSet::new(),
            pods: BTreeSet::new(),
            nodes: BTreeSet::new(),
            reasons: BTreeSet::new(),
            notices: 0,
            severity: first.severity,
            told: None,
        }
    }

    /// Counts `alert` in; a resolvable one becomes a member until it clears.
    pub fn join(&mut self, alert: &Alert) {
        if alert.key.kind == "Pod" {
            self.pods.insert(alert.key.name.clone());
            if let Some(node) = &alert.node {
                self.nodes.insert(node.clone());
            }
            self.reasons.insert(alert.key.reason.clone());
        }
        self.severity = self.severity.max(alert.severity);
        if alert.resolvable {
            self.members.insert(alert.key.clone());
        } else {
            self.notices += 1;
        }
    }

    /// Whether it is one alert only: then that alert is sent as it is.
    pub fn single(&self) -> bool {
        self.members.len() + self.notices as usize == 1
    }

    /// Whether an update is worth sending: more pods, or worse.
    pub fn grew(&self) -> bool {
        self.told
            .as_ref()
            .is_some_and(|t| self.pods.len() > t.pods || self.severity > t.severity)
    }

    /// The incident as one alert.
    pub fn alert(&self) -> Alert {
        let first = &self.first;
        let owner = first.owner.clone().unwrap_or_default();
        let (kind, name) = owner
            .split_once('/')
            .unwrap_or(("Workload", owner.as_str()));
        let key = AlertKey::new(
            &first.key.monitor,
            &first.key.namespace,
            kind,
            name,
            &first.key.reason,
        );
        let pods = self.pods.len();
        let nodes = self.nodes.len();
        let reasons: Vec<&str> = self.reasons.iter().map(String::as_str).collect();
        let title = format!(
            "{kind} {name}: {pods} {} {} on {nodes} {}",
            plural(pods, "pod", "pods"),
            reasons.join(", "),
            plural(nodes, "node", "nodes"),
        );
        let message = format!(
            "{pods} {} of {kind} {name} report {}. The first: {}.",
            plural(pods, "pod", "pods"),
            reasons.join(", "),
            first.title
        );
        let mut alert = Alert::new(key, self.severity, title, first.first_seen)
            .message(message)
            .labels(first.labels.clone())
            .owner(owner.clone())
            .field("Pods", listed(&self.pods))
            .field("Reasons", reasons.join(", "));
        if !self.nodes.is_empty() {
            alert = alert.field("Nodes", listed(&self.nodes));
        }
        if self.notices > 0 {
            alert = alert.field("Notices", self.notices.to_string());
        }
        alert.incident = Some(crate::alert::IncidentMembers {
            workload: owner.clone(),
            pods: self
                .pods
                .iter()
                .take(crate::alert::IncidentMembers::LISTED)
                .cloned()
                .collect(),
            nodes: self.nodes.iter().cloned().collect(),
            reasons: self.reasons.iter().cloned().collect(),
            members: self.members.iter().map(ToString::to_string).collect(),
            notices: self.notices,
            pod_count: self.pods.len(),
        });
        alert.resolvable = !self.members.is_empty();
        alert
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// Up to ten names, then how many more.
fn listed(names: &BTreeSet<String>) -> String {
    const SHOWN: usize = 10;
    let shown: Vec<&str> = names.iter().take(SHOWN).map(String::as_str).collect();
    match names.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{} (+{more} more)", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, reason: &str, resolvable: bool) -> Alert {
        let key = AlertKey::new("pod_crashes", "shop", "Pod", name, reason);
        let mut a = Alert::new(
            key,
            Severity::Warning,
            format!("{name} {reason}"),
            Timestamp::UNIX_EPOCH,
        )
        .owner("Deployment/api")
        .node(node);
        a.resolvable = resolvable;
        a
    }

    #[test]
    fn an_incident_counts_pods_nodes_and_reasons() {
        let first = pod("api-1", "n1", "CrashLoopBackOff", true);
        let mut i = Incident::open(&first, Timestamp::UNIX_EPOCH);
        i.join(&first);
        assert!(i.single());
        i.join(&pod("api-1", "n1", "Error", false));
        for n in 2..=12 {
            i.join(&pod(
                &format!("api-{n:02}"),
                &format!("n{}", n % 3),
                "CrashLoopBackOff",
                true,
            ));
        }
        let a = i.alert();
        assert_eq!(
            a.key,
            AlertKey::new(
                "pod_crashes",
                "shop",
                "Deployment",
                "api",
                "CrashLoopBackOff"
            )
        );
        assert_eq!(
            a.title,
            "Deployment api: 12 pods CrashLoopBackOff, Error on 3 nodes"
        );
        assert_eq!(
            a.fields["Pods"],
            "api-02, api-03, api-04, api-05, api-06, api-07, api-08, api-09, api-1, api-10 (+2 more)"
        );
        assert_eq!(a.fields["Notices"], "1");
        assert!(a.resolvable);
        // Programs get every member (the webhook payload's `incident`).
        let m = a.incident.as_ref().unwrap();
        assert_eq!(m.workload, "Deployment/api");
        assert_eq!((m.pods.len(), m.pod_count, m.notices), (12, 12, 1));
        assert_eq!(m.members.len(), 12);
        assert!(
            m.members
                .contains(&"pod_crashes/shop/Pod/api-1/CrashLoopBackOff".to_string())
        );
        assert_eq!(m.nodes, vec!["n0", "n1", "n2"]);
        assert_eq!(group_of(&first).as_deref(), Some("shop/Deployment/api"));
        let mut bare = first.clone();
        bare.owner = None;
        assert_eq!(
            group_of(&bare),
            None,
            "a pod without an owner is its own alert"
        );
    }
}
