//! Delivery as a user sees it, for every HTTP sink: the test message, `429 Retry-After`
//! waited for, a 500 retried, a 401 reported once with the channel's name, a stalled channel not
//! delaying another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kpulse::alert::State;
use kpulse::engine::DispatchKind;
use kpulse::metrics::Metrics;
use kpulse::pipeline::Pipeline;
use kpulse::sinks::{Batch, Registry};

use crate::fixtures::*;
use crate::receiver::Receiver;
use crate::webhook::webhook;

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
