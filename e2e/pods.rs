//! Pod monitors end to end: the real scheduler leaves a pod unschedulable; pod status is patched
//! the way a kubelet would for image pull errors, failing readiness, restarts and evictions.
//! Every resolvable alert is followed to its `[RESOLVED]`.
//!
//! Why patched status here: evictions and pods on a NotReady node need a node the tests can break
//! (the real node carries every real-container test); the image pull, readiness and restart cases
//! also run on real containers (e2e/real_node.rs, e2e/real_workloads.rs) and stay here because
//! they pin exact timestamps and restart counts the kubelet's back-off would make slow.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::harness::{
    Kpulse, TestNamespace, ago, client, count, eventually, log_config, start, status_running,
    wait_state,
};
use crate::nodes_events::{fake_node, patch_ready};

#[tokio::test]
async fn pods_unschedulable_fires_with_the_schedulers_message_and_resolves_on_delete() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "unsched").await;
    let kpulse = start(&ns, "monitors: {pod_unschedulable: {for: 1s}}\n").await;

    create_pause_pod(
        &ns,
        "nowhere",
        json!({"nodeSelector": {"kpulse.io/no-such-node": "true"}}),
    )
    .await;
    let key = format!("pod_unschedulable/{}/Pod/nowhere/Unschedulable", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/nowhere nowhere unschedulable", ns.name)
    );
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("The scheduler says: 0/") && message.contains("node(s) didn't match"),
        "{message}"
    );

    ns.pods()
        .delete("nowhere", &DeleteParams::default())
        .await
        .expect("delete pod");
    let resolved = wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(
        resolved["text"],
        format!(
            "✅ [RESOLVED] [e2e] {}/pod/nowhere nowhere unschedulable",
            ns.name
        )
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn pods_image_pull_backoff_fires_then_resolves_when_running() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "pull").await;
    let kpulse = start(&ns, "monitors: {container_waiting: {error_for: 1s}}\n").await;

    ns.create_pod("api", Default::default()).await;
    ns.patch_pod_status(
        "api",
        json!({
            "phase": "Pending",
            "startTime": ago(60),
            "conditions": [{"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": ago(60)}],
            "containerStatuses": [{
                "name": "app", "image": "registry.example/api:nope", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"registry.example/api:nope\""}},
                "lastState": {}
            }]
        }),
    )
    .await;
    let key = format!("container_waiting/{}/Pod/api/ImagePullBackOff", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/api api/app ImagePullBackOff", ns.name)
    );
    assert!(
        fired["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("Back-off pulling image \"registry.example/api:nope\""),
        "{fired:#}"
    );

    ns.patch_pod_status("api", status_running(0, None)).await;
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(
        (
            count(&kpulse, &key, "firing"),
            count(&kpulse, &key, "resolved")
        ),
        (1, 1)
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn pods_not_ready_fires_then_resolves_when_ready() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "notready").await;
    let kpulse = start(&ns, "monitors: {pod_not_ready: {for: 1s}}\n").await;

    ns.create_pod("web", Default::default()).await;
    ns.patch_pod_status(
        "web",
        json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                "message": "containers with unready status: [app]", "lastTransitionTime": ago(30)}],
            "containerStatuses": [{
                "name": "app", "image": "registry.k8s.io/pause:3.10", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"running": {"startedAt": ago(60)}}, "lastState": {}
            }]
        }),
    )
    .await;
    let key = format!("pod_not_ready/{}/Pod/web/NotReady", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/web web not ready", ns.name)
    );

    ns.patch_pod_status("web", status_running(0, None)).await;
    wait_state(&kpulse, &key, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn pods_restart_burst_is_reported_once() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "restarts").await;
    let kpulse = start(&ns, "").await; // default: 3 restarts within 15m

    ns.create_pod("flaky", Default::default()).await;
    ns.patch_pod_status("flaky", status_running(0, None)).await;
    // Give the watch a moment to see restart count 0 before it jumps.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ns.patch_pod_status("flaky", status_running(1, Some(("Error", 1))))
        .await;
    ns.patch_pod_status("flaky", status_running(3, Some(("Error", 1))))
        .await;
    let key = format!("pod_restarts/{}/Pod/flaky/RestartBurst", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/flaky flaky restarted 3 times", ns.name)
    );
    assert_eq!(fired["alert"]["resolvable"], false);
    // One more restart is not a new burst.
    ns.patch_pod_status("flaky", status_running(4, Some(("Error", 1))))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&kpulse, &key, "firing"), 1);
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// Creates pod `name` with one pause container `app` and the other `spec` fields given.
async fn create_pause_pod(ns: &TestNamespace, name: &str, mut spec: serde_json::Value) {
    spec["containers"] = json!([{"name": "app", "image": "registry.k8s.io/pause:3.10"}]);
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    ns.pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

/// Creates `name` bound to `node` directly, as the scheduler would, and marks it running.
async fn running_on(ns: &TestNamespace, name: &str, node: &str) {
    create_pause_pod(ns, name, json!({"nodeName": node})).await;
    ns.patch_pod_status(name, status_running(0, None)).await;
}

#[tokio::test]
async fn pods_evicted_from_one_node_are_reported_in_one_message_per_namespace() {
    let client = client().await;
    let shop = TestNamespace::new(&client, "evicted").await;
    let billing = TestNamespace::new(&client, "evicted").await;
    let kpulse = Kpulse::start(
        &log_config(
            &format!("{}, {}", shop.name, billing.name),
            "monitors: {pod_evicted: {group_window: 3s}}\n",
        ),
        &shop.name,
    )
    .await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;

    // Three pods of two namespaces on one node.
    let pods = [
        (&shop, "cache-1"),
        (&shop, "cache-2"),
        (&billing, "ledger-1"),
    ];
    for (ns, name) in pods {
        running_on(ns, name, "kpulse-node-1").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (ns, name) in pods {
        ns.patch_pod_status(
            name,
            json!({
                "phase": "Failed", "reason": "Evicted",
                "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi.",
                "conditions": [{"type": "Ready", "status": "False"}]
            }),
        )
        .await;
    }
    let key = |ns: &TestNamespace| format!("pod_evicted/{}/Node/kpulse-node-1/Evicted", ns.name);
    let fired = wait_state(&kpulse, &key(&shop), "firing").await;
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/node/kpulse-node-1 2 pods evicted", shop.name)
    );
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "The kubelet on node kpulse-node-1 evicted 2 pods in namespace {} to reclaim resources:",
            shop.name
        )),
        "{message}"
    );
    for name in ["cache-1", "cache-2"] {
        assert!(
            message.contains(&format!(
                "{}/{name}: The node was low on resource: memory.",
                shop.name
            )),
            "{message}"
        );
    }
    assert!(!message.contains("ledger-1"), "{message}");
    let other = wait_state(&kpulse, &key(&billing), "firing").await;
    assert_eq!(
        other["text"],
        format!(
            "🚨 [e2e] {}/node/kpulse-node-1 {}/ledger-1 evicted",
            billing.name, billing.name
        )
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    for ns in [&shop, &billing] {
        assert_eq!(
            count(&kpulse, &key(ns), "firing"),
            1,
            "one message per group"
        );
    }
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    shop.delete().await;
    billing.delete().await;
}

