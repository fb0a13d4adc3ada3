//! High availability: with `--leader-election`, replicas compete for the Lease `kpulse-leader`
//! in the release namespace (kube-lease-manager). Every replica watches and decides, so a standby
//! is warm; only the leader sends notifications and writes `kpulse-state`. On takeover the new
//! leader first loads the state the old one wrote (within a second of its last notification, and on
//! a graceful shutdown), so nothing is sent twice and nothing is forgotten.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;
use crate::state::SharedStore;

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct Election {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
    /// How long a lease holder that stopped renewing keeps the lease.
    pub duration: Duration,
}

/// Joins the election and follows it until cancelled: becoming leader loads the state, then
/// enables sending; losing the lease disables sending at once. On cancellation the lease is
/// released (by dropping the receiver), so a standby takes over without waiting for expiry.
pub async fn run(
    client: Client,
    pipeline: Pipeline,
    store: SharedStore,
    election: Election,
    token: CancellationToken,
) {
    pipeline.set_leader(false);
    let secs = election.duration.as_secs().max(2);
    let manager = loop {
        let built = LeaseManagerBuilder::new(client.clone(), &election.lease)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(secs)
            .with_grace((secs / 3).max(1))
            .build()
            .await;
        match built {
            Ok(m) => break m,
            Err(e) => {
                tracing::warn!(error = %e, lease = %election.lease, "cannot join the leader election; retrying");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };
    let (mut leading, handle): (watch::Receiver<bool>, JoinHandle<_>) = manager.watch().await;
    tracing::info!(identity = %election.identity, lease = %election.lease, "standby: waiting for the lease");
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            changed = leading.changed() => {
                if changed.is_err() {
                    tracing::error!("leader election stopped; sending nothing from this replica");
                    pipeline.set_leader(false);
                    break;
                }
                let now_leader = *leading.borrow_and_update();
                if now_leader {
                    if let Some(snapshot) = store.lock().await.load().await {
                        pipeline.restore(snapshot);
                    }
                    pipeline.set_leader(true);
                    tracing::info!(identity = %election.identity, "leader: took over, state loaded");
                } else {
                    pipeline.set_leader(false);
                    tracing::warn!(identity = %election.identity, "lost the lease: standby");
                }
            }
        }
    }
    // Dropping the receiver makes the manager release the lease.
    drop(leading);
    let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
}
