//! Traces: one alert's spans reach an OTLP/HTTP collector stand-in on 127.0.0.1 as one trace
//! (detection → engine → delivery); without an endpoint (or with `OTEL_SDK_DISABLED=true`)
//! nothing is exported and nothing is logged about it; a dead collector costs nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kpulse::alert::{Alert, AlertKey, Severity};
use kpulse::config::{Config, Delivery};
use kpulse::metrics::Metrics;
use kpulse::pipeline::Pipeline;
use kpulse::sinks::Registry;
use kpulse::sinks::log::LogSink;
use kpulse::telemetry::{Export, LogFormat, Settings, subscriber};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use warp::Filter;

#[path = "support/logs.rs"]
mod logs;
use logs::Logs;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: BTreeMap<String, String>,
    service: String,
}

/// An OTLP/HTTP (protobuf) trace receiver on its own thread and runtime, so a blocking flush in
/// the test cannot starve it.
fn collector() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let record = spans.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let route = warp::path!("v1" / "traces")
                .and(warp::post())
                .and(warp::header::exact(
                    "content-type",
                    "application/x-protobuf",
                ))
                .and(warp::body::bytes())
                .map(move |body: bytes::Bytes| {
                    let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut out = record.lock().unwrap();
                    for rs in req.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .map(|kv| text(&kv.value))
                            .unwrap_or_default();
                        for ss in rs.scope_spans {
                            for s in ss.spans {
                                out.push(Received {
                                    name: s.name,
                                    trace_id: s.trace_id,
                                    span_id: s.span_id,
                                    parent_span_id: s.parent_span_id,
                                    attributes: s
                                        .attributes
                                        .iter()
                                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                                        .collect(),
                                    service: service.clone(),
                                });
                            }
                        }
                    }
                    warp::reply::with_header(
                        Vec::<u8>::new(),
                        "content-type",
                        "application/x-protobuf",
                    )
                });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            warp::serve(route).incoming(listener).run().await;
        });
    });
    (rx.recv().unwrap(), spans)
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn settings(export: Export) -> Settings {
    Settings {
        format: LogFormat::Json,
        filter: "info".into(),
        export,
    }
}

/// The default configuration (everything to the `log` channel), its lines discarded.
fn pipeline() -> Pipeline {
    let config = Config::default();
    let quiet = Arc::new(Mutex::new(std::io::sink()));
    let registry = Registry::from_notifiers(vec![(
        "log".into(),
        Arc::new(LogSink::to_writer("log", quiet)),
        Delivery::default(),
    )]);
    Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap()
}

fn crash(p: &Pipeline) -> Alert {
    Alert::new(
        AlertKey::new("pod_crashes", "shop", "Pod", "api-1", "CrashLoopBackOff"),
        Severity::Warning,
        "api-1 is crash-looping",
        p.now(),
    )
}

#[tokio::test]
async fn one_alert_is_one_trace_from_detection_to_delivery() {
    kpulse::install_crypto_provider();
    let (addr, spans) = collector();
    let logs = Logs::default();
    let (sub, telemetry, warnings) = subscriber(
        &settings(Export::Otlp(Some(format!("http://{addr}/v1/traces")))),
        {
            let logs = logs.clone();
            move || logs.clone()
        },
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(telemetry.exporting());
    let _default = tracing::subscriber::set_default(sub);

    let p = pipeline();
    p.submit(crash(&p));
    p.drain().await;
    telemetry.flush();

    let spans = spans.lock().unwrap().clone();
    let by_name = |name: &str| -> Received {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name:?} span in {spans:#?}"))
            .clone()
    };
    let (submit, engine, deliver) = (by_name("submit"), by_name("engine"), by_name("deliver"));
    assert_eq!(
        submit.attributes["alert"],
        "pod_crashes/shop/Pod/api-1/CrashLoopBackOff"
    );
    assert_eq!(deliver.attributes["channel"], "log");
    assert_eq!(submit.service, "kpulse");
    assert!(submit.parent_span_id.is_empty(), "submit is the root");
    for child in [&engine, &deliver] {
        assert_eq!(
            child.trace_id, submit.trace_id,
            "{} in the same trace",
            child.name
        );
        assert_eq!(
            child.parent_span_id, submit.span_id,
            "{} under submit",
            child.name
        );
    }
    // The log line of the decision carries the alert and its span.
    let firing = logs
        .lines()
        .into_iter()
        .find(|l| l["message"] == "alert firing")
        .expect("an 'alert firing' log line");
    assert_eq!(firing["span"]["name"], "submit");
    telemetry.shutdown();
}

#[tokio::test]
async fn without_an_endpoint_or_when_disabled_nothing_is_exported_or_logged() {
    kpulse::install_crypto_provider();
    let (addr, spans) = collector();
    let endpoint = format!("http://{addr}");
    for vars in [
        vec![],
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    ] {
        let export = Export::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(export, Export::Off, "{vars:?}");
        let logs = Logs::default();
        let (sub, telemetry, warnings) = subscriber(&settings(export), {
            let logs = logs.clone();
            move || logs.clone()
        })
        .unwrap();
        assert!(warnings.is_empty() && !telemetry.exporting());
        let _default = tracing::subscriber::set_default(sub);

        let p = pipeline();
        p.submit(crash(&p));
        p.drain().await;
        telemetry.flush();
        telemetry.shutdown();

        let lines = logs.lines();
        assert!(lines.iter().any(|l| l["message"] == "alert firing"));
        let complaints: Vec<_> = lines
            .iter()
            .filter(|l| l["level"] != "INFO" && l["level"] != "DEBUG")
            .collect();
        assert!(complaints.is_empty(), "{complaints:#?}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        spans.lock().unwrap().is_empty(),
        "nothing reached the collector"
    );
}

#[tokio::test]
async fn a_dead_collector_neither_blocks_nor_stops_kpulse() {
    kpulse::install_crypto_provider();
    // A port that refuses connections: bound but not listening, so nothing else can take it.
    let dead = tokio::net::TcpSocket::new_v4().unwrap();
    dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = dead.local_addr().unwrap();
    let (sub, telemetry, warnings) = subscriber(
        &settings(Export::Otlp(Some(format!("http://{addr}/v1/traces")))),
        std::io::sink,
    )
    .unwrap();
    assert!(warnings.is_empty() && telemetry.exporting());
    let _default = tracing::subscriber::set_default(sub);

    let started = Instant::now();
    let p = pipeline();
    for i in 0..50 {
        let mut a = crash(&p);
        a.key.name = format!("api-{i}");
        p.submit(a);
    }
    p.drain().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "alerts flowed while the collector is down ({:?})",
        started.elapsed()
    );
    let started = Instant::now();
    telemetry.shutdown();
    assert!(
        started.elapsed() < kpulse::telemetry::SHUTDOWN_TIMEOUT + Duration::from_secs(2),
        "shutdown is bounded"
    );
}
