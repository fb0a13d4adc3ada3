//! `canary`: proves the cluster can still start new pods, after khealth's routines. Every
//! `interval` kpulse runs its routines in `namespace`, one after the other:
//!
//! - `pod`: a small pause pod, expected scheduled (`schedule_only`) or Running within `timeout`,
//!   then deleted;
//! - `deployment` (with `deployment: true`): a Deployment `kpulse-canary` of `replicas` pods, so
//!   kube-controller-manager's path is exercised too (the ReplicaSet controller creates the pods,
//!   the garbage collector removes them), expected Ready (or scheduled) within `timeout`, then
//!   deleted, its pods expected gone within `timeout` again.
//!
//! Each run is measured per stage, `created → scheduled → running → ready → deleted` (the pod
//! routine has no `ready`; `schedule_only` stops at `scheduled`), each stage from the end of the
//! one before. A run that fails — a pod cannot be created (quota, admission), a stage is not
//! reached in time, a pod fails — fires one critical alert per routine naming the stage that
//! failed, which resolves after the routine's next successful run.
//!
//! The canary's objects carry `kpulse.io/ignore=true`, so no other monitor reports them; with
//! `startup_latency` on, their pods are measured in its histograms with `owner_kind="canary"`.
//! Objects left over from an interrupted run (kpulse stopped mid-run) are deleted before the
//! next one. With leader election only the leader runs the canary. Runs are counted in
//! `kpulse_canary_runs_total{routine, result}`, stages timed in
//! `kpulse_canary_stage_duration_seconds{routine, stage}` and successful runs in
//! `kpulse_canary_duration_seconds{routine}`; `/status` shows the last runs of each routine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, AlertKey, Finding, Severity};
use crate::config::monitors::Canary;
use crate::engine::Scope;
use crate::metrics::{RoutineLabels, RoutineResultLabels, RoutineStageLabels};
use crate::monitors::startup_status::{CanaryRun, StageTime};
use crate::pipeline::Pipeline;

pub const NAME: &str = "canary";
/// The label that marks canary objects (and selects leftovers).
pub const LABEL: &str = "app.kubernetes.io/name";
pub const LABEL_VALUE: &str = "kpulse-canary";
/// The label naming the routine of a canary pod.
pub const ROUTINE_LABEL: &str = "kpulse.io/canary-routine";
/// The label naming the run of a canary pod (a Deployment's pods of an earlier run may linger
/// while kube-controller-manager is away).
pub const RUN_LABEL: &str = "kpulse.io/canary-run";

/// A canary routine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routine {
    /// One bare pod.
    Pod,
    /// A Deployment of `replicas` pods.
    Deployment,
}

impl Routine {
    /// Its name in metrics, `/status` and logs.
    pub fn name(self) -> &'static str {
        match self {
            Routine::Pod => "pod",
            Routine::Deployment => "deployment",
        }
    }

    /// The kind of its alert's object.
    fn kind(self) -> &'static str {
        match self {
            Routine::Pod => "Pod",
            Routine::Deployment => "Deployment",
        }
    }
}

/// A stage of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The pods exist (for the Deployment routine: its ReplicaSet created them all).
    Created,
    /// Every pod is bound to a node.
    Scheduled,
    /// Every pod is Running.
    Running,
    /// Every pod is Ready (Deployment routine).
    Ready,
    /// Every pod is gone after the deletion.
    Deleted,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::Scheduled => "scheduled",
            Stage::Running => "running",
            Stage::Ready => "ready",
            Stage::Deleted => "deleted",
        }
    }
}

/// The last stage before deletion a routine must reach.
pub fn goal(routine: Routine, settings: &Canary) -> Stage {
    match (settings.schedule_only, routine) {
        (true, _) => Stage::Scheduled,
        (false, Routine::Pod) => Stage::Running,
        (false, Routine::Deployment) => Stage::Ready,
    }
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every stage was reached; from the start to the goal took this long.
    Success(Duration),
    /// A stage could not be reached (a pod could not be created, or failed).
    Failure(Stage, String),
    /// A stage was not reached in time; what the pods showed last.
    Timeout(Stage, String),
}

impl Outcome {
    /// The `result` label of `kpulse_canary_runs_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Failure(..) => "failure",
            Outcome::Timeout(..) => "timeout",
        }
    }

    /// The stage that failed.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Outcome::Success(_) => None,
            Outcome::Failure(s, _) | Outcome::Timeout(s, _) => Some(*s),
        }
    }
}

