//! `rollout_stuck`: rollouts that stopped making progress. Deployments from their own conditions
//! (`Progressing=False/ProgressDeadlineExceeded`, `ReplicaFailure=True`, timestamped by the
//! controller); StatefulSets and DaemonSets when the update has not reached every replica for
//! `stalled_for`. Paused Deployments are skipped. Resolvable: when the rollout completes, the
//! condition clears, or the object is deleted.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::ResourceExt;

use super::since::Since;
use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "rollout_stuck";
crate::monitors::feeds::feed!(DEPLOYMENTS: Deployment, NAME, |_| Arc::new(RolloutStuck::default()));
crate::monitors::feeds::feed!(STATEFULSETS: StatefulSet, NAME, |_| Arc::new(RolloutStuck::default()));
crate::monitors::feeds::feed!(DAEMONSETS: DaemonSet, NAME, |_| Arc::new(RolloutStuck::default()));

#[derive(Default)]
pub struct RolloutStuck {
    since: Since,
}

fn alert(key: AlertKey, title: String, message: String, since: Timestamp, now: Timestamp) -> Alert {
    let mut a = Alert::new(key, Severity::Warning, title, now).message(message);
    a.first_seen = since;
    a
}

/// The ReplicaSet named in the controller's message (`ReplicaSet "api-7d9f" has timed out progressing.`).
fn replica_set(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("ReplicaSet \"")?;
    rest.split_once('"').map(|(name, _)| name)
}

/// A Deployment's replica counts, from its spec and status. They are the whole Deployment's,
/// old and new ReplicaSets together (`updated` are the pods of the new one).
struct Counts {
    desired: i32,
    updated: i32,
    available: i32,
    unavailable: i32,
}

impl Counts {
    fn of(d: &Deployment) -> Self {
        let status = d.status.as_ref();
        let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| {
            status.and_then(f).unwrap_or(0)
        };
        Counts {
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            updated: count(|s| s.updated_replicas),
            available: count(|s| s.available_replicas),
            unavailable: count(|s| s.unavailable_replicas),
        }
    }

    /// For the title: `1/3 updated, 2 unavailable`.
    fn short(&self) -> String {
        format!(
            "{}/{} updated, {} unavailable",
            self.updated, self.desired, self.unavailable
        )
    }

    /// For the message: `1/3 updated, 1 available, 2 unavailable`.
    fn long(&self) -> String {
        format!(
            "{}/{} updated, {} available, {} unavailable",
            self.updated, self.desired, self.available, self.unavailable
        )
    }
}

impl ObjectMonitor<Deployment> for RolloutStuck {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.rollout_stuck.enabled
    }
    /// The Deployment controller judges the deadline; its conditions change by events.
    fn timed(&self, _config: &Config, _d: &Deployment, _now: Timestamp) -> bool {
        false
    }
    fn firing(&self, _config: &Config, d: &Deployment, now: Timestamp) -> Vec<Finding> {
        if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            return Vec::new();
        }
        let (ns, name) = (d.namespace().unwrap_or_default(), d.name_any());
        let status = d.status.as_ref();
        let mut out = Vec::new();
        for c in status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            let since = c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(now);
            let detail = c.message.clone().unwrap_or_default();
            if c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            {
                let counts = Counts::of(d);
                let mut a = alert(
                    AlertKey::new(NAME, &ns, "Deployment", &name, "ProgressDeadlineExceeded"),
                    format!(
                        "Deployment {name} is stuck: progress deadline exceeded ({})",
                        counts.short()
                    ),
                    format!(
                        "Deployment {ns}/{name} has not made progress within its deadline. The Deployment's replicas: {}. {detail}",
                        counts.long()
                    ),
                    since,
                    now,
                );
                if let Some(rs) = replica_set(&detail) {
                    a = a.field("New ReplicaSet", rs);
                }
                out.push(Finding::firing(a));
            }
            if c.type_ == "ReplicaFailure" && c.status == "True" {
                out.push(Finding::firing(alert(
                    AlertKey::new(NAME, &ns, "Deployment", &name, "ReplicaFailure"),
                    format!("Deployment {name} cannot create pods"),
                    format!("Deployment {ns}/{name} cannot create replicas: {detail}"),
                    since,
                    now,
                )));
            }
        }
        out
    }
}

