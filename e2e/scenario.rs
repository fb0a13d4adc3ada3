//! The whole cluster at once: failures and normal operations of many kinds side by side, on real
//! containers where the real node can produce them, held over several full re-evaluations, then
//! fixed. The exact messages are asserted: one per incident, one `[RESOLVED]` per incident, and
//! nothing for what is normal or explained by another alert (pods of a NotReady node). Failures that only show when every monitor sees many objects of
//! many kinds at once (flapping, one incident told twice, noise from a healthy rollout) fail it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{
    WAIT, ago, eventually, metric, re_evaluated, start, status_crash_loop, status_running,
};
use crate::nodes_events::{fake_node, patch_ready};
use crate::real_node::{IMAGE, namespace, sh};
use crate::real_workloads::template;
use crate::workloads::create;

/// A pod template for the real node running `script`.
fn real(app: &str, script: &str) -> Value {
    template(app, sh(script))
}

fn deployment(name: &str, replicas: i32, script: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "progressDeadlineSeconds": 30,
                 "selector": {"matchLabels": {"app": name}}, "template": real(name, script)}
    })
}

fn job(name: &str, script: &str) -> Value {
    let mut template = real(name, script);
    template["spec"]["restartPolicy"] = json!("Never");
    json!({"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": template}})
}

/// Notifications per (monitor/namespace/kind/name, state), the reason left out: an incident's
/// key names its workload, whatever reasons joined.
fn tally(sent: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for n in sent {
        let key = n["key"].as_str().unwrap_or_default();
        let object = key.rsplit_once('/').map_or(key, |(o, _)| o).to_string();
        let state = n["state"].as_str().unwrap_or_default().to_string();
        *out.entry((object, state)).or_default() += 1;
    }
    out
}

async fn available(api: &Api<Deployment>, name: &str, want: i32) -> Option<()> {
    let s = api.get(name).await.ok()?.status?;
    (s.available_replicas.unwrap_or(0) == want
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want)
        .then_some(())
}

