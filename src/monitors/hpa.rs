//! `hpa_at_max`: HorizontalPodAutoscalers pinned at `maxReplicas` (with min != max) for `for`.
//! `hpa_unhealthy`: HPAs that cannot scale (`ScalingActive=False`, e.g. no metrics, or
//! `AbleToScale=False`) for `for`. Both resolvable when the condition clears or the HPA is deleted.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::ResourceExt;

use super::since::Since;
use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const AT_MAX: &str = "hpa_at_max";
pub const UNHEALTHY: &str = "hpa_unhealthy";
crate::monitors::feeds::feed!(HPAS: HorizontalPodAutoscaler, AT_MAX, |_| Arc::new(HpaAtMax::default()));
crate::monitors::feeds::feed!(HPAS: HorizontalPodAutoscaler, UNHEALTHY, |_| Arc::new(HpaUnhealthy));

#[derive(Default)]
pub struct HpaAtMax {
    since: Since,
}

pub struct HpaUnhealthy;

fn alert(
    monitor: &str,
    h: &HorizontalPodAutoscaler,
    reason: &str,
    title: String,
    message: String,
    since: Timestamp,
    now: Timestamp,
) -> Alert {
    let key = AlertKey::new(
        monitor,
        h.namespace().unwrap_or_default(),
        "HorizontalPodAutoscaler",
        h.name_any(),
        reason,
    );
    let mut a = Alert::new(key, Severity::Warning, title, now).message(message);
    if let Some(t) = h.spec.as_ref().map(|s| &s.scale_target_ref) {
        a.owner = Some(format!("{}/{}", t.kind, t.name));
    }
    a.first_seen = since;
    a
}

impl ObjectMonitor<HorizontalPodAutoscaler> for HpaAtMax {
    fn name(&self) -> &'static str {
        AT_MAX
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.hpa_at_max.enabled
    }
    fn firing(&self, config: &Config, h: &HorizontalPodAutoscaler, now: Timestamp) -> Vec<Finding> {
        let Some(spec) = h.spec.as_ref() else {
            return Vec::new();
        };
        let max = spec.max_replicas;
        let min = spec.min_replicas.unwrap_or(1);
        let current = h
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .unwrap_or(0);
        let holds = min != max && current >= max;
        let key = h.uid().unwrap_or_default();
        match self.since.track(key, holds, now) {
            Some(since) if since + config.monitors.hpa_at_max.r#for.signed() <= now => {
                let (ns, name) = (h.namespace().unwrap_or_default(), h.name_any());
                vec![Finding::firing(alert(
                    "hpa_at_max",
                    h,
                    "AtMaxReplicas",
                    format!("HPA {name} is at its maximum of {max} replicas"),
                    format!(
                        "HorizontalPodAutoscaler {ns}/{name} has been at maxReplicas ({max}) since {since}: it cannot add capacity if load grows.",
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

impl ObjectMonitor<HorizontalPodAutoscaler> for HpaUnhealthy {
    fn name(&self) -> &'static str {
        UNHEALTHY
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.hpa_unhealthy.enabled
    }
    fn firing(&self, config: &Config, h: &HorizontalPodAutoscaler, now: Timestamp) -> Vec<Finding> {
        let (ns, name) = (h.namespace().unwrap_or_default(), h.name_any());
        let mut out = Vec::new();
        for c in h
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            if !matches!(c.type_.as_str(), "ScalingActive" | "AbleToScale") || c.status != "False" {
                continue;
            }
            let since = c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(now);
            if since + config.monitors.hpa_unhealthy.r#for.signed() > now {
                continue;
            }
            let why = c.reason.clone().unwrap_or_default();
            let detail = c.message.clone().unwrap_or_default();
            out.push(Finding::firing(alert(
                "hpa_unhealthy",
                h,
                &c.type_,
                format!("HPA {name} cannot scale: {why}"),
                format!(
                    "HorizontalPodAutoscaler {ns}/{name} reports {}=False ({why}): {detail}",
                    c.type_
                ),
                since,
                now,
            )));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{self, at};
    use serde_json::json;

    fn hpa(current: i32, conditions: serde_json::Value) -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "shop"},
            "spec": {"minReplicas": 2, "maxReplicas": 5, "scaleTargetRef": {"kind": "Deployment", "name": "api"}},
            "status": {"currentReplicas": current, "desiredReplicas": current, "conditions": conditions}
        }))
        .unwrap()
    }

    fn config() -> Config {
        testkit::config("monitors: {hpa_at_max: {for: 15m}, hpa_unhealthy: {for: 10m}}")
    }

    #[test]
    fn at_max_needs_the_window() {
        let m = HpaAtMax::default();
        assert!(
            m.firing(&config(), &hpa(5, json!([])), at("2026-11-22T12:00:00Z"))
                .is_empty()
        );
        let f = m.firing(&config(), &hpa(5, json!([])), at("2026-11-22T12:15:00Z"));
        assert_eq!(f[0].alert.title, "HPA api is at its maximum of 5 replicas");
        assert_eq!(f[0].alert.owner.as_deref(), Some("Deployment/api"));
        assert!(
            m.firing(&config(), &hpa(4, json!([])), at("2026-11-22T12:16:00Z"))
                .is_empty()
        );
    }

    #[test]
    fn a_recreated_hpa_starts_a_new_window() {
        let m = HpaAtMax::default();
        let with_uid = |uid: &str| {
            let mut h = hpa(5, json!([]));
            h.metadata.uid = Some(uid.into());
            h
        };
        assert!(
            m.firing(&config(), &with_uid("old"), at("2026-11-22T12:00:00Z"))
                .is_empty()
        );
        // Deleted and created again under the same name: the old one's window does not count.
        assert!(
            m.firing(&config(), &with_uid("new"), at("2026-11-22T12:15:00Z"))
                .is_empty()
        );
        assert_eq!(
            m.firing(&config(), &with_uid("new"), at("2026-11-22T12:30:00Z"))
                .len(),
            1
        );
    }

    #[test]
    fn unhealthy_decision_table() {
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        let no_metrics = json!([{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "message": "no metrics returned", "lastTransitionTime": "2026-11-22T11:40:00Z"}]);
        let recent = json!([{"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric", "lastTransitionTime": "2026-11-22T11:58:00Z"}]);
        let ok = json!([{"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"}, {"type": "AbleToScale", "status": "True"}]);
        assert_eq!(
            HpaUnhealthy.firing(&config(), &hpa(2, no_metrics), now)[0]
                .alert
                .key
                .reason,
            "ScalingActive"
        );
        assert!(
            HpaUnhealthy
                .firing(&config(), &hpa(2, recent), now)
                .is_empty()
        );
        assert!(HpaUnhealthy.firing(&config(), &hpa(2, ok), now).is_empty());
    }
}
