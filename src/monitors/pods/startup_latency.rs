//! `startup_latency`: how long new pods take to start, after kube-transition-metrics. For every
//! pod created after kpulse started it follows the pod's start-up ([`Record`]) until the pod is
//! Ready and every container is accounted for, and records:
//!
//! - `kpulse_pod_startup_duration_seconds{stage}`: creation → `scheduled`, `initialized`,
//!   `ready` (the conditions' `lastTransitionTime`);
//! - `kpulse_pod_stage_duration_seconds{transition}`: `created_scheduled`,
//!   `scheduled_initialized`, `initialized_ready`;
//! - `kpulse_container_startup_duration_seconds{container_type, transition}`: per container,
//!   init containers included, `waiting_running`, `running_ready`, `running_completed`;
//! - `kpulse_image_pull_duration_seconds{container_type}` and
//!   `kpulse_image_pulls_total{result}` from the kubelet's Pulling/Pulled events
//!   ([`super::image_pulls`]), "already present" counted apart;
//! - `kpulse_startup_tracked_pods`: the pods being followed.
//!
//! Every series is labelled `namespace` (unless `namespace_label` is off; at most
//! `max_namespaces`, further ones `_other`), `owner_kind` (a fixed set, see [`owner_kind`]) and,
//! with `node_pool_label`, `node_pool`. Each stage and transition of a pod is measured once: a
//! restart or a pod that turns Ready again is not counted twice; a pod deleted mid-way is
//! dropped with what it had. The canary's pods (ignored by every monitor) are followed by the
//! canary itself and labelled `owner_kind="canary"`.
//!
//! With `json_lines`, each update of a record is printed on stdout as one JSON line
//! (`{"pod_startup": {...}}`), like the seed's output. The slowest recent pods are in `/status`.
//!
//! Alert: `SlowStartup`, a pod that has not been Ready since its creation for `slow_after` (per
//! namespace or owner kind), resolved once it is Ready or gone. Pods that ended (Succeeded,
//! Failed) are not reported.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod;
use super::startup_record::{Measured, Record, seconds};
use crate::alert::{Alert, Severity, display_time};
use crate::config::Config;
use crate::config::monitors::StartupLatency as Settings;
use crate::metrics::{Metrics, StartupLabels};
use crate::monitors::node_readiness::NodeReadiness;
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "startup_latency";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |w| Arc::new(StartupLatency::new(
    w.started,
    w.metrics.clone(),
    w.nodes.clone()
)));

/// The `owner_kind` of the canary's pods.
pub const CANARY: &str = "canary";
/// The label value of namespaces and node pools beyond the limits.
pub const OTHER: &str = "_other";
/// Most node pools labelled.
pub const MAX_NODE_POOLS: usize = 50;

/// The `owner_kind` label of a pod: its controller's kind (`Deployment` for the pods of a
/// Deployment's ReplicaSet), `none` for a bare pod, `other` for kinds outside the built-in set
/// (so custom controllers cannot grow the series without bound).
pub fn owner_kind(pod: &Pod) -> &'static str {
    let Some(owner) = pod::owner(pod) else {
        return "none";
    };
    let kind = owner.split('/').next().unwrap_or_default();
    [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "ReplicationController",
        "Node",
    ]
    .into_iter()
    .find(|k| *k == kind)
    .unwrap_or("other")
}

#[derive(Debug, Default)]
struct Pods {
    /// Pods being followed, by UID.
    open: HashMap<String, Record>,
    /// Pods measured in full, kept until deleted so they are not measured again.
    finished: HashSet<String>,
    /// The namespaces and node pools labelled so far (the limits).
    namespaces: HashSet<String>,
    pools: HashSet<String>,
}

/// Where a label value goes: itself while fewer than `max` are known, else [`OTHER`].
fn capped(known: &mut HashSet<String>, value: &str, max: usize) -> String {
    if value.is_empty() || known.contains(value) {
        return value.to_string();
    }
    if known.len() >= max {
        return OTHER.to_string();
    }
    known.insert(value.to_string());
    value.to_string()
}

