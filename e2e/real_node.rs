//! Detection on real containers: pods pinned to the real node `kpulse-real-1` (hack/node.sh:
//! containerd, runc and a kubelet on this machine) fail the way they fail in production, and the
//! kubelet, not the test, writes their status. Images are the local ones hack/images.sh builds,
//! pulled from the cluster's own registry (hack/node.sh).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{
    Kpulse, TestNamespace, WAIT, client, count, eventually, in_cluster, start, start_webhook,
    wait_state,
};

pub(crate) const NODE: &str = "kpulse-real-1";
pub(crate) const IMAGE: &str = "kpulse.local/busybox:1";

/// Whether the real node is there to run on. It is part of every local cluster unless
/// `KPULSE_REAL_NODE=0`; when it should be there and is not Ready, the test fails.
async fn real_node() -> bool {
    if in_cluster() {
        eprintln!("skipped in-cluster: these pods run the images of the local real node");
        return false;
    }
    if std::env::var("KPULSE_REAL_NODE").is_ok_and(|v| v == "0") {
        eprintln!("skipped: KPULSE_REAL_NODE=0 (the cluster has no real node)");
        return false;
    }
    let nodes: Api<Node> = Api::all(client().await);
    let node = nodes.get_opt(NODE).await.unwrap().unwrap_or_else(|| {
        panic!(
            "no node {NODE}: hack/cluster.sh up starts it (KPULSE_REAL_NODE=0 skips these tests)"
        )
    });
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready, "node {NODE} is not Ready");
    true
}

/// A namespace of its own for a test on the real node, or `None` when there is no real node.
pub(crate) async fn namespace(prefix: &str) -> Option<TestNamespace> {
    if !real_node().await {
        return None;
    }
    Some(TestNamespace::new(&client().await, prefix).await)
}

/// A pod for the real node (its taint tolerated, its label selected) with these containers.
pub(crate) fn pod(name: &str, containers: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kpulse.io/real-node": "true"},
            "tolerations": [{"key": "kpulse.io/real-node", "operator": "Exists", "effect": "NoSchedule"}],
            "terminationGracePeriodSeconds": 1,
            "containers": containers
        }
    }))
    .unwrap()
}

/// One busybox container `app` running `script` with `sh -c`.
pub(crate) fn sh(script: &str) -> Value {
    json!({"name": "app", "image": IMAGE, "command": ["sh", "-c", script]})
}

