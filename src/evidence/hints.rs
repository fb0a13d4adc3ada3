//! Hints: a rule table from evidence to a likely cause and a next step, one line each.
//!
//! Each rule reads the alert's reason and its [`Evidence`] and either says nothing or gives a
//! [`Hint`]. Rules are tried in order and every one that applies adds its hint (at most
//! [`super::Caps::hints`] are kept), so the most specific rules come first. The table is
//! documented in docs/monitors.md ("Hints"); a test keeps the two in step.

use super::{Evidence, Hint};
use crate::alert::Alert;

/// One rule of the table.
pub struct Rule {
    /// Its name, as docs/monitors.md lists it.
    pub name: &'static str,
    pub hint: fn(&Input) -> Option<Hint>,
}

/// What the rules read.
pub struct Input<'a> {
    pub monitor: &'a str,
    pub reason: &'a str,
    pub evidence: &'a Evidence,
}

impl Input<'_> {
    fn container_reason(&self) -> &str {
        self.evidence
            .container
            .as_ref()
            .map(|c| c.reason.as_str())
            .unwrap_or("")
    }

    fn exit(&self) -> Option<i32> {
        self.evidence.container.as_ref()?.exit_code
    }

    fn message(&self) -> &str {
        self.evidence
            .container
            .as_ref()
            .map(|c| c.message.as_str())
            .unwrap_or("")
    }

    fn oom(&self) -> bool {
        self.reason == "OOMKilled" || self.container_reason() == "OOMKilled"
    }

    fn pulling(&self) -> bool {
        matches!(self.reason, "ImagePullBackOff" | "ErrImagePull")
            || matches!(self.container_reason(), "ImagePullBackOff" | "ErrImagePull")
    }

    /// What the kubelet said about a failed pull: the container's waiting message and its
    /// `Failed` events (which carry the runtime's error when the message only says back-off).
    fn pull_error(&self) -> String {
        let mut text = self.message().to_ascii_lowercase();
        for e in self.evidence.events.iter().filter(|e| e.reason == "Failed") {
            text.push(' ');
            text.push_str(&e.message.to_ascii_lowercase());
        }
        text
    }

    fn events_say(&self, reason: &str) -> Option<&str> {
        self.evidence
            .events
            .iter()
            .find(|e| e.reason == reason)
            .map(|e| e.message.as_str())
    }
}

fn hint(cause: impl Into<String>, next: impl Into<String>) -> Option<Hint> {
    Some(Hint {
        cause: cause.into(),
        next: next.into(),
    })
}

/// The text between the first `open` after `after` and the next `close`: for the names in
/// kubelet messages like `couldn't find key port in ConfigMap shop/settings`.
fn word_after<'m>(message: &'m str, after: &str) -> Option<&'m str> {
    let rest = &message[message.find(after)? + after.len()..];
    rest.split_whitespace()
        .next()
        .map(|w| w.trim_matches(|c: char| c == '"' || c == '\'' || c == ','))
}

