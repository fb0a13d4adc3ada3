//! Which monitors each watch feeds. A monitor joins a watch from its own file, with one line:
//!
//! ```ignore
//! feed!(PODS: Pod, NAME, |_| Arc::new(PodCrashes));
//! ```
//!
//! Each watch kind has a list ([`PODS`], [`DEPLOYMENTS`], ...) that the linker assembles from
//! those lines (`linkme`'s distributed slices), so the watches in `cluster.rs`, `workloads.rs`
//! and `pods/` never name their monitors. [`fed`] builds a watch's monitors in registry order,
//! and refuses a name the registry does not know.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::Store;
use linkme::distributed_slice;

use super::node_readiness::NodeReadiness;
use super::pods::evictions;
use super::watch::ObjectMonitor;
use crate::config::Monitors;
use crate::metrics::Metrics;

/// What a monitor may need from the rest of kpulse when it is built.
#[derive(Clone)]
pub struct Wiring {
    /// Which nodes are Ready (kept by the Node watch).
    pub nodes: Arc<NodeReadiness>,
    /// Open eviction groups: `pod_evicted` records, its flush task sends.
    pub evictions: Arc<evictions::Groups>,
    /// The StorageClasses (kept by their own watch while `pvc_pending` is on).
    pub storage_classes: Store<StorageClass>,
    pub metrics: Arc<Metrics>,
    /// When this kpulse started: pods created before are not measured for start-up latency.
    pub started: Timestamp,
}

impl Wiring {
    /// Connected to nothing, for tests.
    #[cfg(test)]
    pub fn detached() -> Self {
        Wiring {
            nodes: Arc::default(),
            evictions: Arc::default(),
            storage_classes: kube::runtime::reflector::store().0,
            metrics: Arc::new(Metrics::new()),
            started: Timestamp::UNIX_EPOCH,
        }
    }
}

/// One monitor on one watch: the registry name, and how to build it.
pub struct Feed<K: 'static> {
    pub name: &'static str,
    pub build: fn(&Wiring) -> Arc<dyn ObjectMonitor<K>>,
}

#[distributed_slice]
pub static PODS: [Feed<Pod>];
#[distributed_slice]
pub static DEPLOYMENTS: [Feed<Deployment>];
#[distributed_slice]
pub static STATEFULSETS: [Feed<StatefulSet>];
#[distributed_slice]
pub static DAEMONSETS: [Feed<DaemonSet>];
#[distributed_slice]
pub static JOBS: [Feed<Job>];
#[distributed_slice]
pub static CRONJOBS: [Feed<CronJob>];
#[distributed_slice]
pub static HPAS: [Feed<HorizontalPodAutoscaler>];
#[distributed_slice]
pub static EVENTS: [Feed<Event>];
#[distributed_slice]
pub static NODES: [Feed<Node>];
#[distributed_slice]
pub static PVCS: [Feed<PersistentVolumeClaim>];
#[distributed_slice]
pub static TLS_SECRETS: [Feed<Secret>];

/// Puts a monitor on a watch: `feed!(SLICE: Kind, NAME, |wiring| Arc::new(...))`, in the
/// monitor's own file. Several lines put one monitor on several watches (each watch gets its
/// own instance).
macro_rules! feed {
    ($slice:ident : $kind:ty, $name:expr, $build:expr) => {
        const _: () = {
            #[::linkme::distributed_slice($crate::monitors::feeds::$slice)]
            #[linkme(crate = ::linkme)]
            static FEED: $crate::monitors::feeds::Feed<$kind> = $crate::monitors::feeds::Feed {
                name: $name,
                build: $build,
            };
        };
    };
}
pub(crate) use feed;

