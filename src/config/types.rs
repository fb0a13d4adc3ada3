//! Small value types shared by the configuration model: durations, secrets, one-or-many lists.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the human way: `30s`, `15m`, `1h 30m`, `7d`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub const fn mins(m: u64) -> Self {
        HumanDuration(Duration::from_secs(m * 60))
    }
    pub const fn hours(h: u64) -> Self {
        HumanDuration(Duration::from_secs(h * 3600))
    }
    pub fn get(self) -> Duration {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
    /// As a `jiff::SignedDuration` for timestamp arithmetic.
    pub fn signed(self) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(self.0).unwrap_or(jiff::SignedDuration::MAX)
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {s:?}: {e} (write it like 30s, 15m, 1h or 7d)"
                ))
            })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 30s, 15m, 1h or 7d.",
            "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$"
        })
    }
}

/// A string that may carry a credential: it is never printed by `Debug`, logs or errors.
///
/// `$NAME` references in it are expanded from the configured Secret before it is used.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The value itself, for the one place that must send it (a header, a URL, SMTP AUTH).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// A matcher value written either as one string or as a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OneOrMany(pub Vec<String>);

impl OneOrMany {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }
}

impl Serialize for OneOrMany {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?
        {
            Raw::One(s) => Ok(OneOrMany(vec![s])),
            Raw::Many(v) => Ok(OneOrMany(v)),
        }
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_human_forms() {
        let d: HumanDuration = serde_json::from_str("\"15m\"").unwrap();
        assert_eq!(d, HumanDuration::mins(15));
        let d: HumanDuration = serde_json::from_str("\"1h 30m\"").unwrap();
        assert_eq!(d.get().as_secs(), 5400);
        let e = serde_json::from_str::<HumanDuration>("\"soon\"").unwrap_err();
        assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn secrets_never_debug_print() {
        let s = SecretString::new("xoxb-very-secret");
        assert_eq!(format!("{s:?}"), "\"<redacted>\"");
        assert_eq!(s.expose(), "xoxb-very-secret");
    }
}
