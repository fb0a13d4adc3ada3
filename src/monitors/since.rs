//! First-observed times for conditions that Kubernetes does not timestamp (a StatefulSet whose
//! rollout makes no progress, a DaemonSet with unscheduled pods). Kept in memory: after a restart
//! such a window starts again, which can only delay an alert, never repeat one (the engine's
//! restored active set keeps an alert that already fired).

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

#[derive(Default)]
pub struct Since {
    seen: Mutex<HashMap<String, Timestamp>>,
}

impl Since {
    /// While `holds`, the time it was first seen holding; otherwise forgets it and returns `None`.
    pub fn track(&self, key: String, holds: bool, now: Timestamp) -> Option<Timestamp> {
        let mut seen = self.seen.lock().expect("since map lock is never poisoned");
        if holds {
            Some(*seen.entry(key).or_insert(now))
        } else {
            seen.remove(&key);
            None
        }
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
}
