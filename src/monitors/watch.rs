//! One watch stream feeding several monitors of the same kind.
//!
//! The loop keeps the last seen state of each object (trimmed), and:
//! - after each complete list (start-up and every re-list) reconciles every monitor over all
//!   objects of its kind ([`Scope::Kind`]), so conditions that cleared while kpulse was away resolve once and
//!   ones that still hold stay silent (the engine's restored active set knows them);
//! - on each change re-evaluates that object ([`Scope::Object`]) and reports one-shot facts;
//! - on deletion resolves the object's alerts;
//! - every [`TICK`] re-evaluates everything, so "for 10m" conditions fire without a new event.
//!
//! A watch may also keep an [`Index`] current: a small view of its objects that monitors of
//! other watches read (which nodes are Ready, for the pod monitors).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::filter::{Namespaces, Visibility, ignored};
use super::{Context, SyncGuard, TICK};
use crate::alert::Alert;
use crate::config::Config;
use crate::engine::Scope;
use crate::metrics::ResourceLabels;
use crate::pipeline::Pipeline;

pub use crate::alert::Finding;

/// A monitor of objects of kind `K`. Both decision methods are pure.
pub trait ObjectMonitor<K>: Send + Sync {
    fn name(&self) -> &'static str;
    fn enabled(&self, config: &Config) -> bool;
    /// Resolvable conditions of this object at `now`.
    fn firing(&self, config: &Config, obj: &K, now: Timestamp) -> Vec<Finding>;
    /// Point-in-time facts from the change `old` → `new`. Not called for the initial list.
    fn changes(&self, _config: &Config, _old: &K, _new: &K, _now: Timestamp) -> Vec<Alert> {
        Vec::new()
    }
    /// Point-in-time facts from an object first seen after start-up (e.g. a new Event).
    fn created(&self, _config: &Config, _obj: &K, _now: Timestamp) -> Vec<Alert> {
        Vec::new()
    }
    /// The object was deleted: forget what the monitor keeps about it.
    fn deleted(&self, _obj: &K) {}
}

/// A view of a watch's objects kept for monitors of other watches. It sees every object, also
/// ignored ones and those outside the namespace filter: it describes the cluster, not alerts.
pub trait Index<K>: Send + Sync {
    /// Whether a monitor that reads the index is on: the watch runs while one is.
    fn enabled(&self, config: &Config) -> bool;
    /// A complete list (at start-up and after every re-list) replaces what the index knew.
    fn listed(&self, objects: &mut dyn Iterator<Item = &K>);
    /// An object was created or changed.
    fn applied(&self, obj: &K);
    /// An object was deleted.
    fn deleted(&self, obj: &K);
}

/// How one watch is set up.
pub struct WatchSpec<K> {
    /// Used in logs and metrics: `pods`, `deployments`, ...
    pub resource: &'static str,
    /// The `kind` in alert keys, for deletion scopes.
    pub kind: &'static str,
    pub api: Api<K>,
    pub config: watcher::Config,
    /// Drops what no monitor reads (managedFields, big annotations, specs).
    pub trim: fn(&mut K),
    pub monitors: Vec<Arc<dyn ObjectMonitor<K>>>,
    /// Kept current from every event, before the monitors run.
    pub index: Option<Arc<dyn Index<K>>>,
}

/// Whether an object is out of scope: filtered namespace, ignore switch, or being deleted.
pub fn skipped<K: Resource>(namespaces: &Namespaces, obj: &K) -> bool {
    let meta = obj.meta();
    let ns = meta.namespace.as_deref().unwrap_or("");
    (!ns.is_empty() && !namespaces.watched(ns))
        || ignored(meta.labels.as_ref(), meta.annotations.as_ref())
        || meta.deletion_timestamp.is_some()
}

/// Clears managedFields and every annotation except `kpulse.io/ignore`.
pub fn trim_meta<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k == super::IGNORE);
    }
}

type ObjKey = (String, String);

