//! Prometheus metrics (OpenMetrics text via `prometheus-client`), and the live [`Status`] that
//! `/status` shows.
//!
//! Every name carries the `kpulse_` prefix; counters end in `_total`, durations are in seconds and
//! sizes in bytes (the `# UNIT` line says so). The status is recorded here, beside the metrics, so
//! one call reports a delivery, a configuration reload or a leadership change to both.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::delivery::Report;
use crate::engine::Decision;
use crate::status::Status;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub monitor: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorLabels {
    pub monitor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

impl ResultLabels {
    pub fn new(result: impl Into<String>) -> Self {
        ResultLabels {
            result: result.into(),
        }
    }
}

/// A watched Kubernetes resource, e.g. `pods`, `events`, `nodes`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub resource: String,
}

impl ResourceLabels {
    pub fn new(resource: impl Into<String>) -> Self {
        ResourceLabels {
            resource: resource.into(),
        }
    }
}

/// The labels of the pod start-up series: the series' own dimensions (`stage`, `transition`,
/// `container_type`, `result`), then `namespace`, `owner_kind` and `node_pool`. Empty values are
/// left out (Prometheus treats an empty label as an absent one): `namespace` when
/// `startup_latency.namespace_label` is off, `node_pool` unless `node_pool_label` is set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, Default)]
pub struct StartupLabels {
    pub own: Vec<(&'static str, String)>,
    pub namespace: String,
    pub owner_kind: String,
    pub node_pool: String,
}

impl StartupLabels {
    /// The same pod dimensions with other own labels.
    pub fn with(&self, own: &[(&'static str, &str)]) -> Self {
        StartupLabels {
            own: own.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            ..self.clone()
        }
    }
}

impl prometheus_client::encoding::EncodeLabelSet for StartupLabels {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        let own = self.own.iter().map(|(k, v)| (*k, v.as_str()));
        let pod = [
            ("namespace", self.namespace.as_str()),
            ("owner_kind", self.owner_kind.as_str()),
            ("node_pool", self.node_pool.as_str()),
        ];
        let pairs: Vec<(&str, &str)> = own.chain(pod).filter(|(_, v)| !v.is_empty()).collect();
        pairs.encode(encoder)
    }
}

/// A canary routine: `pod` or `deployment`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoutineLabels {
    pub routine: String,
}

/// A canary routine's runs by result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoutineResultLabels {
    pub routine: String,
    pub result: String,
}

/// A stage of a canary run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoutineStageLabels {
    pub routine: String,
    pub stage: String,
}

/// An engine decision about an alert of a monitor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub monitor: String,
    pub decision: String,
}

