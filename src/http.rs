//! The HTTP servers (warp), on two ports:
//!
//! - the main address (`--http-addr`, default `0.0.0.0:8080`) serves the probes and the status:
//!   `GET /healthz`, `GET /readyz`, `GET /status`, `GET /status/startup` (the canary's last runs
//!   and the slowest recent pods, also in `/status`);
//! - the metrics address (`--metrics-addr`, default `0.0.0.0:9090`) serves `GET /metrics` and, only
//!   when `http.test_channel_token` is configured, `POST /test-channel?channel=NAME`; only when
//!   `http.silence_token` is configured, `GET /silences`, `POST /silences` and
//!   `DELETE /silences/ID` (run-time silences, written to the ConfigMap `kpulse-silences`).
//!
//! Keeping the test endpoint off the probe port means a NetworkPolicy or Service can expose the
//! probes without exposing anything that sends messages. Both listeners are bound by
//! [`Listeners::bind`] before anything is spawned, so a taken port is a startup error that names
//! the address. Query strings and request bodies are size-limited; unknown paths get 404.
//!
//! Both ports speak HTTP/1.1 through hyper directly (warp's own server has no header-read
//! timeout): a connection that has not sent a complete request head within
//! [`HEADER_READ_TIMEOUT`] — a half-open request, or an idle keep-alive connection — is closed.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::pipeline::Pipeline;
use crate::sinks::Batch;
use crate::status::{ChannelStatus, ConfigError};

/// Longest query string accepted (`414` beyond).
pub const MAX_QUERY_BYTES: usize = 512;
/// Largest request body accepted (`413` beyond); only `POST /silences` reads one.
pub const MAX_BODY_BYTES: u64 = 4096;
/// How long a connection may take to send a complete request head, counted from when the server
/// starts waiting for it (a new connection, or a keep-alive connection after its last answer).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `POST /test-channel` sends at most one message per channel in this interval (`429` otherwise).
pub const TEST_CHANNEL_INTERVAL: Duration = Duration::from_secs(10);

/// The OpenMetrics content type, as `prometheus-client` encodes it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({flag}): {error}")]
pub struct BindError {
    pub addr: SocketAddr,
    /// The flag that sets the address, so the message says what to change.
    pub flag: &'static str,
    pub error: std::io::Error,
}

/// Both listeners, bound and not yet serving.
#[derive(Debug)]
pub struct Listeners {
    http: TcpListener,
    metrics: TcpListener,
    header_read_timeout: Duration,
}

impl Listeners {
    /// Binds the main and the metrics address; the first that fails is returned.
    pub async fn bind(http_addr: SocketAddr, metrics_addr: SocketAddr) -> Result<Self, BindError> {
        Ok(Listeners {
            http: bind(http_addr, "--http-addr").await?,
            metrics: bind(metrics_addr, "--metrics-addr").await?,
            header_read_timeout: HEADER_READ_TIMEOUT,
        })
    }

    /// Replaces [`HEADER_READ_TIMEOUT`] (tests use a short one).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The bound addresses (main, metrics): useful when binding port 0.
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.http.local_addr()?, self.metrics.local_addr()?))
    }

    /// Serves both ports until the token is cancelled, then lets requests under way finish.
    pub async fn serve(self, app: App, token: CancellationToken) {
        let (http, metrics) = self
            .local_addrs()
            .map(|(h, m)| (h.to_string(), m.to_string()))
            .unwrap_or_default();
        tracing::info!(
            http,
            metrics,
            test_channel = app.test_channel_enabled(),
            "HTTP servers listening"
        );
        let timeout = self.header_read_timeout;
        let probes = serve(self.http, app.probe_routes(), timeout, token.clone());
        let metrics = serve(self.metrics, app.metrics_routes(), timeout, token);
        futures::join!(probes, metrics);
    }
}

/// Serves `routes` on `listener` until the token is cancelled, then lets requests under way
/// finish. Each connection gets `header_read_timeout` to send each request head.
async fn serve(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    header_read_timeout: Duration,
    token: CancellationToken,
) {
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, typically: wait for some to be closed.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(warp::service(routes.clone()));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Binds one address; `flag` names the setting in the error.
pub async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| BindError { addr, flag, error })
}