/// The rule table, most specific first.
pub const RULES: &[Rule] = &[
    Rule {
        name: "oom-no-limit",
        hint: |i| {
            let c = i.evidence.container.as_ref()?;
            (i.oom() && c.memory_limit.is_empty()).then_some(())?;
            hint(
                format!(
                    "OOMKilled with no memory limit: the node ran out of memory and the kernel killed {}",
                    c.name
                ),
                "set resources.limits.memory (and a request) so the scheduler reserves the memory it needs",
            )
        },
    },
    Rule {
        name: "oom-limit",
        hint: |i| {
            let c = i.evidence.container.as_ref()?;
            (i.oom() && !c.memory_limit.is_empty()).then_some(())?;
            hint(
                format!(
                    "{} used more than its memory limit of {}",
                    c.name, c.memory_limit
                ),
                "raise the limit above its peak use, or look for a leak",
            )
        },
    },
    Rule {
        name: "exit-127",
        hint: |i| {
            (i.exit()? == 127 && !i.oom()).then_some(())?;
            hint(
                "exit 127: command not found",
                "check the image's entrypoint and the pod's command and args",
            )
        },
    },
    Rule {
        name: "exit-126",
        hint: |i| {
            (i.exit()? == 126).then_some(())?;
            hint(
                "exit 126: the command is not executable",
                "check the file's permissions and that the binary is built for the node's architecture",
            )
        },
    },
    Rule {
        name: "exit-137",
        hint: |i| {
            (i.exit()? == 137 && !i.oom()).then_some(())?;
            hint(
                "exit 137 without OOMKilled: killed with SIGKILL, usually a failing liveness probe or a slow shutdown",
                "check the liveness probe and terminationGracePeriodSeconds against the events",
            )
        },
    },
    Rule {
        name: "exit-139",
        hint: |i| {
            (i.exit()? == 139).then_some(())?;
            hint(
                "exit 139: segmentation fault in the program or a native library",
                "check that the image matches the node's architecture and its libraries",
            )
        },
    },
    Rule {
        name: "exit-143",
        hint: |i| {
            (i.exit()? == 143).then_some(())?;
            hint(
                "exit 143: stopped with SIGTERM; outside a rollout or a drain, the liveness probe restarted it",
                "check the liveness probe in the events",
            )
        },
    },
    Rule {
        name: "exit-error",
        hint: |i| {
            let code = i.exit()?;
            (code != 0 && !i.oom() && !matches!(code, 126 | 127 | 137 | 139 | 143)).then_some(())?;
            hint(
                format!("the application exited with code {code}"),
                "read the previous container's log for its last words",
            )
        },
    },
    Rule {
        name: "configmap-key",
        hint: |i| {
            let m = i.message();
            let key = word_after(m, "couldn't find key ")?;
            let (kind, name) = if let Some(n) = word_after(m, "in ConfigMap ") {
                ("ConfigMap", n)
            } else {
                ("Secret", word_after(m, "in Secret ")?)
            };
            hint(
                format!("{kind} {name} has no key {key}"),
                format!(
                    "add the key {key} to {kind} {name}, or fix the pod's {}KeyRef",
                    if kind == "ConfigMap" {
                        "configMap"
                    } else {
                        "secret"
                    }
                ),
            )
        },
    },
    Rule {
        name: "configmap-missing",
        hint: |i| {
            let m = i.message();
            for kind in ["configmap", "secret"] {
                if let Some(name) =
                    word_after(m, &format!("{kind} ")).filter(|_| m.ends_with("not found"))
                {
                    let kind = if kind == "configmap" {
                        "ConfigMap"
                    } else {
                        "Secret"
                    };
                    return hint(
                        format!("{kind} {name} does not exist in the pod's namespace"),
                        format!("create {kind} {name}, or mark the reference optional"),
                    );
                }
            }
            None
        },
    },
    Rule {
        name: "image-tag-missing",
        hint: |i| {
            let m = i.pull_error();
            (i.pulling()
                && (m.contains("manifest unknown")
                    || m.contains(": not found")
                    || m.contains("not found: manifest")))
            .then_some(())?;
            hint(
                "the image or its tag does not exist in the registry",
                "check the image name and tag; a typo or an unpushed tag is the usual cause",
            )
        },
    },
    Rule {
        name: "image-auth",
        hint: |i| {
            let m = i.pull_error();
            (i.pulling()
                && [
                    "unauthorized",
                    "authentication required",
                    "denied",
                    "401",
                    "403",
                ]
                .iter()
                .any(|w| m.contains(w)))
            .then_some(())?;
            hint(
                "the registry refused to serve the image without valid credentials",
                "check the pod's imagePullSecrets and that they can read this repository",
            )
        },
    },
    Rule {
        name: "image-unreachable",
        hint: |i| {
            let m = i.pull_error();
            (i.pulling()
                && [
                    "no such host",
                    "dial tcp",
                    "connection refused",
                    "i/o timeout",
                    "proxyconnect",
                    "tls handshake timeout",
                ]
                .iter()
                .any(|w| m.contains(w)))
            .then_some(())?;
            hint(
                "the node cannot reach the image's registry",
                "check the node's DNS, proxy and firewall, or use a registry mirror",
            )
        },
    },
    Rule {
        name: "image-name",
        hint: |i| {
            (i.reason == "InvalidImageName" || i.container_reason() == "InvalidImageName")
                .then_some(())?;
            hint(
                "the image reference is not a valid name",
                "fix the image field: lowercase repository, one tag or digest",
            )
        },
    },
    Rule {
        name: "unschedulable-resources",
        hint: |i| {
            // pod_unschedulable's own fact, else the scheduler's FailedScheduling event.
            let m = i
                .evidence
                .facts
                .get("Scheduler")
                .map(String::as_str)
                .into_iter()
                .chain(i.evidence.events.iter().map(|e| e.message.as_str()))
                .find(|m| m.contains("Insufficient"))?;
            (i.monitor == "pod_unschedulable" || i.reason == "Unschedulable").then_some(())?;
            let what = m
                .split("Insufficient ")
                .nth(1)
                .and_then(|r| r.split(['.', ',']).next())
                .unwrap_or("resources");
            hint(
                format!("no node has enough free {what} for the pod's requests"),
                "lower the requests, free capacity, or add nodes",
            )
        },
    },
    Rule {
        name: "node-pressure",
        hint: |i| {
            let n = i.evidence.node.as_ref()?;
            let bad = n.conditions.first()?;
            hint(
                format!("node {} reports {bad}", n.name),
                "look at the node first: its pods fail with it",
            )
        },
    },
    Rule {
        name: "failed-mount",
        hint: |i| {
            let m = i
                .events_say("FailedMount")
                .or_else(|| i.events_say("FailedAttachVolume"))?;
            hint(
                format!("a volume could not be mounted: {m}"),
                "check the claim, the Secret or ConfigMap it names, and the storage driver",
            )
        },
    },
    Rule {
        name: "probe-failing",
        hint: |i| {
            let m = i.events_say("Unhealthy")?;
            hint(
                format!("a probe is failing: {m}"),
                "check the probe's path, port and timeouts against the application's start-up time",
            )
        },
    },
    Rule {
        name: "rollout-deadline",
        hint: |i| {
            (i.monitor == "rollout_stuck" && i.reason == "ProgressDeadlineExceeded")
                .then_some(())?;
            hint(
                "the new ReplicaSet's pods are not becoming available",
                "look at the first failing pod of the new ReplicaSet; undo the rollout if it is the change",
            )
        },
    },
    Rule {
        name: "volume-full",
        hint: |i| {
            (matches!(i.monitor, "pvc_usage" | "node_disk")).then_some(())?;
            hint(
                "the volume is filling up",
                if i.monitor == "pvc_usage" {
                    "expand the claim (allowVolumeExpansion) or delete what the application no longer needs"
                } else {
                    "free space on the node: unused images, logs, emptyDir volumes"
                },
            )
        },
    },
    Rule {
        name: "certificate-expiring",
        hint: |i| {
            (i.monitor == "tls_cert_expiry").then_some(())?;
            let issuer = i
                .evidence
                .facts
                .get("Issuer")
                .map(|s| format!(" (issued by {s})"))
                .unwrap_or_default();
            hint(
                format!("the certificate is not being renewed in time{issuer}"),
                "renew it; with cert-manager, check the Certificate's status and the issuer",
            )
        },
    },
];

