//! Evidence that needs the API, collected when an alert is first sent: the object's recent
//! Warning events, the previous container's last log lines (opt-in), the node's conditions and
//! allocatable memory, a Job's failed pods, a stuck rollout's first failing pod.
//!
//! Every lookup runs at once, each within `evidence.budget`; one that fails or is late is left
//! out (logged at debug), so evidence never delays an alert past the budget nor stops it. At
//! most [`PARALLEL`] lookups are in flight across all alerts: in a burst of hundreds, they go
//! over connections already open instead of opening one each (a TLS handshake apiece that the
//! API server pays when it is busiest); the wait for a turn counts towards the budget. Then
//! the monitor's own evidence and the collected parts are filtered by `evidence.monitors`,
//! hinted, given commands, redacted and capped ([`finish`]).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

use super::{Caps, Container, EventNote, Evidence, NodeNote, commands, container, hints};
use crate::alert::Alert;
use crate::config::{Config, EvidencePart};
use crate::redact::{Redactor, secret_like};

/// Evidence lookups in flight at most, across all alerts.
pub const PARALLEL: usize = 16;

static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PARALLEL);

/// Runs `lookup` within `budget`, its wait for one of the [`PARALLEL`] turns included; `None`
/// when it fails or is late.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    budget: Duration,
    lookup: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    let turn = async {
        let _permit = LOOKUPS.acquire().await;
        lookup.await
    };
    match tokio::time::timeout(budget, turn).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(evidence = what, error = %e, "evidence lookup failed; left out");
            None
        }
        Err(_) => {
            tracing::debug!(
                evidence = what,
                "evidence lookup took longer than the budget; left out"
            );
            None
        }
    }
}

/// The evidence of `alert`: the monitor's own, completed from the API when `client` is given.
pub async fn collect(
    client: Option<&kube::Client>,
    config: &Config,
    redactor: &Redactor,
    alert: &Alert,
) -> Evidence {
    let settings = &config.evidence;
    let mut e = alert.evidence.clone();
    if let Some(client) = client {
        let budget = settings.budget.get();
        let wants = |p| settings.wants(&alert.key.monitor, p);
        let (events, log, node, facts) = tokio::join!(
            async {
                if wants(EvidencePart::Events) {
                    within("events", budget, events(client, alert)).await
                } else {
                    None
                }
            },
            async {
                if wants(EvidencePart::Log) && settings.logs.enabled {
                    within("log", budget, log(client, config, alert, &e)).await
                } else {
                    None
                }
            },
            async {
                if wants(EvidencePart::Node) {
                    within("node", budget, node(client, alert)).await.flatten()
                } else {
                    None
                }
            },
            async {
                if wants(EvidencePart::Facts) {
                    within("facts", budget, facts(client, alert)).await
                } else {
                    None
                }
            },
        );
        e.events = events.unwrap_or_default();
        e.log = log.unwrap_or_default();
        e.node = node;
        let (facts, failing) = facts.unwrap_or_default();
        e.facts.extend(facts);
        // A workload's alert has no container of its own: its first failing pod's explains it.
        if e.container.is_none() {
            e.container = failing;
        }
    }
    finish(config, redactor, alert, e)
}

/// Adds hints and commands, keeps the parts `evidence.monitors` asks for, redacts every secret
/// a channel is configured with and every secret-looking value, and caps the sizes.
pub fn finish(config: &Config, redactor: &Redactor, alert: &Alert, mut e: Evidence) -> Evidence {
    let settings = &config.evidence;
    let wants = |p| settings.wants(&alert.key.monitor, p);
    if !settings.logs.enabled {
        e.log.clear();
    }
    // Hints and commands read every part, also those left out of the message below.
    e.hints = if wants(EvidencePart::Hints) {
        hints::hints(alert, &e)
    } else {
        Vec::new()
    };
    e.commands = if wants(EvidencePart::Commands) {
        commands::commands(alert, &e)
    } else {
        Vec::new()
    };
    if !wants(EvidencePart::Container) {
        e.container = None;
    }
    if !wants(EvidencePart::Facts) {
        e.facts.clear();
    }
    if !wants(EvidencePart::Owners) {
        e.owners.clear();
    }
    if !wants(EvidencePart::Events) {
        e.events.clear();
    }
    if !wants(EvidencePart::Node) {
        e.node = None;
    }
    if !wants(EvidencePart::Log) || !settings.logs.enabled {
        e.log.clear();
    }
    let clean = |s: &mut String| *s = secret_like(&redactor.redact(s));
    e.log.iter_mut().for_each(clean);
    e.events.iter_mut().for_each(|ev| clean(&mut ev.message));
    if let Some(c) = e.container.as_mut() {
        clean(&mut c.message);
    }
    e.cap(&Caps {
        text: settings.text_bytes,
        log_bytes: settings.logs.max_bytes,
        events: settings.events,
        ..Caps::default()
    });
    e
}

