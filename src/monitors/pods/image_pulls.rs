//! The image pulls of new pods' containers, from the kubelet's Normal events `Pulling` and
//! `Pulled` (one watch each, filtered by the API server on the reason), for `startup_latency`.
//!
//! A `Pulled` event says either `Successfully pulled image "X" in 1.2s (1.5s including
//! waiting)` — the pull is timed by the kubelet to the millisecond, and kpulse takes the time
//! including the wait in the kubelet's pull queue (what delayed the container, and what the
//! seed's Pulling → Pulled timestamps measured) — or `Container image "X" already present on
//! machine`, counted apart. When the message has no time, the pull is timed from the `Pulling`
//! event to the `Pulled` one (second precision). Only pods `startup_latency` follows (created
//! after kpulse started) are counted; events of other pods are ignored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::runtime::watcher;

use super::startup_latency::{NAME, node_pool};
use super::startup_record::seconds;
use crate::alert::Alert;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::monitors::feeds::Wiring;
use crate::monitors::node_readiness::NodeReadiness;
use crate::monitors::watch::{Finding, Keep, ObjectMonitor, WatchSpec, trim_meta};

/// The reasons watched, one watch each.
pub const REASONS: [&str; 2] = ["Pulling", "Pulled"];

/// What one event says.
#[derive(Debug, Clone, PartialEq)]
pub enum Pull {
    /// The kubelet started pulling.
    Pulling { image: String },
    /// Pulled, in this many seconds when the kubelet said.
    Pulled { image: String, seconds: Option<f64> },
    /// The image was already on the node.
    Present { image: String },
}

/// The container an event is about: (name, whether an init container), from the event's
/// `involvedObject.fieldPath` (`spec.containers{app}`, `spec.initContainers{migrate}`).
pub fn container(field_path: &str) -> Option<(String, bool)> {
    let (kind, rest) = field_path.split_once('{')?;
    let name = rest.strip_suffix('}')?;
    match kind {
        "spec.containers" => Some((name.to_string(), false)),
        "spec.initContainers" => Some((name.to_string(), true)),
        _ => None,
    }
}

/// The first double-quoted string of `message`.
fn quoted(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('"')?;
    let (image, _) = rest.split_once('"')?;
    Some(image.to_string())
}

/// A Go duration as the kubelet prints it (`1.234s`, `523.1ms`, `1m2.5s`, `800µs`), in seconds.
pub fn go_duration(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    if s == "0s" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|n| *n > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")))?;
        total += value * scale;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

/// What a Pulling or Pulled event says; `None` for anything else.
pub fn parse(reason: &str, message: &str) -> Option<Pull> {
    let image = quoted(message)?;
    match reason {
        "Pulling" => Some(Pull::Pulling { image }),
        "Pulled" if message.contains("already present on machine") => Some(Pull::Present { image }),
        "Pulled" => {
            // `... in 1.2s (1.5s including waiting). Image size: ...`
            let after = message.rsplit_once("\" in ").map(|(_, a)| a).unwrap_or("");
            let waited = after
                .split_once(" (")
                .and_then(|(_, w)| w.split_once(" including waiting"))
                .and_then(|(w, _)| go_duration(w));
            let pulled = after
                .split(' ')
                .next()
                .map(|d| d.trim_end_matches('.'))
                .and_then(go_duration);
            Some(Pull::Pulled {
                image,
                seconds: waited.or(pulled),
            })
        }
        _ => None,
    }
}

/// When the event happened: its `eventTime`, else `lastTimestamp`/`firstTimestamp`, else its
/// creation.
fn when(e: &Event) -> Option<Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The monitor on one pull event watch.
pub struct ImagePulls {
    metrics: Arc<Metrics>,
    nodes: Arc<NodeReadiness>,
    /// When each container (pod UID, init, name) started pulling, to time pulls whose message
    /// has no time. Shared by both watches.
    pulling: Pulling,
}

/// How many pulls under way are remembered at most (older ones are forgotten first).
const PULLING_KEPT: usize = 10_000;

impl ImagePulls {
    fn take_in(&self, config: &Config, e: &Event, now: Timestamp) {
        let settings = &config.monitors.startup_latency;
        let obj = &e.involved_object;
        if obj.kind.as_deref() != Some("Pod") {
            return;
        }
        let (Some(uid), Some((name, init))) = (
            obj.uid.as_deref(),
            obj.field_path.as_deref().and_then(container),
        ) else {
            return;
        };
        let (Some(reason), Some(message)) = (e.reason.as_deref(), e.message.as_deref()) else {
            return;
        };
        let key = (uid.to_string(), init, name.clone());
        let mut pulling = self.pulling.lock().unwrap_or_else(|e| e.into_inner());
        let (image, pulled) = match parse(reason, message) {
            None => return,
            Some(Pull::Pulling { .. }) => {
                if let Some(at) = when(e) {
                    if pulling.len() >= PULLING_KEPT
                        && let Some(oldest) = pulling
                            .iter()
                            .min_by_key(|(_, t)| **t)
                            .map(|(k, _)| k.clone())
                    {
                        pulling.remove(&oldest);
                    }
                    pulling.insert(key, at);
                }
                return;
            }
            Some(Pull::Present { image }) => (image, None),
            Some(Pull::Pulled { image, seconds: s }) => {
                let since = pulling.remove(&key);
                let s = s.or_else(|| Some(seconds(since?, when(e)?)));
                let Some(s) = s else {
                    return;
                };
                (image, Some(s))
            }
        };
        drop(pulling);
        self.metrics.startup_pods.image_pull(
            &self.metrics,
            settings,
            uid,
            &name,
            init,
            &image,
            pulled,
            |node| node_pool(&self.nodes, settings, node),
            now,
        );
    }
}

impl ObjectMonitor<Event> for ImagePulls {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.startup_latency.enabled
    }

    fn firing(&self, _config: &Config, _e: &Event, _now: Timestamp) -> Vec<Finding> {
        Vec::new()
    }

    fn created(&self, config: &Config, e: &Event, now: Timestamp) -> Vec<Alert> {
        self.take_in(config, e, now);
        Vec::new()
    }

    fn repeated(&self, config: &Config, new: &Event, now: Timestamp) -> Vec<Alert> {
        // A repeated event (its count raised): a new pull of the same container is not new.
        self.take_in(config, new, now);
        Vec::new()
    }
}

