//! What the HTTP sinks share: the client, configured headers, how a provider's answer becomes a
//! delivery or an [`AttemptError`] (network errors, 5xx and 429 may heal; other 4xx do not), and
//! [`JsonWebhook`], the whole of a sink that posts one JSON message per batch.
//!
//! Error messages carry the status and the provider's answer, never the URL: webhook URLs are
//! credentials. The answer may echo a secret; the registry redacts it and cuts it to a readable
//! length (see [`super::redact`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::{AttemptError, Batch, Delivered, Notifier};
use crate::config::{Delivery, SecretString};

/// A client for one channel: the channel's timeout, no redirects (a redirect could carry a
/// token elsewhere), `https://` only unless `allow_http`.
pub fn client(delivery: &Delivery) -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(delivery.timeout.get())
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!delivery.allow_http)
        .user_agent(concat!("kpulse/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
}

/// The configured `headers` of a channel, values marked sensitive. Errors name the header, never
/// its value.
pub fn headers(configured: &BTreeMap<String, SecretString>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in configured {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("headers.{name}: not a valid HTTP header name"))?;
        let mut v = HeaderValue::from_str(value.expose()).map_err(|_| {
            format!("headers.{name}: not a valid HTTP header value (value not shown)")
        })?;
        v.set_sensitive(true);
        headers.insert(n, v);
    }
    Ok(headers)
}

/// A sink that posts one JSON message per batch to a webhook URL and reports the provider's
/// answer. A sink of this shape (Teams, Discord, Google Chat) is only its `message`.
pub struct JsonWebhook {
    kind: &'static str,
    client: reqwest::Client,
    url: String,
    message: fn(&Batch) -> Value,
}

impl JsonWebhook {
    pub fn new(
        kind: &'static str,
        url: &SecretString,
        delivery: &Delivery,
        message: fn(&Batch) -> Value,
    ) -> Result<Self, String> {
        Ok(JsonWebhook {
            kind,
            client: client(delivery)?,
            url: url.expose().to_string(),
            message,
        })
    }
}

impl Notifier for JsonWebhook {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let answer = deliver(self.client.post(&self.url).json(&(self.message)(batch))).await?;
            Ok(Delivered {
                references: Vec::new(),
                response: answer.to_string(),
            })
        })
    }
}

/// A provider's answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `HTTP <status>: <answer>`, as `/test-channel` shows a delivery.
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}{}", self.status, detail(&self.body))
    }
}

/// Sends a request and reads the answer; a network error is transient.
pub async fn send(req: reqwest::RequestBuilder) -> Result<(Answer, HeaderMap), AttemptError> {
    let resp = req.send().await.map_err(network)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(network)?;
    Ok((Answer { status, body }, headers))
}

/// Sends a request and classifies the answer: any 2xx is delivered.
pub async fn deliver(req: reqwest::RequestBuilder) -> Result<Answer, AttemptError> {
    let (answer, headers) = send(req).await?;
    classify(answer, &headers)
}

/// 2xx is the answer; 429 and 5xx may heal (429 with its `Retry-After`); other statuses are
/// permanent.
pub fn classify(answer: Answer, headers: &HeaderMap) -> Result<Answer, AttemptError> {
    let status = answer.status;
    if (200..300).contains(&status) {
        return Ok(answer);
    }
    let message = format!("HTTP {status}{}", detail(&answer.body));
    if status == 429 {
        let mut e = AttemptError::transient(message);
        e.retry_after = retry_after(headers);
        Err(e)
    } else if status >= 500 || status == 408 {
        Err(AttemptError::transient(message))
    } else {
        Err(AttemptError::permanent(message))
    }
}

/// `: <answer>` or nothing when the answer is empty.
pub fn detail(body: &str) -> String {
    let s = body.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

pub use crate::redact::truncate;

/// A network error, without the URL reqwest puts in its message.
pub fn network(e: reqwest::Error) -> AttemptError {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    AttemptError::transient(message)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(value, Timestamp::now())
}

/// `Retry-After: 120` or `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`, relative to `now`.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(wait.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = Timestamp::from_second(784_111_717).unwrap(); // Sun, 06 Nov 1994 08:48:37 GMT
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn configured_headers_are_sensitive_and_errors_hide_values() {
        let configured = |name: &str, value: &str| {
            BTreeMap::from([(name.to_string(), SecretString::new(value))])
        };
        let h = headers(&configured("Authorization", "Bearer t0ken")).unwrap();
        assert!(h["authorization"].is_sensitive());
        assert_eq!(
            headers(&configured("X-Key", "t0ken\n")).unwrap_err(),
            "headers.X-Key: not a valid HTTP header value (value not shown)"
        );
        assert_eq!(
            headers(&configured("bad name", "t0ken")).unwrap_err(),
            "headers.bad name: not a valid HTTP header name"
        );
    }

    #[test]
    fn statuses_are_classified() {
        let h = HeaderMap::new();
        let a = |status, body: &str| Answer {
            status,
            body: body.to_string(),
        };
        assert!(classify(a(202, ""), &h).is_ok());
        let e = classify(a(401, "{\"error\": \"bad token\"}\n"), &h).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.retryable),
            ("HTTP 401: {\"error\": \"bad token\"}", false)
        );
        assert!(classify(a(503, ""), &h).unwrap_err().retryable);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        let e = classify(a(429, "slow down"), &h).unwrap_err();
        assert_eq!(
            (e.retryable, e.retry_after),
            (true, Some(Duration::from_secs(3)))
        );
    }
}
