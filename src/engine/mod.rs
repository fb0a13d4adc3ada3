//! The engine: dedupe, the active set and resolutions, routing and digests.
//!
//! Pure: no IO, no clock of its own. Every call takes `now`; the caller (the pipeline in
//! production, tests with any timestamps they like) drives time. Each call returns an
//! [`Outcome`]: the messages to send ([`Dispatch`]) and what was decided, for metrics and logs.

mod incident;
mod inhibit;
mod maintenance;
mod router;
mod silence;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKey, Finding, Notification, Severity, State};
use crate::config::Config;
pub use incident::{Incident, IncidentSettings, Told};
pub use inhibit::Inhibitions;
pub use maintenance::{Window as MaintenanceWindowRule, WindowRecord};
pub use router::{Matches, Route, Router, RouterError, SeverityRules};
use silence::{Compiled, Silences};
pub use silence::{Origin, Silence, SilenceRecord, describe as describe_matcher};

/// The engine's share of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub resolution_enabled: bool,
    /// `resolution.hold`: how long a cleared alert waits before its `[RESOLVED]`.
    pub resolve_hold: SignedDuration,
    pub window: SignedDuration,
    pub digest_severities: Vec<Severity>,
    pub digest_interval: SignedDuration,
    pub router: Router,
    /// `severity_rules`, applied to every alert before anything else.
    pub severity_rules: SeverityRules,
    /// Channels whose receiver forgets a firing alert that is not sent again (Alertmanager), and
    /// how often their active alerts are re-sent.
    pub resend: BTreeMap<String, SignedDuration>,
    pub incidents: IncidentSettings,
    /// `inhibit`: which firing alerts hold which others back.
    pub inhibit: Inhibitions,
    /// `silences` of the configuration.
    pub silences: Vec<Silence>,
    /// `maintenance` windows.
    pub maintenance: Vec<MaintenanceWindowRule>,
    /// `escalation`: severity raised by restarts or pods.
    pub escalation: Vec<Escalation>,
    /// `repeat.interval` per severity, and `repeat.max`.
    pub repeat: BTreeMap<Severity, SignedDuration>,
    pub repeat_max: u32,
    /// Per channel, its rate budget (`delivery.rate`, or the provider's limit).
    pub budgets: BTreeMap<String, crate::config::RateBudget>,
}

/// One compiled `escalation` rule.
#[derive(Debug, Clone)]
pub struct Escalation {
    matches: router::Matches,
    restarts: Option<u32>,
    pods: Option<u32>,
    severity: Severity,
}

impl Escalation {
    /// The severity `alert` reaches by its restarts, if this rule raises it.
    fn by_restarts(&self, alert: &Alert) -> Option<Severity> {
        let threshold = self.restarts?;
        let restarts: u32 = alert.fields.get("Restarts")?.parse().ok()?;
        (restarts >= threshold && self.matches.matches(alert)).then_some(self.severity)
    }

    /// The severity an incident of `pods` pods whose alert is `alert` reaches, if this rule
    /// raises it.
    fn by_pods(&self, alert: &Alert, pods: usize) -> Option<Severity> {
        let threshold = self.pods?;
        (pods >= threshold as usize && self.matches.matches(alert)).then_some(self.severity)
    }
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Self, RouterError> {
        Ok(Settings {
            resolution_enabled: config.resolution.enabled,
            resolve_hold: config.resolution.hold.signed(),
            window: config.dedupe.window.signed(),
            digest_severities: config.dedupe.digest.severities.clone(),
            digest_interval: config.dedupe.digest.interval.signed(),
            router: Router::new(&config.routing)?,
            severity_rules: SeverityRules::new(&config.severity_rules)?,
            resend: config
                .channels
                .iter()
                .filter_map(|(name, c)| Some((name.clone(), c.resend_interval()?.signed())))
                .collect(),
            incidents: IncidentSettings {
                enabled: config.incidents.enabled,
                group_wait: config.incidents.group_wait.signed(),
                group_interval: config.incidents.group_interval.signed(),
            },
            inhibit: Inhibitions::new(&config.inhibit)?,
            silences: config
                .silences
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    silence::from_config(s).map_err(|message| RouterError {
                        section: "silences",
                        rule: i,
                        message,
                    })
                })
                .collect::<Result<_, _>>()?,
            escalation: config
                .escalation
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    Ok(Escalation {
                        matches: router::Matches::new(&r.matcher).map_err(|message| {
                            RouterError {
                                section: "escalation",
                                rule: i,
                                message,
                            }
                        })?,
                        restarts: r.restarts,
                        pods: r.pods,
                        severity: r.severity,
                    })
                })
                .collect::<Result<_, RouterError>>()?,
            repeat: config
                .repeat
                .interval
                .iter()
                .map(|(s, d)| (*s, d.signed()))
                .collect(),
            repeat_max: config.repeat.max,
            budgets: config
                .channels
                .iter()
                .filter_map(|(name, c)| Some((name.clone(), c.rate_budget()?)))
                .collect(),
            maintenance: config
                .maintenance
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    MaintenanceWindowRule::new(w).map_err(|(field, message)| RouterError {
                        section: "maintenance",
                        rule: i,
                        message: format!("{field}: {message}"),
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }

    fn digested(&self, severity: Severity) -> bool {
        self.digest_severities.contains(&severity)
    }

    /// Raises `alert`'s severity by its restarts (`escalation`); never lowers it.
    fn escalate(&self, alert: &mut Alert) {
        for rule in &self.escalation {
            if let Some(s) = rule.by_restarts(alert) {
                alert.severity = alert.severity.max(s);
            }
        }
    }
}

/// Which part of a monitor's active alerts a [`Engine::reconcile`] call covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything the monitor has active (a full scan by a monitor fed by one source).
    All,
    /// Alerts about objects of one kind: a watch's full re-evaluation. A monitor fed by several
    /// watches (Deployments, StatefulSets, DaemonSets) sees one kind per watch, so each full pass
    /// may only resolve alerts about the kind it evaluated.
    Kind(String),
    /// Alerts about objects in one namespace.
    Namespace(String),
    /// Alerts about one object (an event-driven monitor re-evaluating it, or its deletion).
    Object {
        namespace: String,
        kind: String,
        name: String,
    },
}

