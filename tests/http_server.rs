//! The HTTP servers: probes, status, OpenMetrics and `/test-channel`, through `warp::test` and
//! through real listeners on 127.0.0.1, with real webhook channels and a receiver behind them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpulse::alert::{Alert, AlertKey, Severity};
use kpulse::config::{self, SecretMap};
use kpulse::http::{App, Listeners, OPENMETRICS_CONTENT_TYPE};
use kpulse::metrics::{Metrics, ResourceLabels, ResultLabels, RoutineResultLabels, StartupLabels};
use kpulse::pipeline::Pipeline;
use kpulse::sinks::Registry;
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// The token configured in these tests; it must never appear in `/status` or `/metrics`.
const TOKEN: &str = "tok-5ecret-c0ffee-value";

/// Secrets of the `ops` webhook: they reach the receiver, never `/status` or `/metrics`.
const HOOK_KEY: &str = "hook-key-5ecret-d00d";
const HOOK_TOKEN: &str = "hook-token-5ecret-beef";

/// A provider stand-in on 127.0.0.1: `/ok` accepts what carries the webhook's key and token,
/// `/bad` answers 400 like a provider rejecting a payload. Returns the address and the payloads
/// accepted.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<serde_json::Value>>>) {
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let record = seen.clone();
    let ok = warp::path!("ok")
        .and(warp::post())
        .and(warp::query::<BTreeMap<String, String>>())
        .and(warp::header::<String>("authorization"))
        .and(warp::body::json())
        .map(
            move |query: BTreeMap<String, String>, auth: String, body: serde_json::Value| {
                if query.get("key").map(String::as_str) != Some(HOOK_KEY)
                    || auth != format!("Bearer {HOOK_TOKEN}")
                {
                    return warp::reply::with_status(
                        "wrong key",
                        warp::http::StatusCode::FORBIDDEN,
                    );
                }
                record.lock().unwrap().push(body);
                warp::reply::with_status("accepted", warp::http::StatusCode::OK)
            },
        );
    let bad = warp::path!("bad").and(warp::post()).map(|| {
        warp::reply::with_status(
            r#"{"error":"invalid_payload"}"#,
            warp::http::StatusCode::BAD_REQUEST,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(ok.or(bad)).incoming(listener).run());
    (addr, seen)
}

fn client() -> reqwest::Client {
    kpulse::install_crypto_provider();
    reqwest::Client::new()
}

/// A pipeline with two real webhook channels: `ops` (delivers to the receiver) and `broken`
/// (rejected by it).
fn pipeline(receiver: SocketAddr, with_token: bool) -> Pipeline {
    let mut secrets = SecretMap::new();
    secrets.insert("TEST_TOKEN".into(), TOKEN.into());
    secrets.insert("HOOK_KEY".into(), HOOK_KEY.into());
    secrets.insert("HOOK_TOKEN".into(), HOOK_TOKEN.into());
    let http = if with_token {
        "http: {test_channel_token: $TEST_TOKEN}\n"
    } else {
        ""
    };
    let config = config::load(
        &format!(
            "cluster: test-cluster
channels:
  ops: {{type: webhook, url: 'http://{receiver}/ok?key=$HOOK_KEY', headers: {{Authorization: 'Bearer $HOOK_TOKEN'}}, delivery: {{allow_http: true, retries: 0}}}}
  broken: {{type: webhook, url: 'http://{receiver}/bad', delivery: {{allow_http: true, retries: 0}}}}
routing: {{default: [ops]}}
{http}"
        ),
        &secrets,
    )
    .unwrap();
    let registry = Registry::build(&config).unwrap();
    Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap()
}

fn crash(name: &str, p: &Pipeline) -> Alert {
    Alert::new(
        AlertKey::new("pod_crashes", "shop", "Pod", name, "CrashLoopBackOff"),
        Severity::Warning,
        format!("{name} is crash-looping"),
        p.now(),
    )
}

fn body(r: &warp::http::Response<bytes::Bytes>) -> String {
    String::from_utf8(r.body().to_vec()).unwrap()
}

/// Checks the OpenMetrics text format: every family declared once with a known type before its
/// samples, sample names belong to the family (with the type's suffixes), values parse, counters
/// end in `_total`, histograms have a `+Inf` bucket, and the text ends with `# EOF`.
fn assert_openmetrics(text: &str) -> BTreeMap<String, String> {
    assert!(text.ends_with("# EOF\n"), "no # EOF terminator:\n{text}");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut inf_buckets = 0;
    let mut histograms = 0;
    for line in text.lines() {
        if line == "# EOF" {
            break;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, value) = (
                parts.next().unwrap(),
                parts.next().expect("metadata names a family"),
                parts.next().unwrap_or(""),
            );
            assert!(name.starts_with("kpulse_"), "{name}: no kpulse_ prefix");
            match kind {
                "TYPE" => {
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "stateset",
                            "summary",
                            "unknown"
                        ]
                        .contains(&value),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_string(), value.to_string()).is_none(),
                        "family {name} declared twice"
                    );
                    if value == "histogram" {
                        histograms += 1;
                    }
                    current = Some((name.to_string(), value.to_string()));
                }
                "HELP" => assert!(!value.is_empty(), "{line}"),
                "UNIT" => assert!(name.ends_with(&format!("_{value}")), "{line}"),
                other => panic!("unknown metadata {other:?}: {line}"),
            }
            continue;
        }
        let (family, kind) = current.as_ref().expect("a sample before any # TYPE");
        let (name, value) = match line.find('{') {
            Some(i) => {
                let end = line.rfind('}').expect("labels are closed");
                (&line[..i], line[end + 1..].trim())
            }
            None => line.split_once(' ').expect("name and value"),
        };
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name == format!("{family}{s}")),
            "sample {name} does not belong to {kind} family {family}"
        );
        let value = value.split(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "{line}: bad value"
        );
        if line.contains("le=\"+Inf\"") {
            inf_buckets += 1;
        }
    }
    for (name, kind) in &types {
        if kind == "counter" {
            assert!(
                !name.ends_with("_total"),
                "{name}: the family name of a counter has no _total (samples do)"
            );
        }
    }
    assert!(
        histograms == 0 || inf_buckets > 0,
        "histograms without a +Inf bucket"
    );
    types
}

