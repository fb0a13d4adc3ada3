//! The incident sinks — PagerDuty, Opsgenie, Alertmanager — against a real HTTP receiver on
//! 127.0.0.1: the exact request each sends for a firing alert, its resolution and a digest, and
//! how a rejected key is reported.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use kpulse::alert::{Alert, AlertKey, Notification, Severity, State};
use kpulse::config::{self, Config, SecretMap};
use kpulse::engine::{Dispatch, DispatchItem, DispatchKind};
use kpulse::sinks::{Batch, Registry, Report};
use serde_json::{Value, json};

#[path = "support/explained.rs"]
mod explained;
#[path = "support/receiver.rs"]
mod receiver;
use receiver::Receiver;

const ROUTING_KEY: &str = "R0UT1NG-k3y-5ecret";
const GENIE_KEY: &str = "g3nie-5ecret-api-key";
const AM_TOKEN: &str = "Bearer am-5ecret-t0ken";

fn setup(channel: &str) -> (Config, Registry) {
    kpulse::install_crypto_provider();
    let mut secrets = SecretMap::new();
    secrets.insert("ROUTING_KEY".into(), ROUTING_KEY.into());
    secrets.insert("GENIE_KEY".into(), GENIE_KEY.into());
    secrets.insert("AM_TOKEN".into(), AM_TOKEN.into());
    let yaml = format!(
        "cluster: prod-eks-1\n\
         links:\n  runbook: 'https://runbooks.example/{{monitor}}#{{reason}}'\n\
         channels:\n  pager: {channel}\n\
         routing: {{default: [pager]}}\n"
    );
    let config = config::load(&yaml, &secrets).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let registry = Registry::build(&config).unwrap();
    (config, registry)
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn oom(state: State) -> DispatchItem {
    let alert = Alert::new(
        AlertKey::new("pod_crashes", "checkout", "Pod", "api-7d9f", "OOMKilled"),
        Severity::Critical,
        "api-7d9f/server OOMKilled",
        t0(),
    )
    .message("Container server in pod checkout/api-7d9f is in state OOMKilled")
    .field("Exit code", "137");
    DispatchItem {
        notification: Notification {
            state,
            alert,
            at: match state {
                State::Firing => t0(),
                State::Resolved => t0() + SignedDuration::from_mins(5),
            },
        },
        reference: None,
    }
}

fn disk(state: State) -> DispatchItem {
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

async fn deliver(
    config: &Config,
    registry: &Registry,
    kind: DispatchKind,
    items: Vec<DispatchItem>,
) -> Report {
    let dispatch = Dispatch {
        channel: "pager".into(),
        kind,
        notifications: items,
    };
    registry
        .deliver(Batch::from_dispatch(config, &dispatch))
        .await
}

const FIRST_SEEN: &str = "2027-01-15T08:00:00Z";
const RESOLVED_AT: &str = "2027-01-15T08:05:00Z";

#[tokio::test]
async fn pagerduty_triggers_and_resolves_with_the_alert_key_as_dedup_key() {
    let rx = Receiver::start((
        202,
        r#"{"status":"success","message":"Event processed"}"#,
        None,
    ))
    .await;
    let (config, registry) = setup(&format!(
        "{{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://{}/v2/enqueue', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v2/enqueue")
    );
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(
        seen[0].body,
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": "pod_crashes/checkout/Pod/api-7d9f/OOMKilled",
            "payload": {
                "summary": "[prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled",
                "source": "prod-eks-1",
                "severity": "critical",
                "timestamp": FIRST_SEEN,
                "component": "checkout/pod/api-7d9f",
                "group": "checkout",
                "class": "OOMKilled",
                "custom_details": {
                    "message": "Container server in pod checkout/api-7d9f is in state OOMKilled",
                    "cluster": "prod-eks-1",
                    "Severity": "critical",
                    "Monitor": "pod_crashes",
                    "Reason": "OOMKilled",
                    "Exit code": "137",
                    "First seen": FIRST_SEEN,
                },
            },
            "links": [{"href": "https://runbooks.example/pod_crashes#OOMKilled", "text": "runbook"}],
            "client": "kpulse",
        })
    );

    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!(
        seen[0].body,
        json!({
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": "pod_crashes/checkout/Pod/api-7d9f/OOMKilled",
        })
    );
}

