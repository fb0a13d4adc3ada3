//! The kubelet stats scan behind `pvc_usage`, `node_disk` and `node_resources`.
//!
//! While any of them is enabled, the leader reads the stats summary of every Ready node (at most
//! [`PARALLEL`] at a time, each within [`FETCH_TIMEOUT`]) once per the shortest `interval` of the
//! enabled ones, and reconciles each monitor with what fires. A node whose summary cannot be read
//! keeps the findings of its last good read, so a kubelet that stops answering neither resolves its
//! alerts nor fires again (node_conditions reports the kubelet itself). While a Ready node has
//! never been read, only the objects seen on the other nodes are reconciled, so nothing resolves
//! that might still hold there. Scans are timed in `kpulse_stats_scan_duration_seconds` and node
//! reads counted in `kpulse_stats_fetches_total{result}`.

pub mod level;
pub mod node_disk;
pub mod node_resources;
pub mod pvc_usage;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use self::pvc_usage::Claims;
use super::filter;
use crate::alert::{Alert, Finding};
use crate::config::Config;
use crate::engine::Scope;
use crate::kubelet::{ApiProxy, PvcRef, StatsFetcher, Summary};
use crate::metrics::ResultLabels;
use crate::pipeline::Pipeline;

/// Nodes read at the same time.
pub const PARALLEL: usize = 8;
/// How long one node's summary may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Objects per page when listing nodes and claims.
pub const PAGE: u32 = 250;

/// What one node's summary fires, per monitor.
#[derive(Debug, Clone, Default)]
pub struct NodeFindings {
    /// Every reported claim mounted on the node, with its alerts (possibly none).
    pub pvc: BTreeMap<PvcRef, Vec<Alert>>,
    pub disk: Vec<Alert>,
    pub resources: Vec<Alert>,
}

/// The monitors a scan serves, and how often it runs.
pub(super) fn due(config: &Config) -> Option<Duration> {
    let m = &config.monitors;
    [
        (m.pvc_usage.enabled, m.pvc_usage.interval),
        (m.node_disk.enabled, m.node_disk.interval),
        (m.node_resources.enabled, m.node_resources.interval),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, every)| every.0)
    .min()
}

/// What a scan keeps of a Node: it lists every node each time, one page at a time, and holds
/// only this.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    /// `Ready=True`: only then is its kubelet read.
    pub ready: bool,
    /// `status.capacity.pods`.
    pub pod_capacity: Option<u64>,
}

impl NodeInfo {
    /// `None` for a node carrying `kpulse.io/ignore`.
    pub fn of(node: &Node) -> Option<Self> {
        if filter::ignored(
            node.metadata.labels.as_ref(),
            node.metadata.annotations.as_ref(),
        ) {
            return None;
        }
        let status = node.status.as_ref();
        Some(NodeInfo {
            name: node.name_any(),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            pod_capacity: status
                .and_then(|s| s.capacity.as_ref()?.get("pods"))
                .and_then(|q| q.0.parse().ok()),
        })
    }
}

