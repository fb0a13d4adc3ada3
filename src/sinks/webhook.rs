//! The `webhook` sink: the versioned JSON payload of docs/webhook.md (schema in
//! docs/webhook.schema.json), custom headers, and an optional HMAC-SHA256 signature of the body.

use futures::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use super::{AttemptError, Batch, Delivered, Notifier, http, render};
use crate::config::WebhookChannel;
use crate::engine::{DispatchItem, DispatchKind};

/// The payload version. A new field keeps it; a removed or changed field bumps it.
pub const VERSION: &str = "1";

/// The signature header: `sha256=<lowercase hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Kpulse-Signature";

pub struct WebhookSink {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    key: Option<ring::hmac::Key>,
}

impl WebhookSink {
    pub fn new(c: &WebhookChannel) -> Result<Self, String> {
        Ok(WebhookSink {
            client: http::client(&c.delivery)?,
            url: c.url.expose().to_string(),
            headers: http::headers(&c.headers)?,
            key: c
                .hmac_secret
                .as_ref()
                .map(|s| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, s.expose().as_bytes())),
        })
    }

    /// The payload for a batch.
    pub fn payload(batch: &Batch) -> Value {
        json!({
            "version": VERSION,
            "cluster": batch.cluster,
            "channel": batch.channel,
            "kind": match batch.kind {
                DispatchKind::Immediate => "immediate",
                // Webhook channels have no resend interval; a resend would read as a digest.
                DispatchKind::Digest | DispatchKind::Resend => "digest",
            },
            "alerts": batch.items.iter().map(|i| alert(batch, i)).collect::<Vec<_>>(),
        })
    }
}

fn alert(batch: &Batch, item: &DispatchItem) -> Value {
    let n = &item.notification;
    let a = &n.alert;
    let links: serde_json::Map<String, Value> = render::links(&batch.links, &batch.cluster, n)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({
        "state": n.state,
        "key": a.key,
        "key_string": a.key.to_string(),
        "severity": a.severity,
        "title": a.title,
        "message": a.message,
        "headline": render::headline(&batch.cluster, n),
        "summary": render::summary(n),
        "object": a.key.object(),
        "owner": a.owner,
        "node": a.node,
        "labels": a.labels,
        "fields": a.fields,
        "resolvable": a.resolvable,
        "first_seen": a.first_seen.to_string(),
        "at": n.at.to_string(),
        "links": links,
        "evidence": a.evidence,
        "incident": a.incident,
    })
}

/// `sha256=<hex>` of `body` under `key`.
pub fn signature(key: &ring::hmac::Key, body: &[u8]) -> String {
    let tag = ring::hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Notifier for WebhookSink {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&Self::payload(batch))
                .map_err(|e| AttemptError::permanent(format!("cannot encode the payload: {e}")))?;
            let mut req = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json");
            if let Some(key) = &self.key {
                req = req.header(SIGNATURE_HEADER, signature(key, &body));
            }
            let answer = http::deliver(req.body(body)).await?;
            Ok(Delivered {
                references: Vec::new(),
                response: answer.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