#[tokio::test]
async fn whole_cluster_many_failures_and_normal_operations_at_once_give_one_message_per_incident() {
    let Some(ns) = namespace("scenario").await else {
        return;
    };
    let client = ns.client().clone();
    let kpulse = start(
        &ns,
        "monitors: {replicas_unavailable: {for: 20s, none_available_for: 20s}}\n",
    )
    .await;

    // Healthy, and staying so: a StatefulSet, a DaemonSet, two Deployments that will roll out
    // and scale down normally, and a Job that completes.
    let statefulsets: Api<StatefulSet> = create(
        &ns,
        json!({
            "metadata": {"name": "db"},
            "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": real("db", "exec sleep 3600")}
        }),
    )
    .await;
    create::<DaemonSet>(&ns, json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": real("agent", "exec sleep 3600")}
    }))
    .await;
    let deployments: Api<Deployment> = create(&ns, deployment("front", 2, "exec sleep 3600")).await;
    create::<Deployment>(&ns, deployment("batch", 3, "exec sleep 3600")).await;
    create::<Deployment>(&ns, deployment("web", 2, "exec sleep 3600")).await;
    let jobs: Api<Job> = create(&ns, job("report", "echo done")).await;
    for name in ["front", "batch", "web"] {
        let want = if name == "batch" { 3 } else { 2 };
        eventually(&format!("{name} available"), WAIT, || {
            available(&deployments, name, want)
        })
        .await;
    }

    // The failures, all at once:
    // 1. a Deployment whose 3 replicas crash (exit 1) on the real node: one incident;
    create::<Deployment>(
        &ns,
        deployment("checkout", 3, "echo 'config invalid'; exit 1"),
    )
    .await;
    // 2. a rollout to a tag the registry does not have: stuck past its deadline;
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "kpulse.local/busybox:v2"}]}}}})),
        )
        .await
        .unwrap();
    // 3. a Job that fails;
    create::<Job>(&ns, job("migrate", "echo 'schema locked'; exit 3")).await;
    // 4. a node that goes NotReady with its pods (a fake node: the real one must stay up).
    let (nodes, node) = fake_node(&client).await;
    patch_ready(&nodes, &node, "True", ago(3600)).await;
    for name in ["cache-0", "cache-1"] {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "cache"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": IMAGE}]}
        }))
        .unwrap();
        ns.pods().create(&PostParams::default(), &p).await.unwrap();
        ns.patch_pod_status(name, json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": IMAGE, "imageID": "", "ready": true, "restartCount": 0,
                                   "state": {"running": {"startedAt": ago(3600)}}}]}))
            .await;
    }
    patch_ready(&nodes, &node, "False", ago(600)).await;
    let node_key = format!("node_conditions//Node/{node}");
    let is_node = |v: &Value| v["key"].as_str().is_some_and(|k| k.starts_with(&node_key));
    kpulse
        .wait_notification("the node's NotReady", WAIT, |v| {
            is_node(v) && v["state"] == "firing"
        })
        .await;
    // Its kubelet's last words before it went quiet: the pods' containers crash-looping. The
    // node's alert explains them and holds them back (`inhibit`, built in).
    for name in ["cache-0", "cache-1"] {
        ns.patch_pod_status(name, status_crash_loop("Error", 1, 4))
            .await;
    }

    // Normal operations meanwhile: a rollout of front, a scale-down of batch, a pod deleted.
    deployments
        .patch(
            "front",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"spec": {"template": {"metadata": {"annotations": {"version": "2"}}}}}),
            ),
        )
        .await
        .unwrap();
    deployments
        .patch(
            "batch",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("db-0 running", WAIT, || async {
        let p = ns.pods().get_opt("db-0").await.ok().flatten()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    ns.pods()
        .delete("db-0", &DeleteParams::default())
        .await
        .unwrap();

    let n = &ns.name;
    let expected_firing = [
        format!("pod_crashes/{n}/Deployment/checkout"),
        format!("rollout_stuck/{n}/Deployment/web"),
        format!("job_failed/{n}/Job/migrate"),
    ];
    for object in &expected_firing {
        kpulse
            .wait_notification(object, Duration::from_secs(150), |v| {
                v["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(object.as_str()))
                    && v["state"] == "firing"
            })
            .await;
    }

    // Held over three full re-evaluations of every watch: nothing flaps, nothing is told twice.
    re_evaluated(
        &kpulse,
        &["pods", "deployments", "statefulsets", "daemonsets", "jobs"],
        3.0,
    )
    .await;
    let firing: BTreeMap<_, _> = expected_firing
        .iter()
        .map(|o| ((o.clone(), "firing".to_string()), 1))
        .collect();
    let sent = kpulse.notifications_in(n);
    assert_eq!(
        tally(&sent),
        firing,
        "one message per incident, nothing for normal operations: {sent:#?}"
    );
    let node_sent: Vec<_> = kpulse.notifications().into_iter().filter(is_node).collect();
    assert_eq!(node_sent.len(), 1, "the node once: {node_sent:#?}");
    let held = "kpulse_alerts_inhibited_total{monitor=\"pod_crashes\",severity=\"warning\"}";
    let held = metric(&kpulse, held).await.unwrap_or(0.0);
    assert!(
        held >= 2.0,
        "both pods' crash loops held back by their node: {held}"
    );
    // /status says which alert holds each pod's back.
    let status = kpulse.status().await.expect("/status");
    for pod in ["cache-0", "cache-1"] {
        let alert = status["active_alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                a["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(&format!("pod_crashes/{n}/Pod/{pod}/")))
            })
            .unwrap_or_else(|| panic!("{pod} in /status: {status:#}"));
        assert_eq!(alert["sent"], false, "{alert}");
        assert!(
            alert["inhibited_by"]
                .as_str()
                .is_some_and(|k| k.starts_with(&node_key)),
            "{pod} held back by its node: {alert}"
        );
    }

    // Everything fixed: each incident resolves once.
    deployments
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "command": ["sh", "-c", "exec sleep 3600"]}]}}}})),
        )
        .await
        .unwrap();
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": IMAGE}]}}}})),
        )
        .await
        .unwrap();
    jobs.delete("migrate", &DeleteParams::background())
        .await
        .unwrap();
    patch_ready(&nodes, &node, "True", ago(0)).await;
    for name in ["cache-0", "cache-1"] {
        ns.patch_pod_status(name, status_running(4, Some(("Error", 1))))
            .await;
    }
    for object in &expected_firing {
        kpulse
            .wait_notification(
                &format!("{object} resolved"),
                Duration::from_secs(150),
                |v| {
                    v["key"]
                        .as_str()
                        .is_some_and(|k| k.starts_with(object.as_str()))
                        && v["state"] == "resolved"
                },
            )
            .await;
    }
    kpulse
        .wait_notification("the node Ready again", WAIT, |v| {
            is_node(v) && v["state"] == "resolved"
        })
        .await;
    for name in ["checkout", "web"] {
        let want = if name == "checkout" { 3 } else { 2 };
        eventually(&format!("{name} available"), WAIT, || {
            available(&deployments, name, want)
        })
        .await;
    }
    let db: StatefulSet = statefulsets.get("db").await.unwrap();
    assert_eq!(db.status.and_then(|s| s.ready_replicas), Some(2));
    let report: Job = jobs.get("report").await.unwrap();
    assert_eq!(report.status.and_then(|s| s.succeeded), Some(1));

    let mut want = firing.clone();
    for o in &expected_firing {
        want.insert((o.clone(), "resolved".to_string()), 1);
    }
    let sent = kpulse.notifications_in(n);
    assert_eq!(
        tally(&sent),
        want,
        "one message and one [RESOLVED] per incident: {sent:#?}"
    );
    let node_sent: Vec<_> = kpulse.notifications().into_iter().filter(is_node).collect();
    assert_eq!(
        node_sent.len(),
        2,
        "the node: once, resolved once: {node_sent:#?}"
    );

    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
    let _ = nodes.delete(&node, &DeleteParams::default()).await;
}
