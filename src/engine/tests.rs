use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::alert::{Alert, AlertKey, Finding, Severity, State};
use crate::config::{SecretMap, load};

const BASE: &str = r#"
channels: {ops: {type: log}, oncall: {type: log}, digest: {type: log}}
routing:
  default: [ops]
  rules:
    - match: {severity: [critical]}
      channels: [oncall, ops]
dedupe:
  window: 30m
  digest: {severities: [info], interval: 15m}
"#;

fn engine(extra: &str) -> Engine {
    let c = load(&format!("{BASE}{extra}"), &SecretMap::new()).expect("valid config");
    Engine::new(Settings::from_config(&c).unwrap())
}

fn t(mins: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap() + SignedDuration::from_mins(mins)
}

fn key(name: &str) -> AlertKey {
    AlertKey::new("pod_crashes", "shop", "Pod", name, "CrashLoopBackOff")
}

fn firing(name: &str, sev: Severity) -> Alert {
    Alert::new(key(name), sev, format!("{name} crashing"), t(0))
}

/// Findings that all fire.
fn found(alerts: Vec<Alert>) -> Vec<Finding> {
    alerts.into_iter().map(Finding::firing).collect()
}

fn sent(o: &Outcome) -> Vec<(String, State, String)> {
    sent_as(o, |a| a.key.name.clone())
}

/// (channel, state, what `show` says of the alert) of everything sent.
fn sent_as(o: &Outcome, show: impl Fn(&Alert) -> String) -> Vec<(String, State, String)> {
    o.dispatches
        .iter()
        .flat_map(|d| {
            d.notifications.iter().map(|n| {
                (
                    d.channel.clone(),
                    n.notification.state,
                    show(&n.notification.alert),
                )
            })
        })
        .collect()
}

#[test]
fn one_shot_dedupes_inside_the_window_and_fires_after_it() {
    let mut e = engine("");
    let oom = firing("a", Severity::Warning).one_shot();
    assert_eq!(sent(&e.submit(oom.clone(), t(0))).len(), 1);
    let again = e.submit(oom.clone(), t(29));
    assert!(again.dispatches.is_empty());
    assert!(matches!(again.decisions[0], Decision::Deduped { .. }));
    // Exactly at the window's end the key may fire again.
    assert_eq!(sent(&e.submit(oom.clone(), t(30))).len(), 1);
    // One-shot alerts never enter the active set, so nothing ever resolves them.
    assert!(!e.is_active(&oom.key));
    assert!(e.resolve(&oom.key, t(31)).dispatches.is_empty());
}

#[test]
fn resolvable_fires_once_while_active_then_resolves_to_the_same_channels() {
    let mut e = engine("");
    let a = firing("a", Severity::Critical);
    let first = e.submit(a.clone(), t(0));
    assert_eq!(
        sent(&first),
        vec![
            ("oncall".into(), State::Firing, "a".into()),
            ("ops".into(), State::Firing, "a".into())
        ]
    );
    // Still active an hour later: no repeat, even outside the window.
    assert!(e.submit(a.clone(), t(60)).dispatches.is_empty());
    let res = e.resolve(&a.key, t(61));
    assert_eq!(
        sent(&res),
        vec![
            ("oncall".into(), State::Resolved, "a".into()),
            ("ops".into(), State::Resolved, "a".into())
        ]
    );
    assert_eq!(
        res.dispatches[0].notifications[0].notification.alert.key, a.key,
        "same key on both sides"
    );
    assert!(!e.is_active(&a.key));
}

#[test]
fn an_escalation_notifies_again_and_the_resolution_reaches_every_channel_told() {
    let mut e = engine("");
    let warn = firing("a", Severity::Warning);
    assert_eq!(
        sent(&e.submit(warn.clone(), t(0))),
        vec![("ops".into(), State::Firing, "a".into())]
    );
    assert!(
        e.submit(warn.clone(), t(1)).dispatches.is_empty(),
        "same severity: silent"
    );
    let crit = firing("a", Severity::Critical);
    assert_eq!(
        sent(&e.submit(crit.clone(), t(2))),
        vec![
            ("oncall".into(), State::Firing, "a".into()),
            ("ops".into(), State::Firing, "a".into())
        ]
    );
    assert!(
        e.submit(crit, t(3)).dispatches.is_empty(),
        "still critical: silent"
    );
    assert!(
        e.submit(warn, t(4)).dispatches.is_empty(),
        "easing back is not news"
    );
    assert_eq!(
        sent(&e.resolve(&key("a"), t(5))),
        vec![
            ("ops".into(), State::Resolved, "a".into()),
            ("oncall".into(), State::Resolved, "a".into())
        ]
    );
}

#[test]
fn resolve_of_an_unknown_key_is_a_no_op() {
    let mut e = engine("");
    let o = e.resolve(&key("never"), t(0));
    assert_eq!(o, Outcome::default());
}

#[test]
fn reconcile_resolves_keys_that_left_the_firing_set() {
    let mut e = engine("");
    let a = firing("a", Severity::Warning);
    let b = firing("b", Severity::Warning);
    let o = e.reconcile(
        "pod_crashes",
        &Scope::All,
        found(vec![a.clone(), b.clone()]),
        t(0),
    );
    assert_eq!(sent(&o).len(), 2);
    // Same set again: nothing.
    assert!(
        e.reconcile(
            "pod_crashes",
            &Scope::All,
            found(vec![a.clone(), b.clone()]),
            t(1)
        )
        .dispatches
        .is_empty()
    );
    // b cleared.
    let o = e.reconcile("pod_crashes", &Scope::All, found(vec![a.clone()]), t(2));
    assert_eq!(sent(&o), vec![("ops".into(), State::Resolved, "b".into())]);
    // Another monitor's reconcile never touches pod_crashes alerts.
    assert!(
        e.reconcile("pvc_usage", &Scope::All, found(vec![]), t(3))
            .dispatches
            .is_empty()
    );
    assert!(e.is_active(&a.key));
}

#[test]
fn reconcile_with_object_scope_only_touches_that_object() {
    let mut e = engine("");
    e.reconcile(
        "pod_crashes",
        &Scope::All,
        found(vec![
            firing("a", Severity::Warning),
            firing("b", Severity::Warning),
        ]),
        t(0),
    );
    let o = e.reconcile(
        "pod_crashes",
        &Scope::object("shop", "Pod", "a"),
        found(vec![]),
        t(1),
    );
    assert_eq!(sent(&o), vec![("ops".into(), State::Resolved, "a".into())]);
    assert!(e.is_active(&key("b")));
    let o = e.reconcile(
        "pod_crashes",
        &Scope::Namespace("other".into()),
        found(vec![]),
        t(2),
    );
    assert!(o.dispatches.is_empty());
}

#[test]
fn no_resolutions_when_resolution_is_disabled() {
    let mut e = engine("resolution: {enabled: false}\n");
    let a = firing("a", Severity::Warning);
    assert_eq!(
        sent(&e.reconcile("pod_crashes", &Scope::All, found(vec![a.clone()]), t(0))).len(),
        1
    );
    let o = e.reconcile("pod_crashes", &Scope::All, found(vec![]), t(1));
    assert!(o.dispatches.is_empty());
    assert!(matches!(o.decisions[0], Decision::ResolvedSilently { .. }));
    // Re-firing inside the window is a repeat the user already has: dropped.
    assert!(e.submit(a.clone(), t(5)).dispatches.is_empty());
    e.resolve(&a.key, t(6));
    assert_eq!(
        sent(&e.submit(a, t(31))).len(),
        1,
        "outside the window it fires again"
    );
}

#[test]
fn with_resolutions_a_refire_after_resolve_is_sent() {
    let mut e = engine("");
    let a = firing("a", Severity::Warning);
    e.submit(a.clone(), t(0));
    e.resolve(&a.key, t(1));
    assert_eq!(
        sent(&e.submit(a, t(2))),
        vec![("ops".into(), State::Firing, "a".into())]
    );
}

#[test]
fn muted_alerts_never_resolve_loudly() {
    let mut e = engine("");
    let c = load(BASE, &SecretMap::new()).unwrap();
    let mut routing = c.routing.clone();
    routing.rules.insert(
        0,
        crate::config::Rule {
            matcher: Default::default(),
            channels: vec![],
        },
    );
    let mut s = e.settings().clone();
    s.router = Router::new(&routing).unwrap();
    e.reconfigure(s);
    let a = firing("a", Severity::Warning);
    let o = e.submit(a.clone(), t(0));
    assert!(o.dispatches.is_empty());
    assert!(matches!(
        o.decisions[0],
        Decision::Muted { rule: Some(0), .. }
    ));
    assert!(e.resolve(&a.key, t(1)).dispatches.is_empty());
}

