//! Maintenance windows: recurring times during which the alerts a window matches are not sent.
//!
//! A window recurs on a cron schedule (with a duration) or on days of the week between two
//! times of day, in an IANA time zone. While it is open, an alert it matches that would be sent
//! is held back (an incident that grows gets no follow-up). When it closes:
//! - `summarize` (the default): one message lists what happened during it, what cleared and
//!   what still fires;
//! - `drop`: no summary.
//!
//! Either way, the alerts it held back that still fire are sent then: maintenance that left
//! something broken is news. What an open window held back is part of the snapshot, so a
//! restart in the middle of a window neither loses the summary nor sends it twice.

use std::str::FromStr;

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::router::Matches;
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::{MaintenanceAction, MaintenanceWindow, Weekday};

/// One compiled window.
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    cron: Cron,
    duration: SignedDuration,
    tz: TimeZone,
    matches: Matches,
    pub action: MaintenanceAction,
}

impl Window {
    /// Compiles `w`; the error names the field.
    pub fn new(w: &MaintenanceWindow) -> Result<Self, (String, String)> {
        let field = |f: &str, m: String| (f.to_string(), m);
        let tz = TimeZone::get(&w.timezone).map_err(|e| {
            field(
                "timezone",
                format!(
                    "unknown time zone {:?} (an IANA name such as Europe/Berlin): {e}",
                    w.timezone
                ),
            )
        })?;
        let (pattern, duration) = match (&w.schedule, &w.days) {
            (Some(_), Some(_)) => {
                return Err(field(
                    "schedule",
                    "give either schedule (cron) with duration, or days with from and to".into(),
                ));
            }
            (Some(cron), None) => {
                let duration = w
                    .duration
                    .ok_or_else(|| field("duration", "required with schedule".into()))?
                    .signed();
                (cron.trim().to_string(), duration)
            }
            (None, Some(days)) => {
                let from = clock(w.from.as_deref(), "from")?;
                let to = clock(w.to.as_deref(), "to")?;
                if days.is_empty() {
                    return Err(field("days", "name at least one day".into()));
                }
                let mut span = to - from;
                if span <= SignedDuration::ZERO {
                    // 22:00 to 02:00: into the next day.
                    span += SignedDuration::from_hours(24);
                }
                let days: Vec<&str> = days.iter().map(Weekday::cron).collect();
                let (h, m) = (from.as_secs() / 3600, from.as_secs() % 3600 / 60);
                (format!("{m} {h} * * {}", days.join(",")), span)
            }
            (None, None) => {
                return Err(field(
                    "schedule",
                    "give schedule (cron) with duration, or days with from and to".into(),
                ));
            }
        };
        if duration <= SignedDuration::ZERO || duration > SignedDuration::from_hours(24 * 7) {
            return Err(field(
                "duration",
                "must be more than zero and at most a week".into(),
            ));
        }
        let cron = Cron::from_str(&pattern).map_err(|e| {
            field(
                "schedule",
                format!("invalid cron expression {pattern:?}: {e}"),
            )
        })?;
        let matches = Matches::new(&w.matcher).map_err(|e| field("match", e))?;
        Ok(Window {
            name: w.name.clone(),
            cron,
            duration,
            tz,
            matches,
            action: w.action,
        })
    }

    /// When the occurrence open at `now` closes, if one is.
    pub fn open_until(&self, now: Timestamp) -> Option<Timestamp> {
        let zoned = now.to_zoned(self.tz.clone());
        let start = self.cron.find_previous_occurrence(&zoned, true).ok()?;
        let end = start.timestamp() + self.duration;
        (end > now).then_some(end)
    }

    /// When it next opens after `now`.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        let zoned = now.to_zoned(self.tz.clone());
        let next = self.cron.find_next_occurrence(&zoned, false).ok()?;
        Some(next.timestamp())
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        self.matches.matches(alert)
    }
}

fn clock(text: Option<&str>, field: &str) -> Result<SignedDuration, (String, String)> {
    let bad = || {
        (
            field.to_string(),
            format!(
                "{:?}: expected a time of day such as 02:00",
                text.unwrap_or("")
            ),
        )
    };
    let text = text.ok_or_else(|| (field.to_string(), "required with days".into()))?;
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(SignedDuration::from_mins(h * 60 + m))
}

/// At most this many alerts are listed per window occurrence (the counts go on).
const KEPT: usize = 1000;

/// An open window occurrence: what it held back. Part of the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    pub opened_at: Timestamp,
    pub closes_at: Timestamp,
    /// What it held back, with the title it would have been sent with, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<(AlertKey, Severity, String)>,
    #[serde(default)]
    pub held_count: u64,
}

impl WindowRecord {
    pub fn new(now: Timestamp, closes_at: Timestamp) -> Self {
        WindowRecord {
            opened_at: now,
            closes_at,
            held: Vec::new(),
            held_count: 0,
        }
    }

