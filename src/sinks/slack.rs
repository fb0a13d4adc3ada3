//! The `slack` sink: an incoming webhook, or a bot token with `chat.postMessage`.
//!
//! Each message is an attachment coloured red (firing) or green (resolved) holding Block Kit
//! blocks, with the headline as the notification text. With a bot token, the `ts` (and channel
//! id) of a firing message is returned as its reference; whatever follows it — an incident's
//! update, a reminder, the resolution — is posted as a reply in that message's thread, and the
//! first message is edited (`chat.update`) to show the current state, so the channel shows one
//! message per incident that stays up to date. An edit that fails is logged; the reply stands.

use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use super::{AttemptError, Batch, Delivered, Notifier, http, render};
use crate::alert::{Severity, State, display_time};
use crate::config::SlackChannel;
use crate::engine::{DispatchItem, DispatchKind};

/// Slack's limit for a section's text.
const SECTION_MAX: usize = 3000;
/// Slack's limit for fields in one section.
const FIELDS_MAX: usize = 10;
/// Alerts listed one by one in a digest; the rest are counted.
const DIGEST_MAX: usize = 40;

enum Mode {
    Webhook {
        url: String,
    },
    Bot {
        endpoint: String,
        /// `chat.update`, to edit the first message of a thread.
        update: String,
        token: String,
        channel: String,
    },
}

/// A stored reference: `CHANNEL_ID/ts`, or a bare `ts` (then the configured channel).
fn parse_reference<'a>(reference: &'a str, configured: &'a str) -> (&'a str, &'a str) {
    reference.split_once('/').unwrap_or((configured, reference))
}

pub struct SlackSink {
    client: reqwest::Client,
    mode: Mode,
    mention: Option<String>,
}

impl SlackSink {
    pub fn new(c: &SlackChannel) -> Result<Self, String> {
        let mode = match (&c.webhook_url, &c.token) {
            (Some(url), None) => Mode::Webhook {
                url: url.expose().to_string(),
            },
            (None, Some(token)) => Mode::Bot {
                endpoint: format!(
                    "{}/chat.postMessage",
                    c.api_url.expose().trim_end_matches('/')
                ),
                update: format!("{}/chat.update", c.api_url.expose().trim_end_matches('/')),
                token: token.expose().to_string(),
                channel: c
                    .channel
                    .clone()
                    .ok_or("token: a bot token needs `channel`")?,
            },
            _ => return Err("set exactly one of webhook_url and token".to_string()),
        };
        Ok(SlackSink {
            client: http::client(&c.delivery)?,
            mode,
            mention: c.mention.clone(),
        })
    }

    /// The messages for a batch, each with the alert it threads under (for resolutions) and the
    /// items whose firing reference its `ts` becomes.
    pub fn messages(&self, batch: &Batch) -> Vec<Message> {
        match batch.kind {
            // Slack channels have no resend interval; a resend would read as a digest.
            DispatchKind::Digest | DispatchKind::Resend => vec![Message {
                body: self.digest(batch),
                thread_ts: None,
                firing: batch
                    .items
                    .iter()
                    .filter(|i| i.notification.state == State::Firing)
                    .cloned()
                    .collect(),
            }],
            DispatchKind::Immediate => batch
                .items
                .iter()
                .map(|item| Message {
                    body: self.single(batch, item),
                    // What follows a told message (an update, a reminder, the resolution)
                    // replies in its thread; the first message of a thread is its reference.
                    thread_ts: item.reference.clone(),
                    firing: if item.notification.state == State::Firing && item.reference.is_none()
                    {
                        vec![item.clone()]
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        }
    }

    fn text(&self, n_state: State, severity: Severity, headline: String) -> String {
        match (&self.mention, n_state, severity) {
            (Some(m), State::Firing, Severity::Critical) => format!("{m} {headline}"),
            _ => headline,
        }
    }

    /// One alert: headline, summary, facts, links.
    pub fn single(&self, batch: &Batch, item: &DispatchItem) -> Value {
        let n = &item.notification;
        let mut blocks = vec![
            section(&format!(
                "*{}*",
                escape(&render::headline(&batch.cluster, n))
            )),
            section(&escape(&render::summary(n))),
        ];
        let facts: Vec<Value> = render::facts(n)
            .into_iter()
            .take(FIELDS_MAX)
            .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{}*\n{}", escape(&k), escape(&v))}))
            .collect();
        if !facts.is_empty() {
            blocks.push(json!({"type": "section", "fields": facts}));
        }
        blocks.extend(evidence_blocks(&render::evidence(n)));
        let links = render::links(&batch.links, &batch.cluster, n);
        let mut context = vec![format!("{} at {}", n.state, display_time(n.at))];
        context.extend(
            links
                .iter()
                .map(|(name, url)| format!("<{url}|{}>", escape(name))),
        );
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": context.join(" · ")}],
        }));
        json!({
            "text": self.text(n.state, n.alert.severity, render::headline(&batch.cluster, n)),
            "attachments": [{"color": render::color(n.state), "blocks": blocks}],
        })
    }

