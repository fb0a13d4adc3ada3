//! The webhook receiver of the end-to-end tests: the one the sink tests use
//! (tests/support/receiver.rs), answering every request with 200.

use std::time::Duration;

use super::waits::{WAIT, eventually};

#[path = "../../tests/support/receiver.rs"]
mod shared;

/// One HTTP request the [`Receiver`] got.
pub use shared::Seen as Received;

/// A webhook receiver on 127.0.0.1 that records every request and answers 200.
#[derive(Clone)]
pub struct Receiver(shared::Receiver);

impl Receiver {
    pub async fn start() -> Self {
        Receiver(shared::Receiver::start((200, "", None)).await)
    }

    pub fn url(&self, path: &str) -> String {
        self.0.url(path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.0.received()
    }

    /// The first alert of `key` (its `key_string`) in `state` that a webhook channel delivered
    /// here, waiting for it.
    pub async fn alert(&self, key: &str, state: &str) -> serde_json::Value {
        let matches = |a: &serde_json::Value| a["key_string"] == key && a["state"] == state;
        let got = self
            .wait_for(&format!("webhook: {state} {key}"), WAIT, |r| {
                r.body["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(matches))
            })
            .await;
        got.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| matches(a))
            .unwrap()
            .clone()
    }

    /// Waits for a request matching `pred`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        eventually(what, timeout, || async {
            self.received().into_iter().find(|r| pred(r))
        })
        .await
    }
}
