//! The pipeline: the one place where monitors' reports meet the engine and the sinks.
//!
//! Monitors call [`Pipeline::submit`], [`Pipeline::reconcile`] and [`Pipeline::resolve`]. The
//! engine decides under a short lock; every resulting dispatch is delivered on its own task, in
//! its channel's line (a channel receives notifications in the order they were decided), so a
//! slow or failing channel never delays another. A configuration reload swaps the engine settings
//! and the sink registry atomically: deliveries already under way finish on the old sinks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{Alert, AlertKey, Finding, State};
use crate::config::Config;
use crate::engine::{Decision, DispatchKind, Engine, Outcome, Scope, Settings, Snapshot};
use crate::metrics::Metrics;
use crate::sinks::{Batch, Registry, Report};

pub use crate::clock::Clock;

/// The configuration in force and the sinks built from it.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub config: Arc<Config>,
    pub registry: Registry,
    /// Increases by one with every applied configuration.
    pub generation: u64,
    /// Every channel's secrets, kept out of evidence (built once per configuration).
    pub redactor: Arc<crate::redact::Redactor>,
    /// `templates`, compiled (a validated configuration's always compile).
    pub templates: Arc<crate::templates::Templates>,
}

impl Runtime {
    fn new(config: Config, registry: Registry, generation: u64) -> Self {
        Runtime {
            redactor: Arc::new(crate::redact::Redactor::for_config(&config)),
            templates: Arc::new(
                crate::templates::Templates::new(&config.templates)
                    .unwrap_or_else(|_| crate::templates::Templates::none()),
            ),
            config: Arc::new(config),
            registry,
            generation,
        }
    }
}

struct Inner {
    engine: Mutex<Engine>,
    runtime: RwLock<Arc<Runtime>>,
    clock: Clock,
    metrics: Arc<Metrics>,
    deliveries: TaskTracker,
    /// Only the leader sends; a standby decides (keeping its engine warm) and sends nothing.
    leader: std::sync::atomic::AtomicBool,
    /// Signalled when an alert fired or resolved, so the state is written soon after.
    changed: tokio::sync::Notify,
    /// Point-in-time alerts this replica saw as a standby, with when it saw them: replayed when
    /// it takes over, so one seen while no replica led is still delivered once.
    backlog: Mutex<VecDeque<(Alert, Timestamp)>>,
    /// The API client evidence is collected with (set once by the operator; none in tests of
    /// the pipeline alone, which then send the monitors' own evidence).
    evidence: std::sync::OnceLock<kube::Client>,
    /// How many times the engine's state was replaced ([`Pipeline::restore`]): the watches then
    /// re-evaluate every object, as the engine no longer knows what they judged before.
    restores: std::sync::atomic::AtomicU64,
}

/// At most this many point-in-time alerts wait in a standby's backlog.
const BACKLOG_LIMIT: usize = 1000;
/// A standby keeps a point-in-time alert this long (and never longer than `dedupe.window`): a
/// leader that saw it sent it and wrote its state well within that time.
const BACKLOG_AGE: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// A cheap, cloneable handle to the pipeline.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

