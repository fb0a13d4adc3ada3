//! `$NAME` / `${NAME}` expansion from the Secret the chart gives kpulse (`secrets` or `existingSecret`).
//!
//! Values come only from the given map, never from the process environment. `$$` writes a
//! literal `$`; a `$` not followed by a name is kept as it is.

use std::collections::BTreeMap;

use serde_json::Value;

/// Secret key → value, as read from the referenced Kubernetes Secret.
pub type SecretMap = BTreeMap<String, String>;

/// A problem found while expanding one string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `$NAME` has no key in the Secret.
    Unresolved(String),
    /// `${` without a closing `}`.
    Unterminated,
}

/// Expands every reference in `s`. Returns all problems, not just the first.
pub fn expand(s: &str, secrets: &SecretMap) -> Result<String, Vec<ExpandError>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    let name = &braced[..end];
                    push_value(name, secrets, &mut out, &mut errors);
                    rest = &braced[end + 1..];
                }
                None => {
                    errors.push(ExpandError::Unterminated);
                    rest = "";
                }
            }
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
            } else {
                push_value(&after[..len], secrets, &mut out, &mut errors);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Whether `s` contains a `$NAME` reference (so its expanded value must never be shown).
pub fn has_reference(s: &str) -> bool {
    let empty = SecretMap::new();
    expand(s, &empty).is_err()
}

fn name_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

fn push_value(name: &str, secrets: &SecretMap, out: &mut String, errors: &mut Vec<ExpandError>) {
    match secrets.get(name) {
        Some(v) => out.push_str(v),
        None => errors.push(ExpandError::Unresolved(name.to_string())),
    }
}

/// Expands every string below `value` in place; problems are reported with their path. A string
/// with a problem is left as it is.
pub fn expand_tree(
    value: &mut Value,
    secrets: &SecretMap,
    path: &str,
    errors: &mut Vec<(String, ExpandError)>,
) {
    match value {
        Value::String(s) => match expand(s, secrets) {
            Ok(expanded) => *s = expanded,
            Err(problems) => errors.extend(problems.into_iter().map(|p| (path.to_string(), p))),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, secrets, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_tree(v, secrets, &child, errors);
            }
        }
        _ => {}
    }
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unresolved(name) => write!(
                f,
                "unresolved secret reference ${name}: the Secret has no key {name:?}"
            ),
            ExpandError::Unterminated => {
                f.write_str("unterminated ${...} reference (write $$ for a literal $)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> SecretMap {
        [("TOKEN", "s3cr3t"), ("HOST", "hooks.example.com")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_both_forms_and_escapes() {
        let cases = [
            ("Bearer $TOKEN", "Bearer s3cr3t"),
            ("https://${HOST}/x", "https://hooks.example.com/x"),
            ("cost $$5", "cost $5"),
            ("$$TOKEN", "$TOKEN"),
            ("price $5 and $ alone", "price $5 and $ alone"),
            ("${TOKEN}${TOKEN}", "s3cr3ts3cr3t"),
            ("no refs", "no refs"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &secrets()).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn reports_every_unresolved_name() {
        let err = expand("$MISSING and ${ALSO_MISSING} and $TOKEN", &secrets()).unwrap_err();
        assert_eq!(
            err,
            vec![
                ExpandError::Unresolved("MISSING".into()),
                ExpandError::Unresolved("ALSO_MISSING".into())
            ]
        );
        assert_eq!(
            expand("${TOKEN", &secrets()).unwrap_err(),
            vec![ExpandError::Unterminated]
        );
    }

    #[test]
    fn never_reads_the_process_environment() {
        // PATH is set in every test process; it must not leak into a config.
        assert_eq!(
            expand("$PATH", &secrets()).unwrap_err(),
            vec![ExpandError::Unresolved("PATH".into())]
        );
    }
}
