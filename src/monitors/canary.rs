//! `canary`: proves the cluster can still start new pods. Every `interval` kpulse creates a small
//! pause pod in `namespace` and waits up to `timeout` for it to be scheduled (`schedule_only`) or
//! Running, then deletes it. A run that fails — the pod cannot be created (quota, admission), is
//! not scheduled or not Running in time, or fails — fires one critical alert, which resolves after
//! the next successful run.
//!
//! The canary pod carries `kpulse.io/ignore=true`, so no other monitor reports it. Pods left over
//! from an interrupted run (kpulse stopped mid-run) are deleted before the next one. With leader
//! election only the leader runs the canary. Runs are counted in `kpulse_canary_runs_total{result}`
//! and successful ones timed in `kpulse_canary_duration_seconds`.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertKey, Finding, Severity};
use crate::config::monitors::Canary;
use crate::engine::Scope;
use crate::metrics::ResultLabels;
use crate::pipeline::Pipeline;

pub const NAME: &str = "canary";
/// The label that marks canary pods (and selects leftovers).
pub const LABEL: &str = "app.kubernetes.io/name";
pub const LABEL_VALUE: &str = "kpulse-canary";

/// How one run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The pod reached the goal after this long.
    Success(Duration),
    /// The pod could not be created, or failed.
    Failure(String),
    /// The goal was not reached in time; what the pod showed last.
    Timeout(String),
}

impl Outcome {
    /// The `result` label of `kpulse_canary_runs_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Failure(_) => "failure",
            Outcome::Timeout(_) => "timeout",
        }
    }
}

/// The goal of a run: "scheduled" or "Running".
fn goal(settings: &Canary) -> &'static str {
    if settings.schedule_only {
        "scheduled"
    } else {
        "Running"
    }
}

/// The alert for a failed run, `None` for a successful one.
pub fn alert(outcome: &Outcome, settings: &Canary, now: Timestamp) -> Option<Alert> {
    let ns = &settings.namespace;
    let message = match outcome {
        Outcome::Success(_) => return None,
        Outcome::Failure(why) => format!("kpulse's canary pod in namespace {ns} failed: {why}"),
        Outcome::Timeout(why) => format!(
            "kpulse's canary pod in namespace {ns} was not {} within {}: {why}",
            goal(settings),
            settings.timeout
        ),
    };
    let title = if settings.schedule_only {
        "new pods cannot be scheduled"
    } else {
        "new pods cannot start"
    };
    let key = AlertKey::new(NAME, ns.clone(), "Pod", LABEL_VALUE, "CanaryFailed");
    Some(
        Alert::new(key, Severity::Critical, title, now)
            .message(format!(
                "{message}. New workloads (rollouts, scale-ups, Jobs) are likely to be stuck too."
            ))
            .field("Run", outcome.result()),
    )
}

/// Whether the pod has reached the goal (`Some(Ok)`), can no longer reach it (`Some(Err)` with
/// why), or is still on its way (`None`).
pub fn progress(pod: &Pod, schedule_only: bool) -> Option<Result<(), String>> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if matches!(phase, "Failed" | "Succeeded") {
        let why = status
            .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
            .unwrap_or_else(|| "no reason given".to_string());
        return Some(Err(format!("the pod ended in phase {phase} ({why})")));
    }
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True");
    let reached = if schedule_only {
        scheduled
    } else {
        phase == "Running"
    };
    reached.then_some(Ok(()))
}