/// The labels of `record`'s series: its namespace (when labelled) and node pool, each capped.
fn labels(
    settings: &Settings,
    namespaces: &mut HashSet<String>,
    pools: &mut HashSet<String>,
    record: &Record,
    node_pool: &str,
) -> StartupLabels {
    StartupLabels {
        own: Vec::new(),
        namespace: if settings.namespace_label {
            capped(
                namespaces,
                &record.namespace,
                settings.max_namespaces as usize,
            )
        } else {
            String::new()
        },
        owner_kind: record.owner_kind.clone(),
        node_pool: capped(pools, node_pool, MAX_NODE_POOLS),
    }
}

/// The start-up records of new pods, shared by the Pod watch, the image pull events and the
/// canary.
#[derive(Debug, Default)]
pub struct Tracker(Mutex<Pods>);

impl Tracker {
    fn pods(&self) -> std::sync::MutexGuard<'_, Pods> {
        // A poisoned lock only means a writer panicked mid-update; the maps are still whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pods being followed.
    pub fn tracked(&self) -> usize {
        self.pods().open.len()
    }

    /// Whether the pod with this UID has been seen Ready.
    fn seen_ready(&self, uid: &str) -> bool {
        let pods = self.pods();
        pods.finished.contains(uid) || pods.open.get(uid).is_some_and(|r| r.ready.is_some())
    }

    /// Takes in a pod update seen at `now`, for a pod created at or after `started`, labelled
    /// `owner_kind` and `node_pool` ("" for none).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        metrics: &Metrics,
        settings: &Settings,
        started: Timestamp,
        pod: &Pod,
        owner_kind: &str,
        node_pool: &str,
        now: Timestamp,
    ) {
        let Some(created) = pod.metadata.creation_timestamp.as_ref().map(|t| t.0) else {
            return;
        };
        // Creation times have second precision: a pod created in kpulse's first second counts.
        if created.as_second() < started.as_second() {
            return;
        }
        let uid = pod.uid().unwrap_or_default();
        let mut pods = self.pods();
        if pods.finished.contains(&uid) {
            return;
        }
        if !pods.open.contains_key(&uid) {
            let Some(r) = Record::new(pod, owner_kind) else {
                return;
            };
            pods.open.insert(uid.clone(), r);
        }
        let Pods {
            open,
            finished,
            namespaces,
            pools,
        } = &mut *pods;
        let record = open.get_mut(&uid).expect("inserted above");
        let measured = record.update(pod, now);
        let labels = labels(settings, namespaces, pools, record, node_pool);
        for m in &measured {
            record_metric(metrics, &labels, m);
        }
        if measured.is_empty() {
            // Nothing new, but the wait for image pull events may be over.
            if record.complete(now) {
                open.remove(&uid);
                finished.insert(uid);
                metrics.startup_tracked_pods.set(open.len() as i64);
            }
            return;
        }
        if settings.json_lines {
            print_line(record);
        }
        if measured
            .iter()
            .any(|m| matches!(m, Measured::Stage { stage: "ready", .. }))
        {
            metrics.startup.pod_ready(record);
        }
        if record.complete(now) {
            open.remove(&uid);
            finished.insert(uid);
        }
        metrics.startup_tracked_pods.set(open.len() as i64);
    }

    /// Takes in an image pull of a followed pod's container: `Some(seconds)` pulled, `None`
    /// already present. Pods not followed (created before kpulse started) are left out.
    #[allow(clippy::too_many_arguments)]
    pub fn image_pull(
        &self,
        metrics: &Metrics,
        settings: &Settings,
        uid: &str,
        container: &str,
        init: bool,
        image: &str,
        pulled: Option<f64>,
        node_pool: impl FnOnce(&str) -> String,
        now: Timestamp,
    ) {
        let mut pods = self.pods();
        let Pods {
            open,
            namespaces,
            pools,
            finished,
        } = &mut *pods;
        let Some(record) = open.get_mut(uid) else {
            return;
        };
        if !record.image_pull(container, init, image, pulled) {
            return;
        }
        let pool = node_pool(&record.node);
        let labels = labels(settings, namespaces, pools, record, &pool);
        let container_type = if init { "init" } else { "regular" };
        let result = match pulled {
            Some(s) => {
                metrics
                    .image_pull_duration
                    .get_or_create(&labels.with(&[("container_type", container_type)]))
                    .observe(s);
                "pulled"
            }
            None => "already_present",
        };
        metrics
            .image_pulls
            .get_or_create(&labels.with(&[("result", result)]))
            .inc();
        if settings.json_lines {
            print_line(record);
        }
        if record.complete(now) {
            open.remove(uid);
            finished.insert(uid.to_string());
            metrics.startup_tracked_pods.set(open.len() as i64);
        }
    }

    /// Forgets a deleted pod.
    pub fn deleted(&self, metrics: &Metrics, uid: &str) {
        let mut pods = self.pods();
        pods.open.remove(uid);
        pods.finished.remove(uid);
        metrics.startup_tracked_pods.set(pods.open.len() as i64);
    }
}

