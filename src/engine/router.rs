//! Routing: the first rule whose matchers all match gives the channels; otherwise the default.
//! Severity rules use the same matchers: the first that matches sets the severity.

use globset::{Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use regex::Regex;

use crate::alert::{Alert, Severity};
use crate::config::{Matcher, Routing, SeverityRule};

/// Where an alert goes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channels: Vec<String>,
    /// Index of the matching rule in `routing.rules`; `None` for `routing.default`.
    pub rule: Option<usize>,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    monitors: Vec<String>,
    severities: Vec<Severity>,
    namespaces: Option<GlobSet>,
    namespace_regex: Option<Regex>,
    kinds: Vec<String>,
    reasons: Vec<String>,
    owner_kinds: Vec<String>,
    labels: Vec<(String, GlobMatcher)>,
    channels: Vec<String>,
}

/// Compiled routing rules.
#[derive(Debug, Clone, Default)]
pub struct Router {
    rules: Vec<CompiledRule>,
    default: Vec<String>,
}

/// A routing or severity rule that could not be compiled (validation reports these first, with
/// paths).
#[derive(Debug, thiserror::Error)]
#[error("{section}[{rule}].match: {message}")]
pub struct RouterError {
    /// `routing.rules` or `severity_rules`.
    pub section: &'static str,
    pub rule: usize,
    pub message: String,
}

impl Router {
    pub fn new(routing: &Routing) -> Result<Self, RouterError> {
        let rules = routing
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                compile(&r.matcher, r.channels.clone()).map_err(|message| RouterError {
                    section: "routing.rules",
                    rule: i,
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Router {
            rules,
            default: routing.default.clone(),
        })
    }

    pub fn route(&self, alert: &Alert) -> Route {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(alert) {
                return Route {
                    channels: rule.channels.clone(),
                    rule: Some(i),
                };
            }
        }
        Route {
            channels: self.default.clone(),
            rule: None,
        }
    }
}

/// Compiled `severity_rules`.
#[derive(Debug, Clone, Default)]
pub struct SeverityRules {
    rules: Vec<(CompiledRule, Severity)>,
}

impl SeverityRules {
    pub fn new(rules: &[SeverityRule]) -> Result<Self, RouterError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                compile(&r.matcher, Vec::new())
                    .map(|c| (c, r.severity))
                    .map_err(|message| RouterError {
                        section: "severity_rules",
                        rule: i,
                        message,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(SeverityRules { rules })
    }

    /// Sets the severity of the first matching rule; returns that rule's index.
    pub fn apply(&self, alert: &mut Alert) -> Option<usize> {
        let (i, severity) = self
            .rules
            .iter()
            .enumerate()
            .find_map(|(i, (rule, severity))| rule.matches(alert).then_some((i, *severity)))?;
        alert.severity = severity;
        Some(i)
    }
}

/// One compiled `match`, for the engine's other rules (inhibition).
#[derive(Debug, Clone)]
pub struct Matches(CompiledRule);

impl Matches {
    pub fn new(m: &Matcher) -> Result<Self, String> {
        compile(m, Vec::new()).map(Matches)
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        self.0.matches(alert)
    }
}

fn compile(m: &Matcher, channels: Vec<String>) -> Result<CompiledRule, String> {
    let namespaces = if m.namespace.is_empty() {
        None
    } else {
        let mut b = GlobSetBuilder::new();
        for p in m.namespace.iter() {
            b.add(Glob::new(p).map_err(|e| format!("invalid glob {p:?}: {}", e.kind()))?);
        }
        Some(b.build().map_err(|e| e.to_string())?)
    };
    let namespace_regex = m
        .namespace_regex
        .as_deref()
        .map(|r| {
            Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| format!("invalid regular expression: {e}"))
        })
        .transpose()?;
    let labels = m
        .labels
        .iter()
        .map(|(k, v)| {
            Glob::new(v)
                .map(|g| (k.clone(), g.compile_matcher()))
                .map_err(|e| format!("invalid glob {v:?}: {}", e.kind()))
        })
        .collect::<Result<_, _>>()?;
    Ok(CompiledRule {
        monitors: m.monitor.0.clone(),
        severities: m.severity.clone(),
        namespaces,
        namespace_regex,
        kinds: m.kind.iter().map(|k| k.to_lowercase()).collect(),
        reasons: m.reason.0.clone(),
        owner_kinds: m.owner_kind.iter().map(|k| k.to_lowercase()).collect(),
        labels,
        channels,
    })
}

