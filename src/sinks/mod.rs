//! Notification sinks: the [`Notifier`] trait, one file per sink, and the [`Registry`] that
//! builds them from `channels` and delivers each [`Dispatch`] with timeouts and retries.
//!
//! A sink implements one attempt ([`Notifier::attempt`]); retry, backoff with jitter,
//! `Retry-After` and the per-attempt timeout live here, once, in [`Registry::deliver`]. So does
//! redaction: every attempt's error or answer passes through the channel's [`Redactor`] before
//! anything logs, counts, stores or shows it.

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod googlechat;
pub mod http;
pub mod log;
pub mod opsgenie;
pub mod pagerduty;
/// The one redactor, also used for evidence (it lives below the sinks).
pub use crate::redact;
pub mod render;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::sync::oneshot;

use crate::alert::{Alert, AlertKey, Notification, Severity, State};
use crate::clock::Clock;
use crate::config::{Channel, Config, Delivery};
use crate::engine::{Dispatch, DispatchItem, DispatchKind};
use redact::Redactor;

pub use crate::delivery::{Delivered, Report, SendError};

/// What a sink renders: one dispatch plus the context every message shows.
#[derive(Debug, Clone)]
pub struct Batch {
    pub cluster: String,
    pub channel: String,
    pub kind: DispatchKind,
    pub items: Vec<DispatchItem>,
    /// Link templates from `links`, already filled in per alert by [`render::links`].
    pub links: BTreeMap<String, String>,
    /// When the current attempt is made, on the registry's clock (set by [`Registry::deliver`]
    /// before each attempt): what a sink stamps a post with.
    pub at: Timestamp,
}

impl Batch {
    pub fn from_dispatch(config: &Config, dispatch: &Dispatch) -> Self {
        Batch {
            cluster: config.cluster.clone(),
            channel: dispatch.channel.clone(),
            kind: dispatch.kind,
            items: dispatch.notifications.clone(),
            links: config.links.clone(),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    /// A message for `POST /test-channel`: one firing info alert about kpulse itself.
    pub fn test(cluster: &str, channel: &str, now: Timestamp) -> Self {
        let alert = Alert::new(
            AlertKey::new("test", "", "Channel", channel, "Test"),
            Severity::Info,
            format!("Test message for channel {channel}"),
            now,
        )
        .message("kpulse can reach this channel. No action is needed.")
        .one_shot();
        Self::notice(cluster, channel, alert, now)
    }

    /// One message about kpulse itself (a test message, the welcome message), sent at once.
    pub fn notice(cluster: &str, channel: &str, alert: Alert, now: Timestamp) -> Self {
        Batch {
            cluster: cluster.to_string(),
            channel: channel.to_string(),
            kind: DispatchKind::Immediate,
            items: vec![DispatchItem {
                notification: Notification {
                    state: State::Firing,
                    alert,
                    at: now,
                },
                reference: None,
            }],
            links: BTreeMap::new(),
            at: now,
        }
    }
}

/// Why one attempt failed. The message may hold whatever the provider answered, secrets
/// included: [`Registry`] redacts it before it is shown.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AttemptError {
    pub message: String,
    /// Network errors, timeouts, 5xx and 429 may heal; a bad token or payload does not.
    pub retryable: bool,
    /// From a `Retry-After` header.
    pub retry_after: Option<Duration>,
}

impl AttemptError {
    pub fn permanent(message: impl Into<String>) -> Self {
        AttemptError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        AttemptError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }
}

/// A problem building a sink from its configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("channels.{channel}: {message}")]
pub struct BuildError {
    pub channel: String,
    pub message: String,
}

/// One notification channel.
pub trait Notifier: Send + Sync {
    /// The sink type, as in the config (`slack`, `email`, ...).
    fn kind(&self) -> &'static str;
    /// One delivery attempt of the whole batch.
    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>>;
}

struct Entry {
    notifier: Arc<dyn Notifier>,
    delivery: Delivery,
    /// Every secret of the channel's settings, built with its sink.
    redactor: Redactor,
    /// Finishes when the last delivery queued on this channel has (see [`Registry::queue`]).
    tail: std::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl Entry {
    fn new(notifier: Arc<dyn Notifier>, delivery: Delivery, redactor: Redactor) -> Self {
        Entry {
            notifier,
            delivery,
            redactor,
            tail: std::sync::Mutex::new(None),
        }
    }

    /// One attempt within the channel's timeout. Its error or answer leaves here redacted and
    /// cut to a readable length: this is the only way a sink's text reaches logs, metrics,
    /// `/status` or `/test-channel`.
    async fn attempt(&self, batch: &Batch) -> Result<Delivered, AttemptError> {
        let timeout = self.delivery.timeout.get();
        let outcome = match tokio::time::timeout(timeout, self.notifier.attempt(batch)).await {
            Ok(r) => r,
            Err(_) => Err(AttemptError::transient(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ))),
        };
        match outcome {
            Ok(mut d) => {
                d.response = self.redactor.shown(&d.response);
                Ok(d)
            }
            Err(mut e) => {
                e.message = self.redactor.shown(&e.message);
                Err(e)
            }
        }
    }
}

/// The channels of one configuration, built and ready to send.
#[derive(Clone)]
pub struct Registry {
    channels: Arc<BTreeMap<String, Entry>>,
    /// What [`Batch::at`] is set from; the pipeline hands in its own.
    clock: Clock,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            channels: Arc::default(),
            clock: crate::clock::wall(),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.channels.keys()).finish()
    }
}