/// Every metric kpulse exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// What `/status` shows; updated by [`Metrics::delivery`], [`Metrics::config_reload`] and
    /// [`Metrics::set_leader`].
    pub status: Status,
    pub alerts_fired: Family<AlertLabels, Counter>,
    pub alerts_resolved: Family<AlertLabels, Counter>,
    pub alerts_deduped: Family<AlertLabels, Counter>,
    pub alerts_digested: Family<AlertLabels, Counter>,
    /// Alerts that joined their workload's incident instead of being sent on their own.
    pub alerts_grouped: Family<AlertLabels, Counter>,
    /// Alerts held back by an `inhibit` rule while their source fires.
    pub alerts_inhibited: Family<AlertLabels, Counter>,
    /// Alerts a silence kept from being sent.
    pub alerts_silenced: Family<AlertLabels, Counter>,
    /// Every engine decision, by monitor and decision (`sent`, `grouped`, `inhibited`, ...).
    pub decisions: Family<DecisionLabels, Counter>,
    pub alerts_muted: Family<MonitorLabels, Counter>,
    pub active_alerts: Family<MonitorLabels, Gauge>,
    pub notifications_sent: Family<ChannelLabels, Counter>,
    pub notifications_failed: Family<ChannelLabels, Counter>,
    pub notifications_retried: Family<ChannelLabels, Counter>,
    pub send_duration: Family<ChannelLabels, Histogram>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_generation: Gauge,
    /// 1 while this replica is the leader (the one that notifies and writes state).
    pub leader: Gauge,
    /// Watch events received, per resource (`pods`, `events`, ...).
    pub watch_events: Family<ResourceLabels, Counter>,
    /// Watch streams restarted after an error, per resource.
    pub watch_restarts: Family<ResourceLabels, Counter>,
    /// Full re-evaluations of every object of a watched resource (after a list, and every tick).
    pub watch_evaluations: Family<ResourceLabels, Counter>,
    /// Writes of the `kpulse-state` ConfigMap by result (`success`, `failure`).
    pub state_writes: Family<ResultLabels, Counter>,
    /// Size of the last state written.
    pub state_size_bytes: Gauge,
    /// Entries dropped from the state to keep it under the ConfigMap size limit.
    pub state_pruned: Counter,
    /// Canary runs by routine and result (`success`, `failure`, `timeout`).
    pub canary_runs: Family<RoutineResultLabels, Counter>,
    /// Time from the start of a canary run to its goal (scheduled with `schedule_only`, else
    /// Running, or Ready for the Deployment routine).
    pub canary_duration: Family<RoutineLabels, Histogram>,
    /// Time each stage of a successful canary run took.
    pub canary_stage_duration: Family<RoutineStageLabels, Histogram>,
    /// Pod start-up latency from creation to each stage.
    pub pod_startup_duration: Family<StartupLabels, Histogram>,
    /// Pod start-up latency from one stage to the next.
    pub pod_stage_duration: Family<StartupLabels, Histogram>,
    /// Container start-up transitions (waiting to running, running to ready or completed).
    pub container_startup_duration: Family<StartupLabels, Histogram>,
    /// Image pulls of new pods' containers, from the kubelet's Pulling/Pulled events.
    pub image_pull_duration: Family<StartupLabels, Histogram>,
    /// Image pulls by result: `pulled`, `already_present`.
    pub image_pulls: Family<StartupLabels, Counter>,
    /// Pods whose start-up is being followed.
    pub startup_tracked_pods: Gauge,
    /// What `/status` shows of pod start-ups and canary runs.
    pub startup: Arc<crate::monitors::startup_status::StartupStatus>,
    /// The start-up records of new pods (`startup_latency`, the canary).
    pub startup_pods: Arc<crate::monitors::pods::startup_latency::Tracker>,
    /// Time to read the kubelet stats of every node once (pvc_usage, node_disk, node_resources).
    pub stats_scan_duration: Histogram,
    /// Kubelet stats reads per node by result (`success`, `failure`).
    pub stats_fetches: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// 5 ms to ~41 s: one HTTP call to a provider, retries included.
fn send_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// 0.25 s to ~17 min: canary runs, node scans.
fn slow_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 13))
}

/// Durations between API timestamps, which have second precision: whole seconds from 1 s to
/// 30 min, no sub-second buckets (a 0 lands in the first).
pub const STARTUP_BUCKETS: [f64; 16] = [
    1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0,
];

fn startup_buckets() -> Histogram {
    Histogram::new(STARTUP_BUCKETS)
}

