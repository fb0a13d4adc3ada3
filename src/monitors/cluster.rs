//! The cluster-level watches: Warning Events, Nodes, PersistentVolumeClaims (with the
//! StorageClasses they need), and Namespaces (for the `kpulse.io/ignore` switch on a namespace).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Namespace, Node, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, ResourceExt};
use tokio::sync::watch as signal;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::feeds::{self, Wiring, fed};
use super::filter::ignored;
use super::watch::{Keep, WatchSpec};
use super::{Context, SyncGuard};
use super::{node_conditions, pvc_pending, warning_events};
use crate::pipeline::Pipeline;

/// Warning Events only: the API server filters, so Normal events never reach kpulse.
pub fn events(client: kube::Client, wiring: &Wiring) -> WatchSpec<Event> {
    WatchSpec {
        resource: "events",
        kind: "Event",
        api: Api::all(client),
        config: watcher::Config::default().fields("type=Warning"),
        trim: warning_events::trim,
        monitors: fed(&feeds::EVENTS, wiring),
        index: None,
        keep: Keep::Revision(warning_events::revision),
    }
}

/// The Node watch; it also keeps the nodes' readiness current for the pod monitors.
pub fn nodes(client: kube::Client, wiring: &Wiring) -> WatchSpec<Node> {
    WatchSpec {
        resource: "nodes",
        kind: "Node",
        api: Api::all(client),
        config: watcher::Config::default(),
        trim: node_conditions::trim,
        monitors: fed(&feeds::NODES, wiring),
        index: Some(wiring.nodes.clone()),
        keep: Keep::Packed,
    }
}

pub fn pvcs(client: kube::Client, wiring: &Wiring) -> WatchSpec<PersistentVolumeClaim> {
    WatchSpec {
        resource: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        api: Api::all(client),
        config: watcher::Config::default(),
        trim: pvc_pending::trim,
        monitors: fed(&feeds::PVCS, wiring),
        index: None,
        keep: Keep::Packed,
    }
}

/// Keeps a store of StorageClasses (a handful of small objects) until cancelled.
async fn storage_classes(
    client: kube::Client,
    pipeline: Pipeline,
    writer: reflector::store::Writer<StorageClass>,
    token: CancellationToken,
) {
    // Only pvc_pending reads StorageClasses; the chart grants access only when it is on.
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    while !pipeline.runtime().config.monitors.pvc_pending.enabled {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = every.tick() => {}
        }
    }
    let stream = reflector::reflector(
        writer,
        watcher::watcher(Api::<StorageClass>::all(client), watcher::Config::default())
            .default_backoff(),
    )
    .touched_objects();
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            item = stream.try_next() => match item {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => tracing::warn!(resource = "storageclasses", error = %e, "watch error; retrying with backoff"),
            }
        }
    }
}

/// Keeps the namespace filter's set of ignored namespaces current, from a metadata-only watch
/// of Namespaces (labels and annotations are all it reads).
async fn namespaces(
    client: kube::Client,
    ctx: Context,
    mut guard: SyncGuard,
    listed: signal::Sender<bool>,
) {
    let token = &ctx.token;
    let stream = watcher::watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut quiet: BTreeMap<String, bool> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, bool>> = None;
    let publish = |m: &BTreeMap<String, bool>| {
        ctx.namespaces.set_ignored(
            m.iter()
                .filter(|(_, q)| **q)
                .map(|(n, _)| n.clone())
                .collect(),
        );
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            event = stream.next() => match event {
                None => return,
                Some(Err(e)) => tracing::warn!(resource = "namespaces", error = %e, "watch error; retrying with backoff"),
                Some(Ok(WatchEvent::Init)) => listing = Some(BTreeMap::new()),
                Some(Ok(WatchEvent::InitApply(ns))) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(ns.name_any(), ignored(ns.metadata.labels.as_ref(), ns.metadata.annotations.as_ref()));
                    }
                }
                Some(Ok(WatchEvent::InitDone)) => {
                    quiet = listing.take().unwrap_or_default();
                    publish(&quiet);
                    listed.send_replace(true);
                    guard.synced();
                }
                Some(Ok(WatchEvent::Apply(ns))) => {
                    let q = ignored(ns.metadata.labels.as_ref(), ns.metadata.annotations.as_ref());
                    // Only a change of the ignored set is news (a new namespace that is not
                    // ignored is not): each one makes every watch re-evaluate everything.
                    if quiet.insert(ns.name_any(), q).unwrap_or(false) != q {
                        publish(&quiet);
                    }
                }
                Some(Ok(WatchEvent::Delete(ns))) => {
                    if quiet.remove(&ns.name_any()) == Some(true) {
                        publish(&quiet);
                    }
                }
            }
        }
    }
}

/// Starts the cluster-level watches; each counts towards readiness except StorageClasses, which
/// only refine `pvc_pending`. The namespaced ones (Events, PVCs) start once the ignored
/// namespaces are known; `listed` says when they are, to every namespaced watch. The Node watch
/// keeps the wiring's node readiness current; `classes` fills its StorageClasses.
pub fn start(
    client: kube::Client,
    ctx: &Context,
    tasks: &mut JoinSet<()>,
    listed: signal::Sender<bool>,
    wiring: &Wiring,
    classes: reflector::store::Writer<StorageClass>,
) {
    tasks.spawn(namespaces(client.clone(), ctx.clone(), ctx.guard(), listed));
    ctx.watch_cluster(tasks, nodes(client.clone(), wiring));
    ctx.watch(tasks, events(client.clone(), wiring));
    tasks.spawn(storage_classes(
        client.clone(),
        ctx.pipeline.clone(),
        classes,
        ctx.token.clone(),
    ));
    ctx.watch(tasks, pvcs(client, wiring));
}
