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
mod structure;
pub mod types;
mod validate;

use std::fmt;

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
    load_with(yaml, Some(secrets))
}

/// Parses and validates a configuration without its secret values (`kpulse check-config` and
/// `route-test` without `--secrets`): `$NAME` references are left as they are and not checked,
/// nor are the URLs that hold one.
pub fn load_without_secrets(yaml: &str) -> Result<Config, ConfigErrors> {
    load_with(yaml, None)
}

/// Every check in one pass: structure (each mistake taken out so the next one shows), secret
/// references, then the semantic and URL checks on what remains, leaving out what would only
/// repeat a structural problem.
fn load_with(yaml: &str, secrets: Option<&SecretMap>) -> Result<Config, ConfigErrors> {
    let raw = parse_yaml(yaml)?;
    let structure = structure::check(raw.clone());
    let mut errors = structure.errors.clone();

    // References are checked on the raw text, so a missing key is reported even where the same
    // field has a structural problem. Without secrets, every reference is "unresolved".
    let empty = SecretMap::new();
    let mut raw = raw;
    let references = expand_secrets(&mut raw, secrets.unwrap_or(&empty));
    errors.extend(
        references
            .iter()
            .filter(|(_, e)| secrets.is_some() || *e == secrets::ExpandError::Unterminated)
            .map(|(path, e)| ConfigError::new(path, e.to_string())),
    );

    // Semantic checks run on the unexpanded configuration (messages show `$NAME`, not its
    // value); URL checks on the expanded one, except where a reference did not expand.
    let mut expanded = structure.repaired.clone();
    expand_secrets(&mut expanded, secrets.unwrap_or(&empty));
    let parsed = structure::deserialize::<Config>(structure.repaired.clone()).and_then(|u| {
        structure::deserialize::<Config>(expanded)
            .map(|e| (u, e))
            .map_err(|mut f| {
                f.message = "a secret value made it invalid (value not shown)".into();
                f
            })
    });
    let (unexpanded, config) = match parsed {
        Ok(both) => both,
        // A gap in the structural checks: reported, not hidden.
        Err(failure) => {
            errors.push(failure.error());
            return Err(ConfigErrors(errors));
        }
    };
    let unexpanded_at = |path: &str| references.iter().any(|(p, _)| p == path);
    errors.extend(
        validate::semantic(&unexpanded)
            .into_iter()
            .chain(validate::urls(&config))
            .filter(|e| !structure.is_broken(&e.path) && !unexpanded_at(&e.path)),
    );
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Expands `$NAME` references in the sections that may hold them; returns the problems.
fn expand_secrets(
    document: &mut Value,
    secrets: &SecretMap,
) -> Vec<(String, secrets::ExpandError)> {
    let mut problems = Vec::new();
    if let Value::Object(map) = document {
        for section in ["channels", "http"] {
            if let Some(v) = map.get_mut(section) {
                secrets::expand_tree(v, secrets, section, &mut problems);
            }
        }
    }
    problems
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

/// The JSON schema of the configuration (draft 2020-12, as schemars writes it).
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is always valid JSON")
}

#[cfg(test)]
mod tests;
