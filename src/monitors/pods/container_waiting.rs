//! `container_waiting`: containers (init containers included) stuck in a waiting state.
//! Image and configuration errors need someone to act (the kubelet keeps retrying, so most clear
//! once the image, ConfigMap or Secret is there) and fire after `error_for`; other waiting reasons
//! (ContainerCreating, PodInitializing, ...) fire after `other_for`.
//! CrashLoopBackOff belongs to `pod_crashes`. Resolvable: the alert resolves once no container
//! of the pod waits for that reason, or the pod is gone.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

use super::pod;
use crate::alert::{Severity, display_time};
use crate::config::Config;
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "container_waiting";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |_| Arc::new(ContainerWaiting));

/// Waiting reasons that are configuration or image errors: the kubelet retries them, but they
/// rarely clear unless someone fixes the cause.
pub const ERROR_REASONS: [&str; 7] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

pub struct ContainerWaiting;

/// What the message says about recovery: the kubelet keeps retrying every one of these, so each
/// clears once its cause is fixed; only a malformed image name needs a new pod spec.
fn hint(reason: &str) -> &'static str {
    match reason {
        "ImagePullBackOff" | "ErrImagePull" => {
            " The kubelet keeps retrying the pull: it starts once the image can be pulled (check the image name and tag, the registry and the pull secret)."
        }
        "InvalidImageName" => {
            " The image reference is malformed: it will not start until the pod's image is corrected."
        }
        "ErrImageNeverPull" => {
            " imagePullPolicy is Never and the image is not on the node: it starts once the image is there."
        }
        "CreateContainerConfigError" => {
            " Usually a missing ConfigMap, Secret or key: the kubelet keeps retrying, and it starts once that exists."
        }
        "CreateContainerError" | "RunContainerError" => {
            " The kubelet keeps retrying: it starts once the cause is fixed."
        }
        _ => "",
    }
}

/// The reason in the alert key. The kubelet alternates ErrImagePull and ImagePullBackOff for
/// the same failing pull; both are one condition, so one key.
fn key_reason(reason: &str) -> &str {
    if reason == "ErrImagePull" {
        "ImagePullBackOff"
    } else {
        reason
    }
}

/// When the container started waiting, as well as the status tells: the latest of its last
/// termination, the pod's start and the time its readiness (or initialization) last changed.
/// The waiting state has no timestamp of its own.
fn waiting_since(pod: &Pod, c: &ContainerStatus, init: bool) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let cond_type = if init {
        "Initialized"
    } else {
        "ContainersReady"
    };
    let cond = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == cond_type && c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let finished = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0);
    let started = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    [cond, finished, started, created]
        .into_iter()
        .flatten()
        .max()
}

