//! An alert with full evidence, as kpulse sends an OOMKilled container after collecting it: the
//! container (no memory limit), events, log lines (one redacted), the node, owners, a hint and
//! commands. Shared by the sink tests, which check that each sink shows every part.

use kpulse::alert::{Alert, AlertKey, Severity};
use kpulse::evidence::{Container, EventNote, Evidence, Hint, NodeNote};

pub const CAUSE: &str =
    "OOMKilled with no memory limit: the node ran out of memory and the kernel killed server";
pub const NEXT: &str =
    "set resources.limits.memory (and a request) so the scheduler reserves the memory it needs";
pub const LOG_LINE: &str = "loading catalogue: 120000 items";
pub const REDACTED_LINE: &str = "connecting with password=<redacted>";
pub const COMMAND: &str = "kubectl -n checkout logs api-7d9f -c server --previous";

pub fn explained_alert(at: jiff::Timestamp) -> Alert {
    let mut a = Alert::new(
        AlertKey::new("pod_crashes", "checkout", "Pod", "api-7d9f", "OOMKilled"),
        Severity::Critical,
        "api-7d9f/server OOMKilled",
        at,
    )
    .message("Container server in pod checkout/api-7d9f was killed for running out of memory (OOMKilled).")
    .owner("Deployment/api");
    a.evidence = Evidence {
        container: Some(Container {
            name: "server".into(),
            image: "registry.example/api:1.4".into(),
            reason: "OOMKilled".into(),
            exit_code: Some(137),
            exit_meaning: "killed by the kernel for exceeding its memory (OOMKilled, SIGKILL)"
                .into(),
            signal: "SIGKILL".into(),
            restarts: 4,
            ran_for: "42s".into(),
            ..Container::default()
        }),
        log: vec![LOG_LINE.into(), REDACTED_LINE.into()],
        events: vec![EventNote {
            reason: "BackOff".into(),
            message: "Back-off restarting failed container server".into(),
            count: 4,
            last_seen: String::new(),
        }],
        owners: vec!["ReplicaSet/api-7d9f".into(), "Deployment/api".into()],
        node: Some(NodeNote {
            name: "ip-10-0-1-7".into(),
            conditions: vec!["MemoryPressure=True".into()],
            allocatable_memory: "7Gi".into(),
        }),
        hints: vec![Hint {
            cause: CAUSE.into(),
            next: NEXT.into(),
        }],
        commands: vec![COMMAND.into()],
        ..Evidence::default()
    };
    a
}

/// [`explained_alert`] as the engine hands it to a sink.
pub fn explained(state: kpulse::alert::State, at: jiff::Timestamp) -> kpulse::engine::DispatchItem {
    kpulse::engine::DispatchItem {
        notification: kpulse::alert::Notification {
            state,
            alert: explained_alert(at),
            at,
        },
        reference: None,
    }
}

/// Asserts that `text` (a request body as sent) shows every part of the evidence.
pub fn shows_the_evidence(sink: &str, text: &str) {
    // JSON bodies escape some characters; compare on the decoded text too.
    let decoded = text
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .replace("\\u003c", "<")
        .replace("\\u003e", ">");
    let html = decoded.replace("&lt;", "<").replace("&gt;", ">");
    for (what, want) in [
        ("the likely cause", CAUSE),
        ("the next step", NEXT),
        (
            "the decoded exit code",
            "137: killed by the kernel for exceeding its memory",
        ),
        ("the missing memory limit", "none set"),
        ("a log line", LOG_LINE),
        ("the redacted log line", REDACTED_LINE),
        ("the command", COMMAND),
        ("the node's condition", "MemoryPressure=True"),
        ("an event", "Back-off restarting failed container server"),
    ] {
        assert!(
            html.contains(want),
            "{sink} does not show {what} ({want:?}):\n{text}"
        );
    }
}
