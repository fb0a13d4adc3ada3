//! The email sink against a real SMTP server (aiosmtpd, set up by `hack/test-deps.sh`) that
//! requires STARTTLS and AUTH: the messages a recipient gets for a firing alert, its resolution
//! and a digest, and what a rejected password looks like.
//!
//! Needs `python3` (with `venv`) and `openssl`; the test fails, never skips, without them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kpulse::alert::{Alert, AlertKey, Notification, Severity, State};
use kpulse::config::{self, Config, SecretMap};
use kpulse::engine::{Dispatch, DispatchItem, DispatchKind};
use kpulse::sinks::{Batch, Registry, Report};
use serde_json::Value;

#[path = "support/explained.rs"]
mod explained;

const USER: &str = "kpulse-relay";
const PASSWORD: &str = "smtp-pa55word-5ecret";
const FIRING_RED: &str = "#d40e0d";
const RESOLVED_GREEN: &str = "#2eb67d";

/// The python of the virtualenv `hack/test-deps.sh` prepares (its last line of output).
fn python() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/hack/test-deps.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run hack/test-deps.sh (needs bash and python3): {e}"));
    assert!(
        out.status.success(),
        "hack/test-deps.sh failed; the email tests need python3 with venv and network access to \
         PyPI for aiosmtpd:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("hack/test-deps.sh printed no python path"))
        .trim()
        .to_string()
}

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost, the way a
/// company relay is set up: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let path = |name: &str| dir.join(name);
    let ext = path("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=kpulse test CA",
        "-keyout",
        &p(&path("ca.key")),
        "-out",
        &p(&path("ca.pem")),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p(&path("key.pem")),
        "-out",
        &p(&path("server.csr")),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p(&path("server.csr")),
        "-CA",
        &p(&path("ca.pem")),
        "-CAkey",
        &p(&path("ca.key")),
        "-set_serial",
        "1",
        "-days",
        "1",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&path("cert.pem")),
    ]);
    (path("ca.pem"), path("cert.pem"), path("key.pem"))
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("the email tests need the openssl CLI for test certificates: {e}")
        });
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `tests/support/smtp_server.py`; stopped when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    /// The CA that signed the server's certificate (`smtp.ca_file`).
    ca: PathBuf,
    inbox: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// `mode`: `starttls` or `implicit`.
    fn start(mode: &str) -> SmtpServer {
        let python = python();
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates(dir.path());
        let inbox = dir.path().join("inbox");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(&cert)
            .arg(&key)
            .args([USER, PASSWORD])
            .arg(&inbox)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {script}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.trim().strip_prefix("READY ") {
                    let _ = tx.send(port.parse::<u16>().expect("READY <port>"));
                }
            }
        });
        let Ok(port) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the SMTP server did not print READY within 30 s");
        };
        SmtpServer {
            child,
            port,
            ca,
            inbox,
            _dir: dir,
        }
    }

    /// Message `n` (from 1) as the server decoded it.
    fn message(&self, n: usize) -> Value {
        let path = self.inbox.join(format!("{n}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("message {n} was not received ({}): {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    fn count(&self) -> usize {
        std::fs::read_dir(&self.inbox)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
                })
                .count()
            })
            .unwrap_or(0)
    }

    /// A configuration whose channel `mail` sends through this server.
    fn setup(&self, password: &str) -> (Config, Registry) {
        self.setup_tls(password, "starttls")
    }

    fn setup_tls(&self, password: &str, tls: &str) -> (Config, Registry) {
        kpulse::install_crypto_provider();
        let mut secrets = SecretMap::new();
        secrets.insert("SMTP_USER".into(), USER.into());
        secrets.insert("SMTP_PASSWORD".into(), password.into());
        let yaml = format!(
            "cluster: prod-eks-1\n\
             links:\n  runbook: 'https://runbooks.example/{{monitor}}?reason={{reason}}&x=1'\n\
             channels:\n  mail:\n    type: email\n    \
             smtp: {{host: 127.0.0.1, port: {}, tls: {tls}, username: $SMTP_USER, password: $SMTP_PASSWORD, ca_file: '{}'}}\n    \
             from: 'kpulse <kpulse@example.com>'\n    \
             to: [oncall@example.com, sre@example.com]\n    \
             delivery: {{retries: 2, timeout: 20s}}\n\
             routing: {{default: [mail]}}\n",
            self.port,
            self.ca.display()
        );
        let config = config::load(&yaml, &secrets).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let registry = Registry::build(&config).unwrap();
        (config, registry)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn pvc(state: State, name: &str) -> DispatchItem {
    let alert = Alert::new(
        AlertKey::new(
            "pvc_usage",
            "checkout",
            "PersistentVolumeClaim",
            name,
            "Usage",
        ),
        Severity::Warning,
        "PVC above 80%",
        t0(),
    )
    .message(format!("Volume of checkout/{name} is 91% full"))
    .field("Used", "91%");
    DispatchItem {
        notification: Notification {
            state,
            alert,
            at: t0() + SignedDuration::from_mins(12),
        },
        reference: None,
    }
}

async fn deliver(
    config: &Config,
    registry: &Registry,
    kind: DispatchKind,
    items: Vec<DispatchItem>,
) -> Report {
    let dispatch = Dispatch {
        channel: "mail".into(),
        kind,
        notifications: items,
    };
    registry
        .deliver(Batch::from_dispatch(config, &dispatch))
        .await
}

/// The decoded parts: multipart/alternative holding text/plain and text/html.
fn parts(message: &Value) -> (String, String) {
    let parts = message["parts"].as_array().unwrap();
    let types: Vec<&str> = parts
        .iter()
        .map(|p| p["content_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec!["multipart/alternative", "text/plain", "text/html"]
    );
    (
        parts[1]["text"].as_str().unwrap().replace("\r\n", "\n"),
        parts[2]["text"].as_str().unwrap().replace("\r\n", "\n"),
    )
}

fn header<'a>(message: &'a Value, name: &str) -> &'a str {
    message["headers"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} header in {message}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_resolved_and_digest_emails_over_starttls_with_auth() {
    let server = SmtpServer::start("starttls");
    let (config, registry) = server.setup(PASSWORD);

    // Firing.
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![pvc(State::Firing, "data-api-0")],
    )
    .await;
    let delivered = report.result.expect("the firing email is delivered");
    assert_eq!(report.attempts, 1);
    let m = server.message(1);
    assert_eq!(m["tls"], true, "the message was sent before STARTTLS");
    assert_eq!(m["auth_user"], USER);
    assert_eq!(m["mail_from"], "kpulse@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "sre@example.com"])
    );
    assert_eq!(
        header(&m, "subject"),
        "[prod-eks-1] checkout/persistentvolumeclaim/data-api-0 PVC above 80%"
    );
    assert_eq!(header(&m, "from"), "kpulse <kpulse@example.com>");
    assert_eq!(header(&m, "to"), "oncall@example.com, sre@example.com");
    assert_eq!(header(&m, "x-kpulse-state"), "firing");
    assert!(header(&m, "content-type").starts_with("multipart/alternative"));
    let firing_id = header(&m, "message-id").to_string();
    assert!(
        firing_id.starts_with("<kpulse.") && firing_id.ends_with("@example.com>"),
        "{firing_id}"
    );
    // The engine keeps this reference for the resolution.
    let references = delivered.references;
    assert_eq!(references.len(), 1);
    assert_eq!(references[0].1, firing_id);
    let (text, html) = parts(&m);
    assert!(
        text.starts_with(
            "🚨 [prod-eks-1] checkout/persistentvolumeclaim/data-api-0 PVC above 80%\n\n\
             Volume of checkout/data-api-0 is 91% full\n\nSeverity: warning\n"
        ),
        "{text}"
    );
    assert!(text.contains("\nUsed: 91%\n"), "{text}");
    assert!(
        text.contains("runbook: https://runbooks.example/pvc_usage?reason=Usage&x=1"),
        "{text}"
    );
    assert!(html.contains(&format!("background:{FIRING_RED}")), "{html}");
    assert!(!html.contains(RESOLVED_GREEN), "{html}");
    assert!(html.contains("Volume of checkout/data-api-0 is 91% full"));
    assert!(html.contains("<th style=\"text-align:left;padding:2px 12px 2px 0;color:#59636e;font-weight:normal\">Used</th><td style=\"padding:2px 0\">91%</td>"), "{html}");
    assert!(
        html.contains("href=\"https://runbooks.example/pvc_usage?reason=Usage&amp;x=1\""),
        "{html}"
    );

    // Resolved: the cluster first, then [RESOLVED]; the banner turns green.
    let mut resolved = pvc(State::Resolved, "data-api-0");
    resolved.reference = Some(references[0].1.clone());
    let report = deliver(&config, &registry, DispatchKind::Immediate, vec![resolved]).await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let m = server.message(2);
    assert_eq!(
        header(&m, "subject"),
        "[prod-eks-1] [RESOLVED] checkout/persistentvolumeclaim/data-api-0 PVC above 80%"
    );
    assert_eq!(header(&m, "x-kpulse-state"), "resolved");
    // Mail clients thread the resolution under the firing email.
    assert_eq!(header(&m, "in-reply-to"), firing_id);
    assert_eq!(header(&m, "references"), firing_id);
    assert_ne!(header(&m, "message-id"), firing_id);
    let (text, html) = parts(&m);
    assert!(
        text.starts_with(
            "✅ [prod-eks-1] [RESOLVED] checkout/persistentvolumeclaim/data-api-0 PVC above 80%\n\n\
             Cleared after 12m. It was: Volume of checkout/data-api-0 is 91% full\n"
        ),
        "{text}"
    );
    assert!(
        html.contains(&format!("background:{RESOLVED_GREEN}")),
        "{html}"
    );
    assert!(!html.contains(FIRING_RED), "{html}");

    // A digest lists every alert; with both states in it the header says mixed.
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Digest,
        vec![
            pvc(State::Firing, "data-api-1"),
            pvc(State::Firing, "data-api-2"),
            pvc(State::Resolved, "data-api-0"),
        ],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let m = server.message(3);
    assert_eq!(
        header(&m, "subject"),
        "[prod-eks-1] kpulse digest: 3 alerts (2 firing, 1 resolved)"
    );
    assert_eq!(header(&m, "x-kpulse-state"), "mixed");
    let (text, html) = parts(&m);
    for line in [
        "🚨 [prod-eks-1] checkout/persistentvolumeclaim/data-api-1 PVC above 80%",
        "🚨 [prod-eks-1] checkout/persistentvolumeclaim/data-api-2 PVC above 80%",
        "✅ [prod-eks-1] [RESOLVED] checkout/persistentvolumeclaim/data-api-0 PVC above 80%",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    assert_eq!(html.matches(&format!("background:{FIRING_RED}")).count(), 2);
    assert_eq!(
        html.matches(&format!("background:{RESOLVED_GREEN}"))
            .count(),
        1
    );

    // A firing-only digest says firing.
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Digest,
        vec![pvc(State::Firing, "a"), pvc(State::Firing, "b")],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    assert_eq!(header(&server.message(4), "x-kpulse-state"), "firing");
    assert_eq!(server.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_permanent_and_the_error_names_the_channel_not_the_password() {
    let server = SmtpServer::start("starttls");
    let wrong = "not-the-pa55word";
    let (config, registry) = server.setup(wrong);
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![pvc(State::Firing, "data-api-0")],
    )
    .await;
    assert_eq!(report.attempts, 1, "a rejected login must not be retried");
    let err = report.result.unwrap_err().to_string();
    assert!(err.starts_with("channel \"mail\" (email): "), "{err}");
    assert!(err.contains("535"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(PASSWORD), "{err}");
    assert_eq!(server.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused() {
    let server = SmtpServer::start("starttls");
    kpulse::install_crypto_provider();
    let mut secrets = SecretMap::new();
    secrets.insert("SMTP_PASSWORD".into(), PASSWORD.into());
    // No ca_file: the private CA is not trusted, so nothing is sent in clear.
    let yaml = format!(
        "channels:\n  mail:\n    type: email\n    \
         smtp: {{host: 127.0.0.1, port: {}, username: {USER}, password: $SMTP_PASSWORD}}\n    \
         from: kpulse@example.com\n    to: [oncall@example.com]\n    delivery: {{retries: 2}}\n\
         routing: {{default: [mail]}}\n",
        server.port
    );
    let config = config::load(&yaml, &secrets).unwrap();
    let registry = Registry::build(&config).unwrap();
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![pvc(State::Firing, "data-api-0")],
    )
    .await;
    assert_eq!(
        report.attempts, 1,
        "an untrusted certificate must not be retried"
    );
    let err = report.result.unwrap_err().to_string();
    assert!(err.starts_with("channel \"mail\" (email): "), "{err}");
    assert!(
        err.contains(": Connection error: invalid peer certificate")
            && err.contains("smtp.ca_file"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    assert_eq!(server.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_delivers_over_tls_from_the_first_byte() {
    let server = SmtpServer::start("implicit");
    let (config, registry) = server.setup_tls(PASSWORD, "implicit");
    let report = deliver(
        &config,
        &registry,
        DispatchKind::Immediate,
        vec![pvc(State::Firing, "data-api-0")],
    )
    .await;
    assert!(report.result.is_ok(), "{:?}", report.result);
    let m = server.message(1);
    assert_eq!(m["auth_user"], USER);
    assert_eq!(header(&m, "x-kpulse-state"), "firing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explained_alert_shows_its_evidence_in_the_text_and_html_parts() {
    let server = SmtpServer::start("starttls");
    let (config, registry) = server.setup(PASSWORD);
    let item = explained::explained(State::Firing, t0());
    let report = deliver(&config, &registry, DispatchKind::Immediate, vec![item]).await;
    report.result.expect("the email is delivered");
    let (text, html) = parts(&server.message(1));
    explained::shows_the_evidence("email (text)", &text);
    explained::shows_the_evidence("email (html)", &html);
    assert!(text.contains("Likely cause: "), "{text}");
    assert!(html.contains("<pre"), "the log is preformatted: {html}");
}
