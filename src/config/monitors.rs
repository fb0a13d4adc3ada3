//! Per-monitor settings. Every monitor has `enabled` and documented defaults; an unknown monitor
//! name is a validation error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::HumanDuration;

/// Declares a monitor settings struct whose every field has a default, so `monitors: {x: {}}`
/// and an absent `x` mean the same.
macro_rules! monitor_settings {
    (
        $(#[$meta:meta])*
        $name:ident (enabled = $enabled:expr) {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr ),* $(,)?
        }
    ) => {
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
    };
}

monitor_settings! {
    /// Containers in CrashLoopBackOff (resolvable) and OOMKilled or error exits (one-shot notices).
    PodCrashes (enabled = true) {
        /// Alert on OOMKilled terminations.
        oom: bool = true,
        /// Alert on other non-zero exits (Error, ContainerCannotRun, StartError).
        error_exits: bool = true,
        /// How long a container stays free of CrashLoopBackOff before the alert resolves.
        resolve_after: HumanDuration = HumanDuration::mins(2),
    }
}

monitor_settings! {
    /// A burst of container restarts in one pod within a window (point-in-time).
    PodRestarts (enabled = true) {
        /// Restarts within `window` that make a burst.
        threshold: u32 = 3,
        /// The sliding window the restarts must fall in.
        window: HumanDuration = HumanDuration::mins(15),
    }
}

monitor_settings! {
    /// Kubernetes Warning events, minus noise and reasons owned by other monitors (point-in-time).
    WarningEvents (enabled = true) {
        /// Event reasons never reported.
        ignore_reasons: Vec<String> = Vec::new(),
        /// Flaky reasons reported only once their event count reaches `min_count`.
        flaky_reasons: Vec<String> = vec![
            "FailedMount".into(), "FailedCreatePodSandBox".into(), "NetworkNotReady".into(),
        ],
        /// The event count a flaky reason needs before it is reported.
        min_count: u32 = 3,
    }
}

