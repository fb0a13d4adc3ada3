//! `startup_latency`: how long new pods take to start, as the histogram
//! `kpulse_pod_startup_duration_seconds{stage}`, from the pod's creation to the first time each
//! condition turned True: `scheduled` (PodScheduled), `initialized` (Initialized) and `ready`
//! (Ready).
//!
//! Only pods created after kpulse started are measured, so a restart of kpulse does not observe
//! old pods again; each stage of a pod is observed once (a pod that turns Ready again after a
//! container restart is not counted twice). The times are the conditions' `lastTransitionTime`,
//! which the kubelet and the scheduler write with second precision. Pods in filtered or ignored
//! namespaces are not measured. This monitor sends no alerts.

use std::sync::Arc;

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::alert::Alert;
use crate::config::Config;
use crate::metrics::StageLabels;
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "startup_latency";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |w| Arc::new(StartupLatency::new(w.started, w.metrics.pod_startup_duration.clone())));

/// The measured stages: (label, pod condition type).
pub const STAGES: [(&str, &str); 3] = [
    ("scheduled", "PodScheduled"),
    ("initialized", "Initialized"),
    ("ready", "Ready"),
];

pub struct StartupLatency {
    /// Pods created before this are not measured.
    started: Timestamp,
    histogram: Family<StageLabels, Histogram>,
    /// Stages already observed, by pod UID (bit i = `STAGES[i]`); dropped when the pod is deleted.
    observed: Mutex<HashMap<String, u8>>,
}

impl StartupLatency {
    pub fn new(started: Timestamp, histogram: Family<StageLabels, Histogram>) -> Self {
        StartupLatency {
            started,
            histogram,
            observed: Mutex::default(),
        }
    }

    fn observe(&self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut observed = self.observed.lock().expect("never poisoned");
        let seen = observed.get(&uid).copied().unwrap_or(0);
        let (new, durations) = stages(pod, self.started, seen);
        for (stage, seconds) in durations {
            self.histogram
                .get_or_create(&StageLabels {
                    stage: stage.to_string(),
                })
                .observe(seconds);
        }
        if new != seen {
            observed.insert(uid, new);
        }
    }

    /// Pods being tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.observed.lock().expect("never poisoned").len()
    }
}