impl Pipeline {
    /// A pipeline with a configuration that [`crate::config::load`] already validated.
    pub fn new(
        config: Config,
        registry: Registry,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::engine::RouterError> {
        Self::with_clock(config, registry, metrics, crate::clock::wall())
    }

    pub fn with_clock(
        config: Config,
        registry: Registry,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Self, crate::engine::RouterError> {
        let settings = Settings::from_config(&config)?;
        metrics.config_generation.set(1);
        Ok(Pipeline {
            inner: Arc::new(Inner {
                engine: Mutex::new(Engine::new(settings)),
                runtime: RwLock::new(Arc::new(Runtime::new(
                    config,
                    registry.with_clock(clock.clone()),
                    1,
                ))),
                clock,
                metrics,
                deliveries: TaskTracker::new(),
                leader: std::sync::atomic::AtomicBool::new(true),
                changed: tokio::sync::Notify::new(),
                backlog: Mutex::default(),
                evidence: std::sync::OnceLock::new(),
                restores: Default::default(),
            }),
        })
    }

    /// Swaps in a new configuration and its sinks. Returns the new generation.
    pub fn apply(
        &self,
        config: Config,
        registry: Registry,
    ) -> Result<u64, crate::engine::RouterError> {
        let settings = Settings::from_config(&config)?;
        let mut engine = self.engine();
        let mut rt = self
            .inner
            .runtime
            .write()
            .expect("runtime lock is never poisoned");
        let generation = rt.generation + 1;
        *rt = Arc::new(Runtime::new(
            config,
            registry.with_clock(self.inner.clock.clone()),
            generation,
        ));
        engine.reconfigure(settings);
        self.inner.metrics.config_generation.set(generation as i64);
        Ok(generation)
    }

    /// Collect evidence from the API with `client` from now on.
    pub fn collect_evidence_with(&self, client: kube::Client) {
        let _ = self.inner.evidence.set(client);
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.inner
            .runtime
            .read()
            .expect("runtime lock is never poisoned")
            .clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn now(&self) -> Timestamp {
        (self.inner.clock)()
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.inner
            .engine
            .lock()
            .expect("engine lock is never poisoned")
    }

    /// See [`Engine::submit`].
    #[tracing::instrument(name = "submit", skip_all, fields(alert = %alert.key))]
    pub fn submit(&self, alert: Alert) {
        if !alert.resolvable && !self.is_leader() {
            self.keep_for_takeover(alert.clone());
        }
        self.decide(|engine, now| engine.submit(alert, now));
    }

    /// How long a standby keeps a point-in-time alert for a takeover.
    fn backlog_age(&self) -> jiff::SignedDuration {
        self.runtime()
            .config
            .dedupe
            .window
            .signed()
            .min(BACKLOG_AGE)
    }

    fn keep_for_takeover(&self, alert: Alert) {
        let now = self.now();
        let oldest = now - self.backlog_age();
        let mut backlog = self.backlog();
        while backlog.front().is_some_and(|(_, at)| *at < oldest) || backlog.len() >= BACKLOG_LIMIT
        {
            backlog.pop_front();
        }
        backlog.push_back((alert, now));
    }

    fn backlog(&self) -> std::sync::MutexGuard<'_, VecDeque<(Alert, Timestamp)>> {
        self.inner
            .backlog
            .lock()
            .expect("backlog lock is never poisoned")
    }

    /// This replica becomes the leader: it loads the state the last leader wrote, starts sending, and submits again the point-in-time alerts it saw as a standby.
    /// Those the last leader sent are in the loaded dedupe state and stay silent; those it never
    /// saw (it was gone) are sent now, once. Returns how many were submitted again.
    pub fn take_over(&self, snapshot: Option<Snapshot>) -> usize {
        // Without a stored state no leader ever sent anything: what this replica decided as a
        // standby was not sent either, so it starts from nothing (what still holds fires at the
        // next full re-evaluation).
        self.restore(snapshot.unwrap_or_default());
        self.set_leader(true);
        let oldest = self.now() - self.backlog_age();
        let backlog: Vec<Alert> = std::mem::take(&mut *self.backlog())
            .into_iter()
            .filter(|(_, at)| *at >= oldest)
            .map(|(alert, _)| alert)
            .collect();
        let replayed = backlog.len();
        for alert in backlog {
            self.submit(alert);
        }
        replayed
    }

    /// See [`Engine::reconcile`].
    #[tracing::instrument(name = "reconcile", skip_all, fields(monitor = %monitor, findings = findings.len()))]
    pub fn reconcile(&self, monitor: &str, scope: &Scope, findings: Vec<Finding>) {
        self.decide(|engine, now| engine.reconcile(monitor, scope, findings, now));
    }

    /// See [`Engine::resolve`].
    #[tracing::instrument(name = "resolve", skip_all, fields(alert = %key))]
    pub fn resolve(&self, key: &AlertKey) {
        self.decide(|engine, now| engine.resolve(key, now));
    }

    /// See [`Engine::drop_monitor`].
    pub fn drop_monitor(&self, monitor: &str) -> usize {
        let n = self.engine().drop_monitor(monitor);
        self.update_active_gauge();
        n
    }

    /// Replaces the run-time silences (see [`Engine::set_silences`]).
    pub fn set_silences(&self, silences: Vec<crate::engine::Silence>) {
        self.decide(|engine, now| engine.set_silences(silences, now));
    }

    /// Sends due digests.
    pub fn tick(&self) {
        self.decide(|engine, now| engine.tick(now));
    }

    pub fn snapshot(&self) -> Snapshot {
        self.engine().snapshot()
    }

    pub fn restore(&self, snapshot: Snapshot) {
        self.engine().restore(snapshot);
        self.inner
            .restores
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.update_active_gauge();
    }

    /// How many times the engine's state was replaced by a stored one (at start-up and on
    /// every takeover).
    pub fn restores(&self) -> u64 {
        self.inner
            .restores
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the engine (for `/status`).
    pub fn with_engine<T>(&self, f: impl FnOnce(&Engine) -> T) -> T {
        f(&self.engine())
    }

    /// Waits until every delivery under way has finished.
    pub async fn drain(&self) {
        self.inner.deliveries.close();
        self.inner.deliveries.wait().await;
        self.inner.deliveries.reopen();
    }

    /// Runs digest ticks every second until cancelled.
    pub async fn run_ticker(self, token: CancellationToken) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = every.tick() => self.tick(),
            }
        }
    }

