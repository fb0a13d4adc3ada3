//! One pod's start-up, as `startup_latency` follows it: the first time each stage was reached,
//! and what each pod update newly measured. Pure: the tracker feeds it pod snapshots and the
//! time it saw them, and records what [`Record::update`] returns.
//!
//! Pod stages are the conditions' `lastTransitionTime` (second precision): created →
//! `PodScheduled` → `Initialized` → `Ready`. Each is measured once, from creation and from the
//! stage before it; a transition whose earlier end was never reported (a pod bound to its node
//! without the scheduler, an Initialized condition that never came) is not measured.
//!
//! Containers, init containers included: `waiting_running` is from when the container could
//! start (the pod's Initialized time for regular containers; for init containers the previous
//! init container's end, the first one from the pod's scheduling) to its `startedAt`;
//! `running_ready` from `startedAt` to the first update that shows it ready (the pod's
//! ContainersReady time when that update made every container ready); `running_completed` (init
//! containers) from `startedAt` to `finishedAt` of a successful exit. A container seen for the
//! first time after more than one restart has lost its first start, and is not measured.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;

/// The pod stages, in order: (stage, condition type).
pub const STAGES: [(&str, &str); 3] = [
    ("scheduled", "PodScheduled"),
    ("initialized", "Initialized"),
    ("ready", "Ready"),
];

/// How long after Ready a record waits for image pull events it has not seen.
pub const PULL_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_secs(30);

/// What an update newly measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// A pod stage first reached: seconds from creation, and from the stage before (`from`
    /// names it: `created`, `scheduled`, `initialized`) when that was reported.
    Stage {
        stage: &'static str,
        from_creation: f64,
        from_previous: Option<(&'static str, f64)>,
    },
    /// A container transition: `waiting_running`, `running_ready`, `running_completed`.
    Container {
        init: bool,
        transition: &'static str,
        seconds: f64,
    },
}

/// One container's start-up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContainerRecord {
    pub name: String,
    pub init: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_running: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_ready: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_completed: Option<f64>,
    /// Seconds the image pull took (from the kubelet's Pulled event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull: Option<f64>,
    /// The kubelet found the image already present (no pull).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub image_present: bool,
    /// The start was lost (first seen after several restarts): not measured.
    #[serde(skip)]
    lost: bool,
    /// `running_ready` is known or cannot be anymore.
    #[serde(skip)]
    ready_done: bool,
}

/// One pod's start-up so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub owner_kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    pub created: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initialized: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Timestamp>,
    pub containers: Vec<ContainerRecord>,
}

/// `b - a` in seconds, never negative (kubelet and API server clocks may differ).
pub fn seconds(a: Timestamp, b: Timestamp) -> f64 {
    (b.as_millisecond() - a.as_millisecond()).max(0) as f64 / 1000.0
}

/// The time the condition `type_` turned True, when it is True.
fn condition_true(pod: &Pod, type_: &str) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| {
            c.last_transition_time
                .as_ref()
                .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
        })
}

fn started_at(c: &ContainerStatus) -> Option<Timestamp> {
    let state = c.state.as_ref()?;
    state
        .running
        .as_ref()
        .and_then(|r| r.started_at.as_ref())
        .or_else(|| {
            state
                .terminated
                .as_ref()
                .and_then(|t| t.started_at.as_ref())
        })
        .map(|t| t.0)
}

/// When the container's first run started: the current one before any restart, the last
/// terminated one after exactly one. `Err` when the first start is lost.
fn first_start(c: &ContainerStatus) -> Result<Option<Timestamp>, ()> {
    match c.restart_count {
        0 => Ok(started_at(c)),
        1 => Ok(c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.started_at.as_ref())
            .map(|t| t.0)),
        _ => Err(()),
    }
}

/// When the container ended successfully, if it did (init containers).
fn completed_at(c: &ContainerStatus) -> Option<Timestamp> {
    let t = c.state.as_ref()?.terminated.as_ref()?;
    (t.exit_code == 0).then(|| t.finished_at.as_ref().map(|t| t.0))?
}

/// When the container stopped running or started: what the next init container waits for.
fn end_or_start(c: &ContainerStatus) -> Option<Timestamp> {
    let state = c.state.as_ref()?;
    state
        .terminated
        .as_ref()
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0)
        .or_else(|| started_at(c))
}

