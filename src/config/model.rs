//! The configuration model. These types are the single source of truth: the JSON schema
//! (`kpulse schema`), the chart's `values.schema.json` and `docs/configuration.md` are generated
//! from them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::monitors::Monitors;
use super::types::{HumanDuration, OneOrMany, SecretString};
use crate::alert::Severity;

/// The whole kpulse configuration (key `config.yaml` of the ConfigMap `kpulse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cluster name, shown as `[name]` at the start of every message. One line, at most 100
    /// characters.
    #[serde(default = "default_cluster")]
    #[schemars(length(max = super::validate::MAX_CLUSTER_CHARS))]
    pub cluster: String,
    /// `[RESOLVED]` notifications when a condition clears.
    #[serde(default)]
    pub resolution: Resolution,
    /// Duplicate suppression and digest batching.
    #[serde(default)]
    pub dedupe: Dedupe,
    /// Pod alerts of one workload told as one incident.
    #[serde(default)]
    pub incidents: Incidents,
    /// Named notification channels. Names are referenced by `routing`; letters, digits, `-` and
    /// `_`, at most 63 characters.
    #[serde(default)]
    pub channels: BTreeMap<String, Channel>,
    /// Which channels an alert goes to.
    #[serde(default)]
    pub routing: Routing,
    /// Alerts that hold others back while they fire: a NotReady node its pods' alerts, a stuck
    /// or short workload its pods' alerts. An alert held back is sent if it still holds once its
    /// source has cleared (after `incidents.group_wait`).
    #[serde(default)]
    pub inhibit: Inhibit,
    /// Severity overrides, tried in order before routing: the first rule whose matchers all
    /// match sets the alert's severity (a `severity` matcher compares the monitor's own). For
    /// example, to page on OOMKilled: `{match: {monitor: pod_crashes, reason: OOMKilled},
    /// severity: critical}`.
    #[serde(default)]
    pub severity_rules: Vec<SeverityRule>,
    /// Severity raised by count, while an alert fires: when a container has restarted
    /// `restarts` times, or an incident counts `pods` pods, e.g. `{match: {monitor:
    /// pod_crashes}, restarts: 10, severity: critical}`. Never lowers a severity; a raised
    /// alert is sent again (an incident as its next update).
    #[serde(default)]
    pub escalation: Vec<EscalationRule>,
    /// Reminders for conditions that stay firing: sent again every `interval` of their severity,
    /// at most `max` times. Off unless an interval is set.
    #[serde(default)]
    pub repeat: Repeat,
    /// Silences kept with the configuration (run-time ones: `kpulse silence add`). While one is
    /// active, the alerts it matches are not sent; a notice goes out when it starts and when it
    /// ends, and what it held back that still fires is sent then.
    #[serde(default)]
    pub silences: Vec<ConfigSilence>,
    /// Recurring maintenance windows: while one is open, the alerts it matches are not sent;
    /// when it closes, a summary (unless `action: drop`), and what still fires is sent.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindow>,
    /// Your own titles and bodies (minijinja templates), per channel and matcher; the first rule
    /// that fits an alert decides. Variables: `cluster`, `channel`, `state` (`firing` or
    /// `resolved`), `alert` (`key.monitor`, `key.namespace`, `key.kind`, `key.name`,
    /// `key.reason`, `severity`, `title`, `message`, `labels`, `owner`, `node`, `fields`,
    /// `first_seen`). Checked when the configuration loads, with the line of each mistake.
    #[serde(default)]
    pub templates: Vec<TemplateRule>,
    /// Per-monitor switches and thresholds.
    #[serde(default)]
    pub monitors: Monitors,
    /// What an alert carries to explain itself: the container's exit code decoded, its memory
    /// limit, recent Warning events, the node's conditions, a likely cause and a next step, and
    /// kubectl commands. Collected when an alert is first sent, within `budget`.
    #[serde(default)]
    pub evidence: EvidenceSettings,
    /// Namespaces to watch or skip (globs). Applies to every monitor.
    #[serde(default)]
    pub namespaces: NamespaceFilter,
    /// Link templates added to every message, e.g. `runbook: "https://runbooks.example.com/{monitor}/{reason}"`.
    /// Placeholders: `{cluster}`, `{monitor}`, `{namespace}`, `{kind}`, `{name}`, `{reason}`, `{severity}`.
    /// At most 10 links; names of at most 63 characters, templates of at most 2048.
    #[serde(default)]
    #[schemars(extend("maxProperties" = super::validate::MAX_LINKS))]
    pub links: BTreeMap<String, String>,
    /// Persistence of kpulse's own state in the ConfigMap `kpulse-state`.
    #[serde(default)]
    pub state: StateSettings,
    /// The HTTP server's optional endpoints.
    #[serde(default)]
    pub http: HttpSettings,
    /// A message to the channels when kpulse starts with a configuration it has not announced
    /// before, so you know delivery works.
    #[serde(default)]
    pub welcome: Welcome,
}