#[tokio::test]
async fn readiness_flips_from_503_to_200_once_the_watches_synced() {
    let (addr, _) = receiver().await;
    let synced = Arc::new(AtomicBool::new(false));
    let app = App::new(pipeline(addr, false), {
        let synced = synced.clone();
        move || synced.load(Ordering::SeqCst)
    });
    let probes = app.probe_routes();

    let r = warp::test::request().path("/healthz").reply(&probes).await;
    assert_eq!((r.status().as_u16(), body(&r).as_str()), (200, "ok\n"));

    let r = warp::test::request().path("/readyz").reply(&probes).await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        body(&r),
        "watches have not finished their initial list yet\n"
    );

    synced.store(true, Ordering::SeqCst);
    let r = warp::test::request().path("/readyz").reply(&probes).await;
    assert_eq!((r.status().as_u16(), body(&r).as_str()), (200, "ready\n"));
}

#[tokio::test]
async fn unknown_paths_methods_and_oversized_requests_are_refused() {
    let (addr, _) = receiver().await;
    let app = App::new(pipeline(addr, true), || true);
    let (probes, metrics) = (app.probe_routes(), app.metrics_routes());
    for (routes, method, path, status) in [
        (&probes, "GET", "/nope", 404),
        (&probes, "GET", "/metrics", 404),
        (&probes, "POST", "/test-channel?channel=ops", 404),
        (&metrics, "GET", "/healthz", 404),
        (&metrics, "GET", "/status", 404),
        (&probes, "POST", "/healthz", 405),
        (&metrics, "GET", "/test-channel?channel=ops", 405),
    ] {
        let r = warp::test::request()
            .method(method)
            .path(path)
            .reply(routes)
            .await;
        assert_eq!(r.status().as_u16(), status, "{method} {path}: {}", body(&r));
    }
    let long = format!("/test-channel?channel={}", "x".repeat(1000));
    let r = warp::test::request()
        .method("POST")
        .path(&long)
        .header("authorization", format!("Bearer {TOKEN}"))
        .reply(&metrics)
        .await;
    assert_eq!(r.status().as_u16(), 414);
    let r = warp::test::request()
        .method("POST")
        .path("/test-channel?channel=ops")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(vec![b'x'; 8192])
        .reply(&metrics)
        .await;
    assert_eq!(r.status().as_u16(), 413);
}

