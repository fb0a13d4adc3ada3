//! The monitor registry: every monitor declared once, with its settings, whether it is on by
//! default, the API access it needs and the alert reasons it sends. From it come the [`Monitors`]
//! configuration section, the list of names, `kpulse route-test`'s checks of a test alert, and
//! (through `kpulse generate`) the chart's RBAC rules and monitor defaults, the chart test's lists
//! and docs/install.md's RBAC table. Every monitor has `enabled` and documented defaults; an
//! unknown monitor name is a validation error.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::access::*;
use super::types::HumanDuration;
use crate::alert::Severity;

/// One monitor as the registry declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The key under `monitors` in the configuration, and `monitor` in alert keys.
    pub name: &'static str,
    /// Whether the monitor runs when the configuration does not say.
    pub enabled_by_default: bool,
    /// The cluster-wide API access it needs (see [`Access`]).
    pub needs: &'static [Access],
    /// The `reason`s of its alert keys, so `route-test` refuses a reason the monitor never sends
    /// and shows the severity kpulse would use. Copied from the monitors' code (src/monitors/):
    /// keep them in step.
    pub reasons: Reasons,
}

/// The reasons a monitor sends. Some monitors pass on a reason from the cluster (an event's
/// reason, a condition's type), so their set is open: `other` says what else comes, and with
/// which severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reasons {
    /// The reasons it is known to send, the main one first.
    pub known: &'static [Known],
    /// Reasons beyond `known`, when the set is open.
    pub other: Option<Other>,
    /// Reasons that look like its own but that it never sends, with why (an open set would
    /// otherwise accept them).
    pub never: &'static [Never],
}

/// Reasons sent about the same kinds of object with the same severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub names: &'static [&'static str],
    /// The kinds of object the alert is about, the usual one first.
    pub kinds: &'static [&'static str],
    pub severity: Level,
}

/// The reasons of an open set that are not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Other {
    /// What they are, as in "any other reason of the Job's Failed condition".
    pub what: &'static str,
    /// The kinds of object, the usual one first.
    pub kinds: &'static [&'static str],
    pub severity: Level,
}

/// Reasons a monitor never sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Never {
    pub names: &'static [&'static str],
    /// Why, e.g. "sent as ImagePullBackOff".
    pub why: &'static str,
}

/// The severity reasons are sent with: one, or several when the situation decides (a fill level
/// against `warn_at` and `crit_at`, days left), which `by` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// The severities, the one `route-test` assumes first.
    pub severities: &'static [Severity],
    /// What decides between them, e.g. "by fill level"; empty when there is one.
    pub by: &'static str,
}

impl Level {
    /// The severity when there is only one.
    pub fn single(&self) -> Option<Severity> {
        match self.severities {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The one `route-test` assumes when the test alert gives none.
    pub fn assumed(&self) -> Severity {
        self.severities[0]
    }
}

/// `warning`, or `warning or critical, by fill level`.
impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.severities.iter().map(|s| s.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => f.write_str(last)?,
            Some((last, rest)) => write!(f, "{} or {last}", rest.join(", "))?,
            None => {}
        }
        if !self.by.is_empty() {
            write!(f, ", {}", self.by)?;
        }
        Ok(())
    }
}

/// What a monitor's [`Reasons`] say about one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// One of the known reasons.
    Known(Known),
    /// Not listed, but the set is open.
    Other(Other),
    /// A reason the monitor never sends.
    Never(Never),
    /// Not listed, and the set is closed.
    Unknown,
}

