//! Configuration: the model, parsing, secret expansion and validation.
//!
//! [`load`] is the only way from YAML to a [`Config`]: it parses, expands `$NAME` references in
//! the channel and http settings, and validates, returning every problem at once, each with the
//! path of the field it concerns. No error message contains an expanded secret value.

pub mod access;
pub mod chart_schema;
pub mod docs;
pub mod model;
pub mod monitors;
pub mod registry_files;
pub mod secrets;
pub mod types;
mod validate;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use model::*;
pub use monitors::Monitors;
pub use secrets::SecretMap;
pub use types::{HumanDuration, OneOrMany, SecretString};

/// The ConfigMap key that holds the configuration.
pub const CONFIG_KEY: &str = "config.yaml";

/// One problem in a configuration, with the path of the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// e.g. `routing.rules[1].channels[0]`; empty for the document as a whole.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Parses, expands and validates a configuration.
pub fn load(yaml: &str, secrets: &SecretMap) -> Result<Config, ConfigErrors> {
    let raw = parse_yaml(yaml)?;
    let mut errors = structural_errors(&raw);

    // Secret references are checked on the raw text, so a missing key is reported even when the
    // same field has a structural problem.
    let mut expanded = raw.clone();
    let mut secret_errors = Vec::new();
    if let Value::Object(map) = &mut expanded {
        for section in ["channels", "http"] {
            if let Some(v) = map.get_mut(section) {
                secrets::expand_tree(v, secrets, section, &mut secret_errors);
            }
        }
    }
    errors.extend(
        secret_errors
            .into_iter()
            .map(|(p, m)| ConfigError::new(p, m)),
    );
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }

    // Structure is sound: every deserialization below succeeds. Semantic checks run on the raw
    // config (so messages show `$NAME`, not its value); URL checks on the expanded one.
    let unexpanded: Config = from_value(raw).map_err(|e| ConfigErrors(vec![e]))?;
    let config: Config = from_value(expanded).map_err(|_| {
        ConfigErrors(vec![ConfigError::new(
            "channels",
            "a secret value made the configuration invalid (value not shown)",
        )])
    })?;
    let mut errors = validate::semantic(&unexpanded);
    errors.extend(validate::urls(&config));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn parse_yaml(yaml: &str) -> Result<Value, ConfigErrors> {
    if yaml.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_saphyr::from_str(yaml)
        .map_err(|e| ConfigErrors(vec![ConfigError::new("", format!("invalid YAML: {e}"))]))?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(ConfigErrors(vec![ConfigError::new(
            "",
            "the configuration must be a YAML mapping (key: value)",
        )])),
    }
}

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let mut path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // serde reports an unknown field at its parent; name the field itself.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            && !path.ends_with(&format!(".{field}"))
            && path != field
        {
            path = if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
        }
        ConfigError::new(path, message)
    })
}

/// Deserializes each section (each channel, each monitor, each routing rule) on its own, so
/// that one mistake does not hide the next.
fn structural_errors(raw: &Value) -> Vec<ConfigError> {
    let Value::Object(top) = raw else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    let mut check = |value: Value, fix: &dyn Fn(String) -> String| {
        if let Err(e) = from_value::<Config>(value) {
            errors.push(ConfigError::new(fix(e.path), e.message));
        }
    };
    let same = |p: String| p;
    for (key, value) in top {
        match (key.as_str(), value) {
            ("channels" | "monitors", Value::Object(entries)) => {
                for (name, v) in entries {
                    check(nest(&[key, name], v.clone()), &same);
                }
            }
            ("routing", Value::Object(entries)) => {
                for (name, v) in entries {
                    match (name.as_str(), v) {
                        ("rules", Value::Array(rules)) => {
                            for (i, rule) in rules.iter().enumerate() {
                                let value =
                                    nest(&["routing", "rules"], Value::Array(vec![rule.clone()]));
                                check(value, &|p: String| {
                                    p.replacen(
                                        "routing.rules[0]",
                                        &format!("routing.rules[{i}]"),
                                        1,
                                    )
                                });
                            }
                        }
                        _ => check(nest(&["routing", name], v.clone()), &same),
                    }
                }
            }
            _ => check(nest(&[key], value.clone()), &same),
        }
    }
    errors
}

fn nest(path: &[&str], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |acc, key| {
        let mut m = Map::new();
        m.insert((*key).to_string(), acc);
        Value::Object(m)
    })
}

/// The JSON schema of the configuration (draft 2020-12, as schemars writes it).
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is always valid JSON")
}

#[cfg(test)]
mod tests;
