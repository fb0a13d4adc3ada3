//! The `teams` sink: an Adaptive Card through a Workflows webhook.

use kpulse::alert::State;
use kpulse::engine::DispatchKind;
use serde_json::{Value, json};

use crate::fixtures::*;
use crate::receiver::Receiver;

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
