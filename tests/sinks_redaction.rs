//! A receiver that echoes what it received never makes kpulse show a secret. For every sink
//! type, with a canary string in every secret setting of the channel (URL paths and queries,
//! header values, tokens, keys, the SMTP login), a real receiver on 127.0.0.1 answers 500, then
//! 400, then 200 (an SMTP server: 454, 535, then accepts), each time echoing the request target,
//! the headers, the body and the credentials it decoded. The canary — raw, JSON-escaped,
//! percent-encoded, or inside the Basic or SMTP login that carried it — must appear in no log
//! line, not in `/status`, `/metrics`, the `/test-channel` answer or a delivery's response.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use kpulse::alert::{Alert, AlertKey, Severity};
use kpulse::config::{self, SecretMap};
use kpulse::http::App;
use kpulse::metrics::Metrics;
use kpulse::pipeline::Pipeline;
use kpulse::sinks::{Batch, Registry};
use kpulse::telemetry::{Export, LogFormat, Settings, subscriber};

#[path = "support/logs.rs"]
mod logs;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/smtp_echo.rs"]
mod smtp_echo;
use logs::Logs;
use receiver::Receiver;
use smtp_echo::SmtpEcho;

/// In every secret setting. `"` is escaped in JSON; `"`, `<` and `>` are percent-encoded in URLs.
const CANARY: &str = "c4nary\"5ecret<K7>";
const SMTP_USER: &str = "relay-c4nary\"5ecret<K7>";
const TEST_TOKEN: &str = "test-channel-t0ken";

/// One sink type: its channel settings (flow YAML; `{addr}` is the receiver) and the encodings
/// of the canary that only this sink sends.
struct Sink {
    name: &'static str,
    settings: &'static str,
    smtp: bool,
    sent_encoded: fn() -> Vec<String>,
}

fn none() -> Vec<String> {
    Vec::new()
}

fn base64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every sink type but `log`, which has no secret settings.
const SINKS: &[Sink] = &[
    Sink {
        name: "webhook",
        settings: "type: webhook, url: 'http://{addr}/hook/$CANARY?sig=$CANARY', \
                   headers: {Authorization: 'Bearer $CANARY', X-Api-Key: $CANARY}, hmac_secret: $CANARY",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "slack_webhook",
        settings: "type: slack, webhook_url: 'http://{addr}/services/T0123/B0456/$CANARY'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "slack_bot",
        settings: "type: slack, token: $CANARY, channel: C0123, api_url: 'http://{addr}/api'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "teams",
        settings: "type: teams, webhook_url: \
                   'http://{addr}/workflows/0a1b/triggers/manual/paths/invoke?api-version=2016-06-01&sig=$CANARY'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "discord",
        settings: "type: discord, webhook_url: 'http://{addr}/api/webhooks/123456789/$CANARY'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "googlechat",
        settings: "type: googlechat, webhook_url: \
                   'http://{addr}/v1/spaces/AAAA0123/messages?key=$CANARY&token=$CANARY'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "pagerduty",
        settings: "type: pagerduty, routing_key: $CANARY, api_url: 'http://{addr}/v2/enqueue'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "opsgenie",
        settings: "type: opsgenie, api_key: $CANARY, api_url: 'http://{addr}'",
        smtp: false,
        sent_encoded: none,
    },
    Sink {
        name: "alertmanager",
        settings: "type: alertmanager, url: 'http://am:$CANARY@{addr}/am', \
                   headers: {X-Scope-OrgID: $CANARY}",
        smtp: false,
        // The URL's user and password travel as HTTP Basic credentials.
        sent_encoded: || vec![base64(&format!("am:{CANARY}"))],
    },
    Sink {
        name: "email",
        settings: "type: email, smtp: {host: 127.0.0.1, port: {port}, tls: none, \
                   username: $SMTP_USER, password: $CANARY}, \
                   from: kpulse@example.com, to: [ops@example.com]",
        smtp: true,
        // AUTH PLAIN sends `\0user\0password` in base64.
        sent_encoded: || vec![base64(&format!("\0{SMTP_USER}\0{CANARY}"))],
    },
];

/// The canary as a receiver may show it.
fn forms(sink: &Sink) -> Vec<String> {
    let json = serde_json::to_string(CANARY).unwrap();
    let mut forms = vec![
        CANARY.to_string(),
        json[1..json.len() - 1].to_string(),
        CANARY
            .replace('"', "%22")
            .replace('<', "%3C")
            .replace('>', "%3E"),
    ];
    forms.extend((sink.sent_encoded)());
    forms
}

/// A problem for each form of the canary in `text`.
fn leaks(sink: &Sink, place: &str, text: &str) -> Vec<String> {
    found(&forms(sink), text)
        .map(|f| format!("{}: {place} shows {f:?} in: {text}", sink.name))
        .collect()
}

/// The forms in `text` or, when `text` is JSON, in any string in it (where a JSON-escaped
/// canary is escaped once more).
fn found<'a>(forms: &'a [String], text: &str) -> impl Iterator<Item = &'a String> {
    let mut texts = vec![text.to_string()];
    if let Ok(json) = serde_json::from_str(text) {
        strings(&json, &mut texts);
    }
    forms
        .iter()
        .filter(move |f| texts.iter().any(|t| t.contains(f.as_str())))
}

