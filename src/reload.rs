//! Live configuration: a kube-runtime `Controller` whose primary object is the ConfigMap `kpulse`
//! and whose related object is the referenced Secret.
//!
//! Any change to either triggers one reconcile, and the reconcile reads **both current objects
//! from the API server** ([`read`]), so it never applies a partial view: a Secret that a watch
//! has not listed yet is not "missing". Each change: parse → validate → build the sinks → swap
//! atomically ([`Pipeline::apply`]). Deliveries under way finish on the old sinks; the next alert
//! uses the new ones.
//!
//! An invalid change keeps the last good configuration running and is reported as a Warning
//! Event `InvalidConfig` on the ConfigMap (its note is always the latest error), the
//! `kpulse_config_reloads_total{result="failure"}` metric, a log line and `/status`. A Controller
//! never reconciles a deleted object, so a watch of the ConfigMap alone reports deletions; the
//! last good configuration stays in use.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, Resource};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::{self, CONFIG_KEY, Config, Monitors, SecretMap};
use crate::pipeline::Pipeline;
use crate::sinks::Registry;

/// Where the configuration lives.
#[derive(Debug, Clone)]
pub struct Source {
    pub namespace: String,
    pub config_map: String,
    pub secret: Option<String>,
}

/// Why the current objects do not make a configuration.
#[derive(Debug)]
pub enum ReadError {
    /// The API server could not be asked: try again, report nothing to the user yet.
    Api(kube::Error),
    /// The objects are there and wrong; the text names the object, key or field.
    Invalid(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Api(e) => f.write_str(&api_error(e)),
            ReadError::Invalid(text) => f.write_str(text),
        }
    }
}

/// A Kubernetes API error in one line: the server's message and status code, without the
/// response dump kube's own `Display` appends.
pub fn api_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if status.code == 403 => format!(
            "{} (HTTP 403: kpulse's ServiceAccount may read only its ConfigMap and the Secret the chart names in existingSecret or creates from secrets)",
            status.message
        ),
        kube::Error::Api(status) => format!("{} (HTTP {})", status.message, status.code),
        other => other.to_string(),
    }
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

/// The configuration text and secrets of the current objects, as the API server has them now.
/// `None` when the ConfigMap does not exist.
pub async fn read(
    client: &Client,
    source: &Source,
) -> Result<Option<(String, SecretMap)>, ReadError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let Some(cm) = cms
        .get_opt(&source.config_map)
        .await
        .map_err(ReadError::Api)?
    else {
        return Ok(None);
    };
    let text = cm
        .data
        .as_ref()
        .and_then(|d| d.get(CONFIG_KEY))
        .cloned()
        .unwrap_or_default();
    let Some(name) = &source.secret else {
        return Ok(Some((text, SecretMap::new())));
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &source.namespace);
    let secret = secrets.get_opt(name).await.map_err(ReadError::Api)?;
    let ns = &source.namespace;
    let secret =
        secret.ok_or_else(|| ReadError::Invalid(format!("Secret {ns}/{name} not found")))?;
    let map =
        secret_map(&secret).map_err(|e| ReadError::Invalid(format!("Secret {ns}/{name}: {e}")))?;
    Ok(Some((text, map)))
}

/// The configuration the current objects make (see [`read`]); `None` without a ConfigMap.
pub async fn load(client: &Client, source: &Source) -> Result<Option<Config>, ReadError> {
    let Some((text, secrets)) = read(client, source).await? else {
        return Ok(None);
    };
    config::load(&text, &secrets).map(Some).map_err(|e| {
        ReadError::Invalid(format!(
            "ConfigMap {}/{} key {CONFIG_KEY}: invalid configuration:\n{e}",
            source.namespace, source.config_map
        ))
    })
}

/// The outcome of applying one configuration text.
#[derive(Debug)]
enum Verdict {
    Unchanged,
    Applied(u64),
    Invalid(String),
}

