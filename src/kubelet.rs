//! Kubelet stats: the `/stats/summary` document every kubelet serves (stats API `v1alpha1`), read
//! through the API server's node proxy (`GET /api/v1/nodes/NAME/proxy/stats/summary`, which needs
//! `get nodes/proxy`). Only the fields the monitors read are parsed; every one may be missing.

use futures::future::BoxFuture;
use serde::Deserialize;

/// The parts of a kubelet stats summary kpulse reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStats {
    pub node_name: String,
    /// The filesystem of the kubelet's root directory (nodefs).
    pub fs: Option<FsStats>,
    pub runtime: Option<RuntimeStats>,
    pub rlimit: Option<RlimitStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeStats {
    /// Where the container runtime keeps images (imagefs).
    pub image_fs: Option<FsStats>,
    /// Where writable container layers live, when split from the image filesystem.
    pub container_fs: Option<FsStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RlimitStats {
    /// The node's process-ID limit.
    pub maxpid: Option<u64>,
    /// Processes running now.
    pub curproc: Option<u64>,
}

/// Space and inodes of one filesystem or volume.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FsStats {
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

impl FsStats {
    /// Percent of the space in use, from capacity and available (what `df` shows).
    pub fn space_used_percent(&self) -> Option<f64> {
        used_percent(self.capacity_bytes?, self.available_bytes?)
    }

    /// Percent of the inodes in use.
    pub fn inodes_used_percent(&self) -> Option<f64> {
        used_percent(self.inodes?, self.inodes_free?)
    }
}

fn used_percent(total: u64, free: u64) -> Option<f64> {
    (total > 0).then(|| 100.0 * total.saturating_sub(free) as f64 / total as f64)
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStats {
    pub pod_ref: PodRef,
    pub volume: Vec<VolumeStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeStats {
    /// The volume's name in the pod spec.
    pub name: String,
    /// Set when the volume is a PersistentVolumeClaim.
    pub pvc_ref: Option<PvcRef>,
    #[serde(flatten)]
    pub fs: FsStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(default)]
pub struct PvcRef {
    pub name: String,
    pub namespace: String,
}

/// Reads one node's stats summary. An error says why, without secrets.
pub trait StatsFetcher: Send + Sync {
    fn summary<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Summary, String>>;
}

/// Reads stats through the API server's node proxy.
pub struct ApiProxy {
    client: kube::Client,
}

impl ApiProxy {
    pub fn new(client: kube::Client) -> Self {
        ApiProxy { client }
    }
}

impl StatsFetcher for ApiProxy {
    fn summary<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Summary, String>> {
        Box::pin(async move {
            let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
            let request = ::http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            self.client
                .request::<Summary>(request)
                .await
                .map_err(|e| match e {
                    kube::Error::Api(e) => format!("{} ({})", e.message, e.code),
                    e => e.to_string(),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fields_kpulse_reads_and_ignores_the_rest() {
        let s: Summary = serde_json::from_value(serde_json::json!({
            "node": {
                "nodeName": "n1",
                "cpu": {"usageNanoCores": 1},
                "fs": {"availableBytes": 25, "capacityBytes": 100, "usedBytes": 70,
                       "inodesFree": 900, "inodes": 1000, "inodesUsed": 100},
                "runtime": {"imageFs": {"availableBytes": 1, "capacityBytes": 10}},
                "rlimit": {"time": "2026-11-23T10:00:00Z", "maxpid": 1000, "curproc": 900}
            },
            "pods": [{
                "podRef": {"name": "db-0", "namespace": "shop", "uid": "u"},
                "volume": [
                    {"name": "data", "pvcRef": {"name": "data-db-0", "namespace": "shop"},
                     "availableBytes": 5, "capacityBytes": 100},
                    {"name": "tmp"}
                ]
            }]
        }))
        .unwrap();
        let fs = s.node.fs.as_ref().unwrap();
        assert_eq!(fs.space_used_percent(), Some(75.0));
        assert_eq!(fs.inodes_used_percent(), Some(10.0));
        let image = s.node.runtime.as_ref().unwrap().image_fs.as_ref().unwrap();
        assert_eq!(image.space_used_percent(), Some(90.0));
        assert_eq!(s.node.rlimit.as_ref().unwrap().curproc, Some(900));
        let v = &s.pods[0].volume;
        assert_eq!(v[0].pvc_ref.as_ref().unwrap().name, "data-db-0");
        assert_eq!(v[0].fs.space_used_percent(), Some(95.0));
        assert_eq!(v[1].pvc_ref, None);
        assert_eq!(v[1].fs.space_used_percent(), None);
    }

    #[test]
    fn zero_capacity_has_no_percentage() {
        let fs = FsStats {
            capacity_bytes: Some(0),
            available_bytes: Some(0),
            ..FsStats::default()
        };
        assert_eq!(fs.space_used_percent(), None);
    }
}
