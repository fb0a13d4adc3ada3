//! Inhibition: while an alert that was sent keeps firing, alerts it explains are held back.
//!
//! A rule has a `source` and a `target` matcher (those of `routing.rules`) and `equal`
//! attributes both must share. The built-in rules (`inhibit.defaults`): a node's `NotReady`
//! holds back the alerts of the pods on that node; a workload's own alert (`rollout_stuck`,
//! `replicas_unavailable`, `daemonset_unscheduled`), sent on its own, holds back the alerts of its
//! pods; a pod's crash loop, sent on its own (a pod without a workload), holds back that pod's
//! exit notices and restart bursts, which say the same thing again. A held-back alert that
//! still holds when its source clears is sent then (the engine waits `incidents.group_wait`
//! first, so pods that recover with their node say nothing); a held-back notice is dropped.

use crate::alert::Alert;
use crate::config::{Inhibit, InhibitAttr, Matcher, OneOrMany};

use super::incident::FOLDED;
use super::router::{Matches, RouterError};

#[derive(Debug, Clone)]
struct Rule {
    /// `node`, `workload` and `pod` for the built-in rules, `inhibit.rules[N]` for the others.
    name: String,
    source: Matches,
    target: Matches,
    equal: Vec<InhibitAttr>,
}

/// Compiled inhibition rules.
#[derive(Debug, Clone, Default)]
pub struct Inhibitions {
    rules: Vec<Rule>,
}

fn list(items: &[&str]) -> OneOrMany {
    OneOrMany(items.iter().map(|s| s.to_string()).collect())
}

fn builtin() -> Vec<Rule> {
    let pods = Matcher {
        kind: list(&["Pod"]),
        ..Matcher::default()
    };
    let rule = |name: &str, source: Matcher, equal| Rule {
        name: name.to_string(),
        source: Matches::new(&source).expect("built-in matchers compile"),
        target: Matches::new(&pods).expect("built-in matchers compile"),
        equal,
    };
    vec![
        rule(
            "node",
            Matcher {
                monitor: list(&["node_conditions"]),
                kind: list(&["Node"]),
                reason: list(&["NotReady"]),
                ..Matcher::default()
            },
            vec![InhibitAttr::Node],
        ),
        rule(
            "workload",
            Matcher {
                monitor: list(FOLDED),
                kind: list(&["Deployment", "StatefulSet", "DaemonSet"]),
                ..Matcher::default()
            },
            vec![InhibitAttr::Namespace, InhibitAttr::Workload],
        ),
        // A pod's crash loop is one thing: its exit notices and restart bursts repeat it. (A
        // workload's pods are one incident instead, whose message counts the notices.)
        Rule {
            name: "pod".to_string(),
            source: Matches::new(&Matcher {
                monitor: list(&["pod_crashes"]),
                kind: list(&["Pod"]),
                reason: list(&["CrashLoopBackOff", "OOMKilled"]),
                ..Matcher::default()
            })
            .expect("built-in matchers compile"),
            target: Matches::new(&Matcher {
                monitor: list(&["pod_crashes", "pod_restarts"]),
                kind: list(&["Pod"]),
                reason: list(&["ErrorExit", "OOMKilled", "RestartBurst"]),
                ..Matcher::default()
            })
            .expect("built-in matchers compile"),
            equal: vec![InhibitAttr::Object],
        },
    ]
}