fn record_metric(metrics: &Metrics, labels: &StartupLabels, m: &Measured) {
    match m {
        Measured::Stage {
            stage,
            from_creation,
            from_previous,
        } => {
            metrics
                .pod_startup_duration
                .get_or_create(&labels.with(&[("stage", stage)]))
                .observe(*from_creation);
            if let Some((from, s)) = from_previous {
                let transition = format!("{from}_{stage}");
                metrics
                    .pod_stage_duration
                    .get_or_create(&labels.with(&[("transition", &transition)]))
                    .observe(*s);
            }
        }
        Measured::Container {
            init,
            transition,
            seconds,
        } => {
            let container_type = if *init { "init" } else { "regular" };
            metrics
                .container_startup_duration
                .get_or_create(&labels.with(&[
                    ("container_type", container_type),
                    ("transition", transition),
                ]))
                .observe(*seconds);
        }
    }
}

/// One JSON line on stdout: `{"pod_startup": <record>}`.
fn print_line(record: &Record) {
    use std::io::Write as _;
    let line = serde_json::json!({ "pod_startup": record });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// The `slow_after` that applies to a pod of namespace `ns` and owner kind `kind`: the
/// namespace's, else the owner kind's, else the default. Zero: never.
pub fn threshold(settings: &Settings, ns: &str, kind: &str) -> std::time::Duration {
    settings
        .slow_after_namespaces
        .get(ns)
        .or_else(|| settings.slow_after_owner_kinds.get(kind))
        .unwrap_or(&settings.slow_after)
        .0
}

/// Whether the pod has been not Ready ever since its creation, as far as its status tells: its
/// Ready condition is not True and did not change after the pod was initialized (a pod that was
/// Ready and is no longer shows a later transition; `pod_not_ready` reports that).
fn never_ready(pod: &Pod) -> bool {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
    let Some(ready) = find("Ready") else {
        return true;
    };
    if ready.status == "True" {
        return false;
    }
    let time =
        |c: &k8s_openapi::api::core::v1::PodCondition| c.last_transition_time.as_ref().map(|t| t.0);
    match (
        find("Initialized").filter(|c| c.status == "True"),
        time(ready),
    ) {
        (Some(init), Some(ready_at)) => {
            time(init).is_none_or(|i| ready_at <= i + jiff::SignedDuration::from_secs(1))
        }
        _ => true,
    }
}

/// Where a pod that is not Ready stands, in the words of its status.
fn where_it_stands(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let scheduled = conditions.iter().find(|c| c.type_ == "PodScheduled");
    if scheduled.is_none_or(|c| c.status != "True") {
        let why = scheduled
            .and_then(|c| c.message.as_deref().or(c.reason.as_deref()))
            .unwrap_or("the scheduler has not placed it");
        return format!("not scheduled ({why})");
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("?");
    let waiting: Vec<String> = pod::containers(pod)
        .filter_map(|(c, init)| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let kind = if init { "init container" } else { "container" };
            Some(format!(
                "{kind} {} waiting ({})",
                c.name,
                w.reason.as_deref().unwrap_or("no reason given")
            ))
        })
        .collect();
    if !waiting.is_empty() {
        return format!("on node {node}, {}", waiting.join(", "));
    }
    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initialized {
        return format!("on node {node}, init containers still running");
    }
    let unready: Vec<&str> = pod::containers(pod)
        .filter(|(c, init)| !init && !c.ready)
        .map(|(c, _)| c.name.as_str())
        .collect();
    if unready.is_empty() {
        format!("on node {node}, containers started")
    } else {
        format!(
            "on node {node}, running but not ready: {}",
            unready.join(", ")
        )
    }
}

/// The SlowStartup finding for `pod` at `now`; `seen_ready` when kpulse saw it Ready before.
pub fn slow(settings: &Settings, pod: &Pod, seen_ready: bool, now: Timestamp) -> Option<Finding> {
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) || seen_ready || !never_ready(pod) {
        return None;
    }
    let ns = pod.namespace().unwrap_or_default();
    let wait = threshold(settings, &ns, owner_kind(pod));
    if wait.is_zero() {
        return None;
    }
    let wait = jiff::SignedDuration::try_from(wait).ok()?;
    if created + wait > now {
        return None;
    }
    let name = pod.name_any();
    let took = crate::config::types::HumanDuration(std::time::Duration::from_secs(seconds(
        created, now,
    ) as u64));
    let mut a = pod::alert(
        NAME,
        pod,
        "SlowStartup",
        Severity::Warning,
        format!("{name} slow to start"),
        now,
    )
    .message(format!(
        "Pod {ns}/{name}, created at {}, has not been Ready for {took} (threshold {}): {}.",
        display_time(created),
        crate::config::types::HumanDuration(wait.unsigned_abs()),
        where_it_stands(pod)
    ));
    a.first_seen = created;
    Some(Finding::firing(a))
}

