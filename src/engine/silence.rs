//! Silences: matchers that keep alerts from being sent until they expire.
//!
//! A silence has a start, a required end and a comment. Silences come from two places: the
//! configuration (`silences`, for GitOps) and the ConfigMap `kpulse-silences` (`kpulse silence
//! add`, or `POST /silences`), which every replica watches. While a silence is active:
//! - an alert it matches that would be sent is not: it stays active, unsent, and a resolution of
//!   it sends nothing;
//! - an incident already told that grows gets no follow-up.
//!
//! When a silence starts, one notice goes to the channels its alerts go to; when it ends (its
//! time is up, or it was expired or removed), one more, with what it held back, and the alerts it
//! held back that still fire are sent then. Alerts told before the silence started keep their
//! `[RESOLVED]`: a channel that heard of a problem hears that it ended.
//!
//! What each silence held back and whether its notices went out are part of the snapshot, so a
//! restart or a new leader never repeats a notice nor forgets what to release.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::router::Matches;
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::{ConfigSilence, Matcher};

/// Where a silence was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `silences` in the configuration.
    Config,
    /// The ConfigMap `kpulse-silences`.
    Runtime,
}

/// One silence, as `kpulse-silences` stores it (one key per silence, its id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    pub id: String,
    #[serde(rename = "match")]
    pub matcher: Matcher,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
}

impl Silence {
    pub fn active(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// A silence must match something, end after it starts, and say why.
    pub fn check(&self) -> Result<(), String> {
        if is_empty(&self.matcher) {
            return Err("match: a silence needs at least one matcher".into());
        }
        if self.ends_at <= self.starts_at {
            return Err(format!(
                "ends_at {} is not after starts_at {}",
                display_time(self.ends_at),
                display_time(self.starts_at)
            ));
        }
        if self.comment.trim().is_empty() {
            return Err("comment: say why alerts are silenced".into());
        }
        Matches::new(&self.matcher)
            .map(|_| ())
            .map_err(|e| format!("match: {e}"))
    }
}

/// A configured silence, with its times read. Its id is `config-` and a hash of its content,
/// so it keeps its id across reloads while unchanged (an edited one is a new silence).
pub fn from_config(c: &ConfigSilence) -> Result<Silence, String> {
    let time = |field: &str, text: &str| {
        text.trim()
            .parse::<Timestamp>()
            .map_err(|e| format!("{field}: {text:?} is not an RFC 3339 time ({e})"))
    };
    let ends_at = time("ends_at", &c.ends_at)?;
    let starts_at = match &c.starts_at {
        Some(t) => time("starts_at", t)?,
        None => Timestamp::UNIX_EPOCH,
    };
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        serde_json::to_string(c).unwrap_or_default().as_bytes(),
    );
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let silence = Silence {
        id: format!("config-{hash}"),
        matcher: c.matcher.clone(),
        starts_at,
        ends_at,
        comment: c.comment.clone(),
        created_by: "configuration".into(),
    };
    silence.check()?;
    Ok(silence)
}

fn is_empty(m: &Matcher) -> bool {
    m == &Matcher::default()
}

/// `monitor=pod_crashes, namespace=shop|web`: a matcher in one line, for notices and lists.
pub fn describe(m: &Matcher) -> String {
    let value = serde_json::to_value(m).unwrap_or_default();
    let Some(map) = value.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (k, v) in map {
        match v {
            serde_json::Value::Object(labels) => {
                for (l, lv) in labels {
                    parts.push(format!("labels.{l}={}", lv.as_str().unwrap_or_default()));
                }
            }
            serde_json::Value::Array(items) => {
                let items: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                parts.push(format!("{k}={}", items.join("|")));
            }
            serde_json::Value::String(s) => parts.push(format!("{k}={s}")),
            other => parts.push(format!("{k}={other}")),
        }
    }
    parts.join(", ")
}

#[derive(Debug, Clone)]
pub(super) struct Compiled {
    pub silence: Silence,
    pub origin: Origin,
    matches: Matches,
}

impl Compiled {
    pub fn new(silence: Silence, origin: Origin) -> Result<Self, String> {
        silence.check()?;
        let matches = Matches::new(&silence.matcher)?;
        Ok(Compiled {
            silence,
            origin,
            matches,
        })
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        self.matches.matches(alert)
    }
}

/// At most this many held-back keys are kept per silence (the count goes on).
const HELD_KEPT: usize = 1000;

