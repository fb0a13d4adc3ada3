//! Message rendering shared by every sink: the headline, the body lines and filled-in links.

use std::collections::BTreeMap;

use crate::alert::{Notification, State, display_time};
use crate::engine::DispatchItem;

/// Emoji at the start of a headline.
pub fn emoji(state: State) -> &'static str {
    match state {
        State::Firing => "🚨",
        State::Resolved => "✅",
    }
}

/// `[RESOLVED] ` on resolutions, empty otherwise.
pub fn resolved_prefix(state: State) -> &'static str {
    match state {
        State::Firing => "",
        State::Resolved => "[RESOLVED] ",
    }
}

/// `🚨 [prod] checkout/pod/api-7d9f api-7d9f/server OOMKilled` or
/// `✅ [RESOLVED] [prod] checkout/pod/api-7d9f ...`.
pub fn headline(cluster: &str, n: &Notification) -> String {
    format!("{} {}", emoji(n.state), plain_headline(cluster, n))
}

/// The headline without the emoji (email subjects, plain text).
pub fn plain_headline(cluster: &str, n: &Notification) -> String {
    format!(
        "{}[{}] {} {}",
        resolved_prefix(n.state),
        cluster,
        n.alert.key.object(),
        n.alert.title
    )
}

/// The headline of a digest: `[prod] kpulse digest: 3 alerts (2 firing, 1 resolved)`.
pub fn digest_title(cluster: &str, items: &[DispatchItem]) -> String {
    let firing = items
        .iter()
        .filter(|i| i.notification.state == State::Firing)
        .count();
    let resolved = items.len() - firing;
    let noun = if items.len() == 1 { "alert" } else { "alerts" };
    format!(
        "[{cluster}] kpulse digest: {} {noun} ({firing} firing, {resolved} resolved)",
        items.len()
    )
}

/// Red for firing, green for resolved, as `#rrggbb`.
pub fn color(state: State) -> &'static str {
    match state {
        State::Firing => "#d40e0d",
        State::Resolved => "#2eb67d",
    }
}

/// [`color`] as a number (Discord).
pub fn color_rgb(state: State) -> u32 {
    u32::from_str_radix(&color(state)[1..], 16).expect("color() returns #rrggbb")
}

/// The state a whole batch reports: firing if anything in it fires.
pub fn batch_state(items: &[DispatchItem]) -> State {
    if items.iter().any(|i| i.notification.state == State::Firing) {
        State::Firing
    } else {
        State::Resolved
    }
}

/// What happened, or that it is over, in one paragraph.
pub fn summary(n: &Notification) -> String {
    match n.state {
        State::Firing => n.alert.message.clone(),
        State::Resolved => format!("Cleared after {}. It was: {}", since(n), n.alert.message)
            .trim_end()
            .to_string(),
    }
}

/// The message body: the summary, then the facts, then the evidence.
pub fn body(n: &Notification) -> String {
    let mut out = summary(n);
    let facts = facts(n);
    if !facts.is_empty() {
        out.push('\n');
        for (k, v) in facts {
            out.push_str(&format!("\n{k}: {v}"));
        }
    }
    let text = evidence(n).text();
    if !text.is_empty() {
        out.push_str("\n\n");
        out.push_str(&text);
    }
    out
}

/// An alert's evidence as every sink shows it (see [`crate::evidence`]); empty for
/// resolutions.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Shown {
    /// `Likely cause: ...` and `Next step: ...`, a pair per hint.
    pub hints: Vec<(String, String)>,
    /// Exit code decoded, image, memory limit and request, how long it ran, owners, node, and
    /// the object's own facts.
    pub facts: Vec<(String, String)>,
    /// `BackOff (×12): Back-off restarting failed container`.
    pub events: Vec<String>,
    pub log: Vec<String>,
    pub commands: Vec<String>,
}

impl Shown {
    pub fn is_empty(&self) -> bool {
        *self == Shown::default()
    }