/// Pod status: running, its container up but not ready, `Ready` False since `since` with no
/// reason (what the node lifecycle controller writes on a pod of a node gone NotReady).
fn status_not_ready(since: String) -> serde_json::Value {
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": since}],
        "containerStatuses": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": ago(120)}}, "lastState": {}
        }]
    })
}

#[tokio::test]
async fn pods_not_ready_on_a_not_ready_node_wait_for_the_node_to_recover() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "deadnode").await;
    let wait = 10;
    let kpulse = start(
        &ns,
        &format!(
            "monitors: {{pod_not_ready: {{for: {wait}s}}, node_conditions: {{not_ready_for: 1s}}}}\n"
        ),
    )
    .await;
    let (nodes, node) = fake_node(&client).await;
    patch_ready(&nodes, &node, "False", ago(120)).await;
    // The node alert says kpulse has seen the node down.
    wait_state(
        &kpulse,
        &format!("node_conditions//Node/{node}/NotReady"),
        "firing",
    )
    .await;

    // The controller's mark on the pod of the dead node, then the same on a pod of a Ready node.
    running_on(&ns, "orphan", &node).await;
    ns.patch_pod_status("orphan", status_not_ready(ago(60)))
        .await;
    ns.create_pod("probe", Default::default()).await;
    ns.patch_pod_status("probe", status_not_ready(ago(60)))
        .await;
    let key = |pod: &str| format!("pod_not_ready/{}/Pod/{pod}/NotReady", ns.name);
    // Pod events are handled in order: once `probe` fired, `orphan` was decided before it.
    wait_state(&kpulse, &key("probe"), "firing").await;
    assert_eq!(
        count(&kpulse, &key("orphan"), "firing"),
        0,
        "a pod of a NotReady node paged: {:#?}",
        kpulse.notifications_in(&ns.name)
    );

    // The node recovers and the pod stays not ready: it fires `for` after the recovery.
    let recovered = std::time::Instant::now();
    patch_ready(&nodes, &node, "True", ago(0)).await;
    let fired = wait_state(&kpulse, &key("orphan"), "firing").await;
    // Transition times have whole seconds, so the window may start up to 1 s early.
    assert!(
        recovered.elapsed() >= Duration::from_secs(wait - 2),
        "fired {:?} after the node recovered",
        recovered.elapsed()
    );
    assert_eq!(
        fired["text"],
        format!("🚨 [e2e] {}/pod/orphan orphan not ready", ns.name)
    );
    assert_eq!(fired["alert"]["node"], node.as_str());
    nodes
        .delete(&node, &DeleteParams::default())
        .await
        .expect("delete node");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// A metric's value in a `/metrics` body, e.g. `kpulse_x_count{stage="ready"}`.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Marks `name` initialized and ready `initialized` and `ready` seconds after its creation, as a