impl ObjectMonitor<StatefulSet> for RolloutStuck {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.rollout_stuck.enabled
    }
    fn firing(&self, config: &Config, s: &StatefulSet, now: Timestamp) -> Vec<Finding> {
        let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
        let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = s.status.as_ref();
        let updated = st.and_then(|s| s.updated_replicas).unwrap_or(0);
        let lag = st.and_then(|s| s.observed_generation).unwrap_or(0)
            < s.metadata.generation.unwrap_or(0);
        let revision_pending = st.is_some_and(|s| {
            s.update_revision.is_some() && s.update_revision != s.current_revision
        });
        // OnDelete updates pods only when someone deletes them; a partition keeps the pods below
        // it on the old revision on purpose.
        let strategy = s.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
        let on_delete = strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete");
        let partition = strategy
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .clamp(0, desired);
        let holds = desired > 0
            && (lag || (!on_delete && revision_pending && updated < desired - partition));
        let key = format!(
            "sts/{}/{}",
            s.uid().unwrap_or_default(),
            s.metadata.generation.unwrap_or(0)
        );
        match self.since.track(key, holds, now) {
            Some(since) if since + config.monitors.rollout_stuck.stalled_for.signed() <= now => {
                vec![Finding::firing(alert(
                    AlertKey::new(NAME, &ns, "StatefulSet", &name, "RolloutStalled"),
                    format!("StatefulSet {name} rollout is not progressing"),
                    format!(
                        "StatefulSet {ns}/{name} has updated {updated}/{desired} replicas to the new revision and made no progress since {since}.",
                        since = display_time(since)
                    ),
                    since,
                    now,
                ))]
            }
            _ => Vec::new(),
        }
    }
}

