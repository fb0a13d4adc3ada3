//! What the monitors' unit tests share: a configuration written as YAML, and times written as
//! text or as an offset from the noon the decision tables are written around.

use jiff::{SignedDuration, Timestamp};

use crate::config::Config;

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