/// kubelet would, keeping the scheduler's PodScheduled condition.
async fn started(ns: &TestNamespace, name: &str, initialized: i64, ready: i64) {
    let pod = ns.pods().get(name).await.unwrap();
    let created = pod.metadata.creation_timestamp.unwrap().0;
    let at = |s: i64| (created + jiff::SignedDuration::from_secs(s)).to_string();
    let mut conditions: Vec<serde_json::Value> = pod
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ == "PodScheduled")
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    conditions.push(
        json!({"type": "Initialized", "status": "True", "lastTransitionTime": at(initialized)}),
    );
    conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": at(ready)}));
    ns.patch_pod_status(name, json!({"phase": "Running", "conditions": conditions}))
        .await;
}

#[tokio::test]
async fn pods_startup_latency_is_measured_once_per_stage_for_pods_created_after_start() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "startup").await;
    // A pod from before kpulse started is not measured, even when it turns ready later.
    ns.create_pod("before", Default::default()).await;
    // Creation times are whole seconds: let the second pass so `before` is clearly older.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let kpulse = start(&ns, "monitors: {startup_latency: {enabled: true}}\n").await;
    started(&ns, "before", 1, 7).await;

    ns.create_pod("first", Default::default()).await;
    started(&ns, "first", 2, 5).await;
    let series = |stage: &str, what: &str| {
        format!(
            "kpulse_pod_startup_duration_seconds_{what}{{stage=\"{stage}\",namespace=\"{}\",owner_kind=\"none\"}}",
            ns.name
        )
    };
    let transition = |t: &str| {
        format!(
            "kpulse_pod_stage_duration_seconds_sum{{transition=\"{t}\",namespace=\"{}\",owner_kind=\"none\"}}",
            ns.name
        )
    };
    let body = eventually("first pod measured", Duration::from_secs(30), || async {
        let body = kpulse.metrics().await?;
        (metric(&body, &series("ready", "count")) == Some(1.0)).then_some(body)
    })
    .await;
    assert_eq!(metric(&body, &series("ready", "sum")), Some(5.0), "{body}");
    assert_eq!(metric(&body, &series("initialized", "count")), Some(1.0));
    assert_eq!(metric(&body, &series("initialized", "sum")), Some(2.0));
    assert_eq!(metric(&body, &series("scheduled", "count")), Some(1.0));
    // Stage to stage: initialized at 2 s, ready at 5 s.
    assert_eq!(
        metric(&body, &transition("initialized_ready")),
        Some(3.0),
        "{body}"
    );

    // Ready again after a container restart is not a new start-up.
    ns.patch_pod_status(
        "first",
        json!({"conditions": [{"type": "Ready", "status": "False"}]}),
    )
    .await;
    started(&ns, "first", 2, 60).await;
    ns.create_pod("second", Default::default()).await;
    started(&ns, "second", 1, 3).await;
    let body = eventually("second pod measured", Duration::from_secs(30), || async {
        let body = kpulse.metrics().await?;
        (metric(&body, &series("ready", "count")) == Some(2.0)).then_some(body)
    })
    .await;
    assert_eq!(
        metric(&body, &series("ready", "sum")),
        Some(8.0),
        "only `first` (5 s) and `second` (3 s): {body}"
    );
    assert_eq!(metric(&body, &series("scheduled", "count")), Some(2.0));
    assert_eq!(
        metric(&body, &transition("initialized_ready")),
        Some(5.0),
        "3 s for `first`, 2 s for `second`: {body}"
    );
    assert!(
        kpulse.notifications_in(&ns.name).is_empty(),
        "pods that start within slow_after send nothing"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
