//! What `/status` (and `/status/startup`) shows of new pods and of the canary: the last runs of
//! each canary routine with their stages, and the slowest of the pods that recently became
//! Ready. Kept beside the metrics ([`crate::metrics::Metrics::startup`]), bounded: the last
//! [`RUNS_KEPT`] runs per routine, the last [`READY_KEPT`] Ready pods.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::Serialize;

use super::pods::startup_record::Record;

/// Runs kept per canary routine.
pub const RUNS_KEPT: usize = 10;
/// Pods that became Ready kept to pick the slowest from.
pub const READY_KEPT: usize = 200;
/// Slowest pods shown.
pub const SLOWEST_SHOWN: usize = 10;

/// One stage of a canary run and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTime {
    pub stage: &'static str,
    pub seconds: f64,
}

/// One canary run as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryRun {
    /// When the run started.
    pub at: Timestamp,
    /// `success`, `failure` or `timeout`.
    pub result: &'static str,
    /// The stage that failed, for a failed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The stages reached, in order, each timed from the end of the one before.
    pub stages: Vec<StageTime>,
}

/// A pod that became Ready, with how long it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadyPod {
    /// Seconds from creation to Ready.
    pub ready_seconds: f64,
    #[serde(flatten)]
    pub record: Record,
}

/// The part of `/status` about start-ups.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StartupView {
    /// The last runs of each canary routine, newest first.
    pub canary: BTreeMap<&'static str, Vec<CanaryRun>>,
    /// The slowest of the pods that recently became Ready, slowest first.
    pub slowest_pods: Vec<ReadyPod>,
}

#[derive(Debug, Default)]
struct Kept {
    runs: BTreeMap<&'static str, VecDeque<CanaryRun>>,
    ready: VecDeque<ReadyPod>,
}

/// The live start-up status.
#[derive(Debug, Default)]
pub struct StartupStatus(Mutex<Kept>);

impl StartupStatus {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A poisoned lock only means a writer panicked mid-update; the lists are still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a canary run of `routine`.
    pub fn canary_run(&self, routine: &'static str, run: CanaryRun) {
        let mut kept = self.kept();
        let runs = kept.runs.entry(routine).or_default();
        runs.push_front(run);
        runs.truncate(RUNS_KEPT);
    }

    /// Records a pod that became Ready.
    pub fn pod_ready(&self, record: &Record) {
        let Some(ready_seconds) = record.ready_seconds() else {
            return;
        };
        let mut kept = self.kept();
        kept.ready.push_front(ReadyPod {
            ready_seconds,
            record: record.clone(),
        });
        kept.ready.truncate(READY_KEPT);
    }

    pub fn view(&self) -> StartupView {
        let kept = self.kept();
        let mut slowest: Vec<ReadyPod> = kept.ready.iter().cloned().collect();
        slowest.sort_by(|a, b| b.ready_seconds.total_cmp(&a.ready_seconds));
        slowest.truncate(SLOWEST_SHOWN);
        StartupView {
            canary: kept
                .runs
                .iter()
                .map(|(routine, runs)| (*routine, runs.iter().cloned().collect()))
                .collect(),
            slowest_pods: slowest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn ready_pod(name: &str, ready_secs: u32) -> Record {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "uid": name,
                "creationTimestamp": "2026-11-22T10:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                "lastTransitionTime": format!("2026-11-22T10:{:02}:{:02}Z", ready_secs / 60, ready_secs % 60)}]}
        }))
        .unwrap();
        let mut r = Record::new(&pod, "none").unwrap();
        r.update(&pod, Timestamp::UNIX_EPOCH);
        r
    }

    #[test]
    fn the_slowest_recent_pods_and_the_last_runs_are_shown() {
        let s = StartupStatus::default();
        for (name, secs) in [("a", 5), ("b", 300), ("c", 40)] {
            s.pod_ready(&ready_pod(name, secs));
        }
        for i in 0..(SLOWEST_SHOWN + 5) {
            s.pod_ready(&ready_pod(&format!("quick-{i}"), 1));
        }
        let v = s.view();
        assert_eq!(v.slowest_pods.len(), SLOWEST_SHOWN);
        let names: Vec<&str> = v.slowest_pods[..3]
            .iter()
            .map(|p| p.record.pod.as_str())
            .collect();
        assert_eq!(names, ["b", "c", "a"]);
        assert_eq!(v.slowest_pods[0].ready_seconds, 300.0);

        let at: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        for i in 0..(RUNS_KEPT + 2) {
            s.canary_run(
                "pod",
                CanaryRun {
                    at: at + jiff::SignedDuration::from_secs(i as i64),
                    result: "success",
                    failed_stage: None,
                    reason: None,
                    stages: vec![StageTime {
                        stage: "scheduled",
                        seconds: 1.0,
                    }],
                },
            );
        }
        let v = s.view();
        assert_eq!(v.canary["pod"].len(), RUNS_KEPT);
        assert!(
            v.canary["pod"][0].at > v.canary["pod"][1].at,
            "newest first"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["canary"]["pod"][0]["stages"][0]["stage"], "scheduled");
        assert_eq!(json["slowest_pods"][0]["pod"], "b");
        assert_eq!(json["slowest_pods"][0]["namespace"], "shop");
    }
}