#[tokio::test]
async fn pagerduty_sends_one_event_per_digest_item() {
    let rx = Receiver::start((202, r#"{"status":"success"}"#, None)).await;
    let (config, registry) = setup(&format!(
        "{{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://{}/v2/enqueue', delivery: {{allow_http: true}}}}",
        rx.addr
    ));
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Resolved), disk(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    let actions: Vec<(&Value, &Value)> = seen
        .iter()
        .map(|s| (&s.body["event_action"], &s.body["dedup_key"]))
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                &json!("resolve"),
                &json!("pod_crashes/checkout/Pod/api-7d9f/OOMKilled")
            ),
            (
                &json!("trigger"),
                &json!("node_disk//Node/ip-10-0-1-7/DiskPressure")
            ),
        ]
    );
    // A cluster-scoped object groups by its kind.
    assert_eq!(seen[1].body["payload"]["group"], "Node");
    assert_eq!(seen[1].body["payload"]["component"], "node/ip-10-0-1-7");
    assert_eq!(seen[1].body["payload"]["severity"], "warning");
}

#[tokio::test]
async fn pagerduty_honours_retry_after_on_429() {
    let rx = Receiver::start((202, r#"{"status":"success"}"#, None)).await;
    rx.script(&[(429, r#"{"status":"throttle"}"#, Some("1"))]);
    let (config, registry) = setup(&format!(
        "{{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://{}/v2/enqueue', delivery: {{allow_http: true, retries: 1}}}}",
        rx.addr
    ));
    let started = Instant::now();
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!((report.attempts, rx.take().len()), (2, 2));
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn opsgenie_creates_and_closes_by_alias() {
    let rx = Receiver::start((
        202,
        r#"{"result":"Request will be processed","requestId":"r1"}"#,
        None,
    ))
    .await;
    let (config, registry) = setup(&format!(
        "{{type: opsgenie, api_key: $GENIE_KEY, api_url: 'http://{}/', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/v2/alerts")
    );
    assert_eq!(
        seen[0].headers["authorization"],
        format!("GenieKey {GENIE_KEY}")
    );
    assert_eq!(
        seen[0].body,
        json!({
            "message": "[prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled",
            "alias": "pod_crashes/checkout/Pod/api-7d9f/OOMKilled",
            "description": format!(
                "Container server in pod checkout/api-7d9f is in state OOMKilled\n\n\
                 Severity: critical\nMonitor: pod_crashes\nReason: OOMKilled\nExit code: 137\n\
                 First seen: {FIRST_SEEN}\n\nrunbook: https://runbooks.example/pod_crashes#OOMKilled"
            ),
            "priority": "P1",
            "tags": ["kpulse", "cluster:prod-eks-1", "monitor:pod_crashes", "severity:critical", "namespace:checkout"],
            "details": {
                "cluster": "prod-eks-1",
                "object": "checkout/pod/api-7d9f",
                "Severity": "critical",
                "Monitor": "pod_crashes",
                "Reason": "OOMKilled",
                "Exit code": "137",
                "First seen": FIRST_SEEN,
                "runbook": "https://runbooks.example/pod_crashes#OOMKilled",
            },
            "entity": "checkout/pod/api-7d9f",
            "source": "kpulse",
        })
    );

    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        (
            "POST",
            "/v2/alerts/pod_crashes%2Fcheckout%2FPod%2Fapi-7d9f%2FOOMKilled/close?identifierType=alias"
        )
    );
    assert_eq!(
        seen[0].headers["authorization"],
        format!("GenieKey {GENIE_KEY}")
    );
    assert_eq!(
        seen[0].body,
        json!({
            "source": "kpulse",
            "note": "Cleared after 5m. It was: Container server in pod checkout/api-7d9f is in state OOMKilled",
        })
    );
}

#[tokio::test]
async fn opsgenie_digest_is_one_call_per_alert_and_caps_the_message() {
    let rx = Receiver::start((202, r#"{"result":"ok"}"#, None)).await;
    let (config, registry) = setup(&format!(
        "{{type: opsgenie, api_key: $GENIE_KEY, api_url: 'http://{}', delivery: {{allow_http: true}}}}",
        rx.addr
    ));
    let mut long = disk(State::Firing);
    long.notification.alert.title = "x".repeat(200);
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Digest,
        vec![long, oom(State::Resolved)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        vec![
            "/v2/alerts",
            "/v2/alerts/pod_crashes%2Fcheckout%2FPod%2Fapi-7d9f%2FOOMKilled/close?identifierType=alias"
        ]
    );
    let message = seen[0].body["message"].as_str().unwrap();
    assert_eq!(message.chars().count(), 130);
    assert!(message.starts_with("[prod-eks-1] node/ip-10-0-1-7 xxx") && message.ends_with('…'));
    assert_eq!(seen[0].body["priority"], "P3");
}

#[tokio::test]
async fn alertmanager_posts_alerts_and_sets_ends_at_on_resolution() {
    let rx = Receiver::start((200, "", None)).await;
    let (config, registry) = setup(&format!(
        "{{type: alertmanager, url: 'http://{}/', headers: {{Authorization: $AM_TOKEN, X-Scope-OrgID: tenant-1}}, delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let before = Timestamp::now();
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/api/v2/alerts")
    );
    assert_eq!(seen[0].headers["authorization"], AM_TOKEN);
    assert_eq!(seen[0].headers["x-scope-orgid"], "tenant-1");
    // A firing alert stays open for four resend intervals (1m by default) from the post.
    let ends_at =
        |alert: &Value| -> Timestamp { alert["endsAt"].as_str().unwrap().parse().unwrap() };
    let valid = ends_at(&seen[0].body[0]) - SignedDuration::from_mins(4);
    assert!(
        valid >= before && valid <= Timestamp::now(),
        "{}",
        seen[0].body
    );
    let mut firing = json!({
        "labels": {
            "alertname": "pod_crashes",
            "severity": "critical",
            "namespace": "checkout",
            "kind": "Pod",
            "name": "api-7d9f",
            "reason": "OOMKilled",
            "cluster": "prod-eks-1",
        },
        "annotations": {
            "summary": "checkout/pod/api-7d9f api-7d9f/server OOMKilled",
            "description": "Container server in pod checkout/api-7d9f is in state OOMKilled",
        },
        "startsAt": FIRST_SEEN,
        "generatorURL": "https://runbooks.example/pod_crashes#OOMKilled",
    });
    firing["endsAt"] = seen[0].body[0]["endsAt"].clone();
    assert_eq!(seen[0].body, json!([firing]));

    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    let mut resolved = firing.clone();
    resolved["endsAt"] = json!(RESOLVED_AT);
    resolved["annotations"]["description"] = json!(
        "Cleared after 5m. It was: Container server in pod checkout/api-7d9f is in state OOMKilled"
    );
    assert_eq!(seen[0].body, json!([resolved]));

    // A digest is one request with every alert; a node has no namespace label.
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Firing), disk(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!(seen.len(), 1);
    let alerts = seen[0].body.as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    firing["endsAt"] = alerts[0]["endsAt"].clone();
    assert_eq!(alerts[0], firing);
    assert_eq!(
        alerts[1]["labels"],
        json!({
            "alertname": "node_disk",
            "severity": "warning",
            "kind": "Node",
            "name": "ip-10-0-1-7",
            "reason": "DiskPressure",
            "cluster": "prod-eks-1",
        })
    );
    assert!(
        ends_at(&alerts[1]) > Timestamp::now(),
        "firing: endsAt ahead"
    );
}

/// The whole path — engine, pipeline, ticker, sink — against a real receiver: a firing alert is
/// posted again every `resend_interval` while it fires, and once with `endsAt` when it clears;
/// the PagerDuty channel beside it is never sent a resend.
#[tokio::test]
async fn alertmanager_is_sent_firing_alerts_again_until_they_resolve() {
    kpulse::install_crypto_provider();
    let am = Receiver::start((200, "", None)).await;
    let pd = Receiver::start((202, r#"{"status":"success"}"#, None)).await;
    let mut secrets = SecretMap::new();
    secrets.insert("ROUTING_KEY".into(), ROUTING_KEY.into());
    let yaml = format!(
        "channels:\n\
         \x20 am: {{type: alertmanager, url: 'http://{}', resend_interval: 1s, delivery: {{allow_http: true}}}}\n\
         \x20 pager: {{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://{}/v2/enqueue', delivery: {{allow_http: true}}}}\n\
         routing: {{default: [am, pager]}}\n",
        am.addr, pd.addr
    );
    let config = config::load(&yaml, &secrets).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let registry = Registry::build(&config).unwrap();
    let pipeline = kpulse::pipeline::Pipeline::new(
        config,
        registry,
        std::sync::Arc::new(kpulse::metrics::Metrics::default()),
    )
    .unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let ticker = tokio::spawn(pipeline.clone().run_ticker(token.clone()));

    let alert = oom(State::Firing).notification.alert;
    pipeline.submit(alert.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while am.count() < 3 {
        assert!(Instant::now() < deadline, "resends: {}", am.count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pipeline.resolve(&alert.key);
    pipeline.drain().await;
    token.cancel();
    ticker.await.unwrap();

    let posts = am.take();
    let (last, firing) = posts.split_last().unwrap();
    assert!(firing.len() >= 3, "{}", firing.len());
    for post in firing {
        let alerts = post.body.as_array().unwrap();
        assert_eq!(alerts.len(), 1, "{}", post.body);
        assert_eq!(alerts[0]["labels"]["name"], "api-7d9f");
        assert_eq!(alerts[0]["startsAt"], FIRST_SEEN, "the start never moves");
        let ends: Timestamp = alerts[0]["endsAt"].as_str().unwrap().parse().unwrap();
        assert!(
            ends > Timestamp::now(),
            "a firing post keeps the alert open"
        );
    }
    // The resolution comes last, after every resend, with the time it cleared.
    let ends: Timestamp = last.body[0]["endsAt"].as_str().unwrap().parse().unwrap();
    assert!(ends <= Timestamp::now(), "{}", last.body);
    assert!(
        last.body[0]["annotations"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Cleared after"),
        "{}",
        last.body
    );
    let paged: Vec<Value> = pd
        .take()
        .into_iter()
        .map(|s| s.body["event_action"].clone())
        .collect();
    assert_eq!(paged, [json!("trigger"), json!("resolve")]);
}

#[tokio::test]
async fn a_rejected_key_is_not_retried_and_the_error_names_the_channel_not_the_key() {
    let cases = [
        (
            "{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://ADDR/v2/enqueue', delivery: {allow_http: true, retries: 3}}",
            ROUTING_KEY,
            "pagerduty",
        ),
        (
            "{type: opsgenie, api_key: $GENIE_KEY, api_url: 'http://ADDR', delivery: {allow_http: true, retries: 3}}",
            GENIE_KEY,
            "opsgenie",
        ),
        (
            "{type: alertmanager, url: 'http://ADDR', headers: {Authorization: $AM_TOKEN}, delivery: {allow_http: true, retries: 3}}",
            AM_TOKEN,
            "alertmanager",
        ),
    ];
    for (channel, secret, sink) in cases {
        let rx = Receiver::start((401, r#"{"message":"Invalid routing key"}"#, None)).await;
        let (config, registry) = setup(&channel.replace("ADDR", &rx.addr.to_string()));
        let report = deliver(
            &config,
            &registry,
            DispatchKind::Immediate,
            vec![oom(State::Firing)],
        )
        .await;
        let err = report.result.unwrap_err().to_string();
        assert_eq!(rx.take().len(), 1, "{sink}: a 401 must not be retried");
        assert!(
            err.starts_with(&format!("channel \"pager\" ({sink}): ")),
            "{err}"
        );
        assert!(
            err.contains("401") && err.contains("Invalid routing key"),
            "{err}"
        );
        assert!(
            !err.contains(secret),
            "{sink}: the error shows the secret: {err}"
        );
        assert!(
            !err.contains(&rx.addr.to_string()),
            "{sink}: the error shows the URL: {err}"
        );
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried_and_the_error_hides_the_url() {
    // Bound but not listening: connections are refused, and no other process can take the port.
    let down = tokio::net::TcpSocket::new_v4().unwrap();
    down.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = down.local_addr().unwrap();
    let (config, registry) = setup(&format!(
        "{{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://{addr}/v2/enqueue?token=url-5ecret', delivery: {{allow_http: true, retries: 1}}}}"
    ));
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_eq!(report.attempts, 2);
    let err = report.result.unwrap_err().to_string();
    assert!(
        !err.contains("url-5ecret") && !err.contains(&addr.to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn pagerduty_opsgenie_and_alertmanager_carry_the_evidence() {
    let channels = [
        (
            "pagerduty",
            "{type: pagerduty, routing_key: $ROUTING_KEY, api_url: 'http://ADDR/v2/enqueue', delivery: {allow_http: true}}",
        ),
        (
            "opsgenie",
            "{type: opsgenie, api_key: $GENIE_KEY, api_url: 'http://ADDR', delivery: {allow_http: true}}",
        ),
        (
            "alertmanager",
            "{type: alertmanager, url: 'http://ADDR', delivery: {allow_http: true}}",
        ),
    ];
    for (sink, channel) in channels {
        let rx = Receiver::start((202, "{}", None)).await;
        let (config, registry) = setup(&channel.replace("ADDR", &rx.addr.to_string()));
        let item = explained::explained(State::Firing, t0());
        let report = deliver(&config, &registry, DispatchKind::Immediate, vec![item]).await;
        assert!(report.result.is_ok(), "{sink}: {:?}", report.result);
        let seen = rx.take();
        let body = String::from_utf8(seen[0].raw.clone()).unwrap();
        explained::shows_the_evidence(sink, &body);
        let v = &seen[0].body;
        let cause = match sink {
            "pagerduty" => &v["payload"]["custom_details"]["likely_cause"],
            "opsgenie" => &v["details"]["Likely cause"],
            _ => &v[0]["annotations"]["likely_cause"],
        };
        assert_eq!(cause, explained::CAUSE, "{sink}: {v:#}");
    }
}