/// One run: how it ended, and the stages reached with the seconds each took.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub outcome: Outcome,
    pub stages: Vec<(Stage, f64)>,
}

/// What fails when a stage is not reached, for the alert's title.
fn title(stage: Stage) -> &'static str {
    match stage {
        Stage::Created => "new pods cannot be created",
        Stage::Scheduled => "new pods cannot be scheduled",
        Stage::Running => "new pods cannot start",
        Stage::Ready => "new pods do not become ready",
        Stage::Deleted => "deleted workloads are not cleaned up",
    }
}

/// The alert for a failed run of `routine`, `None` for a successful one.
pub fn alert(
    routine: Routine,
    outcome: &Outcome,
    settings: &Canary,
    now: Timestamp,
) -> Option<Alert> {
    let ns = &settings.namespace;
    let what = match routine {
        Routine::Pod => "pod".to_string(),
        Routine::Deployment => format!(
            "Deployment {LABEL_VALUE} ({} replica{})",
            settings.replicas,
            if settings.replicas == 1 { "" } else { "s" }
        ),
    };
    let (stage, message) = match outcome {
        Outcome::Success(_) => return None,
        Outcome::Failure(stage, why) => (
            *stage,
            format!(
                "kpulse's canary {what} in namespace {ns} failed at stage {}: {why}",
                stage.name()
            ),
        ),
        Outcome::Timeout(stage, why) => (
            *stage,
            format!(
                "kpulse's canary {what} in namespace {ns} did not reach stage {} within {}: {why}",
                stage.name(),
                settings.timeout
            ),
        ),
    };
    let consequence = if stage == Stage::Deleted {
        "Deleted workloads may keep their pods."
    } else {
        "New workloads (rollouts, scale-ups, Jobs) are likely to be stuck too."
    };
    let key = AlertKey::new(
        NAME,
        ns.clone(),
        routine.kind(),
        LABEL_VALUE,
        "CanaryFailed",
    );
    Some(
        Alert::new(key, Severity::Critical, title(stage), now)
            .message(format!("{message}. {consequence}"))
            .field("Routine", routine.name())
            .field("Stage", stage.name())
            .field("Run", outcome.result()),
    )
}

/// Whether a pod has ended (it can no longer reach any stage), with why.
fn ended(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if !matches!(phase, "Failed" | "Succeeded") {
        return None;
    }
    let why = status
        .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
        .unwrap_or_else(|| "no reason given".to_string());
    Some(format!("the pod ended in phase {phase} ({why})"))
}

/// The last stage before deletion this pod has reached (`Created` at least).
pub fn reached(pod: &Pod) -> Stage {
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    if running && is("Ready") {
        Stage::Ready
    } else if running {
        Stage::Running
    } else if is("PodScheduled") {
        Stage::Scheduled
    } else {
        Stage::Created
    }
}

/// Where a set of pods stands against `expected` pods at `goal`: the stage all of them have
/// reached (`None` while fewer than `expected` exist), or the failure of one.
pub fn progress(pods: &[&Pod], expected: usize) -> Result<Option<Stage>, String> {
    if let Some(why) = pods.iter().find_map(|p| ended(p)) {
        return Err(why);
    }
    if pods.len() < expected.max(1) {
        return Ok(None);
    }
    Ok(pods.iter().map(|p| reached(p)).min())
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

/// The labels of a canary pod of `routine` in run `run`.
fn pod_labels(routine: Routine, run: &str) -> serde_json::Value {
    json!({
        LABEL: LABEL_VALUE,
        "app.kubernetes.io/managed-by": "kpulse",
        super::IGNORE: "true",
        ROUTINE_LABEL: routine.name(),
        RUN_LABEL: run,
    })
}

/// The canary pod's spec: a pause container that fits the `restricted` Pod Security Standard,
/// on the nodes `node_selector` names, tolerating the `tolerations` taint keys.
fn pod_spec(settings: &Canary, restart_policy: &str) -> serde_json::Value {
    let tolerations: Vec<_> = settings
        .tolerations
        .iter()
        .map(|key| json!({"key": key, "operator": "Exists"}))
        .collect();
    json!({
        "restartPolicy": restart_policy,
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
    })
}

/// The pod routine's pod, of run `run`.
pub fn manifest(settings: &Canary, run: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"generateName": "kpulse-canary-", "labels": pod_labels(Routine::Pod, run)},
        "spec": pod_spec(settings, "Never"),
    }))
    .expect("the canary manifest is a valid Pod")
}