impl ObjectMonitor<Pod> for ContainerWaiting {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.container_waiting.enabled
    }

    /// Timed while a container waits for a reason of its own: it fires once that held.
    fn timed(&self, _config: &Config, pod: &Pod, _now: Timestamp) -> bool {
        pod::containers(pod).any(|(c, _)| {
            c.state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .is_some_and(|r| !r.is_empty() && r != "CrashLoopBackOff")
        })
    }

    fn firing(&self, config: &Config, pod: &Pod, now: Timestamp) -> Vec<Finding> {
        let settings = &config.monitors.container_waiting;
        let pod_name = pod.name_any();
        let ns = pod.namespace().unwrap_or_default();
        let mut out: Vec<Finding> = Vec::new();
        for (c, is_init) in pod::containers(pod) {
            let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or("");
            if reason.is_empty() || reason == "CrashLoopBackOff" {
                continue;
            }
            let error = ERROR_REASONS.contains(&reason);
            let threshold = if error {
                settings.error_for
            } else {
                settings.other_for
            };
            let since = waiting_since(pod, c, is_init).unwrap_or(now);
            if since + threshold.signed() > now {
                continue;
            }
            let key_reason = key_reason(reason);
            if out.iter().any(|f| f.alert.key.reason == key_reason) {
                continue; // one alert per pod and reason; the first container names it
            }
            let which = if is_init {
                "Init container"
            } else {
                "Container"
            };
            let detail = waiting
                .message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let mut a = pod::alert(
                NAME,
                pod,
                key_reason,
                Severity::Warning,
                format!("{pod_name}/{} {reason}", c.name),
                now,
            )
            .message(format!(
                "{which} {} in pod {ns}/{pod_name} has been waiting ({reason}) since {since}{detail}.{}",
                c.name,
                hint(reason),
                since = display_time(since)
            ))
            .field("Container", c.name.clone())
            .field("Reason", reason.to_string());
            if !c.image.is_empty() {
                a = a.field("Image", c.image.clone());
            }
            a = pod::with_container(a, pod, c);
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

    fn pod(init: serde_json::Value, main: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-7d9f8c-x1", "namespace": "checkout", "creationTimestamp": "2026-11-22T11:00:00Z",
                "labels": {"pod-template-hash": "7d9f8c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9f8c", "uid": "u", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "server"}]},
            "status": {"phase": "Pending", "startTime": "2026-11-22T11:00:00Z",
                "conditions": [{"type": "ContainersReady", "status": "False", "lastTransitionTime": "2026-11-22T11:50:00Z"}],
                "initContainerStatuses": init, "containerStatuses": main}
        }))
        .unwrap()
    }

    fn waiting(name: &str, reason: &str) -> serde_json::Value {
        json!([{"name": name, "image": "registry.example/api:v2", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": "Back-off pulling image \"registry.example/api:v2\""}}}])
    }

    #[test]
    fn decision_table() {
        let c = config("");
        // ContainersReady went False at 11:50; error_for 5m, other_for 1h.
        let cases: Vec<(&str, Pod, &str, Vec<&str>)> = vec![
            (
                "image pull error for 10m",
                pod(json!([]), waiting("server", "ImagePullBackOff")),
                "2026-11-22T12:00:00Z",
                vec!["ImagePullBackOff"],
            ),
            (
                "ErrImagePull shares the key",
                pod(json!([]), waiting("server", "ErrImagePull")),
                "2026-11-22T12:00:00Z",
                vec!["ImagePullBackOff"],
            ),
            (
                "image pull error for 2m only",
                pod(json!([]), waiting("server", "ImagePullBackOff")),
                "2026-11-22T11:52:00Z",
                vec![],
            ),
            (
                "config error in an init container",
                pod(
                    waiting("migrate", "CreateContainerConfigError"),
                    waiting("server", "PodInitializing"),
                ),
                "2026-11-22T12:00:00Z",
                vec!["CreateContainerConfigError"],
            ),
            (
                "crash loops are pod_crashes'",
                pod(json!([]), waiting("server", "CrashLoopBackOff")),
                "2026-11-22T13:00:00Z",
                vec![],
            ),
            (
                "ContainerCreating under other_for",
                pod(json!([]), waiting("server", "ContainerCreating")),
                "2026-11-22T12:30:00Z",
                vec![],
            ),
            (
                "ContainerCreating past other_for",
                pod(json!([]), waiting("server", "ContainerCreating")),
                "2026-11-22T12:51:00Z",
                vec!["ContainerCreating"],
            ),
            (
                "running",
                pod(
                    json!([]),
                    json!([{"name": "server", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]),
                ),
                "2026-11-22T13:00:00Z",
                vec![],
            ),
        ];
        for (name, p, now, want) in cases {
            let got: Vec<String> = ContainerWaiting
                .firing(&c, &p, at(now))
                .into_iter()
                .map(|f| f.alert.key.reason)
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn alert_quotes_the_kubelet_and_starts_when_waiting_did() {
        let p = pod(json!([]), waiting("server", "ErrImagePull"));
        let a = &ContainerWaiting.firing(&config(""), &p, at("2026-11-22T12:00:00Z"))[0].alert;
        assert_eq!(
            a.key.to_string(),
            "container_waiting/checkout/Pod/api-7d9f8c-x1/ImagePullBackOff"
        );
        assert_eq!(a.title, "api-7d9f8c-x1/server ErrImagePull");
        assert_eq!(
            a.message,
            "Container server in pod checkout/api-7d9f8c-x1 has been waiting (ErrImagePull) since 2026-11-22T11:50:00Z: Back-off pulling image \"registry.example/api:v2\". The kubelet keeps retrying the pull: it starts once the image can be pulled (check the image name and tag, the registry and the pull secret)."
        );
        assert_eq!(a.first_seen, at("2026-11-22T11:50:00Z"));
        assert_eq!(a.owner.as_deref(), Some("Deployment/api"));
        assert_eq!(a.fields["Image"], "registry.example/api:v2");
    }

    #[test]
    fn only_a_malformed_image_name_is_said_to_need_a_new_spec() {
        let c = config("monitors: {container_waiting: {other_for: 1m}}");
        let message = |reason: &str| {
            let p = pod(json!([]), waiting("server", reason));
            ContainerWaiting.firing(&c, &p, at("2026-11-22T12:00:00Z"))[0]
                .alert
                .message
                .clone()
        };
        for reason in ERROR_REASONS {
            let m = message(reason);
            assert!(!m.contains("will not recover"), "{reason}: {m}");
            let needs_spec = m.contains("will not start until");
            assert_eq!(needs_spec, reason == "InvalidImageName", "{reason}: {m}");
        }
        assert!(
            message("CreateContainerConfigError")
                .ends_with(" Usually a missing ConfigMap, Secret or key: the kubelet keeps retrying, and it starts once that exists."),
        );
        assert!(
            message("ContainerCreating")
                .ends_with("Back-off pulling image \"registry.example/api:v2\"."),
            "no hint for other reasons"
        );
    }

    #[test]
    fn thresholds_come_from_the_config() {
        let c = config("monitors: {container_waiting: {error_for: 1s}}");
        let p = pod(json!([]), waiting("server", "InvalidImageName"));
        assert_eq!(
            ContainerWaiting
                .firing(&c, &p, at("2026-11-22T11:50:02Z"))
                .len(),
            1
        );
    }
}