/// Every hint the table gives for `alert` with `evidence`, in table order.
pub fn hints(alert: &Alert, evidence: &Evidence) -> Vec<Hint> {
    let input = Input {
        monitor: &alert.key.monitor,
        reason: &alert.key.reason,
        evidence,
    };
    RULES.iter().filter_map(|r| (r.hint)(&input)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKey, Severity};
    use crate::evidence::{Container, EventNote, NodeNote};

    fn alert(monitor: &str, reason: &str) -> Alert {
        Alert::new(
            AlertKey::new(monitor, "shop", "Pod", "api-1", reason),
            Severity::Warning,
            "t",
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    fn container(reason: &str, exit: Option<i32>, message: &str, limit: &str) -> Evidence {
        Evidence {
            container: Some(Container {
                name: "server".into(),
                reason: reason.into(),
                exit_code: exit,
                message: message.into(),
                memory_limit: limit.into(),
                ..Container::default()
            }),
            ..Evidence::default()
        }
    }

    /// The first hint's cause for each case: the table's first match.
    #[test]
    fn each_rule_names_the_likely_cause() {
        let cases: &[(&str, &str, Evidence, &str)] = &[
            (
                "pod_crashes",
                "OOMKilled",
                container("OOMKilled", Some(137), "", ""),
                "no memory limit",
            ),
            (
                "pod_crashes",
                "OOMKilled",
                container("OOMKilled", Some(137), "", "256Mi"),
                "more than its memory limit of 256Mi",
            ),
            (
                "pod_crashes",
                "CrashLoopBackOff",
                container("Error", Some(127), "", ""),
                "command not found",
            ),
            (
                "pod_crashes",
                "CrashLoopBackOff",
                container("Error", Some(126), "", ""),
                "not executable",
            ),
            (
                "pod_crashes",
                "CrashLoopBackOff",
                container("Error", Some(137), "", ""),
                "liveness probe",
            ),
            (
                "pod_crashes",
                "CrashLoopBackOff",
                container("Error", Some(139), "", ""),
                "segmentation fault",
            ),
            (
                "pod_crashes",
                "CrashLoopBackOff",
                container("Error", Some(143), "", ""),
                "SIGTERM",
            ),
            (
                "pod_crashes",
                "CrashLoopBackOff",
                container("Error", Some(1), "", ""),
                "exited with code 1",
            ),
            (
                "container_waiting",
                "CreateContainerConfigError",
                container(
                    "CreateContainerConfigError",
                    None,
                    "couldn't find key port in ConfigMap shop/settings",
                    "",
                ),
                "ConfigMap shop/settings has no key port",
            ),
            (
                "container_waiting",
                "CreateContainerConfigError",
                container(
                    "CreateContainerConfigError",
                    None,
                    "couldn't find key token in Secret shop/creds",
                    "",
                ),
                "Secret shop/creds has no key token",
            ),
            (
                "container_waiting",
                "CreateContainerConfigError",
                container(
                    "CreateContainerConfigError",
                    None,
                    "configmap \"settings\" not found",
                    "",
                ),
                "ConfigMap settings does not exist",
            ),
            (
                "container_waiting",
                "ImagePullBackOff",
                container(
                    "ImagePullBackOff",
                    None,
                    "Back-off pulling image \"r.io/api:v9\": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image \"r.io/api:v9\": failed to resolve reference \"r.io/api:v9\": r.io/api:v9: not found",
                    "",
                ),
                "tag does not exist",
            ),
            (
                "container_waiting",
                "ImagePullBackOff",
                container(
                    "ImagePullBackOff",
                    None,
                    "failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized",
                    "",
                ),
                "credentials",
            ),
            (
                "container_waiting",
                "ImagePullBackOff",
                container(
                    "ImagePullBackOff",
                    None,
                    "failed to do request: Head \"https://r.io/v2/api/manifests/v9\": proxyconnect tcp: dial tcp 127.0.0.1:1: connect: connection refused",
                    "",
                ),
                "cannot reach the image's registry",
            ),
            (
                "container_waiting",
                "InvalidImageName",
                container("InvalidImageName", None, "", ""),
                "not a valid name",
            ),
        ];
        for (monitor, reason, evidence, want) in cases {
            let got = hints(&alert(monitor, reason), evidence);
            let first = got
                .first()
                .unwrap_or_else(|| panic!("no hint for {monitor}/{reason} {evidence:?}"));
            assert!(
                first.cause.contains(want),
                "{monitor}/{reason}: {first:?} lacks {want:?}"
            );
            assert!(!first.next.is_empty());
        }
    }

    #[test]
    fn events_nodes_and_object_facts_give_their_hints() {
        let events = |reason: &str, message: &str| Evidence {
            events: vec![EventNote {
                reason: reason.into(),
                message: message.into(),
                count: 3,
                last_seen: String::new(),
            }],
            ..Evidence::default()
        };
        let cause = |monitor: &str, reason: &str, e: &Evidence| -> Vec<String> {
            hints(&alert(monitor, reason), e)
                .into_iter()
                .map(|h| h.cause)
                .collect()
        };
        assert!(
            cause(
                "pod_unschedulable",
                "Unschedulable",
                &events(
                    "FailedScheduling",
                    "0/3 nodes are available: 3 Insufficient memory."
                )
            )[0]
            .contains("enough free memory")
        );
        assert!(
            cause(
                "pod_not_ready",
                "NotReady",
                &events(
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503"
                )
            )[0]
            .contains("probe is failing")
        );
        assert!(
            cause(
                "pod_not_ready",
                "NotReady",
                &events(
                    "FailedMount",
                    "MountVolume.SetUp failed for volume \"data\""
                )
            )[0]
            .contains("could not be mounted")
        );
        let node = Evidence {
            node: Some(NodeNote {
                name: "n1".into(),
                conditions: vec!["MemoryPressure=True".into()],
                allocatable_memory: String::new(),
            }),
            ..Evidence::default()
        };
        assert_eq!(
            cause("pod_not_ready", "NotReady", &node),
            ["node n1 reports MemoryPressure=True"]
        );
        assert!(
            cause(
                "rollout_stuck",
                "ProgressDeadlineExceeded",
                &Evidence::default()
            )[0]
            .contains("not becoming available")
        );
        assert!(cause("pvc_usage", "SpaceUsage", &Evidence::default())[0].contains("filling up"));
        let cert = Evidence {
            facts: [("Issuer".to_string(), "CN=Let's Encrypt R3".to_string())].into(),
            ..Evidence::default()
        };
        assert!(
            cause("tls_cert_expiry", "ExpiresSoon", &cert)[0]
                .contains("issued by CN=Let's Encrypt R3")
        );
    }

    #[test]
    fn nothing_known_gives_no_hint() {
        assert!(
            hints(
                &alert("pod_crashes", "CrashLoopBackOff"),
                &Evidence::default()
            )
            .is_empty()
        );
        assert!(
            hints(
                &alert("pod_crashes", "CrashLoopBackOff"),
                &container("Completed", Some(0), "", "")
            )
            .is_empty()
        );
    }

    #[test]
    fn rule_names_are_unique() {
        let mut names: Vec<_> = RULES.iter().map(|r| r.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    /// docs/monitors.md's hint table lists the rules, in the table's order.
    #[test]
    fn the_hint_table_is_documented_in_order() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/monitors.md");
        let page = std::fs::read_to_string(path).unwrap();
        let documented: Vec<&str> = page
            .lines()
            .skip_while(|l| !l.starts_with("| rule |"))
            .skip(2)
            .take_while(|l| l.starts_with("| `"))
            .filter_map(|l| l.strip_prefix("| `")?.split_once('`').map(|(r, _)| r))
            .collect();
        let rules: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        assert_eq!(documented, rules, "docs/monitors.md's hint table");
    }
}
