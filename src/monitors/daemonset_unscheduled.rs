//! `daemonset_unscheduled`: DaemonSets with nodes that should run a pod but do not
//! (`desiredNumberScheduled − currentNumberScheduled`), pods on nodes where they should not be
//! (`numberMisscheduled`), or unavailable pods (`numberUnavailable`), each for `for`. Resolvable.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::ResourceExt;

use super::since::Since;
use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "daemonset_unscheduled";
crate::monitors::feeds::feed!(DAEMONSETS: DaemonSet, NAME, |_| Arc::new(DaemonsetUnscheduled::default()));

#[derive(Default)]
pub struct DaemonsetUnscheduled {
    since: Since,
}

impl ObjectMonitor<DaemonSet> for DaemonsetUnscheduled {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.daemonset_unscheduled.enabled
    }
    fn firing(&self, config: &Config, d: &DaemonSet, now: Timestamp) -> Vec<Finding> {
        let (ns, name) = (d.namespace().unwrap_or_default(), d.name_any());
        let Some(st) = d.status.as_ref() else {
            return Vec::new();
        };
        let desired = st.desired_number_scheduled;
        let checks = [
            (
                "Unscheduled",
                desired - st.current_number_scheduled,
                "node(s) that should run a pod have none",
            ),
            (
                "Misscheduled",
                st.number_misscheduled,
                "pod(s) run on nodes where they should not",
            ),
            (
                "Unavailable",
                st.number_unavailable.unwrap_or(0),
                "pod(s) are not available",
            ),
        ];
        let mut out = Vec::new();
        for (reason, count, what) in checks {
            let key = format!("{}/{reason}", d.uid().unwrap_or_default());
            let Some(since) = self.since.track(key, count > 0, now) else {
                continue;
            };
            if since + config.monitors.daemonset_unscheduled.r#for.signed() > now {
                continue;
            }
            let mut a = Alert::new(
                AlertKey::new(NAME, &ns, "DaemonSet", &name, reason),
                Severity::Warning,
                format!("DaemonSet {name}: {count} {reason}"),
                now,
            )
            .message(format!(
                "DaemonSet {ns}/{name}: {count} of {desired} {what} (since {since}).",
                since = display_time(since)
            ));
            a.first_seen = since;
            out.push(Finding::firing(a));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{at, config};
    use serde_json::json;

    #[test]
    fn each_problem_is_its_own_alert_after_the_window() {
        let c = config("monitors: {daemonset_unscheduled: {for: 10m}}");
        let ds = |current: i32, mis: i32, unavailable: i32| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "namespace": "mon"},
                "spec": {"selector": {}, "template": {}},
                "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": current, "numberMisscheduled": mis, "numberReady": 0, "numberUnavailable": unavailable}
            }))
            .unwrap()
        };
        let m = DaemonsetUnscheduled::default();
        assert!(
            m.firing(&c, &ds(2, 1, 3), at("2026-11-22T12:00:00Z"))
                .is_empty()
        );
        let got: Vec<String> = m
            .firing(&c, &ds(2, 1, 3), at("2026-11-22T12:10:00Z"))
            .into_iter()
            .map(|f| f.alert.key.reason)
            .collect();
        assert_eq!(got, vec!["Unscheduled", "Misscheduled", "Unavailable"]);
        assert!(
            m.firing(&c, &ds(3, 0, 0), at("2026-11-22T12:11:00Z"))
                .is_empty()
        );
    }
}