/// The Deployment routine's Deployment, of run `run`: `replicas` canary pods, replaced at once.
pub fn deployment(settings: &Canary, run: &str) -> Deployment {
    let labels = pod_labels(Routine::Deployment, run);
    serde_json::from_value(json!({
        "metadata": {
            "name": LABEL_VALUE,
            "labels": {LABEL: LABEL_VALUE, "app.kubernetes.io/managed-by": "kpulse", super::IGNORE: "true"},
        },
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": {LABEL: LABEL_VALUE, RUN_LABEL: run}},
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(settings, "Always")},
        },
    }))
    .expect("the canary manifest is a valid Deployment")
}

fn selector() -> ListParams {
    ListParams::default().labels(&format!("{LABEL}={LABEL_VALUE}"))
}

/// Deletes canary objects left by an interrupted run: Deployments first (their pods go with
/// them; only with the Deployment routine on, which the chart grants Deployment access for),
/// then pods.
async fn delete_leftovers(client: &kube::Client, settings: &Canary) {
    let namespace = &settings.namespace;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    if settings.deployment
        && let Ok(list) = deployments.list_metadata(&selector()).await
    {
        for d in list.items {
            if let Some(name) = d.metadata.name.as_deref() {
                delete(&deployments, name).await;
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list_metadata(&selector()).await {
        for pod in list.items {
            if let Some(name) = pod.metadata.name.as_deref() {
                delete(&pods, name).await;
            }
        }
    }
}

async fn delete<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // Background: the Deployment goes at once, the garbage collector takes its ReplicaSet and
    // pods (while it is away, the next run's create does not meet a Deployment being deleted).
    let params = DeleteParams::background().grace_period(0);
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(name, error = %e, "could not delete a canary object"),
    }
}

/// Follows a run's pods: the stages reached, with when.
struct Follow<'a> {
    pods: BTreeMap<String, Pod>,
    /// The pods of a list under way, which replaces `pods` once complete.
    listing: Option<BTreeMap<String, Pod>>,
    last: Instant,
    stages: Vec<(Stage, f64)>,
    expected: usize,
    on_pod: &'a (dyn Fn(&Pod, bool) + Sync),
}

impl Follow<'_> {
    /// Marks `stage` (and any stage before it not yet marked) reached now.
    fn reach(&mut self, stage: Stage) {
        let now = Instant::now();
        for s in [
            Stage::Created,
            Stage::Scheduled,
            Stage::Running,
            Stage::Ready,
            Stage::Deleted,
        ] {
            if s > stage {
                break;
            }
            if self.stages.iter().any(|(r, _)| *r == s) {
                continue;
            }
            self.stages
                .push((s, now.duration_since(self.last).as_secs_f64()));
            self.last = now;
        }
    }

    fn reached(&self) -> Option<Stage> {
        self.stages.last().map(|(s, _)| *s)
    }

    /// Takes in a watch event.
    fn event(&mut self, e: Event<Pod>) {
        let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
        match e {
            Event::Apply(p) => {
                (self.on_pod)(&p, false);
                if p.metadata.deletion_timestamp.is_none() {
                    self.pods.insert(name(&p), p);
                } else {
                    self.pods.remove(&name(&p));
                }
            }
            Event::Delete(p) => {
                (self.on_pod)(&p, true);
                self.pods.remove(&name(&p));
            }
            Event::Init => self.listing = Some(BTreeMap::new()),
            Event::InitApply(p) => {
                (self.on_pod)(&p, false);
                if p.metadata.deletion_timestamp.is_none()
                    && let Some(l) = self.listing.as_mut()
                {
                    l.insert(name(&p), p);
                }
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                for (n, gone) in &self.pods {
                    if !listed.contains_key(n) {
                        (self.on_pod)(gone, true);
                    }
                }
                self.pods = listed;
            }
        }
    }

    /// Why the next stage has not been reached, in the words Kubernetes used.
    fn explain(&self, routine: Routine, next: Stage) -> String {
        let have = self.pods.len();
        if next == Stage::Created && routine == Routine::Deployment {
            return if have == 0 {
                format!(
                    "no pod was created for Deployment {LABEL_VALUE} (is kube-controller-manager running?)"
                )
            } else {
                format!("{have} of {} pods created", self.expected)
            };
        }
        let behind = self.pods.values().find(|p| reached(p) < next);
        let why = explain(behind);
        if self.expected > 1 {
            let at = self.pods.values().filter(|p| reached(p) >= next).count();
            format!("{at} of {} pods {}; {why}", self.expected, next.name())
        } else {
            why
        }
    }
}

