//! `pod_evicted`: pods evicted by the kubelet (`status.reason=Evicted`), grouped per namespace and
//! node: the first eviction of a namespace's pod on a node opens a group, every eviction of that
//! namespace's pods on that node within `group_window` joins it, and when the window closes one
//! message lists them all ("The kubelet on node n1 evicted 4 pods in namespace shop ... The node
//! was low on resource: memory"). The alert key carries the namespace, so routing by namespace
//! sends each team its own evictions. One-shot.
//!
//! Only evictions seen happening (a pod turning Evicted, or a new evicted pod) after start-up are
//! reported, never those in the initial list. The Pod watch's monitor records them into
//! [`Groups`]; a task started next to the Pod watch ([`flush`]) sends the groups whose window has
//! closed, so a quiet cluster does not hold a group back.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio_util::sync::CancellationToken;

use super::evictions;
pub use super::evictions::{Eviction, Groups};
use super::pod::owner;
use crate::alert::Alert;
use crate::config::Config;
use crate::monitors::watch::{Finding, ObjectMonitor};
use crate::pipeline::Pipeline;

pub const NAME: &str = evictions::MONITOR;
crate::monitors::feeds::feed!(PODS: Pod, NAME, |w| Arc::new(PodEvicted::new(w.evictions.clone())));

/// How often closed groups are looked for.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The monitor: records evictions into the groups [`flush`] sends.
pub struct PodEvicted {
    groups: Arc<Groups>,
}

impl PodEvicted {
    pub fn new(groups: Arc<Groups>) -> Self {
        PodEvicted { groups }
    }

    fn record(&self, pod: &Pod, now: Timestamp) {
        if let Some((node, e)) = eviction(pod) {
            self.groups.record(&node, e, now);
        }
    }
}

/// The node and eviction of a pod the kubelet evicted.
pub fn eviction(pod: &Pod) -> Option<(String, Eviction)> {
    let status = pod.status.as_ref()?;
    if status.reason.as_deref() != Some("Evicted") {
        return None;
    }
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_else(|| "(unknown)".to_string());
    Some((
        node,
        Eviction {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            owner: owner(pod),
            message: status.message.clone().unwrap_or_default(),
        },
    ))
}

impl ObjectMonitor<Pod> for PodEvicted {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pod_evicted.enabled
    }

    /// Facts only: nothing here fires or changes with time.
    fn timed(&self, _config: &Config, _pod: &Pod, _now: Timestamp) -> bool {
        false
    }

    fn firing(&self, _config: &Config, _pod: &Pod, _now: Timestamp) -> Vec<Finding> {
        Vec::new()
    }

    fn changes(&self, _config: &Config, old: &Pod, new: &Pod, now: Timestamp) -> Vec<Alert> {
        if eviction(old).is_none() {
            self.record(new, now);
        }
        Vec::new()
    }

    fn created(&self, _config: &Config, pod: &Pod, now: Timestamp) -> Vec<Alert> {
        self.record(pod, now);
        Vec::new()
    }
}

