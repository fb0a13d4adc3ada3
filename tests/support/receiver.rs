//! A real HTTP receiver on 127.0.0.1 for the sink tests: records every request and answers from
//! a script.

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

/// A scripted answer: status, body and an optional `Retry-After`.
pub type Reply = (u16, &'static str, Option<&'static str>);

/// An HTTP receiver that records every request and answers from a script, then with `default`,
/// after `delay`.
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
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let (record, answers) = (seen.clone(), script.clone());
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
                    record.lock().unwrap().push(Seen {
                        method: method.to_string(),
                        target,
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        raw: body.to_vec(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    let (status, text, retry_after) =
                        answers.lock().unwrap().pop_front().unwrap_or(default);
                    async move {
                        tokio::time::sleep(delay).await;
                        let mut reply = warp::http::Response::builder().status(status);
                        if let Some(r) = retry_after {
                            reply = reply.header("retry-after", r);
                        }
                        reply.body(text.to_string()).unwrap()
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

    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}
