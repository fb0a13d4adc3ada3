//! The welcome message: one per configuration, from the replica that sends, through a real
//! webhook channel to a receiver on 127.0.0.1.

use std::time::Duration;

use crate::harness::{Kpulse, Received, Receiver, TestNamespace, WAIT, client, eventually};

fn webhook_config(receiver: &Receiver, ns: &str, cluster: &str) -> String {
    format!(
        "cluster: {cluster}\nchannels:\n  hook: {{type: webhook, url: '{}', delivery: {{allow_http: true}}}}\nrouting: {{default: [hook]}}\nnamespaces: {{include: [{ns}]}}\n",
        receiver.url("/hook")
    )
}

fn welcomes(receiver: &Receiver) -> Vec<Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.body["alerts"][0]["key"]["monitor"] == "welcome")
        .collect()
}

/// Waits until the receiver has `n` welcome messages and returns the last one's title.
async fn nth_welcome(receiver: &Receiver, n: usize) -> String {
    eventually(&format!("welcome message {n}"), WAIT, || async {
        let got = welcomes(receiver);
        (got.len() >= n).then(|| got[n - 1].body["alerts"][0]["title"].to_string())
    })
    .await
}

#[tokio::test]
async fn one_welcome_on_start_none_on_a_restart_one_after_a_change() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "welcome").await;
    let receiver = Receiver::start().await;
    ns.apply_config(&webhook_config(&receiver, &ns.name, "e2e"))
        .await;

    let first = Kpulse::start_from_configmap(&ns.name, None).await;
    assert_eq!(
        nth_welcome(&receiver, 1).await,
        "\"kpulse is watching cluster e2e\""
    );
    let body = &welcomes(&receiver)[0].body;
    assert_eq!(body["alerts"][0]["key"]["name"], "hook");
    assert!(
        body["alerts"][0]["fields"]["Routes"] == "otherwise → hook",
        "{body:#}"
    );
    first
        .wait_log("welcome message delivered", Duration::from_secs(10))
        .await;
    assert!(first.terminate(Duration::from_secs(15)).await.success());

    // The same configuration: kpulse-state says it was announced.
    let second = Kpulse::start_from_configmap(&ns.name, None).await;
    second
        .wait_log(
            "welcome message already sent for this configuration",
            Duration::from_secs(30),
        )
        .await;

    // A change is announced, once, by the running process.
    ns.apply_config(&webhook_config(&receiver, &ns.name, "e2e-renamed"))
        .await;
    assert_eq!(
        nth_welcome(&receiver, 2).await,
        "\"kpulse is watching cluster e2e-renamed\""
    );
    second
        .wait_log("welcome message delivered", Duration::from_secs(10))
        .await;
    assert!(second.terminate(Duration::from_secs(15)).await.success());
    assert_eq!(
        welcomes(&receiver).len(),
        2,
        "one on the first start, none on the restart, one after the change"
    );
    ns.delete().await;
}

#[tokio::test]
async fn only_the_leader_welcomes_and_a_takeover_does_not_repeat_it() {
    const HA: [&str; 4] = ["--lease-name", "kpulse-leader", "--lease-duration", "4s"];
    let client = client().await;
    let ns = TestNamespace::new(&client, "welcomeha").await;
    let receiver = Receiver::start().await;
    ns.apply_config(&webhook_config(&receiver, &ns.name, "e2e"))
        .await;
    let a = Kpulse::start_from_configmap_with(&ns.name, &HA).await;
    nth_welcome(&receiver, 1).await;
    let b = Kpulse::start_from_configmap_with(&ns.name, &HA).await;
    b.wait_log("standby", Duration::from_secs(30)).await;
    b.wait_log("watches synced", Duration::from_secs(30)).await;

    // Both replicas apply a change; only the leader announces it.
    ns.apply_config(&webhook_config(&receiver, &ns.name, "e2e-renamed"))
        .await;
    for replica in [&a, &b] {
        replica
            .wait_log("configuration applied", Duration::from_secs(30))
            .await;
    }
    nth_welcome(&receiver, 2).await;
    eventually(
        "the leader's second welcome delivered",
        Duration::from_secs(10),
        || async { (delivered(&a) == 2).then_some(()) },
    )
    .await;

    // The leader stops (releasing the lease); the standby takes over with the stored state.
    assert!(a.terminate(Duration::from_secs(15)).await.success());
    b.wait_log(
        "welcome message already sent for this configuration",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(delivered(&b), 0, "the standby sent a welcome");
    assert!(b.terminate(Duration::from_secs(15)).await.success());
    assert_eq!(welcomes(&receiver).len(), 2, "{:#?}", welcomes(&receiver));
    ns.delete().await;
}

/// How many welcome messages a replica delivered, from its log.
fn delivered(k: &Kpulse) -> usize {
    k.stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("welcome message delivered"))
        .count()
}
