//! `job_failed`: Jobs whose `Failed` condition is True (BackoffLimitExceeded, DeadlineExceeded,
//! PodFailurePolicy, ...), and Jobs still running after `long_running`. Resolvable: a Job does not
//! un-fail, so a failed Job resolves when it is deleted (by hand, or by its CronJob's history
//! limit) or, for a CronJob's Job, when a newer Job of the same CronJob completes; a long-running
//! Job resolves when it finishes.

use std::sync::Arc;

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "job_failed";
crate::monitors::feeds::feed!(JOBS: Job, NAME, |_| Arc::new(JobFailed::default()));

/// The monitor, with an index fed by the Job watch itself: for each CronJob (namespace, uid), the
/// creation time of its newest completed Job.
#[derive(Default)]
pub struct JobFailed {
    newest_success: Mutex<HashMap<(String, String), Timestamp>>,
    /// `now` of the first evaluation: the first pass after start-up only fills the index.
    first_pass: Mutex<Option<Timestamp>>,
}

fn owner(job: &Job) -> Option<String> {
    job.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

/// The owning CronJob's (namespace, uid), if a CronJob controls this Job.
fn cronjob(job: &Job) -> Option<(String, String)> {
    job.owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "CronJob")
        .map(|o| (job.namespace().unwrap_or_default(), o.uid.clone()))
}

