//! One watch stream feeding several monitors of the same kind.
//!
//! The loop keeps the last seen state of each object (trimmed), and:
//! - after each complete list (start-up and every re-list) reconciles every monitor over all
//!   objects of its kind ([`Scope::Kind`]), so conditions that cleared while kpulse was away resolve once and
//!   ones that still hold stay silent (the engine's restored active set knows them);
//! - on each change re-evaluates that object ([`Scope::Object`]) and reports one-shot facts;
//! - on deletion resolves the object's alerts;
//! - every [`TICK`] re-evaluates the objects whose conditions can change with time alone
//!   ([`ObjectMonitor::timed`]), so "for 10m" conditions fire without a new event; after a
//!   configuration or namespace change, after a takeover and every 10 minutes, a tick
//!   re-evaluates everything.
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
use serde::Serialize;
use serde::de::DeserializeOwned;

mod packs;

use packs::Packs;

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
    /// Point-in-time facts from an object a [`Keep::Revision`] watch saw before, whose revision
    /// grew (an Event that happened again). Called instead of [`ObjectMonitor::changes`], as
    /// such a watch keeps no old object.
    fn repeated(&self, _config: &Config, _obj: &K, _now: Timestamp) -> Vec<Alert> {
        Vec::new()
    }
    /// The object was deleted: forget what the monitor keeps about it.
    fn deleted(&self, _obj: &K) {}
    /// Whether [`ObjectMonitor::firing`] for this object can change with time alone, without a
    /// new event: a condition that fires once it has held `for` a while, an alert held until a
    /// deadline, or one that reads another watch's view (a node's readiness). Each [`TICK`]
    /// re-evaluates only the objects for which an enabled monitor says so: at 10 000 healthy
    /// pods, that is none. The default re-evaluates every tick.
    fn timed(&self, _config: &Config, _obj: &K, _now: Timestamp) -> bool {
        true
    }
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