/// The object's Warning events, newest first, one per reason and message.
async fn events(client: &kube::Client, alert: &Alert) -> kube::Result<Vec<EventNote>> {
    let k = &alert.key;
    let api: Api<Event> = if k.namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &k.namespace)
    };
    let fields = format!(
        "type=Warning,involvedObject.kind={},involvedObject.name={}",
        k.kind, k.name
    );
    // From the API server's watch cache, filtered in memory: a quorum read would list every
    // event of the namespace from etcd, once per alert of a burst.
    let list = api
        .list(&ListParams::default().match_any().fields(&fields))
        .await?;
    let mut events: Vec<Event> = list.items;
    let seen = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    events.sort_by_key(|e| std::cmp::Reverse(seen(e)));
    let mut out: Vec<EventNote> = Vec::new();
    for e in &events {
        let reason = e.reason.clone().unwrap_or_default();
        let message = e.message.clone().unwrap_or_default().trim().to_string();
        if out
            .iter()
            .any(|n| n.reason == reason && n.message == message)
        {
            continue;
        }
        out.push(EventNote {
            reason,
            message,
            count: e.count.unwrap_or(1),
            last_seen: seen(e).map(|t| t.to_string()).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The last lines of the previous run of the alert's container (the current one when it has
/// not restarted).
async fn log(
    client: &kube::Client,
    config: &Config,
    alert: &Alert,
    e: &Evidence,
) -> kube::Result<Vec<String>> {
    let k = &alert.key;
    let Some(c) = e.container.as_ref().filter(|_| k.kind == "Pod") else {
        return Ok(Vec::new());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), &k.namespace);
    let logs = &config.evidence.logs;
    let params = |previous| LogParams {
        container: Some(c.name.clone()),
        previous,
        tail_lines: Some(logs.lines as i64),
        // Room for the lines kept: cut to max_bytes later, after redaction.
        limit_bytes: Some((logs.max_bytes * 4) as i64),
        ..LogParams::default()
    };
    let text = match api.logs(&k.name, &params(c.restarts > 0)).await {
        Ok(t) => t,
        // No previous run (yet): the current one's log.
        Err(_) if c.restarts > 0 => api.logs(&k.name, &params(false)).await?,
        Err(err) => return Err(err),
    };
    Ok(text
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

/// The node of the alert (a pod's, or the Node itself): conditions that are not as they should
/// be, and allocatable memory.
async fn node(client: &kube::Client, alert: &Alert) -> kube::Result<Option<NodeNote>> {
    let name = match (alert.key.kind.as_str(), &alert.node) {
        ("Node", _) => alert.key.name.clone(),
        (_, Some(n)) => n.clone(),
        _ => return Ok(None),
    };
    // From the API server's watch cache, as the event list: no quorum read from etcd per alert
    // of a burst, when etcd is busiest.
    let node = Api::<Node>::all(client.clone())
        .get_with(&name, &kube::api::GetParams::any())
        .await?;
    let status = node.status.unwrap_or_default();
    let conditions = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            if c.type_ == "Ready" {
                c.status != "True"
            } else {
                c.status == "True"
            }
        })
        .map(|c| format!("{}={}", c.type_, c.status))
        .collect();
    let allocatable_memory = status
        .allocatable
        .and_then(|a| a.get("memory").map(|q| q.0.clone()))
        .unwrap_or_default();
    Ok(Some(NodeNote {
        name,
        conditions,
        allocatable_memory,
    }))
}

/// Facts that need a list: a Job's failed pods, the first failing pod of a stuck Deployment
/// rollout (from its new ReplicaSet), a StatefulSet or a DaemonSet; and the failing container of
/// the first of them.
async fn facts(
    client: &kube::Client,
    alert: &Alert,
) -> kube::Result<(
    std::collections::BTreeMap<String, String>,
    Option<Container>,
)> {
    let k = &alert.key;
    let mut out = std::collections::BTreeMap::new();
    let mut first = None;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &k.namespace);
    // A StatefulSet's or DaemonSet's pods have no label naming it: they are its by controller
    // reference, so the namespace's pods are listed and filtered.
    let owned = matches!(k.kind.as_str(), "StatefulSet" | "DaemonSet");
    let selector = match (k.kind.as_str(), k.monitor.as_str()) {
        ("Job", _) => format!("job-name={}", k.name),
        ("StatefulSet" | "DaemonSet", _) => String::new(),
        ("Deployment", "rollout_stuck") => match alert.fields.get("New ReplicaSet") {
            Some(rs) => match rs.rsplit_once('-') {
                Some((_, hash)) => format!("pod-template-hash={hash}"),
                None => return Ok((out, None)),
            },
            None => return Ok((out, None)),
        },
        _ => return Ok((out, None)),
    };
    let list = pods
        .list(&ListParams::default().match_any().labels(&selector))
        .await?;
    let mut failing: Vec<String> = Vec::new();
    let ours = |p: &&Pod| {
        !owned
            || p.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.kind == k.kind && o.name == k.name)
    };
    for p in list.items.iter().filter(ours) {
        if let Some((why, container)) = why_failing(p) {
            failing.push(format!("{}: {why}", p.name_any()));
            first = first.or(container);
        }
    }
    if !failing.is_empty() {
        let label = if k.kind == "Job" {
            "Failed pods"
        } else {
            "First failing pod"
        };
        let shown = if k.kind == "Job" {
            failing
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            failing[0].clone()
        };
        out.insert(label.to_string(), shown);
    }
    Ok((out, first))
}