/// Watches the pods of `run` until `until` says stop, or the deadline.
async fn watch_pods(
    pods: &Api<Pod>,
    routine: Routine,
    run: &str,
    follow: &mut Follow<'_>,
    deadline: Instant,
    mut until: impl FnMut(&mut Follow<'_>) -> Option<Result<(), String>>,
) -> Option<Result<(), String>> {
    let config = watcher::Config::default().labels(&format!(
        "{LABEL}={LABEL_VALUE},{ROUTINE_LABEL}={},{RUN_LABEL}={run}",
        routine.name()
    ));
    let stream = watcher::watcher(pods.clone(), config);
    let mut stream = std::pin::pin!(stream);
    if let Some(done) = until(follow) {
        return Some(done);
    }
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
        match next {
            Err(_) => return None,
            Ok(None) => return Some(Err("the watch of the canary pods ended".to_string())),
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "canary pod watch error; retrying");
                continue;
            }
            Ok(Some(Ok(e))) => follow.event(e),
        }
        if let Some(done) = until(follow) {
            return Some(done);
        }
    }
}

/// One run of `routine`: create, follow to the goal, delete (and, for the Deployment, follow
/// the deletion). `on_pod` sees every update of the run's pods (and whether it is a deletion).
pub async fn run_once(
    client: &kube::Client,
    routine: Routine,
    settings: &Canary,
    on_pod: &(dyn Fn(&Pod, bool) + Sync),
) -> Run {
    let ns = &settings.namespace;
    delete_leftovers(client, settings).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let run = format!("{:x}", Timestamp::now().as_millisecond());
    let started = Instant::now();
    let expected = match routine {
        Routine::Pod => 1,
        Routine::Deployment => settings.replicas.max(1) as usize,
    };
    let mut follow = Follow {
        pods: BTreeMap::new(),
        listing: None,
        last: started,
        stages: Vec::new(),
        expected,
        on_pod,
    };
    let created = match routine {
        Routine::Pod => pods
            .create(&PostParams::default(), &manifest(settings, &run))
            .await
            .map(|p| p.metadata.name.unwrap_or_default()),
        Routine::Deployment => deployments
            .create(&PostParams::default(), &deployment(settings, &run))
            .await
            .map(|d| d.metadata.name.unwrap_or_default()),
    };
    let name = match created {
        Ok(name) => name,
        Err(e) => {
            let what = routine.kind().to_lowercase();
            let why = match e {
                kube::Error::Api(e) => e.message,
                e => e.to_string(),
            };
            let what = if routine == Routine::Pod {
                "pod".to_string()
            } else {
                what
            };
            return Run {
                outcome: Outcome::Failure(
                    Stage::Created,
                    format!("cannot create the {what}: {why}"),
                ),
                stages: Vec::new(),
            };
        }
    };
    if routine == Routine::Pod {
        // The pod exists once the API server has it.
        follow.reach(Stage::Created);
    }
    let goal = goal(routine, settings);
    let deadline = started + settings.timeout.0;
    let result = watch_pods(&pods, routine, &run, &mut follow, deadline, |f| {
        let current: Vec<&Pod> = f.pods.values().collect();
        match progress(&current, f.expected) {
            Err(why) => Some(Err(why)),
            Ok(Some(stage)) => {
                f.reach(stage.min(goal));
                (stage >= goal).then_some(Ok(()))
            }
            Ok(None) => None,
        }
    })
    .await;
    let next = |f: &Follow<'_>| match f.reached() {
        None => Stage::Created,
        Some(Stage::Created) => Stage::Scheduled,
        Some(Stage::Scheduled) if goal > Stage::Scheduled => Stage::Running,
        Some(Stage::Running) if goal > Stage::Running => Stage::Ready,
        Some(_) => Stage::Deleted,
    };
    let failed = match result {
        Some(Ok(())) => None,
        Some(Err(why)) => Some(Outcome::Failure(next(&follow), why)),
        None => Some(Outcome::Timeout(
            next(&follow),
            follow.explain(routine, next(&follow)),
        )),
    };
    let to_goal = started.elapsed();
    match routine {
        Routine::Pod => delete(&pods, &name).await,
        Routine::Deployment => delete(&deployments, &name).await,
    }
    if let Some(outcome) = failed {
        for p in follow.pods.values() {
            on_pod(p, true);
        }
        return Run {
            outcome,
            stages: follow.stages,
        };
    }
    // The pods must go: for the Deployment, through the garbage collector.
    let deadline = Instant::now() + settings.timeout.0;
    let gone = watch_pods(&pods, routine, &run, &mut follow, deadline, |f| {
        f.pods.is_empty().then(|| {
            f.reach(Stage::Deleted);
            Ok(())
        })
    })
    .await;
    let outcome = match gone {
        Some(Ok(())) => Outcome::Success(to_goal),
        Some(Err(why)) => Outcome::Failure(Stage::Deleted, why),
        None => {
            let left = follow.pods.len();
            let why = match routine {
                Routine::Pod => format!(
                    "the pod is still there {} after its deletion",
                    settings.timeout
                ),
                Routine::Deployment => format!(
                    "{left} pod{} still there {} after the Deployment was deleted (is kube-controller-manager's garbage collector running?)",
                    if left == 1 { " is" } else { "s are" },
                    settings.timeout
                ),
            };
            Outcome::Timeout(Stage::Deleted, why)
        }
    };
    for p in follow.pods.values() {
        on_pod(p, true);
    }
    Run {
        outcome,
        stages: follow.stages,
    }
}