fn strings(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn secrets() -> SecretMap {
    let mut secrets = SecretMap::new();
    secrets.insert("CANARY".into(), CANARY.into());
    secrets.insert("SMTP_USER".into(), SMTP_USER.into());
    secrets.insert("TEST_TOKEN".into(), TEST_TOKEN.into());
    secrets
}

fn pipeline(sink: &Sink, addr: SocketAddr) -> Pipeline {
    let settings = sink
        .settings
        .replace("{addr}", &addr.to_string())
        .replace("{port}", &addr.port().to_string());
    let yaml = format!(
        "cluster: redaction\n\
         channels:\n  {name}: {{{settings}, delivery: {{allow_http: true, retries: 1}}}}\n\
         routing: {{default: [{name}]}}\n\
         http: {{test_channel_token: $TEST_TOKEN}}\n",
        name = sink.name
    );
    let config = config::load(&yaml, &secrets()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let registry = Registry::build(&config).unwrap();
    Pipeline::new(config, registry, Arc::new(Metrics::new())).unwrap()
}

/// The receiver's echoes of what it received, to show the canary reached it.
enum Echoing {
    Http(Receiver),
    Smtp(SmtpEcho),
}

impl Echoing {
    async fn start(sink: &Sink) -> Echoing {
        if sink.smtp {
            Echoing::Smtp(SmtpEcho::start(&[454, 535, 535, 235]).await)
        } else {
            Echoing::Http(Receiver::echo(&[500, 400, 400, 200]).await)
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Echoing::Http(r) => r.addr,
            Echoing::Smtp(s) => s.addr,
        }
    }

    fn echoes(&self) -> Vec<String> {
        match self {
            Echoing::Http(r) => r.take().iter().map(|s| s.echo()).collect(),
            Echoing::Smtp(s) => s.echoes(),
        }
    }
}

fn text(r: &warp::http::Response<bytes::Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// Delivers an alert (500, retried, then 400), asks `/test-channel` (400) and delivers a test
/// message (200), then looks for the canary everywhere kpulse shows an answer except the logs.
async fn exercise(sink: &Sink) -> Vec<String> {
    let receiver = Echoing::start(sink).await;
    let p = pipeline(sink, receiver.addr());
    let app = App::new(p.clone(), || true);
    p.submit(Alert::new(
        AlertKey::new("pod_crashes", "shop", "Pod", "api-1", "CrashLoopBackOff"),
        Severity::Warning,
        "api-1 is crash-looping",
        p.now(),
    ));
    p.drain().await;

    let test_channel = warp::test::request()
        .method("POST")
        .path(&format!("/test-channel?channel={}", sink.name))
        .header("authorization", format!("Bearer {TEST_TOKEN}"))
        .reply(&app.metrics_routes())
        .await;
    let delivered = p
        .runtime()
        .registry
        .deliver(Batch::test("redaction", sink.name, p.now()))
        .await;
    let status = warp::test::request()
        .path("/status")
        .reply(&app.probe_routes())
        .await;

    let mut problems = Vec::new();
    let echoes = receiver.echoes();
    let forms = forms(sink);
    // Four requests; the Slack bot retries the 200 that is not JSON.
    if echoes.len() < 4 || !echoes.iter().all(|e| found(&forms, e).next().is_some()) {
        problems.push(format!(
            "{}: the receiver should have echoed the canary at least 4 times: {echoes:#?}",
            sink.name
        ));
    }
    let status = text(&status);
    let last_error = serde_json::from_str::<serde_json::Value>(&status).unwrap()["channels"]
        [sink.name]["last_error"]
        .clone();
    if !last_error.is_string() || test_channel.status().as_u16() != 502 {
        problems.push(format!(
            "{}: expected a failed delivery in /status and a 502 from /test-channel: {status}",
            sink.name
        ));
    }
    let delivered = match delivered.result {
        Ok(d) => d.response,
        Err(e) => e.message,
    };
    problems.extend(leaks(sink, "/status", &status));
    problems.extend(leaks(sink, "/test-channel", &text(&test_channel)));
    problems.extend(leaks(sink, "a delivery's response", &delivered));
    problems.extend(leaks(sink, "/metrics", &p.metrics().encode()));
    problems
}

#[tokio::test]
async fn no_sink_shows_a_secret_its_receiver_echoes() {
    kpulse::install_crypto_provider();
    let logs = Logs::default();
    let settings = Settings {
        format: LogFormat::Json,
        filter: "debug".into(),
        export: Export::Off,
    };
    let (sub, _telemetry, _) = subscriber(&settings, {
        let logs = logs.clone();
        move || logs.clone()
    })
    .unwrap();
    // The runtime of this test has one thread: every task logs through this subscriber.
    let _default = tracing::subscriber::set_default(sub);

    let mut problems: Vec<String> = futures::future::join_all(SINKS.iter().map(exercise))
        .await
        .into_iter()
        .flatten()
        .collect();
    let log = logs.text();
    for sink in SINKS {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("\"channel\":\"{}\"", sink.name)))
            .collect();
        let retried = lines
            .iter()
            .any(|l| l.contains("delivery failed, retrying"));
        let failed = lines.iter().any(|l| l.contains("\"delivery failed\""));
        if !(retried && failed) {
            problems.push(format!(
                "{}: expected a retry and a failure in the logs: {lines:#?}",
                sink.name
            ));
        }
    }
    let every_form: Vec<String> = SINKS.iter().flat_map(forms).collect();
    for line in log.lines() {
        problems
            .extend(found(&every_form, line).map(|f| format!("a log line shows {f:?}: {line}")));
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_sink_type_with_secret_settings_is_in_the_table() {
    let schema = config::json_schema();
    let types: Vec<&str> = schema["$defs"]["Channel"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["properties"]["type"]["const"].as_str().unwrap())
        .filter(|t| *t != "log")
        .collect();
    assert!(types.len() >= 9, "{types:?}");
    for t in types {
        assert!(
            SINKS
                .iter()
                .any(|s| s.settings.starts_with(&format!("type: {t},"))),
            "no row for sink type {t}"
        );
    }
}