    /// Every alert of a digest, one attachment each.
    pub fn digest(&self, batch: &Batch) -> Value {
        let title = render::digest_title(&batch.cluster, &batch.items);
        let mut attachments: Vec<Value> = batch
            .items
            .iter()
            .take(DIGEST_MAX)
            .map(|item| {
                let n = &item.notification;
                let mut text = format!(
                    "*{}*\n{}",
                    escape(&render::headline(&batch.cluster, n)),
                    escape(&render::summary(n))
                );
                for (name, url) in render::links(&batch.links, &batch.cluster, n) {
                    text.push_str(&format!("\n<{url}|{}>", escape(&name)));
                }
                json!({"color": render::color(n.state), "blocks": [section(&text)]})
            })
            .collect();
        if batch.items.len() > DIGEST_MAX {
            attachments.push(json!({"blocks": [section(&format!(
                "…and {} more",
                batch.items.len() - DIGEST_MAX
            ))]}));
        }
        let state = render::batch_state(&batch.items);
        let severity = batch
            .items
            .iter()
            .map(|i| i.notification.alert.severity)
            .max()
            .unwrap_or(Severity::Info);
        json!({
            "text": self.text(state, severity, format!("{} {title}", render::emoji(state))),
            "blocks": [section(&format!("*{}*", escape(&title)))],
            "attachments": attachments,
        })
    }

    /// Posts one message: the provider's short answer, and the `ts` with a bot token.
    async fn post(&self, message: &Message) -> Result<(String, Option<String>), AttemptError> {
        match &self.mode {
            Mode::Webhook { url } => {
                let answer = http::deliver(self.client.post(url).json(&message.body)).await?;
                Ok((answer.to_string(), None))
            }
            Mode::Bot {
                endpoint,
                token,
                channel,
                ..
            } => {
                let mut body = message.body.clone();
                body["channel"] = json!(channel);
                if let Some(reference) = &message.thread_ts {
                    let (id, ts) = parse_reference(reference, channel);
                    body["channel"] = json!(id);
                    body["thread_ts"] = json!(ts);
                }
                let (v, headers) = self.call(endpoint, token, &body).await?;
                if v["ok"].as_bool() == Some(true) {
                    let ts = v["ts"].as_str().map(|ts| match v["channel"].as_str() {
                        Some(id) => format!("{id}/{ts}"),
                        None => ts.to_string(),
                    });
                    let shown = format!("ok, ts {}", v["ts"].as_str().unwrap_or("missing"));
                    return Ok((shown, ts));
                }
                Err(api_error("chat.postMessage", &v, &headers))
            }
        }
    }

    /// Edits the first message of `reference`'s thread to `message` (the current state).
    async fn edit(&self, reference: &str, message: &Message) -> Result<(), AttemptError> {
        let Mode::Bot {
            update,
            token,
            channel,
            ..
        } = &self.mode
        else {
            return Ok(());
        };
        let (id, ts) = parse_reference(reference, channel);
        let mut body = message.body.clone();
        body["channel"] = json!(id);
        body["ts"] = json!(ts);
        let (v, headers) = self.call(update, token, &body).await?;
        if v["ok"].as_bool() == Some(true) {
            return Ok(());
        }
        Err(api_error("chat.update", &v, &headers))
    }

