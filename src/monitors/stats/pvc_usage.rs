//! `pvc_usage`: PersistentVolumeClaims filling up, from the volume stats of kubelet summaries
//! (`pods[].volume[]` with a `pvcRef`). Space or inodes used at `warn_at` percent warns, at
//! `crit_at` is critical; from `trend_from` percent, a volume that at the rate of the last
//! `trend_window` fills within `fill_within` warns too (the kubernetes-mixin's
//! KubePersistentVolumeFillingUp). Claims with access mode `ReadOnlyMany`, the label
//! `excluded_from_alerts=true` or `kpulse.io/ignore` are skipped. Resolvable: when neither rule
//! holds any more, the claim is no longer mounted, or it is deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;

use super::level::{bytes, level, percent};
use crate::alert::{Alert, AlertKey, Severity};
use crate::config::monitors::PvcUsage;
use crate::kubelet::{PvcRef, Summary};
use crate::monitors::filter::{self, Namespaces};
use crate::monitors::trend::{Series, roughly};

pub const NAME: &str = "pvc_usage";
pub const KIND: &str = "PersistentVolumeClaim";

/// The free-space and free-inode history of each claim (`SpaceUsage` / `InodeUsage`).
pub type Trends = BTreeMap<(PvcRef, &'static str), Series>;

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

    pub fn contains(&self, pvc: &PvcRef) -> bool {
        self.0.contains_key(pvc)
    }
}

/// Records a reading of `free` and says how soon the claim fills, when the prediction is on, the
/// claim is `used` percent full, at least `trend_from`, and it fills within `fill_within`.
fn fills_in(
    settings: &PvcUsage,
    series: &mut Series,
    used: f64,
    free: Option<u64>,
    now: Timestamp,
) -> Option<Duration> {
    if settings.fill_within.is_zero() {
        return None;
    }
    let window = settings.trend_window.get();
    series.record(now, free? as f64, window);
    if used < f64::from(settings.trend_from) {
        return None;
    }
    series
        .time_to_empty(now, window)
        .filter(|left| *left <= settings.fill_within.get())
}

/// The worse of the static level and a fill prediction (which warns).
fn severity(settings: &PvcUsage, used: f64, fills_in: Option<Duration>) -> Option<Severity> {
    let trend = fills_in.map(|_| Severity::Warning);
    level(used, settings.warn_at, settings.crit_at).max(trend)
}

