//! The `discord` sink: a Discord webhook message with one embed per alert, coloured red
//! (firing) or green (resolved). Mentions in alert text are never pinged.

use serde_json::{Value, json};

use super::http::{self, JsonWebhook};
use super::{Batch, render};
use crate::config::DiscordChannel;
use crate::engine::{DispatchItem, DispatchKind};

/// Discord allows 10 embeds per message.
const EMBEDS_MAX: usize = 10;
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;
const FIELDS_MAX: usize = 25;
const FIELD_VALUE_MAX: usize = 1024;

/// The Discord sink: its webhook URL, and [`message`] for each batch.
pub fn sink(c: &DiscordChannel) -> Result<JsonWebhook, String> {
    JsonWebhook::new("discord", &c.webhook_url, &c.delivery, message)
}

/// The webhook message for a batch.
pub fn message(batch: &Batch) -> Value {
    let digest = batch.kind == DispatchKind::Digest;
    let shown = if batch.items.len() > EMBEDS_MAX {
        EMBEDS_MAX - 1
    } else {
        batch.items.len()
    };
    let mut embeds: Vec<Value> = batch.items[..shown]
        .iter()
        .map(|i| embed(batch, i, !digest))
        .collect();
    if shown < batch.items.len() {
        let rest: Vec<String> = batch.items[shown..]
            .iter()
            .map(|i| render::headline(&batch.cluster, &i.notification))
            .collect();
        embeds.push(json!({
            "title": format!("…and {} more", rest.len()),
            "description": http::truncate(&rest.join("\n"), DESCRIPTION_MAX),
            "color": render::color_rgb(render::batch_state(&batch.items[shown..])),
        }));
    }
    let content = if digest {
        render::digest_title(&batch.cluster, &batch.items)
    } else {
        batch
            .items
            .iter()
            .map(|i| render::headline(&batch.cluster, &i.notification))
            .collect::<Vec<_>>()
            .join("\n")
    };
    json!({
        "username": "kpulse",
        "content": http::truncate(&content, 2000),
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    })
}

fn embed(batch: &Batch, item: &DispatchItem, with_facts: bool) -> Value {
    let n = &item.notification;
    let mut description = render::summary(n);
    let shown = if with_facts {
        render::evidence(n)
    } else {
        render::Shown::default()
    };
    for (cause, next) in &shown.hints {
        description.push_str(&format!(
            "\n\n**Likely cause:** {cause}\n**Next step:** {next}"
        ));
    }
    for (title, lines) in [
        ("Recent events", &shown.events),
        ("Last log lines", &shown.log),
        ("Next commands", &shown.commands),
    ] {
        if !lines.is_empty() {
            let body = lines.join("\n").replace('`', "'");
            description.push_str(&format!("\n**{title}**\n```\n{body}\n```"));
        }
    }
    for (name, url) in render::links(&batch.links, &batch.cluster, n) {
        description.push_str(&format!("\n[{name}]({url})"));
    }
    let mut e = json!({
        "title": http::truncate(&render::headline(&batch.cluster, n), TITLE_MAX),
        "description": http::truncate(&description, DESCRIPTION_MAX),
        "color": render::color_rgb(n.state),
        "timestamp": n.at.to_string(),
    });
    if with_facts {
        let fields: Vec<Value> = render::facts(n)
            .into_iter()
            .chain(shown.facts)
            .take(FIELDS_MAX)
            .map(|(k, v)| json!({"name": http::truncate(&k, TITLE_MAX), "value": http::truncate(&v, FIELD_VALUE_MAX), "inline": true}))
            .collect();
        e["fields"] = Value::Array(fields);
    }
    e
}