fn default_cluster() -> String {
    "kubernetes".to_string()
}

impl Default for Config {
    /// A config that sends everything to one `log` channel: what kpulse runs with until a
    /// ConfigMap is found.
    fn default() -> Self {
        let mut channels = BTreeMap::new();
        channels.insert("log".to_string(), Channel::Log(LogChannel::default()));
        Config {
            cluster: default_cluster(),
            resolution: Resolution::default(),
            dedupe: Dedupe::default(),
            incidents: Incidents::default(),
            channels,
            routing: Routing {
                default: vec!["log".to_string()],
                rules: Vec::new(),
            },
            inhibit: Inhibit::default(),
            severity_rules: Vec::new(),
            escalation: Vec::new(),
            repeat: Repeat::default(),
            silences: Vec::new(),
            maintenance: Vec::new(),
            templates: Vec::new(),
            monitors: Monitors::default(),
            evidence: EvidenceSettings::default(),
            namespaces: NamespaceFilter::default(),
            links: BTreeMap::new(),
            state: StateSettings::default(),
            http: HttpSettings::default(),
            welcome: Welcome::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    /// Send `[RESOLVED]` when a firing condition clears (or its object is deleted).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long a cleared condition must stay clear before its `[RESOLVED]` is sent. If it fires
    /// again meanwhile, nothing is sent at all: a flap is not news. `0s`: at once.
    #[serde(default)]
    pub hold: HumanDuration,
}

impl Default for Resolution {
    fn default() -> Self {
        Resolution {
            enabled: true,
            hold: HumanDuration::default(),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// A point-in-time alert with the same key (monitor, namespace, kind, name, reason) is sent at
    /// most once per window.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
    /// Severities batched into one digest message per channel.
    #[serde(default)]
    pub digest: Digest,
}

fn default_window() -> HumanDuration {
    HumanDuration::mins(30)
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe {
            window: default_window(),
            digest: Digest::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Incidents {
    /// Group the alerts of pods that belong to one workload (Deployment, StatefulSet, DaemonSet,
    /// Job, ...) into one incident: one message, one `[RESOLVED]` when every member has cleared.
    /// A workload's own alert (`replicas_unavailable`, `rollout_stuck`, `daemonset_unscheduled`)
    /// folds into its pods' open incident.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long an incident collects alerts before its first message. A single alert is then
    /// sent as it is.
    #[serde(default = "default_group_wait")]
    pub group_wait: HumanDuration,
    /// At most one update per interval when an incident already told grows (more pods, or a
    /// higher severity).
    #[serde(default = "default_group_interval")]
    pub group_interval: HumanDuration,
}

fn default_group_wait() -> HumanDuration {
    HumanDuration::secs(30)
}

fn default_group_interval() -> HumanDuration {
    HumanDuration::mins(5)
}

impl Default for Incidents {
    fn default() -> Self {
        Incidents {
            enabled: true,
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    /// Alerts of these severities are queued and sent together. Empty: everything goes out at once.
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// How long a digest collects alerts before it is sent.
    #[serde(default = "default_digest_interval")]
    pub interval: HumanDuration,
}

fn default_digest_interval() -> HumanDuration {
    HumanDuration::mins(15)
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            severities: Vec::new(),
            interval: default_digest_interval(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Channels for alerts that match no rule. Must not be empty, so no alert is dropped.
    #[serde(default)]
    pub default: Vec<String>,
    /// Rules, tried in order; the first that matches decides the channels.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// All given matchers must match (an empty matcher matches everything).
    #[serde(default, rename = "match")]
    pub matcher: Matcher,
    /// Channels this rule sends to. Empty: matching alerts are muted.
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inhibit {
    /// The built-in rules: a `node_conditions` NotReady alert holds back the pod alerts of that
    /// node; a `rollout_stuck`, `replicas_unavailable` or `daemonset_unscheduled` alert holds
    /// back the pod alerts of that workload; a bare pod's `pod_crashes` crash loop holds back
    /// that pod's exit notices and restart bursts.
    #[serde(default = "yes")]
    pub defaults: bool,
    /// More rules, tried after the built-in ones.
    #[serde(default)]
    pub rules: Vec<InhibitRule>,
}

impl Default for Inhibit {
    fn default() -> Self {
        Inhibit {
            defaults: true,
            rules: Vec::new(),
        }
    }
}

/// One entry of `inhibit.rules`: while an alert matching `source` fires (and was sent), alerts
/// matching `target` with the same `equal` attributes are held back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Matchers of the alert that holds others back (those of `routing.rules`).
    #[serde(default)]
    pub source: Matcher,
    /// Matchers of the alerts it holds back.
    #[serde(default)]
    pub target: Matcher,
    /// Attributes source and target must share: `namespace`, `node` (a Node alert's name, or
    /// the node a pod runs on), `workload` (`Kind/name` of a workload's alert, or a pod's owning
    /// workload), `object` (the same namespace, kind and name), `labels.<name>`. Empty: any
    /// matching source holds back any matching target.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// What `inhibit.rules[].equal` can compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InhibitAttr {
    Namespace,
    Node,
    Workload,
    /// The same object: namespace, kind and name (a pod's alerts of several monitors).
    Object,
    Label(String),
}

impl InhibitAttr {
    pub const KNOWN: &'static str = "namespace, node, workload, object, labels.<name>";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "namespace" => Some(InhibitAttr::Namespace),
            "node" => Some(InhibitAttr::Node),
            "workload" => Some(InhibitAttr::Workload),
            "object" => Some(InhibitAttr::Object),
            _ => s
                .strip_prefix("labels.")
                .filter(|l| !l.is_empty())
                .map(|l| InhibitAttr::Label(l.to_string())),
        }
    }
}

/// One entry of `severity_rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    /// All given matchers must match (an empty matcher matches everything).
    #[serde(default, rename = "match")]
    pub matcher: Matcher,
    /// The severity matching alerts get: info, warning or critical.
    pub severity: Severity,
}

/// One entry of `escalation`: give `restarts` or `pods`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    /// The alerts it raises (the matchers of `routing.rules`).
    #[serde(default, rename = "match")]
    pub matcher: Matcher,
    /// From this many restarts of the alert's container (`pod_crashes`' `Restarts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u32>,
    /// From this many pods in the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<u32>,
    /// The severity it raises to.
    pub severity: Severity,
}

/// `repeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Per severity, how long after it was last sent a still-firing alert is sent again, e.g.
    /// `{critical: 4h}`. At least 1m.
    #[serde(default)]
    pub interval: BTreeMap<Severity, HumanDuration>,
    /// Reminders per alert, at most.
    #[serde(default = "default_repeat_max")]
    #[schemars(range(min = 1, max = 100))]
    pub max: u32,
}

fn default_repeat_max() -> u32 {
    3
}

impl Default for Repeat {
    fn default() -> Self {
        Repeat {
            interval: BTreeMap::new(),
            max: default_repeat_max(),
        }
    }
}

/// One entry of `templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRule {
    /// The channels it applies to. Empty: every channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The alerts it applies to (the matchers of `routing.rules`). Empty: every alert.
    #[serde(default, rename = "match")]
    pub matcher: Matcher,
    /// The title (one line, at most 300 characters after rendering), e.g.
    /// `"{{ alert.key.namespace }}/{{ alert.key.name }}: {{ alert.key.reason }}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The body under the title (at most 4000 characters after rendering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// One entry of `silences`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSilence {
    /// The alerts it silences (the matchers of `routing.rules`); at least one.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// When it starts, an RFC 3339 time such as `2026-12-24T18:00:00Z`. Unset: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// When it ends (required: a silence always expires), an RFC 3339 time.
    pub ends_at: String,
    /// Why: shown in the notices and in `kpulse silence list`.
    pub comment: String,
}

/// One entry of `maintenance`: a cron `schedule` with a `duration`, or `days` from `from` to
/// `to`, in `timezone`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Shown in the summary; unique, letters, digits, `-` and `_`.
    pub name: String,
    /// The alerts it holds back (the matchers of `routing.rules`). Empty: every alert.
    #[serde(default, rename = "match")]
    pub matcher: Matcher,
    /// When it opens, a cron expression (`minute hour day-of-month month day-of-week`), e.g.
    /// `0 2 * * SAT`. Needs `duration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How long it stays open after each `schedule` time (at most a week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// Instead of `schedule`: the days it opens on, with `from` and `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<Weekday>>,
    /// With `days`: when it opens, `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// With `days`: when it closes, `HH:MM`; before `from` means the next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The IANA time zone of the schedule, e.g. `Europe/Berlin`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// After it closes: `summarize` (one message with what happened during it) or `drop`
    /// (nothing). Either way, what still fires is sent then.
    #[serde(default)]
    pub action: MaintenanceAction,
}

fn utc() -> String {
    "UTC".to_string()
}

/// What a maintenance window does when it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaintenanceAction {
    #[default]
    Summarize,
    Drop,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// The cron name of the day.
    pub fn cron(&self) -> &'static str {
        match self {
            Weekday::Mon => "MON",
            Weekday::Tue => "TUE",
            Weekday::Wed => "WED",
            Weekday::Thu => "THU",
            Weekday::Fri => "FRI",
            Weekday::Sat => "SAT",
            Weekday::Sun => "SUN",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// Monitor names, e.g. `pod_crashes`.
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub monitor: OneOrMany,
    /// Severities: info, warning, critical.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    /// Namespace globs such as `payments-*`.
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub namespace: OneOrMany,
    /// A regular expression the whole namespace must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_regex: Option<String>,
    /// Object kinds, e.g. `Pod`, `Node`.
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub kind: OneOrMany,
    /// Reasons, e.g. `OOMKilled`, `CrashLoopBackOff`.
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub reason: OneOrMany,
    /// Kinds of the owning workload, e.g. `Deployment`, `StatefulSet`, `Job` (pod alerts carry
    /// their owner; other alerts match only an empty list).
    #[serde(default, skip_serializing_if = "OneOrMany::is_empty")]
    pub owner_kind: OneOrMany,
    /// Object labels that must be present with these values (values may be globs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One notification channel. `type` selects the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Channel {
    Slack(SlackChannel),
    Email(EmailChannel),
    Webhook(WebhookChannel),
    Teams(TeamsChannel),
    Pagerduty(PagerDutyChannel),
    Opsgenie(OpsgenieChannel),
    Discord(DiscordChannel),
    Googlechat(GoogleChatChannel),
    Alertmanager(AlertmanagerChannel),
    Log(LogChannel),
}

/// One secret setting of a channel and how the channel sends it, which decides the forms a
/// receiver may echo it in (see `crate::redact`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SecretUse<'a> {
    /// Sent as it is: a token, key or routing key in a header or body the sink builds.
    Value(&'a SecretString),
    /// An HTTP header value as configured, possibly `<scheme> <credential>`.
    Header(&'a SecretString),
    /// A URL: its path, query and user info may hold credentials.
    Url(&'a SecretString),
    /// An SMTP login, sent base64-encoded by `AUTH`.
    Login {
        username: &'a SecretString,
        password: &'a SecretString,
    },
}

impl Channel {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Channel::Slack(_) => "slack",
            Channel::Email(_) => "email",
            Channel::Webhook(_) => "webhook",
            Channel::Teams(_) => "teams",
            Channel::Pagerduty(_) => "pagerduty",
            Channel::Opsgenie(_) => "opsgenie",
            Channel::Discord(_) => "discord",
            Channel::Googlechat(_) => "googlechat",
            Channel::Alertmanager(_) => "alertmanager",
            Channel::Log(_) => "log",
        }
    }

    /// The rate budget in force: `delivery.rate`, or the provider's limit.
    pub fn rate_budget(&self) -> Option<RateBudget> {
        let per_minute = |n| RateBudget {
            per_minute: n,
            burst: default_burst(),
        };
        let budget = self.delivery().rate.or(match self {
            Channel::Slack(_) | Channel::Googlechat(_) | Channel::Teams(_) => Some(per_minute(60)),
            Channel::Discord(_) => Some(per_minute(30)),
            Channel::Pagerduty(_) => Some(per_minute(120)),
            _ => None,
        })?;
        (budget.per_minute > 0).then_some(budget)
    }

    pub fn delivery(&self) -> &Delivery {
        match self {
            Channel::Slack(c) => &c.delivery,
            Channel::Email(c) => &c.delivery,
            Channel::Webhook(c) => &c.delivery,
            Channel::Teams(c) => &c.delivery,
            Channel::Pagerduty(c) => &c.delivery,
            Channel::Opsgenie(c) => &c.delivery,
            Channel::Discord(c) => &c.delivery,
            Channel::Googlechat(c) => &c.delivery,
            Channel::Alertmanager(c) => &c.delivery,
            Channel::Log(c) => &c.delivery,
        }
    }

    /// How often a channel is sent its active alerts again; only Alertmanager, which closes an
    /// alert that is not re-sent, has one.
    pub fn resend_interval(&self) -> Option<HumanDuration> {
        match self {
            Channel::Alertmanager(c) => Some(c.resend_interval),
            _ => None,
        }
    }

    /// The URLs this channel sends to, with the field each comes from (for validation).
    pub fn urls(&self) -> Vec<(&'static str, &SecretString)> {
        let mut out = Vec::new();
        match self {
            Channel::Slack(c) => {
                if let Some(u) = &c.webhook_url {
                    out.push(("webhook_url", u));
                }
                out.push(("api_url", &c.api_url));
            }
            Channel::Webhook(c) => out.push(("url", &c.url)),
            Channel::Teams(c) => out.push(("webhook_url", &c.webhook_url)),
            Channel::Pagerduty(c) => out.push(("api_url", &c.api_url)),
            Channel::Opsgenie(c) => out.push(("api_url", &c.api_url)),
            Channel::Discord(c) => out.push(("webhook_url", &c.webhook_url)),
            Channel::Googlechat(c) => out.push(("webhook_url", &c.webhook_url)),
            Channel::Alertmanager(c) => out.push(("url", &c.url)),
            Channel::Email(_) | Channel::Log(_) => {}
        }
        out
    }

    /// Every secret setting of this channel. Each arm names every field of its settings (no
    /// `..`), so a new field does not compile until it is sorted here as secret or not.
    pub fn secrets(&self) -> Vec<SecretUse<'_>> {
        use SecretUse::{Header, Url, Value};
        match self {
            Channel::Slack(SlackChannel {
                webhook_url,
                token,
                channel: _,
                api_url,
                mention: _,
                delivery: _,
            }) => {
                let mut out: Vec<SecretUse> = webhook_url.iter().map(Url).collect();
                out.extend(token.iter().map(Value));
                out.push(Url(api_url));
                out
            }
            Channel::Email(EmailChannel {
                smtp:
                    Smtp {
                        host: _,
                        port: _,
                        tls: _,
                        username,
                        password,
                        ca_file: _,
                    },
                from: _,
                to: _,
                delivery: _,
            }) => {
                let mut out: Vec<SecretUse> = username.iter().chain(password).map(Value).collect();
                if let (Some(username), Some(password)) = (username, password) {
                    out.push(SecretUse::Login { username, password });
                }
                out
            }
            Channel::Webhook(WebhookChannel {
                url,
                headers,
                hmac_secret,
                delivery: _,
            }) => {
                let mut out = vec![Url(url)];
                out.extend(headers.values().map(Header));
                out.extend(hmac_secret.iter().map(Value));
                out
            }
            Channel::Teams(TeamsChannel {
                webhook_url,
                delivery: _,
            })
            | Channel::Discord(DiscordChannel {
                webhook_url,
                delivery: _,
            })
            | Channel::Googlechat(GoogleChatChannel {
                webhook_url,
                delivery: _,
            }) => vec![Url(webhook_url)],
            Channel::Pagerduty(PagerDutyChannel {
                routing_key,
                api_url,
                delivery: _,
            }) => vec![Value(routing_key), Url(api_url)],
            Channel::Opsgenie(OpsgenieChannel {
                api_key,
                api_url,
                delivery: _,
            }) => vec![Value(api_key), Url(api_url)],
            Channel::Alertmanager(AlertmanagerChannel {
                url,
                headers,
                resend_interval: _,
                delivery: _,
            }) => {
                let mut out = vec![Url(url)];
                out.extend(headers.values().map(Header));
                out
            }
            Channel::Log(LogChannel { delivery: _ }) => Vec::new(),
        }
    }
}

/// Delivery settings every channel shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Time allowed for one attempt.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Further attempts after a failure that may heal (network error, 5xx, 429).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Allow plain `http://` URLs (for receivers inside the cluster). Off: only `https://`.
    #[serde(default)]
    pub allow_http: bool,
    /// Send `[RESOLVED]` messages to this channel.
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// At most this many messages: what goes beyond waits and is sent as one digest as soon as
    /// the budget allows, instead of being refused by the provider (HTTP 429). Unset: the
    /// provider's documented limit for Slack (60 a minute), Discord (30), Google Chat (60),
    /// Microsoft Teams (60) and PagerDuty (120); none for the others. `per_minute: 0`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateBudget>,
}