/// Every reported claim mounted on this node, with what fires about it (nothing when it is fine).
/// Records each claim's free space and inodes in `trends`.
pub fn evaluate(
    settings: &PvcUsage,
    node: &str,
    summary: &Summary,
    claims: &Claims,
    trends: &mut Trends,
    now: Timestamp,
) -> BTreeMap<PvcRef, Vec<Alert>> {
    let window = humantime::format_duration(settings.trend_window.get()).to_string();
    let rate = |left: Option<Duration>| match left {
        Some(left) => format!(
            " At the rate of the last {window} it is full in about {}.",
            roughly(left)
        ),
        None => String::new(),
    };
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
            let filling = |pct: f64, left: Option<Duration>, what: String| match left {
                Some(_) if pct < f64::from(settings.warn_at) => format!("{what} and filling up"),
                _ => what,
            };
            // What both alerts end with: how soon it fills, the pod, node and claim labels.
            let finish = |mut a: Alert, left: Option<Duration>| {
                if let Some(left) = left {
                    a = a.field("Full in", format!("about {}", roughly(left)));
                }
                a.field("Pod", format!("{ns}/{}", pod.pod_ref.name))
                    .node(node)
                    .labels(labels.clone())
            };
            let fs = &volume.fs;
            if let Some(pct) = fs.space_used_percent() {
                let series = trends.entry((pvc.clone(), "SpaceUsage")).or_default();
                let left = fills_in(settings, series, pct, fs.available_bytes, now);
                if let Some(severity) = severity(settings, pct, left) {
                    let (cap, free) = (
                        fs.capacity_bytes.unwrap_or(0),
                        fs.available_bytes.unwrap_or(0),
                    );
                    let title =
                        filling(pct, left, format!("volume {name} is {} full", percent(pct)));
                    let a = Alert::new(key("SpaceUsage"), severity, title, now)
                        .message(format!(
                            "PersistentVolumeClaim {ns}/{name} ({mounted}) is {} full: {} free of {}.{} Writes fail when it is full: free space, or expand the claim if its StorageClass allows it.",
                            percent(pct),
                            bytes(free),
                            bytes(cap),
                            rate(left)
                        ))
                        .field("Used", format!("{pct:.1}%"))
                        .field("Free", bytes(free))
                        .field("Capacity", bytes(cap));
                    alerts.push(finish(a, left));
                }
            }
            if let Some(pct) = fs.inodes_used_percent() {
                let series = trends.entry((pvc.clone(), "InodeUsage")).or_default();
                let left = fills_in(settings, series, pct, fs.inodes_free, now);
                if let Some(severity) = severity(settings, pct, left) {
                    let free = fs.inodes_free.unwrap_or(0);
                    let title = filling(
                        pct,
                        left,
                        format!("volume {name} has used {} of its inodes", percent(pct)),
                    );
                    let a = Alert::new(key("InodeUsage"), severity, title, now)
                        .message(format!(
                            "PersistentVolumeClaim {ns}/{name} ({mounted}) has used {} of its inodes ({free} left).{} New files cannot be created when none are left, even with free space: remove small files or move to a larger volume.",
                            percent(pct),
                            rate(left)
                        ))
                        .field("Inodes used", format!("{pct:.1}%"));
                    alerts.push(finish(a, left));
                }
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

    /// One evaluation without history.
    fn once(
        settings: &PvcUsage,
        s: &Summary,
        list: &[PersistentVolumeClaim],
    ) -> BTreeMap<PvcRef, Vec<Alert>> {
        let mut trends = Trends::default();
        evaluate(
            settings,
            "n1",
            s,
            &claims(list),
            &mut trends,
            Timestamp::UNIX_EPOCH,
        )
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
        }; // 90 / 97
        let list = [
            claim("shop", "a", &["ReadWriteOnce"], json!({})),
            claim("shop", "b", &["ReadWriteOnce"], json!({})),
            claim("shop", "c", &["ReadWriteOnce"], json!({})),
            claim("shop", "d", &["ReadWriteOnce"], json!({})),
        ];
        let s = summary(json!([
            vol("a", 50, 900),
            vol("b", 10, 900),
            vol("c", 2, 900),
            vol("d", 50, 20)
        ]));
        let out = once(&settings, &s, &list);
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
        assert_eq!(b.title, "volume b is 90% full");
        assert!(
            b.message.contains("mounted by pod db-0 on node n1"),
            "{}",
            b.message
        );
        assert_eq!(b.node.as_deref(), Some("n1"));
    }

    #[test]
    fn a_claim_filling_up_warns_before_the_static_threshold() {
        let settings = PvcUsage {
            enabled: true,
            ..PvcUsage::default()
        }; // warn 90, from 85% filling within 4d over 6h
        let list = [
            claim("shop", "fast", &["ReadWriteOnce"], json!({})),
            claim("shop", "steady", &["ReadWriteOnce"], json!({})),
            claim("shop", "low", &["ReadWriteOnce"], json!({})),
        ];
        let claims = claims(&list);
        let mut trends = Trends::default();
        let at = |mins: i64| Timestamp::from_second(1_800_000_000 + mins * 60).unwrap();
        // Capacity 10000 bytes. `fast` goes from 80% to 86% used over 3h (2% an hour: full in
        // about 7 hours); `steady` sits at 86%; `low` falls as fast as `fast` but from 50%.
        let mut last = BTreeMap::new();
        for step in 0..=18 {
            let used_fast = 8000 + step * 600 / 18;
            let s = summary(json!([
                {"name": "v", "pvcRef": {"name": "fast", "namespace": "shop"},
                 "capacityBytes": 10000, "availableBytes": 10000 - used_fast},
                {"name": "v", "pvcRef": {"name": "steady", "namespace": "shop"},
                 "capacityBytes": 10000, "availableBytes": 1400},
                {"name": "v", "pvcRef": {"name": "low", "namespace": "shop"},
                 "capacityBytes": 10000, "availableBytes": 5000 - step * 600 / 18},
            ]));
            last = evaluate(
                &settings,
                "n1",
                &s,
                &claims,
                &mut trends,
                at(step as i64 * 10),
            );
            if step < 9 {
                assert!(
                    last.values().all(Vec::is_empty),
                    "under half of the window: no prediction yet ({step})"
                );
            }
        }
        assert_eq!(
            reasons(&last, "fast"),
            vec![("SpaceUsage".into(), Severity::Warning)]
        );
        assert_eq!(reasons(&last, "steady"), vec![], "86% but not filling");
        assert_eq!(
            reasons(&last, "low"),
            vec![],
            "filling, but below trend_from"
        );
        let fast = &last[&PvcRef {
            name: "fast".into(),
            namespace: "shop".into(),
        }][0];
        assert_eq!(fast.title, "volume fast is 86% full and filling up");
        assert!(
            fast.message
                .contains("At the rate of the last 6h it is full in about 7h 0m."),
            "{}",
            fast.message
        );
        assert_eq!(trends.len(), 3, "space series only: no inode stats given");

        // With the prediction off, 86% is fine.
        let off = PvcUsage {
            fill_within: crate::config::HumanDuration::secs(0),
            ..settings.clone()
        };
        let s = summary(
            json!([{"name": "v", "pvcRef": {"name": "fast", "namespace": "shop"},
                                "capacityBytes": 10000, "availableBytes": 1400}]),
        );
        let out = once(&off, &s, &list);
        assert_eq!(reasons(&out, "fast"), vec![]);
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
        let out = once(&settings, &s, &list);
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
        let out = once(&settings, &s, &list);
        assert_eq!(reasons(&out, "shared").len(), 1);
    }
}
