//! `replicas_unavailable`: Deployments and StatefulSets with fewer available (ready) replicas than
//! desired for `for`; critical when none is available for `none_available_for`. Resolvable: when
//! enough replicas are available again, or the object is deleted.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::ResourceExt;

use super::since::Since;
use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "replicas_unavailable";
crate::monitors::feeds::feed!(DEPLOYMENTS: Deployment, NAME, |_| Arc::new(ReplicasUnavailable::default()));
crate::monitors::feeds::feed!(STATEFULSETS: StatefulSet, NAME, |_| Arc::new(ReplicasUnavailable::default()));

#[derive(Default)]
pub struct ReplicasUnavailable {
    since: Since,
}

impl ReplicasUnavailable {
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        config: &Config,
        kind: &str,
        ns: &str,
        name: &str,
        uid: &str,
        desired: i32,
        available: i32,
        cond_since: Option<Timestamp>,
        now: Timestamp,
    ) -> Vec<Finding> {
        let s = &config.monitors.replicas_unavailable;
        let holds = desired > 0 && available < desired;
        let tracked = self.since.track(uid.to_string(), holds, now);
        let Some(since) = cond_since.filter(|_| holds).or(tracked) else {
            return Vec::new();
        };
        let none = available == 0;
        let wait = if none {
            s.none_available_for.min(s.r#for)
        } else {
            s.r#for
        };
        if since + wait.signed() > now {
            return Vec::new();
        }
        let severity = if none && since + s.none_available_for.signed() <= now {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let mut a = Alert::new(AlertKey::new(NAME, ns, kind, name, "ReplicasUnavailable"), severity, format!("{kind} {name}: {available}/{desired} replicas available"), now)
            .message(format!("{kind} {ns}/{name} has had only {available} of {desired} replicas available since {since}.", since = display_time(since)));
        a.first_seen = since;
        vec![Finding::firing(a)]
    }
}

impl ObjectMonitor<Deployment> for ReplicasUnavailable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.replicas_unavailable.enabled
    }
    /// Timed while fewer replicas are available than desired: it fires once that held `for`.
    fn timed(&self, _config: &Config, d: &Deployment, _now: Timestamp) -> bool {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let available = d
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        desired > 0 && available < desired
    }
    fn firing(&self, config: &Config, d: &Deployment, now: Timestamp) -> Vec<Finding> {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let st = d.status.as_ref();
        let available = st.and_then(|s| s.available_replicas).unwrap_or(0);
        // `Available=False` carries the controller's own timestamp.
        let cond_since = st
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Available" && c.status == "False")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0));
        self.decide(
            config,
            "Deployment",
            &d.namespace().unwrap_or_default(),
            &d.name_any(),
            &d.uid().unwrap_or_default(),
            desired,
            available,
            cond_since,
            now,
        )
    }
}

impl ObjectMonitor<StatefulSet> for ReplicasUnavailable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.replicas_unavailable.enabled
    }
    fn firing(&self, config: &Config, s: &StatefulSet, now: Timestamp) -> Vec<Finding> {
        let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = s
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        self.decide(
            config,
            "StatefulSet",
            &s.namespace().unwrap_or_default(),
            &s.name_any(),
            &s.uid().unwrap_or_default(),
            desired,
            ready,
            None,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit;
    use serde_json::json;

    fn config() -> Config {
        testkit::config("monitors: {replicas_unavailable: {for: 15m, none_available_for: 5m}}")
    }

    fn deploy(available: i32, since: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"availableReplicas": available, "conditions": [{"type": "Available", "status": if available < 3 {"False"} else {"True"}, "lastTransitionTime": since}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_deployment_with_its_replicas_is_not_re_evaluated_at_each_tick() {
        let just = "2026-11-22T11:59:30Z";
        let deployments = [
            (
                "a Deployment with all replicas",
                deploy(3, "2026-11-22T11:00:00Z"),
            ),
            ("a Deployment missing one", deploy(2, just)),
            ("a Deployment with none", deploy(0, just)),
        ];
        let monitors: Vec<Arc<dyn ObjectMonitor<Deployment>>> = vec![
            Arc::new(ReplicasUnavailable::default()),
            Arc::new(crate::monitors::rollout_stuck::RolloutStuck::default()),
        ];
        let (changed, timed) = testkit::timed_contract(
            &monitors,
            &config(),
            &deployments,
            testkit::at("2026-11-22T12:00:00Z"),
        );
        assert_eq!(changed, [NAME].into());
        assert_eq!(timed, [vec![], vec![NAME], vec![NAME]]);
    }

    #[test]
    fn decision_table() {
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let cases = [
            ("all available", deploy(3, "2026-11-22T10:00:00Z"), None),
            (
                "1/3 for 5m: not yet",
                deploy(1, "2026-11-22T11:55:00Z"),
                None,
            ),
            (
                "1/3 for 20m: warning",
                deploy(1, "2026-11-22T11:40:00Z"),
                Some(Severity::Warning),
            ),
            (
                "0/3 for 3m: not yet",
                deploy(0, "2026-11-22T11:57:00Z"),
                None,
            ),
            (
                "0/3 for 6m: critical",
                deploy(0, "2026-11-22T11:54:00Z"),
                Some(Severity::Critical),
            ),
        ];
        for (name, d, want) in cases {
            let got = ReplicasUnavailable::default()
                .firing(&config(), &d, now)
                .first()
                .map(|f| f.alert.severity);
            assert_eq!(got, want, "{name}");
        }
    }
}
