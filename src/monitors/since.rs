//! First-observed times for conditions that Kubernetes does not timestamp (a StatefulSet whose
//! rollout makes no progress, a DaemonSet with unscheduled pods). Kept in memory: after a restart
//! such a window starts again, which can only delay an alert, never repeat one (the engine's
//! restored active set keeps an alert that already fired).
//!
//! Keys carry the object's uid, so an object deleted and re-created under the same name starts a
//! new window. Entries not looked at for [`FORGET_AFTER`] (deleted objects; every live object is
//! re-evaluated each tick) are dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// How long an entry survives without being tracked.
pub const FORGET_AFTER: SignedDuration = SignedDuration::from_hours(1);

#[derive(Default)]
pub struct Since {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// key → (first seen holding, last looked at)
    entries: HashMap<String, (Timestamp, Timestamp)>,
    pruned: Option<Timestamp>,
}

impl Since {
    /// While `holds`, the time it was first seen holding; otherwise forgets it and returns `None`.
    pub fn track(&self, key: String, holds: bool, now: Timestamp) -> Option<Timestamp> {
        let mut seen = self.seen.lock().expect("since map lock is never poisoned");
        if seen.pruned.is_none_or(|t| t + FORGET_AFTER <= now) {
            seen.entries
                .retain(|_, (_, last)| *last + FORGET_AFTER > now);
            seen.pruned = Some(now);
        }
        if holds {
            let entry = seen.entries.entry(key).or_insert((now, now));
            entry.1 = now;
            Some(entry.0)
        } else {
            seen.entries.remove(&key);
            None
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().unwrap().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_while_holding_and_forgets_when_cleared() {
        let s = Since::default();
        let t0: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-22T10:05:00Z".parse().unwrap();
        assert_eq!(s.track("a".into(), true, t0), Some(t0));
        assert_eq!(s.track("a".into(), true, t1), Some(t0));
        assert_eq!(s.track("a".into(), false, t1), None);
        assert_eq!(s.track("a".into(), true, t1), Some(t1));
    }

    #[test]
    fn forgets_objects_no_longer_tracked() {
        let s = Since::default();
        let t0: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        s.track("deleted".into(), true, t0);
        s.track("live".into(), true, t0);
        let mut t = t0;
        for _ in 0..300 {
            t += SignedDuration::from_secs(15);
            assert_eq!(
                s.track("live".into(), true, t),
                Some(t0),
                "live objects keep their window"
            );
        }
        assert_eq!(s.len(), 1, "the deleted object's entry is gone");
    }
}