impl Scope {
    pub fn object(
        namespace: impl Into<String>,
        kind: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Scope::Object {
            namespace: namespace.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// The smallest key of `monitor` inside this scope.
    fn first_key(&self, monitor: &str) -> AlertKey {
        let (namespace, kind, name) = match self {
            Scope::All | Scope::Kind(_) => ("", "", ""),
            Scope::Namespace(ns) => (ns.as_str(), "", ""),
            Scope::Object {
                namespace,
                kind,
                name,
            } => (namespace.as_str(), kind.as_str(), name.as_str()),
        };
        AlertKey::new(monitor, namespace, kind, name, "")
    }

    fn covers(&self, key: &AlertKey) -> bool {
        match self {
            Scope::All => true,
            Scope::Kind(kind) => &key.kind == kind,
            Scope::Namespace(ns) => &key.namespace == ns,
            Scope::Object {
                namespace,
                kind,
                name,
            } => &key.namespace == namespace && &key.kind == kind && &key.name == name,
        }
    }

    /// Whether the keys this scope covers are one contiguous run of a monitor's keys, which sort
    /// by (monitor, namespace, kind, name, reason). A kind is spread over every namespace.
    fn contiguous(&self) -> bool {
        !matches!(self, Scope::Kind(_))
    }
}

/// How a batch of notifications is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DispatchKind {
    /// One alert, sent at once.
    Immediate,
    /// Several alerts collected over `dedupe.digest.interval`, sent as one message.
    Digest,
    /// Alerts still firing, sent again to a channel with a resend interval (Alertmanager) so the
    /// receiver keeps them open. Nothing new for a person to read.
    Resend,
}

/// Notifications for one channel, ready for its sink to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub channel: String,
    pub kind: DispatchKind,
    pub notifications: Vec<DispatchItem>,
}

/// One notification, with the provider reference of the firing message on this channel (e.g. a
/// Slack thread timestamp) when the sink reported one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchItem {
    #[serde(flatten)]
    pub notification: Notification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// What the engine decided about one alert; the caller turns these into metrics and log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Fired {
        key: AlertKey,
        severity: Severity,
        channels: Vec<String>,
        rule: Option<usize>,
    },
    Resolved {
        key: AlertKey,
        severity: Severity,
        channels: Vec<String>,
    },
    /// Resolved while `resolution.enabled` is false (or it never notified): nothing sent.
    ResolvedSilently { key: AlertKey },
    /// Dropped: the same key fired within `dedupe.window`.
    Deduped { key: AlertKey, severity: Severity },
    /// Queued into a channel's digest.
    Digested {
        key: AlertKey,
        severity: Severity,
        channel: String,
    },
    /// A routing rule with no channels matched.
    Muted { key: AlertKey, rule: Option<usize> },
    /// Joined the incident of its workload instead of being sent on its own.
    Grouped {
        key: AlertKey,
        severity: Severity,
        incident: String,
    },
    /// Held back while `by`, an alert that was sent, fires (`inhibit`, rule `rule`).
    Inhibited {
        key: AlertKey,
        severity: Severity,
        by: AlertKey,
        rule: String,
    },
    /// Not sent: the silence `silence` matches it (sent when the silence ends if it still fires).
    Silenced {
        key: AlertKey,
        severity: Severity,
        silence: String,
    },
    /// Beyond `channel`'s rate budget: waits, and goes out in one digest as soon as it allows.
    RateLimited {
        key: AlertKey,
        severity: Severity,
        channel: String,
    },
    /// Sent again to the channels told: still firing after `repeat.interval` (reminder `n`).
    Repeated {
        key: AlertKey,
        severity: Severity,
        channels: Vec<String>,
        n: u32,
    },
    /// Not sent: the maintenance window `window` is open (summarized, and sent if it still
    /// fires, when it closes).
    InMaintenance {
        key: AlertKey,
        severity: Severity,
        window: String,
    },
}

impl Decision {
    /// The decision's name, as the `decision` label of `kpulse_decisions_total`.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Fired { .. } => "sent",
            Decision::Resolved { .. } => "resolved",
            Decision::ResolvedSilently { .. } => "resolved_silently",
            Decision::Deduped { .. } => "deduped",
            Decision::Digested { .. } => "digested",
            Decision::Muted { .. } => "muted",
            Decision::Grouped { .. } => "grouped",
            Decision::Inhibited { .. } => "inhibited",
            Decision::Silenced { .. } => "silenced",
            Decision::InMaintenance { .. } => "maintenance",
            Decision::Repeated { .. } => "repeated",
            Decision::RateLimited { .. } => "rate_limited",
        }
    }

    pub fn key(&self) -> &AlertKey {
        match self {
            Decision::Fired { key, .. }
            | Decision::Resolved { key, .. }
            | Decision::ResolvedSilently { key }
            | Decision::Deduped { key, .. }
            | Decision::Digested { key, .. }
            | Decision::Muted { key, .. }
            | Decision::Grouped { key, .. }
            | Decision::Inhibited { key, .. }
            | Decision::Silenced { key, .. }
            | Decision::InMaintenance { key, .. }
            | Decision::Repeated { key, .. }
            | Decision::RateLimited { key, .. } => key,
        }
    }
}

/// The result of one engine call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub dispatches: Vec<Dispatch>,
    pub decisions: Vec<Decision>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.dispatches.extend(other.dispatches);
        self.decisions.extend(other.decisions);
    }
}

/// One alert in the active set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub alert: Alert,
    /// When kpulse decided it was firing.
    pub since: Timestamp,
    /// Channels the firing went to; the resolution goes to the same ones.
    pub channels: Vec<String>,
    /// Whether a firing notification was sent (a resolution is only sent after one).
    pub notified: bool,
    /// Provider references per channel, e.g. the Slack message to thread the resolution under.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refs: BTreeMap<String, String>,
    /// A member of this incident: never sent on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_of: Option<String>,
    /// The message of this incident: it resolves when the incident's members have cleared, not
    /// by a monitor's reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Held back while this alert fires (`inhibit`): never sent while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibited_by: Option<AlertKey>,
    /// Its source cleared: sent at this time if it still holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<Timestamp>,
    /// Reminders sent so far (`repeat`), and when it was last sent, if not at `since`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeats: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told_at: Option<Timestamp>,
    /// Cleared at this time: resolved once `resolution.hold` has passed, unless it fires again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearing_since: Option<Timestamp>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ActiveAlert {
    /// `alert`, firing since `now`, told to `channels` (none: not notified).
    fn new(alert: Alert, now: Timestamp, channels: Vec<String>) -> Self {
        ActiveAlert {
            alert,
            since: now,
            notified: !channels.is_empty(),
            channels,
            refs: BTreeMap::new(),
            member_of: None,
            incident: None,
            inhibited_by: None,
            held_until: None,
            repeats: 0,
            told_at: None,
            clearing_since: None,
        }
    }
}

/// Notifications waiting for a channel's digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestQueue {
    pub opened_at: Timestamp,
    pub items: Vec<DispatchItem>,
}

impl DigestQueue {
    /// Appends `item` to `channel`'s queue in `queues`, opening it at `now` if needed.
    fn push(
        queues: &mut BTreeMap<String, DigestQueue>,
        channel: &str,
        item: DispatchItem,
        now: Timestamp,
    ) {
        queues
            .entry(channel.to_string())
            .or_insert_with(|| DigestQueue {
                opened_at: now,
                items: Vec::new(),
            })
            .items
            .push(item);
    }
}