impl Reasons {
    /// Every known reason, the main one first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.known.iter().flat_map(|k| k.names.iter().copied())
    }

    /// The main reason, or the first about `kind` when one is, and what is known of it; `None`
    /// for a monitor that sends no alerts.
    pub fn main(&self, kind: Option<&str>) -> Option<(&'static str, Known)> {
        let about_kind = self
            .known
            .iter()
            .find(|k| kind.is_some_and(|kind| k.kinds.contains(&kind)));
        let known = about_kind.or(self.known.first())?;
        Some((known.names[0], *known))
    }

    /// What is known of `reason` sent about an object of `kind` (any kind when `None`). In an
    /// open set, a known reason about another kind is one of the others (a Node's SystemOOM
    /// event is critical, a Pod's is not).
    pub fn lookup(&self, reason: &str, kind: Option<&str>) -> Lookup {
        if let Some(never) = self.never.iter().find(|n| n.names.contains(&reason)) {
            return Lookup::Never(*never);
        }
        let known = self.known.iter().find(|k| k.names.contains(&reason));
        match (known, self.other) {
            (Some(k), Some(other)) if kind.is_some_and(|kind| !k.kinds.contains(&kind)) => {
                Lookup::Other(other)
            }
            (Some(k), _) => Lookup::Known(*k),
            (None, Some(other)) => Lookup::Other(other),
            (None, None) => Lookup::Unknown,
        }
    }
}

/// `None`, or `Some` of the expression given: an optional part of a [`registry!`] entry.
macro_rules! optional {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}

