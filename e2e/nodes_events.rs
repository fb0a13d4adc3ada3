//! Cluster-level monitors end to end: a dedicated fake Node whose status is patched Ready=False
//! and back, Warning Events created the way the kubelet records them, and a PVC whose storage
//! class does not exist. The shared fake nodes kpulse-node-1..3 are never touched.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{Kpulse, TestNamespace, ago, client, log_config, start, wait_state};

/// A Warning (or Normal) Event about `kind/name`, as a kubelet records it.
pub(crate) fn event(
    ns: &str,
    kind: &str,
    name: &str,
    type_: &str,
    reason: &str,
    count: i32,
) -> Event {
    let involved_ns = if kind == "Node" { None } else { Some(ns) };
    let suffix: u32 = rand::random_range(0..0xffffff);
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.{suffix:06x}"), "namespace": ns},
        "involvedObject": {"kind": kind, "name": name, "namespace": involved_ns, "apiVersion": "v1"},
        "type": type_, "reason": reason, "message": format!("{reason} for {name} (e2e)"),
        "count": count, "firstTimestamp": ago(5), "lastTimestamp": ago(1),
        "source": {"component": "kubelet", "host": "kpulse-node-1"}
    }))
    .unwrap()
}

/// A fake Node of the test's own, which the test deletes at its end.
pub async fn fake_node(client: &kube::Client) -> (Api<Node>, String) {
    let nodes: Api<Node> = Api::all(client.clone());
    let suffix: u32 = rand::random_range(0..0xffffff);
    let name = format!("e2e-node-{suffix:06x}");
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kpulse.io/e2e": "true"}},
        // Keep other tests' pods off it (admission also adds a not-ready taint on creation).
        "spec": {"taints": [{"key": "kpulse.io/e2e", "effect": "NoSchedule"}]}
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    (nodes, name)
}

/// Sets the node's Ready condition, as its kubelet (or the node lifecycle controller) would.
pub async fn patch_ready(nodes: &Api<Node>, name: &str, status: &str, since: String) {
    let reason = if status == "True" {
        "KubeletReady"
    } else {
        "KubeletNotReady"
    };
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": status, "reason": reason,
                "message": "container runtime network not ready: NetworkReady=false",
                "lastHeartbeatTime": jiff::Timestamp::now().to_string(), "lastTransitionTime": since
            }]}})),
        )
        .await
        .expect("patch node status");
}

