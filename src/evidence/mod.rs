//! Evidence: what a responder would look up first, carried by the alert itself.
//!
//! Two parts. What the watched object already says (the container's image, exit code and its
//! meaning, restarts, termination message, how long it ran, its memory limit and request; a
//! rollout's counts; a certificate's issuer) is filled in by the monitor when it builds the
//! alert, so it is in kpulse-state and costs no API call. What needs the API (the object's
//! recent Warning events, the previous container's last log lines, the node's conditions and
//! allocatable memory, a Job's failed pods) is collected when the alert is first sent, within a
//! time budget, best effort, and never stored ([`collect`]). Then [`hints`] turns the evidence
//! into a likely cause and a next step, and [`commands`] into ready-to-run kubectl commands.
//!
//! Every part has a size cap ([`Caps`]); sinks render it each in their own way and the webhook
//! carries it as structured fields.

pub mod collect;
pub mod commands;
pub mod container;
pub mod exit;
pub mod hints;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The evidence of one alert. Empty parts are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// The container the alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Facts about the object that are not a container's: a rollout's ReplicaSets, a Job's
    /// failed pods, a claim's size and class, a certificate's issuer and names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    /// The last lines of the previous container's log, secrets redacted (only when
    /// `evidence.logs.enabled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// The object's recent Warning events, newest first, one per reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventNote>,
    /// The owner chain, nearest first: `ReplicaSet/api-7d9f`, `Deployment/api`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// The node the object runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeNote>,
    /// Likely causes with a next step each, the most likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<Hint>,
    /// kubectl commands to run next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
}

/// A container's last termination or current wait, and its memory settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Container {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// An init container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The kubelet's reason: `OOMKilled`, `Error`, `CrashLoopBackOff`, `ImagePullBackOff`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The last exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What the exit code means: `killed by the kernel for exceeding its memory (OOMKilled, SIGKILL)`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exit_meaning: String,
    /// The signal that ended it, when the exit code is 128 + a signal: `SIGKILL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signal: String,
    pub restarts: i32,
    /// The termination message, or the kubelet's message of a wait (`couldn't find key ...`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// How long the last run lasted, e.g. `3s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ran_for: String,
    /// `resources.limits.memory`; empty when none is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory_limit: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memory_request: String,
}

/// One Warning event about the object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EventNote {
    pub reason: String,
    pub message: String,
    pub count: i32,
    /// When it was last seen (RFC 3339), when the event says.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_seen: String,
}

/// The node an object runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeNote {
    pub name: String,
    /// Conditions that are not as they should be: `Ready=False`, `MemoryPressure=True`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// `status.allocatable.memory`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub allocatable_memory: String,
}

/// A likely cause and what to do about it, one line each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hint {
    pub cause: String,
    pub next: String,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        *self == Evidence::default()
    }

    /// Keeps every part within `caps`: lines and messages cut (with `…`), lists shortened.
    pub fn cap(&mut self, caps: &Caps) {
        if let Some(c) = self.container.as_mut() {
            cut(&mut c.message, caps.text);
            cut(&mut c.image, caps.text);
        }
        for v in self.facts.values_mut() {
            cut(v, caps.text);
        }
        self.events.truncate(caps.events);
        for e in &mut self.events {
            cut(&mut e.message, caps.text);
        }
        // The log keeps its last lines within `log_bytes` (each line cut to `text` first).
        for l in &mut self.log {
            cut(l, caps.text);
        }
        let mut total = 0;
        let keep = self
            .log
            .iter()
            .rev()
            .take_while(|l| {
                total += l.len() + 1;
                total <= caps.log_bytes
            })
            .count();
        self.log.drain(..self.log.len() - keep);
        self.owners.truncate(caps.owners);
        self.hints.truncate(caps.hints);
        self.commands.truncate(caps.commands);
    }
}

/// Size caps on evidence, so no message outgrows its sink's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// A message, fact or log line, in bytes.
    pub text: usize,
    /// The whole log excerpt, in bytes.
    pub log_bytes: usize,
    pub events: usize,
    pub owners: usize,
    pub hints: usize,
    pub commands: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            text: 300,
            log_bytes: 2048,
            events: 5,
            owners: 4,
            hints: 3,
            commands: 4,
        }
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, ending in `…` when cut.
pub fn cut(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_marks_cut_text_on_a_char_boundary() {
        let mut s = "short".to_string();
        cut(&mut s, 10);
        assert_eq!(s, "short");
        let mut s = "ééééé".to_string(); // 10 bytes
        cut(&mut s, 6);
        assert!(s.len() <= 6, "{s}");
        assert_eq!(s, "é…");
    }

    #[test]
    fn caps_bound_every_part() {
        let caps = Caps {
            text: 20,
            log_bytes: 30,
            events: 2,
            owners: 1,
            hints: 1,
            commands: 2,
        };
        let mut e = Evidence {
            container: Some(Container {
                message: "m".repeat(100),
                ..Container::default()
            }),
            log: (0..50)
                .map(|i| format!("line {i:02} {}", "x".repeat(3)))
                .collect(),
            events: vec![EventNote::default(); 5],
            owners: vec!["a".into(), "b".into()],
            hints: vec![Hint::default(); 3],
            commands: vec![String::new(); 5],
            facts: [("k".to_string(), "v".repeat(40))].into(),
            ..Evidence::default()
        };
        e.cap(&caps);
        assert!(e.container.as_ref().unwrap().message.len() <= 20);
        assert!(e.facts["k"].len() <= 20);
        // The newest lines are kept, within 30 bytes with their newlines.
        assert_eq!(e.log, ["line 48 xxx", "line 49 xxx"]);
        assert_eq!(e.events.len(), 2);
        assert_eq!(e.owners, ["a"]);
        assert_eq!(e.hints.len(), 1);
        assert_eq!(e.commands.len(), 2);
    }

    /// Prints the JSON schema docs/webhook.schema.json embeds as `$defs.evidence`:
    /// `cargo test --lib evidence_schema -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn evidence_schema() {
        let schema = schemars::schema_for!(Evidence);
        println!("{}", serde_json::to_string_pretty(&schema).unwrap());
    }
}