/// The monitors of one watch, built, in the order of the registry.
///
/// # Panics
/// When a feed names no registered monitor, or names one twice: both are wiring bugs that
/// `cargo test` finds (see `wiring.rs`).
pub fn fed<K>(feeds: &[Feed<K>], wiring: &Wiring) -> Vec<Arc<dyn ObjectMonitor<K>>> {
    let position = |name: &str| {
        Monitors::NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("the feed {name:?} names no registered monitor"))
    };
    let mut ordered: Vec<(usize, &Feed<K>)> = feeds.iter().map(|f| (position(f.name), f)).collect();
    ordered.sort_by_key(|(at, _)| *at);
    if let Some(w) = ordered.windows(2).find(|w| w[0].0 == w[1].0) {
        panic!("{:?} is fed twice by one watch", w[0].1.name);
    }
    ordered
        .into_iter()
        .map(|(_, f)| {
            let monitor = (f.build)(wiring);
            assert_eq!(monitor.name(), f.name, "a feed builds another monitor");
            monitor
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::pods::pod_crashes::{self, PodCrashes};
    use crate::monitors::pods::pod_restarts::{self, PodRestarts};

    fn wiring() -> Wiring {
        Wiring::detached()
    }

    fn names<K>(monitors: &[Arc<dyn ObjectMonitor<K>>]) -> Vec<&'static str> {
        monitors.iter().map(|m| m.name()).collect()
    }

    #[test]
    fn a_watch_builds_its_monitors_in_registry_order() {
        let feeds = [
            Feed::<Pod> {
                name: pod_restarts::NAME,
                build: |_| Arc::new(PodRestarts::default()),
            },
            Feed::<Pod> {
                name: pod_crashes::NAME,
                build: |_| Arc::new(PodCrashes),
            },
        ];
        assert_eq!(
            names(&fed(&feeds, &wiring())),
            [pod_crashes::NAME, pod_restarts::NAME]
        );
    }

    #[test]
    fn every_monitor_file_puts_itself_on_its_watch() {
        let w = wiring();
        assert_eq!(
            names(&fed(&PODS, &w)),
            [
                "pod_crashes",
                "pod_restarts",
                "pod_unschedulable",
                "container_waiting",
                "pod_not_ready",
                "pod_evicted",
                "startup_latency"
            ]
        );
        assert_eq!(
            names(&fed(&DEPLOYMENTS, &w)),
            ["rollout_stuck", "replicas_unavailable"]
        );
        assert_eq!(
            names(&fed(&STATEFULSETS, &w)),
            ["rollout_stuck", "replicas_unavailable"]
        );
        assert_eq!(
            names(&fed(&DAEMONSETS, &w)),
            ["rollout_stuck", "daemonset_unscheduled"]
        );
        assert_eq!(names(&fed(&HPAS, &w)), ["hpa_at_max", "hpa_unhealthy"]);
        assert_eq!(names(&fed(&JOBS, &w)), ["job_failed"]);
        assert_eq!(names(&fed(&CRONJOBS, &w)), ["cronjob_missed"]);
        assert_eq!(names(&fed(&EVENTS, &w)), ["warning_events"]);
        assert_eq!(names(&fed(&NODES, &w)), ["node_conditions"]);
        assert_eq!(names(&fed(&PVCS, &w)), ["pvc_pending"]);
        assert_eq!(names(&fed(&TLS_SECRETS, &w)), ["tls_cert_expiry"]);
    }

    #[test]
    #[should_panic(expected = "names no registered monitor")]
    fn a_feed_of_an_unregistered_monitor_is_refused() {
        let feeds = [Feed::<Pod> {
            name: "pod_crashez",
            build: |_| Arc::new(PodCrashes),
        }];
        fed(&feeds, &wiring());
    }

    #[test]
    #[should_panic(expected = "fed twice")]
    fn a_monitor_fed_twice_by_one_watch_is_refused() {
        let feeds = [
            Feed::<Pod> {
                name: pod_crashes::NAME,
                build: |_| Arc::new(PodCrashes),
            },
            Feed::<Pod> {
                name: pod_crashes::NAME,
                build: |_| Arc::new(PodCrashes),
            },
        ];
        fed(&feeds, &wiring());
    }

    #[test]
    #[should_panic(expected = "builds another monitor")]
    fn a_feed_that_builds_another_monitor_is_refused() {
        let feeds = [Feed::<Pod> {
            name: pod_restarts::NAME,
            build: |_| Arc::new(PodCrashes),
        }];
        fed(&feeds, &wiring());
    }
}
