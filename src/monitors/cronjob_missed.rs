//! `cronjob_missed`: a CronJob whose scheduled run did not happen. The next slot after
//! `lastScheduleTime` (or creation) is computed from `spec.schedule` in `spec.timeZone` (UTC when
//! unset); if it is more than the grace period in the past — `max(startingDeadlineSeconds, grace)` —
//! the run was missed (a hung Job under `concurrencyPolicy: Forbid`, a controller outage, a quota).
//! Suspended CronJobs are skipped. Resolvable: when `lastScheduleTime` moves past the missed slot,
//! or the CronJob is deleted or suspended.

use std::sync::Arc;

use std::str::FromStr;

use croner::Cron;
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use k8s_openapi::api::batch::v1::CronJob;
use kube::ResourceExt;

use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "cronjob_missed";
crate::monitors::feeds::feed!(CRONJOBS: CronJob, NAME, |_| Arc::new(CronjobMissed));

pub struct CronjobMissed;

/// The first slot strictly after `after`, in the CronJob's time zone. `Err` says why the schedule
/// cannot be evaluated.
pub fn next_slot(
    schedule: &str,
    time_zone: Option<&str>,
    after: Timestamp,
) -> Result<Timestamp, String> {
    let tz = match time_zone {
        Some(name) => {
            TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?
        }
        None => TimeZone::UTC,
    };
    let cron = Cron::from_str(schedule.trim())
        .map_err(|e| format!("invalid schedule {schedule:?}: {e}"))?;
    let start = after.to_zoned(tz);
    cron.find_next_occurrence(&start, false)
        .map(|z| z.timestamp())
        .map_err(|e| format!("no next run for {schedule:?}: {e}"))
}

