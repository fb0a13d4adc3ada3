//! Detection on real containers, beyond single pods: probes, a CronJob whose runs fail, a
//! Deployment rolled out to an image that does not exist, a DaemonSet whose pod cannot start, the
//! canary and pod start-up latency, all run by the real node's kubelet (e2e/real_node.rs says
//! how). The controllers are the real ones too; the test writes no status.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{Kpulse, WAIT, count, eventually, metric, start, wait_state};
use crate::real_node::{IMAGE, NODE, container_status, create, namespace, pod, sh};
use crate::workloads::create as create_object;

/// A pod template for the real node running `container`.
pub(crate) fn template(app: &str, container: Value) -> Value {
    let pod = serde_json::to_value(pod("x", json!([container]))).unwrap();
    json!({"metadata": {"labels": {"app": app}}, "spec": pod["spec"]})
}

/// The first hint's cause of a notification from the `log` sink.
fn cause(notification: &Value) -> String {
    notification["alert"]["evidence"]["hints"][0]["cause"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every hint's cause of a notification from the `log` sink.
fn causes(notification: &Value) -> Vec<String> {
    notification["alert"]["evidence"]["hints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["cause"].as_str().map(String::from))
        .collect()
}

fn patch(image: &str) -> Patch<Value> {
    Patch::Strategic(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
    )
}

#[tokio::test]
async fn real_node_failing_readiness_probe_fires_pod_not_ready_and_resolves_once_it_passes() {
    let Some(ns) = namespace("real-ready").await else {
        return;
    };
    let kpulse = start(&ns, "monitors: {pod_not_ready: {for: 2s}}\n").await;
    // Ready only once /tmp/ready exists, which the container makes after 25 seconds.
    let mut app = sh("sleep 25; touch /tmp/ready; exec sleep 3600");
    app["readinessProbe"] = json!({"exec": {"command": ["cat", "/tmp/ready"]},
                                   "periodSeconds": 1, "failureThreshold": 1});
    create(&ns, pod("web", json!([app]))).await;

    let key = format!("pod_not_ready/{}/Pod/web/NotReady", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["node"], NODE, "{fired:#}");
    // The kubelet, not the test, says it is running and not ready.
    let c = container_status(&ns, "web", "running, not ready", |c| {
        c["state"]["running"].is_object() && c["ready"] == false
    })
    .await;
    assert_eq!(c["restartCount"], 0, "{c:#}");
    container_status(&ns, "web", "ready", |c| c["ready"] == true).await;
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(count(&kpulse, &key, "firing"), 1, "fired once");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_failing_liveness_probe_restarts_the_container_and_says_so() {
    let Some(ns) = namespace("real-live").await else {
        return;
    };
    let kpulse = start(&ns, "").await;
    // An application that stops on SIGTERM with 143, as most do, under a liveness probe that
    // always fails: the kubelet kills and restarts it.
    let mut app = sh("trap 'exit 143' TERM; while :; do sleep 0.2; done");
    app["livenessProbe"] = json!({"exec": {"command": ["false"]}, "initialDelaySeconds": 1,
                                  "periodSeconds": 1, "failureThreshold": 1});
    create(&ns, pod("live", json!([app]))).await;

    let key = format!("pod_crashes/{}/Pod/live/ErrorExit", ns.name);
    let notice = wait_state(&kpulse, &key, "firing").await;
    let c = container_status(&ns, "live", "restarted by its liveness probe", |c| {
        c["restartCount"].as_i64() >= Some(1)
    })
    .await;
    let code = c["lastState"]["terminated"]["exitCode"].as_i64();
    assert!(code == Some(143) || code == Some(137), "{c:#}");
    let message = notice["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("exited with code {}", code.unwrap())),
        "{message}"
    );
    // The evidence names the probe: from the exit code, and from the kubelet's Unhealthy event.
    let hints = causes(&notice);
    assert!(
        hints.iter().any(|h| h.contains("liveness probe")),
        "{hints:#?}"
    );
    let events: Api<Event> = Api::namespaced(ns.client().clone(), &ns.name);
    let unhealthy = events
        .list(&ListParams::default().fields("reason=Unhealthy"))
        .await
        .unwrap();
    assert!(
        unhealthy.items.iter().any(|e| e
            .message
            .as_deref()
            .unwrap_or("")
            .contains("Liveness probe failed")),
        "the kubelet reported the probe"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_cronjob_whose_run_fails_fires_and_its_next_good_run_resolves_it() {
    let Some(ns) = namespace("real-cron").await else {
        return;
    };
    let kpulse = start(&ns, "").await;
    let job_pod = |script: &str| {
        let mut spec = template("report", sh(script))["spec"].clone();
        spec["restartPolicy"] = json!("Never");
        spec
    };
    let cronjobs: Api<CronJob> = create_object(
        &ns,
        json!({
            "metadata": {"name": "report"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"backoffLimit": 0,
                         "template": {"spec": job_pod("echo 'cannot reach the database'; exit 2")}}}}
        }),
    )
    .await;

    // The CronJob controller starts a run at the next minute; its pod exits 2 on the real node.
    let fired = kpulse
        .wait_notification("a failed run of report", WAIT, |n| {
            n["alert"]["key"]["monitor"] == "job_failed" && n["state"] == "firing"
        })
        .await;
    let key = fired["key"].as_str().unwrap().to_string();
    assert!(key.ends_with("/BackoffLimitExceeded"), "{key}");
    assert_eq!(fired["alert"]["owner"], "CronJob/report", "{fired:#}");
    let failed = serde_json::to_string(&fired["alert"]["evidence"]).unwrap();
    assert!(failed.contains("exit code 2"), "{failed}");

    // Fixed: the next run completes, and that ends the incident.
    cronjobs
        .patch(
            "report",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": job_pod("echo done")}}}}})),
        )
        .await
        .unwrap();
    kpulse
        .wait_notification("the failed run resolved", Duration::from_secs(150), |n| {
            n["key"] == key.as_str() && n["state"] == "resolved"
        })
        .await;
    assert_eq!(count(&kpulse, &key, "firing"), 1, "fired once");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_rollout_to_a_missing_image_is_stuck_and_rolling_back_resolves_it() {
    let Some(ns) = namespace("real-rollout").await else {
        return;
    };
    let kpulse = start(&ns, "monitors: {replicas_unavailable: {for: 1h}}\n").await;
    let deployments: Api<Deployment> = create_object(
        &ns,
        json!({
            "metadata": {"name": "api"},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 10,
                     "selector": {"matchLabels": {"app": "api"}},
                     "template": template("api", sh("exec sleep 3600"))}
        }),
    )
    .await;
    let available = |want: i64| {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("api").await.ok()?;
            let s = d.status?;
            (s.available_replicas.unwrap_or(0) as i64 == want
                && s.updated_replicas.unwrap_or(0) as i64 == want)
                .then_some(())
        }
    };
    eventually("2 replicas available on the real node", WAIT, || {
        available(2)
    })
    .await;

    // The new version's tag was never pushed: its pods cannot pull, and the rollout stops.
    deployments
        .patch(
            "api",
            &PatchParams::default(),
            &patch("kpulse.local/busybox:v2"),
        )
        .await
        .unwrap();
    let key = format!(
        "rollout_stuck/{}/Deployment/api/ProgressDeadlineExceeded",
        ns.name
    );
    let fired = wait_state(&kpulse, &key, "firing").await;
    let hints = causes(&fired);
    assert!(
        hints
            .iter()
            .any(|h| h.contains("does not exist in the registry")),
        "the first failing pod's pull error explains it: {:#}",
        fired["alert"]["evidence"]
    );
    let evidence = serde_json::to_string(&fired["alert"]["evidence"]).unwrap();
    assert!(evidence.contains("kpulse.local/busybox:v2"), "{evidence}");
    assert!(
        evidence.contains(&format!(
            "kubectl -n {} rollout undo deployment/api",
            ns.name
        )),
        "{evidence}"
    );

    // Rolled back: the old pods never stopped, the new one goes, and the rollout completes.
    deployments
        .patch("api", &PatchParams::default(), &patch(IMAGE))
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(count(&kpulse, &key, "firing"), 1, "fired once");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_daemonset_whose_pod_cannot_pull_is_one_message_until_its_image_is_fixed() {
    let Some(ns) = namespace("real-ds").await else {
        return;
    };
    // The DaemonSet's alert comes first (1s, seen at the next full evaluation, 15s at most), its
    // pod's pull error later (45s): the pod's alert is held back by the DaemonSet's (`inhibit`,
    // built in), so the whole thing is one message.
    let kpulse = start(
        &ns,
        "monitors: {daemonset_unscheduled: {for: 1s}, container_waiting: {error_for: 45s}}\n",
    )
    .await;
    // An image from a registry outside this machine, which containerd cannot reach (its only
    // way out is a proxy on 127.0.0.1 that refuses every connection).
    let offsite = "registry.example.com/agent:1";
    let daemonsets: Api<DaemonSet> = create_object(
        &ns,
        json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": template("agent", json!({"name": "app", "image": offsite,
                                                          "command": ["sleep", "3600"]}))}
        }),
    )
    .await;
    let key = format!(
        "daemonset_unscheduled/{}/DaemonSet/agent/Unavailable",
        ns.name
    );
    eventually(
        "the DaemonSet controller counts its pod unavailable",
        WAIT,
        || async {
            let s = daemonsets.get("agent").await.ok()?.status?;
            (s.desired_number_scheduled == 1 && s.number_unavailable == Some(1)).then_some(())
        },
    )
    .await;
    let fired = wait_state(&kpulse, &key, "firing").await;
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 of 1 pod(s) are not available"),
        "{message}"
    );
    // The first failing pod explains it, in the kubelet's words.
    assert_eq!(
        cause(&fired),
        "the node cannot reach the image's registry",
        "{fired:#}"
    );
    let facts = &fired["alert"]["evidence"]["facts"]["First failing pod"];
    assert!(
        facts
            .as_str()
            .is_some_and(|f| f.contains("app ErrImagePull") || f.contains("app ImagePullBackOff")),
        "{fired:#}"
    );
    let held = "kpulse_alerts_inhibited_total{monitor=\"container_waiting\",severity=\"warning\"}";
    eventually("the pod's pull error held back", WAIT, || async {
        (metric(&kpulse, held).await? >= 1.0).then_some(())
    })
    .await;

    daemonsets
        .patch("agent", &PatchParams::default(), &patch(IMAGE))
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    let sent = kpulse.notifications_in(&ns.name);
    assert_eq!(sent.len(), 2, "one message, one [RESOLVED]: {sent:#?}");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