/// What one silence has done so far; part of the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceRecord {
    pub origin: Origin,
    pub comment: String,
    pub matcher: String,
    pub ends_at: Timestamp,
    /// The start notice went out (to `channels`).
    pub started: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Alerts and incident updates it kept from being sent (the first [`HELD_KEPT`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub held: BTreeSet<AlertKey>,
    #[serde(default)]
    pub held_count: u64,
}

impl SilenceRecord {
    pub(super) fn new(s: &Compiled) -> Self {
        SilenceRecord {
            origin: s.origin,
            comment: s.silence.comment.clone(),
            matcher: describe(&s.silence.matcher),
            ends_at: s.silence.ends_at,
            started: false,
            channels: Vec::new(),
            held: BTreeSet::new(),
            held_count: 0,
        }
    }

    /// Records that it held `key` back; false when it already had.
    pub(super) fn hold(&mut self, key: &AlertKey) -> bool {
        if self.held.contains(key) {
            return false;
        }
        self.held_count += 1;
        if self.held.len() < HELD_KEPT {
            self.held.insert(key.clone());
        }
        true
    }
}

/// The notice of a silence starting (`started`) or ending.
pub(super) fn notice(id: &str, record: &SilenceRecord, started: bool, now: Timestamp) -> Alert {
    let (reason, title, message) = if started {
        (
            "Started",
            format!("Silence started: {}", record.comment),
            format!(
                "Alerts matching {} are not sent until {}.",
                record.matcher,
                display_time(record.ends_at)
            ),
        )
    } else {
        let held = match record.held_count {
            0 => "It held nothing back.".to_string(),
            1 => "It held back 1 alert; if it still fires, it is sent now.".to_string(),
            n => format!("It held back {n} alerts; those still firing are sent now."),
        };
        (
            "Ended",
            format!("Silence ended: {}", record.comment),
            format!("Alerts matching {} are sent again. {held}", record.matcher),
        )
    };
    let key = AlertKey::new("silences", "", "Silence", id, reason);
    let mut alert = Alert::new(key, Severity::Info, title, now)
        .message(message)
        .field("Silence", id.to_string())
        .field("Matches", record.matcher.clone())
        .field("Until", display_time(record.ends_at));
    if !started && record.held_count > 0 {
        let shown: Vec<String> = record.held.iter().take(10).map(|k| k.object()).collect();
        let more = record.held_count.saturating_sub(shown.len() as u64);
        let mut list = shown.join(", ");
        if more > 0 {
            list.push_str(&format!(" (+{more} more)"));
        }
        alert = alert.field("Held back", list);
    }
    alert.resolvable = false;
    alert
}

/// The silences in force: the configuration's and the run-time ones.
#[derive(Debug, Clone, Default)]
pub(super) struct Silences {
    pub config: Vec<Compiled>,
    pub runtime: Vec<Compiled>,
    /// The run-time silences have been read at least once: before that, a run-time record
    /// without its silence is not taken for a removed one.
    pub runtime_known: bool,
}

impl Silences {
    pub fn iter(&self) -> impl Iterator<Item = &Compiled> {
        self.config.iter().chain(&self.runtime)
    }

    /// The first silence active at `now` that matches `alert`.
    pub fn matching(&self, alert: &Alert, now: Timestamp) -> Option<&Compiled> {
        self.iter()
            .find(|s| s.silence.active(now) && s.matches(alert))
    }

    pub fn by_id(&self) -> BTreeMap<&str, &Compiled> {
        self.iter().map(|s| (s.silence.id.as_str(), s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(yaml: &str) -> Silence {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_silence_needs_a_matcher_an_end_after_its_start_and_a_comment() {
        let ok = "{id: s1, match: {namespace: shop}, starts_at: '2026-01-01T00:00:00Z', ends_at: '2026-01-01T02:00:00Z', comment: upgrade}";
        assert_eq!(silence(ok).check(), Ok(()));
        let cases = [
            ("match: {}", "needs at least one matcher"),
            ("ends_at: '2026-01-01T00:00:00Z'", "is not after starts_at"),
            ("comment: ' '", "comment: say why"),
            ("match: {namespace: '['}", "match: invalid glob"),
        ];
        for (change, error) in cases {
            let (field, _) = change.split_once(':').unwrap();
            let mut doc: serde_json::Value = serde_saphyr::from_str(ok).unwrap();
            let patch: serde_json::Value =
                serde_saphyr::from_str(&format!("{{{change}}}")).unwrap();
            doc[field] = patch[field].clone();
            let s: Silence = serde_json::from_value(doc).unwrap();
            let err = s.check().unwrap_err();
            assert!(err.contains(error), "{change}: {err}");
        }
    }

    #[test]
    fn matchers_are_described_in_one_line() {
        let m: Matcher = serde_saphyr::from_str(
            "{monitor: pod_crashes, namespace: [shop, web], labels: {team: pay}}",
        )
        .unwrap();
        assert_eq!(
            describe(&m),
            "labels.team=pay, monitor=pod_crashes, namespace=shop|web"
        );
    }
}