impl Registry {
    /// Builds every channel; all problems are returned together.
    pub fn build(config: &Config) -> Result<Self, Vec<BuildError>> {
        let mut channels = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, channel) in &config.channels {
            match build_one(name, channel) {
                Ok(notifier) => {
                    let redactor = Redactor::for_channel(channel);
                    channels.insert(
                        name.clone(),
                        Entry::new(notifier, channel.delivery().clone(), redactor),
                    );
                }
                Err(message) => errors.push(BuildError {
                    channel: name.clone(),
                    message,
                }),
            }
        }
        if errors.is_empty() {
            Ok(Registry {
                channels: Arc::new(channels),
                clock: crate::clock::wall(),
            })
        } else {
            Err(errors)
        }
    }

    /// A registry from ready notifiers, with no secrets to redact (tests and benchmarks).
    pub fn from_notifiers(notifiers: Vec<(String, Arc<dyn Notifier>, Delivery)>) -> Self {
        let channels = notifiers
            .into_iter()
            .map(|(name, notifier, delivery)| {
                (name, Entry::new(notifier, delivery, Redactor::default()))
            })
            .collect();
        Registry {
            channels: Arc::new(channels),
            clock: crate::clock::wall(),
        }
    }

    /// The same channels, stamping attempts with `clock` (the pipeline's).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.channels.keys()
    }

    pub fn contains(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// Puts `batch` in its channel's line now and returns its delivery, which starts once every
    /// batch queued before it on that channel has finished (delivered, failed for good, or
    /// dropped). A firing and its resolution thus reach a channel in the order they happened,
    /// even when the firing needed retries; channels do not wait for each other.
    pub fn queue(&self, batch: Batch) -> impl Future<Output = Report> + Send + 'static {
        let channel = batch.channel.clone();
        self.queue_with(&channel, std::future::ready(batch))
    }

    /// [`Registry::queue`] for a batch still being completed (its evidence collected): it takes
    /// its place in `channel`'s line now, and `prepare` runs while the batches before it are
    /// delivered.
    pub fn queue_with<F>(
        &self,
        channel: &str,
        prepare: F,
    ) -> impl Future<Output = Report> + Send + 'static + use<F>
    where
        F: Future<Output = Batch> + Send + 'static,
    {
        let (done, turn) = oneshot::channel::<()>();
        let before = self.channels.get(channel).and_then(|e| {
            e.tail
                .lock()
                .expect("channel queue lock is never poisoned")
                .replace(turn)
        });
        let this = self.clone();
        async move {
            let (batch, _) = futures::join!(prepare, async {
                if let Some(before) = before {
                    // Err: the batch before finished and dropped its sender, as intended.
                    let _ = before.await;
                }
            });
            let report = this.deliver(batch).await;
            drop(done);
            report
        }
    }

    /// Delivers one batch to its channel at once, outside the channel's line (`/test-channel`
    /// and tests; the pipeline uses [`Registry::queue`]): per-attempt timeout, retries with exponential backoff
    /// and jitter for errors that may heal, `Retry-After` honoured, resolutions skipped where
    /// `send_resolved` is off.
    pub async fn deliver(&self, mut batch: Batch) -> Report {
        let started = Instant::now();
        let Some(entry) = self.channels.get(&batch.channel) else {
            return Report {
                sink: "unknown",
                attempts: 0,
                latency: started.elapsed(),
                result: Err(SendError {
                    channel: batch.channel.clone(),
                    sink: "unknown",
                    message: "channel is not in the current configuration".into(),
                    attempts: 0,
                }),
                channel: batch.channel,
            };
        };
        let sink = entry.notifier.kind();
        if !entry.delivery.send_resolved {
            batch
                .items
                .retain(|i| i.notification.state == State::Firing);
            if batch.items.is_empty() {
                return Report {
                    channel: batch.channel,
                    sink,
                    attempts: 0,
                    latency: started.elapsed(),
                    result: Ok(Delivered::default()),
                };
            }
        }
        let max_attempts = entry.delivery.retries + 1;
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            batch.at = (self.clock)();
            match entry.attempt(&batch).await {
                Ok(d) => break Ok(d),
                Err(e) if e.retryable && attempts < max_attempts => {
                    let wait = e.retry_after.unwrap_or_else(|| backoff(attempts));
                    tracing::warn!(channel = %batch.channel, sink, attempt = attempts, error = %e.message, wait_ms = wait.as_millis() as u64, "delivery failed, retrying");
                    tokio::time::sleep(wait.min(Duration::from_secs(300))).await;
                }
                Err(e) => {
                    break Err(SendError {
                        channel: batch.channel.clone(),
                        sink,
                        message: e.message,
                        attempts,
                    });
                }
            }
        };
        Report {
            channel: batch.channel,
            sink,
            attempts,
            latency: started.elapsed(),
            result,
        }
    }
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... capped at 30 s, times 0.5–1.5.
pub fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    let capped = base.min(30_000);
    let jitter = rand::random_range(0.5..1.5);
    Duration::from_millis((capped as f64 * jitter) as u64)
}

