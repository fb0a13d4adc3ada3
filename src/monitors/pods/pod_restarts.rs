//! `pod_restarts`: a burst of container restarts — at least `threshold` within `window` — in
//! one pod, whatever the exit reason. One-shot: a burst is a fact, reported once; the engine's
//! dedupe window keeps a pod that keeps bursting from notifying on every restart.
//!
//! Restarts are counted from observed increases of the pod's summed `restartCount`, so restarts
//! that happened while kpulse was not running are not counted. The observations live in the
//! monitor (keyed by pod UID) and are pruned as they leave the window.

use std::sync::Arc;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::pod;
use crate::alert::{Alert, Severity};
use crate::config::Config;
use crate::monitors::watch::{Finding, ObjectMonitor};

pub const NAME: &str = "pod_restarts";
crate::monitors::feeds::feed!(PODS: Pod, NAME, |_| Arc::new(PodRestarts::default()));

/// Restart increases seen for one pod, oldest first: (when, how many).
#[derive(Debug, Default)]
pub struct History(VecDeque<(Timestamp, u32)>);

impl History {
    /// Records `added` restarts at `now` and returns the restarts within `window` when they make
    /// a burst of at least `threshold`. A reported burst is forgotten, so the next report needs
    /// `threshold` new restarts.
    pub fn observe(
        &mut self,
        added: u32,
        now: Timestamp,
        window: SignedDuration,
        threshold: u32,
    ) -> Option<u32> {
        self.prune(now, window);
        if added > 0 {
            self.0.push_back((now, added));
        }
        let total: u32 = self.0.iter().map(|(_, n)| n).sum();
        if added > 0 && total >= threshold.max(1) {
            self.0.clear();
            Some(total)
        } else {
            None
        }
    }

    fn prune(&mut self, now: Timestamp, window: SignedDuration) {
        while self.0.front().is_some_and(|(t, _)| *t + window <= now) {
            self.0.pop_front();
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The monitor, with the restart history of every pod that restarted within the window.
#[derive(Default)]
pub struct PodRestarts {
    history: Mutex<HashMap<String, History>>,
}

fn restarts(pod: &Pod) -> u32 {
    pod::containers(pod)
        .map(|(c, _)| c.restart_count.max(0) as u32)
        .sum()
}

impl ObjectMonitor<Pod> for PodRestarts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pod_restarts.enabled
    }

    /// Facts only: nothing here fires or changes with time.
    fn timed(&self, _config: &Config, _pod: &Pod, _now: Timestamp) -> bool {
        false
    }

    fn firing(&self, _config: &Config, _pod: &Pod, _now: Timestamp) -> Vec<Finding> {
        Vec::new()
    }

    fn changes(&self, config: &Config, old: &Pod, new: &Pod, now: Timestamp) -> Vec<Alert> {
        let settings = &config.monitors.pod_restarts;
        let window = settings.window.signed();
        let added = restarts(new).saturating_sub(restarts(old));
        // A recreated pod with the same name starts from zero: not a restart.
        if old.uid() != new.uid() {
            return Vec::new();
        }
        let uid = new.uid().unwrap_or_else(|| new.name_any());
        let burst = {
            // A poisoned lock only means another thread panicked mid-update: the history is
            // still usable.
            let mut all = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let burst = all
                .entry(uid)
                .or_default()
                .observe(added, now, window, settings.threshold);
            all.retain(|_, h| {
                h.prune(now, window);
                !h.is_empty()
            });
            burst
        };
        let Some(count) = burst else {
            return Vec::new();
        };
        let name = new.name_any();
        let ns = new.namespace().unwrap_or_default();
        let a = pod::alert(
            NAME,
            new,
            "RestartBurst",
            Severity::Warning,
            format!("{name} restarted {count} times"),
            now,
        )
        .message(format!(
            "Pod {ns}/{name} restarted {count} times within {}.",
            settings.window
        ))
        .field("Restarts in window", count.to_string())
        .field("Restarts total", restarts(new).to_string())
        .one_shot();
        vec![a]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{config, mins_after_noon as at};
    use serde_json::json;

    fn pod(uid: &str, restarts: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-1", "namespace": "shop", "uid": uid},
            "spec": {"containers": [{"name": "server"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "server", "image": "i", "imageID": "", "ready": true, "restartCount": restarts, "state": {"running": {}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn history_table() {
        let window = SignedDuration::from_mins(15);
        // (restarts added at minute m) sequences → bursts reported.
        type Case<'a> = (&'a str, Vec<(i64, u32)>, Vec<Option<u32>>);
        let cases: Vec<Case> = vec![
            ("three at once", vec![(0, 3)], vec![Some(3)]),
            (
                "three within the window",
                vec![(0, 1), (5, 1), (14, 1)],
                vec![None, None, Some(3)],
            ),
            (
                "spread over more than the window",
                vec![(0, 1), (10, 1), (16, 1)],
                vec![None, None, None],
            ),
            (
                "a reported burst is forgotten",
                vec![(0, 3), (1, 1), (2, 1)],
                vec![Some(3), None, None],
            ),
            ("no increase", vec![(0, 0), (1, 0)], vec![None, None]),
        ];
        for (name, steps, want) in cases {
            let mut h = History::default();
            let got: Vec<Option<u32>> = steps
                .iter()
                .map(|(m, n)| h.observe(*n, at(*m), window, 3))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_burst_is_one_shot_and_names_the_count() {
        let c = config("");
        let m = PodRestarts::default();
        assert!(
            m.changes(&c, &pod("u1", 0), &pod("u1", 2), at(0))
                .is_empty()
        );
        let got = m.changes(&c, &pod("u1", 2), &pod("u1", 3), at(1));
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(
            a.key.to_string(),
            "pod_restarts/shop/Pod/api-1/RestartBurst"
        );
        assert_eq!(a.title, "api-1 restarted 3 times");
        assert_eq!(a.message, "Pod shop/api-1 restarted 3 times within 15m.");
        assert!(!a.resolvable);
        // A recreated pod (new UID) is not a restart.
        assert!(
            m.changes(&c, &pod("u1", 9), &pod("u2", 0), at(2))
                .is_empty()
        );
        // History of pods that stopped restarting is pruned.
        let _ = m.changes(&c, &pod("u3", 0), &pod("u3", 1), at(3));
        let _ = m.changes(&c, &pod("u4", 0), &pod("u4", 0), at(30));
        assert!(m.history.lock().unwrap().is_empty());
    }
}