/// Image pulls, timed by the kubelet to the millisecond: 0.1 s to 10 min.
pub const IMAGE_PULL_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn image_pull_buckets() -> Histogram {
    Histogram::new(IMAGE_PULL_BUCKETS)
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("kpulse")),
            status: Status::default(),
            alerts_fired: Family::default(),
            alerts_resolved: Family::default(),
            alerts_deduped: Family::default(),
            alerts_digested: Family::default(),
            alerts_grouped: Family::default(),
            alerts_inhibited: Family::default(),
            alerts_silenced: Family::default(),
            decisions: Family::default(),
            alerts_muted: Family::default(),
            active_alerts: Family::default(),
            notifications_sent: Family::default(),
            notifications_failed: Family::default(),
            notifications_retried: Family::default(),
            send_duration: Family::new_with_constructor(send_buckets),
            config_reloads: Family::default(),
            config_generation: Gauge::default(),
            leader: Gauge::default(),
            watch_events: Family::default(),
            watch_restarts: Family::default(),
            watch_evaluations: Family::default(),
            state_writes: Family::default(),
            state_size_bytes: Gauge::default(),
            state_pruned: Counter::default(),
            canary_runs: Family::default(),
            canary_duration: Family::new_with_constructor(slow_buckets),
            canary_stage_duration: Family::new_with_constructor(slow_buckets),
            pod_startup_duration: Family::new_with_constructor(startup_buckets),
            pod_stage_duration: Family::new_with_constructor(startup_buckets),
            container_startup_duration: Family::new_with_constructor(startup_buckets),
            image_pull_duration: Family::new_with_constructor(image_pull_buckets),
            image_pulls: Family::default(),
            startup_tracked_pods: Gauge::default(),
            startup: Arc::default(),
            startup_pods: Arc::default(),
            stats_scan_duration: slow_buckets(),
            stats_fetches: Family::default(),
        };
        // A single replica leads until leader election says otherwise.
        m.leader.set(1);
        {
            let mut r = m
                .registry
                .lock()
                .expect("metrics registry lock is never poisoned");
            r.register(
                "build",
                "kpulse version",
                Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
            );
            r.register(
                "alerts_fired",
                "Alerts sent as firing",
                m.alerts_fired.clone(),
            );
            r.register(
                "alerts_resolved",
                "Alerts sent as resolved",
                m.alerts_resolved.clone(),
            );
            r.register(
                "alerts_deduped",
                "Alerts dropped as duplicates",
                m.alerts_deduped.clone(),
            );
            r.register(
                "alerts_digested",
                "Alerts queued into a digest",
                m.alerts_digested.clone(),
            );
            r.register(
                "alerts_grouped",
                "Alerts that joined their workload's incident instead of being sent on their own",
                m.alerts_grouped.clone(),
            );
            r.register(
                "alerts_inhibited",
                "Alerts held back by an inhibit rule while the alert that explains them fires",
                m.alerts_inhibited.clone(),
            );
            r.register(
                "alerts_silenced",
                "Alerts a silence kept from being sent",
                m.alerts_silenced.clone(),
            );
            r.register(
                "decisions",
                "Engine decisions about alerts, by monitor and decision: sent, resolved, resolved_silently, deduped, digested, muted, grouped, inhibited, silenced, maintenance, repeated, rate_limited",
                m.decisions.clone(),
            );
            r.register(
                "alerts_muted",
                "Alerts matched by a rule with no channels",
                m.alerts_muted.clone(),
            );
            r.register(
                "active_alerts",
                "Alerts currently firing",
                m.active_alerts.clone(),
            );
            r.register(
                "notifications_sent",
                "Messages delivered",
                m.notifications_sent.clone(),
            );
            r.register(
                "notifications_failed",
                "Messages that failed for good",
                m.notifications_failed.clone(),
            );
            r.register(
                "notifications_retried",
                "Delivery attempts retried",
                m.notifications_retried.clone(),
            );
            r.register_with_unit(
                "notification_send_duration",
                "Time to deliver one message, retries included",
                Unit::Seconds,
                m.send_duration.clone(),
            );
            r.register(
                "config_reloads",
                "Configuration reloads by result",
                m.config_reloads.clone(),
            );
            r.register(
                "config_generation",
                "Generation of the configuration in use",
                m.config_generation.clone(),
            );
            r.register(
                "leader",
                "1 if this replica is the leader (notifies and writes state), 0 on standby",
                m.leader.clone(),
            );
            r.register(
                "watch_events",
                "Watch events received per resource",
                m.watch_events.clone(),
            );
            r.register(
                "watch_restarts",
                "Watch streams restarted after an error, per resource",
                m.watch_restarts.clone(),
            );
            r.register(
                "watch_evaluations",
                "Full re-evaluations of every object of a watched resource",
                m.watch_evaluations.clone(),
            );
            r.register(
                "state_writes",
                "Writes of the kpulse-state ConfigMap by result",
                m.state_writes.clone(),
            );
            r.register_with_unit(
                "state_size",
                "Size of the last state written",
                Unit::Bytes,
                m.state_size_bytes.clone(),
            );
            r.register(
                "state_pruned",
                "Entries dropped from the state to keep it under the ConfigMap size limit",
                m.state_pruned.clone(),
            );
            r.register(
                "canary_runs",
                "Canary runs by routine and result",
                m.canary_runs.clone(),
            );
            r.register_with_unit(
                "canary_duration",
                "Time from the start of a successful canary run to its goal",
                Unit::Seconds,
                m.canary_duration.clone(),
            );
            r.register_with_unit(
                "canary_stage_duration",
                "Time each stage of a successful canary run took",
                Unit::Seconds,
                m.canary_stage_duration.clone(),
            );
            r.register_with_unit(
                "pod_startup_duration",
                "Pod start-up latency from creation to each stage (scheduled, initialized, ready)",
                Unit::Seconds,
                m.pod_startup_duration.clone(),
            );
            r.register_with_unit(
                "pod_stage_duration",
                "Pod start-up latency from one stage to the next",
                Unit::Seconds,
                m.pod_stage_duration.clone(),
            );
            r.register_with_unit(
                "container_startup_duration",
                "Container start-up transitions: waiting to running, running to ready or completed",
                Unit::Seconds,
                m.container_startup_duration.clone(),
            );
            r.register_with_unit(
                "image_pull_duration",
                "Image pulls of new pods' containers, as the kubelet timed them",
                Unit::Seconds,
                m.image_pull_duration.clone(),
            );
            r.register(
                "image_pulls",
                "Image pulls of new pods' containers by result (pulled, already_present)",
                m.image_pulls.clone(),
            );
            r.register(
                "startup_tracked_pods",
                "Pods whose start-up is being followed",
                m.startup_tracked_pods.clone(),
            );
            r.register_with_unit(
                "stats_scan_duration",
                "Time to read the kubelet stats summary of every node once",
                Unit::Seconds,
                m.stats_scan_duration.clone(),
            );
            r.register(
                "stats_fetches",
                "Kubelet stats summary reads per node by result",
                m.stats_fetches.clone(),
            );
        }
        m
    }

    /// Lets other modules add their metrics to the same registry.
    pub fn with_registry<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        let mut r = self
            .registry
            .lock()
            .expect("metrics registry lock is never poisoned");
        f(&mut r)
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let r = self
            .registry
            .lock()
            .expect("metrics registry lock is never poisoned");
        prometheus_client::encoding::text::encode(&mut out, &r)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn decision(&self, d: &Decision) {
        let labels = |key: &crate::alert::AlertKey, sev: crate::alert::Severity| AlertLabels {
            monitor: key.monitor.clone(),
            severity: sev.to_string(),
        };
        match d {
            Decision::Fired { key, severity, .. } => {
                self.alerts_fired
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::Resolved { key, severity, .. } => {
                self.alerts_resolved
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::Deduped { key, severity } => {
                self.alerts_deduped
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::Digested { key, severity, .. } => {
                self.alerts_digested
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::Muted { key, .. } => {
                self.alerts_muted
                    .get_or_create(&MonitorLabels {
                        monitor: key.monitor.clone(),
                    })
                    .inc();
            }
            Decision::Grouped { key, severity, .. } => {
                self.alerts_grouped
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::Inhibited { key, severity, .. } => {
                self.alerts_inhibited
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::Silenced { key, severity, .. } => {
                self.alerts_silenced
                    .get_or_create(&labels(key, *severity))
                    .inc();
            }
            Decision::ResolvedSilently { .. }
            | Decision::InMaintenance { .. }
            | Decision::Repeated { .. }
            | Decision::RateLimited { .. } => {}
        }
        self.decisions
            .get_or_create(&DecisionLabels {
                monitor: d.key().monitor.clone(),
                decision: d.name().to_string(),
            })
            .inc();
    }

    /// Records one delivery that finished `at`: counters, latency, and the channel's last
    /// success or failure.
    pub fn delivery(&self, r: &Report, at: jiff::Timestamp) {
        let labels = ChannelLabels {
            channel: r.channel.clone(),
            sink: r.sink.to_string(),
        };
        if r.attempts > 1 {
            self.notifications_retried
                .get_or_create(&labels)
                .inc_by(u64::from(r.attempts - 1));
        }
        match &r.result {
            Ok(_) if r.attempts > 0 => {
                self.notifications_sent.get_or_create(&labels).inc();
            }
            Ok(_) => {}
            Err(_) => {
                self.notifications_failed.get_or_create(&labels).inc();
            }
        }
        self.send_duration
            .get_or_create(&labels)
            .observe(r.latency.as_secs_f64());
        self.status.record_delivery(r, at);
    }

    /// Records a configuration reload: `Ok(generation)` when applied, `Err(reason)` when the new
    /// configuration was rejected (the previous one stays in force). The reason must not contain
    /// secret values (validation errors name paths, not values).
    pub fn config_reload(&self, result: Result<u64, &str>, at: jiff::Timestamp) {
        match result {
            Ok(generation) => {
                self.config_reloads
                    .get_or_create(&ResultLabels::new("success"))
                    .inc();
                self.config_generation.set(generation as i64);
                self.status.config_applied();
            }
            Err(reason) => {
                self.config_reloads
                    .get_or_create(&ResultLabels::new("failure"))
                    .inc();
                self.status.config_rejected(reason, at);
            }
        }
    }

    /// Records whether this replica leads (notifies and writes state) or stands by.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        self.status.set_leader(leader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{Delivered, SendError};
    use std::time::Duration;

    fn report(result: Result<Delivered, SendError>, attempts: u32) -> Report {
        Report {
            channel: "ops".into(),
            sink: "webhook",
            attempts,
            latency: Duration::from_millis(20),
            result,
        }
    }

    #[test]
    fn a_delivery_moves_counters_and_the_channel_status() {
        let m = Metrics::new();
        m.delivery(
            &report(Ok(Delivered::default()), 2),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let text = m.encode();
        for line in [
            "kpulse_notifications_sent_total{channel=\"ops\",sink=\"webhook\"} 1",
            "kpulse_notifications_retried_total{channel=\"ops\",sink=\"webhook\"} 1",
            "kpulse_notification_send_duration_seconds_count{channel=\"ops\",sink=\"webhook\"} 1",
            "# UNIT kpulse_notification_send_duration_seconds seconds",
            "kpulse_leader 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        let ops = m.status.channels()["ops"].clone();
        assert!(ops.last_success.is_some() && ops.last_failure.is_none());

        m.delivery(
            &report(
                Err(SendError {
                    channel: "ops".into(),
                    sink: "webhook",
                    message: "HTTP 500".into(),
                    attempts: 1,
                }),
                1,
            ),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let ops = m.status.channels()["ops"].clone();
        assert_eq!(ops.last_error.as_deref(), Some("HTTP 500"));
        assert!(
            m.encode()
                .contains("kpulse_notifications_failed_total{channel=\"ops\",sink=\"webhook\"} 1")
        );
    }

    /// Every `# TYPE` of the exposition as the name a query uses (counters with `_total`, info
    /// with `_info`) and its type.
    fn exported(text: &str) -> std::collections::BTreeSet<(String, String)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| {
                let (name, kind) = l.split_once(' ').expect("# TYPE <name> <type>");
                let name = match kind {
                    "counter" => format!("{name}_total"),
                    "info" => format!("{name}_info"),
                    _ => name.to_string(),
                };
                (name, kind.to_string())
            })
            .collect()
    }

    /// One series in every family, so that each is exported (an empty family is not). Names every
    /// field: a new metric does not compile until it is added here.
    fn one_series_each(m: &Metrics) {
        let Metrics {
            registry: _,
            status: _,
            alerts_fired,
            alerts_resolved,
            alerts_deduped,
            alerts_digested,
            alerts_grouped,
            alerts_inhibited,
            alerts_silenced,
            decisions,
            alerts_muted,
            active_alerts,
            notifications_sent,
            notifications_failed,
            notifications_retried,
            send_duration,
            config_reloads,
            config_generation: _,
            leader: _,
            watch_events,
            watch_restarts,
            watch_evaluations,
            state_writes,
            state_size_bytes: _,
            state_pruned: _,
            canary_runs,
            canary_duration,
            canary_stage_duration,
            pod_startup_duration,
            pod_stage_duration,
            container_startup_duration,
            image_pull_duration,
            image_pulls,
            startup_tracked_pods: _,
            startup: _,
            startup_pods: _,
            stats_scan_duration: _,
            stats_fetches,
        } = m;
        let alert = AlertLabels {
            monitor: "m".into(),
            severity: "info".into(),
        };
        for f in [
            alerts_fired,
            alerts_resolved,
            alerts_deduped,
            alerts_digested,
            alerts_grouped,
            alerts_inhibited,
            alerts_silenced,
        ] {
            f.get_or_create(&alert).inc();
        }
        decisions
            .get_or_create(&DecisionLabels {
                monitor: "m".into(),
                decision: "sent".into(),
            })
            .inc();
        let monitor = MonitorLabels {
            monitor: "m".into(),
        };
        alerts_muted.get_or_create(&monitor).inc();
        active_alerts.get_or_create(&monitor).inc();
        let channel = ChannelLabels {
            channel: "c".into(),
            sink: "log".into(),
        };
        for f in [
            notifications_sent,
            notifications_failed,
            notifications_retried,
        ] {
            f.get_or_create(&channel).inc();
        }
        send_duration.get_or_create(&channel).observe(1.0);
        for f in [config_reloads, state_writes, stats_fetches] {
            f.get_or_create(&ResultLabels::new("success")).inc();
        }
        canary_runs
            .get_or_create(&RoutineResultLabels {
                routine: "pod".into(),
                result: "success".into(),
            })
            .inc();
        canary_duration
            .get_or_create(&RoutineLabels {
                routine: "pod".into(),
            })
            .observe(1.0);
        canary_stage_duration
            .get_or_create(&RoutineStageLabels {
                routine: "pod".into(),
                stage: "scheduled".into(),
            })
            .observe(1.0);
        let pod = StartupLabels::default();
        for f in [
            pod_startup_duration,
            pod_stage_duration,
            container_startup_duration,
            image_pull_duration,
        ] {
            f.get_or_create(&pod).observe(1.0);
        }
        image_pulls.get_or_create(&pod).inc();
        for f in [watch_events, watch_restarts, watch_evaluations] {
            f.get_or_create(&ResourceLabels::new("pods")).inc();
        }
    }

    /// Every metric row of docs/observability.md: name and type.
    fn documented(page: &str) -> std::collections::BTreeSet<(String, String)> {
        let row = regex::Regex::new(r"^\| `(kpulse_[a-z_]+)` \| ([a-z]+) \|").unwrap();
        page.lines()
            .filter_map(|l| row.captures(l))
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect()
    }

    #[test]
    fn the_documented_metrics_are_exactly_the_registered_ones() {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/observability.md"
        ))
        .unwrap();
        let m = Metrics::new();
        one_series_each(&m);
        let (exported, documented) = (exported(&m.encode()), documented(&page));
        let undocumented: Vec<_> = exported.difference(&documented).collect();
        let unregistered: Vec<_> = documented.difference(&exported).collect();
        assert!(
            undocumented.is_empty() && unregistered.is_empty(),
            "registered but not in docs/observability.md: {undocumented:?}\n\
             in docs/observability.md but not registered: {unregistered:?}"
        );
    }

    #[test]
    fn config_reloads_and_leadership_are_counted_and_shown() {
        let m = Metrics::new();
        m.config_reload(
            Err("routing.default[0]: unknown channel \"x\""),
            jiff::Timestamp::UNIX_EPOCH,
        );
        assert!(m.status.config_error().is_some());
        m.config_reload(Ok(2), jiff::Timestamp::UNIX_EPOCH);
        assert!(m.status.config_error().is_none());
        m.set_leader(false);
        assert!(!m.status.is_leader());
        let text = m.encode();
        for line in [
            "kpulse_config_reloads_total{result=\"failure\"} 1",
            "kpulse_config_reloads_total{result=\"success\"} 1",
            "kpulse_config_generation 2",
            "kpulse_leader 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
