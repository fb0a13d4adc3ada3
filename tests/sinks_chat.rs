//! The message sinks — webhook, Slack, Teams, Discord, Google Chat — against a real HTTP receiver
//! on 127.0.0.1: the exact request each sends for a firing alert, its resolution and a digest;
//! and delivery as a user sees it: `429 Retry-After` waited for, a 500 retried, a 401 reported
//! once with the channel's name, a stalled channel not delaying another.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use kpulse::alert::{Alert, AlertKey, Notification, Severity, State};
use kpulse::config::{self, Config, SecretMap};
use kpulse::engine::{Dispatch, DispatchItem, DispatchKind};
use kpulse::metrics::Metrics;
use kpulse::pipeline::Pipeline;
use kpulse::sinks::{Batch, Registry, Report};
use serde_json::{Value, json};

#[path = "support/receiver.rs"]
mod receiver;
use receiver::{Receiver, Seen};
use std::sync::Arc;

const HOOK_TOKEN: &str = "Bearer h00k-5ecret-t0ken";
const HMAC_KEY: &str = "hm4c-5ecret";
const SLACK_TOKEN: &str = "xoxb-5ecret-sl4ck-t0ken";

fn secrets() -> SecretMap {
    let mut secrets = SecretMap::new();
    secrets.insert("HOOK_TOKEN".into(), HOOK_TOKEN.into());
    secrets.insert("HMAC_KEY".into(), HMAC_KEY.into());
    secrets.insert("SLACK_TOKEN".into(), SLACK_TOKEN.into());
    secrets
}

/// A configuration whose `channels:` is `channels` (YAML), routing everything to `default`.
fn config_with(channels: &str, default: &str) -> Config {
    kpulse::install_crypto_provider();
    let yaml = format!(
        "cluster: prod-eks-1\n\
         links:\n  runbook: 'https://runbooks.example/{{monitor}}#{{reason}}'\n\
         channels:\n{channels}\n\
         routing: {{default: [{default}]}}\n"
    );
    config::load(&yaml, &secrets()).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// A configuration with one channel named `ops` (its settings as flow YAML).
fn setup(channel: &str) -> (Config, Registry) {
    let config = config_with(&format!("  ops: {channel}"), "ops");
    let registry = Registry::build(&config).unwrap();
    (config, registry)
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

const FIRST_SEEN: &str = "2027-01-15T08:00:00Z";
const RESOLVED_AT: &str = "2027-01-15T08:05:00Z";
const FIRING_HEADLINE: &str = "🚨 [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled";
const RESOLVED_HEADLINE: &str =
    "✅ [RESOLVED] [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled";
const RESOLVED_SUMMARY: &str =
    "Cleared after 5m. It was: Container server in pod checkout/api-7d9f is in state OOMKilled";

fn oom_alert() -> Alert {
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

fn oom(state: State) -> DispatchItem {
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
        channel: "ops".into(),
        kind,
        notifications: items,
    };
    registry
        .deliver(Batch::from_dispatch(config, &dispatch))
        .await
}

/// Delivers and expects success and exactly one request.
async fn one_request(
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

fn assert_json_post(seen: &Seen, target: &str) {
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, target);
    assert!(
        seen.headers["content-type"].starts_with("application/json"),
        "{:?}",
        seen.headers
    );
    assert!(seen.headers["user-agent"].starts_with("kpulse/"));
}

fn no_secret_in(text: &str, rx: &Receiver) {
    for s in [HOOK_TOKEN, HMAC_KEY, SLACK_TOKEN, "h00k", "5ecret"] {
        assert!(!text.contains(s), "secret in {text:?}");
    }
    assert!(!text.contains(&rx.addr.to_string()), "URL in {text:?}");
}

// --- webhook ---------------------------------------------------------------------------------

fn webhook(rx: &Receiver) -> String {
    format!(
        "{{type: webhook, url: 'http://{}/hooks/kpulse', headers: {{Authorization: $HOOK_TOKEN}}, hmac_secret: $HMAC_KEY, delivery: {{allow_http: true}}}}",
        rx.addr
    )
}

fn hmac_hex(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HMAC_KEY.as_bytes());
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The schema's required alert fields, so the test and docs/webhook.schema.json cannot drift.
fn schema() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/webhook.schema.json"
    ))
    .expect("docs/webhook.schema.json exists");
    serde_json::from_str(&text).expect("docs/webhook.schema.json is JSON")
}