/// The engine's durable state, written to `kpulse-state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version; a snapshot of another version is ignored, never misread.
    pub version: u32,
    /// Last time each key was sent.
    pub dedupe: Vec<(AlertKey, Timestamp)>,
    pub active: Vec<ActiveAlert>,
    pub digest: BTreeMap<String, DigestQueue>,
    /// Open incidents, by workload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub incidents: BTreeMap<String, Incident>,
    /// Silences that started, by id: their notices and what they held back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub silences: BTreeMap<String, SilenceRecord>,
    /// Open maintenance windows, by name: what they held back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maintenance: BTreeMap<String, WindowRecord>,
    /// Per channel, messages beyond its rate budget, waiting to go out as one digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overflow: BTreeMap<String, DigestQueue>,
}

impl Snapshot {
    pub const VERSION: u32 = 1;

    /// Whether there is nothing to remember: no alert, notice, digest, incident, silence or
    /// maintenance window.
    pub fn is_empty(&self) -> bool {
        self.dedupe.is_empty()
            && self.active.is_empty()
            && self.digest.values().all(|q| q.items.is_empty())
            && self.incidents.is_empty()
            && self.silences.is_empty()
            && self.maintenance.is_empty()
            && self.overflow.values().all(|q| q.items.is_empty())
    }
}

/// What `kpulse route-test` prints for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub route: Route,
    /// Per channel: true when the alert would be batched into the digest.
    pub digest: Vec<(String, bool)>,
    /// The severity it is sent with, after `severity_rules`.
    pub severity: Severity,
    /// Index of the severity rule that set it, if one did.
    pub severity_rule: Option<usize>,
    /// The incident it joins (its workload's) instead of being sent on its own, or the open
    /// incident of its pods it would fold into.
    pub incident: Option<IncidentJoin>,
    /// The inhibit rules that hold it back while a matching source fires.
    pub inhibit_rules: Vec<String>,
    /// The silence that keeps it from being sent now, if one does.
    pub silence: Option<String>,
    /// The maintenance windows that match it: name, and until when it is open (`None`: closed
    /// now, with when it next opens).
    pub maintenance: Vec<WindowUse>,
}

/// A maintenance window that matches an alert, for `route-test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowUse {
    pub name: String,
    pub open_until: Option<Timestamp>,
    pub next_open: Option<Timestamp>,
}

/// How an alert joins an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentJoin {
    /// A pod alert: joins (or opens) its workload's incident.
    Member(String),
    /// A workload's own alert: folds into its pods' incident when one is open.
    Folds(String),
}

/// The alert engine. See the module docs.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    dedupe: HashMap<AlertKey, Timestamp>,
    active: BTreeMap<AlertKey, ActiveAlert>,
    digest: BTreeMap<String, DigestQueue>,
    /// When each resending channel last had its active alerts sent again. Not persisted: after a
    /// restart or a leader change the first tick re-sends at once, which is what a receiver that
    /// may have expired them needs.
    resent: BTreeMap<String, Timestamp>,
    incidents: BTreeMap<String, Incident>,
    silences: Silences,
    /// What each silence that started has done (its notices, what it held back).
    silence_log: BTreeMap<String, SilenceRecord>,
    /// Open maintenance windows that held something back.
    window_log: BTreeMap<String, WindowRecord>,
    /// Per channel, the tokens left in its rate budget and when they were counted. Not
    /// persisted: a restart starts with full budgets.
    buckets: BTreeMap<String, (f64, Timestamp)>,
    /// Per channel, what waits for its budget.
    overflow: BTreeMap<String, DigestQueue>,
    /// Per maintenance window: from when until when its state is known, and when it closes if
    /// open.
    window_cache: HashMap<String, (Timestamp, Timestamp, Option<Timestamp>)>,
}

/// What keeps an alert from being sent now.
enum Held {
    Silence(String),
    Window(String),
}

impl Engine {
    pub fn new(settings: Settings) -> Self {
        let mut engine = Engine {
            settings,
            dedupe: HashMap::new(),
            active: BTreeMap::new(),
            digest: BTreeMap::new(),
            resent: BTreeMap::new(),
            incidents: BTreeMap::new(),
            silences: Silences::default(),
            silence_log: BTreeMap::new(),
            window_log: BTreeMap::new(),
            buckets: BTreeMap::new(),
            overflow: BTreeMap::new(),
            window_cache: HashMap::new(),
        };
        engine.compile_config_silences();
        engine
    }

    /// Replaces routing and timing with a new configuration; state is kept.
    pub fn reconfigure(&mut self, settings: Settings) {
        self.settings = settings;
        self.window_cache.clear();
        self.compile_config_silences();
    }

    fn compile_config_silences(&mut self) {
        self.silences.config = self
            .settings
            .silences
            .iter()
            .filter_map(|s| Compiled::new(s.clone(), Origin::Config).ok())
            .collect();
    }

    /// Replaces the run-time silences (the ConfigMap `kpulse-silences`) and sends the notices of
    /// those that start or end with the change. Invalid ones are skipped: their reader reports
    /// them.
    pub fn set_silences(&mut self, runtime: Vec<Silence>, now: Timestamp) -> Outcome {
        self.silences.runtime = runtime
            .into_iter()
            .filter_map(|s| Compiled::new(s, Origin::Runtime).ok())
            .collect();
        self.silences.runtime_known = true;
        self.silence_transitions(now)
    }

    /// Every silence in force (configured and run-time), with what it did so far.
    pub fn silences(&self) -> Vec<(Silence, Origin, Option<SilenceRecord>)> {
        self.silences
            .iter()
            .map(|c| {
                (
                    c.silence.clone(),
                    c.origin,
                    self.silence_log.get(&c.silence.id).cloned(),
                )
            })
            .collect()
    }

    /// The silence active at `now` that matches `alert`, if one does.
    pub fn silenced_by(&self, alert: &Alert, now: Timestamp) -> Option<String> {
        self.silences
            .matching(alert, now)
            .map(|s| s.silence.id.clone())
    }

    /// The silence that keeps `alert` from being sent now, recording that it held it back, and
    /// whether this is the first time it did.
    fn silence(&mut self, alert: &Alert, now: Timestamp) -> Option<(String, bool)> {
        let s = self.silences.matching(alert, now)?;
        let id = s.silence.id.clone();
        let first = self
            .silence_log
            .entry(id.clone())
            .or_insert_with(|| silence::SilenceRecord::new(s))
            .hold(&alert.key);
        Some((id, first))
    }

    /// The silence or open maintenance window that keeps `alert` from being sent now, recording
    /// that it held it back, and whether this is the first time it did.
    fn hold_back(&mut self, alert: &Alert, now: Timestamp) -> Option<(Held, bool)> {
        if let Some((id, first)) = self.silence(alert, now) {
            return Some((Held::Silence(id), first));
        }
        let (name, closes) = self.open_window(alert, now)?;
        let first = self
            .window_log
            .entry(name.clone())
            .or_insert_with(|| WindowRecord::new(now, closes))
            .hold(alert);
        Some((Held::Window(name), first))
    }

