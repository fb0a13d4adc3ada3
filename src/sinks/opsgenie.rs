//! The `opsgenie` sink: Opsgenie Alert API v2. A firing alert creates an Opsgenie alert with the
//! alert key as `alias` (Opsgenie folds repeats into one alert); its resolution closes that alias.

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::http::{self, truncate};
use super::{AttemptError, Batch, Delivered, Notifier, render};
use crate::alert::{Notification, Severity, State};
use crate::config::OpsgenieChannel;

/// Opsgenie rejects longer messages.
const MESSAGE_MAX: usize = 130;
/// Opsgenie rejects longer descriptions.
const DESCRIPTION_MAX: usize = 15_000;

/// Creates and closes Opsgenie alerts.
pub struct OpsgenieSink {
    settings: OpsgenieChannel,
    client: reqwest::Client,
}

impl OpsgenieSink {
    pub fn new(settings: &OpsgenieChannel) -> Result<Self, String> {
        let url = reqwest::Url::parse(settings.api_url.expose())
            .map_err(|e| format!("api_url is not a valid URL: {e}"))?;
        if url.cannot_be_a_base() {
            return Err("api_url must be an http(s) URL".into());
        }
        Ok(OpsgenieSink {
            settings: settings.clone(),
            client: http::client(&settings.delivery)?,
        })
    }

    /// The URL and body for one notification: create on firing, close on resolution.
    pub fn request(&self, batch: &Batch, n: &Notification) -> (reqwest::Url, Value) {
        let mut url = reqwest::Url::parse(self.settings.api_url.expose())
            .expect("api_url was parsed when the sink was built");
        let alias = n.alert.key.to_string();
        {
            let mut path = url
                .path_segments_mut()
                .expect("new() checked that api_url can be a base");
            path.pop_if_empty().push("v2").push("alerts");
            if n.state == State::Resolved {
                // `push` percent-encodes the slashes of the alias.
                path.push(&alias).push("close");
            }
        }
        if n.state == State::Resolved {
            url.set_query(Some("identifierType=alias"));
        }
        (url, body(batch, n))
    }
}

fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "P1",
        Severity::Warning => "P3",
        Severity::Info => "P5",
    }
}

/// The create or close body.
pub fn body(batch: &Batch, n: &Notification) -> Value {
    let key = &n.alert.key;
    match n.state {
        State::Resolved => json!({
            "source": "kpulse",
            "note": render::summary(n),
        }),
        State::Firing => {
            let mut description = render::body(n);
            let links = render::links(&batch.links, &batch.cluster, n);
            if !links.is_empty() {
                description.push('\n');
                for (name, url) in &links {
                    description.push_str(&format!("\n{name}: {url}"));
                }
            }
            let mut details = Map::new();
            details.insert("cluster".into(), Value::String(batch.cluster.clone()));
            details.insert("object".into(), Value::String(key.object()));
            for (k, v) in render::facts(n) {
                details.insert(k, Value::String(v));
            }
            let shown = render::evidence(n);
            if let Some((cause, next)) = shown.hints.first() {
                details.insert("Likely cause".into(), Value::String(cause.clone()));
                details.insert("Next step".into(), Value::String(next.clone()));
            }
            for (k, v) in shown.facts {
                details.insert(k, Value::String(v));
            }
            for (name, url) in links {
                details.insert(name, Value::String(url));
            }
            let mut tags = vec![
                "kpulse".to_string(),
                format!("cluster:{}", batch.cluster),
                format!("monitor:{}", key.monitor),
                format!("severity:{}", n.alert.severity),
            ];
            if !key.namespace.is_empty() {
                tags.push(format!("namespace:{}", key.namespace));
            }
            json!({
                "message": truncate(&render::plain_headline(&batch.cluster, n), MESSAGE_MAX),
                "alias": key.to_string(),
                "description": truncate(&description, DESCRIPTION_MAX),
                "priority": priority(n.alert.severity),
                "tags": tags,
                "details": details,
                "entity": key.object(),
                "source": "kpulse",
            })
        }
    }
}

impl Notifier for OpsgenieSink {
    fn kind(&self) -> &'static str {
        "opsgenie"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let key = self.settings.api_key.expose();
            let mut last = String::new();
            // Opsgenie de-duplicates creates by alias, so a retry that re-sends accepted items
            // does not open a second alert.
            for item in &batch.items {
                let (url, body) = self.request(batch, &item.notification);
                let request = self
                    .client
                    .post(url)
                    .header(reqwest::header::AUTHORIZATION, format!("GenieKey {key}"))
                    .json(&body);
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
