//! The `pagerduty` sink: PagerDuty Events API v2. A firing alert is a `trigger` event, its
//! resolution a `resolve` event, both with the alert key as `dedup_key`, so PagerDuty opens and
//! closes one incident per alert. One event per notification, digests included.

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

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
        let client = http_client(&settings.delivery)?;
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
                last = send(request, "PagerDuty", &[self.settings.routing_key.expose()]).await?;
            }
            Ok(Delivered {
                references: Vec::new(),
                response: last,
            })
        })
    }
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The HTTP client of one channel: the channel's timeout, no redirects (a redirect could carry a
/// token elsewhere), `https://` only unless `allow_http`.
pub(crate) fn http_client(delivery: &crate::config::Delivery) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(delivery.timeout.get())
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!delivery.allow_http)
        .user_agent(concat!("kpulse/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("could not build the HTTP client: {}", e.without_url()))
}

/// Sends one request and classifies the answer: 2xx is delivered; 429 and 5xx may heal (429 with
/// its `Retry-After`); other statuses are permanent. The error names the status and a short
/// piece of the provider's answer, never the URL or any of `secrets`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    provider: &str,
    secrets: &[&str],
) -> Result<String, AttemptError> {
    let scrub = |mut text: String| {
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            text = text.replace(s, "<redacted>");
        }
        text
    };
    let response = request.send().await.map_err(|e| {
        AttemptError::transient(scrub(format!(
            "{provider} request failed: {}",
            e.without_url()
        )))
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let short = scrub(truncate(body.trim(), 200));
    let text = if short.is_empty() {
        format!("{provider} answered {status}")
    } else {
        format!("{provider} answered {status}: {short}")
    };
    if status.is_success() {
        Ok(text)
    } else if status.as_u16() == 429 || status.is_server_error() {
        let mut e = AttemptError::transient(text);
        e.retry_after = retry_after;
        Err(e)
    } else {
        Err(AttemptError::permanent(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdé", 4), "abc…");
    }
}