#[tokio::test]
async fn nodes_not_ready_fires_critical_then_resolves_when_ready_and_node_events_alert() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "node").await;
    let kpulse = start(
        &ns,
        "monitors: {node_conditions: {not_ready_for: 1s, pressure_for: 1s}}\n",
    )
    .await;
    let (nodes, name) = fake_node(&client).await;

    patch_ready(&nodes, &name, "False", ago(30)).await;
    let key = format!("node_conditions//Node/{name}/NotReady");
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] node/{name} {name} NotReady")
    );
    assert_eq!(fired["alert"]["severity"], "critical");
    assert!(
        fired["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("KubeletNotReady: container runtime network not ready"),
        "{fired:#}"
    );

    // A Warning Event about the node, recorded in `default` as kubelets do, is not dropped by
    // `namespaces.include`: it is judged by the (cluster-scoped) node.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    events
        .create(
            &PostParams::default(),
            &event("default", "Node", &name, "Warning", "SystemOOM", 1),
        )
        .await
        .expect("create node event");
    let oom = wait_state(
        &kpulse,
        &format!("warning_events//Node/{name}/SystemOOM"),
        "firing",
    )
    .await;
    assert_eq!(oom["alert"]["severity"], "critical");

    patch_ready(&nodes, &name, "True", ago(0)).await;
    let resolved = wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(
        resolved["text"],
        format!("✅ [RESOLVED] [e2e] node/{name} {name} NotReady")
    );

    // Disk pressure (a warning), then relieved.
    let pressure = |status: &str| {
        Patch::Merge(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastTransitionTime": ago(10)},
            {"type": "DiskPressure", "status": status, "reason": "KubeletHasDiskPressure",
                "message": "kubelet has disk pressure", "lastTransitionTime": ago(30)}
        ]}}))
    };
    nodes
        .patch_status(&name, &PatchParams::default(), &pressure("True"))
        .await
        .expect("patch node status");
    let key = format!("node_conditions//Node/{name}/DiskPressure");
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["severity"], "warning");
    nodes
        .patch_status(&name, &PatchParams::default(), &pressure("False"))
        .await
        .expect("patch node status");
    wait_state(&kpulse, &key, "resolved").await;
    nodes
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete node");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn nodes_warning_events_alert_once_without_noise() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "events").await;
    let kpulse = start(&ns, "").await;
    ns.create_pod("api", Default::default()).await;

    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    // Noise, a reason another monitor owns, a flaky reason seen once, a Normal event: silent.
    for (type_, reason, count) in [
        ("Warning", "Unhealthy", 5),
        ("Warning", "BackOff", 5),
        ("Warning", "FailedMount", 1),
        ("Normal", "Pulled", 1),
    ] {
        events
            .create(
                &PostParams::default(),
                &event(&ns.name, "Pod", "api", type_, reason, count),
            )
            .await
            .expect("create event");
    }
    let signal = event(&ns.name, "Pod", "api", "Warning", "FailedKillPod", 1);
    events
        .create(&PostParams::default(), &signal)
        .await
        .expect("create event");
    let key = format!("warning_events/{}/Pod/api/FailedKillPod", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/api api FailedKillPod", ns.name)
    );
    assert_eq!(
        fired["alert"]["message"],
        format!("Pod {}/api: FailedKillPod for api (e2e)", ns.name)
    );
    assert_eq!(fired["alert"]["resolvable"], false);

    // The event repeats (count 2): inside the dedupe window that is no new notification.
    let mut again = signal.clone();
    again.count = Some(2);
    again.last_timestamp = serde_json::from_value(json!(ago(0))).unwrap();
    events
        .replace(
            again.metadata.name.as_deref().unwrap(),
            &PostParams::default(),
            &again,
        )
        .await
        .expect("update event");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ours: Vec<Value> = kpulse
        .notifications()
        .into_iter()
        .filter(|n| n["alert"]["key"]["monitor"] == "warning_events")
        .filter(|n| n["alert"]["key"]["namespace"] == ns.name.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn nodes_pvc_pending_fires_then_resolves_when_deleted() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "pvc").await;
    let kpulse = start(&ns, "monitors: {pvc_pending: {for: 1s}}\n").await;

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"storageClassName": "kpulse-e2e-missing", "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .expect("create pvc");
    let key = format!("pvc_pending/{}/PersistentVolumeClaim/data/Pending", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!(
            "🚨 [e2e] {}/persistentvolumeclaim/data PVC data Pending",
            ns.name
        )
    );
    assert!(
        fired["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("(storage class \"kpulse-e2e-missing\") has been Pending since"),
        "{fired:#}"
    );

    pvcs.delete("data", &DeleteParams::default())
        .await
        .expect("delete pvc");
    wait_state(&kpulse, &key, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn nodes_a_namespace_with_the_ignore_label_is_silent_until_the_label_goes() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    let client = client().await;
    let loud = TestNamespace::new(&client, "nsloud").await;
    let quiet = TestNamespace::new(&client, "nsquiet").await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = |value: Option<&str>| {
        Patch::Merge(json!({"metadata": {"labels": {"kpulse.io/ignore": value}}}))
    };
    namespaces
        .patch(&quiet.name, &PatchParams::default(), &label(Some("true")))
        .await
        .expect("label namespace");
    // Both namespaces are included; only the label tells them apart.
    let both = format!("{}, {}", loud.name, quiet.name);
    let kpulse = Kpulse::start(
        &log_config(&both, "monitors: {pod_unschedulable: {for: 1s}}\n"),
        &loud.name,
    )
    .await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "nowhere"},
        "spec": {"nodeSelector": {"kpulse.io/no-such-node": "true"},
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    }))
    .unwrap();
    for ns in [&quiet, &loud] {
        ns.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }
    let key =
        |ns: &TestNamespace| format!("pod_unschedulable/{}/Pod/nowhere/Unschedulable", ns.name);
    wait_state(&kpulse, &key(&loud), "firing").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !kpulse
            .notifications()
            .iter()
            .any(|n| n["key"] == key(&quiet)),
        "ignored namespace alerted: {:#?}",
        kpulse.notifications()
    );

    // Without the label the namespace is watched again, live.
    namespaces
        .patch(&quiet.name, &PatchParams::default(), &label(None))
        .await
        .expect("unlabel namespace");
    wait_state(&kpulse, &key(&quiet), "firing").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    loud.delete().await;
    quiet.delete().await;
}