/// Keeps what the pull monitor reads: the involved object, reason, message and times.
pub fn trim(e: &mut Event) {
    trim_meta(e);
    e.metadata.labels = None;
    e.related = None;
    e.series = None;
    e.source = None;
    e.reporting_component = None;
    e.reporting_instance = None;
    e.action = None;
}

/// Pulls under way, shared by the watches of both reasons.
pub type Pulling = Arc<Mutex<HashMap<(String, bool, String), Timestamp>>>;

/// The watch of one pull reason's events.
pub fn spec(
    client: kube::Client,
    wiring: &Wiring,
    reason: &'static str,
    pulling: Pulling,
) -> WatchSpec<Event> {
    WatchSpec {
        resource: if reason == "Pulling" {
            "events-pulling"
        } else {
            "events-pulled"
        },
        kind: "Event",
        api: Api::all(client),
        config: watcher::Config::default()
            .fields(&format!("involvedObject.kind=Pod,reason={reason}")),
        trim,
        monitors: vec![Arc::new(ImagePulls {
            metrics: wiring.metrics.clone(),
            nodes: wiring.nodes.clone(),
            pulling,
        })],
        index: None,
        keep: Keep::Revision(crate::monitors::warning_events::revision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_comes_from_the_field_path() {
        assert_eq!(
            container("spec.containers{app}"),
            Some(("app".into(), false))
        );
        assert_eq!(
            container("spec.initContainers{migrate}"),
            Some(("migrate".into(), true))
        );
        assert_eq!(container("spec.ephemeralContainers{debug}"), None);
        assert_eq!(container(""), None);
    }

    #[test]
    fn go_durations_as_the_kubelet_prints_them() {
        for (s, secs) in [
            ("1.234s", 1.234),
            ("523.25ms", 0.52325),
            ("1m2.5s", 62.5),
            ("1h0m1s", 3601.0),
            ("800µs", 0.0008),
            ("0s", 0.0),
        ] {
            let got = go_duration(s).unwrap();
            assert!((got - secs).abs() < 1e-9, "{s}: {got}");
        }
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn pulling_pulled_and_already_present_messages() {
        assert_eq!(
            parse("Pulling", "Pulling image \"kpulse.local/busybox:1\""),
            Some(Pull::Pulling {
                image: "kpulse.local/busybox:1".into()
            })
        );
        assert_eq!(
            parse(
                "Pulled",
                "Successfully pulled image \"kpulse.local/busybox:1\" in 1.2s (1.5s including waiting). Image size: 2231050 bytes."
            ),
            Some(Pull::Pulled {
                image: "kpulse.local/busybox:1".into(),
                seconds: Some(1.5)
            })
        );
        // Older kubelets: no waiting time.
        assert_eq!(
            parse("Pulled", "Successfully pulled image \"nginx\" in 812ms"),
            Some(Pull::Pulled {
                image: "nginx".into(),
                seconds: Some(0.812)
            })
        );
        assert_eq!(
            parse("Pulled", "Successfully pulled image \"nginx\""),
            Some(Pull::Pulled {
                image: "nginx".into(),
                seconds: None
            })
        );
        for present in [
            "Container image \"kpulse.local/pause:1\" already present on machine",
            "Container image \"kpulse.local/pause:1\" already present on machine and can be accessed by the pod",
        ] {
            assert_eq!(
                parse("Pulled", present),
                Some(Pull::Present {
                    image: "kpulse.local/pause:1".into()
                })
            );
        }
        assert_eq!(parse("Started", "Started container \"app\""), None);
    }

    fn event(reason: &str, message: &str, at: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e", "namespace": "shop"},
            "involvedObject": {"kind": "Pod", "uid": "u1", "fieldPath": "spec.containers{app}"},
            "reason": reason, "message": message, "lastTimestamp": at
        }))
        .unwrap()
    }

    #[test]
    fn a_pull_without_a_time_is_timed_from_pulling_to_pulled() {
        let metrics = Arc::new(Metrics::new());
        let m = ImagePulls {
            metrics: metrics.clone(),
            nodes: Arc::default(),
            pulling: Arc::default(),
        };
        let c = crate::monitors::testkit::config("monitors: {startup_latency: {enabled: true}}");
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop", "uid": "u1",
                "creationTimestamp": "2026-11-22T10:00:00Z"}
        }))
        .unwrap();
        let t0 = crate::monitors::testkit::at("2026-11-22T10:00:00Z");
        metrics.startup_pods.observe(
            &metrics,
            &c.monitors.startup_latency,
            t0,
            &pod,
            "none",
            "",
            t0,
        );
        m.created(
            &c,
            &event("Pulling", "Pulling image \"nginx\"", "2026-11-22T10:00:02Z"),
            t0,
        );
        m.created(
            &c,
            &event(
                "Pulled",
                "Successfully pulled image \"nginx\"",
                "2026-11-22T10:00:09Z",
            ),
            t0,
        );
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"kpulse_image_pull_duration_seconds_sum{container_type="regular",namespace="shop",owner_kind="none"} 7.0"#
            ),
            "{text}"
        );
    }
}
