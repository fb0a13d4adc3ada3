//! The alert model: what a monitor reports and what a sink renders.

use crate::evidence::Evidence;
use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A timestamp as kpulse shows it, everywhere one reaches a person or a receiver: RFC 3339 in
/// UTC with whole seconds, e.g. `2026-12-02T18:35:06Z`. Fractions of a second are cut, never
/// rounded up, so a "since" is never later than the moment it names.
pub fn display_time(t: Timestamp) -> String {
    format!("{t:.0}")
}

/// How urgent an alert is. Ordered: `Info < Warning < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?} (expected info, warning or critical)"
            )),
        }
    }
}

/// The identity of an alert: the same on the firing and the resolved side, and the dedupe key.
///
/// `namespace` is empty for cluster-scoped objects (nodes).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct AlertKey {
    pub monitor: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

impl AlertKey {
    pub fn new(
        monitor: impl Into<String>,
        namespace: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        AlertKey {
            monitor: monitor.into(),
            namespace: namespace.into(),
            kind: kind.into(),
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// `namespace/kind/name` (or `kind/name` when cluster-scoped), as shown in messages.
    pub fn object(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind.to_lowercase(), self.name)
        } else {
            format!(
                "{}/{}/{}",
                self.namespace,
                self.kind.to_lowercase(),
                self.name
            )
        }
    }
}

impl fmt::Display for AlertKey {
    /// A stable string form, used as PagerDuty `dedup_key`, Opsgenie alias and in `/status`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.monitor, self.namespace, self.kind, self.name, self.reason
        )
    }
}

/// One alert as a monitor reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub key: AlertKey,
    pub severity: Severity,
    /// One line, in plain words: `api-7d9f/server OOMKilled`.
    pub title: String,
    /// A sentence or two with the detail a responder needs.
    pub message: String,
    /// Labels of the object (used by routing rules and shown by some sinks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The owning workload, e.g. `Deployment/api`, so N crashing replicas read as one incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When the condition was first observed (not when kpulse was started).
    pub first_seen: Timestamp,
    /// Extra facts shown as a list: exit code, previous state, event count, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Whether this alert is a condition that later clears (`[RESOLVED]`), or a point-in-time fact.
    pub resolvable: bool,
    /// What the alert carries to explain itself: the monitor's own evidence, completed from
    /// the API when the alert is sent (see [`crate::evidence`]).
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
    /// For the message of an incident: the workload and every member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentMembers>,
}

/// The members of an incident, as its message carries them (the webhook payload's `incident`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentMembers {
    /// `Kind/name` of the workload.
    pub workload: String,
    /// The affected pods, nodes and reasons (at most [`IncidentMembers::LISTED`] pods).
    pub pods: Vec<String>,
    pub nodes: Vec<String>,
    pub reasons: Vec<String>,
    /// Keys of the member alerts still firing.
    pub members: Vec<String>,
    /// Point-in-time notices (crash notices) counted in it.
    pub notices: u32,
    /// How many pods in all (beyond the ones listed).
    pub pod_count: usize,
}

impl IncidentMembers {
    pub const LISTED: usize = 500;
}

impl Alert {
    /// A resolvable alert with empty detail; monitors fill in the rest.
    pub fn new(
        key: AlertKey,
        severity: Severity,
        title: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Alert {
            key,
            severity,
            title: title.into(),
            message: String::new(),
            labels: BTreeMap::new(),
            owner: None,
            node: None,
            first_seen: now,
            fields: BTreeMap::new(),
            resolvable: true,
            evidence: Evidence::default(),
            incident: None,
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn one_shot(mut self) -> Self {
        self.resolvable = false;
        self
    }

    pub fn field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }
}

/// What a monitor found for one object in one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub alert: Alert,
    /// The condition is clearing but not yet for long enough: the engine keeps an active alert
    /// but never starts one from a holding finding.
    pub hold_only: bool,
}

impl Finding {
    pub fn firing(alert: Alert) -> Self {
        Finding {
            alert,
            hold_only: false,
        }
    }

    pub fn holding(alert: Alert) -> Self {
        Finding {
            alert,
            hold_only: true,
        }
    }
}

/// Whether a notification reports a condition starting or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert with its state at the moment the engine decided to send it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub state: State,
    pub alert: Alert,
    /// When the engine decided: the firing time, or the resolution time.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_renders_object_and_stable_string() {
        let k = AlertKey::new("pod_crashes", "checkout", "Pod", "api-7d9f", "OOMKilled");
        assert_eq!(k.object(), "checkout/pod/api-7d9f");
        assert_eq!(k.to_string(), "pod_crashes/checkout/Pod/api-7d9f/OOMKilled");
        let node = AlertKey::new("node_conditions", "", "Node", "n1", "NotReady");
        assert_eq!(node.object(), "node/n1");
    }

    #[test]
    fn timestamps_are_shown_in_utc_with_whole_seconds() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            display_time(t("2026-12-02T18:35:06.999999999Z")),
            "2026-12-02T18:35:06Z"
        );
        assert_eq!(
            display_time(t("2026-12-02T18:35:06Z")),
            "2026-12-02T18:35:06Z"
        );
        assert_eq!(
            display_time(t("2026-12-02T20:35:06.5+02:00")),
            "2026-12-02T18:35:06Z"
        );
        assert_eq!(display_time(Timestamp::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!("critical".parse::<Severity>(), Ok(Severity::Critical));
        assert!("fatal".parse::<Severity>().unwrap_err().contains("fatal"));
    }
}