monitor_settings! {
    /// PVC fill level (space and inodes) from kubelet stats. Needs `get nodes/proxy` (see
    /// docs/install.md).
    PvcUsage (enabled = false) {
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
}

monitor_settings! {
    /// Node filesystem fill level (nodefs, imagefs, containerfs; space and inodes) from kubelet
    /// stats. Needs `get nodes/proxy`.
    NodeDisk (enabled = false) {
        /// Percent used that warns (the kubelet evicts at 90% used on nodefs by default).
        warn_at: u8 = 80,
        /// Percent used that is critical.
        crit_at: u8 = 90,
        /// How often the kubelet stats are read.
        interval: HumanDuration = HumanDuration::secs(60),
    }
}

monitor_settings! {
    /// Node Ready false/unknown, pressure conditions and custom (node-problem-detector) conditions.
    NodeConditions (enabled = true) {
        /// How long Ready must be False or Unknown before alerting.
        not_ready_for: HumanDuration = HumanDuration::mins(5),
        /// How long a pressure or custom condition must hold.
        pressure_for: HumanDuration = HumanDuration::mins(2),
    }
}

monitor_settings! {
    /// Expiring certificates in `kubernetes.io/tls` Secrets. Needs read access to Secrets.
    TlsCertExpiry (enabled = false) {
        /// Fewer days left than this warns.
        warn_days: u32 = 28,
        /// Fewer days left than this (or expired) is critical.
        crit_days: u32 = 14,
    }
}

monitor_settings! {
    /// Deployments past their progress deadline, and StatefulSet/DaemonSet rollouts not progressing.
    RolloutStuck (enabled = true) {
        /// How long a StatefulSet or DaemonSet rollout may make no progress.
        stalled_for: HumanDuration = HumanDuration::mins(15),
    }
}

monitor_settings! {
    /// HorizontalPodAutoscalers pinned at maxReplicas.
    HpaAtMax (enabled = true) {
        /// How long currentReplicas must stay at maxReplicas.
        r#for: HumanDuration = HumanDuration::mins(15),
    }
}

monitor_settings! {
    /// DaemonSet pods that are unscheduled, misscheduled or unavailable.
    DaemonsetUnscheduled (enabled = true) {
        /// How long pods must stay unscheduled, misscheduled or unavailable (each counted apart).
        r#for: HumanDuration = HumanDuration::mins(10),
    }
}

monitor_settings! {
    /// CronJobs whose scheduled run did not happen.
    CronjobMissed (enabled = true) {
        /// Extra time after a slot (at least `startingDeadlineSeconds`) before it counts as missed.
        grace: HumanDuration = HumanDuration::mins(5),
    }
}

monitor_settings! {
    /// Jobs that failed (BackoffLimitExceeded, DeadlineExceeded, ...) or run far too long.
    JobFailed (enabled = true) {
        /// A Job still active after this long is reported (resolves when it finishes).
        long_running: HumanDuration = HumanDuration::hours(12),
    }
}

monitor_settings! {
    /// Pods the scheduler cannot place (PodScheduled=False, reason Unschedulable).
    PodUnschedulable (enabled = true) {
        /// How long the pod must stay unschedulable.
        r#for: HumanDuration = HumanDuration::mins(5),
    }
}

monitor_settings! {
    /// Containers stuck waiting: ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...
    ContainerWaiting (enabled = true) {
        /// For image and configuration errors, which need someone to fix their cause.
        error_for: HumanDuration = HumanDuration::mins(5),
        /// For other waiting reasons such as ContainerCreating.
        other_for: HumanDuration = HumanDuration::hours(1),
    }
}

monitor_settings! {
    /// Running pods that are not Ready (pods of Jobs and pods on a node that is not Ready excluded).
    PodNotReady (enabled = true) {
        /// How long Ready must stay False.
        r#for: HumanDuration = HumanDuration::mins(15),
    }
}

monitor_settings! {
    /// Deployments and StatefulSets with fewer available replicas than desired.
    ReplicasUnavailable (enabled = true) {
        /// How long fewer replicas than desired may be available.
        r#for: HumanDuration = HumanDuration::mins(15),
        /// No replica available at all is critical after this long.
        none_available_for: HumanDuration = HumanDuration::mins(5),
    }
}

monitor_settings! {
    /// Evicted pods, grouped per namespace and node (point-in-time).
    PodEvicted (enabled = true) {
        /// Evictions of one namespace's pods on one node within this window are one message.
        group_window: HumanDuration = HumanDuration::mins(5),
    }
}

monitor_settings! {
    /// HPAs that cannot scale (ScalingActive=False, AbleToScale=False).
    HpaUnhealthy (enabled = true) {
        /// How long ScalingActive or AbleToScale must stay False.
        r#for: HumanDuration = HumanDuration::mins(10),
    }
}

monitor_settings! {
    /// PVCs stuck Pending (WaitForFirstConsumer claims only once a node is selected) or Lost.
    PvcPending (enabled = true) {
        /// How long a claim may stay Pending after its creation. Lost is reported at once.
        r#for: HumanDuration = HumanDuration::mins(5),
    }
}

monitor_settings! {
    /// Node process-ID and pod-slot headroom from kubelet stats and the node's capacity. Needs
    /// `get nodes/proxy`.
    NodeResources (enabled = false) {
        /// Percent of the node's PID limit in use that warns.
        pids_warn_at: u8 = 85,
        /// Percent of the node's PID limit in use that is critical.
        pids_crit_at: u8 = 95,
        /// Percent of `status.capacity.pods` running that sends an info notice.
        pods_warn_at: u8 = 95,
        /// How often the kubelet stats are read.
        interval: HumanDuration = HumanDuration::secs(60),
    }
}

monitor_settings! {
    /// An active canary: schedules a pause pod and expects it to be scheduled (and Running where
    /// kubelets run) in time.
    Canary (enabled = false) {
        interval: HumanDuration = HumanDuration::mins(10),
        /// How long the pod may take.
        timeout: HumanDuration = HumanDuration::mins(2),
        /// Namespace the canary pods are created in.
        namespace: String = "kpulse".to_string(),
        image: String = "registry.k8s.io/pause:3.10".to_string(),
        /// Only require scheduling (no kubelet needed), not Running.
        schedule_only: bool = false,
    }
}

monitor_settings! {
    /// Pod start-up latency metrics (scheduled, initialized, ready) for pods created after start:
    /// the histogram `kpulse_pod_startup_duration_seconds`. Sends no alerts.
    StartupLatency (enabled = false) {}
}

/// Every monitor, by name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Monitors {
    pub pod_crashes: PodCrashes,
    pub pod_restarts: PodRestarts,
    pub warning_events: WarningEvents,
    pub pvc_usage: PvcUsage,
    pub node_disk: NodeDisk,
    pub node_conditions: NodeConditions,
    pub tls_cert_expiry: TlsCertExpiry,
    pub rollout_stuck: RolloutStuck,
    pub hpa_at_max: HpaAtMax,
    pub daemonset_unscheduled: DaemonsetUnscheduled,
    pub cronjob_missed: CronjobMissed,
    pub job_failed: JobFailed,
    pub pod_unschedulable: PodUnschedulable,
    pub container_waiting: ContainerWaiting,
    pub pod_not_ready: PodNotReady,
    pub replicas_unavailable: ReplicasUnavailable,
    pub pod_evicted: PodEvicted,
    pub hpa_unhealthy: HpaUnhealthy,
    pub pvc_pending: PvcPending,
    pub node_resources: NodeResources,
    pub canary: Canary,
    pub startup_latency: StartupLatency,
}

