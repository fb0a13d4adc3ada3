//! Workload monitors end to end, with conditions produced by the real controllers.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::harness::{TestNamespace, client, eventually, start, start_webhook, wait_state};

pub(crate) async fn create<K>(ns: &TestNamespace, object: Value) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(ns.client().clone(), &ns.name);
    let obj: K = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create object");
    api
}

pub(crate) fn template(app: &str, node_selector: Value) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"nodeSelector": node_selector, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "10m"}}}]}
    })
}

#[tokio::test]
async fn workloads_deployment_past_its_deadline_fires_rollout_stuck_and_resolves_on_delete() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "rollout").await;
    let kpulse = start(
        &ns,
        "monitors: {replicas_unavailable: {for: 1s, none_available_for: 1s}}\n",
    )
    .await;
    let api: Api<Deployment> = create(&ns, json!({
        "metadata": {"name": "stuck"},
        "spec": {"replicas": 2, "progressDeadlineSeconds": 10, "selector": {"matchLabels": {"app": "stuck"}},
                 "template": template("stuck", json!({"kpulse.io/no-such-node": "true"}))}
    }))
    .await;
    let stuck = format!(
        "rollout_stuck/{}/Deployment/stuck/ProgressDeadlineExceeded",
        ns.name
    );
    let fired = wait_state(&kpulse, &stuck, "firing").await;
    // The counts are the Deployment's, and said to be: both pods of the new ReplicaSet exist
    // (updated) and neither is available.
    assert_eq!(
        fired["text"],
        format!(
            "🚨 [e2e] {}/deployment/stuck Deployment stuck is stuck: progress deadline exceeded (2/2 updated, 2 unavailable)",
            ns.name
        )
    );
    let rs = fired["alert"]["fields"]["New ReplicaSet"].as_str().unwrap();
    assert!(rs.starts_with("stuck-"), "{fired:#}");
    let unavailable = format!(
        "replicas_unavailable/{}/Deployment/stuck/ReplicasUnavailable",
        ns.name
    );
    let n = wait_state(&kpulse, &unavailable, "firing").await;
    assert_eq!(n["severity"], "critical", "no replica available at all");

    api.delete("stuck", &DeleteParams::default()).await.unwrap();
    wait_state(&kpulse, &stuck, "resolved").await;
    wait_state(&kpulse, &unavailable, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// The name of the Job's pod, once the scheduler has placed it.
async fn job_pod(ns: &TestNamespace, job: &str) -> String {
    let pods: Api<Pod> = ns.pods();
    let selector = format!("job-name={job}");
    let pod = eventually(
        &format!("the pod of Job {job}, scheduled"),
        Duration::from_secs(30),
        || async {
            pods.list(&ListParams::default().labels(&selector))
                .await
                .ok()?
                .items
                .into_iter()
                .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        },
    )
    .await;
    pod.metadata.name.unwrap()
}

/// The pod's container exits with `exit_code`, as a kubelet would report it.
async fn exit_pod(ns: &TestNamespace, pod: &str, exit_code: i32) {
    let now = jiff::Timestamp::now().to_string();
    let (phase, reason) = if exit_code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    ns.patch_pod_status(pod, json!({
        "phase": phase,
        "containerStatuses": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": reason, "exitCode": exit_code, "startedAt": now, "finishedAt": now}}}]
    }))
    .await;
}

fn job(name: &str, owner: Option<&CronJob>) -> Value {
    let owners: Vec<Value> = owner
        .map(|c| json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": c.metadata.name, "uid": c.metadata.uid, "controller": true}))
        .into_iter()
        .collect();
    json!({
        "metadata": {"name": name, "ownerReferences": owners},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}
    })
}

#[tokio::test]
async fn workloads_job_over_its_backoff_limit_fires_job_failed() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "job").await;
    let kpulse = start(&ns, "").await;
    let jobs: Api<Job> = create(&ns, job("backup", None)).await;
    exit_pod(&ns, &job_pod(&ns, "backup").await, 1).await;
    let key = format!("job_failed/{}/Job/backup/BackoffLimitExceeded", ns.name);
    let n = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        n["alert"]["title"],
        "Job backup failed: BackoffLimitExceeded"
    );
    jobs.delete("backup", &DeleteParams::background())
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn workloads_failed_cronjob_run_resolves_when_a_newer_run_succeeds() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "jobnext").await;
    // Delivered through a real webhook channel, as a receiving system would see it.
    let (kpulse, receiver) =
        start_webhook(&ns, "monitors: {cronjob_missed: {enabled: false}}\n").await;
    // Suspended, so the CronJob controller starts no runs of its own; the test starts them.
    let cronjobs: Api<CronJob> = create(&ns, json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 0 1 1 *", "suspend": true,
                 "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}}}
    }))
    .await;
    let cj = cronjobs.get("nightly").await.unwrap();
    create::<Job>(&ns, job("nightly-1", Some(&cj))).await;
    exit_pod(&ns, &job_pod(&ns, "nightly-1").await, 1).await;
    let key = format!("job_failed/{}/Job/nightly-1/BackoffLimitExceeded", ns.name);
    let a = receiver.alert(&key, "firing").await;
    assert_eq!(a["title"], "Job nightly-1 failed: BackoffLimitExceeded");
    assert_eq!(a["owner"], "CronJob/nightly");
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["resolvable"], true);

    create::<Job>(&ns, job("nightly-2", Some(&cj))).await;
    exit_pod(&ns, &job_pod(&ns, "nightly-2").await, 0).await;
    // The failed Job is still there; the newer successful run ends the incident.
    let r = receiver.alert(&key, "resolved").await;
    assert!(
        r["headline"]
            .as_str()
            .unwrap()
            .starts_with("✅ [RESOLVED] [e2e]"),
        "{r}"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn workloads_hpa_without_metrics_fires_hpa_unhealthy() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "hpa").await;
    let kpulse = start(
        &ns,
        "monitors: {hpa_unhealthy: {for: 0s}, replicas_unavailable: {enabled: false}}\n",
    )
    .await;
    create::<Deployment>(&ns, json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template("web", json!({}))}
    }))
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = create(&ns, json!({
        "metadata": {"name": "web"},
        "spec": {"minReplicas": 1, "maxReplicas": 3, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    }))
    .await;
    // No metrics server: the real HPA controller reports ScalingActive=False.
    let key = format!(
        "hpa_unhealthy/{}/HorizontalPodAutoscaler/web/ScalingActive",
        ns.name
    );
    let n = wait_state(&kpulse, &key, "firing").await;
    assert!(
        n["alert"]["title"]
            .as_str()
            .unwrap()
            .starts_with("HPA web cannot scale"),
        "{n}"
    );
    hpas.delete("web", &DeleteParams::default()).await.unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn workloads_daemonset_with_unavailable_pods_fires_and_resolves_when_they_are_ready() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "ds").await;
    let kpulse = start(
        &ns,
        "monitors: {daemonset_unscheduled: {for: 0s}, rollout_stuck: {enabled: false}}\n",
    )
    .await;
    let api: Api<DaemonSet> = create(&ns, json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", json!({"kpulse.io/fake-node": "true"}))}
    }))
    .await;
    // Pods land on the fake nodes but no kubelet ever makes them available.
    let key = format!(
        "daemonset_unscheduled/{}/DaemonSet/agent/Unavailable",
        ns.name
    );
    wait_state(&kpulse, &key, "firing").await;
    // Every pod starts and turns Ready, as the kubelets would report it.
    let pods: Api<Pod> = ns.pods();
    let names = eventually(
        "a scheduled pod on each of the 3 nodes",
        Duration::from_secs(30),
        || async {
            let names: Vec<String> = pods
                .list(&ListParams::default().labels("app=agent"))
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
                .filter_map(|p| p.metadata.name)
                .collect();
            (names.len() == 3).then_some(names)
        },
    )
    .await;
    for name in &names {
        ns.patch_pod_status(name, crate::harness::status_running(0, None))
            .await;
    }
    wait_state(&kpulse, &key, "resolved").await;
    api.delete("agent", &DeleteParams::default()).await.unwrap();
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn workloads_cronjob_blocked_by_a_hung_run_fires_cronjob_missed_and_resolves_when_it_runs() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "cron").await;
    let kpulse = start(
        &ns,
        "monitors: {cronjob_missed: {grace: 5s}, job_failed: {enabled: false}}\n",
    )
    .await;
    // Every minute; the first run never finishes (no kubelet), so with Forbid the controller
    // skips the next slot, as it would behind a hung Job in a real cluster.
    let api: Api<CronJob> = create(&ns, json!({
        "metadata": {"name": "report"},
        "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Forbid",
                 "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}}}
    }))
    .await;
    let key = format!("cronjob_missed/{}/CronJob/report/MissedSchedule", ns.name);
    let n = kpulse
        .wait_notification("firing cronjob_missed", Duration::from_secs(200), |n| {
            n["key"] == key.as_str() && n["state"] == "firing"
        })
        .await;
    assert!(
        n["message"]
            .as_str()
            .unwrap()
            .contains("concurrencyPolicy is Forbid"),
        "{n}"
    );
    // Clear the hung run: the controller starts the most recent slot at once, lastScheduleTime
    // moves past the missed slot, and the alert resolves while the CronJob is still there.
    let jobs: Api<Job> = Api::namespaced(ns.client().clone(), &ns.name);
    jobs.delete_collection(&DeleteParams::background(), &ListParams::default())
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    api.delete("report", &DeleteParams::background())
        .await
        .unwrap();
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn workloads_statefulset_without_ready_replicas_fires_and_resolves_when_ready() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let client = client().await;
    let ns = TestNamespace::new(&client, "sts").await;
    let kpulse = start(
        &ns,
        "monitors: {replicas_unavailable: {for: 1s, none_available_for: 1s}, rollout_stuck: {enabled: false}}\n",
    )
    .await;
    create::<StatefulSet>(&ns, json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template("db", json!({}))}
    }))
    .await;
    let key = format!(
        "replicas_unavailable/{}/StatefulSet/db/ReplicasUnavailable",
        ns.name
    );
    let n = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        n["alert"]["title"],
        "StatefulSet db: 0/1 replicas available"
    );
    assert_eq!(n["severity"], "critical", "no replica ready at all");
    // The pod starts and turns Ready, as a kubelet would report it.
    let pods: Api<Pod> = ns.pods();
    eventually("pod db-0, scheduled", Duration::from_secs(30), || async {
        let p = pods.get("db-0").await.ok()?;
        p.spec.as_ref()?.node_name.as_ref()?;
        Some(())
    })
    .await;
    ns.patch_pod_status("db-0", crate::harness::status_running(0, None))
        .await;
    wait_state(&kpulse, &key, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn workloads_stuck_rollout_resolves_when_fixed() {
    use kube::api::{Patch, PatchParams};
    let client = client().await;
    let ns = TestNamespace::new(&client, "rollfix").await;
    let kpulse = start(
        &ns,
        "monitors: {replicas_unavailable: {for: 1s, none_available_for: 1s}}\n",
    )
    .await;
    let api: Api<Deployment> = create(&ns, json!({
        "metadata": {"name": "api"},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 10, "selector": {"matchLabels": {"app": "api"}},
                 "template": template("api", json!({"kpulse.io/no-such-node": "true"}))}
    }))
    .await;
    let stuck = format!(
        "rollout_stuck/{}/Deployment/api/ProgressDeadlineExceeded",
        ns.name
    );
    let unavailable = format!(
        "replicas_unavailable/{}/Deployment/api/ReplicasUnavailable",
        ns.name
    );
    wait_state(&kpulse, &stuck, "firing").await;
    wait_state(&kpulse, &unavailable, "firing").await;

    // The fix: drop the impossible nodeSelector. The new ReplicaSet makes progress at once.
    api.patch(
        "api",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"nodeSelector": null}}}})),
    )
    .await
    .unwrap();
    wait_state(&kpulse, &stuck, "resolved").await;
    // Its pod lands on a node and turns Ready: replicas are available again.
    let pods: Api<Pod> = ns.pods();
    let pod = eventually(
        "the new pod, scheduled",
        Duration::from_secs(30),
        || async {
            pods.list(&ListParams::default().labels("app=api"))
                .await
                .ok()?
                .items
                .into_iter()
                .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
        },
    )
    .await;
    ns.patch_pod_status(
        pod.metadata.name.as_deref().unwrap(),
        crate::harness::status_running(0, None),
    )
    .await;
    wait_state(&kpulse, &unavailable, "resolved").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