/// The routines the settings ask for.
pub fn routines(settings: &Canary) -> Vec<Routine> {
    let mut r = vec![Routine::Pod];
    if settings.deployment {
        r.push(Routine::Deployment);
    }
    r
}

/// Runs the canary every `interval` while it is enabled and this replica leads.
pub async fn run(client: kube::Client, pipeline: Pipeline, token: CancellationToken) {
    let mut clock = super::Periodic::default();
    let started = pipeline.now();
    while clock.tick(&token).await {
        let settings = pipeline.runtime().config.monitors.canary.clone();
        if !settings.enabled || !pipeline.is_leader() || !clock.due(settings.interval.0) {
            continue;
        }
        let metrics = pipeline.metrics().clone();
        let watcher_pipeline = pipeline.clone();
        // With startup_latency on, the canary's pods are measured with owner_kind "canary".
        let on_pod = move |pod: &Pod, gone: bool| {
            let config = &watcher_pipeline.runtime().config;
            let startup = &config.monitors.startup_latency;
            let tracker = &metrics.startup_pods;
            if gone {
                tracker.deleted(&metrics, &pod.metadata.uid.clone().unwrap_or_default());
            } else if startup.enabled {
                let now = watcher_pipeline.now();
                tracker.observe(
                    &metrics,
                    startup,
                    started,
                    pod,
                    super::pods::startup_latency::CANARY,
                    "",
                    now,
                );
            }
        };
        let mut runs = Vec::new();
        for routine in routines(&settings) {
            let at = pipeline.now();
            let run = tokio::select! {
                _ = token.cancelled() => {
                    // Stopping mid-run: the next start deletes what this cannot.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        delete_leftovers(&client, &settings),
                    )
                    .await;
                    return;
                }
                run = run_once(&client, routine, &settings, &on_pod) => run,
            };
            runs.push((routine, at, run));
        }
        record(&pipeline, &settings, &runs);
    }
}

