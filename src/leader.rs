//! High availability: with `--leader-election`, replicas compete for the Lease `kpulse-leader`
//! in the release namespace (kube-lease-manager). Every replica watches and decides, so a standby
//! is warm; only the leader sends notifications and writes `kpulse-state`. On takeover the new
//! leader first loads the state the old one wrote (within a second of its last notification, and on
//! a graceful shutdown), so nothing is sent twice and nothing is forgotten, then sends the
//! point-in-time alerts it saw as a standby that the old leader never sent.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
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

/// Joins the election and follows it until cancelled: becoming leader loads the state and
/// replays what this replica saw as a standby ([`Pipeline::take_over`]), then sends; losing the
/// lease stops sending at once. On cancellation a leader releases the lease.
///
/// A standby does not sleep until the lease expires: it watches the Lease object, and a release
/// (a leader's graceful shutdown) makes it read the Lease afresh and take it at once. A leader
/// that dies without releasing is replaced when its lease expires (`--lease-duration`).
pub async fn run(
    client: Client,
    pipeline: Pipeline,
    store: SharedStore,
    election: Election,
    token: CancellationToken,
) {
    pipeline.set_leader(false);
    let Some(mut manager) = join(&client, &election, &token).await else {
        return;
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), &election.namespace);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", election.lease));
    let mut lease_changes = std::pin::pin!(
        watcher::watcher(leases, by_name)
            .default_backoff()
            .applied_objects()
    );
    tracing::info!(identity = %election.identity, lease = %election.lease, "standby: waiting for the lease");
    let mut leading = false;
    loop {
        // `changed` renews the lease while this replica holds it, and otherwise sleeps until the
        // holder's lease would expire. Only a released Lease cuts that sleep short: the manager
        // re-reads a Lease it believes held only once the hold would have expired, so a new
        // manager reads it afresh. Other changes (renewals) leave `changed` running, so a
        // renewal in flight is never dropped.
        let next = {
            let changed = manager.changed();
            tokio::pin!(changed);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break None,
                    result = &mut changed => break Some(result),
                    lease = lease_changes.next() => {
                        if !leading && matches!(lease, Some(Ok(ref l)) if released(l)) {
                            break Some(Ok(false));
                        }
                    }
                }
            }
        };
        let changed = match next {
            None => break,
            // Released: look again with a fresh manager.
            Some(Ok(false)) if !leading => {
                match join(&client, &election, &token).await {
                    Some(m) => manager = m,
                    None => break,
                }
                continue;
            }
            Some(result) => result,
        };
        match changed {
            Ok(true) if !leading => {
                leading = true;
                let snapshot = store.lock().await.load().await;
                let replayed = pipeline.take_over(snapshot);
                tracing::info!(identity = %election.identity, replayed, "leader: took over, state loaded");
                tokio::spawn(crate::welcome::greet(pipeline.clone(), store.clone()));
            }
            Ok(false) if leading => {
                leading = false;
                pipeline.set_leader(false);
                tracing::warn!(identity = %election.identity, "lost the lease: standby");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "leader election error; retrying");
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    if leading {
        pipeline.set_leader(false);
        match tokio::time::timeout(Duration::from_secs(5), manager.release()).await {
            Ok(Ok(())) => tracing::info!(identity = %election.identity, "lease released"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot release the lease; a standby takes over when it expires")
            }
            Err(_) => tracing::warn!(
                "releasing the lease timed out; a standby takes over when it expires"
            ),
        }
    }
}

/// Whether nobody holds the Lease (a leader released it).
fn released(lease: &Lease) -> bool {
    lease
        .spec
        .as_ref()
        .is_none_or(|s| s.holder_identity.as_deref().is_none_or(str::is_empty))
}

/// A lease manager for this replica, retried until it can be built; `None` once cancelled.
async fn join(
    client: &Client,
    election: &Election,
    token: &CancellationToken,
) -> Option<LeaseManager> {
    let secs = election.duration.as_secs().max(2);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &election.lease)
            .with_namespace(&election.namespace)
            .with_identity(&election.identity)
            .with_duration(secs)
            .with_grace((secs / 3).max(1))
            .build()
            .await;
        match built {
            Ok(m) => return Some(m),
            Err(e) => {
                tracing::warn!(error = %e, lease = %election.lease, "cannot join the leader election; retrying");
                tokio::select! {
                    _ = token.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}