    fn update_active_gauge(&self) {
        let counts = self.engine().active_counts();
        let gauge = &self.inner.metrics.active_alerts;
        gauge.clear();
        for (monitor, n) in counts {
            gauge
                .get_or_create(&crate::metrics::MonitorLabels { monitor })
                .set(n as i64);
        }
    }

    /// Whether this replica sends notifications (always, without leader election).
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn set_leader(&self, leader: bool) {
        let was = self
            .inner
            .leader
            .swap(leader, std::sync::atomic::Ordering::SeqCst);
        if leader && !was {
            self.engine().resend_now();
        }
        self.inner.metrics.set_leader(leader);
    }

    /// Resolves when an alert fired or resolved since the last call (for prompt state writes).
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Runs one engine call and sends what it decided. The batches join their channels' lines
    /// before the engine lock is released, so every channel receives notifications in the order
    /// the engine made its decisions, whichever thread made them.
    fn decide(&self, call: impl FnOnce(&mut Engine, Timestamp) -> Outcome) {
        let now = self.now();
        let mut engine = self.engine();
        let outcome = tracing::info_span!("engine").in_scope(|| call(&mut engine, now));
        if !self.is_leader() {
            return;
        }
        let rt = self.runtime();
        let evidence = Evidence::new(self.inner.evidence.get().cloned(), &rt);
        let deliveries: Vec<_> = outcome
            .dispatches
            .iter()
            .map(|dispatch| {
                let mut batch = Batch::from_dispatch(&rt.config, dispatch);
                rt.templates.apply(&mut batch);
                let firing: Vec<AlertKey> = batch
                    .items
                    .iter()
                    .filter(|i| i.notification.state == State::Firing)
                    .map(|i| i.notification.alert.key.clone())
                    .collect();
                // A child of the submit/reconcile span: detection → engine → dispatch in one trace.
                let span = tracing::info_span!("deliver", channel = %batch.channel, items = batch.items.len());
                let channel = batch.channel.clone();
                let prepare = evidence.complete(batch);
                (rt.registry.queue_with(&channel, prepare), firing, span)
            })
            .collect();
        drop(engine);

        if outcome.decisions.iter().any(|d| {
            matches!(
                d,
                Decision::Fired { .. }
                    | Decision::Resolved { .. }
                    | Decision::Grouped { .. }
                    | Decision::Inhibited { .. }
                    | Decision::Silenced { .. }
                    | Decision::InMaintenance { .. }
            )
        }) {
            self.inner.changed.notify_one();
        }
        for d in &outcome.decisions {
            self.inner.metrics.decision(d);
            log_decision(d);
        }
        if outcome.decisions.iter().any(|d| {
            matches!(
                d,
                Decision::Fired { .. }
                    | Decision::Resolved { .. }
                    | Decision::ResolvedSilently { .. }
            )
        }) {
            self.update_active_gauge();
        }
        for (delivery, firing, span) in deliveries {
            let this = self.clone();
            self.inner.deliveries.spawn(tracing::Instrument::instrument(
                async move {
                    let report = delivery.await;
                    this.after_delivery(&report, &firing);
                },
                span,
            ));
        }
    }

    fn after_delivery(&self, report: &Report, firing: &[AlertKey]) {
        self.inner.metrics.delivery(report, self.now());
        match &report.result {
            Ok(delivered) => {
                tracing::debug!(channel = %report.channel, sink = report.sink, attempts = report.attempts, "delivered");
                let mut engine = self.engine();
                for (key, reference) in &delivered.references {
                    if firing.contains(key) {
                        engine.set_reference(key, &report.channel, reference.clone());
                    }
                }
            }
            Err(e) => {
                tracing::error!(channel = %report.channel, sink = report.sink, error = %e, "delivery failed")
            }
        }
    }
}

/// The evidence of the alerts one engine call sends: collected once per alert however many
/// channels it goes to, only for alerts sent one by one as they fire (digests and resends stay
/// short), while the channels' earlier batches are delivered.
struct Evidence {
    client: Option<kube::Client>,
    config: Arc<crate::config::Config>,
    redactor: Arc<crate::redact::Redactor>,
    collected: Mutex<HashMap<AlertKey, Shared<BoxFuture<'static, crate::evidence::Evidence>>>>,
}

