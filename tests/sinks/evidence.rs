//! Every message sink shows an alert's evidence: the likely cause and next step, the decoded
//! exit code, the missing memory limit, log lines (redacted), events, the node and commands, as
//! sent to a real receiver.

use kpulse::alert::State;
use kpulse::engine::{DispatchItem, DispatchKind};

use crate::explained::shows_the_evidence;
use crate::fixtures::{one_request, setup, t0};
use crate::receiver::Receiver;

fn explained(state: State) -> DispatchItem {
    crate::explained::explained(state, t0())
}

async fn sent(channel: impl Fn(&str) -> String, state: State) -> String {
    let rx = Receiver::start((200, "ok", None)).await;
    let (config, registry) = setup(&channel(&rx.addr.to_string()));
    let (_, seen) = one_request(
        &rx,
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![explained(state)],
    )
    .await;
    String::from_utf8(seen.raw).unwrap()
}

/// A channel's settings for a receiver at an address.
type Channel = fn(&str) -> String;

fn channels() -> Vec<(&'static str, Channel)> {
    vec![
        ("webhook", |a| {
            format!("{{type: webhook, url: 'http://{a}/hook', delivery: {{allow_http: true}}}}")
        }),
        ("slack", |a| {
            format!(
                "{{type: slack, webhook_url: 'http://{a}/services/T/B/x', delivery: {{allow_http: true}}}}"
            )
        }),
        ("teams", |a| {
            format!(
                "{{type: teams, webhook_url: 'http://{a}/workflows/abc', delivery: {{allow_http: true}}}}"
            )
        }),
        ("discord", |a| {
            format!(
                "{{type: discord, webhook_url: 'http://{a}/api/webhooks/1/tok', delivery: {{allow_http: true}}}}"
            )
        }),
        ("googlechat", |a| {
            format!(
                "{{type: googlechat, webhook_url: 'http://{a}/v1/spaces/AAA/messages', delivery: {{allow_http: true}}}}"
            )
        }),
    ]
}

#[tokio::test]
async fn every_chat_sink_shows_the_evidence_of_a_firing_alert() {
    // The webhook carries it structured (below).
    for (sink, channel) in channels().into_iter().filter(|(s, _)| *s != "webhook") {
        let body = sent(channel, State::Firing).await;
        shows_the_evidence(sink, &body);
    }
}

#[tokio::test]
async fn resolutions_of_chat_sinks_leave_the_evidence_out() {
    for (sink, channel) in channels().into_iter().filter(|(s, _)| *s != "webhook") {
        let body = sent(channel, State::Resolved).await;
        assert!(!body.contains("Likely cause"), "{sink}: {body}");
        assert!(!body.contains("kubectl"), "{sink}: {body}");
    }
}

#[tokio::test]
async fn the_webhook_carries_the_evidence_as_structured_fields() {
    let body = sent(channels()[0].1, State::Firing).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    crate::webhook::conforms(&v);
    let e = &v["alerts"][0]["evidence"];
    assert_eq!(e["container"]["exit_code"], 137);
    assert_eq!(e["container"]["signal"], "SIGKILL");
    assert_eq!(
        e["container"]["memory_limit"],
        serde_json::Value::Null,
        "empty parts are left out"
    );
    assert_eq!(e["hints"][0]["cause"], crate::explained::CAUSE);
    assert_eq!(e["node"]["conditions"][0], "MemoryPressure=True");
    assert_eq!(e["owners"][1], "Deployment/api");
}