#[test]
fn digest_collects_per_channel_and_flushes_on_interval() {
    let mut e = engine("");
    let i1 = firing("i1", Severity::Info);
    let i2 = firing("i2", Severity::Info).one_shot();
    let w = firing("w", Severity::Warning);
    let o = e.submit(i1.clone(), t(0));
    assert!(o.dispatches.is_empty(), "info is digested");
    assert!(matches!(&o.decisions[0], Decision::Digested { channel, .. } if channel == "ops"));
    assert_eq!(
        sent(&e.submit(w, t(1))).len(),
        1,
        "warning goes out at once"
    );
    e.submit(i2, t(5));
    e.resolve(&i1.key, t(10));
    assert_eq!(e.next_digest_due(), Some(t(15)));
    assert!(e.tick(t(14)).dispatches.is_empty(), "not due yet");
    let o = e.tick(t(15));
    assert_eq!(o.dispatches.len(), 1);
    let d = &o.dispatches[0];
    assert_eq!((d.channel.as_str(), d.kind), ("ops", DispatchKind::Digest));
    assert_eq!(
        sent(&o),
        vec![
            ("ops".into(), State::Firing, "i1".into()),
            ("ops".into(), State::Firing, "i2".into()),
            ("ops".into(), State::Resolved, "i1".into()),
        ]
    );
    assert!(e.tick(t(40)).dispatches.is_empty(), "queue emptied");
    assert_eq!(e.next_digest_due(), None);
}

#[test]
fn snapshot_restore_does_not_refire_and_keeps_pending_resolutions() {
    let mut e = engine("");
    let a = firing("a", Severity::Critical);
    let info = firing("i", Severity::Info);
    let oom = firing("o", Severity::Warning).one_shot();
    e.submit(a.clone(), t(0));
    e.submit(info.clone(), t(0));
    e.submit(oom.clone(), t(0));
    e.set_reference(&a.key, "ops", "1700000000.000100".into());

    // Through JSON, as kpulse-state stores it.
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut restarted = engine("");
    restarted.restore(serde_json::from_str(&json).unwrap());

    // The condition still holds after the restart: nothing is sent again.
    let o = restarted.reconcile(
        "pod_crashes",
        &Scope::All,
        found(vec![a.clone(), info.clone()]),
        t(2),
    );
    assert!(o.dispatches.is_empty(), "{:?}", o.dispatches);
    assert!(
        restarted.submit(oom, t(3)).dispatches.is_empty(),
        "one-shot still deduped"
    );
    // It clears: exactly one resolution per channel, threaded under the firing message.
    let o = restarted.reconcile("pod_crashes", &Scope::All, found(vec![info]), t(4));
    assert_eq!(
        sent(&o),
        vec![
            ("oncall".into(), State::Resolved, "a".into()),
            ("ops".into(), State::Resolved, "a".into())
        ]
    );
    assert_eq!(
        o.dispatches[1].notifications[0].reference.as_deref(),
        Some("1700000000.000100")
    );
    // The digest queued before the restart is still sent.
    let o = restarted.tick(t(15));
    assert_eq!(sent(&o), vec![("ops".into(), State::Firing, "i".into())]);
}

/// Alerts still firing are sent again to a channel with a resend interval, and only to it.
#[test]
fn active_alerts_are_resent_to_alertmanager_channels_until_they_resolve() {
    let yaml = r#"
channels:
  ops: {type: log}
  am: {type: alertmanager, url: "https://am.example", resend_interval: 1m}
routing: {default: [ops, am]}
dedupe: {window: 30m, digest: {severities: [info], interval: 15m}}
"#;
    let c = load(yaml, &SecretMap::new()).expect("valid config");
    let mut e = Engine::new(Settings::from_config(&c).unwrap());
    let at = |secs: i64| t(0) + SignedDuration::from_secs(secs);
    // The first tick of a fresh engine (or of a new leader) resends at once: nothing yet.
    assert!(e.tick(at(0)).dispatches.is_empty());
    e.submit(firing("a", Severity::Critical), at(1));
    e.submit(firing("b", Severity::Warning), at(2));
    // Info is digested: its firing waits in the digest and is not resent before it is sent.
    e.submit(firing("quiet", Severity::Info), at(3));
    assert!(e.tick(at(59)).dispatches.is_empty(), "not due yet");

    let resend = e.tick(at(60));
    assert_eq!(resend.dispatches.len(), 1);
    let d = &resend.dispatches[0];
    assert_eq!((d.channel.as_str(), d.kind), ("am", DispatchKind::Resend));
    assert_eq!(
        sent(&resend),
        vec![
            ("am".into(), State::Firing, "a".into()),
            ("am".into(), State::Firing, "b".into())
        ]
    );
    assert!(d.notifications.iter().all(|n| n.notification.at == at(60)));
    assert!(
        resend.decisions.is_empty(),
        "a resend is not a new decision"
    );
    assert!(e.tick(at(61)).dispatches.is_empty());

    e.resolve(&key("a"), at(90));
    assert_eq!(
        sent(&e.tick(at(120))),
        vec![("am".into(), State::Firing, "b".into())]
    );
    // The digest goes out at 15m (not resent in the same tick); from then on the info alert is
    // resent too.
    let flushed = e.tick(at(15 * 60 + 3));
    assert_eq!(
        sent(&flushed),
        vec![
            ("am".into(), State::Firing, "b".into()),
            ("am".into(), State::Firing, "quiet".into()),
            ("ops".into(), State::Firing, "quiet".into()),
        ]
    );
    assert_eq!(
        sent(&e.tick(at(15 * 60 + 63))),
        vec![
            ("am".into(), State::Firing, "b".into()),
            ("am".into(), State::Firing, "quiet".into()),
        ]
    );

    // A standby's ticks are dropped by the pipeline; once it leads, the next tick resends.
    e.resend_now();
    assert_eq!(sent(&e.tick(at(15 * 60 + 64))).len(), 2);

    // Restored on another replica: its first tick resends what is active.
    let mut standby = Engine::new(Settings::from_config(&c).unwrap());
    standby.restore(e.snapshot());
    assert_eq!(
        sent(&standby.tick(at(15 * 60 + 4))),
        vec![
            ("am".into(), State::Firing, "b".into()),
            ("am".into(), State::Firing, "quiet".into()),
        ]
    );
}

#[test]
fn explain_says_rule_and_digest() {
    let e = engine("");
    let x = e.explain(&firing("a", Severity::Critical), t(0));
    assert_eq!(x.route.rule, Some(0));
    assert_eq!(
        x.digest,
        vec![("oncall".into(), false), ("ops".into(), false)]
    );
    let x = e.explain(&firing("a", Severity::Info), t(0));
    assert_eq!(x.route.rule, None);
    assert_eq!(x.digest, vec![("ops".into(), true)]);
}

#[derive(Debug, Clone)]
enum Op {
    Submit(u8, bool, u8),
    Resolve(u8),
    Reconcile(Vec<u8>),
    Tick,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, any::<bool>(), 0u8..3).prop_map(|(k, r, s)| Op::Submit(k, r, s)),
        (0u8..6).prop_map(Op::Resolve),
        proptest::collection::vec(0u8..6, 0..4).prop_map(Op::Reconcile),
        Just(Op::Tick),
        Just(Op::Restart),
    ]
}

proptest! {
    /// Whatever monitors report, and in whatever order, a `[RESOLVED]` is only ever sent for a key
    /// whose firing was sent to the same channel before (also across restarts), and at most once
    /// per firing.
    #[test]
    fn never_resolves_a_key_it_never_fired(ops in proptest::collection::vec(op(), 1..60), resolution in any::<bool>()) {
        // No digest, so every notification is visible when it is decided.
        let extra = if resolution { "" } else { "resolution: {enabled: false}\n" };
        let make = || {
            let yaml = format!("{}{extra}", BASE.replace("severities: [info]", "severities: []"));
            let c = load(&yaml, &SecretMap::new()).expect("valid config");
            Engine::new(Settings::from_config(&c).unwrap())
        };
        let mut e = make();
        // (channel, key) pairs whose resolvable firing was sent and not yet resolved.
        let mut open: BTreeSet<(String, AlertKey)> = BTreeSet::new();
        let sev = [Severity::Info, Severity::Warning, Severity::Critical];
        let mk = |k: u8, resolvable: bool, s: u8| {
            let mut a = firing(&format!("p{k}"), sev[s as usize]);
            a.resolvable = resolvable;
            a
        };
        let mut minute = 0;
        for op in ops {
            minute += 7;
            let now = t(minute);
            let o = match op {
                Op::Submit(k, r, s) => e.submit(mk(k, r, s), now),
                Op::Resolve(k) => e.resolve(&key(&format!("p{k}")), now),
                Op::Reconcile(ks) => e.reconcile("pod_crashes", &Scope::All, found(ks.iter().map(|k| mk(*k, true, 1)).collect()), now),
                Op::Tick => e.tick(now),
                Op::Restart => {
                    let snap = e.snapshot();
                    e = make();
                    e.restore(snap);
                    Outcome::default()
                }
            };
            for d in &o.dispatches {
                for n in &d.notifications {
                    let n = &n.notification;
                    let entry = (d.channel.clone(), n.alert.key.clone());
                    match n.state {
                        State::Firing if n.alert.resolvable => { open.insert(entry); }
                        State::Firing => {}
                        State::Resolved => {
                            prop_assert!(resolution, "resolution sent while disabled");
                            prop_assert!(open.remove(&entry), "resolved {:?} never fired there", entry);
                        }
                    }
                }
            }
        }
    }
}