#[tokio::test]
async fn silences_need_their_token_are_listed_and_explain_what_is_not_sent() {
    let mut secrets = SecretMap::new();
    secrets.insert("SILENCE_TOKEN".into(), TOKEN.into());
    let config = config::load(
        "channels: {ops: {type: log}}\nrouting: {default: [ops]}\nhttp: {silence_token: $SILENCE_TOKEN}\nsilences:\n  - {match: {namespace: shop}, ends_at: '2999-01-01T00:00:00Z', comment: shop migration}\n",
        &secrets,
    )
    .unwrap();
    let registry = Registry::build(&config).unwrap();
    let p = Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap();
    let app = App::new(p.clone(), || true);
    let metrics = app.metrics_routes();
    p.submit(crash("api-1", &p));
    let request = |method: &str, path: &str, token: Option<&str>| {
        let r = warp::test::request().method(method).path(path);
        match token {
            Some(t) => r.header("authorization", format!("Bearer {t}")),
            None => r,
        }
    };
    for (method, path) in [
        ("GET", "/silences"),
        ("POST", "/silences"),
        ("DELETE", "/silences/s-1"),
    ] {
        let r = request(method, path, None).reply(&metrics).await;
        assert_eq!(r.status().as_u16(), 401, "{method} {path}");
        let r = request(method, path, Some("wrong")).reply(&metrics).await;
        assert_eq!(
            r.status().as_u16(),
            401,
            "{method} {path} with a wrong token"
        );
    }
    let r = request("GET", "/silences", Some(TOKEN))
        .reply(&metrics)
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let list: serde_json::Value = serde_json::from_str(&body(&r)).unwrap();
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["origin"], "config");
    assert_eq!(list[0]["matches"], "namespace=shop");
    assert_eq!(list[0]["held_back"], 1);
    assert!(list[0]["id"].as_str().unwrap().starts_with("config-"));
    // A body is read and checked before anything is written; without the Kubernetes API there
    // is nowhere to write.
    let r = request("POST", "/silences", Some(TOKEN))
        .body(r#"{"match": {"namespace": "shop"}, "for": "2h"}"#)
        .reply(&metrics)
        .await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(body(&r).contains("missing field `comment`"), "{}", body(&r));
    let r = request("POST", "/silences", Some(TOKEN))
        .body(r#"{"match": {}, "for": "2h", "comment": "x"}"#)
        .reply(&metrics)
        .await;
    assert!(body(&r).contains("at least one matcher"), "{}", body(&r));
    let r = request("POST", "/silences", Some(TOKEN))
        .body(r#"{"match": {"namespace": "shop"}, "for": "2h", "comment": "x"}"#)
        .reply(&metrics)
        .await;
    assert_eq!(r.status().as_u16(), 503);

    let r = warp::test::request()
        .path("/status")
        .reply(&app.probe_routes())
        .await;
    let text = body(&r);
    assert!(!text.contains(TOKEN), "the token leaked into /status");
    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    let active = &s["active_alerts"][0];
    assert_eq!(active["sent"], false);
    assert!(
        active["silenced_by"]
            .as_str()
            .unwrap()
            .starts_with("config-"),
        "{active}"
    );
    assert_eq!(s["silences"][0]["comment"], "shop migration");
}

#[tokio::test]
async fn metrics_are_openmetrics_and_a_delivered_alert_moves_the_counters() {
    let (addr, seen) = receiver().await;
    let p = pipeline(addr, false);
    let app = App::new(p.clone(), || true);
    let routes = app.metrics_routes();

    let r = warp::test::request().path("/metrics").reply(&routes).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], OPENMETRICS_CONTENT_TYPE);
    let families = assert_openmetrics(&body(&r));
    // Families without labels are there from the start; labelled ones appear with their first
    // sample.
    for family in [
        "kpulse_build",
        "kpulse_config_generation",
        "kpulse_leader",
        "kpulse_state_pruned",
        "kpulse_state_size_bytes",
        "kpulse_startup_tracked_pods",
        "kpulse_stats_scan_duration_seconds",
    ] {
        assert!(
            families.contains_key(family),
            "{family} missing in {families:?}"
        );
    }

    // What other components record, under the names the docs give.
    let m = p.metrics();
    m.watch_events
        .get_or_create(&ResourceLabels::new("pods"))
        .inc();
    m.watch_restarts
        .get_or_create(&ResourceLabels::new("pods"))
        .inc();
    m.state_writes
        .get_or_create(&ResultLabels::new("success"))
        .inc();
    m.state_size_bytes.set(2048);
    m.canary_runs
        .get_or_create(&RoutineResultLabels {
            routine: "pod".into(),
            result: "success".into(),
        })
        .inc();
    m.pod_startup_duration
        .get_or_create(&StartupLabels {
            own: vec![("stage", "ready".into())],
            namespace: "shop".into(),
            owner_kind: "Deployment".into(),
            node_pool: String::new(),
        })
        .observe(3.5);
    m.stats_fetches
        .get_or_create(&ResultLabels::new("failure"))
        .inc();
    m.stats_scan_duration.observe(0.2);
    m.config_reload(Ok(1), p.now());
    p.submit(crash("api-1", &p));
    let oom = Alert::new(
        AlertKey::new("oom_killed", "shop", "Pod", "api-2", "OOMKilled"),
        Severity::Critical,
        "api-2 was OOM-killed",
        p.now(),
    )
    .one_shot();
    p.submit(oom.clone());
    p.submit(oom); // a duplicate inside the dedupe window
    p.drain().await;
    assert_eq!(seen.lock().unwrap().len(), 2);

    let r = warp::test::request().path("/metrics").reply(&routes).await;
    let text = body(&r);
    assert_openmetrics(&text);
    for line in [
        "kpulse_alerts_fired_total{monitor=\"pod_crashes\",severity=\"warning\"} 1",
        "kpulse_alerts_fired_total{monitor=\"oom_killed\",severity=\"critical\"} 1",
        "kpulse_alerts_deduped_total{monitor=\"oom_killed\",severity=\"critical\"} 1",
        "kpulse_active_alerts{monitor=\"pod_crashes\"} 1",
        "kpulse_notifications_sent_total{channel=\"ops\",sink=\"webhook\"} 2",
        "kpulse_notification_send_duration_seconds_count{channel=\"ops\",sink=\"webhook\"} 2",
        "kpulse_config_generation 1",
        "kpulse_config_reloads_total{result=\"success\"} 1",
        "kpulse_watch_events_total{resource=\"pods\"} 1",
        "kpulse_watch_restarts_total{resource=\"pods\"} 1",
        "kpulse_state_writes_total{result=\"success\"} 1",
        "kpulse_state_size_bytes 2048",
        "kpulse_state_pruned_total 0",
        "kpulse_canary_runs_total{routine=\"pod\",result=\"success\"} 1",
        "kpulse_pod_startup_duration_seconds_count{stage=\"ready\",namespace=\"shop\",owner_kind=\"Deployment\"} 1",
        "kpulse_stats_fetches_total{result=\"failure\"} 1",
        "kpulse_stats_scan_duration_seconds_count 1",
        "kpulse_leader 1",
        "kpulse_build_info{version=",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        !text.contains("kpulse_notifications_failed_total{"),
        "{text}"
    );
}