impl ObjectMonitor<CronJob> for CronjobMissed {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.cronjob_missed.enabled
    }
    fn firing(&self, config: &Config, cj: &CronJob, now: Timestamp) -> Vec<Finding> {
        let Some(spec) = cj.spec.as_ref() else {
            return Vec::new();
        };
        if spec.suspend == Some(true) {
            return Vec::new();
        }
        let last = cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0);
        let reference = last.or(cj.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let Some(reference) = reference else {
            return Vec::new();
        };
        let Ok(slot) = next_slot(&spec.schedule, spec.time_zone.as_deref(), reference) else {
            return Vec::new(); // the apiserver validates schedules; nothing to say about one it took
        };
        let deadline =
            SignedDuration::from_secs(spec.starting_deadline_seconds.unwrap_or(0).max(0));
        let grace = deadline.max(config.monitors.cronjob_missed.grace.signed());
        if slot + grace > now {
            return Vec::new();
        }
        let (ns, name) = (cj.namespace().unwrap_or_default(), cj.name_any());
        let active = cj
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .map_or(0, Vec::len);
        let why = if active > 0 && spec.concurrency_policy.as_deref() == Some("Forbid") {
            format!(
                " A previous run is still active and concurrencyPolicy is Forbid ({active} active Job(s))."
            )
        } else {
            String::new()
        };
        let tz = spec.time_zone.as_deref().unwrap_or("UTC");
        let mut a = Alert::new(AlertKey::new(NAME, &ns, "CronJob", &name, "MissedSchedule"), Severity::Warning, format!("CronJob {name} missed its scheduled run"), now)
            .message(format!("CronJob {ns}/{name} (schedule \"{}\" {tz}) should have started a run at {slot} and has not.{why}", spec.schedule, slot = display_time(slot)))
            .field(
                "Last scheduled",
                last.map_or_else(|| "never".to_string(), display_time),
            )
            .labels(cj.labels().clone());
        a.first_seen = slot;
        vec![Finding::firing(a)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit;
    use serde_json::json;

    fn cj(spec: serde_json::Value, last: Option<&str>) -> CronJob {
        let mut spec = spec;
        spec["jobTemplate"] = json!({});
        serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "ops", "creationTimestamp": "2026-11-22T00:00:00Z"},
            "spec": spec,
            "status": {"lastScheduleTime": last}
        }))
        .unwrap()
    }

    fn config() -> Config {
        testkit::config("monitors: {cronjob_missed: {grace: 5m}}")
    }

    #[test]
    fn decision_table() {
        let now: Timestamp = "2026-11-22T12:30:00Z".parse().unwrap();
        let hourly = json!({"schedule": "0 * * * *"});
        let cases = [
            (
                "ran at 12:00, next 13:00",
                cj(hourly.clone(), Some("2026-11-22T12:00:00Z")),
                false,
            ),
            (
                "last ran 11:00, 12:00 missed",
                cj(hourly.clone(), Some("2026-11-22T11:00:00Z")),
                true,
            ),
            (
                "suspended",
                cj(
                    json!({"schedule": "0 * * * *", "suspend": true}),
                    Some("2026-11-22T10:00:00Z"),
                ),
                false,
            ),
            (
                "deadline longer than the wait",
                cj(
                    json!({"schedule": "0 * * * *", "startingDeadlineSeconds": 3600}),
                    Some("2026-11-22T11:00:00Z"),
                ),
                false,
            ),
            (
                "12:27 slot, inside the grace",
                cj(
                    json!({"schedule": "27 * * * *"}),
                    Some("2026-11-22T11:27:00Z"),
                ),
                false,
            ),
            (
                "never ran since creation",
                cj(json!({"schedule": "0 6 * * *"}), None),
                true,
            ),
        ];
        for (name, c, want) in cases {
            assert_eq!(
                !CronjobMissed.firing(&config(), &c, now).is_empty(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn last_scheduled_says_never_for_a_cronjob_that_never_ran() {
        let now: Timestamp = "2026-11-22T12:30:00Z".parse().unwrap();
        let hourly = json!({"schedule": "0 * * * *"});
        let never = &CronjobMissed.firing(&config(), &cj(hourly.clone(), None), now)[0].alert;
        assert_eq!(never.fields["Last scheduled"], "never");
        assert_eq!(
            never.first_seen,
            "2026-11-22T01:00:00Z".parse::<Timestamp>().unwrap(),
            "the first slot after creation"
        );
        let ran = &CronjobMissed.firing(&config(), &cj(hourly, Some("2026-11-22T11:00:00Z")), now)
            [0]
        .alert;
        assert_eq!(ran.fields["Last scheduled"], "2026-11-22T11:00:00Z");
    }

    #[test]
    fn macros_and_the_forbid_message() {
        let after: Timestamp = "2026-11-22T10:20:00Z".parse().unwrap();
        assert_eq!(
            next_slot("@hourly", None, after).unwrap(),
            "2026-11-22T11:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            next_slot("@daily", None, after).unwrap(),
            "2026-11-23T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        let mut hung = cj(
            json!({"schedule": "*/1 * * * *", "concurrencyPolicy": "Forbid"}),
            Some("2026-11-22T12:20:00Z"),
        );
        hung.status.as_mut().unwrap().active = Some(vec![Default::default()]);
        let f = CronjobMissed.firing(&config(), &hung, "2026-11-22T12:30:00Z".parse().unwrap());
        let a = &f[0].alert;
        assert_eq!(a.title, "CronJob backup missed its scheduled run");
        assert_eq!(
            a.message,
            "CronJob ops/backup (schedule \"*/1 * * * *\" UTC) should have started a run at 2026-11-22T12:21:00Z and has not. A previous run is still active and concurrencyPolicy is Forbid (1 active Job(s))."
        );
        assert_eq!(
            a.first_seen,
            "2026-11-22T12:21:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn time_zones_and_dst() {
        // 02:30 local does not exist on 2026-03-08 in New York; the next 02:30 slot is a day later.
        let after: Timestamp = "2026-03-08T06:00:00Z".parse().unwrap(); // 01:00 EST
        let next = next_slot("30 2 * * *", Some("America/New_York"), after).unwrap();
        assert!(next > after);
        assert_eq!(
            next_slot(
                "0 9 * * *",
                Some("Europe/Berlin"),
                "2026-11-22T00:00:00Z".parse().unwrap()
            )
            .unwrap(),
            "2026-11-22T08:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(
            next_slot("0 9 * * *", Some("Mars/Olympus"), after)
                .unwrap_err()
                .contains("unknown time zone")
        );
    }
}