fn workload(kind: &str, name: &str) -> Alert {
    let key = AlertKey::new("rollout_stuck", "shop", kind, name, "Stuck");
    Alert::new(key, Severity::Warning, format!("{kind} {name} stuck"), t(0))
}

#[test]
fn watches_of_several_kinds_feeding_one_monitor_never_resolve_each_others_alerts() {
    let mut e = engine("");
    let (deploy, sts) = (workload("Deployment", "api"), workload("StatefulSet", "db"));
    let kind = |k: &str| Scope::Kind(k.to_string());
    let mut notifications = Vec::new();
    // Three rounds of full re-evaluations, one per watch, each seeing only its own kind.
    for round in 0..3 {
        let now = t(round);
        for (scope, found_now) in [
            (kind("Deployment"), vec![deploy.clone()]),
            (kind("StatefulSet"), vec![sts.clone()]),
            (kind("DaemonSet"), vec![]),
        ] {
            let o = e.reconcile("rollout_stuck", &scope, found(found_now), now);
            notifications.extend(sent(&o));
        }
    }
    assert_eq!(
        notifications,
        vec![
            ("ops".into(), State::Firing, "api".into()),
            ("ops".into(), State::Firing, "db".into()),
        ],
        "exactly one firing each, no resolution while they hold"
    );
    // The Deployment is fixed: only its alert resolves.
    let o = e.reconcile("rollout_stuck", &kind("Deployment"), vec![], t(4));
    assert_eq!(
        sent(&o),
        vec![("ops".into(), State::Resolved, "api".into())]
    );
    assert!(e.is_active(&sts.key));
}

#[test]
fn a_holding_finding_keeps_an_active_alert_but_never_starts_one() {
    let mut e = engine("");
    let a = firing("a", Severity::Warning);
    let o = e.reconcile(
        "pod_crashes",
        &Scope::All,
        vec![Finding::holding(a.clone())],
        t(0),
    );
    assert!(
        o.dispatches.is_empty() && !e.is_active(&a.key),
        "a hold starts nothing"
    );
    e.reconcile("pod_crashes", &Scope::All, found(vec![a.clone()]), t(1));
    let o = e.reconcile(
        "pod_crashes",
        &Scope::All,
        vec![Finding::holding(a.clone())],
        t(2),
    );
    assert!(
        o.dispatches.is_empty() && e.is_active(&a.key),
        "a hold keeps it"
    );
    let o = e.reconcile("pod_crashes", &Scope::All, vec![], t(3));
    assert_eq!(sent(&o), vec![("ops".into(), State::Resolved, "a".into())]);
}

#[test]
fn a_resolution_repeats_what_fired_not_the_last_observed_state() {
    let mut e = engine("");
    let mut worst = firing("a", Severity::Critical);
    worst.title = "Deployment a: 0/10 replicas available".into();
    e.reconcile("pod_crashes", &Scope::All, found(vec![worst]), t(0));
    // Recovering: fewer unavailable, a lower severity. Nothing is sent for it.
    let mut better = firing("a", Severity::Warning);
    better.title = "Deployment a: 9/10 replicas available".into();
    let o = e.reconcile("pod_crashes", &Scope::All, found(vec![better]), t(1));
    assert!(o.dispatches.is_empty());
    let o = e.reconcile("pod_crashes", &Scope::All, vec![], t(2));
    let resolved: Vec<(Severity, String)> = o
        .dispatches
        .iter()
        .flat_map(|d| &d.notifications)
        .map(|n| {
            (
                n.notification.alert.severity,
                n.notification.alert.title.clone(),
            )
        })
        .collect();
    let fired = (
        Severity::Critical,
        "Deployment a: 0/10 replicas available".to_string(),
    );
    assert_eq!(
        resolved,
        vec![fired.clone(), fired],
        "oncall and ops, as fired"
    );
}

proptest! {
    /// A reconcile resolves only alerts inside its scope, and a holding finding never starts an
    /// alert, whatever the order of full and per-object passes over objects of several kinds.
    #[test]
    fn a_reconcile_resolves_only_inside_its_scope_and_holds_never_fire(
        ops in proptest::collection::vec(
            (0u8..4, proptest::collection::vec((0u8..3, 0u8..2, any::<bool>()), 0..5)),
            1..40,
        )
    ) {
        let kinds = ["Deployment", "StatefulSet"];
        let mut e = engine("");
        for (minute, (scope_choice, found_now)) in ops.into_iter().enumerate() {
            let scope = match scope_choice {
                0 | 1 => Scope::Kind(kinds[scope_choice as usize].to_string()),
                2 => Scope::object("shop", kinds[0], "w0"),
                _ => Scope::All,
            };
            let findings: Vec<Finding> = found_now
                .iter()
                .map(|(name, kind, hold)| {
                    let a = workload(kinds[*kind as usize], &format!("w{name}"));
                    if *hold { Finding::holding(a) } else { Finding::firing(a) }
                })
                .filter(|f| scope.covers(&f.alert.key))
                .collect();
            // Keys found only as holding (a key may also be found firing in the same pass).
            let keys = |hold: bool| -> BTreeSet<AlertKey> {
                findings.iter().filter(|f| f.hold_only == hold).map(|f| f.alert.key.clone()).collect()
            };
            let holds: BTreeSet<AlertKey> = keys(true).difference(&keys(false)).cloned().collect();
            let o = e.reconcile("rollout_stuck", &scope, findings, t(minute as i64));
            for n in o.dispatches.iter().flat_map(|d| &d.notifications) {
                let key = &n.notification.alert.key;
                match n.notification.state {
                    State::Resolved => prop_assert!(scope.covers(key), "{key} resolved outside {scope:?}"),
                    State::Firing => prop_assert!(!holds.contains(key), "{key} fired from a hold"),
                }
            }
        }
    }
}

fn replica(n: usize, reason: &str, resolvable: bool) -> Alert {
    let key = AlertKey::new("pod_crashes", "shop", "Pod", format!("api-{n}"), reason);
    let mut a = Alert::new(key, Severity::Warning, format!("api-{n} {reason}"), t(0))
        .owner("Deployment/api")
        .node(format!("n{}", n % 3));
    a.resolvable = resolvable;
    a
}

fn secs(s: i64) -> Timestamp {
    t(0) + SignedDuration::from_secs(s)
}

/// Titles of what was sent, with their state.
fn told(o: &Outcome) -> Vec<(State, String)> {
    o.dispatches
        .iter()
        .flat_map(|d| &d.notifications)
        .map(|n| (n.notification.state, n.notification.alert.title.clone()))
        .collect()
}

#[test]
fn ten_crashing_replicas_are_one_message_and_one_resolution() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let mut out = Vec::new();
    for n in 0..10 {
        let crash = found(vec![replica(n, "CrashLoopBackOff", true)]);
        out.extend(told(&e.reconcile(
            "pod_crashes",
            &Scope::object("shop", "Pod", format!("api-{n}")),
            crash,
            secs(n as i64),
        )));
        // The container's exit notice is the same thing, not a second message.
        out.extend(told(&e.submit(replica(n, "Error", false), secs(n as i64))));
    }
    out.extend(told(&e.tick(secs(29))));
    assert!(out.is_empty(), "nothing before group_wait: {out:?}");
    let first = told(&e.tick(secs(30)));
    assert_eq!(
        first,
        vec![(
            State::Firing,
            "Deployment api: 10 pods CrashLoopBackOff, Error on 3 nodes".to_string()
        )]
    );
    // The Deployment short of replicas is the same incident.
    let mut short = workload("Deployment", "api");
    short.key.monitor = "replicas_unavailable".into();
    assert!(
        told(&e.reconcile(
            "replicas_unavailable",
            &Scope::Kind("Deployment".into()),
            found(vec![short]),
            secs(31)
        ))
        .is_empty()
    );
    // Pods recover one by one: silence until the last one (and the Deployment) has.
    let mut resolved = Vec::new();
    for n in 0..10 {
        let scope = Scope::object("shop", "Pod", format!("api-{n}"));
        resolved.extend(told(&e.reconcile(
            "pod_crashes",
            &scope,
            vec![],
            secs(40 + n as i64),
        )));
    }
    assert!(
        resolved.is_empty(),
        "the Deployment is still short: {resolved:?}"
    );
    let o = e.reconcile(
        "replicas_unavailable",
        &Scope::Kind("Deployment".into()),
        vec![],
        secs(60),
    );
    assert_eq!(
        told(&o),
        vec![(
            State::Resolved,
            "Deployment api: 10 pods CrashLoopBackOff, Error on 3 nodes".to_string()
        )]
    );
    assert!(e.active().next().is_none(), "nothing left active");
    assert!(told(&e.tick(secs(400))).is_empty());
}

