//! `job_failed`: Jobs whose `Failed` condition is True (BackoffLimitExceeded, DeadlineExceeded,
//! PodFailurePolicy, ...), and Jobs still running after `long_running`. Resolvable: a failed Job
//! resolves when it is deleted (a Job does not un-fail; deleting it, or its CronJob's history
//! limit removing it, ends the incident); a long-running Job resolves when it finishes.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity};
use crate::config::Config;

pub const NAME: &str = "job_failed";

pub struct JobFailed;

fn owner(job: &Job) -> Option<String> {
    job.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
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
        let finished = failed.is_some()
            || conditions
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True");
        let mut out = Vec::new();
        if let Some(c) = failed {
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
            out.push(Finding::firing(a));
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
                config.monitors.job_failed.long_running
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
    use serde_json::json;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "backup-1", "namespace": "ops",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": "u", "controller": true}]},
            "spec": {"template": {}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn decision_table() {
        let c = crate::config::load("channels: {l: {type: log}}\nrouting: {default: [l]}\nmonitors: {job_failed: {long_running: 1h}}\n", &Default::default()).unwrap();
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let cases = [
            (
                "backoff limit",
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-22T11:58:00Z"}]}),
                vec!["BackoffLimitExceeded"],
            ),
            (
                "deadline",
                json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}),
                vec!["DeadlineExceeded"],
            ),
            (
                "complete",
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
                vec![],
            ),
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
            let got: Vec<String> = JobFailed
                .firing(&c, &job(status), now)
                .into_iter()
                .map(|f| f.alert.key.reason)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let f = JobFailed.firing(&c, &job(json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})), now);
        let a = &f[0].alert;
        assert_eq!(a.title, "Job backup-1 failed: BackoffLimitExceeded");
        assert_eq!(a.owner.as_deref(), Some("CronJob/backup"));
        assert!(a.resolvable);
    }
}
