//! What every sink test uses: a configuration with real secrets, the alerts sent, delivery
//! through the channel registry, and checks of a request.

use jiff::{SignedDuration, Timestamp};
use kpulse::alert::{Alert, AlertKey, Notification, Severity, State};
use kpulse::config::{self, Config, SecretMap};
use kpulse::engine::{Dispatch, DispatchItem, DispatchKind};
use kpulse::sinks::{Batch, Registry, Report};

use crate::receiver::{Receiver, Seen};

pub const HOOK_TOKEN: &str = "Bearer h00k-5ecret-t0ken";
pub const HMAC_KEY: &str = "hm4c-5ecret";
pub const SLACK_TOKEN: &str = "xoxb-5ecret-sl4ck-t0ken";

pub fn secrets() -> SecretMap {
    let mut secrets = SecretMap::new();
    secrets.insert("HOOK_TOKEN".into(), HOOK_TOKEN.into());
    secrets.insert("HMAC_KEY".into(), HMAC_KEY.into());
    secrets.insert("SLACK_TOKEN".into(), SLACK_TOKEN.into());
    secrets
}

/// A configuration whose `channels:` is `channels` (YAML), routing everything to `default`.
/// Incidents are off: these tests send one pod alert through the pipeline at once, as a sink
/// sees it; grouping has its own tests.
pub fn config_with(channels: &str, default: &str) -> Config {
    kpulse::install_crypto_provider();
    let yaml = format!(
        "cluster: prod-eks-1\n\
         incidents: {{enabled: false}}\n\
         links:\n  runbook: 'https://runbooks.example/{{monitor}}#{{reason}}'\n\
         channels:\n{channels}\n\
         routing: {{default: [{default}]}}\n"
    );
    config::load(&yaml, &secrets()).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// A configuration with one channel named `ops` (its settings as flow YAML).
pub fn setup(channel: &str) -> (Config, Registry) {
    let config = config_with(&format!("  ops: {channel}"), "ops");
    let registry = Registry::build(&config).unwrap();
    (config, registry)
}

pub fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

pub const FIRST_SEEN: &str = "2027-01-15T08:00:00Z";
pub const RESOLVED_AT: &str = "2027-01-15T08:05:00Z";
pub const FIRING_HEADLINE: &str = "🚨 [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled";
pub const RESOLVED_HEADLINE: &str =
    "✅ [RESOLVED] [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled";
pub const RESOLVED_SUMMARY: &str =
    "Cleared after 5m. It was: Container server in pod checkout/api-7d9f is in state OOMKilled";

pub fn oom_alert() -> Alert {
    Alert::new(
        AlertKey::new("pod_crashes", "checkout", "Pod", "api-7d9f", "OOMKilled"),
        Severity::Critical,
        "api-7d9f/server OOMKilled",
        t0(),
    )
    .message("Container server in pod checkout/api-7d9f is in state OOMKilled")
    .owner("Deployment/api")
    .field("Exit code", "137")
}

pub fn oom(state: State) -> DispatchItem {
    DispatchItem {
        notification: Notification {
            state,
            alert: oom_alert(),
            at: match state {
                State::Firing => t0(),
                State::Resolved => t0() + SignedDuration::from_mins(5),
            },
        },
        reference: None,
    }
}

pub fn disk(state: State) -> DispatchItem {
    let alert = Alert::new(
        AlertKey::new("node_disk", "", "Node", "ip-10-0-1-7", "DiskPressure"),
        Severity::Warning,
        "ip-10-0-1-7 disk 91% full",
        t0(),
    )
    .message("Node ip-10-0-1-7 reports DiskPressure");
    DispatchItem {
        notification: Notification {
            state,
            alert,
            at: t0() + SignedDuration::from_mins(10),
        },
        reference: None,
    }
}

pub async fn deliver(
    config: &Config,
    registry: &Registry,
    kind: DispatchKind,
    items: Vec<DispatchItem>,
) -> Report {
    let dispatch = Dispatch {
        channel: "ops".into(),
        kind,
        notifications: items,
    };
    registry
        .deliver(Batch::from_dispatch(config, &dispatch))
        .await
}

/// Delivers and expects success and exactly one request.
pub async fn one_request(
    rx: &Receiver,
    config: &Config,
    registry: &Registry,
    kind: DispatchKind,
    items: Vec<DispatchItem>,
) -> (Report, Seen) {
    let report = deliver(config, registry, kind, items).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let mut seen = rx.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    (report, seen.remove(0))
}

pub fn assert_json_post(seen: &Seen, target: &str) {
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, target);
    assert!(
        seen.headers["content-type"].starts_with("application/json"),
        "{:?}",
        seen.headers
    );
    assert!(seen.headers["user-agent"].starts_with("kpulse/"));
}

pub fn no_secret_in(text: &str, rx: &Receiver) {
    for s in [HOOK_TOKEN, HMAC_KEY, SLACK_TOKEN, "h00k", "5ecret"] {
        assert!(!text.contains(s), "secret in {text:?}");
    }
    assert!(!text.contains(&rx.addr.to_string()), "URL in {text:?}");
}