pub(crate) async fn create(ns: &TestNamespace, pod: Pod) {
    ns.pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

pub(crate) async fn delete(ns: &TestNamespace, name: &str) {
    ns.pods()
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete pod");
}

/// Waits until kpulse logged that `key` is held back by the crash loop `by` (the built-in
/// inhibit rule `pod`).
async fn held_by_pod_rule(kpulse: &Kpulse, key: &str, by: &str) {
    eventually(&format!("{key} held back by {by}"), WAIT, || async {
        kpulse
            .json_logs()
            .iter()
            .any(|l| {
                l["message"] == "held back while the alert that explains it fires"
                    && l["alert"] == key
                    && l["by"] == by
                    && l["rule"] == "pod"
            })
            .then_some(())
    })
    .await;
}

/// The status of container `app` once `pred` holds for it.
pub(crate) async fn container_status(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let pods = ns.pods();
    eventually(what, WAIT, || async {
        let p = pods.get(name).await.ok()?;
        let status = serde_json::to_value(p.status?.container_statuses?).ok()?;
        status
            .as_array()?
            .iter()
            .find(|c| c["name"] == "app" && pred(c))
            .cloned()
    })
    .await
}

/// The last termination of container `app` (its current state if it is terminated, else its
/// last state).
pub(crate) fn terminated(c: &Value) -> &Value {
    let now = &c["state"]["terminated"];
    if now.is_object() {
        now
    } else {
        &c["lastState"]["terminated"]
    }
}

#[tokio::test]
async fn real_node_container_over_its_memory_limit_is_oom_killed_and_alerts() {
    let Some(ns) = namespace("real-oom").await else {
        return;
    };
    let (kpulse, receiver) = start_webhook(&ns, "").await;

    // dd, the container's only process, fills a 64 MiB buffer: the kernel kills it at the
    // 16 MiB limit.
    let mut hog = sh("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    hog["resources"] = json!({"limits": {"memory": "16Mi"}});
    create(&ns, pod("hog", json!([hog]))).await;

    let key = format!("pod_crashes/{}/Pod/hog/OOMKilled", ns.name);
    let fired = receiver.alert(&key, "firing").await;
    assert_eq!(fired["key"]["monitor"], "pod_crashes");
    assert_eq!(fired["key"]["reason"], "OOMKilled");
    assert_eq!(fired["title"], "hog/app OOMKilled");
    assert_eq!(fired["node"], NODE);
    // The evidence: the limit it ran into, the exit code decoded, the likely cause, commands.
    let evidence = &fired["evidence"];
    assert_eq!(
        evidence["container"]["memory_limit"], "16Mi",
        "{evidence:#}"
    );
    assert_eq!(evidence["container"]["exit_code"], 137, "{evidence:#}");
    assert_eq!(evidence["container"]["signal"], "SIGKILL", "{evidence:#}");
    assert_eq!(evidence["container"]["image"], IMAGE, "{evidence:#}");
    let cause = evidence["hints"][0]["cause"].as_str().unwrap_or_default();
    assert_eq!(
        cause, "app used more than its memory limit of 16Mi",
        "{evidence:#}"
    );
    assert!(
        evidence["commands"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("kubectl -n {} describe pod hog", ns.name))),
        "{evidence:#}"
    );
    assert_eq!(evidence["node"]["name"], NODE, "{evidence:#}");
    // The kubelet, not the test, wrote this.
    let c = container_status(&ns, "hog", "OOMKilled in the pod status", |c| {
        terminated(c)["reason"] == "OOMKilled"
    })
    .await;
    assert_eq!(terminated(&c)["exitCode"], 137, "{c:#}");

    delete(&ns, "hog").await;
    let resolved = receiver.alert(&key, "resolved").await;
    assert_eq!(
        resolved["headline"],
        format!("✅ [RESOLVED] [e2e] {}/pod/hog hog/app OOMKilled", ns.name)
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_container_exiting_1_crash_loops_and_alerts() {
    let Some(ns) = namespace("real-crash").await else {
        return;
    };
    let kpulse = start(&ns, "").await;

    create(&ns, pod("crasher", json!([sh("echo starting; exit 1")]))).await;
    // The kubelet restarts it with its back-off (10s, 20s, ...): the third restart within
    // pod_restarts' window (3 in 15m by default) is a restart storm.
    let burst_key = format!("pod_restarts/{}/Pod/crasher/RestartBurst", ns.name);
    let key = format!("pod_crashes/{}/Pod/crasher/CrashLoopBackOff", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(
        fired["text"],
        format!(
            "🚨 [e2e] {}/pod/crasher crasher/app CrashLoopBackOff",
            ns.name
        )
    );
    let c = container_status(&ns, "crasher", "CrashLoopBackOff", |c| {
        c["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    })
    .await;
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 1, "{c:#}");
    assert_eq!(c["lastState"]["terminated"]["reason"], "Error", "{c:#}");
    // The kubelet restarts it again and again. A bare pod's crash loop is one message: once it
    // was sent, the exit notices and the restart burst (the third restart within pod_restarts'
    // window, 3 in 15m by default) repeat it and are held back by the built-in `pod` rule. An
    // exit notice that came before the crash loop was told is sent, with its exit code.
    let exit_key = format!("pod_crashes/{}/Pod/crasher/ErrorExit", ns.name);
    let c = container_status(&ns, "crasher", "3 restarts", |c| {
        c["restartCount"].as_i64() >= Some(3)
    })
    .await;
    assert!(c["restartCount"].as_i64() >= Some(3), "{c:#}");
    held_by_pod_rule(&kpulse, &burst_key, &key).await;
    let exits = kpulse
        .notifications_in(&ns.name)
        .into_iter()
        .filter(|n| n["alert"]["key"]["reason"] == "ErrorExit")
        .collect::<Vec<_>>();
    if exits.is_empty() {
        held_by_pod_rule(&kpulse, &exit_key, &key).await;
    }
    for n in &exits {
        let message = n["alert"]["message"].as_str().unwrap();
        assert!(message.contains("exited with code 1 (Error)"), "{message}");
    }
    assert!(
        exits.len() <= 1,
        "at most the exit before the crash loop: {exits:#?}"
    );
    assert_eq!(count(&kpulse, &burst_key, "firing"), 0);

    delete(&ns, "crasher").await;
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(
        count(&kpulse, &key, "firing"),
        1,
        "fired once: {:#?}",
        kpulse.notifications_in(&ns.name)
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_crashes_carry_their_log_lines_redacted_and_the_exit_code_decoded() {
    let Some(ns) = namespace("real-explain").await else {
        return;
    };
    let kpulse = start(&ns, "evidence: {logs: {enabled: true, lines: 5}}\n").await;

    let script = "echo loading settings; echo connecting with password=hunter2-very-s3cret; echo giving up; exit 1";
    create(&ns, pod("talker", json!([sh(script)]))).await;
    create(&ns, pod("typo", json!([sh("exec-this-please --now")]))).await;

    let key = format!("pod_crashes/{}/Pod/talker/CrashLoopBackOff", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    let evidence = &fired["alert"]["evidence"];
    assert_eq!(
        evidence["log"],
        json!([
            "loading settings",
            "connecting with password=<redacted>",
            "giving up"
        ]),
        "the previous run's last lines, the secret redacted: {evidence:#}"
    );
    assert!(!fired.to_string().contains("hunter2"), "{fired}");
    assert_eq!(evidence["container"]["exit_code"], 1, "{evidence:#}");
    assert_eq!(
        evidence["container"]["exit_meaning"],
        "the program exited with a general error"
    );
    assert_eq!(
        evidence["hints"][0]["cause"],
        "the application exited with code 1"
    );
    assert_eq!(
        evidence["commands"][0],
        format!("kubectl -n {} logs talker -c app --previous", ns.name)
    );

    let key = format!("pod_crashes/{}/Pod/typo/CrashLoopBackOff", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    let evidence = &fired["alert"]["evidence"];
    assert_eq!(evidence["container"]["exit_code"], 127, "{evidence:#}");
    assert_eq!(evidence["hints"][0]["cause"], "exit 127: command not found");
    let log = evidence["log"].to_string();
    assert!(log.contains("exec-this-please: not found"), "{log}");

    delete(&ns, "talker").await;
    delete(&ns, "typo").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_failed_job_names_its_failed_pods() {
    let Some(ns) = namespace("real-job").await else {
        return;
    };
    let kpulse = start(&ns, "").await;
    let template = pod("unused", json!([sh("echo migrating; exit 3")]));
    let mut spec = serde_json::to_value(template.spec.unwrap()).unwrap();
    spec["restartPolicy"] = json!("Never");
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}}
    }))
    .unwrap();
    Api::<k8s_openapi::api::batch::v1::Job>::namespaced(ns.client().clone(), &ns.name)
        .create(&PostParams::default(), &job)
        .await
        .expect("create job");

    let key = format!("job_failed/{}/Job/migrate/BackoffLimitExceeded", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    let evidence = &fired["alert"]["evidence"];
    let failed = evidence["facts"]["Failed pods"]
        .as_str()
        .unwrap_or_default();
    assert!(failed.starts_with("migrate-"), "{evidence:#}");
    assert!(
        failed.ends_with(": app Error (exit code 3)"),
        "{evidence:#}"
    );
    assert_eq!(
        evidence["commands"][0],
        format!("kubectl -n {} describe job migrate", ns.name)
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_missing_image_backs_off_and_resolves_when_the_image_is_fixed() {
    let Some(ns) = namespace("real-pull").await else {
        return;
    };
    let kpulse = start(&ns, "monitors: {container_waiting: {error_for: 1s}}\n").await;

    // The local registry has busybox, but not this tag: it answers "manifest unknown".
    let missing = "kpulse.local/busybox:no-such-tag";
    create(
        &ns,
        pod(
            "puller",
            json!([{"name": "app", "image": missing, "command": ["sleep", "3600"]}]),
        ),
    )
    .await;
    let key = format!("container_waiting/{}/Pod/puller/ImagePullBackOff", ns.name);
    let fired = wait_state(&kpulse, &key, "firing").await;
    let title = fired["alert"]["title"].as_str().unwrap();
    assert!(
        title == "puller/app ImagePullBackOff" || title == "puller/app ErrImagePull",
        "{title}"
    );
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(message.contains(missing), "{message}");
    // The registry's 404, in containerd's words through the kubelet: the hint says the tag
    // does not exist.
    let evidence = &fired["alert"]["evidence"];
    let cause = evidence["hints"][0]["cause"].as_str().unwrap_or_default();
    assert_eq!(
        cause, "the image or its tag does not exist in the registry",
        "{evidence:#}"
    );
    assert_eq!(evidence["container"]["image"], missing, "{evidence:#}");

    // The image is fixed in place: the kubelet starts the container.
    ns.pods()
        .patch(
            "puller",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"containers": [{"name": "app", "image": IMAGE}]}})),
        )
        .await
        .expect("patch the image");
    container_status(&ns, "puller", "app running", |c| {
        c["state"]["running"].is_object()
    })
    .await;
    let resolved = wait_state(&kpulse, &key, "resolved").await;
    assert!(
        resolved["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ [RESOLVED] [e2e]"),
        "{resolved}"
    );
    assert_eq!(count(&kpulse, &key, "firing"), 1, "fired once");
    delete(&ns, "puller").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_missing_configmap_key_fails_container_config_and_resolves_when_added() {
    let Some(ns) = namespace("real-config").await else {
        return;
    };
    let kpulse = start(&ns, "monitors: {container_waiting: {error_for: 1s}}\n").await;
    let configmaps: Api<ConfigMap> = Api::namespaced(ns.client().clone(), &ns.name);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"other": "x"}}))
            .unwrap();
    configmaps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let mut app = sh("sleep 3600");
    app["env"] = json!([{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]);
    create(&ns, pod("configured", json!([app]))).await;
    let key = format!(
        "container_waiting/{}/Pod/configured/CreateContainerConfigError",
        ns.name
    );
    let fired = wait_state(&kpulse, &key, "firing").await;
    let message = fired["alert"]["message"].as_str().unwrap();
    // The kubelet's own words.
    assert!(
        message.contains("couldn't find key mode in ConfigMap"),
        "{message}"
    );
    let evidence = &fired["alert"]["evidence"];
    assert_eq!(
        evidence["hints"][0]["cause"],
        format!("ConfigMap {}/settings has no key mode", ns.name),
        "{evidence:#}"
    );

    configmaps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "fast"}})),
        )
        .await
        .unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    let c = container_status(&ns, "configured", "app running", |c| {
        c["state"]["running"].is_object()
    })
    .await;
    assert_eq!(c["restartCount"], 0, "{c:#}");
    delete(&ns, "configured").await;
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}

