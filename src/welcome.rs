//! The welcome message: when kpulse runs a configuration it has not announced before (the first
//! start, and each change), the leader sends one message to the channels naming the cluster, the
//! monitors on and where alerts go, so whoever installed kpulse sees that delivery works.
//!
//! Once per configuration: the announced configuration's [`fingerprint`] is kept in
//! `kpulse-state`, so a restart with the same configuration, or a standby taking over, sends
//! nothing. The fingerprint leaves secret values out, so it reveals none, and a change of Secret
//! values alone is not announced. Messages go through the sinks like `POST /test-channel`:
//! [`Registry::deliver`](crate::sinks::Registry::deliver), with its retries and redaction.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use crate::alert::{Alert, AlertKey, Severity};
use crate::config::{Channel, Config, Matcher, Monitors, SecretUse};
use crate::pipeline::Pipeline;
use crate::sinks::Batch;
use crate::state::SharedStore;

/// Channel types that get the message only when `welcome.channels` names them: there it would
/// open an incident that nothing resolves.
pub const PAGING: [&str; 3] = ["pagerduty", "opsgenie", "alertmanager"];

/// SHA-256 of the configuration with every secret value replaced, as hex.
pub fn fingerprint(config: &Config) -> String {
    let mut secrets: BTreeSet<&str> = config
        .channels
        .values()
        .flat_map(Channel::secrets)
        .flat_map(|s| match s {
            SecretUse::Value(v) | SecretUse::Header(v) | SecretUse::Url(v) => vec![v.expose()],
            SecretUse::Login { username, password } => vec![username.expose(), password.expose()],
        })
        .collect();
    secrets.extend(config.http.test_channel_token.iter().map(|t| t.expose()));
    secrets.extend(config.http.silence_token.iter().map(|t| t.expose()));
    let mut value = serde_json::to_value(config).expect("a configuration always serializes");
    redact(&mut value, &secrets);
    let bytes = serde_json::to_vec(&value).expect("a JSON value always serializes");
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn redact(value: &mut Value, secrets: &BTreeSet<&str>) {
    match value {
        Value::String(s) if secrets.contains(s.as_str()) => *s = "<secret>".into(),
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact(v, secrets)),
        _ => {}
    }
}

/// Whether this replica sends the message for `config`.
pub fn due(config: &Config, leader: bool, announced: Option<&str>, fingerprint: &str) -> bool {
    leader && config.welcome.enabled && announced != Some(fingerprint)
}

/// The channels that get the message: `welcome.channels`, else every channel but the paging ones.
pub fn recipients(config: &Config) -> Vec<&str> {
    if !config.welcome.channels.is_empty() {
        return config.welcome.channels.iter().map(String::as_str).collect();
    }
    config
        .channels
        .iter()
        .filter(|(_, c)| !PAGING.contains(&c.type_name()))
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The message for one channel.
pub fn message(config: &Config, channel: &str, fingerprint: &str, now: Timestamp) -> Alert {
    let on: Vec<&str> = Monitors::NAMES
        .into_iter()
        .filter(|m| config.monitors.enabled(m))
        .collect();
    Alert::new(
        AlertKey::new("welcome", "", "Channel", channel, "Welcome"),
        Severity::Info,
        format!("kpulse is watching cluster {}", config.cluster),
        now,
    )
    .message(format!(
        "kpulse {} delivers alerts to this channel. This message comes once for each new configuration; `welcome: {{enabled: false}}` turns it off.",
        env!("CARGO_PKG_VERSION")
    ))
    .field(
        "Monitors on",
        format!(
            "{} of {}: {}",
            on.len(),
            Monitors::NAMES.len(),
            on.join(", ")
        ),
    )
    .field("Routes", routes(config))
    .field("This channel gets", receives(config, channel))
    .field("Configuration", fingerprint.chars().take(12).collect::<String>())
    .one_shot()
}

/// `rule 1: severity critical, namespace payments-* → oncall, ops; otherwise → ops`.
fn routes(config: &Config) -> String {
    let mut parts: Vec<String> = config
        .routing
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "rule {}: {} → {}",
                i + 1,
                matcher(&r.matcher),
                channels(&r.channels)
            )
        })
        .collect();
    parts.push(format!("otherwise → {}", channels(&config.routing.default)));
    parts.join("; ")
}