impl CompiledRule {
    fn matches(&self, alert: &Alert) -> bool {
        let k = &alert.key;
        (self.monitors.is_empty() || self.monitors.contains(&k.monitor))
            && (self.severities.is_empty() || self.severities.contains(&alert.severity))
            && self
                .namespaces
                .as_ref()
                .is_none_or(|g| g.is_match(&k.namespace))
            && self
                .namespace_regex
                .as_ref()
                .is_none_or(|r| r.is_match(&k.namespace))
            && (self.kinds.is_empty() || self.kinds.contains(&k.kind.to_lowercase()))
            && (self.reasons.is_empty() || self.reasons.contains(&k.reason))
            && (self.owner_kinds.is_empty()
                || alert
                    .owner
                    .as_deref()
                    .and_then(|o| o.split_once('/'))
                    .is_some_and(|(kind, _)| self.owner_kinds.contains(&kind.to_lowercase())))
            && self
                .labels
                .iter()
                .all(|(name, glob)| alert.labels.get(name).is_some_and(|v| glob.is_match(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKey;
    use crate::config::load;

    fn router(yaml: &str) -> Router {
        let c = load(yaml, &Default::default()).expect("valid");
        Router::new(&c.routing).unwrap()
    }

    fn alert(monitor: &str, ns: &str, sev: Severity) -> Alert {
        Alert::new(
            AlertKey::new(monitor, ns, "Pod", "p", "OOMKilled"),
            sev,
            "t",
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    const RULES: &str = r#"
channels: {ops: {type: log}, oncall: {type: log}, team: {type: log}, quiet: {type: log}}
routing:
  default: [ops]
  rules:
    - match: {severity: [critical], namespace: "payments-*"}
      channels: [oncall, ops]
    - match: {namespace_regex: "team-(a|b)", kind: pod}
      channels: [team]
    - match: {labels: {tier: "front*"}}
      channels: [team]
    - match: {monitor: warning_events, reason: [DNSConfigForming, Unhealthy]}
      channels: []
    - match: {severity: [critical]}
      channels: [quiet]
"#;

    #[test]
    fn first_matching_rule_wins_else_default() {
        let r = router(RULES);
        let cases: Vec<(Alert, Option<usize>, Vec<&str>)> = vec![
            (
                alert("pod_crashes", "payments-eu", Severity::Critical),
                Some(0),
                vec!["oncall", "ops"],
            ),
            // Critical elsewhere falls to the later critical rule, not the payments one.
            (
                alert("pod_crashes", "shop", Severity::Critical),
                Some(4),
                vec!["quiet"],
            ),
            (
                alert("pod_crashes", "payments-eu", Severity::Warning),
                None,
                vec!["ops"],
            ),
            (
                alert("pod_crashes", "team-a", Severity::Warning),
                Some(1),
                vec!["team"],
            ),
            // The regex must match the whole namespace.
            (
                alert("pod_crashes", "team-abc", Severity::Warning),
                None,
                vec!["ops"],
            ),
            (
                alert("pod_crashes", "x", Severity::Info)
                    .labels([("tier".to_string(), "frontend".to_string())].into()),
                Some(2),
                vec!["team"],
            ),
        ];
        for (a, rule, channels) in cases {
            let route = r.route(&a);
            assert_eq!(route.rule, rule, "{}", a.key);
            assert_eq!(route.channels, channels, "{}", a.key);
        }
    }

    #[test]
    fn a_rule_with_no_channels_mutes() {
        let r = router(RULES);
        let mut a = alert("warning_events", "x", Severity::Warning);
        a.key.reason = "Unhealthy".into();
        let route = r.route(&a);
        assert_eq!(route.rule, Some(3));
        assert!(route.channels.is_empty());
    }

    #[test]
    fn owner_kind_matches_the_owning_workload_and_nothing_without_one() {
        let r = router(
            "channels: {ops: {type: log}, jobs: {type: log}}\nrouting:\n  default: [ops]\n  rules:\n    - match: {owner_kind: [job, CronJob]}\n      channels: [jobs]\n",
        );
        let owned = |owner: &str| alert("pod_crashes", "shop", Severity::Warning).owner(owner);
        assert_eq!(r.route(&owned("Job/nightly-123")).rule, Some(0));
        assert_eq!(r.route(&owned("CronJob/nightly")).rule, Some(0));
        assert_eq!(r.route(&owned("Deployment/api")).rule, None);
        assert_eq!(
            r.route(&alert("pod_crashes", "shop", Severity::Warning))
                .rule,
            None
        );
    }
}
