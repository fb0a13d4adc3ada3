//! `warning_events`: Kubernetes `Warning` Events, minus noise. One-shot: an Event is a report of
//! something that happened, and events expire, so nothing here resolves; lasting conditions are
//! covered by the state monitors.
//!
//! Not reported:
//! - the reasons in `ignore_reasons` and the built-in [`NOISE`] list;
//! - reasons another monitor reports from object state (BackOff, image pull failures,
//!   FailedScheduling, Evicted, Job and CronJob failures, HPA metric errors, PVC provisioning),
//!   as long as that monitor is enabled — see [`owner_monitor`];
//! - `flaky_reasons` (FailedMount, FailedCreatePodSandBox, ...) until their count reaches
//!   `min_count`: one failure at start-up is normal, repeats are not;
//! - events from before start-up (the initial list is never reported) and events whose last
//!   occurrence is older than [`RECENT`].
//!
//! The dedupe key is the involved object and the reason, so repeats of one problem on one object
//! notify once per `dedupe.window`.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;

use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity};
use crate::config::Config;

pub const NAME: &str = "warning_events";
crate::monitors::feeds::feed!(EVENTS: Event, NAME, |_| Arc::new(WarningEvents));

/// Events last seen longer ago than this are history, not news.
pub const RECENT: SignedDuration = SignedDuration::from_mins(5);

/// Warning reasons that are noise on their own (research/coverage.md §3).
pub const NOISE: [&str; 7] = [
    "DNSConfigForming",
    "FailedToUpdateEndpoint",
    "FailedToUpdateEndpointSlices",
    "ProbeWarning",
    // Readiness fails during every rollout; the lasting effect is pod_not_ready / pod_restarts.
    "Unhealthy",
    "InvalidDiskCapacity",
    // The node lifecycle controller copies this onto every pod of a NotReady node.
    "NodeNotReady",
];

/// Node event reasons that mean the machine itself is in trouble (kubelet, node-problem-detector).
const CRITICAL_NODE_REASONS: [&str; 10] = [
    "SystemOOM",
    "Rebooted",
    "OOMKilling",
    "TaskHung",
    "KernelOops",
    "Ext4Error",
    "IOError",
    "MemoryReadError",
    "UnregisterNetDevice",
    "CorruptDockerImage",
];

/// The monitor that reports this (kind, reason) from object state, if any.
pub fn owner_monitor(kind: &str, reason: &str) -> Option<&'static str> {
    match (kind, reason) {
        ("Pod", "BackOff") => Some("pod_crashes"),
        ("Pod", "Failed" | "ErrImageNeverPull" | "InspectFailed") => Some("container_waiting"),
        ("Pod", "FailedScheduling") => Some("pod_unschedulable"),
        ("Pod", "Evicted") => Some("pod_evicted"),
        (
            "Job",
            "BackoffLimitExceeded"
            | "DeadlineExceeded"
            | "PodFailurePolicy"
            | "MaxFailedIndexesExceeded"
            | "FailedIndexes",
        ) => Some("job_failed"),
        ("CronJob", _) => Some("cronjob_missed"),
        (
            "HorizontalPodAutoscaler",
            "FailedGetScale"
            | "FailedComputeMetricsReplicas"
            | "FailedGetResourceMetric"
            | "FailedGetExternalMetric"
            | "FailedGetPodsMetric"
            | "FailedGetObjectMetric"
            | "InvalidSelector",
        ) => Some("hpa_unhealthy"),
        ("PersistentVolumeClaim", "ProvisioningFailed" | "FailedBinding") => Some("pvc_pending"),
        _ => None,
    }
}

pub struct WarningEvents;

/// How many times the event happened: what a watch keeps of an Event ([`Keep::Revision`]).
///
/// [`Keep::Revision`]: super::watch::Keep::Revision
pub fn revision(e: &Event) -> u32 {
    count(e)
}

fn count(e: &Event) -> u32 {
    let series = e.series.as_ref().and_then(|s| s.count).unwrap_or(0);
    e.count.unwrap_or(1).max(series).max(1) as u32
}

