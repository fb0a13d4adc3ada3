//! The kubelet-stats monitors end to end: a fake kubelet (HTTPS on this machine's network
//! address) serves `/stats/summary` for a Node of the test's own, and kpulse reads it through the
//! real API server's node proxy. A full claim, a full node filesystem and a node short of process
//! IDs fire; an unreadable kubelet keeps them without resolving or re-firing; emptied, they resolve.
//! A claim filling up warns from its fill rate before it reaches the static threshold.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{
    TestNamespace, certificate, client, count, eventually, in_cluster, metric, start, wait_state,
};

/// What the fake kubelet answers: a summary, or an error status.
type Answer = Arc<Mutex<Result<Value, u16>>>;

/// This machine's address on its default route: the API server refuses to proxy to loopback.
fn host_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("1.1.1.1:53").ok()?; // no packet is sent: this only picks the route
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Where a fake kubelet can listen, or `None` (with the reason printed) when these tests cannot
/// run here.
fn fake_kubelet_address() -> Option<std::net::IpAddr> {
    if in_cluster() {
        eprintln!("skipped in-cluster: the fake kubelet runs on the test machine");
        return None;
    }
    let ip = host_address();
    if ip.is_none() {
        eprintln!("skipped: no non-loopback address (the API server does not proxy to loopback)");
    }
    ip
}

/// Serves `answer` over HTTPS on `ip`, one HTTP/1.1 request per connection; returns the port.
async fn fake_kubelet(ip: std::net::IpAddr, answer: Answer) -> u16 {
    use tokio_rustls::rustls::{self, pki_types::pem::PemObject};
    let (crt, key) = certificate(1);
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(crt.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let wanted = request.starts_with(b"GET /stats/summary ");
                let current = answer.lock().unwrap().clone();
                let (status, body) = match current {
                    Ok(summary) if wanted => (200, summary.to_string()),
                    Ok(_) => (404, "not found".to_string()),
                    Err(code) => (code, "kubelet failing".to_string()),
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

/// Space and inodes of a filesystem or volume with `used` percent of its space in use.
fn fs(used: u64) -> Value {
    let gib = 1u64 << 30;
    json!({"capacityBytes": 100 * gib, "availableBytes": (100 - used) * gib, "usedBytes": used * gib,
           "inodes": 1000, "inodesFree": 900, "inodesUsed": 100})
}

fn summary(node: &str, ns: &str, disk: u64, data: u64, procs: u64) -> Value {
    let mut data_volume = fs(data);
    data_volume["name"] = json!("data");
    data_volume["pvcRef"] = json!({"name": "data", "namespace": ns});
    let mut shared = fs(99);
    shared["name"] = json!("shared");
    shared["pvcRef"] = json!({"name": "shared", "namespace": ns});
    json!({
        "node": {"nodeName": node, "fs": fs(disk), "runtime": {"imageFs": fs(disk)},
                 "rlimit": {"maxpid": 1000, "curproc": procs}},
        "pods": [{"podRef": {"name": "db-0", "namespace": ns, "uid": "u"}, "volume": [data_volume, shared]}]
    })
}

async fn claim(ns: &TestNamespace, name: &str, mode: &str) {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ns.client().clone(), &ns.name);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "kpulse-e2e-none"}
    }))
    .unwrap();
    pvcs.create(&PostParams::default(), &pvc).await.unwrap();
}