/// What the handlers share: the pipeline (configuration, engine, sinks, metrics, status) and the
/// readiness of the watches.
#[derive(Clone)]
pub struct App {
    pipeline: Pipeline,
    watches_synced: Arc<dyn Fn() -> bool + Send + Sync>,
    /// When each channel was last tested, for the rate limit.
    tested: Arc<Mutex<HashMap<String, Instant>>>,
    /// Where run-time silences are written (none: `/silences` can only list).
    silences: Option<Arc<crate::silences::Store>>,
}

/// The body of `POST /silences`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    #[serde(rename = "match")]
    matcher: crate::config::Matcher,
    /// How long, e.g. `2h`.
    #[serde(rename = "for")]
    duration: crate::config::HumanDuration,
    comment: String,
    #[serde(default)]
    created_by: String,
}

impl App {
    /// `watches_synced` answers whether every enabled watch has finished its first list (e.g.
    /// `move || ready.is_ready()` with the monitors' [`crate::monitors::Ready`]).
    pub fn new(
        pipeline: Pipeline,
        watches_synced: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        App {
            pipeline,
            watches_synced: Arc::new(watches_synced),
            tested: Arc::default(),
            silences: None,
        }
    }

    /// Writes run-time silences with `store` (`POST` and `DELETE /silences`).
    pub fn with_silence_store(mut self, store: crate::silences::Store) -> Self {
        self.silences = Some(Arc::new(store));
        self
    }

    /// `Ok` when kpulse is ready, else the reason. A pipeline only exists with a validated
    /// configuration, so what remains to check is the watches.
    pub fn readiness(&self) -> Result<(), String> {
        if self.pipeline.runtime().generation == 0 {
            return Err("no configuration loaded yet".into());
        }
        if !(self.watches_synced)() {
            return Err("watches have not finished their initial list yet".into());
        }
        Ok(())
    }

    fn test_channel_enabled(&self) -> bool {
        self.pipeline
            .runtime()
            .config
            .http
            .test_channel_token
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    }

