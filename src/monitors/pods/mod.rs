//! The one Pod watch, shared by every pod monitor, and the task that sends the eviction groups
//! its `pod_evicted` monitor records.

use std::sync::Arc;

use jiff::Timestamp;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::runtime::watcher;
use tokio::task::JoinSet;

pub mod container_waiting;
pub mod pod;
pub mod pod_crashes;
pub mod pod_evicted;
pub mod pod_not_ready;
pub mod pod_restarts;
pub mod pod_unschedulable;
pub mod startup_latency;

use self::container_waiting::ContainerWaiting;
use self::pod_crashes::PodCrashes;
use self::pod_evicted::PodEvicted;
use self::pod_not_ready::PodNotReady;
use self::pod_restarts::PodRestarts;
use self::pod_unschedulable::PodUnschedulable;
use self::startup_latency::StartupLatency;
use super::Context;
use super::node_readiness::NodeReadiness;
use super::watch::{ObjectMonitor, WatchSpec, trim_meta};
use crate::metrics::Metrics;

/// A monitor fed by the Pod watch.
pub type PodMonitor = dyn ObjectMonitor<Pod>;

/// What the pod monitors share with other tasks.
pub(super) struct Shared {
    /// Which nodes are Ready (kept by the Node watch), for `pod_not_ready`.
    pub nodes: Arc<NodeReadiness>,
    /// Open eviction groups: `pod_evicted` records, [`pod_evicted::flush`] sends.
    pub evictions: Arc<pod_evicted::Groups>,
}

/// Every pod monitor; `metrics` receives the start-up latency histogram, measured for pods
/// created after `started`.
fn monitors(metrics: &Metrics, shared: &Shared, started: Timestamp) -> Vec<Arc<PodMonitor>> {
    vec![
        Arc::new(PodCrashes),
        Arc::new(PodRestarts::default()),
        Arc::new(ContainerWaiting),
        Arc::new(PodUnschedulable),
        Arc::new(PodNotReady::new(shared.nodes.clone())),
        Arc::new(PodEvicted::new(shared.evictions.clone())),
        Arc::new(StartupLatency::new(
            started,
            metrics.pod_startup_duration.clone(),
        )),
    ]
}

/// The Pod watch for every pod monitor.
pub(super) fn spec(
    client: kube::Client,
    metrics: &Metrics,
    shared: &Shared,
    started: Timestamp,
) -> WatchSpec<Pod> {
    WatchSpec {
        resource: "pods",
        kind: "Pod",
        api: Api::all(client),
        config: watcher::Config::default(),
        trim,
        monitors: monitors(metrics, shared, started),
        index: None,
    }
}

/// Starts the Pod watch once the ignored namespaces are known (pods in a namespace marked
/// `kpulse.io/ignore` must not fire at start-up), and the task sending eviction groups.
pub fn start(
    client: kube::Client,
    ctx: &Context,
    tasks: &mut JoinSet<()>,
    nodes: Arc<NodeReadiness>,
) {
    let shared = Shared {
        nodes,
        evictions: Arc::default(),
    };
    tasks.spawn(pod_evicted::flush(
        shared.evictions.clone(),
        ctx.pipeline.clone(),
        ctx.token.clone(),
    ));
    let pipeline = &ctx.pipeline;
    ctx.watch(
        tasks,
        spec(client, pipeline.metrics(), &shared, pipeline.now()),
    );
}

/// Keeps only what the pod monitors read: no managedFields, no annotations but the ignore
/// switch, and containers reduced to their names.
pub fn trim(pod: &mut Pod) {
    trim_meta(pod);
    if let Some(spec) = pod.spec.as_mut() {
        let names = |cs: &mut Vec<Container>| {
            for c in cs.iter_mut() {
                *c = Container {
                    name: std::mem::take(&mut c.name),
                    ..Container::default()
                };
            }
        };
        names(&mut spec.containers);
        if let Some(init) = spec.init_containers.as_mut() {
            names(init);
        }
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
        spec.ephemeral_containers = None;
    }
}