    /// One Web API call: its JSON answer (whether `ok` or not) and headers.
    async fn call(
        &self,
        endpoint: &str,
        token: &str,
        body: &Value,
    ) -> Result<(Value, reqwest::header::HeaderMap), AttemptError> {
        let req = self
            .client
            .post(endpoint)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let (answer, headers) = http::send(req).await?;
        let answer = http::classify(answer, &headers)?;
        // The Web API answers 200 with `ok: false` for most errors.
        let v: Value = serde_json::from_str(&answer.body).map_err(|_| {
            AttemptError::transient(format!(
                "Slack answered HTTP {} with something that is not JSON{}",
                answer.status,
                http::detail(&answer.body)
            ))
        })?;
        Ok((v, headers))
    }
}

/// A Web API answer with `ok: false`: transient for Slack's own trouble, else permanent.
fn api_error(method: &str, v: &Value, headers: &reqwest::header::HeaderMap) -> AttemptError {
    let error = v["error"].as_str().unwrap_or("unknown_error");
    let message = format!("Slack {method} failed: {error}");
    match error {
        "ratelimited"
        | "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout" => {
            let mut e = AttemptError::transient(message);
            e.retry_after = http::retry_after(headers);
            e
        }
        _ => AttemptError::permanent(message),
    }
}

/// One Slack message and what it stands for.
pub struct Message {
    pub body: Value,
    pub thread_ts: Option<String>,
    /// Firing items whose reference is this message's `ts`.
    pub firing: Vec<DispatchItem>,
}

/// The evidence: the likely cause and next step as a section, the evidence facts as a context
/// block (small print), the events, log lines and commands as code blocks.
fn evidence_blocks(shown: &render::Shown) -> Vec<Value> {
    let mut blocks = Vec::new();
    if !shown.hints.is_empty() {
        let text = shown
            .hints
            .iter()
            .map(|(cause, next)| {
                format!(
                    "*Likely cause:* {}\n*Next step:* {}",
                    escape(cause),
                    escape(next)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        blocks.push(section(&text));
    }
    if !shown.facts.is_empty() {
        // A context block holds at most 10 elements.
        let elements: Vec<Value> = shown
            .facts
            .iter()
            .take(FIELDS_MAX)
            .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{}:* {}", escape(k), escape(v))}))
            .collect();
        blocks.push(json!({"type": "context", "elements": elements}));
    }
    let code = |title: &str, lines: &[String]| {
        // A backtick in a line would close the code block.
        let body = escape(&lines.join("\n")).replace('`', "'");
        let room = SECTION_MAX - title.len() - 12;
        section(&format!("*{title}*\n```{}```", http::truncate(&body, room)))
    };
    if !shown.events.is_empty() {
        blocks.push(code("Recent events", &shown.events));
    }
    if !shown.log.is_empty() {
        blocks.push(code("Last log lines", &shown.log));
    }
    if !shown.commands.is_empty() {
        blocks.push(code("Next commands", &shown.commands));
    }
    blocks
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": http::truncate(text, SECTION_MAX)}})
}

/// Slack's mrkdwn control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Notifier for SlackSink {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let mut references = Vec::new();
            let mut response = String::new();
            for message in self.messages(batch) {
                let (answer, ts) = self.post(&message).await?;
                response = answer;
                // The reply is in the thread; the first message now shows the same state.
                if let Some(reference) = &message.thread_ts
                    && let Err(e) = self.edit(reference, &message).await
                {
                    tracing::warn!(error = %e.message, "could not edit the first Slack message of the thread; the reply was posted");
                }
                if let Some(ts) = ts {
                    references.extend(
                        message
                            .firing
                            .iter()
                            .map(|i| (i.notification.alert.key.clone(), ts.clone())),
                    );
                }
            }
            Ok(Delivered {
                references,
                response,
            })
        })
    }
}