impl Record {
    /// A new record for `pod`, with `owner_kind` already chosen; nothing measured yet.
    pub fn new(pod: &Pod, owner_kind: impl Into<String>) -> Option<Self> {
        let meta = &pod.metadata;
        Some(Record {
            namespace: meta.namespace.clone().unwrap_or_default(),
            pod: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            owner_kind: owner_kind.into(),
            node: String::new(),
            created: meta.creation_timestamp.as_ref()?.0,
            scheduled: None,
            initialized: None,
            ready: None,
            containers: Vec::new(),
        })
    }

    /// Whether everything that can be measured has been, at `now`: the pod is Ready, every
    /// container is accounted for, and each container's image pull is known — or
    /// [`PULL_GRACE`] has passed since Ready (the Pulled event comes through another watch, and
    /// may have been missed).
    pub fn complete(&self, now: Timestamp) -> bool {
        let Some(ready) = self.ready else {
            return false;
        };
        let started = |c: &ContainerRecord| {
            c.lost || (c.init && c.running_completed.is_some()) || c.ready_done
        };
        let pulled = |c: &ContainerRecord| c.image_pull.is_some() || c.image_present;
        self.containers.iter().all(started)
            && (self.containers.iter().all(pulled) || now >= ready + PULL_GRACE)
    }

    /// Seconds from creation to Ready, once Ready.
    pub fn ready_seconds(&self) -> Option<f64> {
        self.ready.map(|r| seconds(self.created, r))
    }

    /// Takes in a pod update seen at `now`; returns what it newly measured, in order.
    pub fn update(&mut self, pod: &Pod, now: Timestamp) -> Vec<Measured> {
        let mut out = Vec::new();
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) {
            node.clone_into(&mut self.node);
        }
        let mut previous: Option<(&'static str, Option<Timestamp>)> =
            Some(("created", Some(self.created)));
        for (stage, condition) in STAGES {
            let slot = match stage {
                "scheduled" => &mut self.scheduled,
                "initialized" => &mut self.initialized,
                _ => &mut self.ready,
            };
            if slot.is_none()
                && let Some(at) = condition_true(pod, condition)
            {
                *slot = Some(at);
                let from_previous = match previous {
                    Some((from, Some(t))) => Some((from, seconds(t, at))),
                    _ => None,
                };
                out.push(Measured::Stage {
                    stage,
                    from_creation: seconds(self.created, at),
                    from_previous,
                });
            }
            previous = Some((stage, *slot));
        }
        self.containers_update(pod, now, &mut out);
        out
    }

    fn containers_update(&mut self, pod: &Pod, now: Timestamp, out: &mut Vec<Measured>) {
        let status = pod.status.as_ref();
        let all_ready_at = condition_true(pod, "ContainersReady");
        let init = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or_default();
        let main = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        // When each init container could start: the previous one's end (or start, for a
        // sidecar), the first one at scheduling.
        let mut eligible = self.scheduled;
        for c in init {
            let next = end_or_start(c);
            self.container(c, true, eligible, all_ready_at, now, out);
            eligible = next;
        }
        for c in main {
            self.container(c, false, self.initialized, all_ready_at, now, out);
        }
    }