impl Evidence {
    fn new(client: Option<kube::Client>, rt: &Runtime) -> Arc<Self> {
        Arc::new(Evidence {
            client: client.filter(|_| rt.config.evidence.enabled),
            config: rt.config.clone(),
            redactor: rt.redactor.clone(),
            collected: Mutex::default(),
        })
    }

    fn of(&self, alert: &Alert) -> Shared<BoxFuture<'static, crate::evidence::Evidence>> {
        let mut collected = self
            .collected
            .lock()
            .expect("evidence lock is never poisoned");
        collected
            .entry(alert.key.clone())
            .or_insert_with(|| {
                let (client, config, alert) =
                    (self.client.clone(), self.config.clone(), alert.clone());
                let redactor = self.redactor.clone();
                async move {
                    crate::evidence::collect::collect(client.as_ref(), &config, &redactor, &alert)
                        .await
                }
                .boxed()
                .shared()
            })
            .clone()
    }

    /// `batch` with the evidence of its firing alerts.
    fn complete(self: &Arc<Self>, mut batch: Batch) -> BoxFuture<'static, Batch> {
        if batch.kind != DispatchKind::Immediate {
            return std::future::ready(batch).boxed();
        }
        let pending: Vec<_> = batch
            .items
            .iter()
            .map(|i| {
                (i.notification.state == State::Firing).then(|| self.of(&i.notification.alert))
            })
            .collect();
        async move {
            for (item, evidence) in batch.items.iter_mut().zip(pending) {
                if let Some(evidence) = evidence {
                    item.notification.alert.evidence = evidence.await;
                }
            }
            batch
        }
        .boxed()
    }
}

