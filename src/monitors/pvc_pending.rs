//! `pvc_pending`: PersistentVolumeClaims that stay `Pending` for `for` (warning) — no volume
//! could be provisioned or bound — or are `Lost` (critical: the bound volume is gone).
//! Resolvable: resolves once the claim is Bound, or deleted.
//!
//! A claim of a `WaitForFirstConsumer` storage class is Pending by design until a pod using it is
//! scheduled (the scheduler then sets the `volume.kubernetes.io/selected-node` annotation); such
//! a claim is only reported once a node was selected. Storage classes come from a small watch
//! of StorageClasses; when it is unavailable, every Pending claim counts.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::watch::{Finding, ObjectMonitor};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "pvc_pending";
crate::monitors::feeds::feed!(PVCS: PersistentVolumeClaim, NAME, |w| Arc::new(PvcPending::new(w.storage_classes.clone())));

/// Set by the scheduler on a WaitForFirstConsumer claim once its pod has a node.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

pub struct PvcPending {
    classes: Store<StorageClass>,
}

impl PvcPending {
    pub fn new(classes: Store<StorageClass>) -> Self {
        PvcPending { classes }
    }

    fn waits_for_consumer(&self, class: &str) -> bool {
        self.classes
            .get(&ObjectRef::new(class))
            .is_some_and(|sc| sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
    }
}

/// The decision: what is firing for `pvc` at `now`, given whether its storage class waits for
/// the first consumer.
pub fn decide(
    config: &Config,
    pvc: &PersistentVolumeClaim,
    wait_for_first_consumer: bool,
    now: Timestamp,
) -> Option<Alert> {
    let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref())?;
    let name = pvc.name_any();
    let ns = pvc.namespace().unwrap_or_default();
    let class = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let class_text = if class.is_empty() {
        "no storage class".to_string()
    } else {
        format!("storage class {class:?}")
    };
    let created = pvc
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let (reason, severity, message) = match phase {
        "Pending" => {
            let selected = pvc.annotations().get(SELECTED_NODE);
            if wait_for_first_consumer && selected.is_none() {
                return None;
            }
            if created + config.monitors.pvc_pending.r#for.signed() > now {
                return None;
            }
            (
                "Pending",
                Severity::Warning,
                format!(
                    "PersistentVolumeClaim {ns}/{name} ({class_text}) has been Pending since {created}: no volume was bound or provisioned. Check that the storage class exists and the provisioner's events (ProvisioningFailed).",
                    created = display_time(created)
                ),
            )
        }
        "Lost" => (
            "Lost",
            Severity::Critical,
            format!(
                "PersistentVolumeClaim {ns}/{name} ({class_text}) is Lost: its PersistentVolume no longer exists, so its data is unavailable to the pods that use it."
            ),
        ),
        _ => return None,
    };
    let mut a = Alert::new(
        AlertKey::new(NAME, ns, "PersistentVolumeClaim", name.clone(), reason),
        severity,
        format!("PVC {name} {reason}"),
        now,
    )
    .message(message)
    .labels(pvc.labels().clone());
    if !class.is_empty() {
        a = a.field("Storage class", class);
    }
    if phase == "Pending" {
        a.first_seen = created;
    }
    Some(a)
}

impl ObjectMonitor<PersistentVolumeClaim> for PvcPending {
    fn name(&self) -> &'static str {
        NAME
    }

    fn enabled(&self, config: &Config) -> bool {
        config.monitors.pvc_pending.enabled
    }

    fn firing(&self, config: &Config, pvc: &PersistentVolumeClaim, now: Timestamp) -> Vec<Finding> {
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .unwrap_or("");
        let wffc = !class.is_empty() && self.waits_for_consumer(class);
        decide(config, pvc, wffc, now)
            .map(Finding::firing)
            .into_iter()
            .collect()
    }
}

/// Keeps metadata (with the selected-node annotation), the storage class and the phase.
pub fn trim(pvc: &mut PersistentVolumeClaim) {
    let meta = &mut pvc.metadata;
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| k == super::IGNORE || k == SELECTED_NODE);
    }
    if let Some(spec) = pvc.spec.as_mut() {
        spec.data_source = None;
        spec.data_source_ref = None;
        spec.selector = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit::{at, config};
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;
    use serde_json::json;

    fn pvc(class: &str, phase: &str, selected: bool) -> PersistentVolumeClaim {
        let annotations = if selected {
            json!({SELECTED_NODE: "n1"})
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": "data-db-0", "namespace": "shop", "creationTimestamp": "2026-11-22T11:50:00Z",
                "annotations": annotations},
            "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn decision_table() {
        let c = config(""); // for: 5m; the claim was created at 11:50
        type Case<'a> = (
            &'a str,
            PersistentVolumeClaim,
            bool,
            &'a str,
            Option<(&'a str, Severity)>,
        );
        let cases: Vec<Case> = vec![
            (
                "pending 10m",
                pvc("fast", "Pending", false),
                false,
                "2026-11-22T12:00:00Z",
                Some(("Pending", Severity::Warning)),
            ),
            (
                "pending 2m",
                pvc("fast", "Pending", false),
                false,
                "2026-11-22T11:52:00Z",
                None,
            ),
            (
                "waiting for its first consumer",
                pvc("local", "Pending", false),
                true,
                "2026-11-22T13:00:00Z",
                None,
            ),
            (
                "consumer scheduled, still pending",
                pvc("local", "Pending", true),
                true,
                "2026-11-22T13:00:00Z",
                Some(("Pending", Severity::Warning)),
            ),
            (
                "lost",
                pvc("fast", "Lost", false),
                false,
                "2026-11-22T11:50:01Z",
                Some(("Lost", Severity::Critical)),
            ),
            (
                "bound",
                pvc("fast", "Bound", false),
                false,
                "2026-11-22T13:00:00Z",
                None,
            ),
        ];
        for (name, p, wffc, now, want) in cases {
            let got = decide(&c, &p, wffc, at(now));
            let got = got.as_ref().map(|a| (a.key.reason.as_str(), a.severity));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn storage_classes_decide_wait_for_first_consumer() {
        let mut w = Writer::<StorageClass>::default();
        let sc: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "local"}, "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"
        }))
        .unwrap();
        w.apply_watcher_event(&watcher::Event::Apply(sc));
        let m = PvcPending::new(w.as_reader());
        let c = config("");
        let now = at("2026-11-22T13:00:00Z");
        assert!(
            m.firing(&c, &pvc("local", "Pending", false), now)
                .is_empty()
        );
        let a = &m.firing(&c, &pvc("missing", "Pending", false), now)[0].alert;
        assert_eq!(
            a.key.to_string(),
            "pvc_pending/shop/PersistentVolumeClaim/data-db-0/Pending"
        );
        assert_eq!(
            a.message,
            "PersistentVolumeClaim shop/data-db-0 (storage class \"missing\") has been Pending since 2026-11-22T11:50:00Z: no volume was bound or provisioned. Check that the storage class exists and the provisioner's events (ProvisioningFailed)."
        );
        assert_eq!(a.first_seen, at("2026-11-22T11:50:00Z"));
    }
}
