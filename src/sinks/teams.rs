//! The `teams` sink: Microsoft Teams through a Workflows (Power Automate) webhook, as an
//! Adaptive Card 1.4 message. (Office 365 connectors are retired.)

use serde_json::{Value, json};

use super::http::JsonWebhook;
use super::{Batch, render};
use crate::alert::{Notification, State};
use crate::config::TeamsChannel;
use crate::engine::DispatchKind;

/// Alerts listed one by one in a digest; the rest are counted.
const DIGEST_MAX: usize = 30;

/// The Teams sink: its webhook URL, and [`message`] for each batch.
pub fn sink(c: &TeamsChannel) -> Result<JsonWebhook, String> {
    JsonWebhook::new("teams", &c.webhook_url, &c.delivery, message)
}

/// The Workflows message carrying one Adaptive Card for the whole batch.
pub fn message(batch: &Batch) -> Value {
    let mut body = Vec::new();
    let mut actions = Vec::new();
    match batch.kind {
        // Teams channels have no resend interval; a resend would read as a digest.
        DispatchKind::Digest | DispatchKind::Resend => {
            let state = render::batch_state(&batch.items);
            body.push(json!({
                "type": "TextBlock",
                "text": format!("{} {}", render::emoji(state), render::digest_title(&batch.cluster, &batch.items)),
                "weight": "Bolder",
                "size": "Medium",
                "wrap": true,
            }));
            for item in batch.items.iter().take(DIGEST_MAX) {
                let n = &item.notification;
                body.push(json!({
                    "type": "Container",
                    "separator": true,
                    "items": [headline(batch, n), summary(n)],
                }));
            }
            if batch.items.len() > DIGEST_MAX {
                body.push(json!({
                    "type": "TextBlock",
                    "text": format!("…and {} more", batch.items.len() - DIGEST_MAX),
                    "wrap": true,
                }));
            }
        }
        DispatchKind::Immediate => {
            for (i, item) in batch.items.iter().enumerate() {
                let n = &item.notification;
                body.push(headline(batch, n));
                body.push(summary(n));
                let facts: Vec<Value> = render::facts(n)
                    .into_iter()
                    .map(|(title, value)| json!({"title": title, "value": value}))
                    .collect();
                body.push(json!({"type": "FactSet", "facts": facts}));
                let shown = render::evidence(n);
                for (cause, next) in &shown.hints {
                    body.push(json!({"type": "TextBlock", "wrap": true, "text": format!("**Likely cause:** {cause}\n\n**Next step:** {next}")}));
                }
                // The rest of the evidence is collapsed behind a "Show evidence" button.
                let mut details: Vec<Value> = Vec::new();
                if !shown.facts.is_empty() {
                    let facts: Vec<Value> = shown
                        .facts
                        .iter()
                        .map(|(title, value)| json!({"title": title, "value": value}))
                        .collect();
                    details.push(json!({"type": "FactSet", "facts": facts}));
                }
                for (title, lines) in [
                    ("Recent events", &shown.events),
                    ("Last log lines", &shown.log),
                    ("Next commands", &shown.commands),
                ] {
                    if !lines.is_empty() {
                        details
                            .push(json!({"type": "TextBlock", "weight": "Bolder", "text": title}));
                        details.push(json!({"type": "TextBlock", "wrap": true, "fontType": "Monospace", "text": lines.join("\n\n")}));
                    }
                }
                if !details.is_empty() {
                    let id = format!("evidence-{i}");
                    body.push(json!({"type": "Container", "id": id, "isVisible": false, "items": details}));
                    actions.push(json!({"type": "Action.ToggleVisibility", "title": "Show evidence", "targetElements": [id]}));
                }
                actions.extend(
                    render::links(&batch.links, &batch.cluster, n)
                        .into_iter()
                        .map(|(title, url)| {
                            json!({"type": "Action.OpenUrl", "title": title, "url": url})
                        }),
                );
            }
        }
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// The headline in red (`attention`) or green (`good`).
fn headline(batch: &Batch, n: &Notification) -> Value {
    json!({
        "type": "TextBlock",
        "text": render::headline(&batch.cluster, n),
        "weight": "Bolder",
        "color": match n.state {
            State::Firing => "Attention",
            State::Resolved => "Good",
        },
        "wrap": true,
    })
}

fn summary(n: &Notification) -> Value {
    json!({"type": "TextBlock", "text": render::summary(n), "wrap": true})
}