/// Why a pod is failing, from its containers: `server Error (exit code 1)`,
/// `server ImagePullBackOff`; with that container's evidence.
fn why_failing(pod: &Pod) -> Option<(String, Option<Container>)> {
    let status = pod.status.as_ref()?;
    let init = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| (c, true));
    for (c, is_init) in init.chain(
        status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| (c, false)),
    ) {
        let evidence = || Some(container::of(pod, c, is_init));
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(r) = w
                .reason
                .as_deref()
                .filter(|r| *r != "ContainerCreating" && *r != "PodInitializing")
        {
            return Some((format!("{} {r}", c.name), evidence()));
        }
        let t = state
            .and_then(|s| s.terminated.as_ref())
            .or(c.last_state.as_ref().and_then(|s| s.terminated.as_ref()));
        if let Some(t) = t.filter(|t| t.exit_code != 0) {
            let why = format!(
                "{} {} (exit code {})",
                c.name,
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            );
            return Some((why, evidence()));
        }
    }
    (status.phase.as_deref() == Some("Failed")).then(|| {
        let why = status
            .reason
            .clone()
            .unwrap_or_else(|| "Failed".to_string());
        (why, None)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKey, Severity};
    use crate::evidence::Container;

    fn oom() -> Alert {
        let mut a = Alert::new(
            AlertKey::new("pod_crashes", "shop", "Pod", "api-1", "OOMKilled"),
            Severity::Warning,
            "api-1/server OOMKilled",
            jiff::Timestamp::UNIX_EPOCH,
        );
        a.node = Some("n1".into());
        a.evidence.container = Some(Container {
            name: "server".into(),
            reason: "OOMKilled".into(),
            exit_code: Some(137),
            restarts: 2,
            ..Container::default()
        });
        a
    }

    /// An API server that accepts connections and never answers, and how many it accepted.
    async fn silent_server() -> (kube::Client, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let url = format!("http://{addr}").parse().unwrap();
        (
            kube::Client::try_from(kube::Config::new(url)).unwrap(),
            accepted,
        )
    }

    /// Logs on, so that every alert needs three lookups, and a 300 ms budget.
    fn budget_300ms() -> Config {
        crate::config::load(
            "channels: {log: {type: log}}\nrouting: {default: [log]}\nevidence: {budget: 300ms, logs: {enabled: true}}\n",
            &Default::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_burst_of_alerts_keeps_the_lookups_in_flight_bounded_and_each_within_budget() {
        let (client, accepted) = silent_server().await;
        let config = budget_300ms();
        let redactor = Redactor::for_config(&config);
        let alert = oom();
        // 40 alerts, 3 API lookups each (events, log, node): 120 without the bound.
        let burst = (0..40).map(|_| collect(Some(&client), &config, &redactor, &alert));
        let all = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::future::join_all(burst),
        )
        .await
        .expect("every collection ends within its budget, turns included");
        assert_eq!(all.len(), 40);
        assert!(all.iter().all(|e| e.container.is_some()));
        let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!(opened > 0 && opened <= PARALLEL, "{opened} connections");
    }

    #[tokio::test]
    async fn a_silent_api_delays_the_alert_by_the_budget_at_most_and_loses_nothing_of_its_own() {
        let (client, _) = silent_server().await;
        let config = budget_300ms();
        let started = std::time::Instant::now();
        let e = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            collect(
                Some(&client),
                &config,
                &Redactor::for_config(&config),
                &oom(),
            ),
        )
        .await
        .expect("collection ends within its budget");
        let took = started.elapsed();
        assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
        assert!(took < std::time::Duration::from_secs(3), "{took:?}");
        // The API parts are left out; the monitor's own evidence, hints and commands are there.
        assert!(e.events.is_empty() && e.log.is_empty() && e.node.is_none());
        assert_eq!(e.container.as_ref().unwrap().exit_code, Some(137));
        assert!(e.hints[0].cause.contains("no memory limit"), "{e:?}");
        assert_eq!(
            e.commands[0],
            "kubectl -n shop logs api-1 -c server --previous"
        );
    }

    #[test]
    fn a_channel_secret_in_a_container_message_is_redacted() {
        let mut secrets = crate::config::SecretMap::new();
        secrets.insert("TOKEN".into(), "s3cr3t-hook-token".into());
        let config = crate::config::load(
            "channels: {hook: {type: webhook, url: 'https://hooks.example/x', headers: {Authorization: $TOKEN}}}\nrouting: {default: [hook]}\n",
            &secrets,
        )
        .unwrap();
        let mut alert = oom();
        alert.evidence.container.as_mut().unwrap().message =
            "posting to hooks.example with s3cr3t-hook-token".into();
        let e = finish(
            &config,
            &Redactor::for_config(&config),
            &alert,
            alert.evidence.clone(),
        );
        assert_eq!(
            e.container.unwrap().message,
            "posting to hooks.example with <redacted>"
        );
    }

    #[tokio::test]
    async fn per_monitor_parts_leave_the_others_out() {
        let config = crate::config::load(
            "channels: {log: {type: log}}\nrouting: {default: [log]}\nevidence: {monitors: {pod_crashes: [hints]}}\n",
            &Default::default(),
        )
        .unwrap();
        let e = collect(None, &config, &Redactor::default(), &oom()).await;
        assert!(e.container.is_none() && e.commands.is_empty(), "{e:?}");
        assert_eq!(e.hints.len(), 1, "{e:?}");
    }

    #[test]
    fn unknown_parts_and_monitors_are_errors_that_name_the_field() {
        for (yaml, want) in [
            (
                "evidence: {monitors: {pod_crash: [hints]}}",
                "evidence.monitors.pod_crash",
            ),
            (
                "evidence: {monitors: {pod_crashes: [hint]}}",
                "evidence.monitors.pod_crashes",
            ),
            ("evidence: {budget: 0s}", "evidence.budget"),
            ("evidence: {logs: {lines: 0}}", "evidence.logs.lines"),
        ] {
            let text =
                format!("channels: {{log: {{type: log}}}}\nrouting: {{default: [log]}}\n{yaml}\n");
            let err = crate::config::load(&text, &Default::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }
}
