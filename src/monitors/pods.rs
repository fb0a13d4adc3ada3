//! The one Pod watch, shared by every pod monitor.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::filter::{Filter, ignored};
use super::{SyncGuard, TICK, pod_crashes::PodCrashes};
use crate::alert::Alert;
use crate::config::Config;
use crate::engine::Scope;
use crate::pipeline::Pipeline;

/// What a pod monitor found for one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub alert: Alert,
    /// The condition is clearing but not yet long enough: keep an active alert, start none.
    pub hold_only: bool,
}

impl Finding {
    pub fn firing(alert: Alert) -> Self {
        Finding {
            alert,
            hold_only: false,
        }
    }
    pub fn holding(alert: Alert) -> Self {
        Finding {
            alert,
            hold_only: true,
        }
    }
}

/// A monitor fed by the Pod watch. Both methods are pure.
pub trait PodMonitor: Send + Sync {
    fn name(&self) -> &'static str;
    fn enabled(&self, config: &Config) -> bool;
    /// Resolvable conditions of this pod at `now`.
    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding>;
    /// Point-in-time facts from the change `old` → `new`. Not called for the initial list.
    fn changes(&self, _config: &Config, _old: &Pod, _new: &Pod, _now: Timestamp) -> Vec<Alert> {
        Vec::new()
    }
}

/// Every pod monitor.
pub fn monitors() -> Vec<Arc<dyn PodMonitor>> {
    vec![Arc::new(PodCrashes)]
}

/// Keeps only what the pod monitors read: no managedFields, no annotations but the ignore
/// switch, and containers reduced to their names.
pub fn trim(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    let keep = pod.annotations().get(super::IGNORE).cloned();
    pod.annotations_mut().clear();
    if let Some(v) = keep {
        pod.annotations_mut().insert(super::IGNORE.to_string(), v);
    }
    if let Some(spec) = pod.spec.as_mut() {
        let names = |cs: &mut Vec<Container>| {
            for c in cs.iter_mut() {
                *c = Container {
                    name: std::mem::take(&mut c.name),
                    ..Container::default()
                };
            }
        };
        names(&mut spec.containers);
        if let Some(init) = spec.init_containers.as_mut() {
            names(init);
        }
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
        spec.ephemeral_containers = None;
    }
}

/// `Deployment/api` for a pod of ReplicaSet `api-7d9f8c`, else the direct owner.
pub fn owner(pod: &Pod) -> Option<String> {
    let o = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))?;
    if o.kind == "ReplicaSet"
        && let Some(hash) = pod.labels().get("pod-template-hash")
        && let Some(deploy) = o.name.strip_suffix(&format!("-{hash}"))
    {
        return Some(format!("Deployment/{deploy}"));
    }
    Some(format!("{}/{}", o.kind, o.name))
}

/// Whether a pod is out of scope: filtered namespace, ignore switch, or being deleted.
pub fn skipped(filter: &Filter, pod: &Pod) -> bool {
    !filter.namespace(&pod.namespace().unwrap_or_default())
        || ignored(
            pod.metadata.labels.as_ref(),
            pod.metadata.annotations.as_ref(),
        )
        || pod.metadata.deletion_timestamp.is_some()
}

type PodKey = (String, String);

fn key(pod: &Pod) -> PodKey {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Runs the Pod watch until cancelled.
pub async fn run(
    client: kube::Client,
    pipeline: Pipeline,
    mut guard: SyncGuard,
    token: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(trim);
    let mut stream = std::pin::pin!(stream);
    let monitors = monitors();
    let mut pods: HashMap<PodKey, Pod> = HashMap::new();
    let mut listing: Option<HashMap<PodKey, Pod>> = None;
    let mut synced = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick(), if synced => full_reconcile(&pipeline, &monitors, &pods),
            event = stream.next() => match event {
                None => return,
                Some(Err(e)) => tracing::warn!(resource = "pods", error = %e, "watch error; retrying with backoff"),
                Some(Ok(Event::Init)) => listing = Some(HashMap::new()),
                Some(Ok(Event::InitApply(p))) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(key(&p), p);
                    }
                }
                Some(Ok(Event::InitDone)) => {
                    pods = listing.take().unwrap_or_default();
                    full_reconcile(&pipeline, &monitors, &pods);
                    if !synced {
                        synced = true;
                        tracing::info!(resource = "pods", objects = pods.len(), "watch synced");
                        guard.synced();
                    }
                }
                Some(Ok(Event::Apply(p))) => {
                    let k = key(&p);
                    let old = pods.insert(k, p.clone());
                    evaluate(&pipeline, &monitors, old.as_ref(), &p);
                }
                Some(Ok(Event::Delete(p))) => {
                    pods.remove(&key(&p));
                    let scope = Scope::object(p.namespace().unwrap_or_default(), "Pod", p.name_any());
                    for m in &monitors {
                        pipeline.reconcile(m.name(), &scope, Vec::new());
                    }
                }
            }
        }
    }
}

/// Findings that should be reported: firing ones, and holding ones whose alert is still active.
fn keep(pipeline: &Pipeline, findings: Vec<Finding>) -> Vec<Alert> {
    pipeline.with_engine(|e| {
        findings
            .into_iter()
            .filter(|f| !f.hold_only || e.is_active(&f.alert.key))
            .map(|f| f.alert)
            .collect()
    })
}

fn evaluate(pipeline: &Pipeline, monitors: &[Arc<dyn PodMonitor>], old: Option<&Pod>, pod: &Pod) {
    let rt = pipeline.runtime();
    let config = &rt.config;
    let filter = Filter::new(&config.namespaces);
    let now = pipeline.now();
    let scope = Scope::object(pod.namespace().unwrap_or_default(), "Pod", pod.name_any());
    let skip = skipped(&filter, pod);
    for m in monitors {
        if !m.enabled(config) {
            continue;
        }
        let findings = if skip {
            Vec::new()
        } else {
            m.firing(config, pod, now)
        };
        pipeline.reconcile(m.name(), &scope, keep(pipeline, findings));
        if let (Some(old), false) = (old, skip) {
            for alert in m.changes(config, old, pod, now) {
                pipeline.submit(alert);
            }
        }
    }
}

fn full_reconcile(
    pipeline: &Pipeline,
    monitors: &[Arc<dyn PodMonitor>],
    pods: &HashMap<PodKey, Pod>,
) {
    let rt = pipeline.runtime();
    let config = &rt.config;
    let filter = Filter::new(&config.namespaces);
    let now = pipeline.now();
    for m in monitors {
        if !m.enabled(config) {
            continue;
        }
        let findings: Vec<Finding> = pods
            .values()
            .filter(|p| !skipped(&filter, p))
            .flat_map(|p| m.firing(config, p, now))
            .collect();
        pipeline.reconcile(m.name(), &Scope::All, keep(pipeline, findings));
    }
}

/// Labels of a pod, for routing rules.
pub fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.labels().clone()
}