impl ObjectMonitor<DaemonSet> for RolloutStuck {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.rollout_stuck.enabled
    }
    fn firing(&self, config: &Config, d: &DaemonSet, now: Timestamp) -> Vec<Finding> {
        let (ns, name) = (d.namespace().unwrap_or_default(), d.name_any());
        let Some(st) = d.status.as_ref() else {
            return Vec::new();
        };
        let updated = st.updated_number_scheduled.unwrap_or(0);
        let desired = st.desired_number_scheduled;
        let lag = st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0);
        // OnDelete updates pods only when someone deletes them.
        let on_delete = d
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete");
        let holds = desired > 0 && (lag || (!on_delete && updated < desired));
        let key = format!(
            "ds/{}/{}",
            d.uid().unwrap_or_default(),
            d.metadata.generation.unwrap_or(0)
        );
        match self.since.track(key, holds, now) {
            Some(since) if since + config.monitors.rollout_stuck.stalled_for.signed() <= now => {
                vec![Finding::firing(alert(
                    AlertKey::new(NAME, &ns, "DaemonSet", &name, "RolloutStalled"),
                    format!("DaemonSet {name} rollout is not progressing"),
                    format!(
                        "DaemonSet {ns}/{name} has updated {updated}/{desired} nodes and made no progress since {since}.",
                        since = display_time(since)
                    ),
                    since,
                    now,
                ))]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{self, at};
    use serde_json::json;

    fn config() -> Config {
        testkit::config("monitors: {rollout_stuck: {stalled_for: 10m}}")
    }

    fn deploy(paused: bool, conditions: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"replicas": 3, "paused": paused, "selector": {}, "template": {}},
            "status": {"replicas": 3, "updatedReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 2, "conditions": conditions}
        }))
        .unwrap()
    }

    #[test]
    fn a_stuck_rollout_names_the_new_replicaset_without_giving_it_the_deployments_counts() {
        // 2 replicas wanted; the old ReplicaSet still serves both, the new one's only pod never
        // became available: the Deployment has 2 available, the new ReplicaSet 0/1.
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
                "unavailableReplicas": 1, "conditions": [{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded", "lastTransitionTime": "2026-11-22T11:50:00Z",
                "message": "ReplicaSet \"checkout-55b7c\" has timed out progressing."}]}
        }))
        .unwrap();
        let f = RolloutStuck::default().firing(&config(), &d, at("2026-11-22T12:00:00Z"));
        let a = &f[0].alert;
        assert_eq!(
            a.title,
            "Deployment checkout is stuck: progress deadline exceeded (1/2 updated, 1 unavailable)"
        );
        assert_eq!(
            a.message,
            "Deployment shop/checkout has not made progress within its deadline. The Deployment's replicas: 1/2 updated, 2 available, 1 unavailable. ReplicaSet \"checkout-55b7c\" has timed out progressing."
        );
        assert_eq!(a.fields["New ReplicaSet"], "checkout-55b7c");
    }

    #[test]
    fn deployment_decision_table() {
        let now = at("2026-11-22T12:00:00Z");
        let deadline = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"api-1\" has timed out progressing.", "lastTransitionTime": "2026-11-22T11:50:00Z"}]);
        let failure = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota", "lastTransitionTime": "2026-11-22T11:59:00Z"}]);
        let healthy =
            json!([{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]);
        let cases = [
            (
                "deadline exceeded",
                deploy(false, deadline.clone()),
                vec!["ProgressDeadlineExceeded"],
            ),
            ("paused is skipped", deploy(true, deadline), vec![]),
            (
                "replica failure",
                deploy(false, failure),
                vec!["ReplicaFailure"],
            ),
            ("healthy", deploy(false, healthy), vec![]),
        ];
        for (name, d, want) in cases {
            let got: Vec<String> = RolloutStuck::default()
                .firing(&config(), &d, now)
                .into_iter()
                .map(|f| f.alert.key.reason)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let a = &RolloutStuck::default().firing(&config(), &deploy(false, json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"api-7d9f\" has timed out progressing.", "lastTransitionTime": "2026-11-22T11:50:00Z"}])), now)[0].alert;
        assert_eq!(
            a.title,
            "Deployment api is stuck: progress deadline exceeded (1/3 updated, 2 unavailable)"
        );
        assert_eq!(a.fields["New ReplicaSet"], "api-7d9f");
        assert_eq!(
            a.first_seen,
            at("2026-11-22T11:50:00Z"),
            "first seen comes from the condition, not from kpulse"
        );
    }

    #[test]
    fn on_delete_and_partitions_are_not_stalls() {
        let sts = |strategy: serde_json::Value, updated: i32| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "namespace": "shop", "generation": 2, "uid": "u1"},
                "spec": {"replicas": 3, "selector": {}, "serviceName": "db", "template": {}, "updateStrategy": strategy},
                "status": {"replicas": 3, "observedGeneration": 2, "updatedReplicas": updated, "currentRevision": "db-1", "updateRevision": "db-2"}
            }))
            .unwrap()
        };
        let ds = |strategy: &str| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "namespace": "mon", "generation": 2, "uid": "u2"},
                "spec": {"selector": {}, "template": {}, "updateStrategy": {"type": strategy}},
                "status": {"observedGeneration": 2, "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberMisscheduled": 0, "numberReady": 3, "updatedNumberScheduled": 1}
            }))
            .unwrap()
        };
        let (t0, t1) = (at("2026-11-22T12:00:00Z"), at("2026-11-22T12:30:00Z"));
        let fires_sts = |s: StatefulSet| {
            let m = RolloutStuck::default();
            m.firing(&config(), &s, t0);
            !m.firing(&config(), &s, t1).is_empty()
        };
        let fires_ds = |d: DaemonSet| {
            let m = RolloutStuck::default();
            m.firing(&config(), &d, t0);
            !m.firing(&config(), &d, t1).is_empty()
        };
        assert!(!fires_sts(sts(json!({"type": "OnDelete"}), 0)), "OnDelete");
        let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
        assert!(!fires_sts(sts(partitioned.clone(), 1)), "partition reached");
        assert!(fires_sts(sts(partitioned, 0)), "partition not reached");
        assert!(
            fires_sts(sts(json!({"type": "RollingUpdate"}), 1)),
            "rolling update stalled"
        );
        assert!(!fires_ds(ds("OnDelete")), "OnDelete");
        assert!(fires_ds(ds("RollingUpdate")), "rolling update stalled");
    }

    #[test]
    fn statefulset_fires_after_stalled_for_and_clears_when_rolled_out() {
        let m = RolloutStuck::default();
        let sts = |updated: i32, current: &str| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "namespace": "shop", "generation": 2},
                "spec": {"replicas": 3, "selector": {}, "serviceName": "db", "template": {}},
                "status": {"replicas": 3, "observedGeneration": 2, "updatedReplicas": updated, "currentRevision": current, "updateRevision": "db-2"}
            }))
            .unwrap()
        };
        let t0 = at("2026-11-22T12:00:00Z");
        assert!(
            m.firing(&config(), &sts(1, "db-1"), t0).is_empty(),
            "just started"
        );
        assert!(
            m.firing(&config(), &sts(1, "db-1"), at("2026-11-22T12:09:00Z"))
                .is_empty()
        );
        let f = m.firing(&config(), &sts(1, "db-1"), at("2026-11-22T12:10:00Z"));
        assert_eq!(f[0].alert.key.reason, "RolloutStalled");
        assert!(
            m.firing(&config(), &sts(3, "db-2"), at("2026-11-22T12:11:00Z"))
                .is_empty(),
            "rolled out"
        );
    }
}
