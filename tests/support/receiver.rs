//! A real HTTP receiver on 127.0.0.1 for the sink tests and the end-to-end tests (e2e/harness):
//! records every request and answers from a script, or echoes what it received.

#![allow(dead_code)] // each test binary uses a different part of it

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warp::Filter;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: BTreeMap<String, String>,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Seen {
    /// Everything this request carried, on one line the way a careless provider puts it in an
    /// error: the request line, the body's short top-level strings, every header, and the target
    /// percent-decoded. Values are JSON strings (quoted and escaped).
    pub fn echo(&self) -> String {
        let quoted = |s: &str| serde_json::to_string(s).unwrap();
        let mut parts = vec![format!("{} {}", self.method, quoted(&self.target))];
        if let Value::Object(fields) = &self.body {
            for (name, value) in fields {
                if let Some(s) = value.as_str().filter(|s| s.len() <= 40) {
                    parts.push(format!("{name}={}", quoted(s)));
                }
            }
        }
        for (name, value) in &self.headers {
            parts.push(format!("{name}={}", quoted(value)));
        }
        parts.push(format!("decoded={}", quoted(&percent_decode(&self.target))));
        parts.join(" ")
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A scripted answer: status, body and an optional `Retry-After`.
pub type Reply = (u16, &'static str, Option<&'static str>);

/// How the receiver answers one request it has recorded.
type Answer = Box<dyn Fn(&Seen) -> (u16, String, Option<String>) + Send + Sync>;

/// An HTTP receiver that records every request and answers from a script, then with `default`,
/// after `delay`.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

impl Receiver {
    pub async fn start(default: Reply) -> Receiver {
        Self::slow(default, Duration::ZERO).await
    }

    pub async fn slow(default: Reply, delay: Duration) -> Receiver {
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let answers = script.clone();
        let answer: Answer = Box::new(move |_| {
            let (status, text, retry_after) =
                answers.lock().unwrap().pop_front().unwrap_or(default);
            (status, text.to_string(), retry_after.map(str::to_string))
        });
        Self::serve(answer, delay, script).await
    }

    /// A receiver that answers each request with the next of `statuses` (the last one repeats)
    /// and a body echoing the request ([`Seen::echo`]).
    pub async fn echo(statuses: &[u16]) -> Receiver {
        let statuses = Mutex::new(statuses.iter().copied().collect::<VecDeque<_>>());
        let answer: Answer = Box::new(move |seen| {
            let mut statuses = statuses.lock().unwrap();
            let status = match statuses.len() {
                0 => 500,
                1 => statuses[0],
                _ => statuses.pop_front().unwrap(),
            };
            (status, format!("rejected: {}", seen.echo()), None)
        });
        Self::serve(answer, Duration::ZERO, Arc::default()).await
    }

    async fn serve(
        answer: Answer,
        delay: Duration,
        script: Arc<Mutex<VecDeque<Reply>>>,
    ) -> Receiver {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let answer = Arc::new(answer);
        let route = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let target = if query.is_empty() {
                        path.as_str().to_string()
                    } else {
                        format!("{}?{query}", path.as_str())
                    };
                    let request = Seen {
                        method: method.to_string(),
                        target,
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        raw: body.to_vec(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    };
                    let (status, text, retry_after) = answer(&request);
                    record.lock().unwrap().push(request);
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut reply = warp::http::Response::builder().status(status);
                        if let Some(r) = retry_after {
                            reply = reply.header("retry-after", r);
                        }
                        reply.body(text).unwrap()
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver { addr, seen, script }
    }

    pub fn script(&self, replies: &[Reply]) {
        self.script.lock().unwrap().extend(replies.iter().copied());
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every request so far, which are then forgotten.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}
