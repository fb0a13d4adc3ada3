//! The monitor registry: every monitor declared once, with its settings, whether it is on by
//! default, and the API access it needs. From it come the [`Monitors`] configuration section, the
//! list of names, and (through `kpulse generate`) the chart's RBAC rules and monitor defaults, the
//! chart test's lists and docs/install.md's RBAC table. Every monitor has `enabled` and documented
//! defaults; an unknown monitor name is a validation error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::access::*;
use super::types::HumanDuration;

/// One monitor as the registry declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The key under `monitors` in the configuration, and `monitor` in alert keys.
    pub name: &'static str,
    /// Whether the monitor runs when the configuration does not say.
    pub enabled_by_default: bool,
    /// The cluster-wide API access it needs (see [`Access`]).
    pub needs: &'static [Access],
}

/// Declares every monitor: its settings struct (whose every field has a default, so
/// `monitors: {x: {}}` and an absent `x` mean the same), and [`Monitors`] with one field per
/// monitor, [`Monitors::NAMES`], [`Monitors::REGISTRY`] and [`Monitors::enabled`].
macro_rules! registry {
    ($(
        $(#[$meta:meta])*
        $monitor:ident : $name:ident (enabled = $enabled:literal, needs = [$($access:ident),* $(,)?]) {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
            #[serde(deny_unknown_fields, default)]
            pub struct $name {
                /// Turn the monitor on or off.
                pub enabled: bool,
                $( $(#[$fmeta])* pub $field: $ty, )*
            }

            impl Default for $name {
                fn default() -> Self {
                    $name { enabled: $enabled, $( $field: $default, )* }
                }
            }
        )*

        /// Every monitor, by name.
        #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, default)]
        pub struct Monitors {
            $( pub $monitor: $name, )*
        }

        impl Monitors {
            /// Every monitor as declared, in registry order.
            pub const REGISTRY: [Entry; [$(stringify!($monitor)),*].len()] = [$(
                Entry {
                    name: stringify!($monitor),
                    enabled_by_default: $enabled,
                    needs: &[$($access),*],
                },
            )*];

            /// Names of every monitor, in registry order.
            pub const NAMES: [&'static str; [$(stringify!($monitor)),*].len()] =
                [$(stringify!($monitor)),*];

            /// Whether the named monitor is switched on.
            pub fn enabled(&self, name: &str) -> bool {
                match name {
                    $( stringify!($monitor) => self.$monitor.enabled, )*
                    _ => false,
                }
            }
        }
    };
}

registry! {
    /// Containers in CrashLoopBackOff (resolvable) and OOMKilled or error exits (one-shot notices).
    pod_crashes: PodCrashes (enabled = true, needs = [PODS]) {
        /// Alert on OOMKilled terminations.
        oom: bool = true,
        /// Alert on other non-zero exits (Error, ContainerCannotRun, StartError).
        error_exits: bool = true,
        /// How long a container stays free of CrashLoopBackOff before the alert resolves.
        resolve_after: HumanDuration = HumanDuration::mins(2),
    }

    /// A burst of container restarts in one pod within a window (point-in-time).
    pod_restarts: PodRestarts (enabled = true, needs = [PODS]) {
        /// Restarts within `window` that make a burst.
        threshold: u32 = 3,
        /// The sliding window the restarts must fall in.
        window: HumanDuration = HumanDuration::mins(15),
    }

    /// Kubernetes Warning events, minus noise and reasons owned by other monitors (point-in-time).
    warning_events: WarningEvents (enabled = true, needs = [EVENTS, EVENTS_V1]) {
        /// Event reasons never reported.
        ignore_reasons: Vec<String> = Vec::new(),
        /// Flaky reasons reported only once their event count reaches `min_count`.
        flaky_reasons: Vec<String> = vec![
            "FailedMount".into(), "FailedCreatePodSandBox".into(), "NetworkNotReady".into(),
        ],
        /// The event count a flaky reason needs before it is reported.
        min_count: u32 = 3,
    }

    /// PVC fill level (space and inodes) from kubelet stats. Needs `get nodes/proxy` (see
    /// docs/install.md).
    pvc_usage: PvcUsage (enabled = false, needs = [NODES, NODES_PROXY, VOLUMES]) {
        /// Percent used (space or inodes) that warns.
        warn_at: u8 = 90,
        /// Percent used (space or inodes) that is critical.
        crit_at: u8 = 97,
        /// Also warn, from `trend_from` percent used, when at the rate of the last
        /// `trend_window` the volume fills within this long (the kubernetes-mixin's
        /// KubePersistentVolumeFillingUp). `0s` turns the prediction off.
        fill_within: HumanDuration = HumanDuration::hours(96),
        /// The history the fill rate is fitted over (least squares, like `predict_linear`); a
        /// prediction needs samples covering half of it.
        trend_window: HumanDuration = HumanDuration::hours(6),
        /// Percent used (space or inodes) from which the prediction warns.
        trend_from: u8 = 85,
        /// How often the kubelet stats are read (one scan serves every stats monitor, at the
        /// shortest interval of those enabled).
        interval: HumanDuration = HumanDuration::secs(60),
    }

    /// Node filesystem fill level (nodefs, imagefs, containerfs; space and inodes) from kubelet
    /// stats. Needs `get nodes/proxy`.
    node_disk: NodeDisk (enabled = false, needs = [NODES, NODES_PROXY]) {
        /// Percent used that warns (the kubelet evicts at 90% used on nodefs by default).
        warn_at: u8 = 80,
        /// Percent used that is critical.
        crit_at: u8 = 90,
        /// How often the kubelet stats are read.
        interval: HumanDuration = HumanDuration::secs(60),
    }

    /// Node Ready false/unknown, pressure conditions and custom (node-problem-detector) conditions.
    node_conditions: NodeConditions (enabled = true, needs = [NODES]) {
        /// How long Ready must be False or Unknown before alerting.
        not_ready_for: HumanDuration = HumanDuration::mins(5),
        /// How long a pressure or custom condition must hold.
        pressure_for: HumanDuration = HumanDuration::mins(2),
    }

    /// Expiring certificates in `kubernetes.io/tls` Secrets. Needs read access to Secrets.
    tls_cert_expiry: TlsCertExpiry (enabled = false, needs = [SECRETS]) {
        /// Fewer days left than this warns.
        warn_days: u32 = 28,
        /// Fewer days left than this (or expired) is critical.
        crit_days: u32 = 14,
    }

    /// Deployments past their progress deadline, and StatefulSet/DaemonSet rollouts not progressing.
    rollout_stuck: RolloutStuck (enabled = true, needs = [WORKLOADS, DAEMONSETS]) {
        /// How long a StatefulSet or DaemonSet rollout may make no progress.
        stalled_for: HumanDuration = HumanDuration::mins(15),
    }

    /// HorizontalPodAutoscalers pinned at maxReplicas.
    hpa_at_max: HpaAtMax (enabled = true, needs = [HPAS]) {
        /// How long currentReplicas must stay at maxReplicas.
        r#for: HumanDuration = HumanDuration::mins(15),
    }

    /// DaemonSet pods that are unscheduled, misscheduled or unavailable.
    daemonset_unscheduled: DaemonsetUnscheduled (enabled = true, needs = [DAEMONSETS]) {
        /// How long pods must stay unscheduled, misscheduled or unavailable (each counted apart).
        r#for: HumanDuration = HumanDuration::mins(10),
    }

    /// CronJobs whose scheduled run did not happen.
    cronjob_missed: CronjobMissed (enabled = true, needs = [CRONJOBS]) {
        /// Extra time after a slot (at least `startingDeadlineSeconds`) before it counts as missed.
        grace: HumanDuration = HumanDuration::mins(5),
    }

    /// Jobs that failed (BackoffLimitExceeded, DeadlineExceeded, ...) or run far too long.
    job_failed: JobFailed (enabled = true, needs = [JOBS]) {
        /// A Job still active after this long is reported (resolves when it finishes).
        long_running: HumanDuration = HumanDuration::hours(12),
    }

    /// Pods the scheduler cannot place (PodScheduled=False, reason Unschedulable).
    pod_unschedulable: PodUnschedulable (enabled = true, needs = [PODS]) {
        /// How long the pod must stay unschedulable.
        r#for: HumanDuration = HumanDuration::mins(5),
    }

    /// Containers stuck waiting: ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...
    container_waiting: ContainerWaiting (enabled = true, needs = [PODS]) {
        /// For image and configuration errors, which need someone to fix their cause.
        error_for: HumanDuration = HumanDuration::mins(5),
        /// For other waiting reasons such as ContainerCreating.
        other_for: HumanDuration = HumanDuration::hours(1),
    }

    /// Running pods that are not Ready (pods of Jobs and pods on a node that is not Ready excluded).
    pod_not_ready: PodNotReady (enabled = true, needs = [PODS, NODES]) {
        /// How long Ready must stay False.
        r#for: HumanDuration = HumanDuration::mins(15),
    }

    /// Deployments and StatefulSets with fewer available replicas than desired.
    replicas_unavailable: ReplicasUnavailable (enabled = true, needs = [WORKLOADS]) {
        /// How long fewer replicas than desired may be available.
        r#for: HumanDuration = HumanDuration::mins(15),
        /// No replica available at all is critical after this long.
        none_available_for: HumanDuration = HumanDuration::mins(5),
    }

    /// Evicted pods, grouped per namespace and node (point-in-time).
    pod_evicted: PodEvicted (enabled = true, needs = [PODS]) {
        /// Evictions of one namespace's pods on one node within this window are one message.
        group_window: HumanDuration = HumanDuration::mins(5),
    }

    /// HPAs that cannot scale (ScalingActive=False, AbleToScale=False).
    hpa_unhealthy: HpaUnhealthy (enabled = true, needs = [HPAS]) {
        /// How long ScalingActive or AbleToScale must stay False.
        r#for: HumanDuration = HumanDuration::mins(10),
    }

    /// PVCs stuck Pending (WaitForFirstConsumer claims only once a node is selected) or Lost.
    pvc_pending: PvcPending (enabled = true, needs = [VOLUMES, STORAGE_CLASSES]) {
        /// How long a claim may stay Pending after its creation. Lost is reported at once.
        r#for: HumanDuration = HumanDuration::mins(5),
    }

    /// Node process-ID and pod-slot headroom from kubelet stats and the node's capacity. Needs
    /// `get nodes/proxy`.
    node_resources: NodeResources (enabled = false, needs = [NODES, NODES_PROXY]) {
        /// Percent of the node's PID limit in use that warns.
        pids_warn_at: u8 = 85,
        /// Percent of the node's PID limit in use that is critical.
        pids_crit_at: u8 = 95,
        /// Percent of `status.capacity.pods` running that sends an info notice.
        pods_warn_at: u8 = 95,
        /// How often the kubelet stats are read.
        interval: HumanDuration = HumanDuration::secs(60),
    }

    /// An active canary: schedules a pause pod in `namespace` and expects it to be scheduled (and
    /// Running where kubelets run) in time. The chart lets kpulse create and delete pods in that
    /// namespace only.
    canary: Canary (enabled = false, needs = []) {
        interval: HumanDuration = HumanDuration::mins(10),
        /// How long the pod may take.
        timeout: HumanDuration = HumanDuration::mins(2),
        /// Namespace the canary pods are created in.
        namespace: String = "kpulse".to_string(),
        image: String = "registry.k8s.io/pause:3.10".to_string(),
        /// Only require scheduling (no kubelet needed), not Running.
        schedule_only: bool = false,
    }

    /// Pod start-up latency metrics (scheduled, initialized, ready) for pods created after start:
    /// the histogram `kpulse_pod_startup_duration_seconds`. Sends no alerts.
    startup_latency: StartupLatency (enabled = false, needs = [PODS]) {}
}