fn build_one(name: &str, channel: &Channel) -> Result<Arc<dyn Notifier>, String> {
    match channel {
        Channel::Log(_) => Ok(Arc::new(log::LogSink::stdout(name))),
        Channel::Webhook(c) => Ok(Arc::new(webhook::WebhookSink::new(c)?)),
        Channel::Slack(c) => Ok(Arc::new(slack::SlackSink::new(c)?)),
        Channel::Teams(c) => Ok(Arc::new(teams::sink(c)?)),
        Channel::Discord(c) => Ok(Arc::new(discord::sink(c)?)),
        Channel::Googlechat(c) => Ok(Arc::new(googlechat::sink(c)?)),
        Channel::Email(c) => Ok(Arc::new(email::EmailSink::new(name, c)?)),
        Channel::Pagerduty(c) => Ok(Arc::new(pagerduty::PagerDutySink::new(c)?)),
        Channel::Opsgenie(c) => Ok(Arc::new(opsgenie::OpsgenieSink::new(c)?)),
        Channel::Alertmanager(c) => Ok(Arc::new(alertmanager::AlertmanagerSink::new(c)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails with the scripted errors, then succeeds.
    struct Scripted {
        errors: Mutex<Vec<AttemptError>>,
        calls: AtomicU32,
    }

    impl Notifier for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        fn attempt<'a>(&'a self, _: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.errors.lock().unwrap().pop();
            Box::pin(async move {
                match next {
                    Some(e) => Err(e),
                    None => Ok(Delivered::default()),
                }
            })
        }
    }

    fn registry(errors: Vec<AttemptError>, retries: u32) -> (Registry, Arc<Scripted>) {
        let s = Arc::new(Scripted {
            errors: Mutex::new(errors),
            calls: AtomicU32::new(0),
        });
        let delivery = Delivery {
            retries,
            ..Delivery::default()
        };
        let r = Registry::from_notifiers(vec![("ops".into(), s.clone(), delivery)]);
        (r, s)
    }

    fn batch() -> Batch {
        Batch::test("c", "ops", Timestamp::UNIX_EPOCH)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_then_delivered() {
        let (r, s) = registry(vec![AttemptError::transient("503")], 3);
        let report = r.deliver(batch()).await;
        assert!(report.result.is_ok());
        assert_eq!((report.attempts, s.calls.load(Ordering::SeqCst)), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried_and_name_the_channel() {
        let (r, s) = registry(vec![AttemptError::permanent("401 invalid token")], 3);
        let err = r.deliver(batch()).await.result.unwrap_err();
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            err.to_string(),
            "channel \"ops\" (scripted): 401 invalid token after 1 attempt(s)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let mut e = AttemptError::transient("429");
        e.retry_after = Some(Duration::from_secs(7));
        let (r, _) = registry(vec![e], 1);
        let start = tokio::time::Instant::now();
        assert!(r.deliver(batch()).await.result.is_ok());
        assert_eq!(start.elapsed().as_secs(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_configured_retries() {
        let errs = vec![AttemptError::transient("boom"); 5];
        let (r, s) = registry(errs, 2);
        let report = r.deliver(batch()).await;
        assert_eq!(report.result.unwrap_err().attempts, 3);
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);
    }

    /// Records the order attempts start in; an attempt on a batch titled "hold" waits for
    /// `release`.
    #[derive(Default)]
    struct Gate {
        started: Mutex<Vec<String>>,
        release: tokio::sync::Notify,
    }

    impl Notifier for Gate {
        fn kind(&self) -> &'static str {
            "gate"
        }
        fn attempt<'a>(&'a self, b: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
            let name = b.items[0].notification.alert.key.name.clone();
            self.started.lock().unwrap().push(name.clone());
            Box::pin(async move {
                if name == "hold" {
                    self.release.notified().await;
                    return Err(AttemptError::permanent("held, then failed"));
                }
                Ok(Delivered::default())
            })
        }
    }

    fn named(channel: &str, name: &str) -> Batch {
        let mut b = Batch::test("c", channel, Timestamp::UNIX_EPOCH);
        b.items[0].notification.alert.key.name = name.into();
        b
    }

    #[tokio::test]
    async fn a_channel_delivers_in_queue_order_and_others_do_not_wait() {
        let gate = Arc::new(Gate::default());
        let other = Arc::new(Gate::default());
        let r = Registry::from_notifiers(vec![
            ("ops".into(), gate.clone(), Delivery::default()),
            ("other".into(), other.clone(), Delivery::default()),
        ]);
        let first = tokio::spawn(r.queue(named("ops", "hold")));
        // Queued after `hold`, spawned before it has run: still waits its turn.
        let second = tokio::spawn(r.queue(named("ops", "after")));
        let elsewhere = r.queue(named("other", "elsewhere")).await;
        assert!(elsewhere.result.is_ok(), "another channel is not held up");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*gate.started.lock().unwrap(), ["hold"]);

        gate.release.notify_one();
        assert!(first.await.unwrap().result.is_err());
        assert!(second.await.unwrap().result.is_ok());
        assert_eq!(*gate.started.lock().unwrap(), ["hold", "after"]);
    }

    #[tokio::test]
    async fn a_queued_delivery_that_is_dropped_does_not_block_the_line() {
        let gate = Arc::new(Gate::default());
        let r = Registry::from_notifiers(vec![("ops".into(), gate.clone(), Delivery::default())]);
        let held = tokio::spawn(r.queue(named("ops", "hold")));
        let dropped = r.queue(named("ops", "dropped"));
        let last = tokio::spawn(r.queue(named("ops", "last")));
        drop(dropped);
        tokio::time::sleep(Duration::from_millis(50)).await;
        held.abort();
        let report = tokio::time::timeout(Duration::from_secs(5), last)
            .await
            .expect("the line moves on")
            .unwrap();
        assert!(report.result.is_ok());
        assert_eq!(*gate.started.lock().unwrap(), ["hold", "last"]);
    }

    /// Echoes `secret` in its answer; fails while `failures` is above zero.
    struct Echo {
        secret: &'static str,
        failures: AtomicU32,
    }

    impl Notifier for Echo {
        fn kind(&self) -> &'static str {
            "echo"
        }
        fn attempt<'a>(&'a self, _: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
            let failing = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let answer = format!("got\n  {}", self.secret);
            Box::pin(async move {
                if failing {
                    return Err(AttemptError::transient(format!("HTTP 500: {answer}")));
                }
                Ok(Delivered {
                    references: Vec::new(),
                    response: format!("HTTP 200: {answer}"),
                })
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_a_sink_answers_leaves_the_registry_redacted_on_one_line() {
        const SECRET: &str = "t0ken-abcdefgh";
        let key = crate::config::SecretString::new(SECRET);
        let registry = |failures| {
            let echo = Arc::new(Echo {
                secret: SECRET,
                failures: AtomicU32::new(failures),
            });
            let redactor = Redactor::new(&[crate::config::SecretUse::Value(&key)]);
            let delivery = Delivery {
                retries: 0,
                ..Delivery::default()
            };
            Registry {
                channels: Arc::new(BTreeMap::from([(
                    "ops".to_string(),
                    Entry::new(echo, delivery, redactor),
                )])),
                clock: crate::clock::wall(),
            }
        };
        let err = registry(1).deliver(batch()).await.result.unwrap_err();
        assert_eq!(err.message, "HTTP 500: got <redacted>");
        let delivered = registry(0).deliver(batch()).await.result.unwrap();
        assert_eq!(delivered.response, "HTTP 200: got <redacted>");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(attempt).as_millis() as u64;
            let base = (500u64 << (attempt - 1).min(6)).min(30_000);
            assert!(d >= base / 2 && d <= base * 3 / 2, "attempt {attempt}: {d}");
        }
    }
}
