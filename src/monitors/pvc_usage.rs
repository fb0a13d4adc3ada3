//! `pvc_usage`: PersistentVolumeClaims filling up, from the volume stats of kubelet summaries
//! (`pods[].volume[]` with a `pvcRef`). Space or inodes used at `warn_at` percent warns, at
//! `crit_at` is critical. Claims with access mode `ReadOnlyMany`, the label
//! `excluded_from_alerts=true` or `kpulse.io/ignore` are skipped. Resolvable: when usage drops
//! below `warn_at`, the claim is no longer mounted, or it is deleted.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;

use super::filter::{self, Namespaces};
use super::stats::{bytes, level, percent};
use crate::alert::{Alert, AlertKey};
use crate::config::monitors::PvcUsage;
use crate::kubelet::{PvcRef, Summary};

pub const NAME: &str = "pvc_usage";
pub const KIND: &str = "PersistentVolumeClaim";

/// The claims that may be reported, with their labels. Built from one list of every claim.
#[derive(Debug, Default, Clone)]
pub struct Claims(BTreeMap<PvcRef, BTreeMap<String, String>>);

impl Claims {
    pub fn new(claims: &[PersistentVolumeClaim], namespaces: &Namespaces) -> Self {
        let mut all = Claims::default();
        for c in claims {
            all.add(c, namespaces);
        }
        all
    }

    /// Adds a claim, unless it is not to be reported.
    pub fn add(&mut self, c: &PersistentVolumeClaim, namespaces: &Namespaces) {
        let read_only_many = c
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.as_ref())
            .is_some_and(|m| m.iter().any(|m| m == "ReadOnlyMany"));
        let excluded = c
            .labels()
            .get("excluded_from_alerts")
            .is_some_and(|v| v == "true");
        let ns = c.namespace().unwrap_or_default();
        if read_only_many
            || excluded
            || filter::ignored(c.metadata.labels.as_ref(), c.metadata.annotations.as_ref())
            || !namespaces.watched(&ns)
        {
            return;
        }
        let at = PvcRef {
            name: c.name_any(),
            namespace: ns,
        };
        self.0.insert(at, c.labels().clone());
    }
}

