//! How the watches get their initial state: as a stream of watch events, or as pages of lists.
//!
//! A streaming list (`sendInitialEvents`, the API server's `WatchList` feature) sends the
//! current objects one by one as watch events from the API server's watch cache, then a
//! bookmark that marks the end. kpulse trims and packs each object as it arrives. Paged lists
//! send 500 untrimmed objects per response, which kpulse holds whole while it reads them. At
//! 10 000 pods, measured in `make bench-scale`, streaming took the peak resident memory during
//! start-up from 73.9 to 41.9 MiB and ready from 2.14 to 1.68 s.
//!
//! Not every cluster serves streaming lists: Kubernetes 1.33 turns `WatchList` off by default
//! and rejects them, as does an API server with the feature gate off; older ones ignore the
//! parameter, and would never send the bookmark. So, by default ([`Lists::Auto`]), kpulse asks
//! once at start-up with one cheap watch and uses paged lists unless that watch ends its initial
//! events as a streaming list does.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, WatchEvent, WatchParams};

/// How the watches list (`--lists`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lists {
    /// Streaming lists if the API server serves them, paged lists otherwise.
    #[default]
    Auto,
    /// Streaming lists, without asking (a watch never syncs where they are not served).
    Streaming,
    /// Paged lists from the API server's watch cache.
    Paged,
}

/// How long the start-up probe waits for the end of its initial events.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The annotation of the bookmark that ends a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Whether the watches use streaming lists.
pub async fn streaming(choice: Lists, client: &Client, namespace: &str) -> bool {
    streaming_within(choice, client, namespace, PROBE_TIMEOUT).await
}

async fn streaming_within(
    choice: Lists,
    client: &Client,
    namespace: &str,
    timeout: Duration,
) -> bool {
    let streaming = match choice {
        Lists::Streaming => true,
        Lists::Paged => false,
        Lists::Auto => match tokio::time::timeout(timeout, probe(client, namespace, timeout)).await
        {
            Ok(Ok(served)) => served,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the API server refused a streaming list");
                false
            }
            Err(_) => {
                tracing::debug!(
                    "a streaming list did not end its initial events within {:?}",
                    timeout
                );
                false
            }
        },
    };
    tracing::info!(
        lists = if streaming { "streaming" } else { "paged" },
        "watches list their objects {}",
        if streaming {
            "as streams of watch events"
        } else {
            "in pages"
        }
    );
    streaming
}

/// A streaming list of one ConfigMap kpulse may always watch (its run-time silences, whether
/// or not it exists): true when the bookmark that ends its initial events arrives.
async fn probe(client: &Client, namespace: &str, timeout: Duration) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = WatchParams::streaming_lists()
        .fields(&format!("metadata.name={}", crate::silences::NAME))
        .timeout(timeout.as_secs().max(1) as u32);
    let events = api.watch(&params, "").await?;
    let mut events = std::pin::pin!(events.boxed());
    while let Some(event) = events.try_next().await? {
        match event {
            WatchEvent::Bookmark(b)
                if b.metadata
                    .annotations
                    .get(INITIAL_EVENTS_END)
                    .map(String::as_str)
                    == Some("true") =>
            {
                return Ok(true);
            }
            WatchEvent::Error(e) => {
                tracing::debug!(code = e.code, reason = %e.reason, "a streaming list answered an error");
                return Ok(false);
            }
            _ => {}
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An API server that answers every request with `answer` (then holds the connection
    /// open), and the request lines it saw.
    async fn server(
        answer: &'static str,
    ) -> (Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = seen.send(line);
                let _ = socket.write_all(answer.as_bytes()).await;
                held.push(socket);
            }
        });
        let url = format!("http://{addr}").parse().unwrap();
        (Client::try_from(kube::Config::new(url)).unwrap(), requests)
    }

    const BOOKMARK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
        9b\r\n{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"12\",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}}}}\n\r\n";

    const REFUSED: &str = "HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json\r\nContent-Length: 182\r\n\r\n\
        {\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled\",\"reason\":\"Invalid\",\"code\":422}";

    /// An API server that ignores `sendInitialEvents`: a plain watch, no bookmark.
    const IGNORED: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

    const QUICK: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn streams_where_the_initial_events_end_with_the_bookmark() {
        let (client, mut requests) = server(BOOKMARK).await;
        assert!(streaming_within(Lists::Auto, &client, "kpulse", QUICK).await);
        let line = requests.recv().await.unwrap();
        for part in [
            "/api/v1/namespaces/kpulse/configmaps?",
            "watch=true",
            "sendInitialEvents=true",
            "resourceVersionMatch=NotOlderThan",
            "allowWatchBookmarks=true",
            "fieldSelector=metadata.name%3Dkpulse-silences",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
    }

    #[tokio::test]
    async fn pages_where_the_api_server_refuses_or_ignores_streaming() {
        for answer in [REFUSED, IGNORED] {
            let (client, _requests) = server(answer).await;
            let started = tokio::time::Instant::now();
            assert!(!streaming_within(Lists::Auto, &client, "kpulse", QUICK).await);
            assert!(started.elapsed() < Duration::from_secs(3));
        }
    }

    #[tokio::test]
    async fn an_explicit_choice_asks_nothing() {
        let (client, mut requests) = server(REFUSED).await;
        assert!(streaming_within(Lists::Streaming, &client, "kpulse", QUICK).await);
        assert!(!streaming_within(Lists::Paged, &client, "kpulse", QUICK).await);
        assert!(requests.try_recv().is_err());
    }
}