fn channels(names: &[String]) -> String {
    if names.is_empty() {
        "nowhere (muted)".into()
    } else {
        names.join(", ")
    }
}

fn matcher(m: &Matcher) -> String {
    let list = |name: &str, values: &[String]| {
        (!values.is_empty()).then(|| format!("{name} {}", values.join("|")))
    };
    let severities: Vec<String> = m.severity.iter().map(ToString::to_string).collect();
    let mut parts: Vec<String> = [
        list("monitor", &m.monitor.0),
        list("severity", &severities),
        list("namespace", &m.namespace.0),
        m.namespace_regex
            .as_ref()
            .map(|r| format!("namespace ~ {r}")),
        list("kind", &m.kind.0),
        list("reason", &m.reason.0),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.extend(m.labels.iter().map(|(k, v)| format!("label {k}={v}")));
    if parts.is_empty() {
        "every alert".into()
    } else {
        parts.join(", ")
    }
}

/// What reaches `channel`: which rules and whether the default route.
fn receives(config: &Config, channel: &str) -> String {
    let named = |list: &[String]| list.iter().any(|c| c == channel);
    let mut parts: Vec<String> = config
        .routing
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| named(&r.channels))
        .map(|(i, _)| format!("rule {}", i + 1))
        .collect();
    if named(&config.routing.default) {
        parts.push("alerts no rule matches".into());
    }
    if parts.is_empty() {
        "no alerts: no route names it".into()
    } else {
        parts.join(", ")
    }
}