/// When the event last happened.
fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Whether `e` is worth a notification at `now`.
fn reportable(config: &Config, e: &Event, now: Timestamp) -> bool {
    let settings = &config.monitors.warning_events;
    let reason = e.reason.as_deref().unwrap_or("");
    let kind = e.involved_object.kind.as_deref().unwrap_or("");
    if e.type_.as_deref() != Some("Warning")
        || reason.is_empty()
        || NOISE.contains(&reason)
        || settings.ignore_reasons.iter().any(|r| r == reason)
        || owner_monitor(kind, reason).is_some_and(|m| config.monitors.enabled(m))
    {
        return false;
    }
    if settings.flaky_reasons.iter().any(|r| r == reason) && count(e) < settings.min_count {
        return false;
    }
    last_seen(e).is_some_and(|t| t + RECENT >= now)
}

/// The alert for a reportable event.
pub fn alert(e: &Event, now: Timestamp) -> Alert {
    let o = &e.involved_object;
    let kind = o.kind.clone().unwrap_or_default();
    let name = o.name.clone().unwrap_or_default();
    let ns = o.namespace.clone().unwrap_or_default();
    let reason = e.reason.clone().unwrap_or_default();
    let severity = if kind == "Node" && CRITICAL_NODE_REASONS.contains(&reason.as_str()) {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let object = if ns.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {ns}/{name}")
    };
    let n = count(e);
    let times = if n > 1 {
        format!(" ({n} times)")
    } else {
        String::new()
    };
    let mut a = Alert::new(
        AlertKey::new(NAME, ns, kind.clone(), name.clone(), reason.clone()),
        severity,
        format!("{name} {reason}"),
        now,
    )
    .message(format!(
        "{object}: {}{times}",
        e.message.as_deref().unwrap_or(&reason).trim_end()
    ))
    .field("Count", n.to_string())
    .one_shot();
    if let Some(c) = e
        .source
        .as_ref()
        .and_then(|s| s.component.clone())
        .or_else(|| e.reporting_component.clone())
        .filter(|c| !c.is_empty())
    {
        a = a.field("Reported by", c);
    }
    if kind == "Node" {
        a.node = Some(name);
    } else if let Some(host) = e.source.as_ref().and_then(|s| s.host.clone()) {
        a.node = Some(host);
    }
    a.first_seen = e
        .first_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| last_seen(e))
        .unwrap_or(now);
    a
}

impl ObjectMonitor<Event> for WarningEvents {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.warning_events.enabled
    }

    fn firing(&self, _config: &Config, _event: &Event, _now: Timestamp) -> Vec<Finding> {
        Vec::new()
    }

    /// A repeat of an event bumps its count (the watch calls this only then): report it if it
    /// just became reportable (a flaky reason reaching `min_count`) or happened again; the
    /// engine's dedupe drops repeats.
    fn repeated(&self, config: &Config, new: &Event, now: Timestamp) -> Vec<Alert> {
        if reportable(config, new, now) {
            vec![alert(new, now)]
        } else {
            Vec::new()
        }
    }

    fn created(&self, config: &Config, event: &Event, now: Timestamp) -> Vec<Alert> {
        if reportable(config, event, now) {
            vec![alert(event, now)]
        } else {
            Vec::new()
        }
    }
}