fn canary(ns: &str, image: &str) -> String {
    format!(
        "monitors: {{canary: {{enabled: true, namespace: {ns}, interval: 5s, timeout: 20s, image: '{image}', \
         node_selector: {{kpulse.io/real-node: 'true'}}, tolerations: [kpulse.io/real-node]}}}}\n"
    )
}

async fn canary_runs(kpulse: &Kpulse, result: &str) -> f64 {
    metric(
        kpulse,
        &format!("kpulse_canary_runs_total{{routine=\"pod\",result=\"{result}\"}}"),
    )
    .await
    .unwrap_or(0.0)
}

#[tokio::test]
async fn real_node_canary_runs_for_real_and_a_canary_that_cannot_pull_fires_until_it_can() {
    let Some(ns) = namespace("real-canary").await else {
        return;
    };
    // An image the registry does not have: the kubelet cannot start the canary.
    let kpulse = start(&ns, &canary(&ns.name, "kpulse.local/pause:missing")).await;
    let key = format!("canary/{}/Pod/kpulse-canary/CanaryFailed", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["title"], "new pods cannot start");
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("scheduled on node {NODE}"))
            && (message.contains("ErrImagePull") || message.contains("ImagePullBackOff")),
        "{message}"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());

    // The right image: the next kpulse (same kpulse-state) sees the canary Running on the real
    // node and resolves what the first one fired.
    let kpulse = start(&ns, &canary(&ns.name, "kpulse.local/pause:1")).await;
    wait_state(&kpulse, &key, "resolved").await;
    eventually("a successful canary run", WAIT, || async {
        (canary_runs(&kpulse, "success").await >= 1.0).then_some(())
    })
    .await;
    let timed = metric(
        &kpulse,
        "kpulse_canary_duration_seconds_count{routine=\"pod\"}",
    )
    .await
    .unwrap_or(0.0);
    assert!(timed >= 1.0, "successful runs are timed: {timed}");
    assert_eq!(count(&kpulse, &key, "firing"), 0, "not fired again");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