#[tokio::test]
async fn test_channel_needs_the_token_then_delivers_and_reports_provider_errors() {
    let (addr, seen) = receiver().await;

    // Off without a configured token, whatever is presented.
    let off = App::new(pipeline(addr, false), || true).metrics_routes();
    let r = warp::test::request()
        .method("POST")
        .path("/test-channel?channel=ops")
        .header("authorization", format!("Bearer {TOKEN}"))
        .reply(&off)
        .await;
    assert_eq!(r.status().as_u16(), 404);

    let p = pipeline(addr, true);
    let routes = App::new(p.clone(), || true).metrics_routes();
    let post = |path: &str, auth: Option<String>| {
        let mut req = warp::test::request().method("POST").path(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req
    };
    for auth in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN}x")),
    ] {
        let r = post("/test-channel?channel=ops", auth.clone())
            .reply(&routes)
            .await;
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing sent without the token"
    );

    let bearer = Some(format!("Bearer {TOKEN}"));
    let r = post("/test-channel", bearer.clone()).reply(&routes).await;
    assert_eq!(r.status().as_u16(), 400);
    let r = post("/test-channel?channel=pager", bearer.clone())
        .reply(&routes)
        .await;
    assert_eq!(r.status().as_u16(), 404);
    assert!(body(&r).contains("pager"), "{}", body(&r));

    let r = post("/test-channel?channel=ops", bearer.clone())
        .reply(&routes)
        .await;
    assert_eq!(r.status().as_u16(), 200, "{}", body(&r));
    let answer: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"channel": "ops", "ok": true, "attempts": 1, "response": "HTTP 200: accepted"})
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (&seen[0]["cluster"], &seen[0]["channel"]),
            (
                &serde_json::json!("test-cluster"),
                &serde_json::json!("ops")
            )
        );
        assert_eq!(
            seen[0]["alerts"][0]["title"],
            "Test message for channel ops"
        );
    }

    // One test per channel per 10 s.
    let r = post("/test-channel?channel=ops", bearer.clone())
        .reply(&routes)
        .await;
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // The provider's refusal comes back as it was given.
    let r = post("/test-channel?channel=broken", bearer)
        .reply(&routes)
        .await;
    assert_eq!(r.status().as_u16(), 502);
    let answer: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"channel": "broken", "ok": false, "attempts": 1, "error": "HTTP 400: {\"error\":\"invalid_payload\"}"})
    );
    let metrics = p.metrics().encode();
    assert!(
        metrics
            .contains("kpulse_notifications_failed_total{channel=\"broken\",sink=\"webhook\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn status_shows_config_alerts_and_channels_but_no_secret() {
    let (addr, _) = receiver().await;
    let p = pipeline(addr, true);
    let app = App::new(p.clone(), || true);
    p.submit(crash("api-1", &p));
    p.drain().await;
    // A failed test leaves an error on the channel.
    let r = warp::test::request()
        .method("POST")
        .path("/test-channel?channel=broken")
        .header("authorization", format!("Bearer {TOKEN}"))
        .reply(&app.metrics_routes())
        .await;
    assert_eq!(r.status().as_u16(), 502);
    p.metrics().config_reload(
        Err("routing.default[0]: unknown channel \"pager\""),
        p.now(),
    );

    let r = warp::test::request()
        .path("/status")
        .reply(&app.probe_routes())
        .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = body(&r);
    assert!(
        !text.contains(TOKEN),
        "the token leaked into /status: {text}"
    );
    let metrics = p.metrics().encode();
    assert!(!metrics.contains(TOKEN), "the token leaked into /metrics");

    let s: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["cluster"], "test-cluster");
    assert_eq!(s["ready"], true);
    assert_eq!(s["role"], "leader");
    assert_eq!(s["config"]["generation"], 1);
    assert_eq!(
        s["config"]["last_error"]["message"],
        "routing.default[0]: unknown channel \"pager\""
    );
    let active = s["active_alerts"].as_array().unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0]["key"],
        "pod_crashes/shop/Pod/api-1/CrashLoopBackOff"
    );
    assert_eq!(active[0]["channels"], serde_json::json!(["ops"]));
    assert!(active[0]["since"].is_string());
    let ops = &s["channels"]["ops"];
    assert_eq!(ops["type"], "webhook");
    assert!(ops["last_success"].is_string() && ops["last_failure"].is_null());
    let broken = &s["channels"]["broken"];
    assert!(broken["last_success"].is_null() && broken["last_failure"].is_string());
    assert_eq!(
        broken["last_error"],
        "HTTP 400: {\"error\":\"invalid_payload\"}"
    );
    assert_eq!(s["canary"], serde_json::json!({}), "no canary run yet");
    assert_eq!(s["slowest_pods"], serde_json::json!([]));
}

