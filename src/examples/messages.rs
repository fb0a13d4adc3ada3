//! One full example message per monitor for docs/monitors.md: the real monitor's alert for a
//! fixture object, completed as kpulse completes it before sending (hints and commands; no API
//! here, so no events, node or log), rendered as the plain text that email and Opsgenie send.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Secret};
use serde_json::json;

use super::{config, object, only};
use crate::alert::{Alert, Notification, State};
use crate::monitors::pods::{
    container_waiting, pod_evicted, pod_not_ready, pod_restarts, pod_unschedulable,
};
use crate::monitors::stats::{node_disk, node_resources, pvc_usage};
use crate::monitors::watch::ObjectMonitor;
use crate::monitors::{
    canary, cronjob_missed, daemonset_unscheduled, hpa, node_conditions, pvc_pending,
    replicas_unavailable, rollout_stuck, tls_cert_expiry,
};
use crate::sinks::render;

/// Monitors that send no alerts, so have no example message.
#[cfg(test)]
const SILENT: &[&str] = &[];

/// The example message of each monitor, by name.
pub fn messages(t0: Timestamp) -> BTreeMap<&'static str, String> {
    let alerts: Vec<(&'static str, Alert)> = vec![
        ("pod_crashes", super::oom_killed(t0)),
        ("pod_restarts", restarts(t0)),
        ("container_waiting", image_pull(t0)),
        ("pod_unschedulable", unschedulable(t0)),
        ("pod_not_ready", not_ready(t0)),
        ("pod_evicted", evicted(t0)),
        ("warning_events", super::warning_event(t0)),
        ("node_conditions", node_pressure(t0)),
        ("pvc_pending", pvc_stuck(t0)),
        ("pvc_usage", volume_full(t0)),
        ("node_disk", node_disk_full(t0)),
        ("node_resources", node_pids(t0)),
        ("rollout_stuck", rollout(t0)),
        ("replicas_unavailable", short_of_replicas(t0)),
        ("hpa_at_max", hpa_pinned(t0)),
        ("hpa_unhealthy", hpa_blind(t0)),
        ("daemonset_unscheduled", daemonset(t0)),
        ("job_failed", super::failed_job(t0)),
        ("cronjob_missed", cronjob(t0)),
        ("tls_cert_expiry", certificate(t0)),
        ("canary", canary_failed(t0)),
        ("startup_latency", slow_startup(t0)),
    ];
    alerts
        .into_iter()
        .map(|(monitor, alert)| (monitor, message(alert, t0)))
        .collect()
}

/// The alert as kpulse sends it, in plain text: the headline, then the body.
fn message(mut alert: Alert, at: Timestamp) -> String {
    let config = config();
    alert.evidence = crate::evidence::collect::finish(
        &config,
        &crate::redact::Redactor::for_config(&config),
        &alert,
        alert.evidence.clone(),
    );
    let n = Notification {
        state: State::Firing,
        alert,
        at,
    };
    format!(
        "{}\n\n{}",
        render::headline(&config.cluster, &n),
        render::body(&n)
    )
}

fn pod(v: serde_json::Value) -> Pod {
    object(v)
}

fn restarts(t0: Timestamp) -> Alert {
    let at = |restarts: i32| {
        pod(json!({
            "metadata": {"name": "worker-6f9c-x2x", "namespace": "batch", "uid": "w1",
                "labels": {"app": "worker", "pod-template-hash": "6f9c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "worker-6f9c", "uid": "r1", "controller": true}]},
            "spec": {"nodeName": "ip-10-0-1-9", "containers": [{"name": "worker"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": "worker", "image": "worker:2.1", "imageID": "", "ready": true, "restartCount": restarts,
                "state": {"running": {"startedAt": "2027-01-15T07:59:00Z"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 2, "startedAt": "2027-01-15T07:58:40Z", "finishedAt": "2027-01-15T07:58:55Z"}}
            }]}
        }))
    };
    let monitor = pod_restarts::PodRestarts::default();
    let config = config();
    let mut last = Vec::new();
    for (i, restarts) in (1..=6).enumerate() {
        let now = t0 - SignedDuration::from_mins(6 - i as i64);
        last = monitor.changes(&config, &at(restarts - 1), &at(restarts), now);
        if !last.is_empty() {
            break;
        }
    }
    last.pop()
        .expect("the restart burst fixture fires (fix it in src/examples/messages.rs)")
}

fn image_pull(t0: Timestamp) -> Alert {
    let p = pod(json!({
        "metadata": {"name": "web-84d5-7kq2p", "namespace": "shop",
            "labels": {"app": "web", "pod-template-hash": "84d5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-84d5", "uid": "r2", "controller": true}]},
        "spec": {"nodeName": "ip-10-0-1-7", "containers": [{"name": "web", "image": "registry.example/web:v2.3.1"}]},
        "status": {"phase": "Pending", "startTime": "2027-01-15T07:50:00Z",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2027-01-15T07:50:00Z"}],
            "containerStatuses": [{
                "name": "web", "image": "registry.example/web:v2.3.1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"registry.example/web:v2.3.1\": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image \"registry.example/web:v2.3.1\": failed to resolve reference \"registry.example/web:v2.3.1\": registry.example/web:v2.3.1: not found"}}
            }]}
    }));
    only(&container_waiting::ContainerWaiting, &p, t0)
}