/// Validates and applies one configuration text. Pure apart from the pipeline swap.
fn apply(pipeline: &Pipeline, text: &str, secrets: &SecretMap) -> Verdict {
    let config = match config::load(text, secrets) {
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

/// Cuts an Event note to the API's limit on a character boundary.
fn note(text: String) -> String {
    const LIMIT: usize = 1000;
    if text.len() <= LIMIT {
        return text;
    }
    let mut cut = LIMIT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Events on the ConfigMap. The Recorder folds repeats of one reason into a series and keeps
/// the first note, so a different error gets a Recorder (and so an Event) of its own.
struct Reports {
    client: Client,
    reporter: Reporter,
    recorder: Recorder,
    last_invalid: Option<String>,
}

impl Reports {
    async fn publish(&mut self, event: Event, cm: &ConfigMap) {
        if event.type_ == EventType::Warning && self.last_invalid != event.note {
            self.recorder = Recorder::new(self.client.clone(), self.reporter.clone());
            self.last_invalid = event.note.clone();
        }
        if let Err(e) = self.recorder.publish(&event, &cm.object_ref(&())).await {
            tracing::warn!(error = %e, reason = %event.reason, "cannot publish an event on the configuration ConfigMap");
        }
    }
}

struct Context {
    client: Client,
    pipeline: Pipeline,
    /// For the welcome message of a new configuration.
    store: crate::state::SharedStore,
    source: Source,
    reports: Mutex<Reports>,
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let verdict = match read(&ctx.client, &ctx.source).await {
        Ok(Some((text, secrets))) => apply(&ctx.pipeline, &text, &secrets),
        // Deleted since the trigger: the deletion path reports it.
        Ok(None) => return Ok(Action::await_change()),
        Err(ReadError::Api(e)) => return Err(e),
        Err(ReadError::Invalid(e)) => Verdict::Invalid(e),
    };
    let metrics = ctx.pipeline.metrics();
    let event = match verdict {
        Verdict::Unchanged => {
            tracing::debug!("configuration objects read; the configuration in use is current");
            return Ok(Action::await_change());
        }
        Verdict::Applied(generation) => {
            metrics.config_reload(Ok(generation), ctx.pipeline.now());
            tracing::info!(generation, "configuration applied");
            tokio::spawn(crate::welcome::greet(
                ctx.pipeline.clone(),
                ctx.store.clone(),
            ));
            Event {
                type_: EventType::Normal,
                reason: "ConfigApplied".into(),
                note: Some(format!("configuration generation {generation} is in use")),
                action: "Reload".into(),
                secondary: None,
            }
        }
        Verdict::Invalid(errors) => {
            metrics.config_reload(Err(&errors), ctx.pipeline.now());
            tracing::error!(errors = %errors, "invalid configuration; the last good one stays in use");
            Event {
                type_: EventType::Warning,
                reason: "InvalidConfig".into(),
                note: Some(note(format!("kept the last good configuration: {errors}"))),
                action: "Reload".into(),
                secondary: None,
            }
        }
    };
    ctx.reports.lock().await.publish(event, &cm).await;
    Ok(Action::await_change())
}

fn error_policy(_cm: Arc<ConfigMap>, error: &kube::Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        error = api_error(error),
        "cannot read the configuration objects; retrying"
    );
    Action::requeue(Duration::from_secs(5))
}

/// Watches the configuration objects and applies changes until cancelled.
pub async fn run(
    client: Client,
    pipeline: Pipeline,
    store: crate::state::SharedStore,
    source: Source,
    token: CancellationToken,
) {
    let reporter = Reporter {
        controller: "kpulse".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        reports: Mutex::new(Reports {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client: client.clone(),
            reporter,
            last_invalid: None,
        }),
        client: client.clone(),
        pipeline: pipeline.clone(),
        store,
        source: source.clone(),
    });
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &source.namespace);
    let mut controller = Controller::new(cms.clone(), by_name(&source.config_map));
    if let Some(name) = &source.secret {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &source.namespace);
        let target = ObjectRef::<ConfigMap>::new(&source.config_map).within(&source.namespace);
        controller = controller.watches(secrets, by_name(name), move |_| Some(target.clone()));
    }
    let results = controller
        .graceful_shutdown_on(token.clone().cancelled_owned())
        .run(reconcile, error_policy, ctx);
    let mut results = std::pin::pin!(results);
    // The Controller never sees a deletion: a watch of its own reports them.
    let mut primary =
        std::pin::pin!(watcher::watcher(cms, by_name(&source.config_map)).default_backoff());
    let mut deletions = Deletions::default();
    loop {
        tokio::select! {
            result = results.next() => match result {
                None => return,
                // A trigger for an object the store no longer has: a deletion, reported below.
                Some(Err(kube::runtime::controller::Error::ObjectNotFound(_))) | Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "configuration controller error"),
            },
            Some(event) = primary.next() => {
                if let Ok(event) = event
                    && deletions.gone(&event)
                {
                    let message = format!(
                        "ConfigMap {}/{} was deleted; the last good configuration stays in use",
                        source.namespace, source.config_map
                    );
                    tracing::warn!("{message}");
                    pipeline.metrics().config_reload(Err(&message), pipeline.now());
                }
            }
        }
    }
}