/// The stages of `pod` to observe now, given the ones already observed (`seen`, a bit set over
/// [`STAGES`]): each True condition not yet observed, with the seconds from creation to its
/// transition. Returns the updated bit set too. Pods created before `started` yield nothing.
pub fn stages(pod: &Pod, started: Timestamp, seen: u8) -> (u8, Vec<(&'static str, f64)>) {
    let Some(created) = pod.metadata.creation_timestamp.as_ref().map(|t| t.0) else {
        return (seen, Vec::new());
    };
    // Creation times have second precision: a pod created in kpulse's first second counts.
    if created.as_second() < started.as_second() {
        return (seen, Vec::new());
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut bits = seen;
    let mut out = Vec::new();
    for (i, (stage, condition)) in STAGES.iter().enumerate() {
        if bits & (1 << i) != 0 {
            continue;
        }
        let Some(at) = conditions
            .iter()
            .find(|c| c.type_ == *condition && c.status == "True")
            .and_then(|c| c.last_transition_time.as_ref())
        else {
            continue;
        };
        bits |= 1 << i;
        let seconds = (at.0.as_millisecond() - created.as_millisecond()).max(0) as f64 / 1000.0;
        out.push((*stage, seconds));
    }
    (bits, out)
}

impl ObjectMonitor<Pod> for StartupLatency {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.startup_latency.enabled
    }

    fn firing(&self, _config: &Config, _pod: &Pod, _now: Timestamp) -> Vec<Finding> {
        Vec::new()
    }

    fn changes(&self, _config: &Config, _old: &Pod, new: &Pod, _now: Timestamp) -> Vec<Alert> {
        self.observe(new);
        Vec::new()
    }

    fn created(&self, _config: &Config, pod: &Pod, _now: Timestamp) -> Vec<Alert> {
        self.observe(pod);
        Vec::new()
    }

    fn deleted(&self, pod: &Pod) {
        if let Some(uid) = pod.metadata.uid.as_ref() {
            self.observed.lock().expect("never poisoned").remove(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::at as ts;
    use serde_json::json;

    fn pod(created: &str, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-0", "namespace": "shop", "uid": "u1", "creationTimestamp": created},
            "status": {"conditions": conditions}
        }))
        .unwrap()
    }

    fn cond(type_: &str, status: &str, at: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "lastTransitionTime": at})
    }

    #[test]
    fn each_true_condition_is_measured_from_creation_once() {
        let started = ts("2026-11-22T10:00:00Z");
        let p = pod(
            "2026-11-22T10:00:10Z",
            json!([cond("PodScheduled", "True", "2026-11-22T10:00:11Z")]),
        );
        let (bits, out) = stages(&p, started, 0);
        assert_eq!(out, vec![("scheduled", 1.0)]);
        let p = pod(
            "2026-11-22T10:00:10Z",
            json!([
                cond("PodScheduled", "True", "2026-11-22T10:00:11Z"),
                cond("Initialized", "True", "2026-11-22T10:00:14Z"),
                cond("Ready", "False", "2026-11-22T10:00:14Z"),
            ]),
        );
        let (bits, out) = stages(&p, started, bits);
        assert_eq!(
            out,
            vec![("initialized", 4.0)],
            "scheduled is not counted twice"
        );
        let p = pod(
            "2026-11-22T10:00:10Z",
            json!([
                cond("PodScheduled", "True", "2026-11-22T10:00:11Z"),
                cond("Initialized", "True", "2026-11-22T10:00:14Z"),
                cond("Ready", "True", "2026-11-22T10:00:40Z"),
            ]),
        );
        let (bits, out) = stages(&p, started, bits);
        assert_eq!(out, vec![("ready", 30.0)]);
        // Ready again after a restart: already measured.
        let p = pod(
            "2026-11-22T10:00:10Z",
            json!([cond("Ready", "True", "2026-11-22T11:00:00Z")]),
        );
        assert_eq!(stages(&p, started, bits).1, vec![]);
    }

    #[test]
    fn pods_created_before_start_are_not_measured() {
        let p = pod(
            "2026-11-22T09:59:59Z",
            json!([cond("PodScheduled", "True", "2026-11-22T10:00:05Z")]),
        );
        assert_eq!(stages(&p, ts("2026-11-22T10:00:00.700Z"), 0).1, vec![]);
        // The same second as the start counts (creation times are whole seconds).
        let p = pod(
            "2026-11-22T10:00:00Z",
            json!([cond("PodScheduled", "True", "2026-11-22T10:00:05Z")]),
        );
        assert_eq!(
            stages(&p, ts("2026-11-22T10:00:00.700Z"), 0).1,
            vec![("scheduled", 5.0)]
        );
    }

    #[test]
    fn the_monitor_records_into_the_histogram_and_forgets_deleted_pods() {
        let metrics = crate::metrics::Metrics::new();
        let m = StartupLatency::new(
            ts("2026-11-22T10:00:00Z"),
            metrics.pod_startup_duration.clone(),
        );
        let config = Config::default();
        let p = pod(
            "2026-11-22T10:00:10Z",
            json!([
                cond("PodScheduled", "True", "2026-11-22T10:00:12Z"),
                cond("Ready", "True", "2026-11-22T10:00:20Z"),
            ]),
        );
        let now = ts("2026-11-22T10:00:30Z");
        assert!(m.created(&config, &p, now).is_empty());
        assert!(m.changes(&config, &p, &p, now).is_empty());
        assert_eq!(m.tracked(), 1);
        let text = metrics.encode();
        assert!(
            text.contains("kpulse_pod_startup_duration_seconds_count{stage=\"scheduled\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kpulse_pod_startup_duration_seconds_sum{stage=\"ready\"} 10.0"),
            "{text}"
        );
        m.deleted(&p);
        assert_eq!(m.tracked(), 0);
    }
}
