//! `node_disk`: node filesystems filling up, from kubelet summaries: the kubelet's root filesystem
//! (`nodefs`, `node.fs`), the runtime's image filesystem (`imagefs`) and, when split from it, the
//! container filesystem (`containerfs`). Space or inodes used at `warn_at` percent warns, at
//! `crit_at` is critical, so the alert comes before the kubelet starts evicting pods (by default
//! at nodefs < 10% free, imagefs < 15% free, nodefs inodes < 5% free). A filesystem that reports
//! the same figures as the one before it is the same disk and is not reported twice.
//! Resolvable: when usage drops below `warn_at` or the node is deleted.

use jiff::Timestamp;

use super::level::{bytes, level, percent};
use crate::alert::{Alert, AlertKey};
use crate::config::monitors::NodeDisk;
use crate::kubelet::{FsStats, Summary};

pub const NAME: &str = "node_disk";

/// What fires about this node's filesystems.
pub fn evaluate(settings: &NodeDisk, node: &str, summary: &Summary, now: Timestamp) -> Vec<Alert> {
    let runtime = summary.node.runtime.as_ref();
    let filesystems = [
        ("nodefs", "Nodefs", summary.node.fs.as_ref()),
        (
            "imagefs",
            "Imagefs",
            runtime.and_then(|r| r.image_fs.as_ref()),
        ),
        (
            "containerfs",
            "Containerfs",
            runtime.and_then(|r| r.container_fs.as_ref()),
        ),
    ];
    let mut seen: Vec<&FsStats> = Vec::new();
    let mut out = Vec::new();
    for (fs_name, reason, fs) in filesystems {
        let Some(fs) = fs else { continue };
        if seen.iter().any(|s| same_disk(s, fs)) {
            continue;
        }
        seen.push(fs);
        let key = |what: &str| AlertKey::new(NAME, "", "Node", node, format!("{reason}{what}"));
        if let Some(pct) = fs.space_used_percent()
            && let Some(severity) = level(pct, settings.warn_at, settings.crit_at)
        {
            let (cap, free) = (
                fs.capacity_bytes.unwrap_or(0),
                fs.available_bytes.unwrap_or(0),
            );
            out.push(
                Alert::new(key("Space"), severity, format!("node {node}: {fs_name} is {} full", percent(pct)), now)
                    .message(format!(
                        "The {fs_name} filesystem of node {node} is {} full: {} free of {}. The kubelet evicts pods and refuses new ones when it runs out: remove unused images and logs, or grow the disk.",
                        percent(pct),
                        bytes(free),
                        bytes(cap)
                    ))
                    .field("Filesystem", fs_name)
                    .field("Used", format!("{pct:.1}%"))
                    .field("Free", bytes(free))
                    .field("Capacity", bytes(cap))
                    .node(node),
            );
        }
        if let Some(pct) = fs.inodes_used_percent()
            && let Some(severity) = level(pct, settings.warn_at, settings.crit_at)
        {
            out.push(
                Alert::new(key("Inodes"), severity, format!("node {node}: {fs_name} has used {} of its inodes", percent(pct)), now)
                    .message(format!(
                        "The {fs_name} filesystem of node {node} has used {} of its inodes ({} left). The kubelet evicts pods when they run out, even with free space.",
                        percent(pct),
                        fs.inodes_free.unwrap_or(0)
                    ))
                    .field("Filesystem", fs_name)
                    .field("Inodes used", format!("{pct:.1}%"))
                    .node(node),
            );
        }
    }
    out
}

/// Kubelets report the image filesystem again when it is the root filesystem.
fn same_disk(a: &FsStats, b: &FsStats) -> bool {
    a.capacity_bytes.is_some()
        && a.capacity_bytes == b.capacity_bytes
        && a.available_bytes == b.available_bytes
        && a.inodes == b.inodes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::alert::Severity;

    fn fs(avail: u64, inodes_free: u64) -> serde_json::Value {
        json!({"capacityBytes": 1000, "availableBytes": avail, "inodes": 100, "inodesFree": inodes_free})
    }

    fn fired(node: serde_json::Value) -> Vec<(String, Severity)> {
        let summary: Summary = serde_json::from_value(json!({"node": node})).unwrap();
        let settings = NodeDisk {
            enabled: true,
            ..NodeDisk::default()
        }; // 80 / 90
        evaluate(&settings, "n1", &summary, Timestamp::UNIX_EPOCH)
            .into_iter()
            .map(|a| (a.key.reason, a.severity))
            .collect()
    }

    #[test]
    fn thresholds_per_filesystem() {
        let cases = [
            (json!({"fs": fs(500, 50)}), vec![]),
            (
                json!({"fs": fs(200, 50)}),
                vec![("NodefsSpace".into(), Severity::Warning)],
            ),
            (
                json!({"fs": fs(50, 50)}),
                vec![("NodefsSpace".into(), Severity::Critical)],
            ),
            (
                json!({"fs": fs(500, 5)}),
                vec![("NodefsInodes".into(), Severity::Critical)],
            ),
            (
                json!({"fs": fs(500, 50), "runtime": {"imageFs": fs(150, 50)}}),
                vec![("ImagefsSpace".into(), Severity::Warning)],
            ),
            (
                json!({"fs": fs(500, 50), "runtime": {"imageFs": fs(500, 50), "containerFs": fs(10, 50)}}),
                vec![("ContainerfsSpace".into(), Severity::Critical)],
            ),
            (json!({}), vec![]),
        ];
        for (node, want) in cases {
            assert_eq!(fired(node.clone()), want, "{node}");
        }
    }

    #[test]
    fn the_root_filesystem_reported_again_as_imagefs_fires_once() {
        let got = fired(json!({"fs": fs(50, 50), "runtime": {"imageFs": fs(50, 50)}}));
        assert_eq!(got, vec![("NodefsSpace".into(), Severity::Critical)]);
    }
}