fn log_decision(d: &Decision) {
    match d {
        Decision::Fired {
            key,
            severity,
            channels,
            rule,
        } => {
            tracing::info!(alert = %key, %severity, channels = ?channels, rule = ?rule, "alert firing")
        }
        Decision::Resolved { key, channels, .. } => {
            tracing::info!(alert = %key, channels = ?channels, "alert resolved")
        }
        Decision::ResolvedSilently { key } => {
            tracing::info!(alert = %key, "alert cleared (no resolution sent)")
        }
        Decision::Deduped { key, .. } => tracing::debug!(alert = %key, "duplicate dropped"),
        Decision::Digested { key, channel, .. } => {
            tracing::debug!(alert = %key, channel, "queued for digest")
        }
        Decision::Grouped { key, incident, .. } => {
            tracing::info!(alert = %key, incident, "joined its workload's incident")
        }
        Decision::Inhibited { key, by, rule, .. } => {
            tracing::info!(alert = %key, by = %by, rule, "held back while the alert that explains it fires")
        }
        Decision::Muted { key, rule } => {
            tracing::debug!(alert = %key, rule = ?rule, "muted by rule")
        }
        Decision::Silenced { key, silence, .. } => {
            tracing::info!(alert = %key, silence, "not sent: silenced")
        }
        Decision::RateLimited { key, channel, .. } => {
            tracing::info!(alert = %key, channel, "beyond the channel's rate budget: waits for its digest")
        }
        Decision::Repeated {
            key, channels, n, ..
        } => {
            tracing::info!(alert = %key, channels = ?channels, reminder = n, "still firing: sent again")
        }
        Decision::InMaintenance { key, window, .. } => {
            tracing::info!(alert = %key, window, "not sent: maintenance window open")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::config::{Delivery, load};
    use crate::sinks::{AttemptError, Delivered, Notifier};
    use futures::future::BoxFuture;
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    /// Records what it was sent; optionally stalls forever.
    struct Recorder {
        seen: StdMutex<Vec<String>>,
        stall: bool,
    }

    impl Notifier for Recorder {
        fn kind(&self) -> &'static str {
            "recorder"
        }
        fn attempt<'a>(&'a self, b: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
            Box::pin(async move {
                if self.stall {
                    futures::future::pending::<()>().await;
                }
                for i in &b.items {
                    self.seen.lock().unwrap().push(format!(
                        "{} {}",
                        i.notification.state, i.notification.alert.key.name
                    ));
                }
                Ok(Delivered::default())
            })
        }
    }

    #[tokio::test]
    async fn a_stalled_channel_does_not_delay_another() {
        let config = load(
            "channels: {slow: {type: log}, fast: {type: log}}\nrouting: {default: [slow, fast]}\n",
            &Default::default(),
        )
        .unwrap();
        let slow = Arc::new(Recorder {
            seen: Default::default(),
            stall: true,
        });
        let fast = Arc::new(Recorder {
            seen: Default::default(),
            stall: false,
        });
        let long = Delivery {
            timeout: crate::config::HumanDuration::secs(3600),
            ..Delivery::default()
        };
        let registry = Registry::from_notifiers(vec![
            ("slow".into(), slow.clone(), long.clone()),
            ("fast".into(), fast.clone(), long),
        ]);
        let p = Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap();
        let key = AlertKey::new("pod_crashes", "ns", "Pod", "a", "CrashLoopBackOff");
        p.submit(Alert::new(key.clone(), Severity::Warning, "t", p.now()));
        tokio::time::timeout(Duration::from_secs(5), async {
            while fast.seen.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("fast channel delivered while slow one stalls");
        assert_eq!(*fast.seen.lock().unwrap(), vec!["firing a".to_string()]);
        assert!(slow.seen.lock().unwrap().is_empty());
        let text = p.metrics().encode();
        assert!(
            text.contains(
                "kpulse_alerts_fired_total{monitor=\"pod_crashes\",severity=\"warning\"} 1"
            ),
            "{text}"
        );
    }

    /// A standby sends no resends; the tick after it becomes leader does, without waiting out
    /// the interval its standby ticks started.
    #[tokio::test]
    async fn a_new_leader_resends_at_its_next_tick() {
        let config = load(
            "channels: {am: {type: alertmanager, url: 'https://am.example', resend_interval: 1m}}\nrouting: {default: [am]}\n",
            &Default::default(),
        )
        .unwrap();
        let am = Arc::new(Recorder {
            seen: Default::default(),
            stall: false,
        });
        let registry =
            Registry::from_notifiers(vec![("am".into(), am.clone(), Delivery::default())]);
        let now = Arc::new(StdMutex::new(
            Timestamp::from_second(1_800_000_000).unwrap(),
        ));
        let clock = now.clone();
        let p = Pipeline::with_clock(
            config,
            registry,
            Arc::new(Metrics::new()),
            Arc::new(move || *clock.lock().unwrap()),
        )
        .unwrap();
        let advance = |secs: i64| {
            let mut t = now.lock().unwrap();
            *t += jiff::SignedDuration::from_secs(secs);
        };
        let key = AlertKey::new("pod_crashes", "ns", "Pod", "a", "CrashLoopBackOff");
        p.submit(Alert::new(key, Severity::Warning, "t", p.now()));
        p.tick(); // a fresh engine's first tick resends at once
        p.drain().await;
        assert_eq!(am.seen.lock().unwrap().len(), 2);

        p.set_leader(false);
        advance(60);
        p.tick(); // due, decided by the standby, not sent
        advance(1);
        p.set_leader(true);
        p.tick();
        p.drain().await;
        assert_eq!(
            *am.seen.lock().unwrap(),
            ["firing a", "firing a", "firing a"],
            "the new leader resent 59s before the standby's interval ran out"
        );
    }

    /// What a standby saw while no replica led is sent once on takeover; what the last leader
    /// already sent (in its stored dedupe state) is not sent again.
    #[tokio::test]
    async fn a_takeover_sends_the_point_in_time_alerts_the_last_leader_never_sent() {
        let config = load(
            "channels: {ops: {type: log}}\nrouting: {default: [ops]}\n",
            &Default::default(),
        )
        .unwrap();
        let ops = Arc::new(Recorder {
            seen: Default::default(),
            stall: false,
        });
        let notice = |name: &str| {
            let key = AlertKey::new("warning_events", "ns", "Pod", name, "FailedKillPod");
            Alert::new(key, Severity::Warning, "t", Timestamp::now()).one_shot()
        };
        // The last leader sent `seen-by-both` and wrote its state; then it died.
        let leader = Pipeline::new(
            config.clone(),
            Registry::from_notifiers(vec![]),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        leader.submit(notice("seen-by-both"));
        let stored = leader.snapshot();

        let standby = Pipeline::new(
            config,
            Registry::from_notifiers(vec![("ops".into(), ops.clone(), Delivery::default())]),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        standby.set_leader(false);
        standby.submit(notice("seen-by-both"));
        standby.submit(notice("in-the-gap"));
        standby.drain().await;
        assert!(
            ops.seen.lock().unwrap().is_empty(),
            "a standby sends nothing"
        );

        assert_eq!(standby.take_over(Some(stored)), 2);
        standby.drain().await;
        assert_eq!(*ops.seen.lock().unwrap(), ["firing in-the-gap"]);
        // A second takeover (after losing the lease) has nothing left to replay.
        standby.set_leader(false);
        assert_eq!(standby.take_over(Some(standby.snapshot())), 0);
        standby.drain().await;
        assert_eq!(ops.seen.lock().unwrap().len(), 1);
    }
}
