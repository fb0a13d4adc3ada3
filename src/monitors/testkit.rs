//! What the monitors' unit tests share: a configuration written as YAML, and times written as
//! text or as an offset from the noon the decision tables are written around.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::config::Config;
use crate::monitors::watch::ObjectMonitor;

/// The configuration `extra` (YAML, e.g. `monitors: {job_failed: {long_running: 1h}}`) plus one
/// `log` channel that every alert is routed to.
pub fn config(extra: &str) -> Config {
    crate::config::load(
        &format!("channels: {{l: {{type: log}}}}\nrouting: {{default: [l]}}\n{extra}"),
        &Default::default(),
    )
    .expect("a test configuration is valid")
}

/// A time written in RFC 3339, e.g. `2026-11-22T12:00:00Z`.
pub fn at(t: &str) -> Timestamp {
    t.parse().expect("a test time is RFC 3339")
}

/// `secs` seconds after 2026-11-22T12:00:00Z.
pub fn secs_after_noon(secs: i64) -> Timestamp {
    at("2026-11-22T12:00:00Z") + SignedDuration::from_secs(secs)
}

/// `mins` minutes after 2026-11-22T12:00:00Z.
pub fn mins_after_noon(mins: i64) -> Timestamp {
    at("2026-11-22T12:00:00Z") + SignedDuration::from_mins(mins)
}

/// The contract of [`ObjectMonitor::timed`], which decides what a watch re-evaluates at a tick:
/// a monitor that calls an object untimed at `t0` must judge it the same (the same keys, each
/// firing or holding alike) 30 s, 5 min, 20 min, 2 h and 2 days later. Panics naming the monitor
/// and the object otherwise. Returns the monitors whose judgement of some object did change with
/// time, so a test can show its table has such objects, and for each object the monitors that
/// call it timed.
pub fn timed_contract<K>(
    monitors: &[Arc<dyn ObjectMonitor<K>>],
    config: &Config,
    objects: &[(&str, K)],
    t0: Timestamp,
) -> (BTreeSet<&'static str>, Vec<Vec<&'static str>>) {
    let judged = |m: &dyn ObjectMonitor<K>, o: &K, now: Timestamp| -> Vec<String> {
        m.firing(config, o, now)
            .iter()
            .map(|f| format!("{:?} hold={}", f.alert.key, f.hold_only))
            .collect()
    };
    let later =
        [30, 5 * 60, 20 * 60, 2 * 3600, 2 * 86400].map(|s| t0 + SignedDuration::from_secs(s));
    let mut changed = BTreeSet::new();
    let mut timed = Vec::new();
    for (what, o) in objects {
        let mut by = Vec::new();
        for m in monitors {
            let at_t0 = judged(m.as_ref(), o, t0);
            let changes = later.iter().any(|t| judged(m.as_ref(), o, *t) != at_t0);
            if changes {
                changed.insert(m.name());
            }
            if m.timed(config, o, t0) {
                by.push(m.name());
            } else {
                assert!(
                    !changes,
                    "{}: calls {what} untimed, but time changes its judgement",
                    m.name()
                );
            }
        }
        timed.push(by);
    }
    (changed, timed)
}