/// Tells deletions of the primary object apart on its watch stream: a delete event, or a
/// re-list (after a disconnect) that no longer finds an object seen before.
#[derive(Default)]
struct Deletions {
    present: bool,
    listing: Option<bool>,
}

impl Deletions {
    fn gone(&mut self, event: &WatchEvent<ConfigMap>) -> bool {
        let was = self.present;
        match event {
            WatchEvent::Init => {
                self.listing = Some(false);
                return false;
            }
            WatchEvent::InitApply(_) => {
                self.listing = Some(true);
                return false;
            }
            WatchEvent::InitDone => self.present = self.listing.take().unwrap_or(false),
            WatchEvent::Apply(_) => self.present = true,
            WatchEvent::Delete(_) => self.present = false,
        }
        was && !self.present
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::collections::BTreeMap;

    fn pipeline(yaml: &str) -> Pipeline {
        let c = config::load(yaml, &SecretMap::new()).unwrap();
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

    #[test]
    fn deletions_are_a_delete_event_or_a_relist_without_the_object() {
        let cm = ConfigMap::default;
        let mut d = Deletions::default();
        let seen: Vec<bool> = [
            WatchEvent::Init,
            WatchEvent::InitDone, // listed before it exists: nothing to report
            WatchEvent::Apply(cm()),
            WatchEvent::Delete(cm()),
            WatchEvent::Apply(cm()),
            WatchEvent::Init,
            WatchEvent::InitApply(cm()),
            WatchEvent::InitDone, // still there after a re-list
            WatchEvent::Init,
            WatchEvent::InitDone, // deleted while the watch was down
            WatchEvent::Delete(cm()),
        ]
        .iter()
        .map(|e| d.gone(e))
        .collect();
        assert_eq!(
            seen,
            [
                false, false, false, true, false, false, false, false, false, true, false
            ]
        );
    }

    #[test]
    fn api_errors_read_as_one_line_without_a_response_dump() {
        let status = kube::core::Status::failure(
            "secrets \"other\" is forbidden: User \"system:serviceaccount:k:kpulse\" cannot get resource \"secrets\"",
            "Forbidden",
        )
        .with_code(403);
        let text = ReadError::Api(kube::Error::Api(status.boxed())).to_string();
        assert!(
            text.starts_with("secrets \"other\" is forbidden: User"),
            "{text}"
        );
        assert!(
            text.contains("HTTP 403: kpulse's ServiceAccount may read only"),
            "{text}"
        );
        assert!(!text.contains("Status {"), "a response dump: {text}");
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let cut = note("é".repeat(600));
        assert!(cut.len() <= 1003 && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(note("short".into()), "short");
    }
}
