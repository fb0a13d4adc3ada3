//! Monitors: watch what Kubernetes reports and tell the pipeline what is firing.
//!
//! Shared plumbing lives here: trimmed watch streams with backoff, the namespace and
//! `kpulse.io/ignore` filter, a periodic re-evaluation so "for 10m" conditions fire without a new
//! event, and readiness (every enabled watch has listed once). Each monitor is a file with a pure
//! decision function, unit-tested with table tests.
//!
//! A resolvable pod condition is reported with [`Pipeline::reconcile`] scoped to the pod, so the
//! engine resolves it when it clears or the pod is deleted. After the initial list of a watch, a
//! full reconcile covers every object: conditions that cleared while kpulse was down resolve once,
//! and ones that still hold do not fire again.

pub mod canary;
pub mod cluster;
pub mod cronjob_missed;
pub mod daemonset_unscheduled;
pub mod feeds;
pub mod filter;
pub mod hpa;
pub mod job_failed;
pub mod lists;
pub mod node_conditions;
pub mod node_readiness;
pub mod pods;
pub mod pvc_pending;
pub mod replicas_unavailable;
pub mod rollout_stuck;
pub mod since;
pub mod startup_status;
pub mod stats;
#[cfg(test)]
mod testkit;
pub mod tls_cert_expiry;
pub mod trend;
pub mod warning_events;
pub mod watch;
#[cfg(test)]
mod wiring;
pub mod workloads;

use std::sync::Arc;

use tokio::sync::watch as signal;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;

/// Label or annotation that makes kpulse skip an object (or a whole namespace).
pub const IGNORE: &str = "kpulse.io/ignore";

/// How often state monitors are re-evaluated without a new event.
pub const TICK: std::time::Duration = std::time::Duration::from_secs(15);

/// The clock of a periodic job (the canary, the kubelet stats scan): wakes every second, so a
/// configuration change of its interval or switch takes effect within one, and says when a run
/// is due.
pub struct Periodic {
    tick: tokio::time::Interval,
    last: Option<std::time::Instant>,
}

impl Default for Periodic {
    fn default() -> Self {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Periodic { tick, last: None }
    }
}

impl Periodic {
    /// Waits for the next second; false once `token` is cancelled.
    pub async fn tick(&mut self, token: &CancellationToken) -> bool {
        tokio::select! {
            _ = token.cancelled() => false,
            _ = self.tick.tick() => true,
        }
    }

    /// Whether a run is due when runs are `interval` apart; a due run starts the next interval.
    pub fn due(&mut self, interval: std::time::Duration) -> bool {
        if self.last.is_some_and(|t| t.elapsed() < interval) {
            return false;
        }
        self.last = Some(std::time::Instant::now());
        true
    }
}

/// Readiness of the watches: resolves once every started watch has finished its first list.
#[derive(Clone)]
pub struct Ready {
    pending: signal::Receiver<usize>,
}

/// Held by one watch; call [`SyncGuard::synced`] after its first complete list.
pub struct SyncGuard {
    tx: Arc<signal::Sender<usize>>,
    done: bool,
}

impl SyncGuard {
    pub fn synced(&mut self) {
        if !self.done {
            self.done = true;
            self.tx.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

impl Ready {
    fn new() -> (Self, Arc<signal::Sender<usize>>) {
        let (tx, rx) = signal::channel(0);
        (Ready { pending: rx }, Arc::new(tx))
    }

    pub(crate) fn guard(tx: &Arc<signal::Sender<usize>>) -> SyncGuard {
        tx.send_modify(|n| *n += 1);
        SyncGuard {
            tx: tx.clone(),
            done: false,
        }
    }

    pub fn is_ready(&self) -> bool {
        *self.pending.borrow() == 0
    }

    pub async fn wait(mut self) {
        let _ = self.pending.wait_for(|n| *n == 0).await;
    }
}

/// What every watch of one [`start`] shares: the pipeline it reports to, which namespaces it
/// may look at, readiness, cancellation, and when the ignored namespaces are first known.
#[derive(Clone)]
pub struct Context {
    pub pipeline: Pipeline,
    pub namespaces: Arc<filter::Visibility>,
    pub token: CancellationToken,
    /// Whether the watches get their initial state as streaming lists ([`lists`]).
    pub streaming: bool,
    ready: Arc<signal::Sender<usize>>,
    /// True once the Namespace watch has listed (see [`Context::after_namespaces`]).
    namespaces_listed: signal::Receiver<bool>,
}

/// How long the namespaced watches wait for the first list of Namespaces (so objects in an
/// ignored namespace do not fire at start-up) before starting anyway.
const NAMESPACES_FIRST: std::time::Duration = std::time::Duration::from_secs(10);

impl Context {
    /// A guard that holds readiness until its watch has listed once.
    pub fn guard(&self) -> SyncGuard {
        Ready::guard(&self.ready)
    }

    /// Waits until the ignored namespaces are known, or [`NAMESPACES_FIRST`] has passed.
    pub async fn after_namespaces(&self) {
        let mut listed = self.namespaces_listed.clone();
        let _ = tokio::time::timeout(NAMESPACES_FIRST, listed.wait_for(|l| *l)).await;
    }

    /// Starts a watch of namespaced objects once the ignored namespaces are known (objects in
    /// a namespace marked `kpulse.io/ignore` must not fire at start-up); it counts towards
    /// readiness.
    pub fn watch<K>(&self, tasks: &mut JoinSet<()>, spec: watch::WatchSpec<K>)
    where
        K: kube::Resource
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        K: Send + Sync + 'static,
        K::DynamicType: Default,
    {
        let (ctx, guard) = (self.clone(), self.guard());
        tasks.spawn(async move {
            ctx.after_namespaces().await;
            watch::run(spec, ctx, guard).await;
        });
    }

    /// Starts a watch of cluster-scoped objects at once; it counts towards readiness.
    pub fn watch_cluster<K>(&self, tasks: &mut JoinSet<()>, spec: watch::WatchSpec<K>)
    where
        K: kube::Resource
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        K: Send + Sync + 'static,
        K::DynamicType: Default,
    {
        tasks.spawn(watch::run(spec, self.clone(), self.guard()));
    }
}

/// Starts every watch the enabled monitors need (`streaming`: see [`lists`]).
pub fn start(
    client: kube::Client,
    pipeline: Pipeline,
    token: CancellationToken,
    streaming: bool,
    tasks: &mut JoinSet<()>,
) -> Ready {
    let (ready, tx) = Ready::new();
    let (listed_tx, namespaces_listed) = signal::channel(false);
    let ctx = Context {
        pipeline,
        namespaces: Arc::default(),
        token,
        streaming,
        ready: tx,
        namespaces_listed,
    };
    tasks.spawn(canary::run(
        client.clone(),
        ctx.pipeline.clone(),
        ctx.token.clone(),
    ));
    tasks.spawn(stats::run(client.clone(), ctx.clone()));
    let (storage_classes, classes) = kube::runtime::reflector::store();
    let wiring = feeds::Wiring {
        nodes: Arc::default(),
        evictions: Arc::default(),
        storage_classes,
        metrics: ctx.pipeline.metrics().clone(),
        started: ctx.pipeline.now(),
    };
    cluster::start(client.clone(), &ctx, tasks, listed_tx, &wiring, classes);
    workloads::start(client.clone(), &ctx, tasks, &wiring);
    ctx.watch(tasks, tls_cert_expiry::spec(client.clone(), &wiring));
    pods::start(client, &ctx, tasks, &wiring);
    ready
}
