//! The `webhook` sink: the versioned payload of docs/webhook.md and docs/webhook.schema.json,
//! headers and signature.

use kpulse::alert::State;
use kpulse::engine::DispatchKind;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::receiver::Receiver;

pub fn webhook(rx: &Receiver) -> String {
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
pub(crate) fn conforms(payload: &Value) {
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
            let integer = value.as_i64().is_some() && types.contains(&"integer");
            assert!(
                types.contains(&actual) || integer,
                "{path}: {actual} is not {types:?}"
            );
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            assert!(
                allowed.contains(value),
                "{path}: {value} not in {allowed:?}"
            );
        }
        if let (Some(required), true) = (
            schema.get("required").and_then(Value::as_array),
            value.is_object(),
        ) {
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
                "evidence": {},
                "incident": null,
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