#[test]
fn a_workloads_own_alerts_fold_into_the_incident_of_its_pods_before_or_after_it_is_told() {
    // (monitor, kind, before the incident is told?)
    let cases = [
        ("rollout_stuck", "Deployment", true),
        ("rollout_stuck", "Deployment", false),
        ("replicas_unavailable", "Deployment", false),
        ("daemonset_unscheduled", "DaemonSet", true),
        ("rollout_stuck", "StatefulSet", false),
    ];
    for (monitor, kind, early) in cases {
        let mut e = engine("incidents: {group_wait: 30s}\n");
        let owner = format!("{kind}/api");
        let mut out = Vec::new();
        for n in 0..3 {
            let scope = Scope::object("shop", "Pod", format!("api-{n}"));
            let mut a = replica(n, "CrashLoopBackOff", true);
            a.owner = Some(owner.clone());
            out.extend(told(&e.reconcile(
                "pod_crashes",
                &scope,
                found(vec![a]),
                secs(1),
            )));
        }
        let mut own = workload(kind, "api");
        own.key.monitor = monitor.into();
        let at = if early { secs(10) } else { secs(40) };
        let scope = Scope::Kind(kind.into());
        let fire_own = |e: &mut Engine, alerts: Vec<Alert>, at| {
            told(&e.reconcile(monitor, &scope, found(alerts), at))
        };
        if early {
            out.extend(fire_own(&mut e, vec![own.clone()], at));
        }
        out.extend(told(&e.tick(secs(31))));
        if !early {
            out.extend(fire_own(&mut e, vec![own.clone()], at));
        }
        let title = format!("{kind} api: 3 pods CrashLoopBackOff on 3 nodes");
        assert_eq!(
            out,
            vec![(State::Firing, title.clone())],
            "{monitor} {kind} {early}"
        );
        // The pods recover; the incident waits for the workload's own alert, then resolves once.
        let mut resolved = Vec::new();
        for n in 0..3 {
            let scope = Scope::object("shop", "Pod", format!("api-{n}"));
            resolved.extend(told(&e.reconcile("pod_crashes", &scope, vec![], secs(50))));
        }
        assert!(resolved.is_empty(), "{monitor}: {resolved:?}");
        resolved.extend(fire_own(&mut e, vec![], secs(60)));
        assert_eq!(resolved, vec![(State::Resolved, title)], "{monitor} {kind}");
        assert!(e.active().next().is_none(), "nothing left active");
    }
}

#[test]
fn a_workload_alert_with_no_incident_of_its_pods_is_sent_on_its_own() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let scope = Scope::Kind("Deployment".into());
    let stuck = workload("Deployment", "web");
    let o = e.reconcile("rollout_stuck", &scope, found(vec![stuck]), secs(0));
    assert_eq!(
        told(&o),
        vec![(State::Firing, "Deployment web stuck".into())]
    );
}

#[test]
fn a_single_pod_is_told_as_itself_after_group_wait() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let a = replica(1, "OOMKilled", true);
    assert!(e.submit(a.clone(), secs(0)).dispatches.is_empty());
    let o = e.tick(secs(30));
    assert_eq!(
        told(&o),
        vec![(State::Firing, "api-1 OOMKilled".to_string())]
    );
    let o = e.resolve(&a.key, secs(40));
    assert_eq!(
        told(&o),
        vec![(State::Resolved, "api-1 OOMKilled".to_string())]
    );
}

#[test]
fn an_incident_cleared_within_group_wait_says_nothing_but_its_notices_still_go_out() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let a = replica(1, "CrashLoopBackOff", true);
    e.submit(a.clone(), secs(0));
    assert!(e.resolve(&a.key, secs(5)).dispatches.is_empty());
    assert!(
        e.tick(secs(60)).dispatches.is_empty(),
        "a condition gone within group_wait"
    );
    for n in 0..3 {
        e.submit(replica(n, "Error", false), secs(100));
    }
    let o = e.tick(secs(130));
    assert_eq!(
        told(&o),
        vec![(
            State::Firing,
            "Deployment api: 3 pods Error on 3 nodes".to_string()
        )]
    );
    let sent = &o.dispatches[0].notifications[0].notification.alert;
    assert!(!sent.resolvable, "notices only: nothing to resolve");
    assert!(e.tick(secs(1000)).dispatches.is_empty());
}

#[test]
fn a_grown_incident_sends_one_update_per_group_interval() {
    let mut e = engine("incidents: {group_wait: 30s, group_interval: 5m}\n");
    for n in 0..2 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(0));
    }
    assert_eq!(told(&e.tick(secs(30))).len(), 1);
    for n in 2..5 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(60));
    }
    assert!(
        told(&e.tick(secs(329))).is_empty(),
        "not before group_interval"
    );
    assert_eq!(
        told(&e.tick(secs(330))),
        vec![(
            State::Firing,
            "Deployment api: 5 pods CrashLoopBackOff on 3 nodes".to_string()
        )]
    );
    assert!(told(&e.tick(secs(1000))).is_empty(), "nothing new");
}

#[test]
fn a_restart_in_the_middle_of_an_incident_sends_nothing_twice() {
    let make = || engine("incidents: {group_wait: 30s}\n");
    let mut e = make();
    for n in 0..4 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(0));
    }
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e = make();
    e.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(
        told(&e.tick(secs(30))).len(),
        1,
        "the pending incident survived"
    );
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e = make();
    e.restore(serde_json::from_str(&json).unwrap());
    // The monitors' first full pass after the restart finds the same pods: silence.
    let still = found(
        (0..4)
            .map(|n| replica(n, "CrashLoopBackOff", true))
            .collect(),
    );
    assert!(
        e.reconcile("pod_crashes", &Scope::Kind("Pod".into()), still, secs(40))
            .dispatches
            .is_empty()
    );
    let o = e.reconcile("pod_crashes", &Scope::Kind("Pod".into()), vec![], secs(50));
    assert_eq!(told(&o).len(), 1);
    assert_eq!(told(&o)[0].0, State::Resolved);
}

#[test]
fn incidents_switched_off_send_every_pod_alert_on_its_own() {
    let mut e = engine("incidents: {enabled: false}\n");
    let sent: usize = (0..3)
        .map(|n| told(&e.submit(replica(n, "CrashLoopBackOff", true), secs(0))).len())
        .sum();
    assert_eq!(sent, 3);
}

#[test]
fn incidents_of_several_workloads_and_a_bare_pod_stay_apart_over_several_ticks() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let pod = |owner: Option<&str>, name: &str| {
        let key = AlertKey::new("pod_crashes", "shop", "Pod", name, "CrashLoopBackOff");
        let mut a = Alert::new(key, Severity::Warning, format!("{name} crashing"), t(0)).node("n1");
        a.owner = owner.map(str::to_string);
        a
    };
    let pods = [
        pod(Some("Deployment/api"), "api-1"),
        pod(Some("Deployment/api"), "api-2"),
        pod(Some("StatefulSet/db"), "db-0"),
        pod(Some("StatefulSet/db"), "db-1"),
        pod(None, "bare"),
    ];
    let mut out = Vec::new();
    // Every pod still crashing at each full pass of the pod watch, and a tick after each.
    for round in 0..4 {
        let now = secs(20 * round);
        out.extend(told(&e.reconcile(
            "pod_crashes",
            &Scope::Kind("Pod".into()),
            found(pods.to_vec()),
            now,
        )));
        out.extend(told(&e.tick(now)));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        out,
        vec![
            (
                State::Firing,
                "Deployment api: 2 pods CrashLoopBackOff on 1 node".to_string()
            ),
            (
                State::Firing,
                "StatefulSet db: 2 pods CrashLoopBackOff on 1 node".to_string()
            ),
            (State::Firing, "bare crashing".to_string()),
        ]
    );
    // api recovers; db and the bare pod still crash: only api's incident resolves.
    let o = e.reconcile(
        "pod_crashes",
        &Scope::Kind("Pod".into()),
        found(pods[2..].to_vec()),
        secs(100),
    );
    assert_eq!(
        told(&o),
        vec![(
            State::Resolved,
            "Deployment api: 2 pods CrashLoopBackOff on 1 node".to_string()
        )]
    );
}

#[test]
fn severity_rules_set_the_severity_before_routing_and_the_first_match_wins() {
    let mut e = engine(
        r#"incidents: {enabled: false}
severity_rules:
  - match: {monitor: pod_crashes, reason: OOMKilled}
    severity: critical
  - match: {owner_kind: StatefulSet}
    severity: critical
  - match: {monitor: pod_crashes}
    severity: info
"#,
    );
    let oom = AlertKey::new("pod_crashes", "shop", "Pod", "api-1", "OOMKilled");
    let o = e.submit(
        Alert::new(oom, Severity::Warning, "api-1 OOMKilled", t(0)),
        t(0),
    );
    // Critical pages: routed by the rule on severity, to oncall and ops, sent as critical.
    let mut channels: Vec<_> = o.dispatches.iter().map(|d| d.channel.as_str()).collect();
    channels.sort();
    assert_eq!(channels, ["oncall", "ops"]);
    assert!(
        o.dispatches
            .iter()
            .all(|d| d.notifications[0].notification.alert.severity == Severity::Critical)
    );
    // A StatefulSet's crash loop is critical too (second rule); a Deployment's falls to the
    // third rule and becomes info, which the digest takes.
    let db = firing("db-0", Severity::Warning).owner("StatefulSet/db");
    let o = e.submit(db, t(1));
    assert_eq!(
        o.dispatches[0].notifications[0].notification.alert.severity,
        Severity::Critical
    );
    let web = firing("web-1", Severity::Warning).owner("Deployment/web");
    let o = e.submit(web.clone(), t(2));
    assert!(o.dispatches.is_empty(), "info waits for the digest: {o:?}");
    assert_eq!(e.explain(&web, t(0)).severity, Severity::Info);
    assert_eq!(e.explain(&web, t(0)).severity_rule, Some(2));
    // An alert no rule matches keeps the monitor's severity.
    let other = Alert::new(
        AlertKey::new(
            "job_failed",
            "shop",
            "Job",
            "nightly",
            "BackoffLimitExceeded",
        ),
        Severity::Warning,
        "nightly failed",
        t(3),
    );
    assert_eq!(e.explain(&other, t(0)).severity, Severity::Warning);
    assert_eq!(e.explain(&other, t(0)).severity_rule, None);
}