impl Inhibitions {
    pub fn new(config: &Inhibit) -> Result<Self, RouterError> {
        let mut rules = if config.defaults {
            builtin()
        } else {
            Vec::new()
        };
        for (i, r) in config.rules.iter().enumerate() {
            let error = |side: &str, message: String| RouterError {
                section: "inhibit.rules",
                rule: i,
                message: format!("{side}: {message}"),
            };
            rules.push(Rule {
                name: format!("inhibit.rules[{i}]"),
                source: Matches::new(&r.source).map_err(|m| error("source", m))?,
                target: Matches::new(&r.target).map_err(|m| error("target", m))?,
                equal: r
                    .equal
                    .iter()
                    .map(|a| InhibitAttr::parse(a).ok_or_else(|| error("equal", a.clone())))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok(Inhibitions { rules })
    }

    /// Whether any rule could hold `alert` back (cheap: no source is looked at).
    pub fn targets(&self, alert: &Alert) -> bool {
        self.rules.iter().any(|r| r.target.matches(alert))
    }

    /// The names of the rules that could hold `alert` back (for `route-test`).
    pub fn targeting(&self, alert: &Alert) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|r| r.target.matches(alert))
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The rule under which `source` holds `target` back, if one does.
    pub fn holds(&self, source: &Alert, target: &Alert) -> Option<&str> {
        if source.key == target.key {
            return None;
        }
        self.rules
            .iter()
            .find(|r| {
                r.target.matches(target)
                    && r.source.matches(source)
                    && r.equal.iter().all(|a| {
                        let s = attr(a, source);
                        s.is_some() && s == attr(a, target)
                    })
            })
            .map(|r| r.name.as_str())
    }
}

const WORKLOADS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// An alert's value of `a`: a Node alert's node is its name, a workload alert's workload is its
/// `Kind/name`; a pod alert's are the node it runs on and its owning workload.
fn attr(a: &InhibitAttr, alert: &Alert) -> Option<String> {
    let k = &alert.key;
    match a {
        InhibitAttr::Namespace => Some(k.namespace.clone()).filter(|n| !n.is_empty()),
        InhibitAttr::Node if k.kind == "Node" => Some(k.name.clone()),
        InhibitAttr::Node => alert.node.clone(),
        InhibitAttr::Workload if WORKLOADS.contains(&k.kind.as_str()) => {
            Some(format!("{}/{}", k.kind, k.name))
        }
        InhibitAttr::Workload => alert.owner.clone(),
        InhibitAttr::Object => Some(format!("{}/{}/{}", k.namespace, k.kind, k.name)),
        InhibitAttr::Label(l) => alert.labels.get(l).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKey, Severity};
    use crate::config::load;

    fn rules(yaml: &str) -> Inhibitions {
        let c = load(
            &format!("channels: {{log: {{type: log}}}}\nrouting: {{default: [log]}}\n{yaml}"),
            &Default::default(),
        )
        .expect("valid");
        Inhibitions::new(&c.inhibit).unwrap()
    }

    fn alert(monitor: &str, ns: &str, kind: &str, name: &str, reason: &str) -> Alert {
        Alert::new(
            AlertKey::new(monitor, ns, kind, name, reason),
            Severity::Warning,
            "t",
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    fn pod(node: &str, owner: Option<&str>) -> Alert {
        let mut a = alert("pod_crashes", "shop", "Pod", "api-1", "CrashLoopBackOff");
        a.node = Some(node.into());
        a.owner = owner.map(String::from);
        a
    }

    #[test]
    fn built_in_rules_hold_back_pods_of_a_not_ready_node_and_of_a_stuck_workload() {
        let r = rules("");
        let node = alert("node_conditions", "", "Node", "n1", "NotReady");
        let pressure = alert("node_conditions", "", "Node", "n1", "DiskPressure");
        let stuck = alert(
            "rollout_stuck",
            "shop",
            "Deployment",
            "api",
            "ProgressDeadlineExceeded",
        );
        let stuck_elsewhere = alert(
            "rollout_stuck",
            "other",
            "Deployment",
            "api",
            "ProgressDeadlineExceeded",
        );
        let short_ds = alert(
            "daemonset_unscheduled",
            "shop",
            "DaemonSet",
            "agent",
            "Unavailable",
        );
        let cases = [
            (&node, pod("n1", None), Some("node")),
            (&node, pod("n2", None), None),
            (&pressure, pod("n1", None), None),
            (&stuck, pod("n2", Some("Deployment/api")), Some("workload")),
            (&stuck, pod("n2", Some("Deployment/web")), None),
            (&stuck, pod("n2", Some("StatefulSet/api")), None),
            (&stuck_elsewhere, pod("n2", Some("Deployment/api")), None),
            (
                &short_ds,
                pod("n2", Some("DaemonSet/agent")),
                Some("workload"),
            ),
            (&stuck, pod("n2", None), None),
        ];
        let looping = pod("n1", None);
        let notice = |monitor: &str, name: &str, reason: &str| {
            let mut a = alert(monitor, "shop", "Pod", name, reason);
            a.node = Some("n1".into());
            a
        };
        let cases = cases.into_iter().chain([
            (
                &looping,
                notice("pod_crashes", "api-1", "ErrorExit"),
                Some("pod"),
            ),
            (
                &looping,
                notice("pod_restarts", "api-1", "RestartBurst"),
                Some("pod"),
            ),
            (&looping, notice("pod_crashes", "api-2", "ErrorExit"), None),
            (&looping, notice("pod_not_ready", "api-1", "NotReady"), None),
        ]);
        for (i, (source, target, want)) in cases.enumerate() {
            assert_eq!(r.holds(source, &target), want, "case {i}");
        }
        // Nothing holds back a Node or a workload alert.
        assert!(!r.targets(&node) && !r.targets(&stuck));
        assert_eq!(r.holds(&node, &node), None);
    }

    #[test]
    fn defaults_can_be_switched_off_and_rules_added() {
        let r = rules(
            "inhibit:\n  defaults: false\n  rules:\n  - source: {monitor: pvc_usage}\n    target: {monitor: pod_crashes}\n    equal: [namespace, labels.app]\n",
        );
        let node = alert("node_conditions", "", "Node", "n1", "NotReady");
        assert_eq!(r.holds(&node, &pod("n1", None)), None);
        let mut full = alert(
            "pvc_usage",
            "shop",
            "PersistentVolumeClaim",
            "data",
            "SpaceUsage",
        );
        full.labels.insert("app".into(), "db".into());
        let mut crash = pod("n1", None);
        crash.labels.insert("app".into(), "db".into());
        assert_eq!(r.holds(&full, &crash), Some("inhibit.rules[0]"));
        crash.labels.insert("app".into(), "web".into());
        assert_eq!(r.holds(&full, &crash), None, "labels.app differs");
    }
}
