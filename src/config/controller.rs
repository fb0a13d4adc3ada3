//! Live configuration: watches the ConfigMap `kpulse` (field selector on its name) and the
//! referenced Secret, and applies every change without a restart.
//!
//! Each change: parse → validate → build the sinks → swap atomically ([`Pipeline::apply`]).
//! Deliveries under way finish on the old sinks; the next alert uses the new ones. An invalid
//! change keeps the last good configuration running and is reported as a Warning Event
//! `InvalidConfig` on the ConfigMap, the `kpulse_config_reloads_total{result="failure"}` metric, a
//! log line and `/status`. A deleted ConfigMap keeps the last good configuration, and says so.
//!
//! Plain watchers rather than a `Controller`: a Controller never reconciles a deleted object, and
//! a deletion must be reported.

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, Resource};
use tokio_util::sync::CancellationToken;

use super::{CONFIG_KEY, Monitors, SecretMap};
use crate::pipeline::Pipeline;
use crate::sinks::Registry;

/// Where the configuration lives.
#[derive(Debug, Clone)]
pub struct Source {
    pub namespace: String,
    pub config_map: String,
    pub secret: Option<String>,
}

/// The outcome of reading the current objects once.
#[derive(Debug)]
enum Verdict {
    Unchanged,
    Applied(u64),
    Invalid(String),
}

/// Secret values as strings; a non-UTF-8 value is an error naming the key (never the value).
pub fn secret_map(secret: &Secret) -> Result<SecretMap, String> {
    let mut map = SecretMap::new();
    for (k, v) in secret.data.clone().unwrap_or_default() {
        let s = String::from_utf8(v.0).map_err(|_| format!("Secret key {k} is not UTF-8 text"))?;
        map.insert(k, s);
    }
    map.extend(secret.string_data.clone().unwrap_or_default());
    Ok(map)
}

/// Validates and applies one configuration text. Pure apart from the pipeline swap.
fn apply(pipeline: &Pipeline, text: &str, secrets: &SecretMap) -> Verdict {
    let config = match super::load(text, secrets) {
        Ok(c) => c,
        Err(errors) => return Verdict::Invalid(errors.to_string()),
    };
    let current = pipeline.runtime();
    if *current.config == config {
        return Verdict::Unchanged;
    }
    let registry = match Registry::build(&config) {
        Ok(r) => r,
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Verdict::Invalid(text.join("\n"));
        }
    };
    drop_switched_off(pipeline, &current.config.monitors, &config.monitors);
    match pipeline.apply(config, registry) {
        Ok(generation) => Verdict::Applied(generation),
        Err(e) => Verdict::Invalid(e.to_string()),
    }
}

/// Alerts of a monitor that was switched off are dropped without a `[RESOLVED]`: the condition
/// did not clear, kpulse stopped looking at it.
fn drop_switched_off(pipeline: &Pipeline, before: &Monitors, after: &Monitors) {
    for name in Monitors::NAMES {
        if before.enabled(name) && !after.enabled(name) {
            let dropped = pipeline.drop_monitor(name);
            tracing::info!(
                monitor = name,
                dropped,
                "monitor switched off; its active alerts are dropped without a resolution"
            );
        }
    }
}

struct Reloader {
    pipeline: Pipeline,
    source: Source,
    recorder: Recorder,
    config_map: Option<ConfigMap>,
    secret: Option<Secret>,
}

impl Reloader {
    async fn reconcile(&mut self) {
        let Some(cm) = &self.config_map else { return };
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(CONFIG_KEY))
            .cloned()
            .unwrap_or_default();
        let secrets = match (&self.source.secret, &self.secret) {
            (None, _) => Ok(SecretMap::new()),
            (Some(_), Some(s)) => secret_map(s),
            (Some(name), None) => Err(format!("Secret {}/{name} not found", self.source.namespace)),
        };
        let verdict = match secrets {
            Ok(secrets) => apply(&self.pipeline, &text, &secrets),
            Err(e) => Verdict::Invalid(e),
        };
        let metrics = self.pipeline.metrics();
        let reference = cm.object_ref(&());
        match verdict {
            Verdict::Unchanged => {}
            Verdict::Applied(generation) => {
                metrics.config_reload(Ok(generation));
                tracing::info!(generation, "configuration applied");
                let event = Event {
                    type_: EventType::Normal,
                    reason: "ConfigApplied".into(),
                    note: Some(format!("configuration generation {generation} is in use")),
                    action: "Reload".into(),
                    secondary: None,
                };
                if let Err(e) = self.recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, "cannot publish the ConfigApplied event");
                }
            }
            Verdict::Invalid(errors) => {
                metrics.config_reload(Err(&errors));
                tracing::error!(errors = %errors, "invalid configuration; the last good one stays in use");
                let mut note = format!("kept the last good configuration: {errors}");
                if note.len() > 1000 {
                    let mut cut = 1000;
                    while !note.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    note.truncate(cut);
                    note.push('…');
                }
                let event = Event {
                    type_: EventType::Warning,
                    reason: "InvalidConfig".into(),
                    note: Some(note),
                    action: "Reload".into(),
                    secondary: None,
                };
                if let Err(e) = self.recorder.publish(&event, &reference).await {
                    tracing::warn!(error = %e, "cannot publish the InvalidConfig event");
                }
            }
        }
    }

    fn deleted(&mut self) {
        if self.config_map.take().is_some() {
            let message = format!(
                "ConfigMap {}/{} was deleted; the last good configuration stays in use",
                self.source.namespace, self.source.config_map
            );
            tracing::warn!("{message}");
            self.pipeline.metrics().config_reload(Err(&message));
        }
    }
}