#[test]
fn severity_rules_hold_across_full_passes_among_incidents_and_bare_pods() {
    // Three OOMKilled replicas of one Deployment (an incident), a StatefulSet's pod and a bare
    // pod crash-looping, reconciled as a watch does every pass: the rule's severity is what is sent,
    // once, and a later pass (the monitor again reports `warning`) is no escalation and sends
    // nothing.
    let mut e = engine(
        r#"incidents: {group_wait: 30s}
severity_rules:
  - match: {monitor: pod_crashes, reason: OOMKilled}
    severity: critical
  - match: {owner_kind: StatefulSet}
    severity: critical
"#,
    );
    let pass = |e: &mut Engine, at: Timestamp| {
        let mut alerts: Vec<Alert> = (0..3).map(|n| replica(n, "OOMKilled", true)).collect();
        alerts.push(firing("db-0", Severity::Warning).owner("StatefulSet/db"));
        alerts.push(firing("lonely", Severity::Warning));
        let mut out =
            told(&e.reconcile("pod_crashes", &Scope::Kind("Pod".into()), found(alerts), at));
        out.extend(told(&e.tick(at)));
        out
    };
    // A pod without a workload is told at once; the workloads' pods wait for group_wait.
    let first = pass(&mut e, secs(0));
    assert_eq!(first, [(State::Firing, "lonely crashing".to_string())]);
    let sent = pass(&mut e, secs(31));
    // Both are critical by a rule, so each goes to oncall and ops: two messages, four sends.
    let titles: BTreeSet<&str> = sent.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        (sent.len(), titles),
        (
            4,
            BTreeSet::from([
                "Deployment api: 3 pods OOMKilled on 3 nodes",
                "db-0 crashing"
            ])
        )
    );
    let active: Vec<(String, Severity)> = e
        .active()
        .filter(|a| a.notified)
        .map(|a| (a.alert.key.name.clone(), a.alert.severity))
        .collect();
    assert!(
        active.contains(&("api".to_string(), Severity::Critical)),
        "the incident takes its members' rule severity: {active:?}"
    );
    assert!(active.contains(&("db-0".to_string(), Severity::Critical)));
    assert!(active.contains(&("lonely".to_string(), Severity::Warning)));
    for n in 1..4 {
        assert!(pass(&mut e, secs(31 + n * 15)).is_empty(), "pass {n}");
    }
}

fn node_down(name: &str) -> Alert {
    let key = AlertKey::new("node_conditions", "", "Node", name, "NotReady");
    let mut a = Alert::new(key, Severity::Warning, format!("{name} NotReady"), t(0));
    a.resolvable = true;
    a
}

/// A pod alert of a bare pod (no incident) on `node`.
fn pod_on(n: usize, node: &str, resolvable: bool) -> Alert {
    let key = AlertKey::new(
        "pod_not_ready",
        "shop",
        "Pod",
        format!("cache-{n}"),
        "NotReady",
    );
    let mut a = Alert::new(key, Severity::Warning, format!("cache-{n} NotReady"), t(0))
        .node(node.to_string());
    a.resolvable = resolvable;
    a
}

fn inhibited(o: &Outcome) -> Vec<(String, String)> {
    o.decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Inhibited { key, by, .. } => Some((key.name.clone(), by.name.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_not_ready_node_holds_back_the_alerts_of_its_pods_and_only_those() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let o = e.submit(node_down("n1"), secs(0));
    assert_eq!(told(&o), vec![(State::Firing, "n1 NotReady".into())]);
    let mut held = Vec::new();
    let mut out = Vec::new();
    for (n, node, resolvable) in [
        (0, "n1", true),
        (1, "n1", true),
        (2, "n1", false),
        (3, "n2", true),
    ] {
        let o = e.submit(pod_on(n, node, resolvable), secs(5));
        held.extend(inhibited(&o));
        out.extend(told(&o));
    }
    assert_eq!(
        held,
        vec![
            ("cache-0".to_string(), "n1".to_string()),
            ("cache-1".to_string(), "n1".to_string()),
            ("cache-2".to_string(), "n1".to_string()),
        ]
    );
    assert_eq!(
        out,
        vec![(State::Firing, "cache-3 NotReady".into())],
        "another node's pod"
    );
    // Repeats of a held-back alert stay silent, over many ticks.
    for s in 6..60 {
        assert!(told(&e.submit(pod_on(0, "n1", true), secs(s))).is_empty());
        assert!(told(&e.tick(secs(s))).is_empty());
    }
    // A held-back alert that clears says nothing.
    assert!(told(&e.resolve(&pod_on(1, "n1", true).key, secs(61))).is_empty());
    // The node recovers; cache-0 recovers with it within group_wait: nothing more is said.
    let o = e.resolve(&node_down("n1").key, secs(70));
    assert_eq!(told(&o), vec![(State::Resolved, "n1 NotReady".into())]);
    assert!(told(&e.resolve(&pod_on(0, "n1", true).key, secs(80))).is_empty());
    assert!(told(&e.tick(secs(200))).is_empty());
    assert!(e.active().all(|a| a.alert.key.name == "cache-3"));
}

#[test]
fn a_held_back_alert_that_still_holds_when_its_source_clears_is_sent_then() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    e.submit(node_down("n1"), secs(0));
    assert_eq!(
        inhibited(&e.submit(pod_on(0, "n1", true), secs(1))).len(),
        1
    );
    e.resolve(&node_down("n1").key, secs(10));
    assert!(told(&e.tick(secs(39))).is_empty(), "waits group_wait first");
    assert_eq!(
        told(&e.tick(secs(40))),
        vec![(State::Firing, "cache-0 NotReady".into())]
    );
    // From then on it is an alert like any other: its resolution is sent.
    assert_eq!(
        told(&e.resolve(&pod_on(0, "n1", true).key, secs(50))),
        vec![(State::Resolved, "cache-0 NotReady".into())]
    );
}

#[test]
fn a_stuck_rollout_sent_on_its_own_holds_back_the_alerts_of_its_new_pods() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let scope = Scope::Kind("Deployment".into());
    let stuck = workload("Deployment", "api");
    assert_eq!(
        told(&e.reconcile("rollout_stuck", &scope, found(vec![stuck]), secs(0))),
        vec![(State::Firing, "Deployment api stuck".into())]
    );
    let mut out = Vec::new();
    let mut held = 0;
    for n in 0..3 {
        let scope = Scope::object("shop", "Pod", format!("api-{n}"));
        let o = e.reconcile(
            "pod_crashes",
            &scope,
            found(vec![replica(n, "ImagePullBackOff", true)]),
            secs(5),
        );
        held += inhibited(&o).len();
        out.extend(told(&o));
        out.extend(told(&e.tick(secs(40 + n as i64))));
    }
    assert_eq!(
        (held, &out),
        (3, &vec![]),
        "no incident opens for held-back pods"
    );
    // Rolled back: the rollout resolves, its new pods go within group_wait.
    out.extend(told(&e.reconcile(
        "rollout_stuck",
        &scope,
        vec![],
        secs(100),
    )));
    for n in 0..3 {
        let scope = Scope::object("shop", "Pod", format!("api-{n}"));
        out.extend(told(&e.reconcile("pod_crashes", &scope, vec![], secs(110))));
    }
    out.extend(told(&e.tick(secs(300))));
    assert_eq!(out, vec![(State::Resolved, "Deployment api stuck".into())]);
}

#[test]
fn held_back_alerts_stay_held_back_across_a_restart_and_are_released_after_it() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    e.submit(node_down("n1"), secs(0));
    e.submit(pod_on(0, "n1", true), secs(1));
    let snapshot = e.snapshot();
    let mut e = engine("incidents: {group_wait: 30s}\n");
    e.restore(serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap());
    assert!(told(&e.submit(pod_on(0, "n1", true), secs(2))).is_empty());
    assert!(
        told(&e.submit(node_down("n1"), secs(2))).is_empty(),
        "the node was told"
    );
    assert!(told(&e.tick(secs(20))).is_empty());
    e.resolve(&node_down("n1").key, secs(30));
    assert_eq!(
        told(&e.tick(secs(60))),
        vec![(State::Firing, "cache-0 NotReady".into())]
    );
    // A state whose source is gone (its monitor switched off): released at the next tick.
    let mut e = engine("incidents: {group_wait: 30s}\n");
    e.submit(node_down("n1"), secs(0));
    e.submit(pod_on(0, "n1", true), secs(1));
    e.drop_monitor("node_conditions");
    assert_eq!(
        told(&e.tick(secs(2))),
        vec![(State::Firing, "cache-0 NotReady".into())]
    );
}