/// Checks `payload` against the required fields and JSON types of docs/webhook.schema.json.
fn conforms(payload: &Value) {
    fn check(value: &Value, schema: &Value, defs: &Value, path: &str) {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => &defs[r.trim_start_matches("#/$defs/")],
            None => schema,
        };
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let actual = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            assert!(types.contains(&actual), "{path}: {actual} is not {types:?}");
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            assert!(
                allowed.contains(value),
                "{path}: {value} not in {allowed:?}"
            );
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required {
                let r = r.as_str().unwrap();
                assert!(value.get(r).is_some(), "{path}: missing {r}");
            }
        }
        if let (Some(props), Some(obj)) = (
            schema.get("properties").and_then(Value::as_object),
            value.as_object(),
        ) {
            for (k, v) in obj {
                let sub = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} is not documented in the schema"));
                check(v, sub, defs, &format!("{path}.{k}"));
            }
        }
        if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                check(v, items, defs, &format!("{path}[{i}]"));
            }
        }
    }
    let schema = schema();
    check(payload, &schema, &schema["$defs"], "$");
}

#[tokio::test]
async fn webhook_posts_the_versioned_payload_with_headers_and_signature() {
    let rx = Receiver::start((200, "thanks", None)).await;
    let (config, registry) = setup(&webhook(&rx));

    let (report, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_json_post(&seen, "/hooks/kpulse");
    assert_eq!(seen.headers["authorization"], HOOK_TOKEN);
    assert_eq!(
        seen.headers["x-kpulse-signature"],
        format!("sha256={}", hmac_hex(&seen.raw)),
        "the signature covers the exact body"
    );
    assert_eq!(
        report.result.unwrap().response,
        "HTTP 200: thanks",
        "the receiver's answer is shown by /test-channel"
    );
    conforms(&seen.body);
    assert_eq!(
        seen.body,
        json!({
            "version": "1",
            "cluster": "prod-eks-1",
            "channel": "ops",
            "kind": "immediate",
            "alerts": [{
                "state": "firing",
                "key": {"monitor": "pod_crashes", "namespace": "checkout", "kind": "Pod", "name": "api-7d9f", "reason": "OOMKilled"},
                "key_string": "pod_crashes/checkout/Pod/api-7d9f/OOMKilled",
                "severity": "critical",
                "title": "api-7d9f/server OOMKilled",
                "message": "Container server in pod checkout/api-7d9f is in state OOMKilled",
                "headline": FIRING_HEADLINE,
                "summary": "Container server in pod checkout/api-7d9f is in state OOMKilled",
                "object": "checkout/pod/api-7d9f",
                "owner": "Deployment/api",
                "node": null,
                "labels": {},
                "fields": {"Exit code": "137"},
                "resolvable": true,
                "first_seen": FIRST_SEEN,
                "at": FIRST_SEEN,
                "links": {"runbook": "https://runbooks.example/pod_crashes#OOMKilled"},
            }],
        })
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    conforms(&seen.body);
    let a = &seen.body["alerts"][0];
    assert_eq!(
        (&a["state"], &a["at"], &a["headline"], &a["summary"]),
        (
            &json!("resolved"),
            &json!(RESOLVED_AT),
            &json!(RESOLVED_HEADLINE),
            &json!(RESOLVED_SUMMARY)
        )
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Firing), disk(State::Resolved)],
    )
    .await;
    conforms(&seen.body);
    assert_eq!(seen.body["kind"], "digest");
    let alerts = seen.body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[1]["key_string"],
        "node_disk//Node/ip-10-0-1-7/DiskPressure"
    );
    assert_eq!(alerts[1]["object"], "node/ip-10-0-1-7");
    assert_eq!(alerts[1]["state"], "resolved");
}