#[tokio::test]
async fn status_and_status_startup_show_the_last_canary_runs_and_the_slowest_pods() {
    use kpulse::monitors::startup_status::{CanaryRun, StageTime};
    let (addr, _) = receiver().await;
    let p = pipeline(addr, true);
    let app = App::new(p.clone(), || true);
    p.metrics().startup.canary_run(
        "deployment",
        CanaryRun {
            at: p.now(),
            result: "timeout",
            failed_stage: Some("created"),
            reason: Some("no pod was created".into()),
            stages: vec![],
        },
    );
    p.metrics().startup.canary_run(
        "pod",
        CanaryRun {
            at: p.now(),
            result: "success",
            failed_stage: None,
            reason: None,
            stages: vec![StageTime {
                stage: "created",
                seconds: 0.1,
            }],
        },
    );
    for path in ["/status", "/status/startup"] {
        let r = warp::test::request()
            .path(path)
            .reply(&app.probe_routes())
            .await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let s: serde_json::Value = serde_json::from_str(&body(&r)).unwrap();
        assert_eq!(
            s["canary"]["deployment"][0]["failed_stage"], "created",
            "{path}"
        );
        assert_eq!(s["canary"]["deployment"][0]["result"], "timeout");
        assert_eq!(s["canary"]["pod"][0]["stages"][0]["stage"], "created");
        assert!(s["slowest_pods"].is_array());
    }
}