#[test]
fn inhibit_defaults_off_sends_the_pods_alerts() {
    let mut e = engine("incidents: {group_wait: 30s}\ninhibit: {defaults: false}\n");
    e.submit(node_down("n1"), secs(0));
    assert_eq!(
        told(&e.submit(pod_on(0, "n1", true), secs(1))),
        vec![(State::Firing, "cache-0 NotReady".into())]
    );
}

fn silence(id: &str, matcher: &str, from: Timestamp, to: Timestamp) -> Silence {
    Silence {
        id: id.into(),
        matcher: serde_saphyr::from_str(matcher).unwrap(),
        starts_at: from,
        ends_at: to,
        comment: format!("{id} comment"),
        created_by: "test".into(),
    }
}

/// (channel, state, title) of everything sent.
fn messages(o: &Outcome) -> Vec<(String, State, String)> {
    sent_as(o, |a| a.title.clone())
}

#[test]
fn a_configured_silence_holds_alerts_back_with_a_notice_at_its_start_and_end() {
    let mut e = engine(&format!(
        "silences:\n  - {{match: {{namespace: shop, reason: CrashLoopBackOff}}, starts_at: '{}', ends_at: '{}', comment: node upgrade}}\n",
        t(0),
        t(60)
    ));
    let start = e.tick(t(0));
    assert_eq!(
        messages(&start),
        vec![(
            "ops".to_string(),
            State::Firing,
            "Silence started: node upgrade".to_string()
        )],
        "with nothing matched yet, the notice goes where routing sends it"
    );
    assert!(e.tick(t(1)).dispatches.is_empty(), "one start notice");
    // Held back: nothing sent; resolving it sends nothing either.
    let a = e.submit(firing("a", Severity::Critical), t(2));
    assert!(a.dispatches.is_empty());
    assert!(
        matches!(&a.decisions[0], Decision::Silenced { silence, .. } if silence.starts_with("config-"))
    );
    e.submit(firing("b", Severity::Critical), t(3));
    assert!(e.resolve(&key("a"), t(4)).dispatches.is_empty());
    // Another namespace is not silenced.
    let other = Alert::new(
        AlertKey::new("pod_crashes", "web", "Pod", "w", "CrashLoopBackOff"),
        Severity::Warning,
        "w crashing",
        t(5),
    );
    assert_eq!(sent(&e.submit(other, t(5))).len(), 1);
    // The end: one notice naming what it held back, then what still fires is sent.
    let end = e.tick(t(60));
    let m = messages(&end);
    assert_eq!(m[0].2, "Silence ended: node upgrade");
    let notice = &end.dispatches[0].notifications[0].notification.alert;
    assert!(
        notice.message.contains("held back 2 alerts"),
        "{}",
        notice.message
    );
    assert_eq!(notice.fields["Held back"], "shop/pod/a, shop/pod/b");
    let b: Vec<_> = m.iter().filter(|(_, _, t)| t == "b crashing").collect();
    assert_eq!(b.len(), 2, "b still fires: sent to oncall and ops: {m:?}");
    assert!(e.tick(t(61)).dispatches.is_empty(), "one end notice");
    // b was sent after the silence, so its resolution is sent too.
    assert_eq!(sent(&e.resolve(&key("b"), t(62))).len(), 2);
}

#[test]
fn a_silence_stops_the_follow_ups_of_a_told_incident_and_its_end_sends_the_update() {
    let mut e = engine("incidents: {group_wait: 30s, group_interval: 5m}\n");
    e.set_silences(vec![], secs(0));
    for n in 0..2 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(0));
    }
    assert_eq!(told(&e.tick(secs(30))).len(), 1);
    // The incident's channel is where the start notice goes.
    let start = e.set_silences(
        vec![silence(
            "s1",
            "{owner_kind: Deployment}",
            secs(60),
            secs(3600),
        )],
        secs(60),
    );
    assert_eq!(
        messages(&start),
        vec![(
            "ops".into(),
            State::Firing,
            "Silence started: s1 comment".into()
        )]
    );
    for n in 2..6 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(70));
    }
    for s in [400, 1000, 3000] {
        assert!(
            e.tick(secs(s)).dispatches.is_empty(),
            "no follow-up at {s}s"
        );
    }
    // Expired early (`kpulse silence expire`): the end notice, then the update it held back.
    let end = e.set_silences(vec![], secs(3100));
    let m = messages(&end);
    assert_eq!(m[0].2, "Silence ended: s1 comment");
    let notice = &end.dispatches[0].notifications[0].notification.alert;
    assert_eq!(notice.fields["Held back"], "shop/deployment/api");
    let update = e.tick(secs(3101));
    assert_eq!(
        told(&update),
        vec![(
            State::Firing,
            "Deployment api: 6 pods CrashLoopBackOff on 3 nodes".to_string()
        )]
    );
    // Told before the silence: its resolution is sent.
    let all = found(vec![]);
    let o = e.reconcile("pod_crashes", &Scope::Kind("Pod".into()), all, secs(3200));
    assert_eq!(told(&o).len(), 1);
    assert_eq!(told(&o)[0].0, State::Resolved);
}

#[test]
fn a_restart_during_a_silence_repeats_no_notice_and_forgets_nothing_it_held() {
    let make = || engine("");
    let mut e = make();
    let s = vec![silence("s1", "{namespace: shop}", t(0), t(60))];
    assert_eq!(e.set_silences(s.clone(), t(0)).dispatches.len(), 1);
    e.submit(firing("a", Severity::Warning), t(1));
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e = make();
    e.restore(serde_json::from_str(&json).unwrap());
    // Before the run-time silences are read again, their record is not taken for an ended one.
    assert!(e.tick(t(2)).dispatches.is_empty());
    assert!(
        e.set_silences(s, t(3)).dispatches.is_empty(),
        "no second start notice"
    );
    assert!(
        e.submit(firing("a", Severity::Warning), t(4))
            .dispatches
            .is_empty()
    );
    let end = messages(&e.tick(t(60)));
    assert_eq!(
        end,
        vec![
            (
                "ops".into(),
                State::Firing,
                "Silence ended: s1 comment".into()
            ),
            ("ops".into(), State::Firing, "a crashing".into()),
        ]
    );
}

#[test]
fn a_silence_that_starts_later_holds_nothing_until_then_and_a_silenced_digest_alert_is_not_queued()
{
    let mut e = engine("");
    e.set_silences(
        vec![silence("s1", "{monitor: pod_crashes}", t(10), t(20))],
        t(0),
    );
    assert_eq!(
        sent(&e.submit(firing("a", Severity::Warning), t(1))).len(),
        1
    );
    assert_eq!(
        messages(&e.tick(t(10))).len(),
        1,
        "the start notice at its start"
    );
    let info = e.submit(firing("i", Severity::Info).one_shot(), t(11));
    assert!(matches!(info.decisions[..], [Decision::Silenced { .. }]));
    assert!(e.next_digest_due().is_none(), "not queued for the digest");
    // a was told before the silence: its resolution is sent while the silence holds.
    assert_eq!(sent(&e.resolve(&key("a"), t(12))).len(), 1);
    let end = e.tick(t(20));
    let notice = &end.dispatches[0].notifications[0].notification.alert;
    assert!(
        notice.message.contains("held back 1 alert;"),
        "{}",
        notice.message
    );
    assert_eq!(
        end.dispatches.len(),
        1,
        "a one-shot alert is not sent afterwards"
    );
}

/// A window open on the day of `t(0)` from its minute 0 for 60 minutes (UTC).
fn window_at_t0(action: &str) -> String {
    let start = t(0).to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "maintenance:\n  - {{name: patching, match: {{namespace: shop}}, schedule: '{} {} {} {} *', duration: 60m, action: {action}}}\n",
        start.minute(),
        start.hour(),
        start.day(),
        start.month()
    )
}