/// The monitor on the Pod watch.
pub struct StartupLatency {
    /// Pods created before this are not measured.
    started: Timestamp,
    metrics: Arc<Metrics>,
    nodes: Arc<NodeReadiness>,
}

impl StartupLatency {
    pub fn new(started: Timestamp, metrics: Arc<Metrics>, nodes: Arc<NodeReadiness>) -> Self {
        StartupLatency {
            started,
            metrics,
            nodes,
        }
    }

    fn observe(&self, config: &Config, pod: &Pod, now: Timestamp) {
        let settings = &config.monitors.startup_latency;
        let pool = node_pool(&self.nodes, settings, pod_node(pod));
        self.metrics.startup_pods.observe(
            &self.metrics,
            settings,
            self.started,
            pod,
            owner_kind(pod),
            &pool,
            now,
        );
    }

    /// Pods being tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.metrics.startup_pods.tracked()
    }
}

fn pod_node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// The `node_pool` label of a pod on `node`: the value of `node_pool_label` on the node, "" when
/// not configured or not known.
pub fn node_pool(nodes: &NodeReadiness, settings: &Settings, node: &str) -> String {
    if settings.node_pool_label.is_empty() || node.is_empty() {
        return String::new();
    }
    nodes
        .label(node, &settings.node_pool_label)
        .unwrap_or_default()
}