/// Declares every monitor: its settings struct (whose every field has a default, so
/// `monitors: {x: {}}` and an absent `x` mean the same), and [`Monitors`] with one field per
/// monitor, [`Monitors::NAMES`], [`Monitors::REGISTRY`] and [`Monitors::enabled`].
///
/// `reasons` lists the reasons a monitor sends in groups of `Kind Severity: Reason, ...`, groups
/// separated by `;`: several kinds or severities are joined by `|`, and several severities are
/// followed by what decides between them (`Warning|Critical "by fill level": SpaceUsage`).
/// `other = (Kind Severity: "what")` opens the set; `never = ["why": Reason, ...]` names reasons
/// the monitor never sends.
macro_rules! registry {
    ($(
        $(#[$meta:meta])*
        $monitor:ident : $name:ident (
            enabled = $enabled:literal,
            needs = [$($access:ident),* $(,)?],
            reasons = [$(
                $($kind:ident)|+ $($sev:ident)|+ $($by:literal)? : $($reason:ident),+
            );* $(;)?]
            $(, other = ($($okind:ident)|+ $($osev:ident)|+ $($oby:literal)? : $what:literal))?
            $(, never = [$($why:literal : $($never:ident),+);* $(;)?])?
            $(,)?
        ) {
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
                    reasons: Reasons {
                        known: &[$(Known {
                            names: &[$(stringify!($reason)),+],
                            kinds: &[$(stringify!($kind)),+],
                            severity: Level {
                                severities: &[$(Severity::$sev),+],
                                by: concat!($($by)?),
                            },
                        }),*],
                        other: optional!($(Other {
                            what: $what,
                            kinds: &[$(stringify!($okind)),+],
                            severity: Level {
                                severities: &[$(Severity::$osev),+],
                                by: concat!($($oby)?),
                            },
                        })?),
                        never: &[$($(Never {
                            names: &[$(stringify!($never)),+],
                            why: $why,
                        }),*)?],
                    },
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

impl Monitors {
    /// The named monitor's entry in the registry.
    pub fn entry(name: &str) -> Option<&'static Entry> {
        let all: &'static [Entry] = &Self::REGISTRY;
        all.iter().find(|e| e.name == name)
    }
}

registry! {
    /// Containers in CrashLoopBackOff (resolvable) and OOMKilled or error exits (one-shot notices).
    pod_crashes: PodCrashes (enabled = true, needs = [PODS],
        reasons = [Pod Warning: CrashLoopBackOff, OOMKilled, ErrorExit]) {
        /// Alert on OOMKilled terminations.
        oom: bool = true,
        /// Alert on other non-zero exits (Error, ContainerCannotRun, StartError).
        error_exits: bool = true,
        /// How long a container stays free of CrashLoopBackOff before the alert resolves.
        resolve_after: HumanDuration = HumanDuration::mins(2),
    }

    /// A burst of container restarts in one pod within a window (point-in-time).
    pod_restarts: PodRestarts (enabled = true, needs = [PODS],
        reasons = [Pod Warning: RestartBurst]) {
        /// Restarts within `window` that make a burst.
        threshold: u32 = 3,
        /// The sliding window the restarts must fall in.
        window: HumanDuration = HumanDuration::mins(15),
    }

    /// Kubernetes Warning events, minus noise and reasons owned by other monitors (point-in-time).
    warning_events: WarningEvents (enabled = true, needs = [EVENTS, EVENTS_V1],
        // The default flaky reasons, then the node events that mean a machine in trouble.
        reasons = [
            Pod Warning: FailedMount, FailedCreatePodSandBox, NetworkNotReady;
            Node Critical: SystemOOM, Rebooted, OOMKilling, TaskHung, KernelOops, Ext4Error,
                IOError, MemoryReadError, UnregisterNetDevice, CorruptDockerImage;
        ],
        other = (Pod Warning: "any other Warning event, about any kind of object"),
        // warning_events::NOISE.
        never = ["built-in noise, never reported": DNSConfigForming, FailedToUpdateEndpoint,
            FailedToUpdateEndpointSlices, ProbeWarning, Unhealthy, InvalidDiskCapacity,
            NodeNotReady]) {
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
    pvc_usage: PvcUsage (enabled = false, needs = [NODES, NODES_PROXY, VOLUMES],
        reasons = [PersistentVolumeClaim Warning|Critical "by fill level and rate":
            SpaceUsage, InodeUsage]) {
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
    node_disk: NodeDisk (enabled = false, needs = [NODES, NODES_PROXY],
        reasons = [Node Warning|Critical "by fill level": NodefsSpace, NodefsInodes, ImagefsSpace,
            ImagefsInodes, ContainerfsSpace, ContainerfsInodes]) {
        /// Percent used that warns (the kubelet evicts at 90% used on nodefs by default).
        warn_at: u8 = 80,
        /// Percent used that is critical.
        crit_at: u8 = 90,
        /// How often the kubelet stats are read.
        interval: HumanDuration = HumanDuration::secs(60),
    }

    /// Node Ready false/unknown, pressure conditions and custom (node-problem-detector) conditions.
    node_conditions: NodeConditions (enabled = true, needs = [NODES],
        // Ready, pressure, node-problem-detector conditions of a broken machine, maintenance.
        reasons = [
            Node Critical: NotReady;
            Node Warning: MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable;
            Node Critical: KernelDeadlock, ReadonlyFilesystem, XfsShutdown, CperHardwareErrorFatal;
            Node Info: GracefulNodeShutdownInProgress, DrainInProgress, Drained, MaintenancePlanned,
                MaintenanceInProgress;
        ],
        other = (Node Warning:
            "any other condition that is True (node-problem-detector's, a cloud's, custom)"),
        never = ["sent as NotReady": Ready]) {
        /// How long Ready must be False or Unknown before alerting.
        not_ready_for: HumanDuration = HumanDuration::mins(5),
        /// How long a pressure or custom condition must hold.
        pressure_for: HumanDuration = HumanDuration::mins(2),
    }

    /// Expiring certificates in `kubernetes.io/tls` Secrets. Needs read access to Secrets.
    tls_cert_expiry: TlsCertExpiry (enabled = false, needs = [SECRETS],
        reasons = [Secret Warning|Critical "by days left": Expiring; Secret Warning: Unreadable]) {
        /// Fewer days left than this warns.
        warn_days: u32 = 28,
        /// Fewer days left than this (or expired) is critical.
        crit_days: u32 = 14,
    }

    /// Deployments past their progress deadline, and StatefulSet/DaemonSet rollouts not progressing.
    rollout_stuck: RolloutStuck (enabled = true, needs = [WORKLOADS, DAEMONSETS],
        reasons = [
            Deployment Warning: ProgressDeadlineExceeded, ReplicaFailure;
            StatefulSet|DaemonSet Warning: RolloutStalled;
        ]) {
        /// How long a StatefulSet or DaemonSet rollout may make no progress.
        stalled_for: HumanDuration = HumanDuration::mins(15),
    }

    /// HorizontalPodAutoscalers pinned at maxReplicas.
    hpa_at_max: HpaAtMax (enabled = true, needs = [HPAS],
        reasons = [HorizontalPodAutoscaler Warning: AtMaxReplicas]) {
        /// How long currentReplicas must stay at maxReplicas.
        r#for: HumanDuration = HumanDuration::mins(15),
    }

    /// DaemonSet pods that are unscheduled, misscheduled or unavailable.
    daemonset_unscheduled: DaemonsetUnscheduled (enabled = true, needs = [DAEMONSETS],
        reasons = [DaemonSet Warning: Unscheduled, Misscheduled, Unavailable]) {
        /// How long pods must stay unscheduled, misscheduled or unavailable (each counted apart).
        r#for: HumanDuration = HumanDuration::mins(10),
    }

    /// CronJobs whose scheduled run did not happen.
    cronjob_missed: CronjobMissed (enabled = true, needs = [CRONJOBS],
        reasons = [CronJob Warning: MissedSchedule]) {
        /// Extra time after a slot (at least `startingDeadlineSeconds`) before it counts as missed.
        grace: HumanDuration = HumanDuration::mins(5),
    }

    /// Jobs that failed (BackoffLimitExceeded, DeadlineExceeded, ...) or run far too long.
    job_failed: JobFailed (enabled = true, needs = [JOBS],
        // The Failed condition's reason (Failed when it has none), and LongRunning.
        reasons = [Job Warning: BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy,
            MaxFailedIndexesExceeded, FailedIndexes, Failed, LongRunning],
        other = (Job Warning: "any other reason of the Job's Failed condition")) {
        /// A Job still active after this long is reported (resolves when it finishes).
        long_running: HumanDuration = HumanDuration::hours(12),
    }

    /// Pods the scheduler cannot place (PodScheduled=False, reason Unschedulable).
    pod_unschedulable: PodUnschedulable (enabled = true, needs = [PODS],
        reasons = [Pod Warning: Unschedulable]) {
        /// How long the pod must stay unschedulable.
        r#for: HumanDuration = HumanDuration::mins(5),
    }

    /// Containers stuck waiting: ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...
    container_waiting: ContainerWaiting (enabled = true, needs = [PODS],
        // The image and configuration errors (container_waiting::ERROR_REASONS), then the usual
        // others.
        reasons = [Pod Warning: ImagePullBackOff, InvalidImageName, ErrImageNeverPull,
            CreateContainerConfigError, CreateContainerError, RunContainerError, ContainerCreating,
            PodInitializing],
        other = (Pod Warning: "any other waiting reason"),
        never = [
            "sent as ImagePullBackOff": ErrImagePull;
            "pod_crashes sends it": CrashLoopBackOff;
        ]) {
        /// For image and configuration errors, which need someone to fix their cause.
        error_for: HumanDuration = HumanDuration::mins(5),
        /// For other waiting reasons such as ContainerCreating.
        other_for: HumanDuration = HumanDuration::hours(1),
    }

    /// Running pods that are not Ready (pods of Jobs and pods on a node that is not Ready excluded).
    pod_not_ready: PodNotReady (enabled = true, needs = [PODS, NODES],
        reasons = [Pod Warning: NotReady]) {
        /// How long Ready must stay False.
        r#for: HumanDuration = HumanDuration::mins(15),
    }

    /// Deployments and StatefulSets with fewer available replicas than desired.
    replicas_unavailable: ReplicasUnavailable (enabled = true, needs = [WORKLOADS],
        reasons = [Deployment|StatefulSet Warning|Critical "by whether any is available":
            ReplicasUnavailable]) {
        /// How long fewer replicas than desired may be available.
        r#for: HumanDuration = HumanDuration::mins(15),
        /// No replica available at all is critical after this long.
        none_available_for: HumanDuration = HumanDuration::mins(5),
    }

    /// Evicted pods, grouped per namespace and node (point-in-time).
    pod_evicted: PodEvicted (enabled = true, needs = [PODS],
        // One alert per namespace and node, about the node.
        reasons = [Node Warning: Evicted]) {
        /// Evictions of one namespace's pods on one node within this window are one message.
        group_window: HumanDuration = HumanDuration::mins(5),
    }

    /// HPAs that cannot scale (ScalingActive=False, AbleToScale=False).
    hpa_unhealthy: HpaUnhealthy (enabled = true, needs = [HPAS],
        reasons = [HorizontalPodAutoscaler Warning: ScalingActive, AbleToScale]) {
        /// How long ScalingActive or AbleToScale must stay False.
        r#for: HumanDuration = HumanDuration::mins(10),
    }

    /// PVCs stuck Pending (WaitForFirstConsumer claims only once a node is selected) or Lost.
    pvc_pending: PvcPending (enabled = true, needs = [VOLUMES, STORAGE_CLASSES],
        reasons = [PersistentVolumeClaim Warning: Pending; PersistentVolumeClaim Critical: Lost]) {
        /// How long a claim may stay Pending after its creation. Lost is reported at once.
        r#for: HumanDuration = HumanDuration::mins(5),
    }

    /// Node process-ID and pod-slot headroom from kubelet stats and the node's capacity. Needs
    /// `get nodes/proxy`.
    node_resources: NodeResources (enabled = false, needs = [NODES, NODES_PROXY],
        reasons = [
            Node Warning|Critical "by the share of PIDs in use": PIDs;
            Node Info: PodCapacity;
        ]) {
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
    /// Running where kubelets run) in time; optionally also a Deployment of `replicas` pods, which
    /// goes through kube-controller-manager, expected Ready and then deleted. The chart lets kpulse
    /// create and delete pods (and Deployments, when `deployment` is on) in that namespace only.
    canary: Canary (enabled = false, needs = [],
        reasons = [Pod|Deployment Critical: CanaryFailed]) {
        interval: HumanDuration = HumanDuration::mins(10),
        /// How long a run may take to reach its goal; the Deployment routine's deletion gets as
        /// long again.
        timeout: HumanDuration = HumanDuration::mins(2),
        /// Namespace the canary pods are created in.
        namespace: String = "kpulse".to_string(),
        /// The image of the canary's container: any image whose default command keeps running
        /// (a pause image), e.g. from a registry the nodes can reach.
        image: String = "registry.k8s.io/pause:3.10".to_string(),
        /// Only require scheduling (no kubelet needed), not Running.
        schedule_only: bool = false,
        /// Node labels the canary pod must land on (its `nodeSelector`), to prove one node pool.
        /// Empty: any node.
        node_selector: std::collections::BTreeMap<String, String> = Default::default(),
        /// Taint keys the canary pod tolerates (any value and effect), so it can prove tainted
        /// nodes too.
        tolerations: Vec<String> = Vec::new(),
        /// Also run the Deployment routine each interval: a Deployment `kpulse-canary` whose
        /// ReplicaSet (kube-controller-manager) creates the pods, which must become Ready
        /// (scheduled only, with `schedule_only`), and be garbage-collected once it is deleted.
        deployment: bool = false,
        /// Pods of the Deployment routine.
        replicas: u32 = 1,
    }

    /// Pod start-up latency for pods created after kpulse started: histograms of every stage
    /// (creation to scheduled, initialized, ready; one stage to the next), of container
    /// transitions and of image pulls, and the SlowStartup alert for a pod not Ready in time.
    startup_latency: StartupLatency (enabled = false, needs = [PODS, EVENTS],
        reasons = [Pod Warning: SlowStartup]) {
        /// A pod that has not been Ready since its creation for this long fires SlowStartup
        /// (resolved once it is Ready). `0s`: never.
        slow_after: HumanDuration = HumanDuration::mins(10),
        /// `slow_after` for the pods of these namespaces (before `slow_after_owner_kinds`).
        slow_after_namespaces: std::collections::BTreeMap<String, HumanDuration> = Default::default(),
        /// `slow_after` for the pods of these owner kinds: `Deployment`, `StatefulSet`,
        /// `DaemonSet`, `Job`, `ReplicaSet`, `Node` (static pods), `none` (bare pods).
        slow_after_owner_kinds: std::collections::BTreeMap<String, HumanDuration> = Default::default(),
        /// Label the metrics with the pod's `namespace`.
        namespace_label: bool = true,
        /// Most namespaces labelled; pods of further namespaces are labelled `_other`.
        max_namespaces: u32 = 100,
        /// A node label (e.g. `cloud.google.com/gke-nodepool`) whose value labels the metrics as
        /// `node_pool` (at most 50 pools; further ones are `_other`). Empty: no `node_pool`
        /// label.
        node_pool_label: String = String::new(),
        /// Print one JSON line on stdout for each update of a pod's start-up record.
        json_lines: bool = false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_monitor_declares_the_reasons_it_sends() {
        for e in Monitors::REGISTRY {
            assert!(e.reasons.main(None).is_some(), "{}", e.name);
        }
    }

    #[test]
    fn declared_reasons_are_unique_and_complete() {
        for e in Monitors::REGISTRY {
            let r = &e.reasons;
            let mut names: Vec<&str> = r.names().collect();
            let all = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all, "{}: a reason declared twice", e.name);
            for never in r.never {
                for n in never.names {
                    assert!(
                        !names.contains(n),
                        "{}: {n} is known and never sent",
                        e.name
                    );
                }
            }
            let levels = r.known.iter().map(|k| (k.kinds, k.severity));
            for (kinds, level) in levels.chain(r.other.iter().map(|o| (o.kinds, o.severity))) {
                assert!(!kinds.is_empty(), "{}: no kind", e.name);
                let s = level.severities;
                assert!(s.windows(2).all(|w| w[0] < w[1]), "{}: {s:?}", e.name);
                // Several severities say what decides; one says nothing.
                assert_eq!(s.len() > 1, !level.by.is_empty(), "{}: {level}", e.name);
            }
            assert!(r.known.iter().all(|k| !k.names.is_empty()), "{}", e.name);
        }
    }

    fn reasons(monitor: &str) -> Reasons {
        Monitors::entry(monitor).unwrap().reasons
    }

    #[test]
    fn the_registry_agrees_with_the_monitors_lists() {
        use crate::monitors::{pods::container_waiting, warning_events};
        let waiting = reasons(container_waiting::NAME);
        for r in container_waiting::ERROR_REASONS {
            assert!(
                matches!(waiting.lookup(r, None), Lookup::Known(_) | Lookup::Never(_)),
                "{r}"
            );
        }
        let events = reasons(warning_events::NAME);
        let never: Vec<&str> = events.never.iter().flat_map(|n| n.names).copied().collect();
        assert_eq!(never, warning_events::NOISE);
    }

    #[test]
    fn lookup_tells_known_other_and_never_apart() {
        let events = reasons("warning_events");
        let Lookup::Known(k) = events.lookup("SystemOOM", None) else {
            panic!("SystemOOM");
        };
        assert_eq!(
            (k.kinds, k.severity.single()),
            (&["Node"][..], Some(Severity::Critical))
        );
        // A known reason about another kind is one of the others: a Pod's SystemOOM warns.
        assert!(matches!(
            events.lookup("SystemOOM", Some("Pod")),
            Lookup::Other(_)
        ));
        assert!(matches!(
            events.lookup("FailedAttachVolume", None),
            Lookup::Other(_)
        ));
        assert!(matches!(events.lookup("Unhealthy", None), Lookup::Never(_)));
        assert_eq!(
            reasons("pod_crashes").lookup("Evicted", None),
            Lookup::Unknown
        );
        let usage = reasons("pvc_usage").main(None).unwrap().1.severity;
        assert_eq!(
            usage.to_string(),
            "warning or critical, by fill level and rate"
        );
        assert_eq!((usage.single(), usage.assumed()), (None, Severity::Warning));
        assert_eq!(
            reasons("rollout_stuck").main(Some("DaemonSet")).unwrap().0,
            "RolloutStalled"
        );
    }
}