/// Sends the message for the configuration in use if it is due (see [`due`]), records it in
/// the state, and writes the state. Called on start, on a takeover and after a configuration
/// change; concurrent calls send it once.
pub async fn greet(pipeline: Pipeline, store: SharedStore) {
    let rt = pipeline.runtime();
    let fingerprint = fingerprint(&rt.config);
    {
        let mut store = store.lock().await;
        if !due(
            &rt.config,
            pipeline.is_leader(),
            store.announced(),
            &fingerprint,
        ) {
            if store.announced() == Some(fingerprint.as_str()) {
                tracing::info!(
                    generation = rt.generation,
                    "welcome message already sent for this configuration"
                );
            }
            return;
        }
        // Claimed before sending, so a second call for the same configuration sends nothing.
        store.set_announced(fingerprint.clone());
    }
    let now = pipeline.now();
    let deliveries = recipients(&rt.config).into_iter().map(|channel| {
        let alert = message(&rt.config, channel, &fingerprint, now);
        rt.registry
            .deliver(Batch::notice(&rt.config.cluster, channel, alert, now))
    });
    for report in futures::future::join_all(deliveries).await {
        pipeline.metrics().delivery(&report, pipeline.now());
        match &report.result {
            Ok(_) => tracing::info!(channel = %report.channel, "welcome message delivered"),
            Err(e) => {
                tracing::warn!(channel = %report.channel, error = %e.message, "welcome message failed")
            }
        }
    }
    if pipeline.is_leader() {
        store.lock().await.save(&pipeline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SecretMap, load};

    const CONFIG: &str = "cluster: prod-eks-1
channels:
  ops: {type: slack, webhook_url: $SLACK}
  oncall: {type: pagerduty, routing_key: $PD}
  audit: {type: webhook, url: https://hooks.example.com/k, headers: {Authorization: 'Bearer $TOKEN'}}
routing:
  default: [ops]
  rules:
    - match: {severity: [critical], namespace: payments-*}
      channels: [oncall, ops]
    - match: {monitor: [warning_events], labels: {team: web}}
      channels: []
monitors:
  warning_events: {enabled: false}
  pvc_usage: {enabled: true}
";

    fn secrets(token: &str) -> SecretMap {
        [
            ("SLACK", "https://hooks.slack.example/T0/B0/xyz"),
            ("PD", "pd-routing-key-0123"),
            ("TOKEN", token),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn config(yaml: &str) -> Config {
        load(yaml, &secrets("t0ken-value")).unwrap()
    }

    #[test]
    fn the_message_names_the_cluster_the_monitors_and_the_routes() {
        let c = config(CONFIG);
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let a = message(&c, "ops", "0123456789abcdef", now);
        assert_eq!(a.title, "kpulse is watching cluster prod-eks-1");
        assert_eq!(a.severity, Severity::Info);
        assert!(!a.resolvable, "nothing resolves a welcome");
        let on = Monitors::NAMES
            .into_iter()
            .filter(|m| c.monitors.enabled(m))
            .count();
        assert_eq!(
            a.fields["Monitors on"],
            format!(
                "{on} of {}: pod_crashes, pod_restarts, pvc_usage, node_conditions, rollout_stuck, hpa_at_max, daemonset_unscheduled, cronjob_missed, job_failed, pod_unschedulable, container_waiting, pod_not_ready, replicas_unavailable, pod_evicted, hpa_unhealthy, pvc_pending",
                Monitors::NAMES.len()
            )
        );
        assert_eq!(
            a.fields["Routes"],
            "rule 1: severity critical, namespace payments-* → oncall, ops; rule 2: monitor warning_events, label team=web → nowhere (muted); otherwise → ops"
        );
        assert_eq!(
            a.fields["This channel gets"],
            "rule 1, alerts no rule matches"
        );
        assert_eq!(a.fields["Configuration"], "0123456789ab");
        // As a chat sink shows it: the headline and the facts under the summary.
        let n = &Batch::notice(&c.cluster, "ops", a.clone(), now).items[0].notification;
        assert_eq!(
            crate::sinks::render::headline(&c.cluster, n),
            "🚨 [prod-eks-1] channel/ops kpulse is watching cluster prod-eks-1"
        );
        assert!(
            crate::sinks::render::body(n).starts_with(&format!(
                "kpulse {} delivers alerts to this channel.",
                env!("CARGO_PKG_VERSION")
            )),
            "{}",
            crate::sinks::render::body(n)
        );
        assert_eq!(
            message(&c, "audit", "f", now).fields["This channel gets"],
            "no alerts: no route names it"
        );
    }

    #[test]
    fn paging_channels_get_it_only_when_named() {
        let c = config(CONFIG);
        assert_eq!(recipients(&c), ["audit", "ops"]);
        let named = CONFIG.to_string() + "welcome: {channels: [oncall]}\n";
        assert_eq!(recipients(&config(&named)), ["oncall"]);
    }

    #[test]
    fn sent_once_per_configuration_by_the_leader_unless_switched_off() {
        let c = config(CONFIG);
        let f = fingerprint(&c);
        assert!(due(&c, true, None, &f), "first start");
        assert!(!due(&c, true, Some(&f), &f), "same configuration again");
        assert!(due(&c, true, Some("older"), &f), "a changed configuration");
        assert!(!due(&c, false, None, &f), "a standby sends nothing");
        let off = config(&(CONFIG.to_string() + "welcome: {enabled: false}\n"));
        assert!(!due(&off, true, None, &fingerprint(&off)));
    }

    #[test]
    fn the_fingerprint_follows_the_configuration_but_never_its_secrets() {
        let c = config(CONFIG);
        let f = fingerprint(&c);
        assert_eq!(f.len(), 64);
        assert_eq!(f, fingerprint(&config(CONFIG)), "stable");
        let changed = config(&CONFIG.replace("prod-eks-1", "prod-eks-2"));
        assert_ne!(f, fingerprint(&changed), "a change is a new configuration");
        let rotated = load(CONFIG, &secrets("another-token")).unwrap();
        assert_eq!(f, fingerprint(&rotated), "secret values are not part of it");
    }

    #[test]
    fn unknown_welcome_channels_are_configuration_errors() {
        let yaml = CONFIG.to_string() + "welcome: {channels: [pager]}\n";
        let errs = load(&yaml, &secrets("t")).unwrap_err().to_string();
        assert!(
            errs.contains("welcome.channels[0]: unknown channel \"pager\""),
            "{errs}"
        );
    }
}
