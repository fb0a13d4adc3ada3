//! The one Pod watch, shared by every pod monitor, and the task that sends the eviction groups
//! its `pod_evicted` monitor records.

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Pod, PodSpec, PodStatus, ResourceRequirements,
};
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
use super::watch::{Keep, WatchSpec, trim_meta};

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
        keep: Keep::Packed,
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
/// switch, containers reduced to their names, images and memory settings (evidence), the spec
/// to its containers, node and restart policy, and the status to its phase, reason, message,
/// start time, conditions and container states (no addresses, IDs, resources or mounts).
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
        *spec = PodSpec {
            containers: std::mem::take(&mut spec.containers),
            init_containers: spec.init_containers.take(),
            node_name: spec.node_name.take(),
            restart_policy: spec.restart_policy.take(),
            ..PodSpec::default()
        };
    }
    let meta = &mut pod.metadata;
    meta.resource_version = None;
    meta.generate_name = None;
    meta.generation = None;
    if let Some(status) = pod.status.as_mut() {
        let containers = |cs: &mut Option<Vec<ContainerStatus>>| {
            for c in cs.iter_mut().flatten() {
                *c = ContainerStatus {
                    name: std::mem::take(&mut c.name),
                    image: std::mem::take(&mut c.image),
                    ready: c.ready,
                    restart_count: c.restart_count,
                    started: c.started,
                    state: c.state.take(),
                    last_state: c.last_state.take(),
                    ..ContainerStatus::default()
                };
            }
        };
        containers(&mut status.container_statuses);
        containers(&mut status.init_container_statuses);
        for c in status.conditions.iter_mut().flatten() {
            c.last_probe_time = None;
            c.observed_generation = None;
        }
        *status = PodStatus {
            conditions: status.conditions.take(),
            container_statuses: status.container_statuses.take(),
            init_container_statuses: status.init_container_statuses.take(),
            message: status.message.take(),
            phase: status.phase.take(),
            reason: status.reason.take(),
            start_time: status.start_time.take(),
            ..PodStatus::default()
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::BTreeSet;

    /// A pod as the API server sends it, with much that no monitor reads.
    pub const RICH_POD: &str = r#"{
      "metadata": {
        "name": "api-7d9f8c-x2x4z", "generateName": "api-7d9f8c-", "namespace": "shop",
        "uid": "0b6c2f6e-3d5e-4f0b-9d1a-6f0e2c1d9a11", "resourceVersion": "48213", "generation": 1,
        "creationTimestamp": "2026-11-22T11:00:00Z",
        "labels": {"app": "api", "pod-template-hash": "7d9f8c"},
        "annotations": {"kpulse.io/ignore": "false", "kubectl.kubernetes.io/restartedAt": "x"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8c",
          "uid": "5b1c", "controller": true, "blockOwnerDeletion": true}],
        "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
          "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]
      },
      "spec": {
        "nodeName": "node-1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "serviceAccountName": "api", "priority": 0, "dnsPolicy": "ClusterFirst",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
          "effect": "NoExecute", "tolerationSeconds": 300}],
        "affinity": {"podAntiAffinity": {}},
        "volumes": [{"name": "cfg", "configMap": {"name": "api"}}],
        "initContainers": [{"name": "migrate", "image": "registry.local/api:1.2",
          "command": ["migrate"], "resources": {"limits": {"memory": "64Mi", "cpu": "1"}}}],
        "containers": [{"name": "api", "image": "registry.local/api:1.2",
          "env": [{"name": "MODE", "value": "prod"}], "ports": [{"containerPort": 8080}],
          "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
          "volumeMounts": [{"name": "cfg", "mountPath": "/etc/api"}],
          "resources": {"limits": {"memory": "256Mi", "cpu": "500m"},
            "requests": {"memory": "128Mi", "cpu": "100m"}}}]
      },
      "status": {
        "phase": "Running", "qosClass": "Burstable", "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}], "podIP": "10.1.0.7", "podIPs": [{"ip": "10.1.0.7"}],
        "startTime": "2026-11-22T11:00:01Z",
        "conditions": [
          {"type": "PodScheduled", "status": "True", "lastProbeTime": null,
           "lastTransitionTime": "2026-11-22T11:00:00Z"},
          {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
           "message": "containers with unready status: [api]",
           "lastTransitionTime": "2026-11-22T11:05:00Z"}],
        "initContainerStatuses": [{"name": "migrate", "image": "registry.local/api:1.2",
          "imageID": "registry.local/api@sha256:ab", "containerID": "containerd://1",
          "ready": true, "restartCount": 0, "started": false,
          "state": {"terminated": {"exitCode": 0, "reason": "Completed",
            "startedAt": "2026-11-22T11:00:02Z", "finishedAt": "2026-11-22T11:00:03Z"}}}],
        "containerStatuses": [{"name": "api", "image": "registry.local/api:1.2",
          "imageID": "registry.local/api@sha256:ab", "containerID": "containerd://2",
          "ready": false, "restartCount": 4, "started": false,
          "volumeMounts": [{"name": "cfg", "mountPath": "/etc/api"}],
          "allocatedResources": {"memory": "128Mi"},
          "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
          "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
            "startedAt": "2026-11-22T11:04:00Z", "finishedAt": "2026-11-22T11:04:30Z"}}}]
      }
    }"#;

    #[test]
    fn trim_keeps_what_the_monitors_read_and_drops_the_rest() {
        let full: Pod = serde_json::from_str(RICH_POD).unwrap();
        let mut pod = full.clone();
        trim(&mut pod);
        let (meta, spec, status) = (&pod.metadata, pod.spec.unwrap(), pod.status.unwrap());
        // Kept: identity, labels, owner, times, the ignore switch.
        assert_eq!(meta.name, full.metadata.name);
        assert_eq!(meta.uid, full.metadata.uid);
        assert_eq!(meta.labels, full.metadata.labels);
        assert_eq!(meta.owner_references, full.metadata.owner_references);
        assert_eq!(meta.creation_timestamp, full.metadata.creation_timestamp);
        assert_eq!(
            meta.annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["kpulse.io/ignore"]
        );
        assert_eq!(
            (meta.managed_fields.as_ref(), meta.resource_version.as_ref()),
            (None, None)
        );
        // The spec: containers (name, image, memory), node, restart policy.
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(
            (spec.volumes, spec.tolerations, spec.scheduler_name),
            (None, None, None)
        );
        let api = &spec.containers[0];
        assert_eq!(api.image.as_deref(), Some("registry.local/api:1.2"));
        assert_eq!(
            (api.env.as_ref(), api.readiness_probe.as_ref()),
            (None, None)
        );
        let limits = api.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits.keys().collect::<Vec<_>>(), ["memory"]);
        assert_eq!(spec.init_containers.unwrap()[0].name, "migrate");
        // The status: phase, start, conditions, container states.
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.start_time, full.status.as_ref().unwrap().start_time);
        assert_eq!(
            (status.pod_ip, status.host_ips, status.qos_class),
            (None, None, None)
        );
        let ready = &status.conditions.as_ref().unwrap()[1];
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        let c = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!((c.restart_count, c.ready), (4, false));
        let full_c = &full
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            (&c.state, &c.last_state),
            (&full_c.state, &full_c.last_state)
        );
        assert_eq!(
            (
                c.container_id.as_ref(),
                c.image_id.as_str(),
                c.volume_mounts.as_ref()
            ),
            (None, "", None)
        );
        assert_eq!(status.init_container_statuses.unwrap()[0].name, "migrate");
    }

    /// Pods in the states the pod monitors judge, around 2026-11-22T12:00:00Z.
    pub(crate) fn states() -> Vec<(&'static str, Pod)> {
        let running = |since: &str| json!({"running": {"startedAt": since}});
        let status = |name: &str, ready: bool, restarts: i32, state: Value, last: Value| {
            json!({"name": name, "image": "registry.local/app:1", "ready": ready,
                   "restartCount": restarts, "state": state, "lastState": last})
        };
        let crashed = json!({"terminated": {"reason": "Error", "exitCode": 1,
                             "startedAt": "2026-11-22T11:58:00Z", "finishedAt": "2026-11-22T11:59:00Z"}});
        let crashed_long_ago = json!({"terminated": {"reason": "Error", "exitCode": 1,
                             "startedAt": "2026-11-22T10:58:00Z", "finishedAt": "2026-11-22T10:59:00Z"}});
        let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
        let cond = |type_: &str, status: &str, reason: Option<&str>, since: &str| json!({"type": type_, "status": status, "reason": reason, "lastTransitionTime": since});
        let ready = |ok: bool, since: &str| {
            let s = if ok { "True" } else { "False" };
            vec![
                cond("PodScheduled", "True", None, "2026-11-22T11:00:00Z"),
                cond("Initialized", "True", None, since),
                cond("ContainersReady", s, None, since),
                cond("Ready", s, None, since),
            ]
        };
        let pod = |created: &str,
                   phase: &str,
                   conditions: Vec<Value>,
                   init: Vec<Value>,
                   main: Vec<Value>| {
            serde_json::from_value::<Pod>(json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "creationTimestamp": created,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1"}]},
                "spec": {"containers": [{"name": "app"}], "nodeName": "n1", "restartPolicy": "Always"},
                "status": {"phase": phase, "startTime": created, "conditions": conditions,
                    "initContainerStatuses": init, "containerStatuses": main}
            }))
            .expect("a valid pod")
        };
        let (old, new) = ("2026-11-22T11:00:00Z", "2026-11-22T11:59:30Z");
        let waiting_pod = |reason: &str| {
            let app = status("app", false, 0, waiting(reason), json!({}));
            pod(new, "Pending", ready(false, new), vec![], vec![app])
        };
        vec![
            (
                "healthy",
                pod(
                    old,
                    "Running",
                    ready(true, old),
                    vec![],
                    vec![status("app", true, 0, running(old), json!({}))],
                ),
            ),
            (
                "healthy, restarted long ago",
                pod(
                    old,
                    "Running",
                    ready(true, old),
                    vec![],
                    vec![status(
                        "app",
                        true,
                        5,
                        running("2026-11-22T11:00:00Z"),
                        crashed_long_ago,
                    )],
                ),
            ),
            (
                "succeeded",
                pod(
                    old,
                    "Succeeded",
                    ready(false, new),
                    vec![],
                    vec![status(
                        "app",
                        false,
                        0,
                        json!({"terminated": {"reason": "Completed", "exitCode": 0}}),
                        json!({}),
                    )],
                ),
            ),
            (
                "unschedulable",
                pod(
                    new,
                    "Pending",
                    vec![cond("PodScheduled", "False", Some("Unschedulable"), new)],
                    vec![],
                    vec![],
                ),
            ),
            (
                "not ready",
                pod(
                    old,
                    "Running",
                    ready(false, new),
                    vec![],
                    vec![status("app", false, 0, running(old), json!({}))],
                ),
            ),
            ("image pull back-off", waiting_pod("ImagePullBackOff")),
            ("creating", waiting_pod("ContainerCreating")),
            (
                "init container failing",
                pod(
                    new,
                    "Pending",
                    ready(false, new),
                    vec![status(
                        "migrate",
                        false,
                        0,
                        waiting("ErrImagePull"),
                        json!({}),
                    )],
                    vec![status(
                        "app",
                        false,
                        0,
                        waiting("PodInitializing"),
                        json!({}),
                    )],
                ),
            ),
            (
                "crash loop",
                pod(
                    old,
                    "Running",
                    ready(false, new),
                    vec![],
                    vec![status(
                        "app",
                        false,
                        3,
                        waiting("CrashLoopBackOff"),
                        crashed.clone(),
                    )],
                ),
            ),
            (
                "running again after a crash",
                pod(
                    old,
                    "Running",
                    ready(true, "2026-11-22T11:59:50Z"),
                    vec![],
                    vec![status(
                        "app",
                        true,
                        4,
                        running("2026-11-22T11:59:50Z"),
                        crashed,
                    )],
                ),
            ),
            (
                "starting",
                pod(
                    "2026-11-22T11:59:40Z",
                    "Running",
                    ready(false, "2026-11-22T11:59:40Z"),
                    vec![],
                    vec![status(
                        "app",
                        false,
                        0,
                        running("2026-11-22T11:59:50Z"),
                        json!({}),
                    )],
                ),
            ),
        ]
    }

    /// The watch re-evaluates at a tick only the pods some monitor calls timed: a monitor that
    /// calls a pod untimed must judge it the same at any later time.
    #[test]
    fn a_pod_no_monitor_calls_timed_is_judged_the_same_at_any_later_time() {
        let config = crate::monitors::testkit::config("");
        let monitors = fed(&PODS, &Wiring::detached());
        let t0 = crate::monitors::testkit::at("2026-11-22T12:00:00Z");
        let states = states();
        let (changed_by_time, timed) =
            crate::monitors::testkit::timed_contract(&monitors, &config, &states, t0);
        for ((state, _), timed) in states.iter().zip(timed) {
            if state.starts_with("healthy") || *state == "succeeded" {
                assert!(
                    timed.is_empty(),
                    "the {state} pod is re-evaluated every tick by {timed:?}"
                );
            }
        }
        // The table has, for each monitor whose judgement depends on time, a pod it changes.
        assert_eq!(
            changed_by_time,
            BTreeSet::from([
                "container_waiting",
                "pod_crashes",
                "pod_not_ready",
                "pod_unschedulable",
                "startup_latency"
            ])
        );
    }
}