fn unschedulable(t0: Timestamp) -> Alert {
    let p = pod(json!({
        "metadata": {"name": "search-0", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "search", "uid": "s1", "controller": true}]},
        "spec": {"containers": [{"name": "search"}]},
        "status": {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
            "lastTransitionTime": "2027-01-15T07:50:00Z"
        }]}
    }));
    only(&pod_unschedulable::PodUnschedulable, &p, t0)
}

fn not_ready(t0: Timestamp) -> Alert {
    let p = pod(json!({
        "metadata": {"name": "api-7d9f-q8r2t", "namespace": "checkout",
            "labels": {"app": "api", "pod-template-hash": "7d9f"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f", "uid": "r3", "controller": true}]},
        "spec": {"nodeName": "ip-10-0-1-7", "containers": [{"name": "server"}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "message": "containers with unready status: [server]", "lastTransitionTime": "2027-01-15T07:30:00Z"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": "2027-01-15T07:50:00Z"}
        ], "containerStatuses": [{
            "name": "server", "image": "api:1.4", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": "2027-01-15T07:40:00Z"}}
        }]}
    }));
    let nodes = Arc::new(crate::monitors::node_readiness::NodeReadiness::default());
    let node: Node = object(
        json!({"metadata": {"name": "ip-10-0-1-7"}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-10T00:00:00Z"}]}}),
    );
    crate::monitors::watch::Index::applied(&*nodes, &node);
    only(&pod_not_ready::PodNotReady::new(nodes), &p, t0)
}

fn evicted(t0: Timestamp) -> Alert {
    let groups = pod_evicted::Groups::default();
    for (name, owner) in [
        ("api-7d9f-abcde", "Deployment/api"),
        ("api-7d9f-fghij", "Deployment/api"),
        ("cache-0", "StatefulSet/cache"),
    ] {
        groups.record(
            "ip-10-0-1-7",
            pod_evicted::Eviction {
                namespace: "checkout".into(),
                name: name.into(),
                owner: Some(owner.into()),
                message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91Mi.".into(),
            },
            t0 - SignedDuration::from_secs(30),
        );
    }
    let mut due = groups.due(t0, SignedDuration::from_secs(30));
    due.pop().expect("the eviction group closes")
}

fn node_pressure(t0: Timestamp) -> Alert {
    let node: Node = object(json!({
        "metadata": {"name": "ip-10-0-1-7", "labels": {"node.kubernetes.io/instance-type": "m5.large"}},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-10T00:00:00Z"},
            {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory", "message": "kubelet has insufficient memory available", "lastTransitionTime": "2027-01-15T07:40:00Z"}
        ]}
    }));
    only(&node_conditions::NodeConditions, &node, t0)
}

fn pvc_stuck(t0: Timestamp) -> Alert {
    let pvc: PersistentVolumeClaim = object(json!({
        "metadata": {"name": "data-search-0", "namespace": "shop", "creationTimestamp": "2027-01-15T07:30:00Z"},
        "spec": {"storageClassName": "fast-ssd", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}},
        "status": {"phase": "Pending"}
    }));
    let monitor = pvc_pending::PvcPending::new(kube::runtime::reflector::store().0);
    only(&monitor, &pvc, t0)
}

fn volume_full(t0: Timestamp) -> Alert {
    let summary: crate::kubelet::Summary = object(json!({
        "node": {"nodeName": "ip-10-0-1-7"},
        "pods": [{"podRef": {"name": "postgres-0", "namespace": "shop"}, "volume": [{
            "name": "data", "pvcRef": {"name": "data-postgres-0", "namespace": "shop"},
            "capacityBytes": 10737418240u64, "availableBytes": 751619276u64, "inodes": 655360, "inodesFree": 600000
        }]}]
    }));
    let claim: PersistentVolumeClaim = object(json!({
        "metadata": {"name": "data-postgres-0", "namespace": "shop", "labels": {"app": "postgres"}}
    }));
    let namespaces = crate::monitors::filter::Namespaces {
        filter: Arc::new(crate::monitors::filter::Filter::new(&Default::default())),
        ignored: Arc::default(),
    };
    let claims = pvc_usage::Claims::new(&[claim], &namespaces);
    let settings = crate::config::monitors::PvcUsage {
        enabled: true,
        ..Default::default()
    };
    let mut out = pvc_usage::evaluate(
        &settings,
        "ip-10-0-1-7",
        &summary,
        &claims,
        &mut Default::default(),
        t0,
    );
    out.pop_first()
        .and_then(|(_, mut alerts)| alerts.pop())
        .expect("the full volume fixture fires")
}

fn node_disk_full(t0: Timestamp) -> Alert {
    let summary: crate::kubelet::Summary = object(json!({"node": {"nodeName": "ip-10-0-1-7",
        "fs": {"capacityBytes": 107374182400u64, "availableBytes": 6442450944u64, "inodes": 6553600, "inodesFree": 6000000}}}));
    let settings = crate::config::monitors::NodeDisk {
        enabled: true,
        ..Default::default()
    };
    node_disk::evaluate(&settings, "ip-10-0-1-7", &summary, t0)
        .pop()
        .expect("the full disk fixture fires")
}

fn node_pids(t0: Timestamp) -> Alert {
    let summary: crate::kubelet::Summary = object(json!({"node": {"nodeName": "ip-10-0-1-7",
        "rlimit": {"maxpid": 32768, "curproc": 31500}}}));
    let settings = crate::config::monitors::NodeResources {
        enabled: true,
        ..Default::default()
    };
    node_resources::evaluate(&settings, "ip-10-0-1-7", &summary, Some(110), t0)
        .pop()
        .expect("the process ID fixture fires")
}

fn deployment(v: serde_json::Value) -> Deployment {
    object(v)
}

fn rollout(t0: Timestamp) -> Alert {
    let d = deployment(json!({
        "metadata": {"name": "api", "namespace": "checkout", "uid": "d1", "generation": 7, "labels": {"app": "api"}},
        "spec": {"replicas": 3, "selector": {}, "template": {}},
        "status": {"observedGeneration": 7, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "unavailableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "True", "lastTransitionTime": "2027-01-10T00:00:00Z"},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"api-5c6b8\" has timed out progressing.", "lastTransitionTime": "2027-01-15T07:55:00Z"}
            ]}
    }));
    only(&rollout_stuck::RolloutStuck::default(), &d, t0)
}