    /// `/healthz`, `/readyz` and `/status`.
    pub fn probe_routes(&self) -> BoxedFilter<(Response,)> {
        let app = self.clone();
        let with_app = warp::any().map(move || app.clone());
        let healthz = warp::path!("healthz")
            .and(warp::get())
            .map(|| text(StatusCode::OK, "ok"));
        let readyz = warp::path!("readyz")
            .and(warp::get())
            .and(with_app.clone())
            .map(|app: App| match app.readiness() {
                Ok(()) => text(StatusCode::OK, "ready"),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, &reason),
            });
        let status = warp::path!("status")
            .and(warp::get())
            .and(with_app.clone())
            .map(|app: App| warp::reply::json(&app.status()).into_response());
        let startup = warp::path!("status" / "startup")
            .and(warp::get())
            .and(with_app)
            .map(|app: App| {
                warp::reply::json(&app.pipeline.metrics().startup.view()).into_response()
            });
        finish(
            healthz
                .or(readyz)
                .unify()
                .or(status)
                .unify()
                .or(startup)
                .unify(),
        )
    }

    /// `/metrics`, and `/test-channel` (404 unless a token is configured).
    pub fn metrics_routes(&self) -> BoxedFilter<(Response,)> {
        let app = self.clone();
        let with_app = warp::any().map(move || app.clone());
        let metrics = warp::path!("metrics")
            .and(warp::get())
            .and(with_app.clone())
            .map(|app: App| {
                let body = app.pipeline.metrics().encode();
                warp::reply::with_header(body, "content-type", OPENMETRICS_CONTENT_TYPE)
                    .into_response()
            });
        let test_channel = warp::path!("test-channel")
            .and(warp::post())
            .and(warp::query::<HashMap<String, String>>())
            .and(warp::header::optional::<String>("authorization"))
            .and(with_app)
            .then(
                |query: HashMap<String, String>, auth: Option<String>, app: App| async move {
                    app.test_channel(query.get("channel").map(String::as_str), auth.as_deref())
                        .await
                },
            );
        let app = self.clone();
        let with_app = warp::any().map(move || app.clone());
        let auth = warp::header::optional::<String>("authorization");
        let list = warp::path!("silences")
            .and(warp::get())
            .and(auth)
            .and(with_app.clone())
            .map(|auth: Option<String>, app: App| app.list_silences(auth.as_deref()));
        let add = warp::path!("silences")
            .and(warp::post())
            .and(auth)
            .and(warp::body::bytes())
            .and(with_app.clone())
            .then(
                |auth: Option<String>, body: bytes::Bytes, app: App| async move {
                    app.add_silence(auth.as_deref(), &body).await
                },
            );
        let expire = warp::path!("silences" / String)
            .and(warp::delete())
            .and(auth)
            .and(with_app)
            .then(|id: String, auth: Option<String>, app: App| async move {
                app.expire_silence(auth.as_deref(), &id).await
            });
        finish(
            metrics
                .or(test_channel)
                .unify()
                .or(list)
                .unify()
                .or(add)
                .unify()
                .or(expire)
                .unify(),
        )
    }

    /// The answer refusing the request unless `authorization` carries the configured `token`;
    /// 404 when no token is configured (the endpoint is off).
    fn refusal(
        token: Option<&crate::config::SecretString>,
        authorization: Option<&str>,
    ) -> Option<Response> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Some(error(StatusCode::NOT_FOUND, "not found"));
        };
        let presented = authorization
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !presented.is_some_and(|t| constant_time_eq(t.as_bytes(), token.expose().as_bytes())) {
            let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            r.headers_mut().insert(
                "www-authenticate",
                warp::http::HeaderValue::from_static("Bearer"),
            );
            return Some(r);
        }
        None
    }

    fn silence_refusal(&self, authorization: Option<&str>) -> Option<Response> {
        let rt = self.pipeline.runtime();
        Self::refusal(rt.config.http.silence_token.as_ref(), authorization)
    }

    /// The silences the engine uses (configured and run-time), with what they did.
    fn silence_views(&self) -> Vec<SilenceView> {
        let now = self.pipeline.now();
        self.pipeline.with_engine(|e| {
            e.silences()
                .into_iter()
                .map(|(s, origin, record)| SilenceView {
                    state: if s.active(now) {
                        "active"
                    } else if s.starts_at > now {
                        "pending"
                    } else {
                        "ended"
                    },
                    matches: crate::engine::describe_matcher(&s.matcher),
                    origin,
                    held_back: record.map(|r| r.held_count).unwrap_or(0),
                    silence: s,
                })
                .collect()
        })
    }

    fn list_silences(&self, authorization: Option<&str>) -> Response {
        if let Some(r) = self.silence_refusal(authorization) {
            return r;
        }
        warp::reply::json(&self.silence_views()).into_response()
    }

    async fn add_silence(&self, authorization: Option<&str>, body: &[u8]) -> Response {
        if let Some(r) = self.silence_refusal(authorization) {
            return r;
        }
        let new: NewSilence = match serde_json::from_slice(body) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body: {e}")),
        };
        let now = self.pipeline.now();
        let silence = match crate::silences::new_silence(
            new.matcher,
            new.duration.signed(),
            &new.comment,
            &new.created_by,
            now,
        ) {
            Ok(s) => s,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.replace("--for", "for")),
        };
        let Some(store) = self.silences.as_deref() else {
            return no_silence_store();
        };
        match store.add(silence.clone(), now).await {
            Ok(()) => {
                tracing::info!(silence = %silence.id, matches = %crate::engine::describe_matcher(&silence.matcher), "silence added over HTTP");
                warp::reply::with_status(warp::reply::json(&silence), StatusCode::CREATED)
                    .into_response()
            }
            Err(e) => error(StatusCode::BAD_GATEWAY, &e),
        }
    }

    async fn expire_silence(&self, authorization: Option<&str>, id: &str) -> Response {
        if let Some(r) = self.silence_refusal(authorization) {
            return r;
        }
        let Some(store) = self.silences.as_deref() else {
            return no_silence_store();
        };
        match store.expire(id, self.pipeline.now()).await {
            Ok(s) => warp::reply::json(&s).into_response(),
            Err(e) if e.contains("no silence") => error(StatusCode::NOT_FOUND, &e),
            Err(e) => error(StatusCode::BAD_GATEWAY, &e),
        }
    }

    fn status(&self) -> StatusBody {
        let rt = self.pipeline.runtime();
        let metrics = self.pipeline.metrics();
        let now = self.pipeline.now();
        let (mut active, incidents, maintenance) = self.pipeline.with_engine(|e| {
            let active: Vec<ActiveAlertStatus> = e
                .active()
                .map(|a| ActiveAlertStatus {
                    key: a.alert.key.to_string(),
                    severity: a.alert.severity.to_string(),
                    title: a.alert.title.clone(),
                    since: a.since,
                    channels: a.channels.clone(),
                    sent: a.notified,
                    incident: a.member_of.clone().or_else(|| a.incident.clone()),
                    inhibited_by: a.inhibited_by.as_ref().map(ToString::to_string),
                    silenced_by: (!a.notified)
                        .then(|| e.silenced_by(&a.alert, now))
                        .flatten(),
                })
                .collect();
            let incidents: Vec<IncidentView> = e
                .incidents()
                .map(|(workload, i)| IncidentView {
                    workload: workload.clone(),
                    opened_at: i.opened_at,
                    told: i.told.is_some(),
                    severity: i.severity.to_string(),
                    pods: i.pods.len(),
                    nodes: i.nodes.iter().cloned().collect(),
                    reasons: i.reasons.iter().cloned().collect(),
                    members: i.members.iter().map(ToString::to_string).collect(),
                })
                .collect();
            let windows: Vec<WindowView> = e
                .open_windows()
                .map(|(name, w)| WindowView {
                    name: name.clone(),
                    opened_at: w.opened_at,
                    closes_at: w.closes_at,
                    held_back: w.held_count,
                })
                .collect();
            (active, incidents, windows)
        });
        active.sort_by(|a, b| (a.since, &a.key).cmp(&(b.since, &b.key)));
        let mut outcomes = metrics.status.channels();
        let channels = rt
            .config
            .channels
            .iter()
            .map(|(name, channel)| {
                (
                    name.clone(),
                    ChannelView {
                        kind: channel.type_name(),
                        status: outcomes.remove(name).unwrap_or_default(),
                    },
                )
            })
            .collect();
        StatusBody {
            version: env!("CARGO_PKG_VERSION"),
            cluster: rt.config.cluster.clone(),
            ready: self.readiness().is_ok(),
            role: if metrics.status.is_leader() {
                "leader"
            } else {
                "standby"
            },
            config: ConfigStatus {
                generation: rt.generation,
                last_error: metrics.status.config_error(),
            },
            active_alerts: active,
            incidents,
            silences: self.silence_views(),
            maintenance,
            channels,
            startup: metrics.startup.view(),
        }
    }

    async fn test_channel(&self, channel: Option<&str>, authorization: Option<&str>) -> Response {
        let rt = self.pipeline.runtime();
        // Read per request: a configuration reload turns the endpoint on or off.
        if let Some(r) = Self::refusal(rt.config.http.test_channel_token.as_ref(), authorization) {
            return r;
        }
        let Some(channel) = channel.filter(|c| !c.is_empty()) else {
            return error(StatusCode::BAD_REQUEST, "channel=NAME is required");
        };
        if !rt.registry.contains(channel) {
            return error(
                StatusCode::NOT_FOUND,
                &format!("channel {channel:?} is not in the current configuration"),
            );
        }
        if let Err(wait) = self.take_test_slot(channel) {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "channel {channel:?} was tested less than {}s ago",
                    TEST_CHANNEL_INTERVAL.as_secs()
                ),
            );
            r.headers_mut()
                .insert("retry-after", warp::http::HeaderValue::from(secs.max(1)));
            return r;
        }
        let batch = Batch::test(&rt.config.cluster, channel, self.pipeline.now());
        let report = rt
            .registry
            .deliver(batch)
            .instrument(tracing::info_span!("test_channel", channel))
            .await;
        self.pipeline
            .metrics()
            .delivery(&report, self.pipeline.now());
        let (status, answer) = match report.result {
            Ok(delivered) => {
                tracing::info!(
                    channel,
                    attempts = report.attempts,
                    "test message delivered"
                );
                (
                    StatusCode::OK,
                    TestChannelAnswer {
                        channel: channel.to_string(),
                        ok: true,
                        attempts: report.attempts,
                        response: Some(delivered.response),
                        error: None,
                    },
                )
            }
            Err(e) => {
                tracing::warn!(channel, attempts = report.attempts, error = %e.message, "test message failed");
                (
                    StatusCode::BAD_GATEWAY,
                    TestChannelAnswer {
                        channel: channel.to_string(),
                        ok: false,
                        attempts: report.attempts,
                        response: None,
                        error: Some(e.message),
                    },
                )
            }
        };
        warp::reply::with_status(warp::reply::json(&answer), status).into_response()
    }

    /// Claims the channel's test slot, or says how long until the next one.
    fn take_test_slot(&self, channel: &str) -> Result<(), Duration> {
        let mut tested = self
            .tested
            .lock()
            .expect("rate limit lock is never poisoned");
        let now = Instant::now();
        if let Some(last) = tested.get(channel) {
            let since = now.duration_since(*last);
            if since < TEST_CHANNEL_INTERVAL {
                return Err(TEST_CHANNEL_INTERVAL - since);
            }
        }
        tested.insert(channel.to_string(), now);
        Ok(())
    }
}

