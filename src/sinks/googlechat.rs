//! The `googlechat` sink: a Google Chat space webhook message with a `cardsV2` card (one
//! section per alert) and the headlines as plain `text` for notifications.

use serde_json::{Value, json};

use super::http::JsonWebhook;
use super::{Batch, render};
use crate::alert::State;
use crate::config::GoogleChatChannel;
use crate::engine::DispatchKind;

/// Alerts listed one by one in a digest; the rest are counted.
const DIGEST_MAX: usize = 30;

/// The Google Chat sink: its webhook URL, and [`message`] for each batch.
pub fn sink(c: &GoogleChatChannel) -> Result<JsonWebhook, String> {
    JsonWebhook::new("googlechat", &c.webhook_url, &c.delivery, message)
}

/// The message for a batch.
pub fn message(batch: &Batch) -> Value {
    let digest = batch.kind == DispatchKind::Digest;
    let state = render::batch_state(&batch.items);
    let (title, text) = if digest {
        let t = render::digest_title(&batch.cluster, &batch.items);
        (t.clone(), format!("{} {t}", render::emoji(state)))
    } else {
        let lines: Vec<String> = batch
            .items
            .iter()
            .map(|i| render::headline(&batch.cluster, &i.notification))
            .collect();
        (lines.first().cloned().unwrap_or_default(), lines.join("\n"))
    };
    let mut sections: Vec<Value> =
        batch
            .items
            .iter()
            .take(DIGEST_MAX)
            .map(|item| {
                let n = &item.notification;
                let mut widgets = vec![json!({"textParagraph": {"text": format!(
                    "<font color=\"{}\"><b>{}</b></font><br>{}",
                    render::color(n.state),
                    escape(&render::headline(&batch.cluster, n)),
                    escape(&render::summary(n)),
                )}})];
                if !digest {
                    widgets.extend(render::facts(n).into_iter().map(
                        |(k, v)| json!({"decoratedText": {"topLabel": k, "text": escape(&v)}}),
                    ));
                    let shown = render::evidence(n);
                    for (cause, next) in &shown.hints {
                        widgets.push(json!({"textParagraph": {"text": format!(
                            "<b>Likely cause:</b> {}<br><b>Next step:</b> {}",
                            escape(cause),
                            escape(next)
                        )}}));
                    }
                    widgets.extend(shown.facts.into_iter().map(
                        |(k, v)| json!({"decoratedText": {"topLabel": k, "text": escape(&v)}}),
                    ));
                    for (title, lines) in [
                        ("Recent events", &shown.events),
                        ("Last log lines", &shown.log),
                        ("Next commands", &shown.commands),
                    ] {
                        if !lines.is_empty() {
                            let body: Vec<String> = lines.iter().map(|l| escape(l)).collect();
                            widgets.push(json!({"textParagraph": {"text": format!("<b>{title}</b><br>{}", body.join("<br>"))}}));
                        }
                    }
                }
                let links = render::links(&batch.links, &batch.cluster, n);
                if !links.is_empty() {
                    let buttons: Vec<Value> = links
                    .into_iter()
                    .map(|(name, url)| json!({"text": name, "onClick": {"openLink": {"url": url}}}))
                    .collect();
                    widgets.push(json!({"buttonList": {"buttons": buttons}}));
                }
                json!({"widgets": widgets})
            })
            .collect();
    if batch.items.len() > DIGEST_MAX {
        sections.push(json!({"widgets": [{"textParagraph": {"text": format!(
            "…and {} more",
            batch.items.len() - DIGEST_MAX
        )}}]}));
    }
    json!({
        "text": text,
        "cardsV2": [{
            "cardId": "kpulse",
            "card": {
                "header": {
                    "title": title,
                    "subtitle": match state {
                        State::Firing => "firing",
                        State::Resolved => "resolved",
                    },
                },
                "sections": sections,
            },
        }],
    })
}

/// Card text is a small HTML subset.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