    /// As plain text, in sections.
    pub fn text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for (cause, next) in &self.hints {
            parts.push(format!("Likely cause: {cause}\nNext step: {next}"));
        }
        if !self.facts.is_empty() {
            parts.push(
                self.facts
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        if !self.events.is_empty() {
            parts.push(format!(
                "Recent events:\n{}",
                self.events
                    .iter()
                    .map(|e| format!("  {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if !self.log.is_empty() {
            parts.push(format!(
                "Last log lines:\n{}",
                self.log
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if !self.commands.is_empty() {
            parts.push(format!(
                "Next commands:\n{}",
                self.commands
                    .iter()
                    .map(|c| format!("  {c}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        parts.join("\n\n")
    }
}

/// What [`Shown`] holds for `n`.
pub fn evidence(n: &Notification) -> Shown {
    if n.state != State::Firing {
        return Shown::default();
    }
    let e = &n.alert.evidence;
    let mut facts: Vec<(String, String)> = Vec::new();
    // What the alert's own facts or message already say is not repeated.
    let mut fact = |k: &str, v: String| {
        if !v.is_empty() && n.alert.fields.get(k) != Some(&v) && !n.alert.message.contains(&v) {
            facts.push((k.to_string(), v));
        }
    };
    if let Some(c) = &e.container {
        if let Some(code) = c.exit_code {
            let signal = if c.signal.is_empty() || c.exit_meaning.contains(&c.signal) {
                String::new()
            } else {
                format!(", {}", c.signal)
            };
            fact("Exit code", format!("{code}: {}{signal}", c.exit_meaning));
        }
        fact("Container message", c.message.clone());
        fact("Image", c.image.clone());
        let oom = c.reason == "OOMKilled" || n.alert.key.reason == "OOMKilled";
        let limit = match (c.memory_limit.as_str(), oom) {
            ("", true) => "none set".to_string(),
            (l, _) => l.to_string(),
        };
        fact("Memory limit", limit);
        fact("Memory request", c.memory_request.clone());
        fact("Ran for", c.ran_for.clone());
    }
    for (k, v) in &e.facts {
        fact(k, v.clone());
    }
    fact("Owners", e.owners.join(" → "));
    if let Some(node) = &e.node {
        let mut v = node.name.clone();
        if !node.conditions.is_empty() {
            v.push_str(&format!(": {}", node.conditions.join(", ")));
        }
        if !node.allocatable_memory.is_empty() {
            v.push_str(&format!(
                " (allocatable memory {})",
                node.allocatable_memory
            ));
        }
        fact("Node status", v);
    }
    Shown {
        hints: e
            .hints
            .iter()
            .map(|h| (h.cause.clone(), h.next.clone()))
            .collect(),
        facts,
        events: e
            .events
            .iter()
            .map(|ev| {
                let count = if ev.count > 1 {
                    format!(" (×{})", ev.count)
                } else {
                    String::new()
                };
                format!("{}{count}: {}", ev.reason, ev.message)
            })
            .collect(),
        log: e.log.clone(),
        commands: e.commands.clone(),
    }
}

/// Key facts shown by every sink, in a fixed order.
pub fn facts(n: &Notification) -> Vec<(String, String)> {
    let a = &n.alert;
    let mut out = vec![
        ("Severity".to_string(), a.severity.to_string()),
        ("Monitor".to_string(), a.key.monitor.clone()),
        ("Reason".to_string(), a.key.reason.clone()),
    ];
    if let Some(owner) = &a.owner {
        out.push(("Owner".to_string(), owner.clone()));
    }
    if let Some(node) = &a.node {
        out.push(("Node".to_string(), node.clone()));
    }
    for (k, v) in &a.fields {
        out.push((k.clone(), v.clone()));
    }
    out.push(("First seen".to_string(), display_time(a.first_seen)));
    out
}

/// How long the condition lasted, for resolutions.
pub fn since(n: &Notification) -> String {
    let secs = (n.at.as_second() - n.alert.first_seen.as_second()).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// Fills `{placeholder}`s of each link template for this alert.
pub fn links(
    templates: &BTreeMap<String, String>,
    cluster: &str,
    n: &Notification,
) -> Vec<(String, String)> {
    let k = &n.alert.key;
    templates
        .iter()
        .map(|(name, t)| {
            let url = t
                .replace("{cluster}", cluster)
                .replace("{monitor}", &k.monitor)
                .replace("{namespace}", &k.namespace)
                .replace("{kind}", &k.kind)
                .replace("{name}", &k.name)
                .replace("{reason}", &k.reason)
                .replace("{severity}", n.alert.severity.as_str());
            (name.clone(), url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertKey, Severity};
    use crate::engine::DispatchKind;
    use jiff::{SignedDuration, Timestamp};

    fn oom(state: State) -> Notification {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let alert = Alert::new(
            AlertKey::new("pod_crashes", "checkout", "Pod", "api-7d9f", "OOMKilled"),
            Severity::Critical,
            "api-7d9f/server OOMKilled",
            t0,
        )
        .message("Container server in pod checkout/api-7d9f is in state OOMKilled")
        .field("Exit code", "137");
        Notification {
            state,
            alert,
            at: t0 + SignedDuration::from_mins(5),
        }
    }

    #[test]
    fn firing_and_resolved_headlines_read_like_the_product_promises() {
        assert_eq!(
            headline("prod-eks-1", &oom(State::Firing)),
            "🚨 [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled"
        );
        assert_eq!(
            headline("prod-eks-1", &oom(State::Resolved)),
            "✅ [RESOLVED] [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled"
        );
        let b = body(&oom(State::Resolved));
        assert!(
            b.starts_with("Cleared after 5m. It was: Container server"),
            "{b}"
        );
        assert!(b.contains("Exit code: 137"));
    }

    #[test]
    fn digest_titles_count_firing_and_resolved() {
        let items: Vec<DispatchItem> = [State::Firing, State::Resolved, State::Firing]
            .into_iter()
            .map(|s| DispatchItem {
                notification: oom(s),
                reference: None,
            })
            .collect();
        assert_eq!(
            digest_title("prod", &items),
            "[prod] kpulse digest: 3 alerts (2 firing, 1 resolved)"
        );
        assert_eq!(
            digest_title("prod", &items[1..2]),
            "[prod] kpulse digest: 1 alert (0 firing, 1 resolved)"
        );
        assert_eq!(batch_state(&items[1..2]), State::Resolved);
        assert_eq!(batch_state(&items), State::Firing);
        assert_eq!(color_rgb(State::Firing), 0xd40e0d);
        assert_eq!(color_rgb(State::Resolved), 0x2eb67d);
    }

    /// Alerts whose times come from kpulse's own clock (nanoseconds) or an event's microseconds,
    /// made by the real monitors.
    fn alerts_with_sub_second_times(t0: Timestamp, later: Timestamp) -> Vec<Alert> {
        use crate::monitors::watch::ObjectMonitor;
        use crate::monitors::{daemonset_unscheduled, replicas_unavailable, warning_events};
        use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
        use serde_json::{from_value, json};

        let config = crate::config::Config::default();
        let meta = json!({"name": "api", "namespace": "shop", "uid": "u1"});
        let workload_spec = json!({"selector": {}, "template": {}});
        let deployment: Deployment = from_value(json!({"metadata": meta.clone(), "spec": {"replicas": 3, "selector": {}, "template": {}}, "status": {"availableReplicas": 1}})).unwrap();
        let daemonset: DaemonSet = from_value(json!({"metadata": meta, "spec": workload_spec, "status": {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberMisscheduled": 0, "numberReady": 2, "numberUnavailable": 1}})).unwrap();
        let event = from_value(json!({
            "metadata": {"name": "api.1", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": "shop"},
            "type": "Warning", "reason": "FailedAttachVolume", "message": "volume is busy",
            "eventTime": "2026-12-02T18:35:06.123456Z"
        }))
        .unwrap();

        let replicas = replicas_unavailable::ReplicasUnavailable::default();
        let daemons = daemonset_unscheduled::DaemonsetUnscheduled::default();
        assert!(replicas.firing(&config, &deployment, t0).is_empty());
        assert!(daemons.firing(&config, &daemonset, t0).is_empty());
        let mut out: Vec<Alert> = replicas
            .firing(&config, &deployment, later)
            .into_iter()
            .chain(daemons.firing(&config, &daemonset, later))
            .map(|f| f.alert)
            .collect();
        out.push(warning_events::alert(&event, later));
        assert_eq!(out.len(), 3, "{out:#?}");
        out
    }

    /// Every sink's rendering of `batch` as text, without the machine timestamps of JSON
    /// payloads (which keep full precision, see docs/webhook.md).
    fn every_rendering(batch: &crate::sinks::Batch) -> Vec<String> {
        use crate::sinks::{
            alertmanager, discord, email, googlechat, log, opsgenie, pagerduty, slack, teams,
            webhook,
        };
        fn strip(mut v: serde_json::Value) -> String {
            fn walk(v: &mut serde_json::Value) {
                match v {
                    serde_json::Value::Object(m) => {
                        for key in ["at", "first_seen", "timestamp", "startsAt", "endsAt"] {
                            m.remove(key);
                        }
                        m.values_mut().for_each(walk);
                    }
                    serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
                    _ => {}
                }
            }
            walk(&mut v);
            v.to_string()
        }
        let slack_channel = match crate::config::load(
            "channels: {s: {type: slack, webhook_url: 'https://hooks.example/x'}}\nrouting: {default: [s]}\n",
            &Default::default(),
        )
        .unwrap()
        .channels
        .remove("s")
        {
            Some(crate::config::Channel::Slack(c)) => c,
            other => panic!("not a slack channel: {other:?}"),
        };
        let slack = slack::SlackSink::new(&slack_channel).unwrap();
        let mut out = vec![
            email::subject(batch),
            email::text(batch),
            email::html(batch),
            strip(discord::message(batch)),
            strip(teams::message(batch)),
            strip(googlechat::message(batch)),
            strip(webhook::WebhookSink::payload(batch)),
            strip(alertmanager::alerts(batch, Timestamp::UNIX_EPOCH)),
        ];
        out.extend(slack.messages(batch).into_iter().map(|m| strip(m.body)));
        out.extend(
            log::LogSink::lines(batch)
                .iter()
                .map(|l| strip(serde_json::from_str(l).unwrap())),
        );
        for item in &batch.items {
            let n = &item.notification;
            out.push(headline(&batch.cluster, n));
            out.push(body(n));
            out.push(strip(pagerduty::event("rk", batch, n)));
            out.push(strip(opsgenie::body(batch, n)));
        }
        out
    }

    #[test]
    fn every_sink_shows_timestamps_with_whole_seconds() {
        let sub_second = regex::Regex::new(r"\d\d:\d\d:\d\d[.,]\d").unwrap();
        let t0: Timestamp = "2026-12-02T18:35:06.123456789Z".parse().unwrap();
        let later = t0 + SignedDuration::from_mins(20);
        let notify = |state, alert: &Alert, at| DispatchItem {
            notification: Notification {
                state,
                alert: alert.clone(),
                at,
            },
            reference: None,
        };
        let mut items = Vec::new();
        for a in alerts_with_sub_second_times(t0, later) {
            items.push(notify(State::Firing, &a, later));
            items.push(notify(
                State::Resolved,
                &a,
                later + SignedDuration::from_secs(90),
            ));
        }
        let test = crate::sinks::Batch::test("prod", "ops", later);
        let mut batches = vec![test];
        for kind in [DispatchKind::Immediate, DispatchKind::Digest] {
            let per_batch = if kind == DispatchKind::Immediate {
                1
            } else {
                items.len()
            };
            for chunk in items.chunks(per_batch) {
                batches.push(crate::sinks::Batch {
                    cluster: "prod".into(),
                    channel: "ops".into(),
                    kind,
                    items: chunk.to_vec(),
                    links: BTreeMap::new(),
                    at: jiff::Timestamp::UNIX_EPOCH,
                });
            }
        }
        let mut shown = 0;
        for batch in &batches {
            for text in every_rendering(batch) {
                assert!(
                    !sub_second.is_match(&text),
                    "a sub-second timestamp in:\n{text}"
                );
                shown += text.matches("2026-12-02T18:35:06Z").count();
            }
        }
        assert!(shown > 0, "the whole-second form of t0 is shown somewhere");
    }

    #[test]
    fn links_fill_placeholders() {
        let t: BTreeMap<String, String> = [(
            "runbook".to_string(),
            "https://rb.example/{monitor}/{reason}?ns={namespace}&c={cluster}".to_string(),
        )]
        .into();
        assert_eq!(
            links(&t, "prod", &oom(State::Firing)),
            vec![(
                "runbook".to_string(),
                "https://rb.example/pod_crashes/OOMKilled?ns=checkout&c=prod".to_string()
            )]
        );
    }
}