fn created(job: &Job) -> Option<Timestamp> {
    job.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Whether a failed Job is superseded: a Job of the same CronJob created after it has completed.
pub fn superseded(failed_created: Option<Timestamp>, newest_success: Option<Timestamp>) -> bool {
    matches!((failed_created, newest_success), (Some(f), Some(s)) if s > f)
}

impl ObjectMonitor<Job> for JobFailed {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.job_failed.enabled
    }
    fn firing(&self, config: &Config, job: &Job, now: Timestamp) -> Vec<Finding> {
        let (ns, name) = (job.namespace().unwrap_or_default(), job.name_any());
        let status = job.status.as_ref();
        let conditions: Vec<_> = status
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let failed = conditions
            .iter()
            .find(|c| c.type_ == "Failed" && c.status == "True");
        let complete = conditions
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        let finished = failed.is_some() || complete;
        let owner_cronjob = cronjob(job);
        if complete && let (Some(cj), Some(t)) = (owner_cronjob.clone(), created(job)) {
            let mut index = self
                .newest_success
                .lock()
                .expect("index lock is never poisoned");
            let newest = index.entry(cj).or_insert(t);
            *newest = (*newest).max(t);
        }
        // A full pass evaluates Jobs in no particular order, so on the first one a failed Job may
        // be seen before its CronJob's newer successful Job: it only keeps an alert restored from
        // state, and fires from the next pass (one tick later) if nothing superseded it.
        let first_pass = *self
            .first_pass
            .lock()
            .expect("first-pass lock is never poisoned")
            .get_or_insert(now)
            == now;
        let mut out = Vec::new();
        if let Some(c) = failed {
            let newest = owner_cronjob.as_ref().and_then(|cj| {
                let index = self
                    .newest_success
                    .lock()
                    .expect("index lock is never poisoned");
                index.get(cj).copied()
            });
            if superseded(created(job), newest) {
                return out;
            }
            let reason = c.reason.clone().unwrap_or_else(|| "Failed".into());
            let detail = c.message.clone().unwrap_or_default();
            let failures = status.and_then(|s| s.failed).unwrap_or(0);
            let mut a = Alert::new(
                AlertKey::new(NAME, &ns, "Job", &name, &reason),
                Severity::Warning,
                format!("Job {name} failed: {reason}"),
                now,
            )
            .message(
                format!("Job {ns}/{name} failed ({reason}): {detail}")
                    .trim_end_matches([':', ' '])
                    .to_string(),
            )
            .field("Failed pods", failures.to_string())
            .labels(job.labels().clone());
            a.owner = owner(job);
            a.first_seen = c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(now);
            out.push(if first_pass && owner_cronjob.is_some() {
                Finding::holding(a)
            } else {
                Finding::firing(a)
            });
        }
        let started = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        if let Some(started) = started
            && !finished
            && status.and_then(|s| s.active).unwrap_or(0) > 0
            && started + config.monitors.job_failed.long_running.signed() <= now
        {
            let mut a = Alert::new(
                AlertKey::new(NAME, &ns, "Job", &name, "LongRunning"),
                Severity::Warning,
                format!("Job {name} is still running"),
                now,
            )
            .message(format!(
                "Job {ns}/{name} has been running since {started}, longer than {}.",
                config.monitors.job_failed.long_running,
                started = display_time(started)
            ))
            .labels(job.labels().clone());
            a.owner = owner(job);
            a.first_seen = started;
            out.push(Finding::firing(a));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{self, at};
    use serde_json::json;

    fn named(name: &str, created: &str, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ops", "creationTimestamp": created,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": "u", "controller": true}]},
            "spec": {"template": {}},
            "status": status
        }))
        .unwrap()
    }

    fn job(status: serde_json::Value) -> Job {
        named("backup-1", "2026-11-22T11:00:00Z", status)
    }

    fn config() -> Config {
        testkit::config("monitors: {job_failed: {long_running: 1h}}")
    }

    /// A monitor past its first pass after start-up.
    fn warm() -> JobFailed {
        let m = JobFailed::default();
        m.firing(&config(), &job(json!({})), at("2026-11-22T09:00:00Z"));
        m
    }

    fn failed(reason: &str) -> serde_json::Value {
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-22T11:58:00Z"}]})
    }

    fn complete() -> serde_json::Value {
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    }

    #[test]
    fn decision_table() {
        let now = at("2026-11-22T12:00:00Z");
        let cases = [
            (
                "backoff limit",
                failed("BackoffLimitExceeded"),
                vec!["BackoffLimitExceeded"],
            ),
            (
                "deadline",
                json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}),
                vec!["DeadlineExceeded"],
            ),
            ("complete", complete(), vec![]),
            (
                "running 10m",
                json!({"active": 1, "startTime": "2026-11-22T11:50:00Z"}),
                vec![],
            ),
            (
                "running 2h",
                json!({"active": 1, "startTime": "2026-11-22T10:00:00Z"}),
                vec!["LongRunning"],
            ),
        ];
        for (name, status, want) in cases {
            let got: Vec<String> = warm()
                .firing(&config(), &job(status), now)
                .into_iter()
                .map(|f| f.alert.key.reason)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let f = warm().firing(&config(), &job(failed("BackoffLimitExceeded")), now);
        let a = &f[0].alert;
        assert_eq!(a.title, "Job backup-1 failed: BackoffLimitExceeded");
        assert_eq!(
            a.message,
            "Job ops/backup-1 failed (BackoffLimitExceeded): Job has reached the specified backoff limit"
        );
        assert_eq!(a.owner.as_deref(), Some("CronJob/backup"));
        assert_eq!(a.first_seen, at("2026-11-22T11:58:00Z"));
        assert!(a.resolvable && !f[0].hold_only);
    }

    #[test]
    fn a_newer_successful_run_of_the_same_cronjob_resolves_a_failure() {
        let (m, c) = (warm(), config());
        let old = job(failed("BackoffLimitExceeded"));
        assert_eq!(m.firing(&c, &old, at("2026-11-22T12:00:00Z")).len(), 1);
        // An older success says nothing about this failure.
        m.firing(
            &c,
            &named("backup-0", "2026-11-22T10:00:00Z", complete()),
            at("2026-11-22T12:01:00Z"),
        );
        assert_eq!(m.firing(&c, &old, at("2026-11-22T12:02:00Z")).len(), 1);
        // A run still going does not either.
        m.firing(
            &c,
            &named("backup-2", "2026-11-22T12:00:00Z", json!({"active": 1})),
            at("2026-11-22T12:03:00Z"),
        );
        assert_eq!(m.firing(&c, &old, at("2026-11-22T12:03:00Z")).len(), 1);
        // It completes: the failure is over.
        m.firing(
            &c,
            &named("backup-2", "2026-11-22T12:00:00Z", complete()),
            at("2026-11-22T12:04:00Z"),
        );
        assert!(m.firing(&c, &old, at("2026-11-22T12:04:00Z")).is_empty());
    }

    #[test]
    fn first_pass_keeps_a_restored_failure_without_starting_one() {
        let (m, c) = (JobFailed::default(), config());
        let t0 = at("2026-11-22T12:00:00Z");
        let f = m.firing(&c, &job(failed("BackoffLimitExceeded")), t0);
        assert!(
            f[0].hold_only,
            "first pass: the index may not know the newer run yet"
        );
        // The newer success comes later in the same pass; from the next pass on it counts.
        m.firing(
            &c,
            &named("backup-2", "2026-11-22T11:30:00Z", complete()),
            t0,
        );
        assert!(
            m.firing(
                &c,
                &job(failed("BackoffLimitExceeded")),
                at("2026-11-22T12:00:15Z")
            )
            .is_empty()
        );
        // A failed Job without a CronJob fires on the first pass: only deletion resolves it.
        let (m, mut lone) = (JobFailed::default(), job(failed("BackoffLimitExceeded")));
        lone.metadata.owner_references = None;
        assert!(!m.firing(&c, &lone, t0)[0].hold_only);
    }

    #[test]
    fn superseded_needs_a_newer_success() {
        let (f, s) = (
            Some(at("2026-11-22T11:00:00Z")),
            Some(at("2026-11-22T12:00:00Z")),
        );
        assert!(superseded(f, s));
        assert!(!superseded(s, f));
        assert!(!superseded(f, None));
        assert!(!superseded(None, s));
    }
}
