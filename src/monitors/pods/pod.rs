//! What every pod monitor reads and reports the same way: a pod's container statuses, its
//! owning workload, and the alert about it (keyed by the pod, carrying its labels, owner and
//! node).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

use crate::alert::{Alert, AlertKey, Severity};
use crate::evidence::{self, Evidence};

/// Every container status of a pod with whether it is an init container, init containers
/// first.
pub fn containers(pod: &Pod) -> impl Iterator<Item = (&ContainerStatus, bool)> {
    let s = pod.status.as_ref();
    let init = s
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c, true));
    let main = s
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c, false));
    init.chain(main)
}

/// An alert about `pod` from `monitor`, keyed by the pod and `reason`, completed by [`about`].
pub fn alert(
    monitor: &str,
    pod: &Pod,
    reason: &str,
    severity: Severity,
    title: String,
    now: Timestamp,
) -> Alert {
    let key = AlertKey::new(
        monitor,
        pod.namespace().unwrap_or_default(),
        "Pod",
        pod.name_any(),
        reason,
    );
    about(Alert::new(key, severity, title, now), pod)
}

/// `Deployment/api` for a pod of ReplicaSet `api-7d9f8c`, else the direct owner.
pub fn owner(pod: &Pod) -> Option<String> {
    let o = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))?;
    if o.kind == "ReplicaSet"
        && let Some(hash) = pod.labels().get("pod-template-hash")
        && let Some(deploy) = o.name.strip_suffix(&format!("-{hash}"))
    {
        return Some(format!("Deployment/{deploy}"));
    }
    Some(format!("{}/{}", o.kind, o.name))
}

/// The owner chain, nearest first: `ReplicaSet/api-7d9f`, `Deployment/api` (inferred from the
/// ReplicaSet's name and the pod's `pod-template-hash`, as [`owner`] does).
pub fn owners(pod: &Pod) -> Vec<String> {
    let Some(o) = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    else {
        return Vec::new();
    };
    let mut out = vec![format!("{}/{}", o.kind, o.name)];
    if let Some(top) = owner(pod).filter(|top| *top != out[0]) {
        out.push(top);
    }
    out
}

/// Completes a pod's alert with what every pod monitor reports: the pod's labels (for routing
/// rules), its owning workload, its node, and its owner chain as evidence.
pub fn about(alert: Alert, pod: &Pod) -> Alert {
    let mut a = alert.labels(pod.labels().clone());
    a.owner = owner(pod);
    a.node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    a.evidence.owners = owners(pod);
    a
}

/// `alert` with the evidence of `status` (see [`container`]).
pub fn with_container(mut alert: Alert, pod: &Pod, status: &ContainerStatus) -> Alert {
    let init = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .is_some_and(|l| l.iter().any(|c| c.name == status.name));
    alert.evidence.container = Some(evidence::container::of(pod, status, init));
    alert
}

/// Evidence with the owner chain of `pod` only.
pub fn evidence_of(pod: &Pod) -> Evidence {
    Evidence {
        owners: owners(pod),
        ..Evidence::default()
    }
}