/// Why the pod has not reached the goal, in the words Kubernetes used.
pub fn explain(pod: Option<&Pod>) -> String {
    let Some(pod) = pod else {
        return "the pod was deleted by someone else".to_string();
    };
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let scheduled = conditions.iter().find(|c| c.type_ == "PodScheduled");
    match scheduled {
        Some(c) if c.status == "True" => {}
        Some(c) => {
            let why = c
                .message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("no reason given");
            return format!("not scheduled: {why}");
        }
        None => return "the scheduler has not considered the pod".to_string(),
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("?");
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref());
    match waiting {
        Some(w) => format!(
            "scheduled on node {node}, container waiting: {}{}",
            w.reason.as_deref().unwrap_or("no reason given"),
            w.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        None => format!(
            "scheduled on node {node}, still in phase {} (is the node's kubelet running?)",
            status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
        ),
    }
}

/// The canary pod: a pause container that fits the `restricted` Pod Security Standard, on the
/// nodes `node_selector` names, tolerating the `tolerations` taint keys.
pub fn manifest(settings: &Canary) -> Pod {
    let tolerations: Vec<_> = settings
        .tolerations
        .iter()
        .map(|key| json!({"key": key, "operator": "Exists"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {
            "generateName": "kpulse-canary-",
            "labels": {
                LABEL: LABEL_VALUE,
                "app.kubernetes.io/managed-by": "kpulse",
                super::IGNORE: "true",
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "nodeSelector": settings.node_selector,
            "tolerations": tolerations,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65535,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": "pause",
                "image": settings.image,
                "resources": {
                    "requests": {"cpu": "10m", "memory": "16Mi"},
                    "limits": {"memory": "16Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .expect("the canary manifest is a valid Pod")
}

fn selector() -> ListParams {
    ListParams::default().labels(&format!("{LABEL}={LABEL_VALUE}"))
}

/// Deletes canary pods left by an interrupted run.
async fn delete_leftovers(pods: &Api<Pod>) {
    let Ok(list) = pods.list(&selector()).await else {
        return;
    };
    for pod in list.items {
        if let Some(name) = pod.metadata.name.as_deref() {
            delete(pods, name).await;
        }
    }
}

async fn delete(pods: &Api<Pod>, name: &str) {
    match pods
        .delete(name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(pod = name, error = %e, "could not delete the canary pod"),
    }
}

/// One canary run: create, wait, delete.
pub async fn run_once(pods: &Api<Pod>, settings: &Canary) -> Outcome {
    delete_leftovers(pods).await;
    let started = Instant::now();
    let created = match pods
        .create(&PostParams::default(), &manifest(settings))
        .await
    {
        Ok(p) => p,
        Err(kube::Error::Api(e)) => {
            return Outcome::Failure(format!("cannot create the pod: {}", e.message));
        }
        Err(e) => return Outcome::Failure(format!("cannot create the pod: {e}")),
    };
    let name = created.metadata.name.clone().unwrap_or_default();
    let schedule_only = settings.schedule_only;
    let done = await_condition(pods.clone(), &name, move |p: Option<&Pod>| {
        p.is_none_or(|p| progress(p, schedule_only).is_some())
    });
    let outcome = match tokio::time::timeout(settings.timeout.0, done).await {
        Ok(Ok(Some(pod))) => match progress(&pod, schedule_only) {
            Some(Ok(())) => Outcome::Success(started.elapsed()),
            Some(Err(why)) => Outcome::Failure(why),
            None => Outcome::Timeout(explain(Some(&pod))),
        },
        Ok(Ok(None)) => Outcome::Failure(explain(None)),
        Ok(Err(e)) => Outcome::Failure(format!("cannot follow the pod: {e}")),
        Err(_) => Outcome::Timeout(explain(pods.get_opt(&name).await.ok().flatten().as_ref())),
    };
    delete(pods, &name).await;
    outcome
}

/// Runs the canary every `interval` while it is enabled and this replica leads.
pub async fn run(client: kube::Client, pipeline: Pipeline, token: CancellationToken) {
    let mut clock = super::Periodic::default();
    while clock.tick(&token).await {
        let settings = pipeline.runtime().config.monitors.canary.clone();
        if !settings.enabled || !pipeline.is_leader() || !clock.due(settings.interval.0) {
            continue;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &settings.namespace);
        let outcome = tokio::select! {
            _ = token.cancelled() => {
                // Stopping mid-run: the next start deletes the pod if this cannot.
                let _ = tokio::time::timeout(Duration::from_secs(2), delete_leftovers(&pods)).await;
                return;
            }
            outcome = run_once(&pods, &settings) => outcome,
        };
        record(&pipeline, &settings, &outcome);
    }
}

/// Reports a run: metrics, the log, and the alert (fired, kept, or resolved).
pub fn record(pipeline: &Pipeline, settings: &Canary, outcome: &Outcome) {
    let metrics = pipeline.metrics();
    metrics
        .canary_runs
        .get_or_create(&ResultLabels::new(outcome.result()))
        .inc();
    match outcome {
        Outcome::Success(took) => {
            metrics.canary_duration.observe(took.as_secs_f64());
            tracing::debug!(namespace = %settings.namespace, seconds = took.as_secs_f64(), "canary run succeeded");
        }
        Outcome::Failure(why) | Outcome::Timeout(why) => {
            tracing::warn!(namespace = %settings.namespace, result = outcome.result(), reason = %why, "canary run failed");
        }
    }
    let firing: Vec<Finding> = alert(outcome, settings, pipeline.now())
        .into_iter()
        .map(Finding::firing)
        .collect();
    pipeline.reconcile(NAME, &Scope::All, firing);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(schedule_only: bool) -> Canary {
        Canary {
            enabled: true,
            namespace: "kpulse".into(),
            schedule_only,
            ..Canary::default()
        }
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "kpulse-canary-x", "namespace": "kpulse"},
            "spec": {"nodeName": "n1", "containers": [{"name": "pause"}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn progress_follows_the_goal() {
        let pending = pod(json!({"phase": "Pending"}));
        let scheduled = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}),
        );
        let running = pod(
            json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]}),
        );
        let failed = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(progress(&pending, true), None);
        assert_eq!(progress(&scheduled, true), Some(Ok(())));
        assert_eq!(progress(&scheduled, false), None);
        assert_eq!(progress(&running, false), Some(Ok(())));
        assert_eq!(
            progress(&failed, true),
            Some(Err("the pod ended in phase Failed (Evicted)".into()))
        );
    }

    #[test]
    fn a_timeout_is_explained_in_the_schedulers_or_kubelets_words() {
        let unschedulable = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu."}]}),
        );
        assert_eq!(
            explain(Some(&unschedulable)),
            "not scheduled: 0/3 nodes are available: 3 Insufficient cpu."
        );
        let pulling = pod(json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "pause", "image": "", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff",
                "message": "Back-off pulling image"}}}]}));
        assert_eq!(
            explain(Some(&pulling)),
            "scheduled on node n1, container waiting: ImagePullBackOff (Back-off pulling image)"
        );
        let silent = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}),
        );
        assert!(explain(Some(&silent)).contains("is the node's kubelet running?"));
        assert_eq!(explain(None), "the pod was deleted by someone else");
    }

    #[test]
    fn a_failed_run_fires_one_critical_alert_and_a_success_none() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let s = settings(true);
        assert_eq!(
            alert(&Outcome::Success(Duration::from_secs(1)), &s, now),
            None
        );
        let a = alert(
            &Outcome::Timeout("not scheduled: 0/3 nodes".into()),
            &s,
            now,
        )
        .unwrap();
        assert_eq!(
            a.key.to_string(),
            "canary/kpulse/Pod/kpulse-canary/CanaryFailed"
        );
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.title, "new pods cannot be scheduled");
        assert!(
            a.message
                .starts_with("kpulse's canary pod in namespace kpulse was not scheduled within 2m: not scheduled: 0/3 nodes."),
            "{}",
            a.message
        );
        let b = alert(
            &Outcome::Failure("cannot create the pod: exceeded quota".into()),
            &settings(false),
            now,
        )
        .unwrap();
        assert_eq!(b.key, a.key, "every failure is the same condition");
        assert_eq!(b.title, "new pods cannot start");
        assert_eq!(b.fields["Run"], "failure");
    }

    #[test]
    fn the_pod_is_ignored_by_other_monitors_and_restricted() {
        let p = manifest(&settings(true));
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()[super::super::IGNORE],
            "true"
        );
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.k8s.io/pause:3.10"));
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(spec.node_selector, Some(Default::default()));
        assert_eq!(spec.tolerations, Some(vec![]));
    }

    #[test]
    fn the_pod_goes_where_node_selector_and_tolerations_say() {
        let mut s = settings(false);
        s.node_selector = [("pool".to_string(), "gpu".to_string())].into();
        s.tolerations = vec!["nvidia.com/gpu".into(), "dedicated".into()];
        let spec = manifest(&s).spec.unwrap();
        assert_eq!(spec.node_selector, Some(s.node_selector.clone()));
        let tolerated: Vec<_> = spec
            .tolerations
            .unwrap()
            .into_iter()
            .map(|t| (t.key.unwrap(), t.operator.unwrap(), t.effect))
            .collect();
        assert_eq!(
            tolerated,
            [
                ("nvidia.com/gpu".to_string(), "Exists".to_string(), None),
                ("dedicated".to_string(), "Exists".to_string(), None),
            ]
        );
    }
}