/// The ```json blocks of docs/webhook.md, in order.
fn webhook_doc_examples() -> Vec<Value> {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhook.md"))
        .expect("docs/webhook.md exists");
    page.split("```json\n")
        .skip(1)
        .map(|rest| {
            let block = rest.split("\n```").next().unwrap();
            serde_json::from_str(block).unwrap_or_else(|e| panic!("{e} in:\n{block}"))
        })
        .collect()
}

#[test]
fn the_documented_webhook_examples_conform_to_the_schema() {
    let examples = webhook_doc_examples();
    let payloads: Vec<&Value> = examples
        .iter()
        .filter(|v| v.get("version").is_some())
        .collect();
    assert_eq!(payloads.len(), 2, "the firing and the digest example");
    for p in &payloads {
        conforms(p);
    }
    // The resolution is shown as the fields that change: applied to the firing example, it is a
    // whole payload again.
    let changes = examples
        .iter()
        .find(|v| v["state"] == "resolved")
        .expect("a resolution example");
    let mut resolved = payloads[0].clone();
    for (k, v) in changes.as_object().unwrap() {
        resolved["alerts"][0][k] = v.clone();
    }
    conforms(&resolved);
}

#[tokio::test]
async fn webhook_without_a_secret_sends_no_signature() {
    let rx = Receiver::start((204, "", None)).await;
    let (config, registry) = setup(&format!(
        "{{type: webhook, url: 'http://{}/h', delivery: {{allow_http: true}}}}",
        rx.addr
    ));
    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert!(!seen.headers.contains_key("x-kpulse-signature"));
}