#[test]
fn a_maintenance_window_holds_alerts_back_and_summarizes_them_when_it_closes() {
    let make = || engine(&window_at_t0("summarize"));
    let mut e = make();
    let a = e.submit(firing("a", Severity::Critical), t(1));
    assert!(a.dispatches.is_empty());
    assert!(
        matches!(&a.decisions[..], [Decision::InMaintenance { window, .. }] if window == "patching")
    );
    e.submit(firing("b", Severity::Warning), t(2));
    assert!(
        e.resolve(&key("b"), t(3)).dispatches.is_empty(),
        "cleared inside: nothing"
    );
    // A restart inside the window keeps what it held.
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e = make();
    e.restore(serde_json::from_str(&json).unwrap());
    assert!(e.tick(t(59)).dispatches.is_empty());
    let close = e.tick(t(60));
    let m = messages(&close);
    assert_eq!(
        m.iter()
            .map(|(c, _, t)| (c.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("oncall", "Maintenance patching ended: 2 alerts during it"),
            ("ops", "Maintenance patching ended: 2 alerts during it"),
            ("oncall", "a crashing"),
            ("ops", "a crashing"),
        ]
    );
    let summary = &close.dispatches[0].notifications[0].notification.alert;
    assert_eq!(summary.severity, Severity::Critical, "the worst it held");
    assert_eq!(
        summary.fields["Alerts"],
        "a crashing (still firing); b crashing (cleared)"
    );
    assert!(
        summary
            .message
            .contains("1 cleared during the window; 1 still fires and is sent now"),
        "{}",
        summary.message
    );
    assert!(e.tick(t(61)).dispatches.is_empty(), "one summary");
    // Outside the window (and for other namespaces inside it) alerts go out as usual.
    assert_eq!(
        sent(&e.submit(firing("c", Severity::Warning), t(62))).len(),
        1
    );
}

#[test]
fn a_drop_window_sends_no_summary_but_still_sends_what_still_fires() {
    let mut e = engine(&window_at_t0("drop"));
    e.submit(firing("a", Severity::Warning), t(1));
    let other = Alert::new(
        AlertKey::new("pod_crashes", "web", "Pod", "w", "CrashLoopBackOff"),
        Severity::Warning,
        "w crashing",
        t(1),
    );
    assert_eq!(
        sent(&e.submit(other, t(1))).len(),
        1,
        "web is not in the window"
    );
    assert_eq!(
        messages(&e.tick(t(60))),
        vec![("ops".into(), State::Firing, "a crashing".into())]
    );
}

#[test]
fn an_incident_that_grows_in_a_window_is_updated_after_it() {
    let mut e = engine(&format!(
        "incidents: {{group_wait: 30s, group_interval: 1m}}\n{}",
        window_at_t0("drop")
    ));
    // Told before the window opens at t(0)... the window opens at minute 0 of t(0), so tell it
    // from earlier.
    let before = t(-10);
    for n in 0..2 {
        e.submit(replica(n, "CrashLoopBackOff", true), before);
    }
    assert_eq!(
        told(&e.tick(before + SignedDuration::from_secs(30))).len(),
        1
    );
    for n in 2..5 {
        e.submit(replica(n, "CrashLoopBackOff", true), t(1));
    }
    assert!(
        e.tick(t(5)).dispatches.is_empty(),
        "no follow-up in the window"
    );
    assert_eq!(
        told(&e.tick(t(60))),
        vec![(
            State::Firing,
            "Deployment api: 5 pods CrashLoopBackOff on 3 nodes".to_string()
        )]
    );
}

#[test]
fn a_condition_that_stays_firing_is_repeated_at_its_severitys_interval_up_to_max() {
    let mut e = engine("repeat: {interval: {critical: 60m}, max: 2}\n");
    e.submit(firing("a", Severity::Critical), t(0));
    e.submit(firing("w", Severity::Warning), t(0));
    assert!(e.tick(t(59)).dispatches.is_empty());
    let first = e.tick(t(60));
    assert_eq!(
        sent(&first),
        vec![
            ("oncall".into(), State::Firing, "a".into()),
            ("ops".into(), State::Firing, "a".into())
        ]
    );
    let reminder = &first.dispatches[0].notifications[0].notification.alert;
    assert!(
        reminder.fields["Reminder"].starts_with("1 of 2: still firing since"),
        "{:?}",
        reminder.fields
    );
    assert!(matches!(
        first.decisions[..],
        [Decision::Repeated { n: 1, .. }]
    ));
    // Silenced: not repeated now, and not counted.
    e.set_silences(
        vec![silence("s", "{monitor: pod_crashes}", t(100), t(130))],
        t(100),
    );
    assert!(sent(&e.tick(t(120))).is_empty());
    let after = e.tick(t(130));
    assert_eq!(
        sent(&after).iter().filter(|m| m.2 == "a").count(),
        2,
        "after the silence"
    );
    let notice = &after.dispatches[0].notifications[0].notification.alert;
    assert!(
        notice.message.contains("It held nothing back."),
        "a reminder it delayed is not an alert it held back: {}",
        notice.message
    );
    assert!(
        sent(&e.tick(t(500))).iter().all(|m| m.2 != "a"),
        "max reached"
    );
    // Its resolution is as usual.
    assert_eq!(sent(&e.resolve(&key("a"), t(501))).len(), 2);
}

#[test]
fn escalation_raises_a_crash_loop_by_restarts_and_an_incident_by_pods() {
    let mut e = engine(
        "incidents: {group_wait: 30s, group_interval: 1m}\nescalation:\n  - {match: {monitor: pod_crashes, kind: Pod}, restarts: 10, severity: critical}\n  - {match: {owner_kind: Deployment}, pods: 4, severity: critical}\n",
    );
    let restarts = |n: u32| firing("bare", Severity::Warning).field("Restarts", n.to_string());
    assert_eq!(
        sent(&e.submit(restarts(3), t(0))),
        vec![("ops".into(), State::Firing, "bare".into())]
    );
    assert!(e.submit(restarts(9), t(1)).dispatches.is_empty());
    let raised = e.submit(restarts(10), t(2));
    assert_eq!(sent(&raised).len(), 2, "critical now: oncall and ops");
    assert_eq!(
        raised.dispatches[0].notifications[0]
            .notification
            .alert
            .severity,
        Severity::Critical
    );
    // An incident of 2 pods is a warning; at 4 pods, critical, in its next update.
    for n in 0..2 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(0));
    }
    let told = e.tick(secs(30));
    assert_eq!(told.dispatches.len(), 1);
    assert_eq!(told.dispatches[0].channel, "ops");
    for n in 2..4 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(40));
    }
    let update = e.tick(secs(90));
    let channels: Vec<&str> = update
        .dispatches
        .iter()
        .map(|d| d.channel.as_str())
        .collect();
    assert_eq!(
        channels,
        vec!["ops", "oncall"],
        "raised: the update also reaches the channels of its new severity"
    );
    assert_eq!(
        update.dispatches[0].notifications[0]
            .notification
            .alert
            .severity,
        Severity::Critical
    );
}

#[test]
fn resolution_hold_absorbs_a_flap_and_resolves_once_after_it() {
    let make = || engine("resolution: {hold: 5m}\n");
    let mut e = make();
    let a = || found(vec![firing("a", Severity::Warning)]);
    let scope = Scope::Kind("Pod".into());
    assert_eq!(
        sent(&e.reconcile("pod_crashes", &scope, a(), t(0))).len(),
        1
    );
    // Clears, fires again within the hold: nothing at all.
    assert!(
        e.reconcile("pod_crashes", &scope, vec![], t(1))
            .dispatches
            .is_empty()
    );
    assert!(e.tick(t(4)).dispatches.is_empty());
    assert!(
        e.reconcile("pod_crashes", &scope, a(), t(4))
            .dispatches
            .is_empty()
    );
    assert!(
        e.tick(t(20)).dispatches.is_empty(),
        "still firing: no resolution"
    );
    // Clears for good: one [RESOLVED] once the hold has passed, also across a restart.
    assert!(
        e.reconcile("pod_crashes", &scope, vec![], t(21))
            .dispatches
            .is_empty()
    );
    assert!(
        e.reconcile("pod_crashes", &scope, vec![], t(22))
            .dispatches
            .is_empty()
    );
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e = make();
    e.restore(serde_json::from_str(&json).unwrap());
    assert!(e.tick(t(25)).dispatches.is_empty());
    assert_eq!(
        sent(&e.tick(t(26))),
        vec![("ops".into(), State::Resolved, "a".into())]
    );
    assert!(e.tick(t(40)).dispatches.is_empty(), "once");
}

#[test]
fn resolution_hold_keeps_a_told_incident_open_so_a_member_firing_again_rejoins_it() {
    let mut e = engine("incidents: {group_wait: 30s}\nresolution: {hold: 2m}\n");
    for n in 0..3 {
        e.submit(replica(n, "CrashLoopBackOff", true), secs(0));
    }
    assert_eq!(told(&e.tick(secs(30))).len(), 1);
    let scope = Scope::Kind("Pod".into());
    assert!(
        e.reconcile("pod_crashes", &scope, vec![], secs(40))
            .dispatches
            .is_empty()
    );
    // One pod crashes again within the hold: the same incident, no new message.
    let again = found(vec![replica(1, "CrashLoopBackOff", true)]);
    assert!(
        e.reconcile("pod_crashes", &scope, again, secs(60))
            .dispatches
            .is_empty()
    );
    assert!(
        e.tick(secs(300)).dispatches.is_empty(),
        "not resolved while a member fires"
    );
    assert!(
        e.reconcile("pod_crashes", &scope, vec![], secs(310))
            .dispatches
            .is_empty()
    );
    assert!(e.tick(secs(429)).dispatches.is_empty());
    let resolved = e.tick(secs(430));
    assert_eq!(told(&resolved).len(), 1);
    assert_eq!(told(&resolved)[0].0, State::Resolved);
}

/// BASE with a budget of 60 a minute, 2 at once, on `ops`.
fn budgeted() -> Engine {
    let yaml = BASE.replace(
        "ops: {type: log}",
        "ops: {type: log, delivery: {rate: {per_minute: 60, burst: 2}}}",
    );
    let c = load(&yaml, &SecretMap::new()).expect("valid config");
    Engine::new(Settings::from_config(&c).unwrap())
}