/// Watches the configuration objects and applies changes until cancelled.
pub async fn run(client: Client, pipeline: Pipeline, source: Source, token: CancellationToken) {
    let reporter = Reporter {
        controller: "kpulse".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let mut r = Reloader {
        pipeline,
        recorder: Recorder::new(client.clone(), reporter),
        source: source.clone(),
        config_map: None,
        secret: None,
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut cm_events = watcher::watcher(cms, by_name(&source.config_map))
        .default_backoff()
        .boxed();
    let mut secret_events = match &source.secret {
        Some(name) => {
            let secrets: Api<Secret> = Api::namespaced(client, &source.namespace);
            watcher::watcher(secrets, by_name(name))
                .default_backoff()
                .boxed()
        }
        None => stream::pending().boxed(),
    };
    // During a (re-)list, objects are collected and applied once the list is complete.
    let mut cm_listing: Option<Option<ConfigMap>> = None;
    let mut secret_listing: Option<Option<Secret>> = None;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            event = cm_events.next() => match event {
                None => return,
                Some(Err(e)) => tracing::warn!(error = %e, "configuration watch error; retrying"),
                Some(Ok(WatchEvent::Init)) => cm_listing = Some(None),
                Some(Ok(WatchEvent::InitApply(cm))) => cm_listing = Some(Some(cm)),
                Some(Ok(WatchEvent::InitDone)) => match cm_listing.take().flatten() {
                    Some(cm) => {
                        r.config_map = Some(cm);
                        r.reconcile().await;
                    }
                    None => r.deleted(),
                },
                Some(Ok(WatchEvent::Apply(cm))) => {
                    r.config_map = Some(cm);
                    r.reconcile().await;
                }
                Some(Ok(WatchEvent::Delete(_))) => r.deleted(),
            },
            event = secret_events.next() => match event {
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "secret watch error; retrying"),
                Some(Ok(WatchEvent::Init)) => secret_listing = Some(None),
                Some(Ok(WatchEvent::InitApply(s))) => secret_listing = Some(Some(s)),
                Some(Ok(WatchEvent::InitDone)) => {
                    r.secret = secret_listing.take().flatten();
                    r.reconcile().await;
                }
                Some(Ok(WatchEvent::Apply(s))) => {
                    r.secret = Some(s);
                    r.reconcile().await;
                }
                Some(Ok(WatchEvent::Delete(_))) => {
                    r.secret = None;
                    r.reconcile().await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn pipeline(yaml: &str) -> Pipeline {
        let c = super::super::load(yaml, &SecretMap::new()).unwrap();
        let r = Registry::build(&c).unwrap();
        Pipeline::new(c, r, Arc::new(Metrics::new())).unwrap()
    }

    const A: &str = "channels: {a: {type: log}}\nrouting: {default: [a]}\n";

    #[test]
    fn valid_change_applies_invalid_keeps_the_last_good_one() {
        let p = pipeline(A);
        assert!(matches!(
            apply(&p, A, &SecretMap::new()),
            Verdict::Unchanged
        ));
        let b = "channels: {a: {type: log}, b: {type: log}}\nrouting: {default: [b]}\n";
        assert!(matches!(
            apply(&p, b, &SecretMap::new()),
            Verdict::Applied(2)
        ));
        assert_eq!(p.runtime().config.routing.default, vec!["b".to_string()]);
        let bad = "channels: {a: {type: log}}\nrouting: {default: [pager]}\n";
        match apply(&p, bad, &SecretMap::new()) {
            Verdict::Invalid(e) => assert!(
                e.contains("routing.default[0]: unknown channel \"pager\""),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.runtime().generation, 2, "the good config stays");
        assert_eq!(p.runtime().config.routing.default, vec!["b".to_string()]);
    }

    #[test]
    fn secret_values_are_expanded_and_never_reported() {
        let p = pipeline(A);
        let yaml = "channels: {a: {type: log}, h: {type: webhook, url: 'https://x.example/h', headers: {Authorization: 'Bearer $TOKEN'}}}\nrouting: {default: [a]}\n";
        let mut secrets = SecretMap::new();
        match apply(&p, yaml, &secrets) {
            Verdict::Invalid(e) => assert!(e.contains("$TOKEN")),
            other => panic!("{other:?}"),
        }
        secrets.insert("TOKEN".into(), "hunter2-secret".into());
        let verdict = apply(&p, yaml, &secrets);
        if let Verdict::Invalid(e) = &verdict {
            assert!(!e.contains("hunter2-secret"), "secret in error: {e}");
        }
    }

    #[test]
    fn non_utf8_secret_names_the_key_only() {
        let s = Secret {
            data: Some(BTreeMap::from([(
                "BIN".to_string(),
                k8s_openapi::ByteString(vec![0xff, 0xfe]),
            )])),
            ..Default::default()
        };
        assert_eq!(
            secret_map(&s).unwrap_err(),
            "Secret key BIN is not UTF-8 text"
        );
    }
}