    /// Whether a silence or an open window would hold `alert` back now, recording nothing.
    fn held(&mut self, alert: &Alert, now: Timestamp) -> bool {
        self.silences.matching(alert, now).is_some() || self.open_window(alert, now).is_some()
    }

    /// The first maintenance window matching `alert` that is open at `now`, and when it closes.
    fn open_window(&mut self, alert: &Alert, now: Timestamp) -> Option<(String, Timestamp)> {
        for i in 0..self.settings.maintenance.len() {
            if !self.settings.maintenance[i].matches(alert) {
                continue;
            }
            if let Some(closes) = self.window_closes(i, now) {
                return Some((self.settings.maintenance[i].name.clone(), closes));
            }
        }
        None
    }

    /// When window `i` closes if it is open at `now`. The cron search runs once per change of
    /// the window (it opens or closes), not once per alert.
    fn window_closes(&mut self, i: usize, now: Timestamp) -> Option<Timestamp> {
        let w = &self.settings.maintenance[i];
        if let Some(&(from, until, closes)) = self.window_cache.get(&w.name)
            && from <= now
            && now < until
        {
            return closes;
        }
        let closes = w.open_until(now);
        let until = closes.or_else(|| w.next_open(now)).unwrap_or(now);
        self.window_cache
            .insert(w.name.clone(), (now, until, closes));
        closes
    }

    fn held_decision(held: Held, alert: &Alert) -> Decision {
        let (key, severity) = (alert.key.clone(), alert.severity);
        match held {
            Held::Silence(silence) => Decision::Silenced {
                key,
                severity,
                silence,
            },
            Held::Window(window) => Decision::InMaintenance {
                key,
                severity,
                window,
            },
        }
    }

    /// Reminders of alerts still firing `repeat.interval` after they were last sent.
    fn repeat_due(&mut self, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        if self.settings.repeat.is_empty() {
            return outcome;
        }
        let max = self.settings.repeat_max;
        let due: Vec<AlertKey> = self
            .active
            .values()
            .filter(|a| a.notified && a.member_of.is_none() && a.repeats < max)
            .filter(|a| a.clearing_since.is_none())
            .filter(|a| {
                self.settings
                    .repeat
                    .get(&a.alert.severity)
                    .is_some_and(|every| a.told_at.unwrap_or(a.since) + *every <= now)
            })
            .map(|a| a.alert.key.clone())
            .collect();
        for key in due {
            let Some(alert) = self.active.get(&key).map(|a| a.alert.clone()) else {
                continue;
            };
            // Silenced or in maintenance: not now, and not counted.
            if self.held(&alert, now) {
                continue;
            }
            let Some(a) = self.active.get_mut(&key) else {
                continue;
            };
            a.repeats += 1;
            a.told_at = Some(now);
            let (n, since) = (a.repeats, a.since);
            let (channels, refs) = (a.channels.clone(), a.refs.clone());
            let reminder = alert.field(
                "Reminder",
                format!(
                    "{n} of {max}: still firing since {}",
                    crate::alert::display_time(since)
                ),
            );
            self.send_to(
                State::Firing,
                &reminder,
                &channels,
                &refs,
                now,
                &mut outcome,
            );
            outcome.decisions.push(Decision::Repeated {
                key,
                severity: reminder.severity,
                channels,
                n,
            });
        }
        outcome
    }