#[tokio::test]
async fn real_node_pods_have_no_route_off_this_machine() {
    let Some(ns) = namespace("real-net").await else {
        return;
    };
    let mut check = pod(
        "routes",
        json!([sh("ip -4 route; echo ---; cat /etc/resolv.conf")]),
    );
    check.spec.as_mut().unwrap().restart_policy = Some("Never".into());
    create(&ns, check).await;
    let pods = ns.pods();
    eventually("routes pod Succeeded", WAIT, || async {
        let p = pods.get("routes").await.ok()?;
        (p.status?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    let out = pods
        .logs("routes", &LogParams::default())
        .await
        .expect("pod log through the API server and the kubelet");
    let pod_ip = pods.get("routes").await.unwrap().status.unwrap().pod_ip;
    let (routes, resolv) = out.split_once("---\n").expect("routes, then resolv.conf");
    // Two routes, both on the bridge: the pod's own /24, and the `kubernetes` Service address
    // (which this machine turns into the API server on 127.0.0.1). No default route; the only
    // nameserver is the pod's own loopback (the kubelet's way of turning DNS off when the node has
    // no resolv.conf).
    let pod_ip = pod_ip.expect("pod IP");
    let prefix = pod_ip.rsplit_once('.').unwrap().0;
    let mut routes: Vec<String> = routes
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            format!("{prefix}.0/24 dev eth0 scope link src {pod_ip}"),
            format!("10.96.0.1 via {prefix}.1 dev eth0"),
        ],
        "{out}"
    );
    let nameservers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(nameservers, ["127.0.0.1"], "{out}");
    ns.delete().await;
}