#[tokio::test]
async fn every_http_sink_renders_the_test_message() {
    let rx = Receiver::start((200, r#"{"ok":true,"ts":"1.2"}"#, None)).await;
    let a = rx.addr;
    let channels = [
        format!("{{type: webhook, url: 'http://{a}/webhook', delivery: {{allow_http: true}}}}"),
        format!("{{type: slack, webhook_url: 'http://{a}/slack', delivery: {{allow_http: true}}}}"),
        format!(
            "{{type: slack, token: $SLACK_TOKEN, channel: C1, api_url: 'http://{a}/api', delivery: {{allow_http: true}}}}"
        ),
        format!("{{type: teams, webhook_url: 'http://{a}/teams', delivery: {{allow_http: true}}}}"),
        format!(
            "{{type: discord, webhook_url: 'http://{a}/discord', delivery: {{allow_http: true}}}}"
        ),
        format!(
            "{{type: googlechat, webhook_url: 'http://{a}/chat', delivery: {{allow_http: true}}}}"
        ),
        format!(
            "{{type: pagerduty, routing_key: k, api_url: 'http://{a}/v2/enqueue', delivery: {{allow_http: true}}}}"
        ),
        format!(
            "{{type: opsgenie, api_key: k, api_url: 'http://{a}', delivery: {{allow_http: true}}}}"
        ),
        format!("{{type: alertmanager, url: 'http://{a}', delivery: {{allow_http: true}}}}"),
    ];
    for channel in channels {
        let (_, registry) = setup(&channel);
        let report = registry
            .deliver(Batch::test("prod-eks-1", "ops", t0()))
            .await;
        assert!(report.result.is_ok(), "{channel}: {:?}", report.result);
        let seen = rx.take();
        assert_eq!(seen.len(), 1, "{channel}");
        let text = seen[0].body.to_string();
        assert!(
            text.contains("Test message for channel ops"),
            "{channel}: {text}"
        );
    }
}

// --- Slack -----------------------------------------------------------------------------------

#[tokio::test]
async fn slack_webhook_sends_block_kit_in_red_and_green_attachments() {
    let rx = Receiver::start((200, "ok", None)).await;
    let (config, registry) = setup(&format!(
        "{{type: slack, webhook_url: 'http://{}/services/T0/B0/x', mention: '<!here>', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let (report, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_json_post(&seen, "/services/T0/B0/x");
    assert!(
        report.result.unwrap().references.is_empty(),
        "a webhook has no ts"
    );
    let b = &seen.body;
    assert_eq!(b["text"], format!("<!here> {FIRING_HEADLINE}"));
    let att = &b["attachments"][0];
    assert_eq!(att["color"], "#d40e0d");
    let blocks = att["blocks"].as_array().unwrap();
    assert_eq!(
        blocks[0],
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{FIRING_HEADLINE}*")}})
    );
    assert_eq!(
        blocks[1]["text"]["text"],
        "Container server in pod checkout/api-7d9f is in state OOMKilled"
    );
    assert_eq!(blocks[2]["type"], "section");
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["type"], "mrkdwn");
            f["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        fields,
        [
            "*Severity*\ncritical",
            "*Monitor*\npod_crashes",
            "*Reason*\nOOMKilled",
            "*Owner*\nDeployment/api",
            "*Exit code*\n137",
            "*First seen*\n2027-01-15T08:00:00Z"
        ]
    );
    assert_eq!(blocks[3]["type"], "context");
    assert_eq!(
        blocks[3]["elements"][0]["text"],
        "firing at 2027-01-15T08:00:00Z · <https://runbooks.example/pod_crashes#OOMKilled|runbook>"
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    let b = &seen.body;
    assert_eq!(b["text"], RESOLVED_HEADLINE, "no mention on a resolution");
    assert_eq!(b["attachments"][0]["color"], "#2eb67d");
    assert_eq!(
        b["attachments"][0]["blocks"][1]["text"]["text"],
        RESOLVED_SUMMARY
    );
    assert!(b.get("thread_ts").is_none());

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Firing), disk(State::Resolved)],
    )
    .await;
    let b = &seen.body;
    let title = "[prod-eks-1] kpulse digest: 2 alerts (1 firing, 1 resolved)";
    assert_eq!(b["text"], format!("<!here> 🚨 {title}"));
    assert_eq!(b["blocks"][0]["text"]["text"], format!("*{title}*"));
    let atts = b["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2);
    assert_eq!(atts[0]["color"], "#d40e0d");
    assert_eq!(atts[1]["color"], "#2eb67d");
    assert!(
        atts[1]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*✅ [RESOLVED] [prod-eks-1] node/ip-10-0-1-7 ip-10-0-1-7 disk 91% full*\nCleared after 10m.")
    );
}

#[tokio::test]
async fn slack_bot_threads_the_resolution_under_the_firing_message() {
    let rx = Receiver::start((
        200,
        r#"{"ok":true,"channel":"C0123","ts":"1800000000.000100"}"#,
        None,
    ))
    .await;
    let (config, registry) = setup(&format!(
        "{{type: slack, token: $SLACK_TOKEN, channel: C0123, api_url: 'http://{}/api/', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let (report, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_json_post(&seen, "/api/chat.postMessage");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {SLACK_TOKEN}")
    );
    assert_eq!(seen.body["channel"], "C0123");
    assert_eq!(seen.body["text"], FIRING_HEADLINE);
    assert_eq!(seen.body["attachments"][0]["color"], "#d40e0d");
    assert!(seen.body.get("thread_ts").is_none());
    let delivered = report.result.unwrap();
    assert_eq!(delivered.response, "ok, ts 1800000000.000100");
    assert_eq!(
        delivered.references,
        vec![(oom_alert().key, "1800000000.000100".to_string())]
    );

    let mut resolved = oom(State::Resolved);
    resolved.reference = Some("1800000000.000100".into());
    let (report, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![resolved],
    )
    .await;
    assert_eq!(seen.body["thread_ts"], "1800000000.000100");
    assert_eq!(seen.body["text"], RESOLVED_HEADLINE);
    assert_eq!(seen.body["attachments"][0]["color"], "#2eb67d");
    assert!(report.result.unwrap().references.is_empty());
}

#[tokio::test]
async fn slack_ok_false_is_a_permanent_error_and_ratelimited_heals() {
    let rx = Receiver::start((200, r#"{"ok":true,"ts":"1.1"}"#, None)).await;
    let (config, registry) = setup(&format!(
        "{{type: slack, token: $SLACK_TOKEN, channel: C0123, api_url: 'http://{}/api', delivery: {{allow_http: true, retries: 3}}}}",
        rx.addr
    ));
    rx.script(&[(200, r#"{"ok":false,"error":"invalid_auth"}"#, None)]);
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    let err = report.result.unwrap_err();
    assert_eq!(rx.take().len(), 1, "invalid_auth is not retried");
    assert_eq!(
        err.to_string(),
        "channel \"ops\" (slack): Slack chat.postMessage failed: invalid_auth after 1 attempt(s)"
    );
    no_secret_in(&err.to_string(), &rx);

    rx.script(&[(429, r#"{"ok":false,"error":"ratelimited"}"#, Some("1"))]);
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

// --- Teams -----------------------------------------------------------------------------------

fn card(body: &Value) -> &Value {
    assert_eq!(body["type"], "message");
    let att = &body["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    card
}

#[tokio::test]
async fn teams_sends_an_adaptive_card_through_the_workflows_webhook() {
    let rx = Receiver::start((202, "", None)).await;
    let (config, registry) = setup(&format!(
        "{{type: teams, webhook_url: 'http://{}/workflows/abc/triggers/manual/paths/invoke?sig=x', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_json_post(&seen, "/workflows/abc/triggers/manual/paths/invoke?sig=x");
    let c = card(&seen.body);
    let body = c["body"].as_array().unwrap();
    assert_eq!(
        body[0],
        json!({"type": "TextBlock", "text": FIRING_HEADLINE, "weight": "Bolder", "color": "Attention", "wrap": true})
    );
    assert_eq!(body[1]["type"], "TextBlock");
    assert_eq!(body[2]["type"], "FactSet");
    assert_eq!(
        body[2]["facts"][0],
        json!({"title": "Severity", "value": "critical"})
    );
    assert_eq!(
        c["actions"],
        json!([{"type": "Action.OpenUrl", "title": "runbook", "url": "https://runbooks.example/pod_crashes#OOMKilled"}])
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    let c = card(&seen.body);
    assert_eq!(c["body"][0]["text"], RESOLVED_HEADLINE);
    assert_eq!(c["body"][0]["color"], "Good");
    assert_eq!(c["body"][1]["text"], RESOLVED_SUMMARY);

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Firing), disk(State::Resolved)],
    )
    .await;
    let c = card(&seen.body);
    let body = c["body"].as_array().unwrap();
    assert_eq!(
        body[0]["text"],
        "🚨 [prod-eks-1] kpulse digest: 2 alerts (1 firing, 1 resolved)"
    );
    assert_eq!(body.len(), 3);
    assert_eq!(body[1]["type"], "Container");
    assert_eq!(body[1]["items"][0]["text"], FIRING_HEADLINE);
    assert_eq!(body[2]["items"][0]["color"], "Good");
}

// --- Discord ---------------------------------------------------------------------------------

#[tokio::test]
async fn discord_sends_coloured_embeds_and_never_pings() {
    let rx = Receiver::start((204, "", None)).await;
    let (config, registry) = setup(&format!(
        "{{type: discord, webhook_url: 'http://{}/api/webhooks/1/tok', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_json_post(&seen, "/api/webhooks/1/tok");
    let b = &seen.body;
    assert_eq!(b["content"], FIRING_HEADLINE);
    assert_eq!(b["allowed_mentions"], json!({"parse": []}));
    let e = &b["embeds"][0];
    assert_eq!(e["title"], FIRING_HEADLINE);
    assert_eq!(e["color"], 0xd40e0d);
    assert_eq!(e["timestamp"], FIRST_SEEN);
    assert_eq!(
        e["description"],
        "Container server in pod checkout/api-7d9f is in state OOMKilled\n[runbook](https://runbooks.example/pod_crashes#OOMKilled)"
    );
    assert_eq!(
        e["fields"][4],
        json!({"name": "Exit code", "value": "137", "inline": true})
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    assert_eq!(seen.body["embeds"][0]["color"], 0x2eb67d);
    assert_eq!(seen.body["embeds"][0]["title"], RESOLVED_HEADLINE);

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Firing), disk(State::Resolved)],
    )
    .await;
    assert_eq!(
        seen.body["content"],
        "[prod-eks-1] kpulse digest: 2 alerts (1 firing, 1 resolved)"
    );
    let embeds = seen.body["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 2);
    assert_eq!(embeds[1]["color"], 0x2eb67d);
}

#[tokio::test]
async fn discord_digest_of_many_alerts_stays_within_ten_embeds() {
    let rx = Receiver::start((204, "", None)).await;
    let (config, registry) = setup(&format!(
        "{{type: discord, webhook_url: 'http://{}/api/webhooks/1/tok', delivery: {{allow_http: true}}}}",
        rx.addr
    ));
    let items: Vec<DispatchItem> = (0..15)
        .map(|i| {
            let mut item = oom(State::Firing);
            item.notification.alert.key.name = format!("api-{i}");
            item
        })
        .collect();
    let (_, seen) = one_request(&rx, &config, &registry, DispatchKind::Digest, items).await;
    let embeds = seen.body["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 10);
    assert_eq!(embeds[9]["title"], "…and 6 more");
}

// --- Google Chat -----------------------------------------------------------------------------

#[tokio::test]
async fn googlechat_sends_a_cards_v2_message_with_text() {
    let rx = Receiver::start((200, r#"{"name":"spaces/AAA/messages/1"}"#, None)).await;
    let (config, registry) = setup(&format!(
        "{{type: googlechat, webhook_url: 'http://{}/v1/spaces/AAA/messages?key=k&token=t', delivery: {{allow_http: true}}}}",
        rx.addr
    ));

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert_json_post(&seen, "/v1/spaces/AAA/messages?key=k&token=t");
    let b = &seen.body;
    assert_eq!(b["text"], FIRING_HEADLINE);
    let card = &b["cardsV2"][0]["card"];
    assert_eq!(b["cardsV2"][0]["cardId"], "kpulse");
    assert_eq!(card["header"]["title"], FIRING_HEADLINE);
    let widgets = card["sections"][0]["widgets"].as_array().unwrap();
    assert_eq!(
        widgets[0]["textParagraph"]["text"],
        format!(
            "<font color=\"#d40e0d\"><b>{FIRING_HEADLINE}</b></font><br>Container server in pod checkout/api-7d9f is in state OOMKilled"
        )
    );
    assert_eq!(
        widgets[1],
        json!({"decoratedText": {"topLabel": "Severity", "text": "critical"}})
    );
    assert_eq!(
        widgets.last().unwrap(),
        &json!({"buttonList": {"buttons": [{"text": "runbook", "onClick": {"openLink": {"url": "https://runbooks.example/pod_crashes#OOMKilled"}}}]}})
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Resolved)],
    )
    .await;
    assert_eq!(seen.body["text"], RESOLVED_HEADLINE);
    assert!(
        seen.body["cardsV2"][0]["card"]["sections"][0]["widgets"][0]["textParagraph"]["text"]
            .as_str()
            .unwrap()
            .starts_with("<font color=\"#2eb67d\">")
    );

    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Digest,
        vec![oom(State::Firing), disk(State::Resolved)],
    )
    .await;
    assert_eq!(
        seen.body["text"],
        "🚨 [prod-eks-1] kpulse digest: 2 alerts (1 firing, 1 resolved)"
    );
    assert_eq!(
        seen.body["cardsV2"][0]["card"]["sections"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

// --- delivery --------------------------------------------------------------------------------

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for_then_delivered() {
    let rx = Receiver::start((200, "ok", None)).await;
    let (config, registry) = setup(&webhook(&rx));
    rx.script(&[(429, "slow down", Some("1"))]);
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
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_500_then_200_delivers_once() {
    let rx = Receiver::start((200, "ok", None)).await;
    let (config, registry) = setup(&webhook(&rx));
    rx.script(&[(500, "oops", None)]);
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![oom(State::Firing)],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let seen = rx.take();
    assert_eq!((report.attempts, seen.len()), (2, 2));
    assert_eq!(seen[0].raw, seen[1].raw, "the retry sends the same message");
}

#[tokio::test]
async fn a_401_is_not_retried_and_the_error_names_the_channel() {
    let rx = Receiver::start((401, r#"{"error":"invalid token"}"#, None)).await;
    for channel in [
        webhook(&rx),
        format!(
            "{{type: slack, webhook_url: 'http://{}/services/T0/B0/h00k5ecret', delivery: {{allow_http: true}}}}",
            rx.addr
        ),
        format!(
            "{{type: teams, webhook_url: 'http://{}/t?sig=h00k5ecret', delivery: {{allow_http: true}}}}",
            rx.addr
        ),
        format!(
            "{{type: discord, webhook_url: 'http://{}/api/webhooks/1/h00k5ecret', delivery: {{allow_http: true}}}}",
            rx.addr
        ),
        format!(
            "{{type: googlechat, webhook_url: 'http://{}/v1?token=h00k5ecret', delivery: {{allow_http: true}}}}",
            rx.addr
        ),
    ] {
        let (config, registry) = setup(&channel);
        let report = deliver(
            &config,
            &registry,
            DispatchKind::Immediate,
            vec![oom(State::Firing)],
        )
        .await;
        let err = report.result.unwrap_err();
        assert_eq!(rx.take().len(), 1, "{channel}: not retried");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "channel \"ops\" ({}): HTTP 401: {{\"error\":\"invalid token\"}}",
                report.sink
            )),
            "{text}"
        );
        no_secret_in(&text, &rx);
    }
}

#[tokio::test]
async fn a_stalled_channel_does_not_delay_another() {
    let stalled = Receiver::slow((200, "ok", None), Duration::from_secs(8)).await;
    let fast = Receiver::start((200, "ok", None)).await;
    let config = config_with(
        &format!(
            "  stalled: {{type: webhook, url: 'http://{}/slow', delivery: {{allow_http: true, timeout: 20s}}}}\n  \
             fast: {{type: webhook, url: 'http://{}/fast', delivery: {{allow_http: true}}}}",
            stalled.addr, fast.addr
        ),
        "stalled, fast",
    );
    let registry = Registry::build(&config).unwrap();
    let pipeline = Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap();

    let started = Instant::now();
    pipeline.submit(oom_alert());
    while fast.count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the fast channel waited for the stalled one"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = fast.take();
    assert_eq!(seen[0].body["alerts"][0]["headline"], FIRING_HEADLINE);
    while stalled.count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the stalled channel was never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn through_the_pipeline_a_slack_resolution_replies_in_the_firing_thread() {
    let rx = Receiver::start((
        200,
        r#"{"ok":true,"channel":"C0123","ts":"1800000000.000100"}"#,
        None,
    ))
    .await;
    let config = config_with(
        &format!(
            "  slack: {{type: slack, token: $SLACK_TOKEN, channel: C0123, api_url: 'http://{}/api', delivery: {{allow_http: true}}}}",
            rx.addr
        ),
        "slack",
    );
    let registry = Registry::build(&config).unwrap();
    let pipeline = Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap();

    pipeline.submit(oom_alert());
    pipeline.drain().await;
    pipeline.resolve(&oom_alert().key);
    pipeline.drain().await;

    let seen = rx.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].body["text"], FIRING_HEADLINE);
    assert!(seen[0].body.get("thread_ts").is_none());
    assert!(
        seen[1].body["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ [RESOLVED] [prod-eks-1] checkout/pod/api-7d9f"),
        "{}",
        seen[1].body
    );
    assert_eq!(seen[1].body["thread_ts"], "1800000000.000100");
}
