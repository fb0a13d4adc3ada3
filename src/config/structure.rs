//! Structural checks: field names, types, enum values and durations, every one reported.
//!
//! serde stops at the first mistake, so each problem is taken out of a copy of the document and
//! the rest deserialized again, until it deserializes. Two kinds of unit need more care:
//!
//! - a channel is deserialized as its own `type`, so a mistake inside it keeps its full path
//!   (`channels.mail.smtp.tls`; serde's internally tagged enums lose it), and a faulty channel is
//!   replaced by a stand-in `log` channel, so routes naming it still resolve;
//! - a routing rule has a required field, so a faulty rule is replaced by a rule without channels;
//!   a faulty severity rule likewise by a stand-in.
//!
//! The repaired document always deserializes into a [`Config`] for the semantic checks. Where
//! something was taken out, defaults stand in, and a cross-field check there would only report a
//! consequence; those places are listed in [`Structure::broken`] so their semantic errors are
//! left out.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    AlertmanagerChannel, Config, ConfigError, ConfigSilence, DiscordChannel, EmailChannel,
    GoogleChatChannel, LogChannel, OpsgenieChannel, PagerDutyChannel, Rule, SeverityRule,
    SlackChannel, TeamsChannel, WebhookChannel,
};

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Renders `a.b[0].c`.
pub fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// A deserialization failure, with where it happened.
#[derive(Debug, Clone)]
pub struct Failure {
    pub path: Vec<Segment>,
    pub message: String,
    /// An unknown key: taking it out changes nothing around it.
    pub unknown_field: bool,
}

impl Failure {
    /// The same failure seen from `base`.
    fn under(mut self, base: &[Segment]) -> Self {
        let mut path = base.to_vec();
        path.append(&mut self.path);
        self.path = path;
        self
    }

    pub fn error(&self) -> ConfigError {
        ConfigError::new(render(&self.path), self.message.clone())
    }

    /// The field named by serde's "missing field `x`", as a path.
    fn missing_field(&self) -> Option<Vec<Segment>> {
        let name = self
            .message
            .strip_prefix("missing field `")?
            .split('`')
            .next()?;
        let mut path = self.path.clone();
        path.push(Segment::Key(name.to_string()));
        Some(path)
    }
}

/// Deserializes `value`, telling where it failed.
pub fn deserialize<T: DeserializeOwned>(value: Value) -> Result<T, Failure> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path: Vec<Segment> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let message = e.into_inner().to_string();
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next());
        // serde reports an unknown field at its parent; name the field itself.
        if let Some(field) = unknown
            && path.last() != Some(&Segment::Key(field.to_string()))
        {
            path.push(Segment::Key(field.to_string()));
        }
        Failure {
            path,
            unknown_field: unknown.is_some(),
            message,
        }
    })
}

/// The outcome of the structural checks.
#[derive(Debug)]
pub struct Structure {
    /// The document with every mistake taken out: it deserializes into a [`Config`].
    pub repaired: Value,
    pub errors: Vec<ConfigError>,
    /// Where something was taken out or stood in for (see the module documentation).
    pub broken: Vec<String>,
}

