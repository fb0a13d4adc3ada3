//! Helpers shared by the end-to-end tests, used as `crate::harness::X`.

#![allow(dead_code)]

mod cluster;
mod control_plane;
mod kpulse;
mod receiver;
mod waits;

// The harness offers more than the tests use at any one time.
#[allow(unused_imports)]
pub use cluster::{
    TestNamespace, ago, certificate, client, status_crash_loop, status_oom_killed, status_running,
};
pub use control_plane::StoppedControllerManager;
pub use kpulse::{
    Kpulse, cli, count, in_cluster, log_config, metric, re_evaluated, start, start_webhook,
    state_namespace, wait_state,
};
#[allow(unused_imports)]
pub use receiver::{Received, Receiver};
pub use waits::{WAIT, eventually};