/// `delivery.rate`: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateBudget {
    /// Messages per minute, on average.
    pub per_minute: u32,
    /// Messages at once before the average applies.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1))]
    pub burst: u32,
}

fn default_burst() -> u32 {
    5
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_retries() -> u32 {
    3
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            timeout: default_timeout(),
            retries: default_retries(),
            allow_http: false,
            send_resolved: true,
            rate: None,
        }
    }
}

/// Slack: an incoming webhook, or a bot token with `chat.postMessage` (resolutions then thread
/// under the firing message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackChannel {
    /// Incoming webhook URL. Set this or `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<SecretString>,
    /// Bot token (`xoxb-...`). Needs `channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretString>,
    /// Channel ID or name for the bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Slack Web API base URL.
    #[serde(default = "default_slack_api")]
    pub api_url: SecretString,
    /// Text prepended to critical alerts, e.g. `<!here>`. At most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = super::validate::MAX_MENTION_CHARS))]
    pub mention: Option<String>,
    #[serde(default)]
    pub delivery: Delivery,
}

fn default_slack_api() -> SecretString {
    SecretString::new("https://slack.com/api")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS (port 587). Fails if the server does not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No encryption. Only for relays on a trusted network.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    /// PEM file with an extra CA to trust (for a private relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    pub smtp: Smtp,
    /// Sender address, e.g. `kpulse@example.com` or `kpulse <kpulse@example.com>`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    #[serde(default)]
    pub delivery: Delivery,
}