/// A Ready Node whose kubelet is the fake one.
async fn kubelet_node(client: &kube::Client, ip: std::net::IpAddr, port: u16) -> String {
    let nodes: Api<Node> = Api::all(client.clone());
    let name = format!("e2e-stats-{:06x}", rand::random_range(0..0xffffffu32));
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kpulse.io/e2e": "true"}},
        "spec": {"taints": [{"key": "kpulse.io/e2e", "effect": "NoSchedule"}]}
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": ip.to_string()}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": {"pods": "110"}
    }});
    nodes
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn stats_full_claim_disk_and_pids_fire_survive_an_unreadable_kubelet_and_resolve() {
    let Some(ip) = fake_kubelet_address() else {
        return;
    };
    let client = client().await;
    let ns = TestNamespace::new(&client, "stats").await;
    claim(&ns, "data", "ReadWriteOnce").await;
    claim(&ns, "shared", "ReadOnlyMany").await;
    let answer: Answer = Arc::new(Mutex::new(Err(503)));
    let port = fake_kubelet(ip, answer.clone()).await;
    let node = kubelet_node(&client, ip, port).await;
    *answer.lock().unwrap() = Ok(summary(&node, &ns.name, 95, 90, 900));

    let kpulse = start(
        &ns,
        "monitors: {pvc_usage: {enabled: true, interval: 5s}, node_disk: {enabled: true, interval: 5s}, node_resources: {enabled: true, interval: 5s}}\n",
    )
    .await;
    let pvc_key = format!(
        "pvc_usage/{}/PersistentVolumeClaim/data/SpaceUsage",
        ns.name
    );
    let disk_key = format!("node_disk//Node/{node}/NodefsSpace");
    let pids_key = format!("node_resources//Node/{node}/PIDs");
    let pvc = wait_state(&kpulse, &pvc_key, "firing").await;
    assert_eq!(pvc["alert"]["severity"], "warning");
    assert_eq!(pvc["alert"]["title"], "volume data is 90% full");
    let message = pvc["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("mounted by pod db-0 on node {node}"))
            && message.contains("10.0 GiB free of 100.0 GiB"),
        "{message}"
    );
    let disk = wait_state(&kpulse, &disk_key, "firing").await;
    assert_eq!(disk["alert"]["severity"], "critical");
    assert_eq!(
        disk["alert"]["title"],
        format!("node {node}: nodefs is 95% full")
    );
    let pids = wait_state(&kpulse, &pids_key, "firing").await;
    assert_eq!(pids["alert"]["severity"], "warning");

    // The kubelet stops answering: its alerts stay, nothing resolves or fires again.
    let scans = "kpulse_stats_scan_duration_seconds_count";
    let before = metric(&kpulse, scans).await.unwrap();
    *answer.lock().unwrap() = Err(500);
    eventually(
        "two scans with the kubelet failing",
        Duration::from_secs(40),
        || async { metric(&kpulse, scans).await.filter(|n| *n >= before + 2.0) },
    )
    .await;
    kpulse
        .wait_log("cannot read kubelet stats", Duration::from_secs(5))
        .await;
    for key in [&pvc_key, &disk_key, &pids_key] {
        assert_eq!(count(&kpulse, key, "resolved"), 0, "{key}");
    }

    *answer.lock().unwrap() = Ok(summary(&node, &ns.name, 50, 40, 100));
    for key in [&pvc_key, &disk_key, &pids_key] {
        wait_state(&kpulse, key, "resolved").await;
        assert_eq!(count(&kpulse, key, "firing"), 1, "{key} fired once");
    }
    let about_shared = kpulse.notifications().into_iter().find(|n| {
        n["key"]
            .as_str()
            .is_some_and(|k| k.contains("/PersistentVolumeClaim/shared/"))
    });
    assert_eq!(about_shared, None, "a ReadOnlyMany claim is never reported");
    let read = metric(&kpulse, r#"kpulse_stats_fetches_total{result="success"}"#).await;
    assert!(read.unwrap() >= 2.0, "node reads are counted: {read:?}");

    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    Api::<Node>::all(client.clone())
        .delete(&node, &DeleteParams::default())
        .await
        .unwrap();
    ns.delete().await;
}

/// A node summary whose claim `data` has `used` bytes of 100 GiB in use.
fn filling_summary(node: &str, ns: &str, used: u64) -> Value {
    let gib = 1u64 << 30;
    json!({
        "node": {"nodeName": node, "fs": fs(10)},
        "pods": [{"podRef": {"name": "db-0", "namespace": ns, "uid": "u"}, "volume": [
            {"name": "data", "pvcRef": {"name": "data", "namespace": ns},
             "capacityBytes": 100 * gib, "availableBytes": 100 * gib - used, "usedBytes": used}
        ]}]
    })
}

#[tokio::test]
async fn stats_a_claim_filling_up_warns_before_its_threshold_and_resolves_when_it_stops() {
    let Some(ip) = fake_kubelet_address() else {
        return;
    };
    let client = client().await;
    let ns = TestNamespace::new(&client, "filling").await;
    claim(&ns, "data", "ReadWriteOnce").await;
    let answer: Answer = Arc::new(Mutex::new(Err(503)));
    let port = fake_kubelet(ip, answer.clone()).await;
    let node = kubelet_node(&client, ip, port).await;
    // From 78% used, a quarter of a percent more every second, up to 87%: below the static 90%.
    let gib = (1u64 << 30) as f64;
    let (name, space) = (ns.name.clone(), answer.clone());
    let node_name = node.clone();
    let growth = tokio::spawn(async move {
        for step in 0..=36u32 {
            let used = ((78.0 + f64::from(step) * 0.25) / 100.0 * 100.0 * gib) as u64;
            *space.lock().unwrap() = Ok(filling_summary(&node_name, &name, used));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    let kpulse = start(
        &ns,
        "monitors: {pvc_usage: {enabled: true, interval: 5s, trend_window: 20s, fill_within: 1h}}\n",
    )
    .await;
    let key = format!(
        "pvc_usage/{}/PersistentVolumeClaim/data/SpaceUsage",
        ns.name
    );
    let fired = wait_state(&kpulse, &key, "firing").await;
    assert_eq!(fired["alert"]["severity"], "warning");
    let title = fired["alert"]["title"].as_str().unwrap();
    assert!(
        title.starts_with("volume data is 8") && title.ends_with("% full and filling up"),
        "{title}"
    );
    let message = fired["alert"]["message"].as_str().unwrap();
    assert!(
        message.contains("At the rate of the last 20s it is full in about "),
        "{message}"
    );

    // Growth stops at 87%: once the window holds only flat readings, nothing is filling.
    growth.await.unwrap();
    wait_state(&kpulse, &key, "resolved").await;
    assert_eq!(count(&kpulse, &key, "firing"), 1, "fired once");
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    Api::<Node>::all(client.clone())
        .delete(&node, &DeleteParams::default())
        .await
        .unwrap();
    ns.delete().await;
}

async fn node_names(nodes: &Api<Node>) -> Vec<String> {
    let list = nodes.list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect()
}

#[tokio::test]
async fn stats_node_lists_are_read_page_by_page_completely() {
    let nodes: Api<Node> = Api::all(client().await);
    let before = node_names(&nodes).await;
    let paged = kpulse::monitors::stats::list_pages(&nodes, 1, |n| n.metadata.name.clone())
        .await
        .unwrap();
    let after = node_names(&nodes).await;
    // Other tests add and remove nodes meanwhile: every node present throughout must be there.
    let stable: Vec<&String> = before.iter().filter(|n| after.contains(n)).collect();
    // Locally 3 fake nodes and more make several pages; a one-node kind cluster makes one.
    assert!(!stable.is_empty(), "nodes to read: {before:?}");
    for name in stable {
        assert!(paged.contains(name), "{name} missing from {paged:?}");
    }
    let unique: std::collections::BTreeSet<_> = paged.iter().collect();
    assert_eq!(unique.len(), paged.len(), "no node twice: {paged:?}");
}
