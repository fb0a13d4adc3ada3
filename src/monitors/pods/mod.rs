//! The one Pod watch, shared by every pod monitor, and the task that sends the eviction groups
//! its `pod_evicted` monitor records.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::runtime::watcher;
use tokio::task::JoinSet;

pub mod container_waiting;
pub mod evictions;
pub mod image_pulls;
pub mod pod;
pub mod pod_crashes;
pub mod pod_evicted;
pub mod pod_not_ready;
pub mod pod_restarts;
pub mod pod_unschedulable;
pub mod startup_latency;
pub mod startup_record;

use super::Context;
use super::feeds::{PODS, Wiring, fed};
use super::watch::{WatchSpec, trim_meta};

/// The Pod watch, feeding every pod monitor.
pub(super) fn spec(client: kube::Client, wiring: &Wiring) -> WatchSpec<Pod> {
    WatchSpec {
        resource: "pods",
        kind: "Pod",
        api: Api::all(client),
        config: watcher::Config::default(),
        trim,
        monitors: fed(&PODS, wiring),
        index: None,
    }
}

/// Starts the Pod watch once the ignored namespaces are known (pods in a namespace marked
/// `kpulse.io/ignore` must not fire at start-up), and the task sending the eviction groups
/// `pod_evicted` records.
pub fn start(client: kube::Client, ctx: &Context, tasks: &mut JoinSet<()>, wiring: &Wiring) {
    tasks.spawn(pod_evicted::flush(
        wiring.evictions.clone(),
        ctx.pipeline.clone(),
        ctx.token.clone(),
    ));
    ctx.watch(tasks, spec(client.clone(), wiring));
    let pulling = image_pulls::Pulling::default();
    for reason in image_pulls::REASONS {
        let spec = image_pulls::spec(client.clone(), wiring, reason, pulling.clone());
        ctx.watch(tasks, spec);
    }
}

/// Keeps only what the pod monitors read: no managedFields, no annotations but the ignore
/// switch, and containers reduced to their names, images and memory settings (evidence).
pub fn trim(pod: &mut Pod) {
    trim_meta(pod);
    if let Some(spec) = pod.spec.as_mut() {
        let names = |cs: &mut Vec<Container>| {
            for c in cs.iter_mut() {
                let memory = |m: Option<&mut std::collections::BTreeMap<String, Quantity>>| {
                    m.and_then(|m| m.remove("memory"))
                        .map(|q| std::collections::BTreeMap::from([("memory".to_string(), q)]))
                };
                let resources = c.resources.as_mut().map(|r| ResourceRequirements {
                    limits: memory(r.limits.as_mut()),
                    requests: memory(r.requests.as_mut()),
                    ..ResourceRequirements::default()
                });
                *c = Container {
                    name: std::mem::take(&mut c.name),
                    image: c.image.take(),
                    resources,
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