fn no_silence_store() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "run-time silences need the Kubernetes API",
    )
}

/// Compares a presented token with the configured one in time that depends only on the
/// configured token's length.
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ presented.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

#[derive(Serialize)]
struct StatusBody {
    version: &'static str,
    cluster: String,
    ready: bool,
    /// `leader` notifies and writes state; `standby` waits for the Lease.
    role: &'static str,
    config: ConfigStatus,
    active_alerts: Vec<ActiveAlertStatus>,
    /// Open incidents: one message for the pod alerts of a workload.
    incidents: Vec<IncidentView>,
    /// Configured and run-time silences.
    silences: Vec<SilenceView>,
    /// Maintenance windows open now that held something back.
    maintenance: Vec<WindowView>,
    channels: BTreeMap<String, ChannelView>,
    /// `canary` (the last runs of each routine) and `slowest_pods`.
    #[serde(flatten)]
    startup: crate::monitors::startup_status::StartupView,
}

#[derive(Serialize)]
struct WindowView {
    name: String,
    opened_at: Timestamp,
    closes_at: Timestamp,
    /// Alerts and incident updates it held back so far (summarized when it closes).
    held_back: u64,
}

#[derive(Serialize)]
struct IncidentView {
    /// `namespace/Kind/name`.
    workload: String,
    opened_at: Timestamp,
    /// Its message went out (else it still collects alerts for `group_wait`).
    told: bool,
    severity: String,
    pods: usize,
    nodes: Vec<String>,
    reasons: Vec<String>,
    /// Keys of its member alerts.
    members: Vec<String>,
}