/// What a watch keeps of each object between events.
pub enum Keep<K> {
    /// The trimmed object, kept as compact JSON and read back for each evaluation: monitors
    /// judge state (`firing`) and changes from old to new. A typed `k8s-openapi` object takes
    /// its full size (every absent field has its place) inline in the store's table; its JSON is
    /// a fraction of that.
    Packed,
    /// Only a number that grows when the object reports something new (an Event's count).
    /// For objects that are facts, not state: their monitors fire nothing (`firing` is never
    /// called) and judge a change by [`ObjectMonitor::repeated`]. A few bytes per object
    /// instead of the object.
    Revision(fn(&K) -> u32),
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
    pub keep: Keep<K>,
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

/// Runs one watch until cancelled.
pub async fn run<K>(spec: WatchSpec<K>, ctx: Context, mut guard: SyncGuard)
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
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
        keep,
    } = spec;
    let Context {
        pipeline,
        namespaces,
        token,
        streaming,
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
    // The initial state comes from the API server's watch cache (as client-go informers list),
    // not from etcd: faster to ready, and no load on etcd at start-up or a re-list; streamed
    // object by object where the API server serves that (see `lists`).
    let config = if streaming {
        config.streaming_lists()
    } else {
        config.any_semantic()
    };
    let stream = watcher::watcher(api, config).default_backoff().modify(trim);
    let mut stream = std::pin::pin!(stream);
    let mut store = Store::new(keep);
    let mut synced = false;
    // What the last full re-evaluation judged under; a tick repeats it when that changed.
    let mut judged: Option<Judged> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick(), if synced && store.holds_objects() => {
                match judged.as_mut() {
                    Some(j) if j.current(&pipeline, &namespaces) => {
                        re_evaluate(&pipeline, &namespaces, &monitors, &mut store, resource, kind, true);
                        j.ticks += 1;
                    }
                    _ => judged = Some(re_evaluate(&pipeline, &namespaces, &monitors, &mut store, resource, kind, false)),
                }
            }
            event = stream.next() => match event {
                None => return,
                Some(Err(e)) => {
                    pipeline.metrics().watch_restarts.get_or_create(&ResourceLabels::new(resource)).inc();
                    tracing::warn!(resource, error = %e, "watch error; retrying with backoff");
                }
                Some(Ok(Event::Init)) => store.relist(),
                Some(Ok(Event::InitApply(o))) => store.listed(o),
                Some(Ok(Event::InitDone)) => {
                    store.list_done();
                    if let Some(i) = &index {
                        i.listed(&mut store.objects().iter());
                    }
                    judged = Some(re_evaluate(&pipeline, &namespaces, &monitors, &mut store, resource, kind, false));
                    crate::memory::release();
                    if !synced {
                        synced = true;
                        tracing::info!(resource, objects = store.len(), kept_bytes = store.bytes(), "watch synced");
                        guard.synced();
                    }
                }
                Some(Ok(Event::Apply(o))) => {
                    pipeline.metrics().watch_events.get_or_create(&ResourceLabels::new(resource)).inc();
                    if let Some(i) = &index {
                        i.applied(&o);
                    }
                    if store.holds_objects() {
                        let old = store.apply(&o);
                        let timed = evaluate(&pipeline, &namespaces, &monitors, old.as_ref(), &o, kind);
                        store.set_timed(&o, timed);
                    } else if let Some(fact) = store.revised(&o) {
                        report(&pipeline, &namespaces, &monitors, &o, fact);
                    }
                }
                Some(Ok(Event::Delete(o))) => {
                    pipeline.metrics().watch_events.get_or_create(&ResourceLabels::new(resource)).inc();
                    store.remove(&o);
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

/// What a watch holds between events, keyed by a 64-bit hash of namespace and name. A re-list
/// updates it in place: what the new list carries gets the new generation, and what it did not
/// carry is dropped when the list is complete, so a re-list never holds two copies of an object
/// (the packed bytes of the previous list serve until the new list is complete, see [`Packs`]).
enum Store<K> {
    Packed {
        packs: Packs,
        generation: u32,
    },
    Revisions {
        seen: HashMap<u64, (u32, u32)>,
        revision: fn(&K) -> u32,
        generation: u32,
    },
}

impl<K: Resource + Clone + Serialize + DeserializeOwned> Store<K> {
    fn new(keep: Keep<K>) -> Self {
        match keep {
            Keep::Packed => Store::Packed {
                packs: Packs::default(),
                generation: 0,
            },
            Keep::Revision(revision) => Store::Revisions {
                seen: HashMap::new(),
                revision,
                generation: 0,
            },
        }
    }

    /// Whether monitors judge the objects' state (and so re-evaluate them every tick).
    fn holds_objects(&self) -> bool {
        !matches!(self, Store::Revisions { .. })
    }

    fn len(&self) -> usize {
        match self {
            Store::Packed { packs, .. } => packs.len(),
            Store::Revisions { seen, .. } => seen.len(),
        }
    }

    /// The bytes of the packed objects (not counting the table): for the log of a sync.
    fn bytes(&self) -> usize {
        match self {
            Store::Packed { packs, .. } => packs.bytes(),
            Store::Revisions { seen, .. } => seen.len() * std::mem::size_of::<(u32, u32)>(),
        }
    }

    /// A (re-)list begins.
    fn relist(&mut self) {
        match self {
            Store::Packed { generation, .. } | Store::Revisions { generation, .. } => {
                *generation = generation.wrapping_add(1)
            }
        }
    }

    /// An object of the list.
    fn listed(&mut self, o: K) {
        let key = hashed(&o);
        match self {
            Store::Packed { packs, generation } => packs.listed(key, *generation, |buf| {
                serde_json::to_writer(buf, &o).expect("a Kubernetes object serializes")
            }),
            Store::Revisions {
                seen,
                revision,
                generation,
            } => {
                seen.insert(key, (revision(&o), *generation));
            }
        }
    }

    /// The list is complete: what it did not carry is gone.
    fn list_done(&mut self) {
        match self {
            Store::Packed { packs, generation } => packs.list_done(*generation),
            Store::Revisions {
                seen, generation, ..
            } => {
                seen.retain(|_, (_, g)| *g == *generation);
                seen.shrink_to_fit();
            }
        }
    }

    /// Keeps `o` (created or changed); returns what was kept of it before.
    fn apply(&mut self, o: &K) -> Option<K> {
        let key = hashed(o);
        match self {
            Store::Packed { packs, generation } => packs
                .insert(key, pack(o), *generation)
                .and_then(|before| unpack(&before)),
            Store::Revisions { .. } => None,
        }
    }

    /// Every object kept, read back (none for a revision watch): for an index, after a list.
    fn objects(&self) -> Vec<K> {
        match self {
            Store::Packed { packs, .. } => packs.entries().filter_map(|(_, b)| unpack(b)).collect(),
            Store::Revisions { .. } => Vec::new(),
        }
    }

    /// Records whether a tick must re-evaluate `o` (see [`ObjectMonitor::timed`]).
    fn set_timed(&mut self, o: &K, timed: bool) {
        if let Store::Packed { packs, .. } = self
            && let Some(e) = packs.entry_mut(hashed(o))
        {
            e.timed = timed;
        }
    }

    /// Calls `f` with every object kept (`only_timed`: those a tick must re-evaluate) and keeps
    /// what it returns as the object's new `timed` (none for a revision watch).
    fn each(&mut self, only_timed: bool, mut f: impl FnMut(&K) -> bool) {
        if let Store::Packed { packs, .. } = self {
            packs.each(|bytes, timed| {
                if (*timed || !only_timed)
                    && let Some(o) = unpack::<K>(bytes)
                {
                    *timed = f(&o);
                }
            });
        }
    }

    /// How many objects a tick re-evaluates now.
    #[cfg(test)]
    fn timed(&self) -> usize {
        match self {
            Store::Packed { packs, .. } => packs.entries().filter(|(e, _)| e.timed).count(),
            Store::Revisions { .. } => 0,
        }
    }

    /// A revision watch saw `o` created or changed: whether that is a new object or a repeat
    /// (its revision grew); `None` for any other change.
    fn revised(&mut self, o: &K) -> Option<Fact> {
        let Store::Revisions {
            seen,
            revision,
            generation,
        } = self
        else {
            return None;
        };
        let rev = revision(o);
        match seen.insert(hashed(o), (rev, *generation)) {
            None => Some(Fact::Created),
            Some((before, _)) if rev > before => Some(Fact::Repeated),
            Some(_) => None,
        }
    }

    fn remove(&mut self, o: &K) {
        let key = hashed(o);
        match self {
            Store::Packed { packs, .. } => packs.remove(key),
            Store::Revisions { seen, .. } => {
                seen.remove(&key);
            }
        }
    }
}

/// A trimmed object as compact JSON: a fraction of the memory of the typed object, whose every
/// absent field still takes its place.
fn pack<K: Serialize>(o: &K) -> Box<[u8]> {
    serde_json::to_vec(o)
        .expect("a Kubernetes object serializes")
        .into_boxed_slice()
}

fn unpack<K: DeserializeOwned>(bytes: &[u8]) -> Option<K> {
    match serde_json::from_slice(bytes) {
        Ok(o) => Some(o),
        Err(e) => {
            // It was serialized by `pack` from the same type: unreachable in practice.
            tracing::error!(error = %e, "cannot read back a kept object; skipping it");
            None
        }
    }
}

/// A store's key: a 64-bit hash of namespace and name (no strings kept; a collision among the
/// objects of one watch is about 1 in 10^11 at 100 000 objects).
fn hashed<K: Resource>(o: &K) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    let meta = o.meta();
    meta.namespace.hash(&mut h);
    meta.name.hash(&mut h);
    h.finish()
}

#[derive(Debug, PartialEq)]
enum Fact {
    Created,
    Repeated,
}

/// Reports the point-in-time facts of an object a revision watch saw appear or grow.
fn report<K: Resource>(
    pipeline: &Pipeline,
    visibility: &Visibility,
    monitors: &[Arc<dyn ObjectMonitor<K>>],
    obj: &K,
    fact: Fact,
) {
    let rt = pipeline.runtime();
    let config = &rt.config;
    if skipped(&visibility.now(&rt), obj) {
        return;
    }
    let now = pipeline.now();
    for m in monitors.iter().filter(|m| m.enabled(config)) {
        let facts = match fact {
            Fact::Created => m.created(config, obj, now),
            Fact::Repeated => m.repeated(config, obj, now),
        };
        for alert in facts {
            pipeline.submit(alert);
        }
    }
}

/// Judges one created or changed object; returns whether a tick must re-evaluate it.
fn evaluate<K: Resource>(
    pipeline: &Pipeline,
    visibility: &Visibility,
    monitors: &[Arc<dyn ObjectMonitor<K>>],
    old: Option<&K>,
    obj: &K,
    kind: &str,
) -> bool {
    let rt = pipeline.runtime();
    let config = &rt.config;
    let namespaces = visibility.now(&rt);
    let now = pipeline.now();
    let scope = Scope::object(obj.namespace().unwrap_or_default(), kind, obj.name_any());
    let skip = skipped(&namespaces, obj);
    let mut timed = false;
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
        timed |= m.timed(config, obj, now);
        let facts = match old {
            Some(old) => m.changes(config, old, obj, now),
            None => m.created(config, obj, now),
        };
        for alert in facts {
            pipeline.submit(alert);
        }
    }
    timed
}

/// After this many ticks that re-evaluated only the timed objects, a tick re-evaluates every
/// object again (every 10 minutes): what no event, configuration or namespace change brought
/// is still judged within that time.
const FULL_EVERY: u32 = 40;

/// What a full re-evaluation judged under: the configuration's generation, the namespaces
/// visible then (the filter and the namespaces marked ignored), and the engine's state (a
/// takeover replaces it with the one the last leader wrote).
struct Judged {
    generation: u64,
    namespaces: super::filter::Namespaces,
    restores: u64,
    /// Ticks since, that re-evaluated only the timed objects.
    ticks: u32,
}

impl Judged {
    /// Whether nothing it judged under has changed since, and it is not yet time for a full
    /// pass anyway.
    fn current(&self, pipeline: &Pipeline, visibility: &Visibility) -> bool {
        let rt = pipeline.runtime();
        self.ticks < FULL_EVERY
            && rt.generation == self.generation
            && pipeline.restores() == self.restores
            && visibility.now(&rt).same(&self.namespaces)
    }
}

/// Re-evaluates every object (after a complete list, or when the configuration or the
/// namespaces changed), or with `only_timed` those whose conditions can change with time alone
/// (every other tick). A full pass reconciles the whole kind, so alerts of objects gone while
/// kpulse was away resolve; a timed pass reconciles object by object.
fn re_evaluate<K: Resource + Clone + Serialize + DeserializeOwned>(
    pipeline: &Pipeline,
    visibility: &Visibility,
    monitors: &[Arc<dyn ObjectMonitor<K>>],
    store: &mut Store<K>,
    resource: &'static str,
    kind: &str,
    only_timed: bool,
) -> Judged {
    let rt = pipeline.runtime();
    let config = &rt.config;
    let namespaces = visibility.now(&rt);
    let judged = Judged {
        generation: rt.generation,
        namespaces: namespaces.clone(),
        restores: pipeline.restores(),
        ticks: 0,
    };
    if !store.holds_objects() {
        // Facts, not state: nothing fires, nothing to re-evaluate.
        return judged;
    }
    let now = pipeline.now();
    let on: Vec<&Arc<dyn ObjectMonitor<K>>> =
        monitors.iter().filter(|m| m.enabled(config)).collect();
    let mut findings: Vec<Vec<Finding>> = on.iter().map(|_| Vec::new()).collect();
    // One pass over the objects (one read-back of each packed one) for every monitor.
    store.each(only_timed, |o| {
        if skipped(&namespaces, o) {
            return false;
        }
        let scope = only_timed
            .then(|| Scope::object(o.namespace().unwrap_or_default(), kind, o.name_any()));
        let mut timed = false;
        for (m, out) in on.iter().zip(findings.iter_mut()) {
            timed |= m.timed(config, o, now);
            match &scope {
                Some(scope) => pipeline.reconcile(m.name(), scope, m.firing(config, o, now)),
                None => out.extend(m.firing(config, o, now)),
            }
        }
        timed
    });
    if !only_timed {
        for (m, findings) in on.iter().zip(findings) {
            // Only this kind: the monitor may also be fed by watches of other kinds.
            pipeline.reconcile(m.name(), &Scope::Kind(kind.to_string()), findings);
        }
    }
    pipeline
        .metrics()
        .watch_evaluations
        .get_or_create(&ResourceLabels::new(resource))
        .inc();
    judged
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Event};
    use kube::api::ObjectMeta;

    fn cm(name: &str, value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_string(), value.to_string())].into()),
            ..ConfigMap::default()
        }
    }

    fn event(name: &str, count: i32) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            count: Some(count),
            ..Event::default()
        }
    }

    fn names(store: &mut Store<ConfigMap>) -> Vec<String> {
        let mut n = Vec::new();
        store.each(false, |o| {
            n.push(format!(
                "{}={}",
                o.name_any(),
                o.data.as_ref().unwrap()["v"]
            ));
            true
        });
        n.sort();
        n
    }

    #[test]
    fn a_relist_updates_in_place_and_drops_what_it_did_not_carry() {
        let mut s = Store::new(Keep::Packed);
        s.relist();
        for o in [cm("a", "1"), cm("b", "1"), cm("c", "1")] {
            s.listed(o);
        }
        s.list_done();
        assert_eq!(names(&mut s), ["a=1", "b=1", "c=1"]);
        // The watch desynced; while it was away b changed and c was deleted, d created.
        s.relist();
        s.listed(cm("a", "1"));
        s.listed(cm("b", "2"));
        // Mid-list the old objects are still there (no second map).
        assert_eq!(s.len(), 3);
        s.listed(cm("d", "1"));
        s.list_done();
        assert_eq!(names(&mut s), ["a=1", "b=2", "d=1"]);
        // A change returns what was kept before, read back whole.
        let old = s.apply(&cm("a", "3")).expect("a was kept");
        assert_eq!(old, cm("a", "1"));
        assert_eq!(s.apply(&cm("e", "1")), None);
        s.remove(&cm("b", "2"));
        assert_eq!(names(&mut s), ["a=3", "d=1", "e=1"]);
    }

    /// Counts its evaluations; a ConfigMap whose `v` is `timed` can change with time.
    #[derive(Default)]
    struct Counting {
        evaluated: std::sync::Mutex<Vec<String>>,
    }

    impl ObjectMonitor<ConfigMap> for Counting {
        fn name(&self) -> &'static str {
            "pod_crashes"
        }
        fn enabled(&self, _config: &Config) -> bool {
            true
        }
        fn firing(&self, _config: &Config, obj: &ConfigMap, _now: Timestamp) -> Vec<Finding> {
            self.evaluated.lock().unwrap().push(obj.name_any());
            Vec::new()
        }
        fn timed(&self, _config: &Config, obj: &ConfigMap, _now: Timestamp) -> bool {
            obj.data.as_ref().unwrap()["v"] == "timed"
        }
    }

    #[tokio::test]
    async fn a_tick_re_evaluates_only_what_time_can_change_until_the_namespaces_change() {
        let config = crate::config::load(
            "channels: {l: {type: log}}\nrouting: {default: [l]}\n",
            &Default::default(),
        )
        .unwrap();
        let registry = crate::sinks::Registry::build(&config).unwrap();
        let pipeline =
            Pipeline::new(config, registry, Arc::new(crate::metrics::Metrics::new())).unwrap();
        let visibility = Visibility::default();
        let counting = Arc::new(Counting::default());
        let monitors: Vec<Arc<dyn ObjectMonitor<ConfigMap>>> = vec![counting.clone()];
        let evaluated = || std::mem::take(&mut *counting.evaluated.lock().unwrap());
        let mut store = Store::new(Keep::Packed);
        store.relist();
        for o in [cm("a", "still"), cm("b", "timed"), cm("c", "still")] {
            store.listed(o);
        }
        store.list_done();
        let pass = |store: &mut Store<ConfigMap>, only_timed| {
            re_evaluate(
                &pipeline,
                &visibility,
                &monitors,
                store,
                "configmaps",
                "ConfigMap",
                only_timed,
            )
        };
        let judged = pass(&mut store, false);
        assert_eq!(evaluated().len(), 3, "a full pass judges every object");
        assert_eq!(store.timed(), 1);
        assert!(judged.current(&pipeline, &visibility));
        pass(&mut store, true);
        assert_eq!(evaluated(), ["b"], "a tick judges only the timed object");
        // A change is judged when it comes, and decides whether ticks judge it.
        store.apply(&cm("a", "timed"));
        store.set_timed(&cm("a", "timed"), true);
        store.apply(&cm("b", "still"));
        store.set_timed(&cm("b", "still"), false);
        pass(&mut store, true);
        assert_eq!(evaluated(), ["a"]);
        // A namespace newly ignored (or a new configuration) makes the next tick full.
        visibility.set_ignored(["quiet".to_string()].into());
        assert!(!judged.current(&pipeline, &visibility));
        let judged = pass(&mut store, false);
        assert_eq!(evaluated().len(), 3);
        assert!(judged.current(&pipeline, &visibility));
        visibility.set_ignored(Default::default());
        // So does a takeover, which replaces the engine's state.
        let judged = pass(&mut store, false);
        evaluated();
        pipeline.restore(Default::default());
        assert!(!judged.current(&pipeline, &visibility));
        // And, every FULL_EVERY ticks, time alone.
        let mut judged = pass(&mut store, false);
        judged.ticks = FULL_EVERY;
        assert!(!judged.current(&pipeline, &visibility));
    }

    /// Ticks that judge only the timed pods leave the engine as ticks that judge every pod
    /// would: many pods in every state the pod monitors judge, in two namespaces, over several
    /// re-evaluations as time passes, with the real pod monitors and engine.
    #[tokio::test]
    async fn timed_ticks_decide_what_full_ticks_decide_among_many_pods() {
        use crate::monitors::feeds::{PODS, Wiring, fed};
        use k8s_openapi::api::core::v1::{Node, Pod};
        let t0 = crate::monitors::testkit::at("2026-11-22T12:00:00Z");
        let now = Arc::new(std::sync::Mutex::new(t0));
        let run = || {
            let config = crate::monitors::testkit::config("");
            let registry = crate::sinks::Registry::build(&config).unwrap();
            let clock = now.clone();
            let pipeline = Pipeline::with_clock(
                config,
                registry,
                Arc::new(crate::metrics::Metrics::new()),
                Arc::new(move || *clock.lock().unwrap()),
            )
            .unwrap();
            let wiring = Wiring::detached();
            let node: Node = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n1"},
                "status": {"conditions": [{"type": "Ready", "status": "True",
                    "lastTransitionTime": "2026-11-22T10:00:00Z"}]}
            }))
            .unwrap();
            Index::applied(wiring.nodes.as_ref(), &node);
            (pipeline, fed(&PODS, &wiring), Store::new(Keep::Packed))
        };
        let (timed_pipeline, timed_monitors, mut timed_store) = run();
        let (full_pipeline, full_monitors, mut full_store) = run();
        let mut pods: Vec<Pod> = Vec::new();
        for ns in ["shop", "pay"] {
            for (i, (_, pod)) in crate::monitors::pods::tests::states()
                .into_iter()
                .enumerate()
            {
                for copy in 0..3 {
                    let mut p = pod.clone();
                    p.metadata.namespace = Some(ns.into());
                    p.metadata.name = Some(format!("p{i}-{copy}"));
                    p.metadata.uid = Some(format!("{ns}-{i}-{copy}"));
                    pods.push(p);
                }
            }
        }
        let healthy = crate::monitors::pods::tests::states().remove(0).1;
        for i in 0..200 {
            let mut p = healthy.clone();
            p.metadata.name = Some(format!("healthy-{i}"));
            p.metadata.uid = Some(format!("healthy-{i}"));
            pods.push(p);
        }
        for store in [&mut timed_store, &mut full_store] {
            store.relist();
            pods.iter().cloned().for_each(|p| store.listed(p));
            store.list_done();
        }
        let visibility = Visibility::default();
        let active = |p: &Pipeline| {
            p.with_engine(|e| {
                e.active()
                    .map(|a| format!("{:?}", a.alert.key))
                    .collect::<std::collections::BTreeSet<_>>()
            })
        };
        let mut judged = 0;
        for (pass, secs) in [0, 15, 60, 5 * 60, 6 * 60, 20 * 60, 2 * 3600]
            .into_iter()
            .enumerate()
        {
            *now.lock().unwrap() = t0 + jiff::SignedDuration::from_secs(secs);
            let only_timed = pass > 0;
            re_evaluate(
                &timed_pipeline,
                &visibility,
                &timed_monitors,
                &mut timed_store,
                "pods",
                "Pod",
                only_timed,
            );
            re_evaluate(
                &full_pipeline,
                &visibility,
                &full_monitors,
                &mut full_store,
                "pods",
                "Pod",
                false,
            );
            assert_eq!(
                active(&timed_pipeline),
                active(&full_pipeline),
                "after {secs} s"
            );
            if only_timed {
                judged = judged.max(timed_store.timed());
            }
        }
        assert!(
            !active(&full_pipeline).is_empty(),
            "the table fires something"
        );
        assert!(
            judged > 0 && judged < 60,
            "a tick judged {judged} of {} pods",
            pods.len()
        );
    }

    #[test]
    fn a_packed_pod_reads_back_as_the_trimmed_pod() {
        let mut pod: k8s_openapi::api::core::v1::Pod =
            serde_json::from_str(crate::monitors::pods::tests::RICH_POD).unwrap();
        crate::monitors::pods::trim(&mut pod);
        let packed = pack(&pod);
        assert_eq!(
            unpack::<k8s_openapi::api::core::v1::Pod>(&packed),
            Some(pod)
        );
    }

    #[test]
    fn a_revision_watch_reports_new_and_grown_objects_once() {
        let mut s = Store::new(Keep::Revision(crate::monitors::warning_events::revision));
        s.relist();
        s.listed(event("old", 4));
        s.list_done();
        // Known from the list: the same count is no news, a higher one is a repeat.
        assert_eq!(s.revised(&event("old", 4)), None);
        assert_eq!(s.revised(&event("old", 5)), Some(Fact::Repeated));
        assert_eq!(s.revised(&event("old", 5)), None);
        assert_eq!(s.revised(&event("new", 1)), Some(Fact::Created));
        assert_eq!(s.revised(&event("new", 1)), None);
        assert_eq!(s.revised(&event("new", 2)), Some(Fact::Repeated));
        s.remove(&event("new", 2));
        assert_eq!(s.revised(&event("new", 1)), Some(Fact::Created));
        // A re-list forgets what it did not carry.
        s.relist();
        s.listed(event("new", 1));
        s.list_done();
        assert_eq!(s.len(), 1);
        assert_eq!(s.revised(&event("old", 5)), Some(Fact::Created));
    }
}
