//! The `googlechat` sink: a `cardsV2` message with the headlines as text.

use kpulse::alert::State;
use kpulse::engine::DispatchKind;
use serde_json::json;

use crate::fixtures::*;
use crate::receiver::Receiver;

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
