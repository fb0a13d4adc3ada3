//! The `alertmanager` sink: posts alerts to a Prometheus Alertmanager (`POST {url}/api/v2/alerts`)
//! so kpulse alerts join Alertmanager's grouping, silences and receivers. A resolution is the
//! same alert with `endsAt` set to the time it cleared.
//!
//! Alertmanager closes an alert that is not posted again before its `endsAt`. Like Prometheus,
//! kpulse re-posts alerts that are still firing every `resend_interval` (the engine's resend
//! dispatches) and sends each firing alert with `endsAt` four intervals ahead: an alert stays
//! open while kpulse keeps it firing, and closes on its own if kpulse is gone for good.

use futures::future::BoxFuture;
use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::http;
use super::{AttemptError, Batch, Delivered, Notifier, render};
use crate::alert::{Notification, State};
use crate::config::AlertmanagerChannel;

/// Posts alerts to Alertmanager's v2 API.
pub struct AlertmanagerSink {
    settings: AlertmanagerChannel,
    url: String,
    headers: HeaderMap,
    client: reqwest::Client,
}

impl AlertmanagerSink {
    pub fn new(settings: &AlertmanagerChannel) -> Result<Self, String> {
        Ok(AlertmanagerSink {
            url: format!(
                "{}/api/v2/alerts",
                settings.url.expose().trim_end_matches('/')
            ),
            settings: settings.clone(),
            headers: http::headers(&settings.headers)?,
            client: http::client(&settings.delivery)?,
        })
    }

    /// The `endsAt` of a firing alert posted at `now`.
    pub fn firing_until(&self, now: Timestamp) -> Timestamp {
        now + self.settings.resend_interval.signed() * VALID_FOR_INTERVALS
    }
}

/// How long a firing post keeps an alert open, in resend intervals.
pub const VALID_FOR_INTERVALS: i32 = 4;

/// The JSON array for a batch: one Alertmanager alert per notification. Firing alerts end at
/// `firing_until` unless posted again.
pub fn alerts(batch: &Batch, firing_until: Timestamp) -> Value {
    Value::Array(
        batch
            .items
            .iter()
            .map(|i| alert(batch, &i.notification, firing_until))
            .collect(),
    )
}

/// One alert. Labels identify it (the same on both sides, like the alert key); empty values are
/// left out because Alertmanager treats an empty label as absent.
pub fn alert(batch: &Batch, n: &Notification, firing_until: Timestamp) -> Value {
    let key = &n.alert.key;
    let mut labels = Map::new();
    for (name, value) in [
        ("alertname", key.monitor.as_str()),
        ("severity", n.alert.severity.as_str()),
        ("namespace", key.namespace.as_str()),
        ("kind", key.kind.as_str()),
        ("name", key.name.as_str()),
        ("reason", key.reason.as_str()),
        ("cluster", batch.cluster.as_str()),
    ] {
        if !value.is_empty() {
            labels.insert(name.into(), Value::String(value.into()));
        }
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(
        "summary".into(),
        Value::String(format!("{} {}", key.object(), n.alert.title)),
    );
    annotations.insert("description".into(), Value::String(render::summary(n)));
    let shown = render::evidence(n);
    if let Some((cause, next)) = shown.hints.first() {
        annotations.insert("likely_cause".into(), Value::String(cause.clone()));
        annotations.insert("next_step".into(), Value::String(next.clone()));
    }
    if !shown.is_empty() {
        annotations.insert("evidence".into(), Value::String(shown.text()));
    }
    if !shown.commands.is_empty() {
        annotations.insert("commands".into(), Value::String(shown.commands.join("\n")));
    }
    let mut out = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": n.alert.first_seen.to_string(),
    });
    out["endsAt"] = Value::String(match n.state {
        State::Resolved => n.at.to_string(),
        State::Firing => firing_until.to_string(),
    });
    // The first link (by name) is where a responder goes from Alertmanager's UI.
    if let Some((_, url)) = render::links(&batch.links, &batch.cluster, n)
        .into_iter()
        .next()
    {
        out["generatorURL"] = Value::String(url);
    }
    out
}

impl Notifier for AlertmanagerSink {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let request = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .json(&alerts(batch, self.firing_until(batch.at)));
            let answer = http::deliver(request).await?;
            Ok(Delivered {
                references: Vec::new(),
                response: answer.to_string(),
            })
        })
    }
}
