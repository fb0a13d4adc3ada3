//! The `discord` sink: coloured embeds, never a ping.

use kpulse::alert::State;
use kpulse::engine::{DispatchItem, DispatchKind};
use serde_json::json;

use crate::fixtures::*;
use crate::receiver::Receiver;

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