/// Trims an Event to what the monitor reads, and files it under its involved object's namespace
/// (empty for Nodes and other cluster-scoped objects): the namespace filter and the
/// `kpulse.io/ignore` namespace switch then judge an event by the object it is about, so Node
/// events (recorded in `default`) are not dropped by `namespaces.include`.
pub fn trim(e: &mut Event) {
    super::watch::trim_meta(e);
    e.metadata.labels = None;
    e.metadata.namespace = e.involved_object.namespace.clone();
    e.related = None;
    e.action = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::config;
    use serde_json::json;

    fn event(kind: &str, reason: &str, count: i32, last: &str) -> Event {
        let ns = if kind == "Node" { None } else { Some("shop") };
        serde_json::from_value(json!({
            "metadata": {"name": "x.1", "namespace": ns.unwrap_or("default")},
            "involvedObject": {"kind": kind, "name": "api-1", "namespace": ns},
            "type": "Warning", "reason": reason, "message": "something went wrong",
            "count": count, "firstTimestamp": "2026-11-22T11:58:00Z", "lastTimestamp": last,
            "source": {"component": "kubelet", "host": "n1"}
        }))
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    const RECENTLY: &str = "2026-11-22T11:59:00Z";

    #[test]
    fn decision_table() {
        let c = config("monitors: {warning_events: {ignore_reasons: [Custom]}}");
        let cases: Vec<(&str, Event, bool)> = vec![
            (
                "failed create",
                event("ReplicaSet", "FailedCreate", 1, RECENTLY),
                true,
            ),
            (
                "noise",
                event("Pod", "DNSConfigForming", 1, RECENTLY),
                false,
            ),
            (
                "readiness probe",
                event("Pod", "Unhealthy", 9, RECENTLY),
                false,
            ),
            (
                "ignored by config",
                event("Pod", "Custom", 1, RECENTLY),
                false,
            ),
            (
                "owned by pod_crashes",
                event("Pod", "BackOff", 5, RECENTLY),
                false,
            ),
            (
                "owned by pod_unschedulable",
                event("Pod", "FailedScheduling", 1, RECENTLY),
                false,
            ),
            (
                "owned by cronjob_missed",
                event("CronJob", "FailedCreate", 1, RECENTLY),
                false,
            ),
            (
                "flaky, once",
                event("Pod", "FailedMount", 1, RECENTLY),
                false,
            ),
            (
                "flaky, repeated",
                event("Pod", "FailedMount", 3, RECENTLY),
                true,
            ),
            (
                "old news",
                event("Pod", "FailedKillPod", 1, "2026-11-22T11:00:00Z"),
                false,
            ),
            ("node OOM", event("Node", "SystemOOM", 1, RECENTLY), true),
        ];
        for (name, e, want) in cases {
            let got = WarningEvents.created(&c, &e, now());
            assert_eq!(got.len(), usize::from(want), "{name}");
        }
        let mut normal = event("Pod", "FailedKillPod", 1, RECENTLY);
        normal.type_ = Some("Normal".into());
        assert!(WarningEvents.created(&c, &normal, now()).is_empty());
    }

    #[test]
    fn a_reason_owned_by_a_disabled_monitor_is_reported_here() {
        let c = config("monitors: {pod_unschedulable: {enabled: false}}");
        let e = event("Pod", "FailedScheduling", 1, RECENTLY);
        assert_eq!(WarningEvents.created(&c, &e, now()).len(), 1);
    }

    #[test]
    fn flaky_reasons_report_when_the_count_reaches_min_count() {
        let c = config("");
        let two = event("Pod", "FailedCreatePodSandBox", 2, RECENTLY);
        let three = event("Pod", "FailedCreatePodSandBox", 3, RECENTLY);
        // The watch calls `repeated` only when the count grew (its revision, tested there).
        assert!(WarningEvents.repeated(&c, &two, now()).is_empty());
        let got = WarningEvents.repeated(&c, &three, now());
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].message,
            "Pod shop/api-1: something went wrong (3 times)"
        );
        assert_eq!((revision(&two), revision(&three)), (2, 3));
    }

    #[test]
    fn alert_is_keyed_by_object_and_reason() {
        let a = alert(&event("Pod", "FailedKillPod", 1, RECENTLY), now());
        assert_eq!(
            a.key.to_string(),
            "warning_events/shop/Pod/api-1/FailedKillPod"
        );
        assert_eq!(a.title, "api-1 FailedKillPod");
        assert_eq!(a.message, "Pod shop/api-1: something went wrong");
        assert_eq!(a.fields["Reported by"], "kubelet");
        assert_eq!((a.severity, a.resolvable), (Severity::Warning, false));
        assert_eq!(
            a.first_seen,
            "2026-11-22T11:58:00Z".parse::<Timestamp>().unwrap()
        );
        let n = alert(&event("Node", "SystemOOM", 1, RECENTLY), now());
        assert_eq!(n.key.to_string(), "warning_events//Node/api-1/SystemOOM");
        assert_eq!(
            (n.severity, n.node.as_deref()),
            (Severity::Critical, Some("api-1"))
        );
    }

    #[test]
    fn trim_files_node_events_as_cluster_scoped() {
        let mut e = event("Node", "SystemOOM", 1, RECENTLY);
        trim(&mut e);
        assert_eq!(e.metadata.namespace, None);
        let mut p = event("Pod", "FailedKillPod", 1, RECENTLY);
        trim(&mut p);
        assert_eq!(p.metadata.namespace.as_deref(), Some("shop"));
    }
}