impl Monitors {
    /// Names of every monitor, in the order above.
    pub const NAMES: [&'static str; 22] = [
        "pod_crashes",
        "pod_restarts",
        "warning_events",
        "pvc_usage",
        "node_disk",
        "node_conditions",
        "tls_cert_expiry",
        "rollout_stuck",
        "hpa_at_max",
        "daemonset_unscheduled",
        "cronjob_missed",
        "job_failed",
        "pod_unschedulable",
        "container_waiting",
        "pod_not_ready",
        "replicas_unavailable",
        "pod_evicted",
        "hpa_unhealthy",
        "pvc_pending",
        "node_resources",
        "canary",
        "startup_latency",
    ];

    /// Whether the named monitor is switched on.
    pub fn enabled(&self, name: &str) -> bool {
        match name {
            "pod_crashes" => self.pod_crashes.enabled,
            "pod_restarts" => self.pod_restarts.enabled,
            "warning_events" => self.warning_events.enabled,
            "pvc_usage" => self.pvc_usage.enabled,
            "node_disk" => self.node_disk.enabled,
            "node_conditions" => self.node_conditions.enabled,
            "tls_cert_expiry" => self.tls_cert_expiry.enabled,
            "rollout_stuck" => self.rollout_stuck.enabled,
            "hpa_at_max" => self.hpa_at_max.enabled,
            "daemonset_unscheduled" => self.daemonset_unscheduled.enabled,
            "cronjob_missed" => self.cronjob_missed.enabled,
            "job_failed" => self.job_failed.enabled,
            "pod_unschedulable" => self.pod_unschedulable.enabled,
            "container_waiting" => self.container_waiting.enabled,
            "pod_not_ready" => self.pod_not_ready.enabled,
            "replicas_unavailable" => self.replicas_unavailable.enabled,
            "pod_evicted" => self.pod_evicted.enabled,
            "hpa_unhealthy" => self.hpa_unhealthy.enabled,
            "pvc_pending" => self.pvc_pending.enabled,
            "node_resources" => self.node_resources.enabled,
            "canary" => self.canary.enabled,
            "startup_latency" => self.startup_latency.enabled,
            _ => false,
        }
    }
}