/// Every reported claim mounted on this node, with what fires about it (nothing when it is fine).
pub fn evaluate(
    settings: &PvcUsage,
    node: &str,
    summary: &Summary,
    claims: &Claims,
    now: Timestamp,
) -> BTreeMap<PvcRef, Vec<Alert>> {
    let mut out: BTreeMap<PvcRef, Vec<Alert>> = BTreeMap::new();
    for pod in &summary.pods {
        for volume in &pod.volume {
            let Some(pvc) = volume.pvc_ref.as_ref() else {
                continue;
            };
            let Some(labels) = claims.0.get(pvc) else {
                continue;
            };
            let alerts = out.entry(pvc.clone()).or_default();
            if !alerts.is_empty() {
                continue; // the same claim mounted by another pod on this node
            }
            let (ns, name) = (&pvc.namespace, &pvc.name);
            let key = |reason: &str| AlertKey::new(NAME, ns, KIND, name, reason);
            let mounted = format!("mounted by pod {} on node {node}", pod.pod_ref.name);
            let fs = &volume.fs;
            if let Some(pct) = fs.space_used_percent()
                && let Some(severity) = level(pct, settings.warn_at, settings.crit_at)
            {
                let (cap, free) = (
                    fs.capacity_bytes.unwrap_or(0),
                    fs.available_bytes.unwrap_or(0),
                );
                let a = Alert::new(key("SpaceUsage"), severity, format!("volume {name} is {} full", percent(pct)), now)
                    .message(format!(
                        "PersistentVolumeClaim {ns}/{name} ({mounted}) is {} full: {} free of {}. Writes fail when it is full: free space, or expand the claim if its StorageClass allows it.",
                        percent(pct),
                        bytes(free),
                        bytes(cap)
                    ))
                    .field("Used", format!("{pct:.1}%"))
                    .field("Free", bytes(free))
                    .field("Capacity", bytes(cap))
                    .field("Pod", format!("{ns}/{}", pod.pod_ref.name))
                    .node(node)
                    .labels(labels.clone());
                alerts.push(a);
            }
            if let Some(pct) = fs.inodes_used_percent()
                && let Some(severity) = level(pct, settings.warn_at, settings.crit_at)
            {
                let free = fs.inodes_free.unwrap_or(0);
                let a = Alert::new(key("InodeUsage"), severity, format!("volume {name} has used {} of its inodes", percent(pct)), now)
                    .message(format!(
                        "PersistentVolumeClaim {ns}/{name} ({mounted}) has used {} of its inodes ({free} left). New files cannot be created when none are left, even with free space: remove small files or move to a larger volume.",
                        percent(pct)
                    ))
                    .field("Inodes used", format!("{pct:.1}%"))
                    .field("Pod", format!("{ns}/{}", pod.pod_ref.name))
                    .node(node)
                    .labels(labels.clone());
                alerts.push(a);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::alert::Severity;
    use crate::config::NamespaceFilter;
    use crate::monitors::filter::Filter;

    fn claim(
        ns: &str,
        name: &str,
        modes: &[&str],
        labels: serde_json::Value,
    ) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"accessModes": modes},
        }))
        .unwrap()
    }

    fn summary(volumes: serde_json::Value) -> Summary {
        serde_json::from_value(json!({
            "node": {"nodeName": "n1"},
            "pods": [{"podRef": {"name": "db-0", "namespace": "shop"}, "volume": volumes}],
        }))
        .unwrap()
    }

    fn vol(pvc: &str, avail: u64, inodes_free: u64) -> serde_json::Value {
        json!({"name": "v", "pvcRef": {"name": pvc, "namespace": "shop"},
               "capacityBytes": 100, "availableBytes": avail, "inodes": 1000, "inodesFree": inodes_free})
    }

    fn claims(list: &[PersistentVolumeClaim]) -> Claims {
        let namespaces = Namespaces {
            filter: Arc::new(Filter::new(&NamespaceFilter {
                include: vec![],
                exclude: vec!["kube-*".into()],
            })),
            ignored: Arc::new(Default::default()),
        };
        Claims::new(list, &namespaces)
    }

    fn reasons(out: &BTreeMap<PvcRef, Vec<Alert>>, pvc: &str) -> Vec<(String, Severity)> {
        let at = PvcRef {
            name: pvc.into(),
            namespace: "shop".into(),
        };
        out[&at]
            .iter()
            .map(|a| (a.key.reason.clone(), a.severity))
            .collect()
    }

    #[test]
    fn thresholds_for_space_and_inodes() {
        let settings = PvcUsage {
            enabled: true,
            ..PvcUsage::default()
        }; // 85 / 97
        let list = [
            claim("shop", "a", &["ReadWriteOnce"], json!({})),
            claim("shop", "b", &["ReadWriteOnce"], json!({})),
            claim("shop", "c", &["ReadWriteOnce"], json!({})),
            claim("shop", "d", &["ReadWriteOnce"], json!({})),
        ];
        let s = summary(json!([
            vol("a", 50, 900),
            vol("b", 15, 900),
            vol("c", 2, 900),
            vol("d", 50, 20)
        ]));
        let out = evaluate(&settings, "n1", &s, &claims(&list), Timestamp::UNIX_EPOCH);
        assert_eq!(
            reasons(&out, "a"),
            vec![],
            "50% is fine, and still examined"
        );
        assert_eq!(
            reasons(&out, "b"),
            vec![("SpaceUsage".into(), Severity::Warning)]
        );
        assert_eq!(
            reasons(&out, "c"),
            vec![("SpaceUsage".into(), Severity::Critical)]
        );
        assert_eq!(
            reasons(&out, "d"),
            vec![("InodeUsage".into(), Severity::Critical)]
        );
        let b = &out[&PvcRef {
            name: "b".into(),
            namespace: "shop".into(),
        }][0];
        assert_eq!(b.title, "volume b is 85% full");
        assert!(
            b.message.contains("mounted by pod db-0 on node n1"),
            "{}",
            b.message
        );
        assert_eq!(b.node.as_deref(), Some("n1"));
    }

    #[test]
    fn read_only_many_excluded_ignored_and_filtered_claims_are_skipped() {
        let settings = PvcUsage {
            enabled: true,
            ..PvcUsage::default()
        };
        let list = [
            claim("shop", "rox", &["ReadOnlyMany"], json!({})),
            claim(
                "shop",
                "excl",
                &["ReadWriteOnce"],
                json!({"excluded_from_alerts": "true"}),
            ),
            claim(
                "shop",
                "quiet",
                &["ReadWriteOnce"],
                json!({"kpulse.io/ignore": "true"}),
            ),
            claim("kube-system", "sys", &["ReadWriteOnce"], json!({})),
        ];
        let mut s = summary(json!([
            vol("rox", 1, 900),
            vol("excl", 1, 900),
            vol("quiet", 1, 900),
            vol("unknown", 1, 900)
        ]));
        s.pods[0].volume.push(serde_json::from_value(json!({"name": "v", "pvcRef": {"name": "sys", "namespace": "kube-system"}, "capacityBytes": 100, "availableBytes": 1})).unwrap());
        let out = evaluate(&settings, "n1", &s, &claims(&list), Timestamp::UNIX_EPOCH);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_claim_mounted_twice_on_a_node_is_reported_once() {
        let settings = PvcUsage {
            enabled: true,
            ..PvcUsage::default()
        };
        let list = [claim("shop", "shared", &["ReadWriteMany"], json!({}))];
        let s = summary(json!([vol("shared", 10, 900), vol("shared", 10, 900)]));
        let out = evaluate(&settings, "n1", &s, &claims(&list), Timestamp::UNIX_EPOCH);
        assert_eq!(reasons(&out, "shared").len(), 1);
    }
}