/// Sends each of `groups` once its window has closed, until cancelled.
pub async fn flush(groups: Arc<Groups>, pipeline: Pipeline, token: CancellationToken) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = every.tick() => {
                let window = pipeline.runtime().config.monitors.pod_evicted.group_window.signed();
                for alert in groups.due(pipeline.now(), window) {
                    pipeline.submit(alert);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{self, secs_after_noon as at};
    use jiff::SignedDuration;
    use serde_json::json;

    fn pod(name: &str, node: &str, reason: Option<&str>) -> Pod {
        pod_in("shop", name, node, reason)
    }

    fn pod_in(ns: &str, name: &str, node: &str, reason: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"pod-template-hash": "7d9f8c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8c", "uid": "u", "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "server"}]},
            "status": {"phase": if reason.is_some() { "Failed" } else { "Running" }, "reason": reason,
                "message": "The node was low on resource: memory."}
        }))
        .unwrap()
    }

    fn config() -> Config {
        testkit::config("")
    }

    fn monitor() -> PodEvicted {
        PodEvicted::new(Arc::default())
    }

    #[test]
    fn evictions_on_a_node_make_one_message_when_the_window_closes() {
        let c = config();
        let m = monitor();
        let window = SignedDuration::from_mins(5);
        let running = |n| pod(n, "n1", None);
        let evicted = |n, node| pod(n, node, Some("Evicted"));
        m.changes(&c, &running("api-1"), &evicted("api-1", "n1"), at(0));
        m.changes(&c, &running("api-2"), &evicted("api-2", "n1"), at(60));
        // A repeat update of an already evicted pod adds nothing.
        m.changes(&c, &evicted("api-2", "n1"), &evicted("api-2", "n1"), at(70));
        m.created(&c, &evicted("web-1", "n2"), at(200));
        assert!(
            m.groups.due(at(299), window).is_empty(),
            "window still open"
        );
        let got = m.groups.due(at(300), window);
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(a.key.to_string(), "pod_evicted/shop/Node/n1/Evicted");
        assert_eq!(a.title, "2 pods evicted");
        assert_eq!(
            a.message,
            "The kubelet on node n1 evicted 2 pods in namespace shop to reclaim resources:\n\
             shop/api-1 (Deployment/api): The node was low on resource: memory.\n\
             shop/api-2 (Deployment/api): The node was low on resource: memory."
        );
        assert_eq!(a.owner.as_deref(), Some("Deployment/api"));
        assert_eq!(a.first_seen, at(0));
        assert!(!a.resolvable);
        let got = m.groups.due(at(500), window);
        assert_eq!(got[0].title, "shop/web-1 evicted");
        assert!(m.groups.due(at(900), window).is_empty());
    }

    #[test]
    fn other_failures_are_not_evictions() {
        let c = config();
        let m = monitor();
        let mut p = pod("api-1", "n1", Some("Evicted"));
        p.status.as_mut().unwrap().reason = Some("DeadlineExceeded".into());
        m.created(&c, &p, at(0));
        m.changes(
            &c,
            &pod("api-2", "n1", None),
            &pod("api-2", "n1", None),
            at(0),
        );
        assert!(m.groups.due(at(3600), SignedDuration::ZERO).is_empty());
    }

    #[test]
    fn each_namespace_gets_its_own_alert_and_route() {
        let c = crate::config::load(
            "channels: {ops: {type: log}, shop-team: {type: log}}\n\
             routing: {default: [ops], rules: [{match: {namespace: shop}, channels: [shop-team]}]}\n",
            &Default::default(),
        )
        .unwrap();
        let router = crate::engine::Router::new(&c.routing).unwrap();
        let m = monitor();
        m.created(&c, &pod_in("shop", "api-1", "n1", Some("Evicted")), at(0));
        m.created(
            &c,
            &pod_in("billing", "db-1", "n1", Some("Evicted")),
            at(10),
        );
        m.created(&c, &pod_in("shop", "api-2", "n1", Some("Evicted")), at(20));
        let got = m.groups.due(at(400), SignedDuration::from_mins(5));
        let summary: Vec<(String, &str, Vec<String>)> = got
            .iter()
            .map(|a| {
                (
                    a.key.to_string(),
                    a.title.as_str(),
                    router.route(a).channels,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "pod_evicted/billing/Node/n1/Evicted".to_string(),
                    "billing/db-1 evicted",
                    vec!["ops".to_string()]
                ),
                (
                    "pod_evicted/shop/Node/n1/Evicted".to_string(),
                    "2 pods evicted",
                    vec!["shop-team".to_string()]
                ),
            ]
        );
        assert!(
            !got[1].message.contains("billing"),
            "a team sees only its own pods: {}",
            got[1].message
        );
    }
}