    /// Closes maintenance windows whose time is up (or that left the configuration): the
    /// summary, then what they held back that still fires.
    fn window_transitions(&mut self, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        let closed: Vec<String> = self
            .window_log
            .iter()
            .filter(|(name, r)| {
                r.closes_at <= now || !self.settings.maintenance.iter().any(|w| &w.name == *name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in closed {
            let Some(record) = self.window_log.remove(&name) else {
                continue;
            };
            let still = self.still_held(record.held.iter().map(|(k, ..)| k));
            let drop = self
                .settings
                .maintenance
                .iter()
                .any(|w| w.name == name && w.action == crate::config::MaintenanceAction::Drop);
            if !drop && record.held_count > 0 {
                let summary = maintenance::summary(&name, &record, &still, now);
                let mut channels: BTreeSet<String> = record
                    .held
                    .iter()
                    .filter_map(|(k, ..)| self.active.get(k))
                    .flat_map(|a| self.settings.router.route(&a.alert).channels)
                    .collect();
                if channels.is_empty() {
                    channels.extend(self.settings.router.route(&summary).channels);
                }
                let channels: Vec<String> = channels.into_iter().collect();
                self.notify(summary, &channels, now, &mut outcome);
            }
            outcome.merge(self.send_held(still, now));
        }
        outcome
    }

    /// The keys among `held` that are still active, unsent and free to be sent.
    fn still_held<'a>(&self, held: impl Iterator<Item = &'a AlertKey>) -> Vec<AlertKey> {
        held.filter(|k| {
            self.active.get(*k).is_some_and(|a| {
                !a.notified
                    && a.member_of.is_none()
                    && a.inhibited_by.is_none()
                    && a.held_until.is_none()
            })
        })
        .cloned()
        .collect()
    }

    /// Sends what a silence or window held back that still fires.
    fn send_held(&mut self, keys: Vec<AlertKey>, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        for key in keys {
            let Some(alert) = self.active.get(&key).map(|a| a.alert.clone()) else {
                continue;
            };
            let (o, channels) = self.fire(&alert, now);
            outcome.merge(o);
            if let Some(a) = self.active.get_mut(&key) {
                a.notified = !channels.is_empty();
                a.channels = channels;
            }
        }
        outcome
    }

    /// Start notices of silences that became active, end notices of those that ended (and the
    /// alerts they held back that still fire, sent now).
    fn silence_transitions(&mut self, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        let starting: Vec<Compiled> = self
            .silences
            .iter()
            .filter(|s| s.silence.active(now))
            .filter(|s| {
                !self
                    .silence_log
                    .get(&s.silence.id)
                    .is_some_and(|r| r.started)
            })
            .cloned()
            .collect();
        for s in starting {
            let mut channels: BTreeSet<String> = self
                .active
                .values()
                .filter(|a| a.notified && s.matches(&a.alert))
                .flat_map(|a| a.channels.iter().cloned())
                .collect();
            let record = self
                .silence_log
                .entry(s.silence.id.clone())
                .or_insert_with(|| silence::SilenceRecord::new(&s));
            record.started = true;
            let notice = silence::notice(&s.silence.id, record, true, now);
            if channels.is_empty() {
                channels.extend(self.settings.router.route(&notice).channels);
            }
            record.channels = channels.into_iter().collect();
            let channels = record.channels.clone();
            self.notify(notice, &channels, now, &mut outcome);
        }
        let defined = self.silences.by_id();
        let ended: Vec<String> = self
            .silence_log
            .iter()
            .filter(|(id, r)| match defined.get(id.as_str()) {
                Some(s) => !s.silence.active(now),
                None => r.origin == Origin::Config || self.silences.runtime_known,
            })
            .map(|(id, _)| id.clone())
            .collect();
        drop(defined);
        for id in ended {
            let Some(record) = self.silence_log.remove(&id) else {
                continue;
            };
            let still = self.still_held(record.held.iter());
            if record.started {
                let mut channels: BTreeSet<String> = record.channels.iter().cloned().collect();
                for k in &still {
                    if let Some(a) = self.active.get(k) {
                        channels.extend(self.settings.router.route(&a.alert).channels);
                    }
                }
                let notice = silence::notice(&id, &record, false, now);
                let channels: Vec<String> = channels.into_iter().collect();
                self.notify(notice, &channels, now, &mut outcome);
            }
            outcome.merge(self.send_held(still, now));
        }
        outcome
    }

    /// Sends a notice about kpulse's own doing (a silence starting or ending) to `channels` at
    /// once, never into a digest.
    fn notify(
        &mut self,
        notice: Alert,
        channels: &[String],
        now: Timestamp,
        outcome: &mut Outcome,
    ) {
        for channel in channels {
            outcome.dispatches.push(Dispatch {
                channel: channel.clone(),
                kind: DispatchKind::Immediate,
                notifications: vec![DispatchItem {
                    notification: Notification {
                        state: State::Firing,
                        alert: notice.clone(),
                        at: now,
                    },
                    reference: None,
                }],
            });
        }
        outcome.decisions.push(Decision::Fired {
            key: notice.key,
            severity: notice.severity,
            channels: channels.to_vec(),
            rule: None,
        });
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Reports a fact. A resolvable alert joins the active set and fires once; while active,
    /// repeats are dropped. A one-shot alert fires at most once per `dedupe.window`.
    pub fn submit(&mut self, mut alert: Alert, now: Timestamp) -> Outcome {
        self.settings.severity_rules.apply(&mut alert);
        self.settings.escalate(&mut alert);
        let key = alert.key.clone();
        if alert.resolvable {
            if let Some(active) = self.active.get_mut(&key) {
                // Fired again while its resolution waited: the flap says nothing.
                active.clearing_since = None;
                let escalated = alert.severity > active.alert.severity && active.notified;
                if let Some(incident) = active
                    .member_of
                    .as_ref()
                    .and_then(|g| self.incidents.get_mut(g))
                {
                    incident.severity = incident.severity.max(alert.severity);
                }
                if active.notified && !escalated {
                    // Still firing: nothing to send, and not a duplicate worth counting. The
                    // alert keeps what was told (title, severity, detail), so its resolution
                    // repeats the message that fired rather than the last observed state.
                    return Outcome::default();
                }
                let first_seen = active.alert.first_seen.min(alert.first_seen);
                active.alert = alert;
                active.alert.first_seen = first_seen;
                if !escalated {
                    return Outcome::default();
                }
                // Worse than what was sent (warning → critical): notify again, routed for the
                // new severity; the resolution later goes to every channel told so far.
                let alert = active.alert.clone();
                let (outcome, channels) = self.fire(&alert, now);
                if let Some(active) = self.active.get_mut(&key) {
                    active.told_at = Some(now);
                    for c in channels {
                        if !active.channels.contains(&c) {
                            active.channels.push(c);
                        }
                    }
                }
                return outcome;
            }
            if let Some((by, rule)) = self.inhibitor(&alert) {
                let decision = Decision::Inhibited {
                    key: key.clone(),
                    severity: alert.severity,
                    by: by.clone(),
                    rule,
                };
                let held = ActiveAlert {
                    inhibited_by: Some(by),
                    ..ActiveAlert::new(alert, now, Vec::new())
                };
                self.active.insert(key, held);
                return Outcome {
                    dispatches: Vec::new(),
                    decisions: vec![decision],
                };
            }
            if let Some(group) = self.group(&alert) {
                return self.join(group, alert, now);
            }
            // Without resolutions the user never heard this ended, so a re-fire inside the
            // window would be a repeat; with resolutions on, it is news and is sent.
            let repeat = !self.settings.resolution_enabled && self.within_window(&key, now);
            let (outcome, channels) = if repeat {
                let d = Decision::Deduped {
                    key: key.clone(),
                    severity: alert.severity,
                };
                (
                    Outcome {
                        dispatches: Vec::new(),
                        decisions: vec![d],
                    },
                    Vec::new(),
                )
            } else {
                self.fire(&alert, now)
            };
            // A deduped repeat went to no channel: not notified.
            self.active
                .insert(key, ActiveAlert::new(alert, now, channels));
            outcome
        } else {
            if self.within_window(&key, now) {
                return Outcome {
                    dispatches: Vec::new(),
                    decisions: vec![Decision::Deduped {
                        key,
                        severity: alert.severity,
                    }],
                };
            }
            if let Some((by, rule)) = self.inhibitor(&alert) {
                return Outcome {
                    dispatches: Vec::new(),
                    decisions: vec![Decision::Inhibited {
                        key,
                        severity: alert.severity,
                        by,
                        rule,
                    }],
                };
            }
            if let Some(group) = self.group(&alert) {
                self.dedupe.insert(key, now);
                return self.join(group, alert, now);
            }
            self.fire(&alert, now).0
        }
    }

    /// The sent, firing alert that holds `alert` back, and the rule, if one does.
    fn inhibitor(&self, alert: &Alert) -> Option<(AlertKey, String)> {
        let rules = &self.settings.inhibit;
        if !rules.targets(alert) {
            return None;
        }
        // Only alerts that were sent hold others back: checked first, it is the cheap part.
        self.active
            .values()
            .filter(|s| s.notified && s.inhibited_by.is_none())
            .find_map(|s| {
                let rule = rules.holds(&s.alert, alert)?;
                Some((s.alert.key.clone(), rule.to_string()))
            })
    }

    /// `source` stopped firing: what it held back is sent after `group_wait` if it still holds
    /// (so pods that recover with their node or rollout say nothing).
    fn release_held(&mut self, source: &AlertKey, now: Timestamp) {
        let wait = self.settings.incidents.group_wait;
        for a in self.active.values_mut() {
            if a.inhibited_by.as_ref() == Some(source) {
                a.inhibited_by = None;
                a.held_until = Some(now + wait);
            }
        }
    }

    /// Held-back alerts whose source cleared long enough ago: decided anew, as if just found.
    fn submit_released(&mut self, now: Timestamp) -> Outcome {
        let due: Vec<AlertKey> = self
            .active
            .values()
            .filter(|a| a.held_until.is_some_and(|t| t <= now))
            .map(|a| a.alert.key.clone())
            .collect();
        let mut outcome = Outcome::default();
        for key in due {
            if let Some(a) = self.active.remove(&key) {
                outcome.merge(self.submit(a.alert, now));
            }
        }
        outcome
    }

    /// The incident `alert` opens or joins, if it is grouped.
    fn group(&self, alert: &Alert) -> Option<String> {
        if !self.settings.incidents.enabled {
            return None;
        }
        incident::group_of(alert)
            .or_else(|| incident::fold_of(alert).filter(|g| self.incidents.contains_key(g)))
    }

    /// `alert` joins (or opens) the incident `group`; nothing is sent now.
    fn join(&mut self, group: String, alert: Alert, now: Timestamp) -> Outcome {
        let incident = self
            .incidents
            .entry(group.clone())
            .or_insert_with(|| Incident::open(&alert, now));
        incident.join(&alert);
        for rule in &self.settings.escalation {
            if let Some(s) = rule.by_pods(&alert, incident.pods.len()) {
                incident.severity = incident.severity.max(s);
            }
        }
        if let Some(told) = incident.told.as_ref()
            && let Some(a) = self.active.get_mut(&told.key)
        {
            a.clearing_since = None;
        }
        let decision = Decision::Grouped {
            key: alert.key.clone(),
            severity: alert.severity,
            incident: group.clone(),
        };
        if alert.resolvable {
            let key = alert.key.clone();
            let member = ActiveAlert {
                member_of: Some(group),
                ..ActiveAlert::new(alert, now, Vec::new())
            };
            self.active.insert(key, member);
        }
        Outcome {
            dispatches: Vec::new(),
            decisions: vec![decision],
        }
    }

    /// A member of `group` cleared: the incident resolves once every member has.
    fn member_cleared(&mut self, group: &str, key: &AlertKey, now: Timestamp) -> Outcome {
        let Some(incident) = self.incidents.get_mut(group) else {
            return Outcome::default();
        };
        incident.members.remove(key);
        if !incident.members.is_empty() {
            return Outcome::default();
        }
        match incident.told.clone() {
            // With resolution.hold the incident stays open while its resolution waits, so a
            // member firing again rejoins it.
            Some(told) if self.settings.resolve_hold.is_positive() => self.resolve(&told.key, now),
            Some(told) => {
                self.incidents.remove(group);
                self.resolve(&told.key, now)
            }
            // Cleared within group_wait: nothing was said, nothing to say (notices still go out).
            None if incident.notices == 0 => {
                self.incidents.remove(group);
                Outcome::default()
            }
            None => Outcome::default(),
        }
    }

    /// Sends incidents whose `group_wait` has passed, and updates of grown ones.
    fn release_incidents(&mut self, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        let groups: Vec<String> = self.incidents.keys().cloned().collect();
        for group in groups {
            outcome.merge(self.release(&group, now));
        }
        outcome
    }

    fn release(&mut self, group: &str, now: Timestamp) -> Outcome {
        let IncidentSettings {
            group_wait,
            group_interval,
            ..
        } = self.settings.incidents;
        let Some(incident) = self.incidents.get(group) else {
            return Outcome::default();
        };
        if let Some(told) = &incident.told {
            if !incident.grew() || told.at + group_interval > now {
                return Outcome::default();
            }
            // Silenced or in maintenance: no follow-up now; the first tick after it ends sends it.
            let alert = incident.alert();
            if let Some((held, first)) = self.hold_back(&alert, now) {
                let mut outcome = Outcome::default();
                if first {
                    outcome.decisions.push(Self::held_decision(held, &alert));
                }
                return outcome;
            }
            return self.update(group, now);
        }
        if incident.opened_at + group_wait > now {
            return Outcome::default();
        }
        let incident = self.incidents.remove(group).expect("present");
        if incident.single() {
            // One alert: told as itself.
            let Some(member) = incident.members.first() else {
                return self.fire(&incident.first, now).0;
            };
            let Some(alert) = self.active.get(member).map(|a| a.alert.clone()) else {
                return Outcome::default();
            };
            let (outcome, channels) = self.fire(&alert, now);
            if let Some(a) = self.active.get_mut(member) {
                a.member_of = None;
                a.notified = !channels.is_empty();
                a.channels = channels;
            }
            return outcome;
        }
        let alert = incident.alert();
        if !alert.resolvable {
            return self.fire(&alert, now).0;
        }
        let (outcome, channels) = self.fire(&alert, now);
        let key = alert.key.clone();
        let told = Told {
            key: key.clone(),
            at: now,
            pods: incident.pods.len(),
            severity: incident.severity,
        };
        let told_alert = ActiveAlert {
            incident: Some(group.to_string()),
            ..ActiveAlert::new(alert, now, channels)
        };
        self.active.insert(key, told_alert);
        self.incidents.insert(
            group.to_string(),
            Incident {
                told: Some(told),
                ..incident
            },
        );
        outcome
    }

    /// An incident already told grew: one update to the channels it went to.
    fn update(&mut self, group: &str, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        let Some(incident) = self.incidents.get_mut(group) else {
            return outcome;
        };
        let alert = incident.alert();
        let Some(told) = incident.told.as_mut() else {
            return outcome;
        };
        let raised = incident.severity > told.severity;
        told.at = now;
        told.pods = incident.pods.len();
        told.severity = incident.severity;
        let key = told.key.clone();
        // A higher severity also reaches the channels it routes to (the pager).
        let more = if raised {
            self.settings.router.route(&alert).channels
        } else {
            Vec::new()
        };
        let Some(active) = self.active.get_mut(&key) else {
            return outcome;
        };
        active.alert = alert.clone();
        active.told_at = Some(now);
        for c in more {
            if !active.channels.contains(&c) {
                active.channels.push(c);
            }
        }
        let (channels, refs) = (active.channels.clone(), active.refs.clone());
        self.send_to(State::Firing, &alert, &channels, &refs, now, &mut outcome);
        outcome.decisions.push(Decision::Fired {
            key,
            severity: alert.severity,
            channels,
            rule: None,
        });
        outcome
    }

    /// A monitor's complete view of what is firing within `scope`: new alerts fire, active
    /// alerts of this monitor in the scope that are no longer found resolve. A holding finding
    /// (a condition clearing, not yet for long enough) keeps its alert active but never starts
    /// one.
    pub fn reconcile(
        &mut self,
        monitor: &str,
        scope: &Scope,
        findings: Vec<Finding>,
        now: Timestamp,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let keys: BTreeSet<AlertKey> = findings.iter().map(|f| f.alert.key.clone()).collect();
        let cleared: Vec<AlertKey> = self
            .active
            .range(scope.first_key(monitor)..)
            .take_while(|(k, _)| k.monitor == monitor && (!scope.contiguous() || scope.covers(k)))
            .filter(|(k, a)| scope.covers(k) && !keys.contains(*k) && a.incident.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for Finding {
            mut alert,
            hold_only,
        } in findings
        {
            if hold_only {
                // Not done clearing, in the monitor's words: its resolution does not run yet.
                if let Some(a) = self.active.get_mut(&alert.key) {
                    a.clearing_since = None;
                }
                continue;
            }
            alert.resolvable = true;
            outcome.merge(self.submit(alert, now));
        }
        for key in cleared {
            outcome.merge(self.resolve(&key, now));
        }
        outcome
    }

    /// The condition behind `key` cleared. Unknown keys are ignored. With `resolution.hold`, a
    /// sent alert's resolution waits that long (see [`Engine::tick`]).
    pub fn resolve(&mut self, key: &AlertKey, now: Timestamp) -> Outcome {
        let hold = self.settings.resolve_hold.is_positive() && self.settings.resolution_enabled;
        if let Some(a) = self.active.get_mut(key)
            && hold
            && a.notified
            && a.member_of.is_none()
        {
            a.clearing_since.get_or_insert(now);
            return Outcome::default();
        }
        self.resolve_now(key, now)
    }

    /// Resolutions whose `resolution.hold` has passed.
    fn settle_cleared(&mut self, now: Timestamp) -> Outcome {
        let hold = self.settings.resolve_hold;
        let due: Vec<(AlertKey, Option<String>)> = self
            .active
            .values()
            .filter(|a| a.clearing_since.is_some_and(|t| t + hold <= now))
            .map(|a| (a.alert.key.clone(), a.incident.clone()))
            .collect();
        let mut outcome = Outcome::default();
        for (key, incident) in due {
            if let Some(group) = incident {
                if self
                    .incidents
                    .get(&group)
                    .is_some_and(|i| !i.members.is_empty())
                {
                    continue;
                }
                self.incidents.remove(&group);
            }
            outcome.merge(self.resolve_now(&key, now));
        }
        outcome
    }

    fn resolve_now(&mut self, key: &AlertKey, now: Timestamp) -> Outcome {
        let Some(entry) = self.active.remove(key) else {
            return Outcome::default();
        };
        self.release_held(key, now);
        if let Some(group) = &entry.member_of {
            let mut outcome = Outcome {
                dispatches: Vec::new(),
                decisions: vec![Decision::ResolvedSilently { key: key.clone() }],
            };
            outcome.merge(self.member_cleared(group, key, now));
            return outcome;
        }
        if !self.settings.resolution_enabled || !entry.notified {
            return Outcome {
                dispatches: Vec::new(),
                decisions: vec![Decision::ResolvedSilently { key: key.clone() }],
            };
        }
        let severity = entry.alert.severity;
        let mut outcome = Outcome::default();
        self.send_to(
            State::Resolved,
            &entry.alert,
            &entry.channels,
            &entry.refs,
            now,
            &mut outcome,
        );
        outcome.decisions.push(Decision::Resolved {
            key: key.clone(),
            severity,
            channels: entry.channels,
        });
        outcome
    }

    /// Sends digests whose interval has passed, re-sends active alerts to channels whose resend
    /// interval has passed, and forgets dedupe entries older than the window.
    pub fn tick(&mut self, now: Timestamp) -> Outcome {
        let mut outcome = self.silence_transitions(now);
        outcome.merge(self.window_transitions(now));
        outcome.merge(self.submit_released(now));
        outcome.merge(self.repeat_due(now));
        outcome.merge(self.settle_cleared(now));
        outcome.merge(self.flush_overflow(now));
        outcome.merge(self.release_incidents(now));
        // Resends first: a digest about to go out now is not also resent.
        for (channel, every) in &self.settings.resend {
            if self
                .resent
                .get(channel)
                .is_some_and(|at| *at + *every > now)
            {
                continue;
            }
            self.resent.insert(channel.clone(), now);
            // Alerts told to this channel, except those whose firing still waits in its digest.
            let queued: BTreeSet<&AlertKey> = self
                .digest
                .get(channel)
                .into_iter()
                .flat_map(|q| &q.items)
                .map(|i| &i.notification.alert.key)
                .collect();
            let items: Vec<DispatchItem> = self
                .active
                .values()
                .filter(|a| a.notified && a.channels.contains(channel))
                .filter(|a| !queued.contains(&a.alert.key))
                .map(|a| DispatchItem {
                    notification: Notification {
                        state: State::Firing,
                        alert: a.alert.clone(),
                        at: now,
                    },
                    reference: a.refs.get(channel).cloned(),
                })
                .collect();
            if !items.is_empty() {
                outcome.dispatches.push(Dispatch {
                    channel: channel.clone(),
                    kind: DispatchKind::Resend,
                    notifications: items,
                });
            }
        }
        let interval = self.settings.digest_interval;
        let due: Vec<String> = self
            .digest
            .iter()
            .filter(|(_, q)| q.opened_at + interval <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for channel in due {
            if let Some(q) = self.digest.remove(&channel) {
                outcome.dispatches.push(Dispatch {
                    channel,
                    kind: DispatchKind::Digest,
                    notifications: q.items,
                });
            }
        }
        let window = self.settings.window;
        self.dedupe.retain(|_, sent| *sent + window > now);
        outcome
    }

    /// When the next digest is due, if any is pending.
    pub fn next_digest_due(&self) -> Option<Timestamp> {
        self.digest
            .values()
            .map(|q| q.opened_at + self.settings.digest_interval)
            .min()
    }

    /// Forgets every active alert of `monitor` without sending anything (the monitor was switched
    /// off). Returns how many were dropped.
    pub fn drop_monitor(&mut self, monitor: &str) -> usize {
        let before = self.active.len();
        self.active.retain(|k, _| k.monitor != monitor);
        self.release_orphans();
        // Incidents of that monitor's alerts go too, silently, like their members.
        let gone: Vec<String> = self
            .incidents
            .iter_mut()
            .filter_map(|(g, i)| {
                i.members.retain(|k| k.monitor != monitor);
                (i.members.is_empty() && (i.notices == 0 || i.told.is_some())).then(|| g.clone())
            })
            .collect();
        for group in gone {
            if let Some(told) = self.incidents.remove(&group).and_then(|i| i.told) {
                self.active.remove(&told.key);
            }
        }
        before - self.active.len()
    }

    /// Makes every resending channel due at the next tick (this replica just became leader: what
    /// it decided as a standby was never sent).
    pub fn resend_now(&mut self) {
        self.resent.clear();
    }

    /// Records the provider reference a sink returned for the firing message of `key`.
    pub fn set_reference(&mut self, key: &AlertKey, channel: &str, reference: String) {
        if let Some(a) = self.active.get_mut(key) {
            a.refs.insert(channel.to_string(), reference);
        }
    }

    /// Where an alert would go at `now`, without changing any state.
    pub fn explain(&self, alert: &Alert, now: Timestamp) -> Explanation {
        let mut alert = alert.clone();
        let severity_rule = self.settings.severity_rules.apply(&mut alert);
        let incident = if self.settings.incidents.enabled {
            incident::group_of(&alert)
                .map(IncidentJoin::Member)
                .or_else(|| incident::fold_of(&alert).map(IncidentJoin::Folds))
        } else {
            None
        };
        let route = self.settings.router.route(&alert);
        let digest = route
            .channels
            .iter()
            .map(|c| (c.clone(), self.settings.digested(alert.severity)))
            .collect();
        Explanation {
            route,
            digest,
            severity: alert.severity,
            severity_rule,
            incident,
            inhibit_rules: self
                .settings
                .inhibit
                .targeting(&alert)
                .into_iter()
                .map(String::from)
                .collect(),
            silence: self.silenced_by(&alert, now),
            maintenance: self
                .settings
                .maintenance
                .iter()
                .filter(|w| w.matches(&alert))
                .map(|w| WindowUse {
                    name: w.name.clone(),
                    open_until: w.open_until(now),
                    next_open: w.next_open(now),
                })
                .collect(),
        }
    }

    pub fn active(&self) -> impl Iterator<Item = &ActiveAlert> {
        self.active.values()
    }

    /// Open maintenance windows that held something back, by name.
    pub fn open_windows(&self) -> impl Iterator<Item = (&String, &WindowRecord)> {
        self.window_log.iter()
    }

    /// Open incidents, by workload (`namespace/Kind/name`).
    pub fn incidents(&self) -> impl Iterator<Item = (&String, &Incident)> {
        self.incidents.iter()
    }

    pub fn is_active(&self, key: &AlertKey) -> bool {
        self.active.contains_key(key)
    }

    /// Active alerts per monitor (for the `kpulse_active_alerts` gauge).
    pub fn active_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for k in self.active.keys() {
            *counts.entry(k.monitor.clone()).or_insert(0) += 1;
        }
        counts
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut dedupe: Vec<(AlertKey, Timestamp)> =
            self.dedupe.iter().map(|(k, t)| (k.clone(), *t)).collect();
        dedupe.sort();
        Snapshot {
            version: Snapshot::VERSION,
            dedupe,
            active: self.active.values().cloned().collect(),
            digest: self.digest.clone(),
            incidents: self.incidents.clone(),
            silences: self.silence_log.clone(),
            maintenance: self.window_log.clone(),
            overflow: self.overflow.clone(),
        }
    }

    /// Loads a snapshot taken by [`Engine::snapshot`], replacing the current state.
    pub fn restore(&mut self, snapshot: Snapshot) {
        self.dedupe = snapshot.dedupe.into_iter().collect();
        self.active = snapshot
            .active
            .into_iter()
            .map(|a| (a.alert.key.clone(), a))
            .collect();
        self.digest = snapshot.digest;
        self.incidents = snapshot.incidents;
        self.silence_log = snapshot.silences;
        self.window_log = snapshot.maintenance;
        self.overflow = snapshot.overflow;
        self.release_orphans();
    }

    /// Alerts held back by an alert no longer active (its monitor was switched off, or a state
    /// written before it cleared): decided anew at the next tick.
    fn release_orphans(&mut self) {
        let active: BTreeSet<AlertKey> = self.active.keys().cloned().collect();
        for a in self.active.values_mut() {
            if a.inhibited_by.as_ref().is_some_and(|s| !active.contains(s)) {
                a.inhibited_by = None;
                a.held_until = Some(a.since);
            }
        }
    }

    fn within_window(&self, key: &AlertKey, now: Timestamp) -> bool {
        self.dedupe
            .get(key)
            .is_some_and(|sent| now < *sent + self.settings.window)
    }

    /// Routes and sends (or queues) a firing alert. Returns the channels it went to.
    fn fire(&mut self, alert: &Alert, now: Timestamp) -> (Outcome, Vec<String>) {
        let mut outcome = Outcome::default();
        if let Some((held, _)) = self.hold_back(alert, now) {
            outcome.decisions.push(Self::held_decision(held, alert));
            return (outcome, Vec::new());
        }
        let route = self.settings.router.route(alert);
        if route.channels.is_empty() {
            outcome.decisions.push(Decision::Muted {
                key: alert.key.clone(),
                rule: route.rule,
            });
            return (outcome, Vec::new());
        }
        self.dedupe.insert(alert.key.clone(), now);
        for channel in &route.channels {
            let item = DispatchItem {
                notification: Notification {
                    state: State::Firing,
                    alert: alert.clone(),
                    at: now,
                },
                reference: None,
            };
            self.deliver(channel, item, now, &mut outcome);
        }
        outcome.decisions.push(Decision::Fired {
            key: alert.key.clone(),
            severity: alert.severity,
            channels: route.channels.clone(),
            rule: route.rule,
        });
        (outcome, route.channels)
    }

    /// `alert` in `state` to each of `channels`, with the channel's provider reference.
    fn send_to(
        &mut self,
        state: State,
        alert: &Alert,
        channels: &[String],
        refs: &BTreeMap<String, String>,
        now: Timestamp,
        outcome: &mut Outcome,
    ) {
        for channel in channels {
            let item = DispatchItem {
                notification: Notification {
                    state,
                    alert: alert.clone(),
                    at: now,
                },
                reference: refs.get(channel).cloned(),
            };
            self.deliver(channel, item, now, outcome);
        }
    }

    fn deliver(
        &mut self,
        channel: &str,
        item: DispatchItem,
        now: Timestamp,
        outcome: &mut Outcome,
    ) {
        let severity = item.notification.alert.severity;
        if self.settings.digested(severity) {
            outcome.decisions.push(Decision::Digested {
                key: item.notification.alert.key.clone(),
                severity,
                channel: channel.to_string(),
            });
            DigestQueue::push(&mut self.digest, channel, item, now);
        } else if self.settings.budgets.contains_key(channel)
            && (self.overflow.contains_key(channel) || !self.take_token(channel, now))
        {
            // Behind what already waits, or beyond the budget: wait, in order.
            outcome.decisions.push(Decision::RateLimited {
                key: item.notification.alert.key.clone(),
                severity,
                channel: channel.to_string(),
            });
            DigestQueue::push(&mut self.overflow, channel, item, now);
        } else {
            outcome.dispatches.push(Dispatch {
                channel: channel.to_string(),
                kind: DispatchKind::Immediate,
                notifications: vec![item],
            });
        }
    }

    /// Takes one message from `channel`'s budget if it has one left.
    fn take_token(&mut self, channel: &str, now: Timestamp) -> bool {
        let Some(budget) = self.settings.budgets.get(channel) else {
            return true;
        };
        let burst = f64::from(budget.burst.max(1));
        let (tokens, at) = self
            .buckets
            .entry(channel.to_string())
            .or_insert((burst, now));
        let elapsed = now.duration_since(*at).as_secs_f64().max(0.0);
        *tokens = (*tokens + elapsed * f64::from(budget.per_minute) / 60.0).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// What waited for a channel's budget, as one digest once the budget allows.
    fn flush_overflow(&mut self, now: Timestamp) -> Outcome {
        let mut outcome = Outcome::default();
        let waiting: Vec<String> = self.overflow.keys().cloned().collect();
        for channel in waiting {
            let unlimited = !self.settings.budgets.contains_key(&channel);
            if (unlimited || self.take_token(&channel, now))
                && let Some(q) = self.overflow.remove(&channel)
            {
                outcome.dispatches.push(Dispatch {
                    channel,
                    kind: DispatchKind::Digest,
                    notifications: q.items,
                });
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests;