/// A generic JSON webhook (payload documented in docs/webhook.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub url: SecretString,
    /// Extra request headers, e.g. `Authorization: "Bearer $HOOK_TOKEN"`.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// Key for the `X-Kpulse-Signature: sha256=<hex>` HMAC of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<SecretString>,
    #[serde(default)]
    pub delivery: Delivery,
}

/// Microsoft Teams through a Workflows (Power Automate) webhook, as an Adaptive Card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamsChannel {
    pub webhook_url: SecretString,
    #[serde(default)]
    pub delivery: Delivery,
}

/// PagerDuty Events API v2: trigger on firing, resolve on resolution, `dedup_key` = alert key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyChannel {
    pub routing_key: SecretString,
    #[serde(default = "default_pagerduty_api")]
    pub api_url: SecretString,
    #[serde(default)]
    pub delivery: Delivery,
}

fn default_pagerduty_api() -> SecretString {
    SecretString::new("https://events.pagerduty.com/v2/enqueue")
}

/// Opsgenie Alert API: create on firing, close on resolution, alias = alert key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieChannel {
    pub api_key: SecretString,
    #[serde(default = "default_opsgenie_api")]
    pub api_url: SecretString,
    #[serde(default)]
    pub delivery: Delivery,
}

fn default_opsgenie_api() -> SecretString {
    SecretString::new("https://api.opsgenie.com")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscordChannel {
    pub webhook_url: SecretString,
    #[serde(default)]
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoogleChatChannel {
    pub webhook_url: SecretString,
    #[serde(default)]
    pub delivery: Delivery,
}

/// Prometheus Alertmanager v2 API (`POST {url}/api/v2/alerts`); firing alerts are posted again
/// every `resend_interval`, and `endsAt` is set on resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerChannel {
    pub url: SecretString,
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// How often alerts that are still firing are posted again. Alertmanager closes an alert
    /// that is not re-sent; each post is valid for four intervals.
    #[serde(default = "default_resend_interval")]
    pub resend_interval: HumanDuration,
    #[serde(default)]
    pub delivery: Delivery,
}

fn default_resend_interval() -> HumanDuration {
    HumanDuration::mins(1)
}

/// JSON lines on standard output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogChannel {
    #[serde(default)]
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceFilter {
    /// Only these namespaces (globs). Empty: all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Never these namespaces (globs). Wins over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// How often the state is written to the ConfigMap `kpulse-state` (also written on shutdown).
    #[serde(default = "default_state_interval")]
    pub interval: HumanDuration,
}

fn default_state_interval() -> HumanDuration {
    HumanDuration::secs(60)
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            interval: default_state_interval(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Bearer token for `POST /test-channel`. Unset: the endpoint is off. Use a `$NAME` reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_channel_token: Option<SecretString>,
    /// Bearer token for `GET`/`POST /silences` and `DELETE /silences/ID` (run-time silences).
    /// Unset: those endpoints are off. Use a `$NAME` reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_token: Option<SecretString>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSettings {
    /// Collect evidence from the API (events, node, log, failing pods) when an alert is first
    /// sent. Off: alerts carry only what their monitor saw, with hints and commands.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long collection may delay an alert; a lookup that takes longer (its wait for one of
    /// the 16 lookups kpulse runs at once included) is left out.
    #[serde(default = "evidence_budget")]
    pub budget: HumanDuration,
    /// Recent Warning events of the object shown, at most.
    #[serde(default = "evidence_events")]
    #[schemars(range(max = 20))]
    pub events: usize,
    /// A message, fact or log line is cut to this many bytes.
    #[serde(default = "evidence_text_bytes")]
    #[schemars(range(min = 40, max = 2000))]
    pub text_bytes: usize,
    /// The last lines of the previous container's log (needs `pods/log`: the chart grants it
    /// only with `evidence.logs: true`). Redacted: channel secrets and secret-looking values.
    #[serde(default)]
    pub logs: EvidenceLogs,
    /// Per monitor, which parts to include; a monitor not listed gets every part. For example
    /// `{warning_events: [events, commands]}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub monitors: BTreeMap<String, Vec<EvidencePart>>,
}

fn evidence_budget() -> HumanDuration {
    HumanDuration::secs(2)
}
fn evidence_events() -> usize {
    5
}
fn evidence_text_bytes() -> usize {
    300
}

impl Default for EvidenceSettings {
    fn default() -> Self {
        EvidenceSettings {
            enabled: true,
            budget: evidence_budget(),
            events: evidence_events(),
            text_bytes: evidence_text_bytes(),
            logs: EvidenceLogs::default(),
            monitors: BTreeMap::new(),
        }
    }
}

impl EvidenceSettings {
    /// Whether alerts of `monitor` include `part`.
    pub fn wants(&self, monitor: &str, part: EvidencePart) -> bool {
        self.monitors
            .get(monitor)
            .is_none_or(|parts| parts.contains(&part))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceLogs {
    /// Include the log excerpt. Off by default: logs may hold personal data.
    #[serde(default)]
    pub enabled: bool,
    /// Lines asked for, from the end of the log.
    #[serde(default = "log_lines")]
    #[schemars(range(min = 1, max = 200))]
    pub lines: usize,
    /// The excerpt keeps its last lines within this many bytes.
    #[serde(default = "log_max_bytes")]
    #[schemars(range(min = 100, max = 16384))]
    pub max_bytes: usize,
}

fn log_lines() -> usize {
    20
}
fn log_max_bytes() -> usize {
    2048
}

impl Default for EvidenceLogs {
    fn default() -> Self {
        EvidenceLogs {
            enabled: false,
            lines: log_lines(),
            max_bytes: log_max_bytes(),
        }
    }
}

/// A part of an alert's evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidencePart {
    /// The container: image, exit code and its meaning, restarts, message, memory settings.
    Container,
    /// Facts about the object: ReplicaSets, failed pods, a claim's class, a certificate's issuer.
    Facts,
    /// The previous container's last log lines (with `logs.enabled`).
    Log,
    /// Recent Warning events of the object.
    Events,
    /// The owner chain.
    Owners,
    /// The node's conditions and allocatable memory.
    Node,
    /// A likely cause and a next step.
    Hints,
    /// kubectl commands.
    Commands,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Send it: on the first start, and once after each configuration change (a restart with
    /// the same configuration sends none; a change of Secret values alone neither). It names
    /// the cluster, the monitors on, and where alerts go. Only the leader sends it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Channels that get it. Empty: every channel except `pagerduty`, `opsgenie` and
    /// `alertmanager`, where it would open an incident.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

impl Default for Welcome {
    fn default() -> Self {
        Welcome {
            enabled: true,
            channels: Vec::new(),
        }
    }
}