impl Structure {
    /// Whether `path` lies in a place where something was taken out.
    pub fn is_broken(&self, path: &str) -> bool {
        self.broken.iter().any(|b| {
            path.strip_prefix(b.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// Checks the structure of a parsed document (a mapping).
pub fn check(mut document: Value) -> Structure {
    let mut s = Structure {
        repaired: Value::Null,
        errors: Vec::new(),
        broken: Vec::new(),
    };
    if let Some(Value::Object(channels)) = document.get_mut("channels") {
        for (name, channel) in channels.iter_mut() {
            let base = [Segment::Key("channels".into()), Segment::Key(name.clone())];
            if s.peel(channel, &base, check_channel) {
                *channel = json!({"type": "log"});
                s.broken.push(render(&base));
            }
        }
    }
    if let Some(Value::Array(rules)) = document.get_mut("routing").and_then(|r| r.get_mut("rules"))
    {
        let check_rule = |v: &Value| deserialize::<Rule>(v.clone()).map(drop);
        for (i, rule) in rules.iter_mut().enumerate() {
            let base = [
                Segment::Key("routing".into()),
                Segment::Key("rules".into()),
                Segment::Index(i),
            ];
            if s.peel(rule, &base, check_rule) && check_rule(rule).is_err() {
                *rule = json!({"channels": []});
                s.broken.push(render(&base));
            }
        }
    }
    if let Some(Value::Array(rules)) = document.get_mut("severity_rules") {
        let check_rule = |v: &Value| deserialize::<SeverityRule>(v.clone()).map(drop);
        for (i, rule) in rules.iter_mut().enumerate() {
            let base = [Segment::Key("severity_rules".into()), Segment::Index(i)];
            // The stand-in only serves the semantic checks: a configuration with structural
            // errors is never applied.
            if s.peel(rule, &base, check_rule) && check_rule(rule).is_err() {
                *rule = json!({"severity": "warning"});
                s.broken.push(render(&base));
            }
        }
    }
    if let Some(Value::Array(silences)) = document.get_mut("silences") {
        let check_silence = |v: &Value| deserialize::<ConfigSilence>(v.clone()).map(drop);
        for (i, silence) in silences.iter_mut().enumerate() {
            let base = [Segment::Key("silences".into()), Segment::Index(i)];
            if s.peel(silence, &base, check_silence) && check_silence(silence).is_err() {
                *silence = json!({"match": {"namespace": "-"}, "ends_at": "2000-01-01T00:00:00Z", "comment": "-"});
                s.broken.push(render(&base));
            }
        }
    }
    s.peel(&mut document, &[], |v| {
        deserialize::<Config>(v.clone()).map(drop)
    });
    s.repaired = document;
    s
}

impl Structure {
    /// Takes every mistake out of `unit` (at `base` in the document), recording each; returns
    /// whether there was one.
    fn peel(
        &mut self,
        unit: &mut Value,
        base: &[Segment],
        check: impl Fn(&Value) -> Result<(), Failure>,
    ) -> bool {
        let found = self.errors.len();
        let mut removed: Vec<Vec<Segment>> = Vec::new();
        // Each round takes a key out, so the rounds end.
        while let Err(failure) = check(unit) {
            let missing = failure.missing_field();
            // Missing because a faulty value was taken out: already reported.
            if missing.as_ref().is_none_or(|m| !removed.contains(m)) {
                self.errors.push(failure.clone().under(base).error());
            }
            let taken = match missing {
                Some(_) => None,
                None => take_out(unit, &failure.path),
            };
            let Some(taken) = taken else {
                break;
            };
            // Defaults now stand in for the value taken out, so cross-field checks of the
            // object around it could only report a consequence. A top-level key stands alone.
            if !failure.unknown_field {
                let around = match base.is_empty() {
                    true => taken.len().saturating_sub(1).max(1),
                    false => taken.len() - 1,
                };
                let mut place = base.to_vec();
                place.extend_from_slice(&taken[..around]);
                self.broken.push(render(&place));
            }
            removed.push(taken);
        }
        self.errors.len() > found
    }
}

/// Removes the deepest mapping key on `path` from `value`; returns the path of what it removed.
fn take_out(value: &mut Value, path: &[Segment]) -> Option<Vec<Segment>> {
    // The deepest prefix of `path` that ends with a key present in a mapping.
    let mut deepest = None;
    let mut at = &*value;
    for (i, segment) in path.iter().enumerate() {
        let next = match (segment, at) {
            (Segment::Key(k), Value::Object(m)) => {
                let child = m.get(k);
                if child.is_some() {
                    deepest = Some(i + 1);
                }
                child
            }
            (Segment::Index(n), Value::Array(a)) => a.get(*n),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => break,
        }
    }
    let end = deepest?;
    let mut parent = value;
    for segment in &path[..end - 1] {
        parent = match segment {
            Segment::Key(k) => parent.get_mut(k.as_str())?,
            Segment::Index(n) => parent.get_mut(*n)?,
        };
    }
    match (&path[end - 1], parent) {
        (Segment::Key(k), Value::Object(m)) => m.remove(k).map(|_| path[..end].to_vec()),
        _ => None,
    }
}

/// A channel, deserialized as the settings of its `type` so errors keep their path inside it.
fn check_channel(channel: &Value) -> Result<(), Failure> {
    let fields = match (channel, channel.get("type")) {
        (Value::Object(fields), Some(Value::String(kind))) => {
            let mut fields = fields.clone();
            fields.remove("type");
            Some((kind.as_str(), Value::Object(fields)))
        }
        _ => None,
    };
    let Some((kind, fields)) = fields else {
        return deserialize::<super::Channel>(channel.clone()).map(drop);
    };
    match kind {
        "slack" => deserialize::<SlackChannel>(fields).map(drop),
        "email" => deserialize::<EmailChannel>(fields).map(drop),
        "webhook" => deserialize::<WebhookChannel>(fields).map(drop),
        "teams" => deserialize::<TeamsChannel>(fields).map(drop),
        "pagerduty" => deserialize::<PagerDutyChannel>(fields).map(drop),
        "opsgenie" => deserialize::<OpsgenieChannel>(fields).map(drop),
        "discord" => deserialize::<DiscordChannel>(fields).map(drop),
        "googlechat" => deserialize::<GoogleChatChannel>(fields).map(drop),
        "alertmanager" => deserialize::<AlertmanagerChannel>(fields).map(drop),
        "log" => deserialize::<LogChannel>(fields).map(drop),
        // An unknown type: serde names the variants it knows.
        _ => deserialize::<super::Channel>(channel.clone())
            .map(drop)
            .map_err(|mut f| {
                if f.path.is_empty() {
                    f.path.push(Segment::Key("type".into()));
                }
                f
            }),
    }
}

/// Every channel `type`, as the configuration schema lists them (for tests).
#[cfg(test)]
pub fn channel_types() -> Vec<String> {
    let schema = super::json_schema();
    let variants = schema["$defs"]["Channel"]["oneOf"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    variants
        .iter()
        .filter_map(|v| v["properties"]["type"]["const"].as_str().map(String::from))
        .collect()
}
