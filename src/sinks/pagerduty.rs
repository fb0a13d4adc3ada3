//! The `pagerduty` sink: PagerDuty Events API v2. A firing alert is a `trigger` event, its
//! resolution a `resolve` event, both with the alert key as `dedup_key`, so PagerDuty opens and
//! closes one incident per alert. One event per notification, digests included.

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::http::{self, truncate};
use super::{AttemptError, Batch, Delivered, Notifier, render};
use crate::alert::{Notification, State};
use crate::config::PagerDutyChannel;

/// PagerDuty truncates longer summaries; cutting here keeps the end of the headline predictable.
const SUMMARY_MAX: usize = 1024;

/// Sends Events API v2 events.
pub struct PagerDutySink {
    settings: PagerDutyChannel,
    client: reqwest::Client,
}

impl PagerDutySink {
    pub fn new(settings: &PagerDutyChannel) -> Result<Self, String> {
        let client = http::client(&settings.delivery)?;
        Ok(PagerDutySink {
            settings: settings.clone(),
            client,
        })
    }

    /// The event for one notification (public for tests and previews).
    pub fn event(&self, batch: &Batch, n: &Notification) -> Value {
        event(self.settings.routing_key.expose(), batch, n)
    }
}

/// `trigger` with the full payload, or `resolve` with only what PagerDuty needs to find the
/// incident.
pub fn event(routing_key: &str, batch: &Batch, n: &Notification) -> Value {
    let key = &n.alert.key;
    match n.state {
        State::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": key.to_string(),
        }),
        State::Firing => {
            let mut details = Map::new();
            details.insert("message".into(), Value::String(render::summary(n)));
            details.insert("cluster".into(), Value::String(batch.cluster.clone()));
            for (k, v) in render::facts(n) {
                details.insert(k, Value::String(v));
            }
            for (k, v) in render::evidence(n).facts {
                details.insert(k, Value::String(v));
            }
            if let Some(h) = n.alert.evidence.hints.first() {
                details.insert("likely_cause".into(), Value::String(h.cause.clone()));
                details.insert("next_step".into(), Value::String(h.next.clone()));
            }
            if !n.alert.evidence.is_empty() {
                details.insert(
                    "evidence".into(),
                    serde_json::to_value(&n.alert.evidence).unwrap_or_default(),
                );
            }
            let links: Vec<Value> = render::links(&batch.links, &batch.cluster, n)
                .into_iter()
                .map(|(text, href)| json!({"href": href, "text": text}))
                .collect();
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": key.to_string(),
                "payload": {
                    "summary": truncate(&render::plain_headline(&batch.cluster, n), SUMMARY_MAX),
                    "source": batch.cluster,
                    "severity": n.alert.severity.as_str(),
                    "timestamp": n.alert.first_seen.to_string(),
                    "component": key.object(),
                    "group": if key.namespace.is_empty() { key.kind.clone() } else { key.namespace.clone() },
                    "class": key.reason,
                    "custom_details": details,
                },
                "links": links,
                "client": "kpulse",
            })
        }
    }
}

impl Notifier for PagerDutySink {
    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let mut last = String::new();
            // A retry re-sends the events already accepted; PagerDuty folds them into the same
            // incident by `dedup_key`.
            for item in &batch.items {
                let body = self.event(batch, &item.notification);
                let request = self.client.post(self.settings.api_url.expose()).json(&body);
                let answer = http::deliver(request).await?;
                last = answer.to_string();
            }
            Ok(Delivered {
                references: Vec::new(),
                response: last,
            })
        })
    }
}
