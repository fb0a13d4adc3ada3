//! The `slack` sink: an incoming webhook, and a bot token whose resolutions reply in the firing
//! message's thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kpulse::alert::State;
use kpulse::engine::DispatchKind;
use kpulse::metrics::Metrics;
use kpulse::pipeline::Pipeline;
use kpulse::sinks::Registry;
use serde_json::json;

use crate::fixtures::*;
use crate::receiver::Receiver;

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
async fn slack_bot_threads_updates_and_the_resolution_under_the_first_message_and_edits_it() {
    let rx = Receiver::start((
        200,
        r#"{"ok":true,"channel":"C0123","ts":"1800000000.000100"}"#,
        None,
    ))
    .await;
    let (config, registry) = setup(&format!(
        "{{type: slack, token: $SLACK_TOKEN, channel: alerts, api_url: 'http://{}/api/', delivery: {{allow_http: true}}}}",
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
    assert_eq!(
        seen.body["channel"], "alerts",
        "the configured channel, by name"
    );
    assert_eq!(seen.body["text"], FIRING_HEADLINE);
    assert_eq!(seen.body["attachments"][0]["color"], "#d40e0d");
    assert!(seen.body.get("thread_ts").is_none());
    let delivered = report.result.unwrap();
    assert_eq!(delivered.response, "ok, ts 1800000000.000100");
    // The reference carries the channel id Slack answered with: chat.update needs it.
    assert_eq!(
        delivered.references,
        vec![(oom_alert().key, "C0123/1800000000.000100".to_string())]
    );

    // An update of what was told (an incident grown, a reminder): a reply in the thread, and
    // the first message edited to the same state. The reference does not move.
    let mut update = oom(State::Firing);
    update.reference = Some("C0123/1800000000.000100".into());
    let report = deliver(&config, &registry, DispatchKind::Immediate, vec![update]).await;
    assert!(report.result.as_ref().unwrap().references.is_empty());
    let seen = rx.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_json_post(&seen[0], "/api/chat.postMessage");
    assert_eq!(seen[0].body["channel"], "C0123");
    assert_eq!(seen[0].body["thread_ts"], "1800000000.000100");
    assert_json_post(&seen[1], "/api/chat.update");
    assert_eq!(seen[1].body["channel"], "C0123");
    assert_eq!(seen[1].body["ts"], "1800000000.000100");
    assert_eq!(seen[1].body["text"], FIRING_HEADLINE);
    assert!(seen[1].body.get("thread_ts").is_none());

    // The resolution: in the thread, and the first message turns green. A reference stored
    // before channel ids were kept (a bare ts) threads in the configured channel.
    let mut resolved = oom(State::Resolved);
    resolved.reference = Some("1800000000.000100".into());
    let report = deliver(&config, &registry, DispatchKind::Immediate, vec![resolved]).await;
    assert!(report.result.unwrap().references.is_empty());
    let seen = rx.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].body["thread_ts"], "1800000000.000100");
    assert_eq!(seen[0].body["channel"], "alerts");
    assert_eq!(seen[0].body["text"], RESOLVED_HEADLINE);
    assert_eq!(seen[1].target, "/api/chat.update");
    assert_eq!(seen[1].body["attachments"][0]["color"], "#2eb67d");

    // An edit Slack refuses does not fail the delivery: the reply was posted.
    rx.script(&[
        (
            200,
            r#"{"ok":true,"channel":"C0123","ts":"1800000000.000200"}"#,
            None,
        ),
        (200, r#"{"ok":false,"error":"message_not_found"}"#, None),
    ]);
    let mut resolved = oom(State::Resolved);
    resolved.reference = Some("C0123/1800000000.000100".into());
    let report = deliver(&config, &registry, DispatchKind::Immediate, vec![resolved]).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(rx.take().len(), 2);
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

#[tokio::test]
async fn through_the_pipeline_a_slack_resolution_replies_in_the_firing_thread_and_turns_it_green() {
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
    assert_eq!(seen.len(), 3, "{seen:#?}");
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
    assert_eq!(seen[2].target, "/api/chat.update");
    assert_eq!(seen[2].body["ts"], "1800000000.000100");
    assert_eq!(seen[2].body["attachments"][0]["color"], "#2eb67d");
}