/// Reports runs: metrics, `/status`, the log, and the alerts (fired, kept, or resolved).
pub fn record(pipeline: &Pipeline, settings: &Canary, runs: &[(Routine, Timestamp, Run)]) {
    let metrics = pipeline.metrics();
    let mut firing = Vec::new();
    for (routine, at, run) in runs {
        let outcome = &run.outcome;
        let name = routine.name();
        metrics
            .canary_runs
            .get_or_create(&RoutineResultLabels {
                routine: name.into(),
                result: outcome.result().into(),
            })
            .inc();
        for (stage, seconds) in &run.stages {
            metrics
                .canary_stage_duration
                .get_or_create(&RoutineStageLabels {
                    routine: name.into(),
                    stage: stage.name().into(),
                })
                .observe(*seconds);
        }
        let reason = match outcome {
            Outcome::Success(took) => {
                metrics
                    .canary_duration
                    .get_or_create(&RoutineLabels {
                        routine: name.into(),
                    })
                    .observe(took.as_secs_f64());
                tracing::debug!(namespace = %settings.namespace, routine = name, seconds = took.as_secs_f64(), "canary run succeeded");
                None
            }
            Outcome::Failure(stage, why) | Outcome::Timeout(stage, why) => {
                tracing::warn!(namespace = %settings.namespace, routine = name, stage = stage.name(), result = outcome.result(), reason = %why, "canary run failed");
                Some(why.clone())
            }
        };
        metrics.startup.canary_run(
            name,
            CanaryRun {
                at: *at,
                result: outcome.result(),
                failed_stage: outcome.stage().map(Stage::name),
                reason,
                stages: run
                    .stages
                    .iter()
                    .map(|(s, secs)| StageTime {
                        stage: s.name(),
                        seconds: *secs,
                    })
                    .collect(),
            },
        );
        firing.extend(alert(*routine, outcome, settings, pipeline.now()).map(Finding::firing));
    }
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

    fn scheduled() -> serde_json::Value {
        json!({"type": "PodScheduled", "status": "True"})
    }

    #[test]
    fn each_pod_reaches_its_stage_and_a_set_the_stage_all_have() {
        let pending = pod(json!({"phase": "Pending"}));
        let bound = pod(json!({"phase": "Pending", "conditions": [scheduled()]}));
        let running = pod(json!({"phase": "Running", "conditions": [scheduled()]}));
        let ready = pod(json!({"phase": "Running", "conditions": [scheduled(),
            {"type": "Ready", "status": "True"}]}));
        let failed = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        for (p, stage) in [
            (&pending, Stage::Created),
            (&bound, Stage::Scheduled),
            (&running, Stage::Running),
            (&ready, Stage::Ready),
        ] {
            assert_eq!(reached(p), stage);
        }
        assert_eq!(progress(&[], 1), Ok(None), "no pod yet");
        assert_eq!(progress(&[&ready], 2), Ok(None), "one of two created");
        assert_eq!(progress(&[&ready, &bound], 2), Ok(Some(Stage::Scheduled)));
        assert_eq!(progress(&[&ready, &ready], 2), Ok(Some(Stage::Ready)));
        assert_eq!(
            progress(&[&ready, &failed], 2),
            Err("the pod ended in phase Failed (Evicted)".into())
        );
    }

    #[test]
    fn the_goal_follows_the_routine_and_schedule_only() {
        assert_eq!(goal(Routine::Pod, &settings(false)), Stage::Running);
        assert_eq!(goal(Routine::Deployment, &settings(false)), Stage::Ready);
        assert_eq!(goal(Routine::Deployment, &settings(true)), Stage::Scheduled);
        assert_eq!(routines(&settings(false)), [Routine::Pod]);
        let mut s = settings(false);
        s.deployment = true;
        assert_eq!(routines(&s), [Routine::Pod, Routine::Deployment]);
    }

    #[test]
    fn stages_are_timed_in_order_and_skipped_ones_count_zero() {
        let noop = |_: &Pod, _: bool| {};
        let mut f = Follow {
            pods: BTreeMap::new(),
            listing: None,
            last: Instant::now(),
            stages: Vec::new(),
            expected: 1,
            on_pod: &noop,
        };
        f.reach(Stage::Created);
        f.reach(Stage::Running);
        f.reach(Stage::Scheduled);
        let order: Vec<Stage> = f.stages.iter().map(|(s, _)| *s).collect();
        assert_eq!(order, [Stage::Created, Stage::Scheduled, Stage::Running]);
        assert_eq!(f.reached(), Some(Stage::Running));
        assert_eq!(f.stages[2].1, 0.0, "scheduled and running seen at once");
    }

    #[test]
    fn a_relist_drops_the_pods_that_are_gone() {
        let gone = std::sync::Mutex::new(Vec::new());
        let seen = |p: &Pod, deleted: bool| {
            if deleted {
                gone.lock().unwrap().push(p.metadata.name.clone().unwrap());
            }
        };
        let mut f = Follow {
            pods: BTreeMap::new(),
            listing: None,
            last: Instant::now(),
            stages: Vec::new(),
            expected: 1,
            on_pod: &seen,
        };
        f.event(Event::Apply(pod(json!({}))));
        assert_eq!(f.pods.len(), 1);
        f.event(Event::Init);
        f.event(Event::InitDone);
        assert!(f.pods.is_empty());
        assert_eq!(*gone.lock().unwrap(), ["kpulse-canary-x"]);
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
    fn a_deployment_without_pods_blames_the_controller_manager() {
        let noop = |_: &Pod, _: bool| {};
        let mut f = Follow {
            pods: BTreeMap::new(),
            listing: None,
            last: Instant::now(),
            stages: Vec::new(),
            expected: 2,
            on_pod: &noop,
        };
        assert_eq!(
            f.explain(Routine::Deployment, Stage::Created),
            "no pod was created for Deployment kpulse-canary (is kube-controller-manager running?)"
        );
        f.event(Event::Apply(pod(json!({"phase": "Pending"}))));
        assert_eq!(
            f.explain(Routine::Deployment, Stage::Created),
            "1 of 2 pods created"
        );
        assert_eq!(
            f.explain(Routine::Deployment, Stage::Scheduled),
            "0 of 2 pods scheduled; the scheduler has not considered the pod"
        );
    }

    #[test]
    fn a_failed_run_fires_one_critical_alert_per_routine_naming_the_stage() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let s = settings(true);
        assert_eq!(
            alert(
                Routine::Pod,
                &Outcome::Success(Duration::from_secs(1)),
                &s,
                now
            ),
            None
        );
        let a = alert(
            Routine::Pod,
            &Outcome::Timeout(Stage::Scheduled, "not scheduled: 0/3 nodes".into()),
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
        assert_eq!(
            a.message,
            "kpulse's canary pod in namespace kpulse did not reach stage scheduled within 2m: \
             not scheduled: 0/3 nodes. New workloads (rollouts, scale-ups, Jobs) are likely to be stuck too."
        );
        assert_eq!(a.fields["Stage"], "scheduled");
        let b = alert(
            Routine::Pod,
            &Outcome::Failure(
                Stage::Created,
                "cannot create the pod: exceeded quota".into(),
            ),
            &settings(false),
            now,
        )
        .unwrap();
        assert_eq!(
            b.key, a.key,
            "every failure of a routine is the same condition"
        );
        assert_eq!(b.title, "new pods cannot be created");
        assert_eq!(b.fields["Run"], "failure");
        let mut s = settings(false);
        s.replicas = 2;
        let d = alert(
            Routine::Deployment,
            &Outcome::Timeout(Stage::Created, "no pod was created".into()),
            &s,
            now,
        )
        .unwrap();
        assert_eq!(
            d.key.to_string(),
            "canary/kpulse/Deployment/kpulse-canary/CanaryFailed"
        );
        assert!(
            d.message.starts_with(
                "kpulse's canary Deployment kpulse-canary (2 replicas) in namespace kpulse did not reach stage created within 2m"
            ),
            "{}",
            d.message
        );
        assert_eq!(d.fields["Routine"], "deployment");
        let gc = alert(
            Routine::Deployment,
            &Outcome::Timeout(Stage::Deleted, "1 pod is still there".into()),
            &s,
            now,
        )
        .unwrap();
        assert_eq!(gc.title, "deleted workloads are not cleaned up");
    }

    #[test]
    fn the_pod_is_ignored_by_other_monitors_and_restricted() {
        let p = manifest(&settings(true), "r1");
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[super::super::IGNORE], "true");
        assert_eq!(labels[ROUTINE_LABEL], "pod");
        assert_eq!(labels[RUN_LABEL], "r1");
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
    fn the_deployment_runs_replicas_of_the_same_pod_and_is_ignored_too() {
        let mut s = settings(false);
        s.replicas = 3;
        s.image = "kpulse.local/pause:1".into();
        let d = deployment(&s, "r2");
        assert_eq!(d.metadata.name.as_deref(), Some("kpulse-canary"));
        assert_eq!(
            d.metadata.labels.as_ref().unwrap()[super::super::IGNORE],
            "true"
        );
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector.match_labels.unwrap()[RUN_LABEL],
            "r2",
            "an earlier run's pods are not counted"
        );
        let template = spec.template;
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels[ROUTINE_LABEL], "deployment");
        assert_eq!(labels[super::super::IGNORE], "true");
        let pod = template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some("kpulse.local/pause:1")
        );
    }

    #[test]
    fn the_pod_goes_where_node_selector_and_tolerations_say() {
        let mut s = settings(false);
        s.node_selector = [("pool".to_string(), "gpu".to_string())].into();
        s.tolerations = vec!["nvidia.com/gpu".into(), "dedicated".into()];
        let spec = manifest(&s, "r").spec.unwrap();
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