fn key<K: Resource>(obj: &K) -> ObjKey {
    (obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Runs one watch until cancelled.
pub async fn run<K>(spec: WatchSpec<K>, ctx: Context, mut guard: SyncGuard)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let WatchSpec {
        resource,
        kind,
        api,
        config,
        trim,
        monitors,
        index,
    } = spec;
    let Context {
        pipeline,
        namespaces,
        token,
        ..
    } = ctx;
    // A resource whose monitors (and index readers) are all switched off is not watched at all
    // (the chart grants no access to it then). It starts once a configuration reload switches
    // one on.
    let any_enabled = |p: &Pipeline| {
        let rt = p.runtime();
        monitors.iter().any(|m| m.enabled(&rt.config))
            || index.as_ref().is_some_and(|i| i.enabled(&rt.config))
    };
    if !any_enabled(&pipeline) {
        guard.synced();
        tracing::debug!(
            resource,
            "no enabled monitor uses this resource; not watching it"
        );
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = every.tick() => if any_enabled(&pipeline) { break },
            }
        }
        tracing::info!(
            resource,
            "a monitor using this resource was switched on; watching it"
        );
    }
    let stream = watcher::watcher(api, config).default_backoff().modify(trim);
    let mut stream = std::pin::pin!(stream);
    let mut objects: HashMap<ObjKey, K> = HashMap::new();
    let mut listing: Option<HashMap<ObjKey, K>> = None;
    let mut synced = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick(), if synced => full_reconcile(&pipeline, &namespaces, &monitors, &objects, resource, kind),
            event = stream.next() => match event {
                None => return,
                Some(Err(e)) => {
                    pipeline.metrics().watch_restarts.get_or_create(&ResourceLabels::new(resource)).inc();
                    tracing::warn!(resource, error = %e, "watch error; retrying with backoff");
                }
                Some(Ok(Event::Init)) => listing = Some(HashMap::new()),
                Some(Ok(Event::InitApply(o))) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(key(&o), o);
                    }
                }
                Some(Ok(Event::InitDone)) => {
                    objects = listing.take().unwrap_or_default();
                    if let Some(i) = &index {
                        i.listed(&mut objects.values());
                    }
                    full_reconcile(&pipeline, &namespaces, &monitors, &objects, resource, kind);
                    if !synced {
                        synced = true;
                        tracing::info!(resource, objects = objects.len(), "watch synced");
                        guard.synced();
                    }
                }
                Some(Ok(Event::Apply(o))) => {
                    pipeline.metrics().watch_events.get_or_create(&ResourceLabels::new(resource)).inc();
                    if let Some(i) = &index {
                        i.applied(&o);
                    }
                    let old = objects.insert(key(&o), o.clone());
                    evaluate(&pipeline, &namespaces, &monitors, old.as_ref(), &o, kind);
                }
                Some(Ok(Event::Delete(o))) => {
                    pipeline.metrics().watch_events.get_or_create(&ResourceLabels::new(resource)).inc();
                    objects.remove(&key(&o));
                    if let Some(i) = &index {
                        i.deleted(&o);
                    }
                    let scope = Scope::object(o.namespace().unwrap_or_default(), kind, o.name_any());
                    for m in &monitors {
                        m.deleted(&o);
                        pipeline.reconcile(m.name(), &scope, Vec::new());
                    }
                }
            }
        }
    }
}

fn evaluate<K: Resource>(
    pipeline: &Pipeline,
    visibility: &Visibility,
    monitors: &[Arc<dyn ObjectMonitor<K>>],
    old: Option<&K>,
    obj: &K,
    kind: &str,
) {
    let rt = pipeline.runtime();
    let config = &rt.config;
    let namespaces = visibility.now(&rt);
    let now = pipeline.now();
    let scope = Scope::object(obj.namespace().unwrap_or_default(), kind, obj.name_any());
    let skip = skipped(&namespaces, obj);
    for m in monitors {
        if !m.enabled(config) {
            continue;
        }
        let findings = if skip {
            Vec::new()
        } else {
            m.firing(config, obj, now)
        };
        pipeline.reconcile(m.name(), &scope, findings);
        if skip {
            continue;
        }
        let facts = match old {
            Some(old) => m.changes(config, old, obj, now),
            None => m.created(config, obj, now),
        };
        for alert in facts {
            pipeline.submit(alert);
        }
    }
}

fn full_reconcile<K: Resource>(
    pipeline: &Pipeline,
    visibility: &Visibility,
    monitors: &[Arc<dyn ObjectMonitor<K>>],
    objects: &HashMap<ObjKey, K>,
    resource: &'static str,
    kind: &str,
) {
    let rt = pipeline.runtime();
    let config = &rt.config;
    let namespaces = visibility.now(&rt);
    let now = pipeline.now();
    for m in monitors {
        if !m.enabled(config) {
            continue;
        }
        let findings: Vec<Finding> = objects
            .values()
            .filter(|o| !skipped(&namespaces, *o))
            .flat_map(|o| m.firing(config, o, now))
            .collect();
        // Only this kind: the monitor may also be fed by watches of other kinds.
        pipeline.reconcile(m.name(), &Scope::Kind(kind.to_string()), findings);
    }
    pipeline
        .metrics()
        .watch_evaluations
        .get_or_create(&ResourceLabels::new(resource))
        .inc();
}
