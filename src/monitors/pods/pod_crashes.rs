//! `pod_crashes`: containers in CrashLoopBackOff or terminated by the OOM killer (resolvable:
//! they resolve once the container has run for `resolve_after`, or the pod is gone), and one-shot
//! notices for restarts after OOMKilled or an error exit.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

use super::pod;
use crate::alert::{Alert, Severity};
use crate::config::Config;
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "pod_crashes";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |_| Arc::new(PodCrashes));

pub struct PodCrashes;

/// Every container status of a pod, init containers first.
fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod::containers(pod).map(|(c, _)| c)
}

fn last_terminated(c: &ContainerStatus) -> Option<(&str, i32)> {
    let t = c.last_state.as_ref()?.terminated.as_ref()?;
    Some((t.reason.as_deref().unwrap_or(""), t.exit_code))
}

/// Whether the kubelet restarts a container of `pod` that exited with `exit_code`.
fn restarts(pod: &Pod, exit_code: i32) -> bool {
    match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
        Some("Never") => false,
        Some("OnFailure") => exit_code != 0,
        _ => true,
    }
}

fn base_alert(pod: &Pod, reason: &str, title: String, message: String, now: Timestamp) -> Alert {
    pod::alert(NAME, pod, reason, Severity::Warning, title, now).message(message)
}