#[test]
fn beyond_a_channels_rate_budget_messages_wait_in_order_and_go_out_as_one_digest() {
    let mut e = budgeted();
    let mut out = Vec::new();
    for n in 0..5 {
        out.push(e.submit(firing(&format!("p{n}"), Severity::Warning), t(0)));
    }
    let immediate: Vec<String> = out.iter().flat_map(sent).map(|m| m.2).collect();
    assert_eq!(immediate, vec!["p0", "p1"], "the burst");
    let limited = out
        .iter()
        .flat_map(|o| &o.decisions)
        .filter(|d| matches!(d, Decision::RateLimited { channel, .. } if channel == "ops"))
        .count();
    assert_eq!(limited, 3);
    // A resolution waits behind them, in order.
    assert!(e.resolve(&key("p0"), t(0)).dispatches.is_empty());
    // Critical alerts also go to oncall, which has no budget: at once there.
    let c = e.submit(firing("c", Severity::Critical), t(0));
    assert_eq!(sent(&c), vec![("oncall".into(), State::Firing, "c".into())]);
    // A restart keeps what waits.
    let json = serde_json::to_string(&e.snapshot()).unwrap();
    let mut e = budgeted();
    e.restore(serde_json::from_str(&json).unwrap());
    let flush = e.tick(t(0) + SignedDuration::from_secs(1));
    assert_eq!(flush.dispatches.len(), 1);
    assert_eq!(flush.dispatches[0].kind, DispatchKind::Digest);
    let waited: Vec<(State, String)> = flush.dispatches[0]
        .notifications
        .iter()
        .map(|n| (n.notification.state, n.notification.alert.key.name.clone()))
        .collect();
    assert_eq!(
        waited,
        vec![
            (State::Firing, "p2".into()),
            (State::Firing, "p3".into()),
            (State::Firing, "p4".into()),
            (State::Resolved, "p0".into()),
            (State::Firing, "c".into()),
        ]
    );
    assert!(
        e.tick(t(0) + SignedDuration::from_secs(2))
            .dispatches
            .is_empty()
    );
}

#[test]
fn chat_providers_have_their_documented_budget_unless_configured() {
    let c = load(
        "channels:\n  s: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x'}\n  d: {type: discord, webhook_url: 'https://discord.com/api/webhooks/1/x'}\n  h: {type: webhook, url: 'https://example.com/h'}\n  off: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/y', delivery: {rate: {per_minute: 0}}}\nrouting: {default: [s]}\n",
        &SecretMap::new(),
    )
    .unwrap();
    let budgets = Settings::from_config(&c).unwrap().budgets;
    let per_minute: Vec<(&str, u32)> = budgets
        .iter()
        .map(|(c, b)| (c.as_str(), b.per_minute))
        .collect();
    assert_eq!(per_minute, vec![("d", 30), ("s", 60)]);
}

#[test]
fn an_incident_of_a_digested_severity_goes_into_the_digest_as_one_item_with_its_resolution() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    for n in 0..3 {
        let mut a = replica(n, "CrashLoopBackOff", true);
        a.severity = Severity::Info;
        e.submit(a, secs(0));
    }
    let told = e.tick(secs(30));
    assert!(told.dispatches.is_empty(), "queued for the digest");
    assert!(
        matches!(
            &told.decisions[..],
            [Decision::Digested { .. }, Decision::Fired { .. }]
        ),
        "{:?}",
        told.decisions
    );
    let o = e.reconcile("pod_crashes", &Scope::Kind("Pod".into()), vec![], secs(60));
    assert!(o.dispatches.is_empty());
    let digest = e.tick(t(16));
    assert_eq!(digest.dispatches.len(), 1);
    assert_eq!(digest.dispatches[0].kind, DispatchKind::Digest);
    let items: Vec<(State, String)> = digest.dispatches[0]
        .notifications
        .iter()
        .map(|n| (n.notification.state, n.notification.alert.title.clone()))
        .collect();
    assert_eq!(
        items,
        vec![
            (
                State::Firing,
                "Deployment api: 3 pods CrashLoopBackOff on 3 nodes".into()
            ),
            (
                State::Resolved,
                "Deployment api: 3 pods CrashLoopBackOff on 3 nodes".into()
            ),
        ]
    );
}

#[test]
fn a_silence_among_many_workloads_nodes_and_jobs_holds_only_its_own_over_several_full_passes() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    let start = e.set_silences(
        vec![silence("s1", "{namespace: shop}", secs(0), secs(600))],
        secs(0),
    );
    assert_eq!(messages(&start)[0].2, "Silence started: s1 comment");
    let pod = |ns: &str, owner: &str, name: &str| {
        Alert::new(
            AlertKey::new("pod_crashes", ns, "Pod", name, "CrashLoopBackOff"),
            Severity::Warning,
            format!("{name} crashing"),
            t(0),
        )
        .owner(owner)
        .node("n1")
    };
    let pods = || {
        found(vec![
            pod("shop", "Deployment/api", "api-1"),
            pod("shop", "Deployment/api", "api-2"),
            pod("shop", "StatefulSet/db", "db-0"),
            pod("web", "Deployment/front", "front-1"),
            pod("web", "Deployment/front", "front-2"),
        ])
    };
    let job = || {
        found(vec![Alert::new(
            AlertKey::new(
                "job_failed",
                "shop",
                "Job",
                "migrate",
                "BackoffLimitExceeded",
            ),
            Severity::Warning,
            "migrate failed",
            t(0),
        )])
    };
    let node = || {
        found(vec![Alert::new(
            AlertKey::new("node_conditions", "", "Node", "n9", "DiskPressure"),
            Severity::Warning,
            "n9 disk pressure",
            t(0),
        )])
    };
    let mut out = Vec::new();
    // Three full passes of each watch, 15 s apart, ticking in between.
    for pass in 0..3 {
        let at = secs(15 * pass);
        out.extend(messages(&e.reconcile(
            "pod_crashes",
            &Scope::Kind("Pod".into()),
            pods(),
            at,
        )));
        out.extend(messages(&e.reconcile(
            "job_failed",
            &Scope::Kind("Job".into()),
            job(),
            at,
        )));
        out.extend(messages(&e.reconcile(
            "node_conditions",
            &Scope::Kind("Node".into()),
            node(),
            at,
        )));
        out.extend(messages(&e.tick(at + SignedDuration::from_secs(1))));
    }
    out.extend(messages(&e.tick(secs(60))));
    let titles: Vec<&str> = out.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(
        titles,
        vec![
            "n9 disk pressure",
            "Deployment front: 2 pods CrashLoopBackOff on 1 node",
        ],
        "only what is outside the silence, each once"
    );
    // The end: one notice, then shop's incident of api, db-0 and the Job, each once.
    let mut end = messages(&e.tick(secs(600)));
    end.extend(messages(&e.tick(secs(601))));
    let titles: BTreeSet<&str> = end.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(
        titles,
        BTreeSet::from([
            "Silence ended: s1 comment",
            "Deployment api: 2 pods CrashLoopBackOff on 1 node",
            "db-0 crashing",
            "migrate failed",
        ])
    );
    assert_eq!(end.len(), 4, "{end:?}");
    assert!(e.tick(secs(700)).dispatches.is_empty());
}

/// An alert of the bare pod `name` (no workload): `reason` from `monitor`.
fn bare(monitor: &str, name: &str, reason: &str, resolvable: bool) -> Alert {
    let key = AlertKey::new(monitor, "jobs", "Pod", name, reason);
    let mut a = Alert::new(key, Severity::Warning, format!("{name} {reason}"), t(0));
    a.resolvable = resolvable;
    a
}

#[test]
fn a_bare_pods_crash_loop_is_one_message_with_its_notices_folded_in() {
    let mut e = engine("incidents: {group_wait: 30s}\n");
    // One status change: the crash loop, its exit notice and a restart burst, in the order the
    // pod monitors report them; then the kubelet's next restarts, over several passes.
    let mut out = told(&e.submit(
        bare("pod_crashes", "once", "CrashLoopBackOff", true),
        secs(0),
    ));
    for (s, monitor, reason) in [
        (0, "pod_crashes", "ErrorExit"),
        (0, "pod_restarts", "RestartBurst"),
        (40, "pod_crashes", "ErrorExit"),
        (400, "pod_crashes", "ErrorExit"),
        (400, "pod_restarts", "RestartBurst"),
    ] {
        out.extend(told(
            &e.submit(bare(monitor, "once", reason, false), secs(s)),
        ));
        out.extend(told(&e.tick(secs(s + 1))));
    }
    assert_eq!(out, vec![(State::Firing, "once CrashLoopBackOff".into())]);
    // Another bare pod's exit notice is its own news.
    let other = told(&e.submit(bare("pod_crashes", "other", "ErrorExit", false), secs(401)));
    assert_eq!(other, vec![(State::Firing, "other ErrorExit".into())]);
    // The crash loop ends: one [RESOLVED]; a later crash notice of the pod is news again.
    let done = told(&e.resolve(
        &bare("pod_crashes", "once", "CrashLoopBackOff", true).key,
        secs(500),
    ));
    assert_eq!(
        done,
        vec![(State::Resolved, "once CrashLoopBackOff".into())]
    );
    let again = told(&e.submit(bare("pod_crashes", "once", "ErrorExit", false), secs(9000)));
    assert_eq!(again, vec![(State::Firing, "once ErrorExit".into())]);
}
