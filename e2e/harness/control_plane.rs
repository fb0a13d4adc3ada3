//! The local control plane's processes, for the one test that must stop one: the Deployment
//! canary fails while kube-controller-manager is away and resolves once it is back.
//!
//! hack/cluster.sh starts each component in its own session (`setsid`) and writes its pid to
//! `<cluster dir>/pids/<name>`, the cluster dir being the kubeconfig's. The controller-manager is
//! stopped with SIGSTOP and continued with SIGCONT rather than killed and restarted: it comes
//! back with exactly its command line and caches, at once, and a test that panics mid-way
//! continues it on drop, so the shared cluster is never left without one. While it is stopped,
//! other tests' controllers (Deployments, Jobs, ServiceAccounts of new namespaces) wait; the
//! stop is kept short (seconds) so their waits (30 s and more) absorb it.

use std::path::PathBuf;
use std::sync::Mutex;

use super::cluster::kubeconfig;

/// Only one test may hold the controller-manager stopped at a time.
static STOPPED: Mutex<()> = Mutex::new(());

/// kube-controller-manager, stopped until this is dropped.
pub struct StoppedControllerManager {
    pid: String,
    _one: std::sync::MutexGuard<'static, ()>,
}

fn pid_file() -> PathBuf {
    kubeconfig()
        .parent()
        .expect("the kubeconfig is in the cluster dir")
        .join("pids/kube-controller-manager")
}

fn signal(pid: &str, sig: &str) -> bool {
    // The pid leads its own process group (setsid): signal the whole group.
    std::process::Command::new("kill")
        .args([sig, "--", &format!("-{pid}")])
        .status()
        .is_ok_and(|s| s.success())
}

impl StoppedControllerManager {
    /// Stops the local cluster's kube-controller-manager; `None` on a cluster that hack/cluster.sh
    /// did not start (kind, in-cluster runs), where there is no process to stop.
    pub fn stop() -> Option<Self> {
        let pid = std::fs::read_to_string(pid_file()).ok()?.trim().to_string();
        let one = STOPPED.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            signal(&pid, "-STOP"),
            "cannot stop kube-controller-manager ({pid})"
        );
        Some(StoppedControllerManager { pid, _one: one })
    }

    /// Continues it (also on drop).
    pub fn start(self) {}
}

impl Drop for StoppedControllerManager {
    fn drop(&mut self) {
        if !signal(&self.pid, "-CONT") {
            eprintln!("could not continue kube-controller-manager ({})", self.pid);
        }
    }
}