#[tokio::test]
async fn real_listeners_serve_both_ports_end_to_end() {
    let (addr, seen) = receiver().await;
    let p = pipeline(addr, true);
    let synced = Arc::new(AtomicBool::new(false));
    let app = App::new(p.clone(), {
        let synced = synced.clone();
        move || synced.load(Ordering::SeqCst)
    });
    let listeners = Listeners::bind(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let (main, metrics) = listeners.local_addrs().unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(listeners.serve(app, token.clone()));
    let http = client();

    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    assert_eq!(get(format!("http://{main}/healthz")).await.status(), 200);
    assert_eq!(get(format!("http://{main}/readyz")).await.status(), 503);
    synced.store(true, Ordering::SeqCst);
    assert_eq!(get(format!("http://{main}/readyz")).await.status(), 200);

    p.submit(crash("api-1", &p));
    p.drain().await;
    let r = get(format!("http://{metrics}/metrics")).await;
    assert_eq!(r.headers()["content-type"], OPENMETRICS_CONTENT_TYPE);
    let text = r.text().await.unwrap();
    assert_openmetrics(&text);
    assert!(text.contains("kpulse_notifications_sent_total{channel=\"ops\",sink=\"webhook\"} 1"));

    let r = http
        .post(format!("http://{metrics}/test-channel?channel=ops"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("http://{metrics}/test-channel?channel=ops"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "the alert and the test message"
    );
    // The test endpoint is not on the probe port.
    let r = http
        .post(format!("http://{main}/test-channel?channel=ops"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let status: serde_json::Value = get(format!("http://{main}/status"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["active_alerts"].as_array().unwrap().len(), 1);

    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("servers stop at the token")
        .unwrap();
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Listeners::bind("127.0.0.1:0".parse().unwrap(), addr)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot listen on {addr} (--metrics-addr): ")),
        "{text}"
    );

    // The binary stops at start-up with that message, before it needs a cluster.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kpulse"))
        .args(["run", "--log-format", "text", "--http-addr"])
        .arg(addr.to_string())
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (--http-addr)")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(taken);
}

/// Reads until the server closes the connection (end of stream or a reset), within `bound`.
async fn closed_within(stream: &mut tokio::net::TcpStream, bound: Duration) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| format!("still open after {bound:?}"))
}

#[tokio::test]
async fn stalled_and_idle_connections_are_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    let (addr, _) = receiver().await;
    let app = App::new(pipeline(addr, true), || true);
    let listeners = Listeners::bind(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .header_read_timeout(Duration::from_millis(300));
    let (main, metrics) = listeners.local_addrs().unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(listeners.serve(app, token.clone()));

    for (port, path) in [(main, "/healthz"), (metrics, "/metrics")] {
        let mut partial = TcpStream::connect(port).await.unwrap();
        partial.write_all(b"GET /hea").await.unwrap();
        let mut silent = TcpStream::connect(port).await.unwrap();
        // A complete request is answered, and the connection kept alive, then dropped when idle.
        let mut idle = TcpStream::connect(port).await.unwrap();
        idle.write_all(format!("GET {path} HTTP/1.1\r\nHost: kpulse\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = [0u8; 15];
        idle.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200 OK");

        for (what, stream) in [
            ("half a request line", &mut partial),
            ("nothing", &mut silent),
            ("an idle keep-alive connection", &mut idle),
        ] {
            closed_within(stream, Duration::from_secs(10))
                .await
                .unwrap_or_else(|e| panic!("{port}: {what}: {e}"));
        }
    }

    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("servers stop at the token")
        .unwrap();
}

#[tokio::test]
async fn a_template_shapes_the_title_and_body_a_real_receiver_gets() {
    let (addr, seen) = receiver().await;
    let mut secrets = SecretMap::new();
    secrets.insert("HOOK_KEY".into(), HOOK_KEY.into());
    secrets.insert("HOOK_TOKEN".into(), HOOK_TOKEN.into());
    let config = config::load(
        &format!(
            "cluster: test-cluster
channels:
  ops: {{type: webhook, url: 'http://{addr}/ok?key=$HOOK_KEY', headers: {{Authorization: 'Bearer $HOOK_TOKEN'}}, delivery: {{allow_http: true, retries: 0}}}}
  log: {{type: log}}
routing: {{default: [ops, log]}}
templates:
  - channels: [ops]
    match: {{monitor: pod_crashes}}
    title: \"{{{{ alert.key.namespace }}}}/{{{{ alert.key.name }}}} is {{{{ state }}}}: {{{{ alert.key.reason }}}}\"
    body: \"Seen first at {{{{ alert.first_seen }}}} on {{{{ cluster }}}}.\"
"
        ),
        &secrets,
    )
    .unwrap();
    let registry = Registry::build(&config).unwrap();
    let p = Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap();
    let alert = crash("api-1", &p);
    let first_seen = alert.first_seen;
    p.submit(alert);
    p.drain().await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let sent = &seen[0]["alerts"][0];
    assert_eq!(sent["title"], "shop/api-1 is firing: CrashLoopBackOff");
    assert_eq!(
        sent["message"],
        format!("Seen first at {first_seen} on test-cluster.")
    );
}
