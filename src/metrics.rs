//! Prometheus metrics (OpenMetrics text via `prometheus-client`).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::Decision;
use crate::sinks::Report;

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

/// Every metric kpulse exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub alerts_fired: Family<AlertLabels, Counter>,
    pub alerts_resolved: Family<AlertLabels, Counter>,
    pub alerts_deduped: Family<AlertLabels, Counter>,
    pub alerts_digested: Family<AlertLabels, Counter>,
    pub alerts_muted: Family<MonitorLabels, Counter>,
    pub active_alerts: Family<MonitorLabels, Gauge>,
    pub notifications_sent: Family<ChannelLabels, Counter>,
    pub notifications_failed: Family<ChannelLabels, Counter>,
    pub notifications_retried: Family<ChannelLabels, Counter>,
    pub send_duration: Family<ChannelLabels, Histogram>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub config_generation: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("kpulse")),
            alerts_fired: Family::default(),
            alerts_resolved: Family::default(),
            alerts_deduped: Family::default(),
            alerts_digested: Family::default(),
            alerts_muted: Family::default(),
            active_alerts: Family::default(),
            notifications_sent: Family::default(),
            notifications_failed: Family::default(),
            notifications_retried: Family::default(),
            send_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            config_reloads: Family::default(),
            config_generation: Gauge::default(),
        };
        {
            let mut r = m
                .registry
                .lock()
                .expect("metrics registry lock is never poisoned");
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
            r.register(
                "notification_send_duration_seconds",
                "Time to deliver one message, retries included",
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
            Decision::ResolvedSilently { .. } => {}
        }
    }

    pub fn delivery(&self, r: &Report) {
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
    }
}
