//! `node_resources`: nodes running out of process IDs or pod slots. PIDs from the kubelet
//! summary (`node.rlimit.curproc` of `maxpid`): `pids_warn_at` percent warns, `pids_crit_at` is
//! critical (kubelets have no PID eviction signal by default, so `PIDPressure` often never comes).
//! Pods: the pods the kubelet reports against the node's `status.capacity.pods`; `pods_warn_at`
//! percent is an info notice, as new pods will soon not fit. Resolvable.

use jiff::Timestamp;

use super::level::{level, percent};
use crate::alert::{Alert, AlertKey, Severity};
use crate::config::monitors::NodeResources;
use crate::kubelet::Summary;

pub const NAME: &str = "node_resources";

/// What fires about this node; `pod_capacity` is `status.capacity.pods`.
pub fn evaluate(
    settings: &NodeResources,
    node: &str,
    summary: &Summary,
    pod_capacity: Option<u64>,
    now: Timestamp,
) -> Vec<Alert> {
    let key = |reason: &str| AlertKey::new(NAME, "", "Node", node, reason);
    let mut out = Vec::new();
    let rlimit = summary.node.rlimit.as_ref();
    if let (Some(max), Some(cur)) = (
        rlimit.and_then(|r| r.maxpid),
        rlimit.and_then(|r| r.curproc),
    ) && max > 0
    {
        let pct = 100.0 * cur as f64 / max as f64;
        if let Some(severity) = level(pct, settings.pids_warn_at, settings.pids_crit_at) {
            out.push(
                Alert::new(key("PIDs"), severity, format!("node {node} has used {} of its process IDs", percent(pct)), now)
                    .message(format!(
                        "Node {node} runs {cur} processes of its limit of {max} ({}). When none are left, containers fail to start threads or processes: find the pod that forks without bound.",
                        percent(pct)
                    ))
                    .field("Processes", cur.to_string())
                    .field("Limit", max.to_string())
                    .node(node),
            );
        }
    }
    if let Some(capacity) = pod_capacity.filter(|c| *c > 1) {
        let pods = summary.pods.len() as u64;
        let pct = 100.0 * pods as f64 / capacity as f64;
        if pct >= f64::from(settings.pods_warn_at) {
            out.push(
                Alert::new(key("PodCapacity"), Severity::Info, format!("node {node} is running {pods} of {capacity} pods"), now)
                    .message(format!(
                        "Node {node} runs {pods} pods of its capacity of {capacity} ({}). New pods will soon not fit on it.",
                        percent(pct)
                    ))
                    .field("Pods", pods.to_string())
                    .field("Capacity", capacity.to_string())
                    .node(node),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pids_and_pod_slots() {
        let settings = NodeResources {
            enabled: true,
            ..NodeResources::default()
        }; // 85 / 95, pods 95
        let summary = |cur: u64, pods: usize| -> Summary {
            let pods: Vec<_> = (0..pods)
                .map(|i| json!({"podRef": {"name": format!("p{i}"), "namespace": "a"}}))
                .collect();
            serde_json::from_value(
                json!({"node": {"rlimit": {"maxpid": 1000, "curproc": cur}}, "pods": pods}),
            )
            .unwrap()
        };
        let cases = [
            (summary(500, 0), Some(110), vec![]),
            (
                summary(850, 0),
                Some(110),
                vec![("PIDs", Severity::Warning)],
            ),
            (
                summary(960, 0),
                Some(110),
                vec![("PIDs", Severity::Critical)],
            ),
            (
                summary(10, 105),
                Some(110),
                vec![("PodCapacity", Severity::Info)],
            ),
            (summary(10, 104), Some(110), vec![]),
            (summary(10, 5), Some(1), vec![]),
            (summary(10, 5), None, vec![]),
        ];
        for (i, (s, cap, want)) in cases.into_iter().enumerate() {
            let got: Vec<_> = evaluate(&settings, "n1", &s, cap, Timestamp::UNIX_EPOCH)
                .into_iter()
                .map(|a| (a.key.reason, a.severity))
                .collect();
            let want: Vec<_> = want.into_iter().map(|(r, s)| (r.to_string(), s)).collect();
            assert_eq!(got, want, "case {i}");
        }
    }
}