impl ObjectMonitor<Pod> for StartupLatency {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.startup_latency.enabled
    }

    /// Timed while a pod that has never been Ready is still starting: it fires once it took
    /// longer than its threshold.
    fn timed(&self, _config: &Config, pod: &Pod, _now: Timestamp) -> bool {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        !matches!(phase, Some("Succeeded" | "Failed")) && never_ready(pod)
    }

    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding> {
        let seen_ready = self
            .metrics
            .startup_pods
            .seen_ready(&pod.uid().unwrap_or_default());
        slow(&config.monitors.startup_latency, pod, seen_ready, now)
            .into_iter()
            .collect()
    }

    fn changes(&self, config: &Config, _old: &Pod, new: &Pod, now: Timestamp) -> Vec<Alert> {
        self.observe(config, new, now);
        Vec::new()
    }

    fn created(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Alert> {
        self.observe(config, pod, now);
        Vec::new()
    }

    fn deleted(&self, pod: &Pod) {
        if let Some(uid) = pod.metadata.uid.as_ref() {
            self.metrics.startup_pods.deleted(&self.metrics, uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{at as ts, config};
    use serde_json::json;

    fn pod(uid: &str, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("api-{uid}"), "namespace": "shop", "uid": uid,
                "creationTimestamp": created,
                "labels": {"pod-template-hash": "7d9f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f",
                    "uid": "rs", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
            "status": status
        }))
        .unwrap()
    }

    fn cond(type_: &str, status: &str, at: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "lastTransitionTime": at})
    }

    fn monitor(metrics: &Arc<Metrics>) -> StartupLatency {
        StartupLatency::new(ts("2026-11-22T10:00:00Z"), metrics.clone(), Arc::default())
    }

    #[test]
    fn owner_kinds_are_a_bounded_set() {
        let p = pod("u1", "2026-11-22T10:00:10Z", json!({}));
        assert_eq!(owner_kind(&p), "Deployment");
        let mut bare = p.clone();
        bare.metadata.owner_references = None;
        assert_eq!(owner_kind(&bare), "none");
        let mut custom = p.clone();
        custom.metadata.owner_references.as_mut().unwrap()[0].kind = "Rollout".into();
        assert_eq!(owner_kind(&custom), "other");
    }

    #[test]
    fn the_monitor_records_every_series_with_its_labels_and_forgets_deleted_pods() {
        let metrics = Arc::new(Metrics::new());
        let m = monitor(&metrics);
        let c = config("monitors: {startup_latency: {enabled: true}}");
        let now = ts("2026-11-22T10:00:30Z");
        let created = "2026-11-22T10:00:10Z";
        let p = pod(
            "u1",
            created,
            json!({"conditions": [cond("PodScheduled", "True", "2026-11-22T10:00:12Z")]}),
        );
        assert!(m.created(&c, &p, now).is_empty());
        assert_eq!(m.tracked(), 1);
        let p = pod(
            "u1",
            created,
            json!({"conditions": [cond("PodScheduled", "True", "2026-11-22T10:00:12Z"),
                cond("Initialized", "True", "2026-11-22T10:00:13Z"),
                cond("Ready", "True", "2026-11-22T10:00:20Z"),
                cond("ContainersReady", "True", "2026-11-22T10:00:20Z")],
                "containerStatuses": [{"name": "app", "image": "img", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"running": {"startedAt": "2026-11-22T10:00:16Z"}}}]}),
        );
        // A minute on: past the wait for image pull events, which never came.
        let later = ts("2026-11-22T10:01:00Z");
        assert!(m.changes(&c, &p, &p, later).is_empty());
        let text = metrics.encode();
        let labels = r#"namespace="shop",owner_kind="Deployment""#;
        for line in [
            format!(r#"kpulse_pod_startup_duration_seconds_count{{stage="scheduled",{labels}}} 1"#),
            format!(r#"kpulse_pod_startup_duration_seconds_sum{{stage="ready",{labels}}} 10.0"#),
            format!(
                r#"kpulse_pod_stage_duration_seconds_sum{{transition="initialized_ready",{labels}}} 7.0"#
            ),
            format!(
                r#"kpulse_container_startup_duration_seconds_sum{{container_type="regular",transition="waiting_running",{labels}}} 3.0"#
            ),
            format!(
                r#"kpulse_container_startup_duration_seconds_sum{{container_type="regular",transition="running_ready",{labels}}} 4.0"#
            ),
            "kpulse_startup_tracked_pods 0".to_string(),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        // Whole-second buckets, none below one second.
        assert!(
            text.contains(&format!(
                r#"kpulse_pod_startup_duration_seconds_bucket{{le="1.0",stage="scheduled",{labels}}} 0"#
            )),
            "{text}"
        );
        assert_eq!(m.tracked(), 0, "measured in full: no longer followed");
        assert_eq!(metrics.startup.view().slowest_pods[0].ready_seconds, 10.0);
        // Seen again (a resync): not measured twice.
        m.changes(&c, &p, &p, now);
        assert!(metrics.encode().contains(&format!(
            r#"kpulse_pod_startup_duration_seconds_count{{stage="ready",{labels}}} 1"#
        )));
        m.deleted(&p);
        assert!(!metrics.startup_pods.seen_ready("u1"));
    }

    #[test]
    fn a_pod_deleted_mid_way_is_dropped_and_old_pods_are_never_followed() {
        let metrics = Arc::new(Metrics::new());
        let m = monitor(&metrics);
        let c = config("monitors: {startup_latency: {enabled: true}}");
        let now = ts("2026-11-22T10:00:30Z");
        let p = pod(
            "u2",
            "2026-11-22T10:00:10Z",
            json!({"conditions": [cond("PodScheduled", "True", "2026-11-22T10:00:12Z")]}),
        );
        m.created(&c, &p, now);
        assert_eq!(m.tracked(), 1);
        assert!(metrics.encode().contains("kpulse_startup_tracked_pods 1"));
        m.deleted(&p);
        assert_eq!(m.tracked(), 0);
        assert!(metrics.encode().contains("kpulse_startup_tracked_pods 0"));
        let old = pod(
            "u3",
            "2026-11-22T09:59:59Z",
            json!({"conditions": [cond("PodScheduled", "True", "2026-11-22T10:00:05Z")]}),
        );
        m.created(&c, &old, now);
        assert_eq!(m.tracked(), 0, "created before kpulse started");
    }

    #[test]
    fn namespaces_can_be_left_out_or_capped_and_node_pools_labelled() {
        let metrics = Metrics::new();
        let tracker = Tracker::default();
        let mut settings = Settings {
            max_namespaces: 1,
            ..Settings::default()
        };
        let scheduled =
            json!({"conditions": [cond("PodScheduled", "True", "2026-11-22T10:00:12Z")]});
        let mut other_ns = pod("b", "2026-11-22T10:00:10Z", scheduled.clone());
        other_ns.metadata.namespace = Some("billing".into());
        let started = ts("2026-11-22T10:00:00Z");
        let now = ts("2026-11-22T10:00:30Z");
        let a = pod("a", "2026-11-22T10:00:10Z", scheduled.clone());
        tracker.observe(&metrics, &settings, started, &a, "Deployment", "gpu", now);
        tracker.observe(&metrics, &settings, started, &other_ns, "Job", "", now);
        settings.namespace_label = false;
        let c = pod("c", "2026-11-22T10:00:10Z", scheduled);
        tracker.observe(&metrics, &settings, started, &c, "none", "", now);
        let text = metrics.encode();
        for line in [
            r#"kpulse_pod_startup_duration_seconds_count{stage="scheduled",namespace="shop",owner_kind="Deployment",node_pool="gpu"} 1"#,
            r#"kpulse_pod_startup_duration_seconds_count{stage="scheduled",namespace="_other",owner_kind="Job"} 1"#,
            r#"kpulse_pod_startup_duration_seconds_count{stage="scheduled",owner_kind="none"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn image_pulls_count_for_followed_pods_only_with_already_present_apart() {
        let metrics = Metrics::new();
        let tracker = Tracker::default();
        let settings = Settings::default();
        let started = ts("2026-11-22T10:00:00Z");
        let p = pod("a", "2026-11-22T10:00:10Z", json!({}));
        tracker.observe(&metrics, &settings, started, &p, "Job", "", started);
        let pool = |_: &str| String::new();
        let pulls: [(&str, &str, bool, &str, Option<f64>); 4] = [
            ("a", "app", false, "busybox:1", Some(1.5)),
            ("a", "app", false, "busybox:1", Some(1.5)),
            ("a", "init", true, "tool:1", None),
            ("old", "app", false, "x", Some(3.0)),
        ];
        for (uid, container, init, image, pulled) in pulls {
            tracker.image_pull(
                &metrics, &settings, uid, container, init, image, pulled, pool, started,
            );
        }
        let text = metrics.encode();
        for line in [
            r#"kpulse_image_pull_duration_seconds_count{container_type="regular",namespace="shop",owner_kind="Job"} 1"#,
            r#"kpulse_image_pull_duration_seconds_sum{container_type="regular",namespace="shop",owner_kind="Job"} 1.5"#,
            r#"kpulse_image_pulls_total{result="pulled",namespace="shop",owner_kind="Job"} 1"#,
            r#"kpulse_image_pulls_total{result="already_present",namespace="shop",owner_kind="Job"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains(r#"container_type="init""#),
            "no pull timed: {text}"
        );
    }

    fn slow_settings(extra: &str) -> Settings {
        config(&format!(
            "monitors: {{startup_latency: {{enabled: true{extra}}}}}"
        ))
        .monitors
        .startup_latency
    }

    #[test]
    fn a_pod_not_ready_since_creation_for_slow_after_fires_slow_startup() {
        let s = slow_settings(", slow_after: 5m");
        let created = "2026-11-22T10:00:00Z";
        let pulling = pod(
            "u1",
            created,
            json!({"phase": "Pending", "conditions": [
                cond("PodScheduled", "True", "2026-11-22T10:00:01Z"),
                cond("Initialized", "True", "2026-11-22T10:00:02Z"),
                cond("Ready", "False", "2026-11-22T10:00:02Z")],
                "containerStatuses": [{"name": "app", "image": "img", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(
            slow(&s, &pulling, false, ts("2026-11-22T10:04:59Z")),
            None,
            "before slow_after"
        );
        let f = slow(&s, &pulling, false, ts("2026-11-22T10:06:00Z")).unwrap();
        assert_eq!(
            f.alert.key.to_string(),
            "startup_latency/shop/Pod/api-u1/SlowStartup"
        );
        assert_eq!(f.alert.severity, Severity::Warning);
        assert_eq!(f.alert.title, "api-u1 slow to start");
        assert_eq!(
            f.alert.message,
            "Pod shop/api-u1, created at 2026-11-22T10:00:00Z, has not been Ready for 6m \
             (threshold 5m): on node n1, container app waiting (ContainerCreating)."
        );
        assert_eq!(f.alert.first_seen, ts(created));
        // Seen Ready before by kpulse, Ready now, or ended: nothing.
        assert_eq!(slow(&s, &pulling, true, ts("2026-11-22T10:06:00Z")), None);
        let mut done = pulling.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert_eq!(slow(&s, &done, false, ts("2026-11-22T10:06:00Z")), None);
        let unschedulable = pod(
            "u2",
            created,
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        );
        let f = slow(&s, &unschedulable, false, ts("2026-11-22T10:06:00Z")).unwrap();
        assert!(
            f.alert
                .message
                .ends_with("not scheduled (0/3 nodes are available)."),
            "{}",
            f.alert.message
        );
    }

    #[test]
    fn a_pod_that_was_ready_and_is_no_longer_is_not_slow_to_start() {
        let s = slow_settings(", slow_after: 5m");
        let p = pod(
            "u1",
            "2026-11-22T10:00:00Z",
            json!({"phase": "Running", "conditions": [
                cond("PodScheduled", "True", "2026-11-22T10:00:01Z"),
                cond("Initialized", "True", "2026-11-22T10:00:02Z"),
                cond("Ready", "False", "2026-11-22T10:30:00Z")]}),
        );
        assert_eq!(slow(&s, &p, false, ts("2026-11-22T11:00:00Z")), None);
    }

    #[test]
    fn thresholds_by_namespace_then_owner_kind_and_zero_is_never() {
        let s = slow_settings(
            ", slow_after: 10m, slow_after_namespaces: {shop: 1m}, \
             slow_after_owner_kinds: {Deployment: 2m, Job: 0s}",
        );
        assert_eq!(threshold(&s, "shop", "Job").as_secs(), 60);
        assert_eq!(threshold(&s, "web", "Deployment").as_secs(), 120);
        assert_eq!(threshold(&s, "web", "none").as_secs(), 600);
        let mut job = pod("u1", "2026-11-22T10:00:00Z", json!({"phase": "Pending"}));
        job.metadata.namespace = Some("batch".into());
        job.metadata.owner_references.as_mut().unwrap()[0].kind = "Job".into();
        assert_eq!(slow(&s, &job, false, ts("2026-11-23T10:00:00Z")), None);
    }
}