    fn container(
        &mut self,
        c: &ContainerStatus,
        init: bool,
        eligible: Option<Timestamp>,
        all_ready_at: Option<Timestamp>,
        now: Timestamp,
        out: &mut Vec<Measured>,
    ) {
        let at = match self
            .containers
            .iter()
            .position(|r| r.name == c.name && r.init == init)
        {
            Some(at) => at,
            None => {
                let first = first_start(c);
                self.containers.push(ContainerRecord {
                    name: c.name.clone(),
                    init,
                    image: c.image.clone(),
                    lost: first.is_err(),
                    ..ContainerRecord::default()
                });
                self.containers.len() - 1
            }
        };
        let r = &mut self.containers[at];
        if r.lost {
            return;
        }
        if r.started.is_none()
            && let Ok(Some(started)) = first_start(c)
        {
            r.started = Some(started);
            if let Some(eligible) = eligible {
                let s = seconds(eligible, started);
                r.waiting_running = Some(s);
                out.push(Measured::Container {
                    init,
                    transition: "waiting_running",
                    seconds: s,
                });
            }
        }
        let Some(started) = r.started else {
            return;
        };
        if init {
            if r.running_completed.is_none()
                && c.restart_count == 0
                && let Some(done) = completed_at(c)
            {
                let s = seconds(started, done);
                r.running_completed = Some(s);
                out.push(Measured::Container {
                    init,
                    transition: "running_completed",
                    seconds: s,
                });
            }
            // A sidecar (an init container that keeps running) may become ready too.
            if r.running_completed.is_some() {
                return;
            }
        }
        if !r.ready_done && c.ready {
            r.ready_done = true;
            if c.restart_count > 0 {
                // Ready after a restart: the first run's readiness is not known.
                return;
            }
            let at = all_ready_at.filter(|t| *t >= started).unwrap_or(now);
            let s = seconds(started, at);
            r.running_ready = Some(s);
            out.push(Measured::Container {
                init,
                transition: "running_ready",
                seconds: s,
            });
        }
    }