/// Lists every object, `page` at a time, keeping what `keep` makes of each.
pub async fn list_pages<K, T>(
    api: &Api<K>,
    page: u32,
    mut keep: impl FnMut(&K) -> Option<T>,
) -> kube::Result<Vec<T>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(page);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items.iter().filter_map(&mut keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Evaluates one summary for every enabled stats monitor.
pub fn evaluate(
    config: &Config,
    node: &NodeInfo,
    summary: &Summary,
    claims: &Claims,
    trends: &mut pvc_usage::Trends,
    now: jiff::Timestamp,
) -> NodeFindings {
    let m = &config.monitors;
    let name = &node.name;
    NodeFindings {
        pvc: if m.pvc_usage.enabled {
            pvc_usage::evaluate(&m.pvc_usage, name, summary, claims, trends, now)
        } else {
            BTreeMap::new()
        },
        disk: if m.node_disk.enabled {
            node_disk::evaluate(&m.node_disk, name, summary, now)
        } else {
            Vec::new()
        },
        resources: if m.node_resources.enabled {
            node_resources::evaluate(&m.node_resources, name, summary, node.pod_capacity, now)
        } else {
            Vec::new()
        },
    }
}

/// What a scan tells the engine: per monitor, the scope and the alerts firing in it.
pub type Decisions = Vec<(&'static str, Scope, Vec<Alert>)>;

/// Turns the findings of every node into reconciles. `fresh` are the nodes read in this scan,
/// `carried` the ones that kept their last findings; `complete` is false while a Ready node has
/// never been read, and then only what the fresh nodes showed is reconciled.
pub fn decide(
    config: &Config,
    fresh: &BTreeMap<String, NodeFindings>,
    carried: &BTreeMap<String, NodeFindings>,
    complete: bool,
) -> Decisions {
    let m = &config.monitors;
    let mut out: Decisions = Vec::new();
    let all = || fresh.iter().chain(carried.iter());
    if m.pvc_usage.enabled {
        if complete {
            // One alert per key: a claim mounted on several nodes keeps its worst reading.
            let mut worst: BTreeMap<_, Alert> = BTreeMap::new();
            for a in all().flat_map(|(_, f)| f.pvc.values().flatten()) {
                if worst.get(&a.key).is_none_or(|w| w.severity < a.severity) {
                    worst.insert(a.key.clone(), a.clone());
                }
            }
            out.push((pvc_usage::NAME, Scope::All, worst.into_values().collect()));
        } else {
            for (pvc, alerts) in fresh.values().flat_map(|f| f.pvc.iter()) {
                let scope = Scope::object(&pvc.namespace, pvc_usage::KIND, &pvc.name);
                out.push((pvc_usage::NAME, scope, alerts.clone()));
            }
        }
    }
    type Pick = fn(&NodeFindings) -> &Vec<Alert>;
    let per_node: [(bool, &'static str, Pick); 2] = [
        (m.node_disk.enabled, node_disk::NAME, |f| &f.disk),
        (m.node_resources.enabled, node_resources::NAME, |f| {
            &f.resources
        }),
    ];
    for (enabled, monitor, pick) in per_node {
        if !enabled {
            continue;
        }
        if complete {
            let firing = all().flat_map(|(_, f)| pick(f).iter().cloned()).collect();
            out.push((monitor, Scope::All, firing));
        } else {
            for (node, f) in fresh {
                out.push((monitor, Scope::object("", "Node", node), pick(f).clone()));
            }
        }
    }
    out
}

/// The scan's memory: the last findings of every node, which nodes are failing, and the fill
/// history of every claim.
#[derive(Default)]
pub struct Scanner {
    last: BTreeMap<String, NodeFindings>,
    pvc_trends: pvc_usage::Trends,
    failing: BTreeSet<String>,
    /// Nodes read and unreadable in the last scan, logged when they change.
    counts: Option<(usize, usize)>,
}

impl Scanner {
    /// One scan: list nodes and claims, read every Ready node, reconcile.
    pub async fn scan(
        &mut self,
        client: &kube::Client,
        fetcher: &Arc<dyn StatsFetcher>,
        pipeline: &Pipeline,
        visibility: &filter::Visibility,
    ) {
        let started = Instant::now();
        let config = pipeline.runtime().config.clone();
        let watched = match list_pages(&Api::<Node>::all(client.clone()), PAGE, NodeInfo::of).await
        {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet stats scan skipped: cannot list nodes");
                return;
            }
        };
        let mut claims = Claims::default();
        if config.monitors.pvc_usage.enabled {
            let namespaces = visibility.now(&pipeline.runtime());
            let all = Api::<PersistentVolumeClaim>::all(client.clone());
            let listed = list_pages(&all, PAGE, |c| {
                claims.add(c, &namespaces);
                None::<()>
            })
            .await;
            if let Err(e) = listed {
                tracing::warn!(error = %e, "kubelet stats scan skipped: cannot list PersistentVolumeClaims");
                return;
            }
        }
        let to_read: Vec<String> = watched
            .iter()
            .filter(|n| n.ready)
            .map(|n| n.name.clone())
            .collect();
        let reads: Vec<(String, Result<Summary, String>)> = futures::stream::iter(to_read)
            .map(|name| {
                let fetcher = fetcher.clone();
                async move {
                    let read =
                        match tokio::time::timeout(FETCH_TIMEOUT, fetcher.summary(&name)).await {
                            Ok(r) => r,
                            Err(_) => Err(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())),
                        };
                    (name, read)
                }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let decisions = self.absorb(
            &config,
            &watched,
            reads,
            &claims,
            pipeline.now(),
            pipeline.metrics(),
        );
        for (monitor, scope, firing) in decisions {
            pipeline.reconcile(
                monitor,
                &scope,
                firing.into_iter().map(Finding::firing).collect(),
            );
        }
        let metrics = pipeline.metrics();
        metrics
            .stats_scan_duration
            .observe(started.elapsed().as_secs_f64());
    }

    /// Takes one scan's reads of the `watched` nodes: evaluates the readable ones, carries the
    /// last findings of the others, remembers the result, and says what to reconcile.
    pub fn absorb(
        &mut self,
        config: &Config,
        watched: &[NodeInfo],
        reads: Vec<(String, Result<Summary, String>)>,
        claims: &Claims,
        now: jiff::Timestamp,
        metrics: &crate::metrics::Metrics,
    ) -> Decisions {
        let mut fresh = BTreeMap::new();
        let mut complete = true;
        for (name, read) in reads {
            match read {
                Ok(summary) => {
                    metrics
                        .stats_fetches
                        .get_or_create(&ResultLabels::new("success"))
                        .inc();
                    if self.failing.remove(&name) {
                        tracing::info!(node = %name, "kubelet stats readable again");
                    }
                    if let Some(node) = watched.iter().find(|n| n.name == name) {
                        let found =
                            evaluate(config, node, &summary, claims, &mut self.pvc_trends, now);
                        fresh.insert(name, found);
                    }
                }
                Err(why) => {
                    metrics
                        .stats_fetches
                        .get_or_create(&ResultLabels::new("failure"))
                        .inc();
                    if self.failing.insert(name.clone()) {
                        tracing::warn!(node = %name, error = %why, "cannot read kubelet stats; keeping the node's last findings");
                    } else {
                        tracing::debug!(node = %name, error = %why, "cannot read kubelet stats");
                    }
                    if !self.last.contains_key(&name) {
                        complete = false;
                    }
                }
            }
        }
        // Nodes not read now (not Ready, or failing) keep their last findings while they exist.
        let carried: BTreeMap<String, NodeFindings> = watched
            .iter()
            .map(|n| n.name.clone())
            .filter(|n| !fresh.contains_key(n))
            .filter_map(|n| self.last.remove(&n).map(|f| (n, f)))
            .collect();
        let decisions = decide(config, &fresh, &carried, complete);
        let counts = (fresh.len(), self.failing.len());
        if self.counts != Some(counts) {
            self.counts = Some(counts);
            tracing::info!(
                read = counts.0,
                unreadable = counts.1,
                complete,
                "kubelet stats scan"
            );
        }
        // History is kept for claims that still exist and are reported, read or not this time.
        self.pvc_trends.retain(|(pvc, _), _| claims.contains(pvc));
        let present: BTreeSet<&String> = watched.iter().map(|n| &n.name).collect();
        self.failing.retain(|n| present.contains(n));
        self.last = fresh;
        self.last.extend(carried);
        decisions
    }
}

/// Scans while a stats monitor is enabled and this replica leads.
pub async fn run(client: kube::Client, ctx: super::Context) {
    let (pipeline, token) = (&ctx.pipeline, &ctx.token);
    let fetcher: Arc<dyn StatsFetcher> = Arc::new(ApiProxy::new(client.clone()));
    let mut scanner = Scanner::default();
    let mut clock = super::Periodic::default();
    while clock.tick(token).await {
        let Some(interval) = due(&pipeline.runtime().config) else {
            scanner = Scanner::default();
            continue;
        };
        if !pipeline.is_leader() || !clock.due(interval) {
            continue;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = scanner.scan(&client, &fetcher, pipeline, &ctx.namespaces) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKey, Severity};

    fn config() -> Config {
        let mut c = Config::default();
        c.monitors.pvc_usage.enabled = true;
        c.monitors.node_disk.enabled = true;
        c
    }

    fn alert(monitor: &str, ns: &str, kind: &str, name: &str, severity: Severity) -> Alert {
        let key = AlertKey::new(monitor, ns, kind, name, "SpaceUsage");
        Alert::new(key, severity, "t", jiff::Timestamp::UNIX_EPOCH)
    }

    fn findings(pvc: &str, severity: Severity, node: &str) -> NodeFindings {
        let at = PvcRef {
            name: pvc.into(),
            namespace: "shop".into(),
        };
        NodeFindings {
            pvc: [(
                at,
                vec![alert(
                    "pvc_usage",
                    "shop",
                    "PersistentVolumeClaim",
                    pvc,
                    severity,
                )],
            )]
            .into(),
            disk: vec![alert("node_disk", "", "Node", node, severity)],
            resources: vec![],
        }
    }

    #[test]
    fn a_complete_scan_reconciles_everything_with_the_worst_reading_per_claim() {
        let fresh = [("n1".to_string(), findings("data", Severity::Warning, "n1"))].into();
        let carried = [("n2".to_string(), findings("data", Severity::Critical, "n2"))].into();
        let d = decide(&config(), &fresh, &carried, true);
        let monitors: Vec<_> = d.iter().map(|(m, s, _)| (*m, s.clone())).collect();
        assert_eq!(
            monitors,
            vec![("pvc_usage", Scope::All), ("node_disk", Scope::All)]
        );
        assert_eq!(d[0].2.len(), 1);
        assert_eq!(d[0].2[0].severity, Severity::Critical);
        assert_eq!(
            d[1].2.len(),
            2,
            "both nodes' disk alerts, the carried one kept"
        );
    }

    #[test]
    fn an_incomplete_scan_only_reconciles_what_it_saw() {
        let fresh = [("n1".to_string(), findings("data", Severity::Warning, "n1"))].into();
        let d = decide(&config(), &fresh, &BTreeMap::new(), false);
        let scopes: Vec<_> = d.iter().map(|(m, s, _)| (*m, s.clone())).collect();
        assert_eq!(
            scopes,
            vec![
                (
                    "pvc_usage",
                    Scope::object("shop", "PersistentVolumeClaim", "data")
                ),
                ("node_disk", Scope::object("", "Node", "n1")),
            ]
        );
    }

    #[test]
    fn the_scan_runs_at_the_shortest_enabled_interval() {
        let mut c = Config::default();
        assert_eq!(due(&c), None);
        c.monitors.node_disk.enabled = true;
        c.monitors.node_disk.interval = crate::config::types::HumanDuration::secs(30);
        c.monitors.pvc_usage.enabled = true;
        assert_eq!(due(&c), Some(Duration::from_secs(30)));
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: true,
            pod_capacity: Some(110),
        }
    }

    #[test]
    fn what_a_scan_keeps_of_a_node() {
        let node = |labels: serde_json::Value, ready: &str| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n1", "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": ready}],
                           "capacity": {"pods": "110"}, "images": [{"names": ["big"]}]},
            }))
            .unwrap()
        };
        let info = NodeInfo::of(&node(serde_json::json!({}), "True"));
        assert_eq!(
            info,
            Some(NodeInfo {
                name: "n1".into(),
                ready: true,
                pod_capacity: Some(110)
            })
        );
        let info = NodeInfo::of(&node(serde_json::json!({}), "Unknown")).unwrap();
        assert!(!info.ready);
        let ignored = node(serde_json::json!({"kpulse.io/ignore": "true"}), "True");
        assert_eq!(NodeInfo::of(&ignored), None);
    }

    fn full_disk(node: &str) -> Summary {
        serde_json::from_value(serde_json::json!({
            "node": {"nodeName": node, "fs": {"capacityBytes": 100, "availableBytes": 5}},
        }))
        .unwrap()
    }

    fn disk_only() -> Config {
        let mut c = Config::default();
        c.monitors.node_disk.enabled = true;
        c
    }

    fn firing(d: &Decisions) -> Vec<(Scope, Vec<String>)> {
        d.iter()
            .map(|(_, scope, alerts)| {
                let names = alerts.iter().map(|a| a.key.name.clone()).collect();
                (scope.clone(), names)
            })
            .collect()
    }

    #[test]
    fn an_unreadable_node_keeps_its_findings_and_a_deleted_one_drops_them() {
        let (c, m, t) = (
            disk_only(),
            crate::metrics::Metrics::new(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let (n1, n2) = (node("n1"), node("n2"));
        let mut s = Scanner::default();
        let node_scope = Scope::object("", "Node", "n1");
        // (nodes present, n2 readable, what is reconciled, why)
        type Round<'a> = (Vec<NodeInfo>, bool, (Scope, &'a [&'a str]), &'a str);
        let rounds: [Round; 4] = [
            (
                vec![n1.clone(), n2.clone()],
                false,
                (node_scope, &["n1"]),
                "n2 never read: only n1",
            ),
            (
                vec![n1.clone(), n2.clone()],
                true,
                (Scope::All, &["n1", "n2"]),
                "both read",
            ),
            (
                vec![n1.clone(), n2.clone()],
                false,
                (Scope::All, &["n1", "n2"]),
                "n2 failing keeps its alert",
            ),
            (
                vec![n1.clone()],
                true,
                (Scope::All, &["n1"]),
                "n2 deleted: its alert resolves",
            ),
        ];
        for (nodes, n2_readable, (scope, names), why) in rounds {
            let mut reads = vec![("n1".to_string(), Ok(full_disk("n1")))];
            if nodes.len() == 2 {
                let n2 = if n2_readable {
                    Ok(full_disk("n2"))
                } else {
                    Err("connection refused".to_string())
                };
                reads.push(("n2".to_string(), n2));
            }
            let d = s.absorb(&c, &nodes, reads, &Claims::default(), t, &m);
            let names = names.iter().map(|n| n.to_string()).collect();
            assert_eq!(firing(&d), vec![(scope, names)], "{why}");
        }
        let failures = m
            .stats_fetches
            .get_or_create(&ResultLabels::new("failure"))
            .get();
        assert_eq!(failures, 2);
    }
}