fn short_of_replicas(t0: Timestamp) -> Alert {
    let d = deployment(json!({
        "metadata": {"name": "cart", "namespace": "shop", "uid": "d2", "generation": 3},
        "spec": {"replicas": 4, "selector": {}, "template": {}},
        "status": {"observedGeneration": 3, "replicas": 4, "updatedReplicas": 4, "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True", "lastTransitionTime": "2027-01-15T07:30:00Z"}]}
    }));
    let monitor = replicas_unavailable::ReplicasUnavailable::default();
    let config = config();
    // It fires once the shortfall has lasted `for`: seen first 20 minutes earlier.
    let _ = monitor.firing(&config, &d, t0 - SignedDuration::from_mins(20));
    only(&monitor, &d, t0)
}

fn hpa_object(conditions: serde_json::Value, current: i32) -> HorizontalPodAutoscaler {
    object(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "h1"},
        "spec": {"minReplicas": 2, "maxReplicas": 10, "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}},
        "status": {"currentReplicas": current, "desiredReplicas": current, "conditions": conditions}
    }))
}

fn hpa_pinned(t0: Timestamp) -> Alert {
    let h = hpa_object(
        json!([{"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas", "message": "the desired replica count is more than the maximum replica count", "lastTransitionTime": "2027-01-15T07:30:00Z"}]),
        10,
    );
    let monitor = hpa::HpaAtMax::default();
    let _ = monitor.firing(&config(), &h, t0 - SignedDuration::from_mins(30));
    only(&monitor, &h, t0)
}