    /// Records `alert`; false when it was already held.
    pub fn hold(&mut self, alert: &Alert) -> bool {
        if self.held.iter().any(|(k, ..)| k == &alert.key) {
            return false;
        }
        self.held_count += 1;
        if self.held.len() < KEPT {
            self.held
                .push((alert.key.clone(), alert.severity, alert.title.clone()));
        }
        true
    }
}

/// The summary of a closed window: `still` are the keys that still fire.
pub fn summary(name: &str, r: &WindowRecord, still: &[AlertKey], now: Timestamp) -> Alert {
    let n = r.held_count;
    let cleared = n.saturating_sub(still.len() as u64);
    let title = format!(
        "Maintenance {name} ended: {n} {} during it",
        if n == 1 { "alert" } else { "alerts" }
    );
    let message = format!(
        "From {} to {}: {cleared} cleared during the window; {} still {} and {} sent now.",
        display_time(r.opened_at),
        display_time(now),
        still.len(),
        if still.len() == 1 { "fires" } else { "fire" },
        if still.len() == 1 { "is" } else { "are" },
    );
    let severity = r
        .held
        .iter()
        .map(|(_, s, _)| *s)
        .max()
        .unwrap_or(Severity::Info);
    let listed: Vec<String> = r
        .held
        .iter()
        .take(10)
        .map(|(k, _, title)| {
            let state = if still.contains(k) {
                "still firing"
            } else {
                "cleared"
            };
            format!("{title} ({state})")
        })
        .collect();
    let mut list = listed.join("; ");
    let more = n.saturating_sub(listed.len() as u64);
    if more > 0 {
        list.push_str(&format!(" (+{more} more)"));
    }
    let key = AlertKey::new("maintenance", "", "Window", name, "Summary");
    let mut alert = Alert::new(key, severity, title, now)
        .message(message)
        .field("Window", name.to_string())
        .field("Alerts", list);
    alert.resolvable = false;
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(yaml: &str) -> Result<Window, (String, String)> {
        let w: MaintenanceWindow = serde_saphyr::from_str(yaml).unwrap();
        Window::new(&w)
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn days_and_times_open_in_their_time_zone_and_may_cross_midnight() {
        // 2026-12-05 is a Saturday; Berlin is UTC+1 in December.
        let w = window(
            "{name: patching, days: [sat], from: '02:00', to: '04:00', timezone: Europe/Berlin}",
        )
        .unwrap();
        assert_eq!(w.open_until(at("2026-12-05T00:59:59Z")), None);
        assert_eq!(
            w.open_until(at("2026-12-05T01:00:00Z")),
            Some(at("2026-12-05T03:00:00Z"))
        );
        assert_eq!(w.open_until(at("2026-12-05T03:00:00Z")), None);
        assert_eq!(
            w.open_until(at("2026-12-06T01:30:00Z")),
            None,
            "not on Sunday"
        );
        let night = window("{name: night, days: [fri], from: '22:00', to: '02:00'}").unwrap();
        assert_eq!(
            night.open_until(at("2026-12-05T01:00:00Z")),
            Some(at("2026-12-05T02:00:00Z")),
            "Friday 22:00 UTC to Saturday 02:00"
        );
    }

    #[test]
    fn a_cron_window_lasts_its_duration() {
        let w = window("{name: backup, schedule: '30 1 * * *', duration: 45m}").unwrap();
        assert_eq!(
            w.open_until(at("2026-12-07T02:00:00Z")),
            Some(at("2026-12-07T02:15:00Z"))
        );
        assert_eq!(w.open_until(at("2026-12-07T02:15:00Z")), None);
    }

    #[test]
    fn a_window_that_cannot_be_read_names_its_field() {
        let cases = [
            (
                "{name: a, days: [sat], from: '02:00', to: '04:00', timezone: Mars/Olympus}",
                "timezone",
            ),
            ("{name: a, schedule: '0 2 * * *'}", "duration"),
            ("{name: a, schedule: 'every day', duration: 1h}", "schedule"),
            ("{name: a, days: [sat], from: '2am', to: '04:00'}", "from"),
            ("{name: a, days: [sat], from: '02:00'}", "to"),
            ("{name: a}", "schedule"),
            (
                "{name: a, schedule: '0 2 * * *', duration: 1h, days: [sat]}",
                "schedule",
            ),
            ("{name: a, schedule: '0 2 * * *', duration: 9d}", "duration"),
            ("{name: a, days: [], from: '02:00', to: '04:00'}", "days"),
        ];
        for (yaml, field) in cases {
            let (f, message) = window(yaml).unwrap_err();
            assert_eq!(f, field, "{yaml}: {message}");
        }
    }
}