    /// Takes in an image pull of container `name` (`init` for an init container): `Some(secs)`
    /// pulled in that long, `None` already present. Returns whether it was new.
    pub fn image_pull(&mut self, name: &str, init: bool, image: &str, pulled: Option<f64>) -> bool {
        let at = match self
            .containers
            .iter()
            .position(|r| r.name == name && r.init == init)
        {
            Some(at) => at,
            None => {
                self.containers.push(ContainerRecord {
                    name: name.to_string(),
                    init,
                    ..ContainerRecord::default()
                });
                self.containers.len() - 1
            }
        };
        let r = &mut self.containers[at];
        if r.image_pull.is_some() || r.image_present {
            return false;
        }
        if r.image.is_empty() {
            image.clone_into(&mut r.image);
        }
        match pulled {
            Some(s) => r.image_pull = Some(s),
            None => r.image_present = true,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::at as ts;
    use serde_json::{Value, json};

    const CREATED: &str = "2026-11-22T10:00:10Z";

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "api-0", "namespace": "shop", "uid": "u1", "creationTimestamp": CREATED},
            "spec": {"nodeName": "n1", "containers": [{"name": "app"}]},
            "status": status
        }))
        .unwrap()
    }

    fn t(secs: u32) -> String {
        format!("2026-11-22T10:00:{secs:02}Z")
    }

    fn cond(type_: &str, status: &str, secs: u32) -> Value {
        json!({"type": type_, "status": status, "lastTransitionTime": t(secs)})
    }

    fn waiting(name: &str) -> Value {
        json!({"name": name, "image": "img", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}})
    }

    fn running(name: &str, started: u32, ready: bool, restarts: i32) -> Value {
        json!({"name": name, "image": "img", "imageID": "", "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": t(started)}}})
    }

    fn completed(name: &str, started: u32, finished: u32, exit: i32) -> Value {
        json!({"name": name, "image": "img", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit, "startedAt": t(started), "finishedAt": t(finished)}}})
    }

    fn stage(stage: &'static str, c: f64, p: Option<(&'static str, f64)>) -> Measured {
        Measured::Stage {
            stage,
            from_creation: c,
            from_previous: p,
        }
    }

    fn container(init: bool, transition: &'static str, seconds: f64) -> Measured {
        Measured::Container {
            init,
            transition,
            seconds,
        }
    }

    /// Feeds each status in turn (seen at the times given) and checks what each measured.
    fn table(steps: &[(Value, u32, Vec<Measured>)]) -> Record {
        let mut r = Record::new(&pod(json!({})), "Deployment").unwrap();
        for (i, (status, seen, expected)) in steps.iter().enumerate() {
            let got = r.update(&pod(status.clone()), ts(&t(*seen)));
            assert_eq!(&got, expected, "step {i}");
        }
        r
    }

    #[test]
    fn every_stage_and_container_transition_of_a_normal_start() {
        let r = table(&[
            (json!({"phase": "Pending"}), 10, vec![]),
            (
                json!({"phase": "Pending", "conditions": [cond("PodScheduled", "True", 11)]}),
                11,
                vec![stage("scheduled", 1.0, Some(("created", 1.0)))],
            ),
            (
                json!({"phase": "Pending", "conditions": [cond("PodScheduled", "True", 11),
                    cond("Initialized", "True", 12), cond("Ready", "False", 12)],
                    "containerStatuses": [waiting("app")]}),
                12,
                vec![stage("initialized", 2.0, Some(("scheduled", 1.0)))],
            ),
            (
                json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                    cond("Initialized", "True", 12), cond("Ready", "False", 12)],
                    "containerStatuses": [running("app", 15, false, 0)]}),
                15,
                vec![container(false, "waiting_running", 3.0)],
            ),
            (
                json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                    cond("Initialized", "True", 12), cond("Ready", "True", 20),
                    cond("ContainersReady", "True", 20)],
                    "containerStatuses": [running("app", 15, true, 0)]}),
                21,
                vec![
                    stage("ready", 10.0, Some(("initialized", 8.0))),
                    container(false, "running_ready", 5.0),
                ],
            ),
        ]);
        assert!(!r.complete(ts(&t(21))), "waits for the image pull event");
        assert!(r.complete(ts("2026-11-22T10:00:50Z")), "not for ever");
        let mut r = r;
        r.image_pull("app", false, "img", Some(1.0));
        assert!(r.complete(ts(&t(21))));
        assert_eq!(r.ready_seconds(), Some(10.0));
        assert_eq!(r.node, "n1");
    }

    #[test]
    fn init_containers_wait_for_the_one_before_and_complete() {
        let conditions = json!([
            cond("PodScheduled", "True", 11),
            cond("Initialized", "False", 11)
        ]);
        table(&[
            (
                json!({"phase": "Pending", "conditions": conditions,
                    "initContainerStatuses": [running("migrate", 13, false, 0), waiting("seed")],
                    "containerStatuses": [waiting("app")]}),
                13,
                vec![
                    stage("scheduled", 1.0, Some(("created", 1.0))),
                    container(true, "waiting_running", 2.0),
                ],
            ),
            (
                json!({"phase": "Pending", "conditions": conditions,
                    "initContainerStatuses": [completed("migrate", 13, 16, 0), running("seed", 18, false, 0)],
                    "containerStatuses": [waiting("app")]}),
                18,
                vec![
                    container(true, "running_completed", 3.0),
                    container(true, "waiting_running", 2.0),
                ],
            ),
            (
                json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                    cond("Initialized", "True", 19)],
                    "initContainerStatuses": [completed("migrate", 13, 16, 0), completed("seed", 18, 19, 0)],
                    "containerStatuses": [running("app", 21, false, 0)]}),
                21,
                vec![
                    stage("initialized", 9.0, Some(("scheduled", 8.0))),
                    container(true, "running_completed", 1.0),
                    container(false, "waiting_running", 2.0),
                ],
            ),
        ]);
    }

    #[test]
    fn a_pod_seen_only_once_already_ready_is_measured_in_full() {
        // kpulse may see a pod only after it is Ready (a quick start): the timestamps still tell.
        let r = table(&[(
            json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                cond("Initialized", "True", 11), cond("Ready", "True", 14),
                cond("ContainersReady", "True", 14)],
                "containerStatuses": [running("app", 13, true, 0)]}),
            30,
            vec![
                stage("scheduled", 1.0, Some(("created", 1.0))),
                stage("initialized", 1.0, Some(("scheduled", 0.0))),
                stage("ready", 4.0, Some(("initialized", 3.0))),
                container(false, "waiting_running", 2.0),
                container(false, "running_ready", 1.0),
            ],
        )]);
        assert!(r.complete(ts("2026-11-22T10:01:00Z")));
    }

    #[test]
    fn a_skipped_stage_measures_nothing_from_it() {
        // Bound to its node without the scheduler and no Initialized condition reported: only
        // what has both ends is measured.
        table(&[(
            json!({"phase": "Running", "conditions": [cond("Ready", "True", 15)],
                "containerStatuses": [running("app", 13, false, 0)]}),
            15,
            vec![stage("ready", 5.0, None)],
        )]);
        table(&[(
            json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                cond("Ready", "True", 15)]}),
            15,
            vec![
                stage("scheduled", 1.0, Some(("created", 1.0))),
                stage("ready", 5.0, None),
            ],
        )]);
    }

    #[test]
    fn restarts_are_not_counted_again_and_a_lost_first_start_is_not_measured() {
        let ready = json!([
            cond("PodScheduled", "True", 11),
            cond("Initialized", "True", 11),
            cond("Ready", "True", 14),
            cond("ContainersReady", "True", 14)
        ]);
        table(&[
            (
                json!({"phase": "Running", "conditions": ready,
                    "containerStatuses": [running("app", 13, true, 0)]}),
                14,
                vec![
                    stage("scheduled", 1.0, Some(("created", 1.0))),
                    stage("initialized", 1.0, Some(("scheduled", 0.0))),
                    stage("ready", 4.0, Some(("initialized", 3.0))),
                    container(false, "waiting_running", 2.0),
                    container(false, "running_ready", 1.0),
                ],
            ),
            // The container restarted and the pod went unready and Ready again: nothing new.
            (
                json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                    cond("Initialized", "True", 11), cond("Ready", "False", 40)],
                    "containerStatuses": [running("app", 40, false, 1)]}),
                40,
                vec![],
            ),
            (
                json!({"phase": "Running", "conditions": ready,
                    "containerStatuses": [running("app", 40, true, 1)]}),
                50,
                vec![],
            ),
        ]);
        // First seen after one restart: the first run's start is in lastState.
        let one: Value = json!({"name": "app", "image": "img", "imageID": "", "ready": false,
            "restartCount": 1, "state": {"running": {"startedAt": t(30)}},
            "lastState": {"terminated": {"exitCode": 1, "startedAt": t(13), "finishedAt": t(20)}}});
        table(&[(
            json!({"phase": "Running", "conditions": [cond("PodScheduled", "True", 11),
                cond("Initialized", "True", 11)], "containerStatuses": [one]}),
            30,
            vec![
                stage("scheduled", 1.0, Some(("created", 1.0))),
                stage("initialized", 1.0, Some(("scheduled", 0.0))),
                container(false, "waiting_running", 2.0),
            ],
        )]);
        // After several: lost, and the record still completes once Ready.
        let r = table(&[(
            json!({"phase": "Running", "conditions": ready,
                "containerStatuses": [running("app", 50, true, 3)]}),
            50,
            vec![
                stage("scheduled", 1.0, Some(("created", 1.0))),
                stage("initialized", 1.0, Some(("scheduled", 0.0))),
                stage("ready", 4.0, Some(("initialized", 3.0))),
            ],
        )]);
        assert!(r.complete(ts("2026-11-22T10:01:00Z")));
    }

    #[test]
    fn a_failed_init_container_measures_no_completion() {
        table(&[(
            json!({"phase": "Pending", "conditions": [cond("PodScheduled", "True", 11)],
                "initContainerStatuses": [completed("migrate", 12, 14, 1)]}),
            14,
            vec![
                stage("scheduled", 1.0, Some(("created", 1.0))),
                container(true, "waiting_running", 1.0),
            ],
        )]);
    }

    #[test]
    fn clock_skew_never_gives_negative_durations() {
        table(&[(
            json!({"phase": "Pending", "conditions": [cond("PodScheduled", "True", 9)]}),
            10,
            vec![stage("scheduled", 0.0, Some(("created", 0.0)))],
        )]);
    }

    #[test]
    fn image_pulls_are_kept_once_per_container() {
        let mut r = Record::new(&pod(json!({})), "Job").unwrap();
        assert!(r.image_pull("app", false, "busybox:1", Some(2.5)));
        assert!(!r.image_pull("app", false, "busybox:1", Some(9.0)), "once");
        assert!(r.image_pull("migrate", true, "tool:1", None));
        assert_eq!(r.containers[0].image_pull, Some(2.5));
        assert!(r.containers[1].image_present && r.containers[1].init);
        // The container's status arriving later joins the same entry.
        r.update(
            &pod(json!({"containerStatuses": [running("app", 13, false, 0)]})),
            ts(&t(13)),
        );
        assert_eq!(r.containers.len(), 2);
        let line = serde_json::to_value(&r).unwrap();
        assert_eq!(line["containers"][0]["image_pull"], 2.5);
        assert_eq!(line["containers"][1]["image_present"], true);
        assert_eq!(line["owner_kind"], "Job");
    }
}