fn hpa_blind(t0: Timestamp) -> Alert {
    let h = hpa_object(
        json!([{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API", "lastTransitionTime": "2027-01-15T07:30:00Z"}]),
        2,
    );
    let monitor = hpa::HpaUnhealthy;
    let _ = monitor.firing(&config(), &h, t0 - SignedDuration::from_mins(30));
    only(&monitor, &h, t0)
}

fn daemonset(t0: Timestamp) -> Alert {
    let ds: DaemonSet = object(json!({
        "metadata": {"name": "log-agent", "namespace": "observability", "uid": "ds1", "generation": 2},
        "spec": {"selector": {}, "template": {}},
        "status": {"observedGeneration": 2, "desiredNumberScheduled": 12, "currentNumberScheduled": 10, "numberMisscheduled": 0,
            "numberReady": 10, "numberAvailable": 10, "updatedNumberScheduled": 10}
    }));
    let monitor = daemonset_unscheduled::DaemonsetUnscheduled::default();
    let _ = monitor.firing(&config(), &ds, t0 - SignedDuration::from_mins(30));
    only(&monitor, &ds, t0)
}

fn cronjob(t0: Timestamp) -> Alert {
    let c: CronJob = object(json!({
        "metadata": {"name": "nightly-report", "namespace": "reports", "creationTimestamp": "2027-01-01T00:00:00Z"},
        "spec": {"schedule": "0 7 * * *", "jobTemplate": {}},
        "status": {"lastScheduleTime": "2027-01-14T07:00:00Z", "lastSuccessfulTime": "2027-01-14T07:04:00Z"}
    }));
    only(&cronjob_missed::CronjobMissed, &c, t0)
}

fn certificate(_t0: Timestamp) -> Alert {
    let pem = include_str!("../../tests/support/test-cert.pem");
    let (not_after, _) =
        tls_cert_expiry::leaf_expiry(pem.as_bytes()).expect("the test certificate");
    let s: Secret = object(json!({
        "metadata": {"name": "web-tls", "namespace": "shop"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem)}
    }));
    let mut c = config();
    c.monitors.tls_cert_expiry.enabled = true;
    let now = not_after - SignedDuration::from_hours(24 * 9);
    let mut found = tls_cert_expiry::TlsCertExpiry.firing(&c, &s, now);
    assert_eq!(found.len(), 1, "the certificate fixture fires");
    found.remove(0).alert
}

fn canary_failed(t0: Timestamp) -> Alert {
    let settings = crate::config::monitors::Canary {
        enabled: true,
        namespace: "kpulse".into(),
        ..Default::default()
    };
    canary::alert(
        canary::Routine::Pod,
        &canary::Outcome::Timeout(canary::Stage::Scheduled, "not scheduled: 0/3 nodes are available: 3 node(s) had untolerated taint {node.kubernetes.io/unreachable: }".into()),
        &settings,
        t0,
    )
    .expect("a failed run alerts")
}

fn slow_startup(t0: Timestamp) -> Alert {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "api-7d9f8c-x2x4q", "namespace": "shop", "uid": "u1",
            "creationTimestamp": (t0 - SignedDuration::from_mins(12)).to_string(),
            "labels": {"app": "api", "pod-template-hash": "7d9f8c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "api-7d9f8c", "uid": "rs", "controller": true}]},
        "spec": {"nodeName": "ip-10-0-3-17", "containers": [{"name": "api", "image": "registry.example.com/api:2.4.1"}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": (t0 - SignedDuration::from_mins(12)).to_string()},
            {"type": "Initialized", "status": "True", "lastTransitionTime": (t0 - SignedDuration::from_mins(12)).to_string()},
            {"type": "Ready", "status": "False", "lastTransitionTime": (t0 - SignedDuration::from_mins(12)).to_string()}],
            "containerStatuses": [{"name": "api", "image": "registry.example.com/api:2.4.1", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}
    }))
    .expect("a valid pod");
    let mut c = config();
    c.monitors.startup_latency.enabled = true;
    crate::monitors::pods::startup_latency::slow(&c.monitors.startup_latency, &pod, false, t0)
        .expect("the pod fixture is slow to start")
        .alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Monitors;

    #[test]
    fn every_monitor_that_alerts_has_an_example_message() {
        let t0: Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
        let messages = messages(t0);
        for name in Monitors::NAMES {
            assert!(
                messages.contains_key(name) != SILENT.contains(&name),
                "{name}: an example message in src/examples/messages.rs, or listed in SILENT"
            );
        }
        for (name, text) in &messages {
            assert!(
                text.contains(&format!("Monitor: {name}")),
                "{name}:\n{text}"
            );
        }
    }
}