/// The value of a series, 0 while it does not exist.
async fn value(kpulse: &Kpulse, series: &str) -> f64 {
    metric(kpulse, series).await.unwrap_or(0.0)
}

#[tokio::test]
async fn real_node_startup_latency_times_a_real_pull_and_every_container_transition() {
    let Some(ns) = namespace("real-start").await else {
        return;
    };
    let kpulse = start(
        &ns,
        "monitors: {startup_latency: {enabled: true, json_lines: true}}\n",
    )
    .await;
    // The init container's image is pulled from the local registry (`Always`); the app
    // container then finds the same image on the node (`IfNotPresent`): "already present".
    let mut init = sh("sleep 1");
    init["name"] = json!("prepare");
    init["imagePullPolicy"] = json!("Always");
    let mut app = sh("exec sleep 3600");
    app["imagePullPolicy"] = json!("IfNotPresent");
    app["readinessProbe"] = json!({"exec": {"command": ["true"]}, "periodSeconds": 1});
    let mut fresh = pod("fresh", json!([app]));
    fresh.spec.as_mut().unwrap().init_containers =
        Some(vec![serde_json::from_value(init).unwrap()]);
    create(&ns, fresh).await;
    container_status(&ns, "fresh", "ready", |c| c["ready"] == true).await;

    let events: Api<Event> = Api::namespaced(ns.client().clone(), &ns.name);
    let pulled = eventually("the kubelet's Pulled event", WAIT, || async {
        let list = events
            .list(&ListParams::default().fields("reason=Pulled"))
            .await
            .ok()?;
        list.items.into_iter().find_map(|e| {
            e.message
                .filter(|m| m.contains("Successfully pulled image"))
        })
    })
    .await;
    assert!(pulled.contains(IMAGE), "{pulled}");

    let labels = format!("namespace=\"{}\",owner_kind=\"none\"", ns.name);
    let counted = [
        format!("kpulse_pod_startup_duration_seconds_count{{stage=\"scheduled\",{labels}}}"),
        format!("kpulse_pod_startup_duration_seconds_count{{stage=\"initialized\",{labels}}}"),
        format!("kpulse_pod_startup_duration_seconds_count{{stage=\"ready\",{labels}}}"),
        format!(
            "kpulse_pod_stage_duration_seconds_count{{transition=\"created_scheduled\",{labels}}}"
        ),
        format!(
            "kpulse_pod_stage_duration_seconds_count{{transition=\"scheduled_initialized\",{labels}}}"
        ),
        format!(
            "kpulse_pod_stage_duration_seconds_count{{transition=\"initialized_ready\",{labels}}}"
        ),
        format!(
            "kpulse_container_startup_duration_seconds_count{{container_type=\"init\",transition=\"waiting_running\",{labels}}}"
        ),
        format!(
            "kpulse_container_startup_duration_seconds_count{{container_type=\"init\",transition=\"running_completed\",{labels}}}"
        ),
        format!(
            "kpulse_container_startup_duration_seconds_count{{container_type=\"regular\",transition=\"waiting_running\",{labels}}}"
        ),
        format!(
            "kpulse_container_startup_duration_seconds_count{{container_type=\"regular\",transition=\"running_ready\",{labels}}}"
        ),
        format!("kpulse_image_pull_duration_seconds_count{{container_type=\"init\",{labels}}}"),
        format!("kpulse_image_pulls_total{{result=\"pulled\",{labels}}}"),
        format!("kpulse_image_pulls_total{{result=\"already_present\",{labels}}}"),
    ];
    for series in &counted {
        eventually(&format!("{series} = 1"), WAIT, || async {
            (value(&kpulse, series).await == 1.0).then_some(())
        })
        .await;
    }
    // The init container ran `sleep 1`: at least a second from start to completion.
    let completed = value(
        &kpulse,
        &format!("kpulse_container_startup_duration_seconds_sum{{container_type=\"init\",transition=\"running_completed\",{labels}}}"),
    )
    .await;
    assert!(
        completed >= 1.0,
        "the init container slept 1 s: {completed}"
    );
    let pull = value(
        &kpulse,
        &format!("kpulse_image_pull_duration_seconds_sum{{container_type=\"init\",{labels}}}"),
    )
    .await;
    assert!(pull > 0.0, "a real pull takes time: {pull}");
    assert_eq!(
        value(
            &kpulse,
            &format!(
                "kpulse_image_pull_duration_seconds_count{{container_type=\"regular\",{labels}}}"
            )
        )
        .await,
        0.0,
        "an image already present is not a timed pull"
    );
    eventually("the pod no longer followed", WAIT, || async {
        (metric(&kpulse, "kpulse_startup_tracked_pods").await? == 0.0).then_some(())
    })
    .await;

    // The seed's output: a JSON line per record update, the last one complete.
    let last = kpulse
        .stdout
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|v| v["pod_startup"]["pod"] == "fresh")
        .expect("JSON lines of the pod's start-up on stdout");
    let record = &last["pod_startup"];
    assert_eq!(record["node"], NODE);
    assert!(record["ready"].is_string(), "{record}");
    let containers = record["containers"].as_array().unwrap();
    let prepare = containers.iter().find(|c| c["name"] == "prepare").unwrap();
    assert!(prepare["image_pull"].as_f64().unwrap() > 0.0, "{record}");
    assert_eq!(prepare["init"], true);
    let app = containers.iter().find(|c| c["name"] == "app").unwrap();
    assert_eq!(app["image_present"], true, "{record}");
    assert!(app["running_ready"].is_number(), "{record}");

    // And the slowest recent pods in /status.
    let status = kpulse.status().await.expect("/status answers");
    let slowest = status["slowest_pods"].as_array().unwrap();
    assert!(
        slowest
            .iter()
            .any(|p| p["pod"] == "fresh" && p["ready_seconds"].as_f64().unwrap() >= 1.0),
        "{status:#}"
    );
    assert!(
        kpulse.notifications_in(&ns.name).is_empty(),
        "a pod Ready within slow_after sends nothing"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_a_pod_that_cannot_start_is_reported_slow_and_resolves_once_deleted() {
    let Some(ns) = namespace("real-slow").await else {
        return;
    };
    let kpulse = start(
        &ns,
        &format!(
            "monitors: {{startup_latency: {{enabled: true, slow_after: 1h, slow_after_namespaces: {{{}: 3s}}}}}}\n",
            ns.name
        ),
    )
    .await;
    // A readiness probe that never passes: Running, never Ready.
    let mut app = sh("exec sleep 3600");
    app["readinessProbe"] = json!({"exec": {"command": ["false"]}, "periodSeconds": 1});
    create(&ns, pod("never-ready", json!([app]))).await;
    let key = format!("startup_latency/{}/Pod/never-ready/SlowStartup", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["severity"], "warning");
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("(threshold 3s)") && message.contains(&format!("on node {NODE}")),
        "{message}"
    );
    ns.pods()
        .delete("never-ready", &Default::default())
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(count(&kpulse, &key, "firing"), 1);
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

fn deployment_canary(ns: &str) -> String {
    format!(
        "monitors:\n  startup_latency: {{enabled: true}}\n  canary: {{enabled: true, namespace: {ns}, interval: 5s, timeout: 8s, \
         image: 'kpulse.local/pause:1', deployment: true, replicas: 2, \
         node_selector: {{kpulse.io/real-node: 'true'}}, tolerations: [kpulse.io/real-node]}}\n"
    )
}

#[tokio::test]
async fn real_node_deployment_canary_fails_while_the_controller_manager_is_stopped_and_resolves() {
    let Some(ns) = namespace("real-canary-deploy").await else {
        return;
    };
    let kpulse = start(&ns, &deployment_canary(&ns.name)).await;
    let runs = |routine: &str, result: &str| {
        format!("kpulse_canary_runs_total{{routine=\"{routine}\",result=\"{result}\"}}")
    };
    // With the controller-manager: the Deployment's 2 pods are created by its ReplicaSet, run on
    // the real node, turn Ready, and are garbage-collected after the Deployment's deletion.
    eventually("a successful Deployment canary run", WAIT, || async {
        (value(&kpulse, &runs("deployment", "success")).await >= 1.0).then_some(())
    })
    .await;
    for stage in ["created", "scheduled", "running", "ready", "deleted"] {
        let series = format!(
            "kpulse_canary_stage_duration_seconds_count{{routine=\"deployment\",stage=\"{stage}\"}}"
        );
        assert!(value(&kpulse, &series).await >= 1.0, "{series}");
    }
    // The canary's pods in the start-up histograms, labelled as the canary's.
    let canary_ready = format!(
        "kpulse_pod_startup_duration_seconds_count{{stage=\"ready\",namespace=\"{}\",owner_kind=\"canary\"}}",
        ns.name
    );
    assert!(value(&kpulse, &canary_ready).await >= 2.0, "{canary_ready}");
    let status = kpulse
        .status_at("status/startup")
        .await
        .expect("/status/startup");
    let last = &status["canary"]["deployment"][0];
    assert_eq!(last["result"], "success", "{status:#}");
    let stages: Vec<&str> = last["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["created", "scheduled", "running", "ready", "deleted"]
    );

    let key = format!("canary/{}/Deployment/kpulse-canary/CanaryFailed", ns.name);
    let Some(stopped) = crate::harness::StoppedControllerManager::stop() else {
        eprintln!(
            "skipped the failure half: no kube-controller-manager process of hack/cluster.sh"
        );
        assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
        ns.delete().await;
        return;
    };
    // Without it no ReplicaSet creates the pods: the run fails at stage `created`, the pod
    // routine (no controller needed) keeps succeeding.
    let fired = wait_state(&kpulse, &key, "firing").await;
    stopped.start();
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("did not reach stage created within 8s")
            && message.contains("is kube-controller-manager running?"),
        "{message}"
    );
    assert_eq!(fired["alert"]["title"], "new pods cannot be created");
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(count(&kpulse, &key, "firing"), 1);
    let pod_key = format!("canary/{}/Pod/kpulse-canary/CanaryFailed", ns.name);
    assert_eq!(
        count(&kpulse, &pod_key, "firing"),
        0,
        "the pod routine needs no controller"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