impl ObjectMonitor<Pod> for PodCrashes {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pod_crashes.enabled
    }

    /// Timed while a container that crashed before runs again, until `resolve_after` has
    /// passed (the alert is held until then).
    fn timed(&self, config: &Config, pod: &Pod, now: Timestamp) -> bool {
        let hold = config.monitors.pod_crashes.resolve_after.signed();
        statuses(pod).any(|c| {
            c.restart_count > 0
                && last_terminated(c).is_some()
                && c.state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .is_some_and(|r| r.started_at.as_ref().is_none_or(|t| t.0 + hold > now))
        })
    }

    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding> {
        let settings = &config.monitors.pod_crashes;
        let pod_name = pod.name_any();
        let ns = pod.namespace().unwrap_or_default();
        let mut out: Vec<Finding> = Vec::new();
        for c in statuses(pod) {
            let state = c.state.as_ref();
            let last = last_terminated(c);
            let oom_before = last.is_some_and(|(r, _)| r == "OOMKilled");
            let looping = if oom_before && settings.oom {
                "OOMKilled"
            } else {
                "CrashLoopBackOff"
            };
            let (reason, hold) = if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
                if t.reason.as_deref() == Some("OOMKilled") && settings.oom {
                    ("OOMKilled", false)
                } else if restarts(pod, t.exit_code) && (t.exit_code != 0 || c.restart_count > 0) {
                    // Between a crash and the back-off: the kubelet reports the container
                    // terminated for a moment before it says CrashLoopBackOff again. Still the
                    // same crash loop: keep its alert (never fire one from this).
                    (looping, true)
                } else {
                    continue;
                }
            } else if state
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                == Some("CrashLoopBackOff")
            {
                (looping, false)
            } else if let Some(r) = state.and_then(|s| s.running.as_ref()) {
                // Running again after a crash, but not yet for `resolve_after`: keep the alert.
                let started = r.started_at.as_ref().map(|t| t.0).unwrap_or(now);
                if c.restart_count > 0
                    && last.is_some()
                    && started + settings.resolve_after.signed() > now
                {
                    (looping, true)
                } else {
                    continue;
                }
            } else {
                continue;
            };
            if out.iter().any(|f| f.alert.key.reason == reason) {
                continue; // one alert per pod and reason; the first container names it
            }
            let (title, message) = match reason {
                "OOMKilled" => (
                    format!("{pod_name}/{} OOMKilled", c.name),
                    format!(
                        "Container {} in pod {ns}/{pod_name} was killed for running out of memory (OOMKilled). Raise its memory limit or find the leak.",
                        c.name
                    ),
                ),
                _ => (
                    format!("{pod_name}/{} CrashLoopBackOff", c.name),
                    format!(
                        "Container {} in pod {ns}/{pod_name} keeps crashing and Kubernetes is backing off restarts.",
                        c.name
                    ),
                ),
            };
            let mut a = pod::with_container(base_alert(pod, reason, title, message, now), pod, c)
                .field("Container", c.name.clone())
                .field("Restarts", c.restart_count.to_string());
            if let Some((r, code)) = last {
                a = a.field("Last exit", format!("{r} (exit code {code})"));
            }
            out.push(if hold {
                Finding::holding(a)
            } else {
                Finding::firing(a)
            });
        }
        out
    }

    fn changes(&self, config: &Config, old: &Pod, new: &Pod, now: Timestamp) -> Vec<Alert> {
        let settings = &config.monitors.pod_crashes;
        let mut out = Vec::new();
        for c in statuses(new) {
            let before = statuses(old)
                .find(|o| o.name == c.name)
                .map(|o| o.restart_count)
                .unwrap_or(0);
            if c.restart_count <= before {
                continue;
            }
            let Some((reason, code)) = last_terminated(c) else {
                continue;
            };
            let pod = new.name_any();
            let ns = new.namespace().unwrap_or_default();
            let alert = if reason == "OOMKilled" && settings.oom {
                base_alert(
                    new,
                    "OOMKilled",
                    format!("{pod}/{} OOMKilled", c.name),
                    format!(
                        "Container {} in pod {ns}/{pod} was killed for running out of memory and restarted.",
                        c.name
                    ),
                    now,
                )
            } else if code != 0 && reason != "OOMKilled" && settings.error_exits {
                let why = if reason.is_empty() { "Error" } else { reason };
                base_alert(
                    new,
                    "ErrorExit",
                    format!("{pod}/{} exited with code {code}", c.name),
                    format!(
                        "Container {} in pod {ns}/{pod} exited with code {code} ({why}) and was restarted.",
                        c.name
                    ),
                    now,
                )
            } else {
                continue;
            };
            out.push(
                pod::with_container(alert, new, c)
                    .field("Container", c.name.clone())
                    .field("Restarts", c.restart_count.to_string())
                    .field("Last exit", format!("{reason} (exit code {code})"))
                    .one_shot(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::config;
    use serde_json::json;

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-7d9f8c-x1", "namespace": "checkout", "labels": {"pod-template-hash": "7d9f8c", "app": "api"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8c", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "server"}]},
            "status": {"phase": "Running", "containerStatuses": statuses}
        }))
        .unwrap()
    }

    fn cs(state: serde_json::Value, last: serde_json::Value, restarts: i32) -> serde_json::Value {
        json!([{"name": "server", "image": "i", "imageID": "", "ready": false, "restartCount": restarts, "state": state, "lastState": last}])
    }

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn decision_table() {
        let c = config("");
        let oom_last = json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}});
        let err_last = json!({"terminated": {"reason": "Error", "exitCode": 1}});
        type Case<'a> = (&'a str, serde_json::Value, Vec<(&'a str, bool)>);
        let cases: Vec<Case> = vec![
            (
                "healthy",
                cs(
                    json!({"running": {"startedAt": "2026-11-22T10:00:00Z"}}),
                    json!({}),
                    0,
                ),
                vec![],
            ),
            (
                "terminated OOMKilled",
                cs(
                    json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
                    json!({}),
                    0,
                ),
                vec![("OOMKilled", false)],
            ),
            (
                "crashloop after OOM",
                cs(
                    json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                    oom_last.clone(),
                    3,
                ),
                vec![("OOMKilled", false)],
            ),
            (
                "crashloop after error",
                cs(
                    json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                    err_last.clone(),
                    3,
                ),
                vec![("CrashLoopBackOff", false)],
            ),
            (
                "running again 30s after crash: hold",
                cs(
                    json!({"running": {"startedAt": "2026-11-22T11:59:30Z"}}),
                    err_last.clone(),
                    3,
                ),
                vec![("CrashLoopBackOff", true)],
            ),
            (
                "running 5m after crash: clear",
                cs(
                    json!({"running": {"startedAt": "2026-11-22T11:55:00Z"}}),
                    err_last.clone(),
                    3,
                ),
                vec![],
            ),
            (
                "terminated with an error between restarts, as the kubelet reports it: hold",
                cs(
                    json!({"terminated": {"reason": "Error", "exitCode": 1}}),
                    err_last.clone(),
                    3,
                ),
                vec![("CrashLoopBackOff", true)],
            ),
            (
                "terminated after an OOM kill, killed again otherwise: hold the OOM alert",
                cs(
                    json!({"terminated": {"reason": "Error", "exitCode": 2}}),
                    oom_last.clone(),
                    2,
                ),
                vec![("OOMKilled", true)],
            ),
            (
                "completed normally",
                cs(
                    json!({"terminated": {"reason": "Completed", "exitCode": 0}}),
                    json!({}),
                    0,
                ),
                vec![],
            ),
            (
                "image pull is another monitor's",
                cs(
                    json!({"waiting": {"reason": "ImagePullBackOff"}}),
                    json!({}),
                    0,
                ),
                vec![],
            ),
        ];
        for (name, statuses, want) in cases {
            let got: Vec<(String, bool)> = PodCrashes
                .firing(&c, &pod(statuses), now())
                .into_iter()
                .map(|f| (f.alert.key.reason, f.hold_only))
                .collect();
            let want: Vec<(String, bool)> =
                want.into_iter().map(|(r, h)| (r.to_string(), h)).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_container_the_kubelet_will_not_restart_holds_nothing() {
        let c = config("");
        let err_last = json!({"terminated": {"reason": "Error", "exitCode": 1}});
        for (policy, code, held) in [
            ("Never", 1, false),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("Always", 0, true),
        ] {
            let mut p = pod(cs(
                json!({"terminated": {"reason": "Error", "exitCode": code}}),
                err_last.clone(),
                2,
            ));
            p.spec.as_mut().unwrap().restart_policy = Some(policy.into());
            let got: Vec<_> = PodCrashes
                .firing(&c, &p, now())
                .into_iter()
                .map(|f| f.hold_only)
                .collect();
            assert_eq!(
                got,
                if held { vec![true] } else { vec![] },
                "{policy} {code}"
            );
        }
    }

    #[test]
    fn alert_reads_in_plain_words_and_names_the_owner() {
        let p = pod(cs(
            json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
            json!({}),
            0,
        ));
        let a = &PodCrashes.firing(&config(""), &p, now())[0].alert;
        assert_eq!(
            a.key.to_string(),
            "pod_crashes/checkout/Pod/api-7d9f8c-x1/OOMKilled"
        );
        assert_eq!(a.title, "api-7d9f8c-x1/server OOMKilled");
        assert_eq!(a.owner.as_deref(), Some("Deployment/api"));
        assert_eq!(a.node.as_deref(), Some("n1"));
        assert!(a.resolvable);
    }

    #[test]
    fn restarts_give_one_shot_notices() {
        let c = config("");
        let old = pod(cs(json!({"running": {}}), json!({}), 0));
        let oom = pod(cs(
            json!({"running": {}}),
            json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
            1,
        ));
        let err = pod(cs(
            json!({"running": {}}),
            json!({"terminated": {"reason": "Error", "exitCode": 2}}),
            1,
        ));
        let got = PodCrashes.changes(&c, &old, &oom, now());
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].key.reason.as_str(), got[0].resolvable),
            ("OOMKilled", false)
        );
        let got = PodCrashes.changes(&c, &old, &err, now());
        assert_eq!(got[0].key.reason, "ErrorExit");
        assert_eq!(got[0].title, "api-7d9f8c-x1/server exited with code 2");
        assert!(
            PodCrashes.changes(&c, &oom, &oom, now()).is_empty(),
            "no restart, no notice"
        );
        let off = config("monitors: {pod_crashes: {error_exits: false}}");
        assert!(PodCrashes.changes(&off, &old, &err, now()).is_empty());
    }
}