#[derive(Serialize)]
struct SilenceView {
    #[serde(flatten)]
    silence: crate::engine::Silence,
    /// `active`, `pending` (starts later) or `ended`.
    state: &'static str,
    matches: String,
    origin: crate::engine::Origin,
    /// Alerts and incident updates it kept from being sent so far.
    held_back: u64,
}

#[derive(Serialize)]
struct ConfigStatus {
    generation: u64,
    last_error: Option<ConfigError>,
}

#[derive(Serialize)]
struct ActiveAlertStatus {
    key: String,
    severity: String,
    title: String,
    since: Timestamp,
    channels: Vec<String>,
    /// Whether it was sent (or, for a member, its incident).
    sent: bool,
    /// The incident it is a member (or the message) of.
    #[serde(skip_serializing_if = "Option::is_none")]
    incident: Option<String>,
    /// The alert that holds it back (`inhibit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    inhibited_by: Option<String>,
    /// The silence that keeps it from being sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    silenced_by: Option<String>,
}

#[derive(Serialize)]
struct ChannelView {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    status: ChannelStatus,
}

#[derive(Serialize)]
struct TestChannelAnswer {
    channel: String,
    ok: bool,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug)]
enum TooLarge {
    Query,
    Body,
}

impl warp::reject::Reject for TooLarge {}

/// Rejects oversized query strings and declared bodies before any route runs.
fn limits() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and(warp::header::optional::<u64>("content-length"))
        .and_then(|query: String, length: Option<u64>| async move {
            if query.len() > MAX_QUERY_BYTES {
                Err(warp::reject::custom(TooLarge::Query))
            } else if length.unwrap_or(0) > MAX_BODY_BYTES {
                Err(warp::reject::custom(TooLarge::Body))
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

/// Size limits in front, every rejection turned into a JSON error.
fn finish(
    routes: impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> BoxedFilter<(Response,)> {
    limits()
        .and(routes)
        .recover(|r: Rejection| async move { Ok::<_, Infallible>(rejection(r)) })
        .unify()
        .boxed()
}

fn rejection(r: Rejection) -> Response {
    if let Some(too_large) = r.find::<TooLarge>() {
        return match too_large {
            TooLarge::Query => error(StatusCode::URI_TOO_LONG, "query string too long"),
            TooLarge::Body => error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        };
    }
    if r.is_not_found() {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    error(StatusCode::BAD_REQUEST, "bad request")
}

fn text(status: StatusCode, body: &str) -> Response {
    warp::reply::with_status(format!("{body}\n"), status).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret!", b"s3cret"));
        assert!(!constant_time_eq(b"S3cret", b"s3cret"));
        assert!(!constant_time_eq(b"", b"s3cret"));
    }
}
