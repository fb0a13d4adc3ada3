//! `kpulse-state`: the engine snapshot, kept in a ConfigMap so a restart never re-fires an alert
//! nor forgets one.
//!
//! The snapshot is JSON, gzip-compressed, in `binaryData["state.json.gz"]`. Writes use optimistic
//! concurrency (the last seen resourceVersion). The payload is bounded below the ConfigMap limit by
//! an explicit pruning rule, see [`fit`]. A corrupt or foreign state is reported and ignored.
//! Nothing is written while the content is what was last written or loaded: an idle kpulse makes
//! no API writes.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::engine::Snapshot;
use crate::pipeline::Pipeline;

/// Name of the state ConfigMap.
pub const NAME: &str = "kpulse-state";
/// Key of the compressed snapshot in `binaryData`.
pub const KEY: &str = "state.json.gz";
/// Key (in `data`) of the fingerprint of the configuration the last welcome message announced.
pub const ANNOUNCED_KEY: &str = "announced-config";
/// Largest compressed payload written: well below the 1 MiB ConfigMap limit, leaving room for
/// metadata.
pub const MAX_BYTES: usize = 900 * 1024;

/// Why a stored state was not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("ConfigMap {NAME} has no binaryData key {KEY}: not written by kpulse")]
    Missing,
    #[error("state is not valid gzip: {0}")]
    Compression(String),
    #[error("state is not a kpulse snapshot: {0}")]
    Format(String),
    #[error("state has format version {found}; this kpulse reads version {expected}")]
    Version { found: u32, expected: u32 },
}

/// Compresses a snapshot.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let json = serde_json::to_vec(snapshot).expect("a snapshot always serializes");
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json).expect("writing to memory cannot fail");
    gz.finish().expect("writing to memory cannot fail")
}

/// Reads a snapshot written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Snapshot, StateError> {
    let mut json = Vec::new();
    GzDecoder::new(bytes)
        .take(64 * 1024 * 1024)
        .read_to_end(&mut json)
        .map_err(|e| StateError::Compression(e.to_string()))?;
    let version: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| StateError::Format(e.to_string()))?;
    let found = version.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    if found != Snapshot::VERSION {
        return Err(StateError::Version {
            found,
            expected: Snapshot::VERSION,
        });
    }
    serde_json::from_value(version).map_err(|e| StateError::Format(e.to_string()))
}

/// Encodes `snapshot` within `limit` bytes, pruning if needed. Returns the payload and how many
/// entries were dropped.
///
/// Pruning rule, in order, oldest first: dedupe entries of alerts that are not active (they only
/// stop a repeat of a past point-in-time alert), then queued digest items, then — only if still
/// too large — active alerts (which then cannot send their `[RESOLVED]` after a restart).
pub fn fit(mut snapshot: Snapshot, limit: usize) -> (Vec<u8>, usize) {
    let mut pruned = 0;
    loop {
        let bytes = encode(&snapshot);
        if bytes.len() <= limit {
            return (bytes, pruned);
        }
        // Drop a share proportional to the excess, at least one entry.
        let excess = (bytes.len() - limit) as f64 / bytes.len() as f64;
        let active: std::collections::HashSet<_> = snapshot
            .active
            .iter()
            .map(|a| a.alert.key.clone())
            .collect();
        let stale: Vec<usize> = {
            let mut idx: Vec<usize> = (0..snapshot.dedupe.len())
                .filter(|&i| !active.contains(&snapshot.dedupe[i].0))
                .collect();
            idx.sort_by_key(|&i| snapshot.dedupe[i].1);
            idx
        };
        let digest_items: usize = snapshot.digest.values().map(|q| q.items.len()).sum();
        if !stale.is_empty() {
            let n = ((stale.len() as f64 * excess * 1.2).ceil() as usize).clamp(1, stale.len());
            let drop: std::collections::HashSet<usize> = stale.into_iter().take(n).collect();
            let mut i = 0;
            snapshot.dedupe.retain(|_| {
                let keep = !drop.contains(&i);
                i += 1;
                keep
            });
            pruned += n;
        } else if digest_items > 0 {
            let n = ((digest_items as f64 * excess * 1.2).ceil() as usize).clamp(1, digest_items);
            let mut items: Vec<(jiff::Timestamp, String, usize)> = snapshot
                .digest
                .iter()
                .flat_map(|(c, q)| {
                    q.items
                        .iter()
                        .enumerate()
                        .map(move |(i, it)| (it.notification.at, c.clone(), i))
                })
                .collect();
            items.sort();
            let mut drop: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (_, c, i) in items.into_iter().take(n) {
                drop.entry(c).or_default().push(i);
            }
            for (c, mut idx) in drop {
                idx.sort_unstable_by(|a, b| b.cmp(a));
                if let Some(q) = snapshot.digest.get_mut(&c) {
                    for i in idx {
                        q.items.remove(i);
                    }
                }
            }
            snapshot.digest.retain(|_, q| !q.items.is_empty());
            pruned += n;
        } else if !snapshot.active.is_empty() {
            let len = snapshot.active.len();
            let n = ((len as f64 * excess * 1.2).ceil() as usize).clamp(1, len);
            snapshot.active.sort_by_key(|a| a.since);
            snapshot.active.drain(..n);
            pruned += n;
        } else {
            // Nothing left to prune: an empty snapshot always fits any sane limit.
            return (bytes, pruned);
        }
    }
}

/// Reads and writes the state ConfigMap.
pub struct StateStore {
    api: Api<ConfigMap>,
    resource_version: Option<String>,
    /// Fingerprint of the configuration the last welcome message announced (see
    /// [`crate::welcome`]); written with every snapshot.
    announced: Option<String>,
    /// The payload and fingerprint last written or loaded: a write of the same is skipped.
    stored: Option<(Vec<u8>, Option<String>)>,
}

/// What [`StateStore::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The ConfigMap now holds the snapshot: its compressed size and the entries pruned to fit.
    Stored { bytes: usize, pruned: usize },
    /// The ConfigMap already held this content; no request was made.
    Unchanged,
}

impl StateStore {
    pub fn new(client: Client, namespace: &str) -> Self {
        StateStore {
            api: Api::namespaced(client, namespace),
            resource_version: None,
            announced: None,
            stored: None,
        }
    }

    /// The fingerprint of the configuration last announced, as loaded or set.
    pub fn announced(&self) -> Option<&str> {
        self.announced.as_deref()
    }

    /// Records an announced configuration; it is stored with the next write.
    pub fn set_announced(&mut self, fingerprint: String) {
        self.announced = Some(fingerprint);
    }

    /// The stored snapshot, if there is a usable one. Problems are logged, never fatal.
    pub async fn load(&mut self) -> Option<Snapshot> {
        let cm = match self.api.get_opt(NAME).await {
            Ok(Some(cm)) => cm,
            Ok(None) => {
                tracing::info!("no {NAME} ConfigMap yet: starting with an empty state");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read {NAME}: starting with an empty state");
                return None;
            }
        };
        self.resource_version = cm.metadata.resource_version.clone();
        self.announced = cm.data.as_ref().and_then(|d| d.get(ANNOUNCED_KEY)).cloned();
        self.stored = cm
            .binary_data
            .as_ref()
            .and_then(|d| d.get(KEY))
            .map(|b| (b.0.clone(), self.announced.clone()));
        let result = cm
            .binary_data
            .as_ref()
            .and_then(|d| d.get(KEY))
            .ok_or(StateError::Missing)
            .and_then(|b| decode(&b.0));
        match result {
            Ok(s) => {
                tracing::info!(
                    active = s.active.len(),
                    dedupe = s.dedupe.len(),
                    "state loaded from {NAME}"
                );
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the stored state: it will be overwritten");
                None
            }
        }
    }

    /// Writes a snapshot, unless the ConfigMap already holds this content.
    pub async fn write(&mut self, snapshot: Snapshot) -> Result<Written, kube::Error> {
        // Nothing kept and nothing to keep (a quiet cluster since the first start): creating an
        // empty ConfigMap would be an API write that saves nothing.
        if self.resource_version.is_none()
            && self.stored.is_none()
            && self.announced.is_none()
            && snapshot.is_empty()
        {
            return Ok(Written::Unchanged);
        }
        let (bytes, pruned) = fit(snapshot, MAX_BYTES);
        let size = bytes.len();
        let content = (bytes, self.announced.clone());
        if self.resource_version.is_some() && self.stored.as_ref() == Some(&content) {
            return Ok(Written::Unchanged);
        }
        let bytes = content.0.clone();
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.to_string()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "kpulse".to_string(),
                )])),
                ..Default::default()
            },
            binary_data: Some(BTreeMap::from([(KEY.to_string(), ByteString(bytes))])),
            data: Some(
                [
                    (
                        "format".to_string(),
                        format!(
                            "kpulse snapshot v{}, gzip JSON in binaryData.{KEY}",
                            Snapshot::VERSION
                        ),
                    ),
                    ("written-at".to_string(), jiff::Timestamp::now().to_string()),
                ]
                .into_iter()
                .chain(
                    self.announced
                        .clone()
                        .map(|a| (ANNOUNCED_KEY.to_string(), a)),
                )
                .collect(),
            ),
            ..Default::default()
        };
        for attempt in 0..2 {
            let result = match &self.resource_version {
                Some(rv) => {
                    cm.metadata.resource_version = Some(rv.clone());
                    self.api.replace(NAME, &PostParams::default(), &cm).await
                }
                None => {
                    cm.metadata.resource_version = None;
                    self.api.create(&PostParams::default(), &cm).await
                }
            };
            match result {
                Ok(written) => {
                    self.resource_version = written.metadata.resource_version;
                    self.stored = Some(content);
                    return Ok(Written::Stored {
                        bytes: size,
                        pruned,
                    });
                }
                // Someone else wrote it (or it appeared/disappeared): learn its version, retry once.
                Err(kube::Error::Api(s)) if attempt == 0 && matches!(s.code, 404 | 409) => {
                    self.resource_version = self
                        .api
                        .get_opt(NAME)
                        .await?
                        .and_then(|c| c.metadata.resource_version);
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Writes the pipeline's snapshot and records metrics and a log line.
    pub async fn save(&mut self, pipeline: &Pipeline) {
        let snapshot = pipeline.snapshot();
        let active = snapshot.active.len();
        let m = pipeline.metrics();
        match self.write(snapshot).await {
            Ok(Written::Unchanged) => {
                tracing::debug!(active, "state unchanged: not written");
            }
            Ok(Written::Stored {
                bytes: size,
                pruned,
            }) => {
                m.state_writes
                    .get_or_create(&crate::metrics::ResultLabels {
                        result: "ok".into(),
                    })
                    .inc();
                m.state_size_bytes.set(size as i64);
                if pruned > 0 {
                    m.state_pruned.inc_by(pruned as u64);
                    tracing::warn!(pruned, "state too large: pruned the oldest entries");
                }
                tracing::info!(bytes = size, active, "state written");
            }
            Err(e) => {
                m.state_writes
                    .get_or_create(&crate::metrics::ResultLabels {
                        result: "error".into(),
                    })
                    .inc();
                tracing::warn!(error = %e, "cannot write {NAME}; will retry");
            }
        }
    }
}

/// The state store, shared by the periodic writer, shutdown and a leadership takeover.
pub type SharedStore = std::sync::Arc<tokio::sync::Mutex<StateStore>>;

/// Writes the state every `state.interval` (read from the live configuration), and about a
/// second after any alert fired or resolved, so a crash loses at most that second. Only the
/// leader writes.
pub async fn run_writer(
    store: SharedStore,
    pipeline: Pipeline,
    token: tokio_util::sync::CancellationToken,
) {
    loop {
        let interval = pipeline.runtime().config.state.interval.get();
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = pipeline.changed() => {
                // Let a burst of alerts settle into one write.
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
        if pipeline.is_leader() {
            store.lock().await.save(&pipeline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertKey, Finding, Severity};
    use crate::config::{SecretMap, load};
    use crate::engine::{Engine, Scope, Settings};
    use jiff::Timestamp;

    fn engine() -> Engine {
        let c = load("channels: {l: {type: log}}\nrouting: {default: [l]}\ndedupe: {window: 1000h, digest: {severities: [info]}}\n", &SecretMap::new()).unwrap();
        Engine::new(Settings::from_config(&c).unwrap())
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn alert(i: usize, sev: Severity) -> Alert {
        // Random-looking names so compression cannot hide the size.
        let name = format!(
            "pod-{:016x}",
            (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        );
        Alert::new(
            AlertKey::new("pod_crashes", "ns", "Pod", name, "OOMKilled"),
            sev,
            format!("title {i}"),
            t(i as i64),
        )
        .message(format!(
            "message {i} {:x}",
            (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
        ))
    }

    #[test]
    fn round_trip() {
        let mut e = engine();
        e.reconcile(
            "pod_crashes",
            &Scope::All,
            vec![Finding::firing(alert(1, Severity::Warning))],
            t(0),
        );
        let s = e.snapshot();
        assert_eq!(decode(&encode(&s)).unwrap(), s);
    }

    #[test]
    fn corrupt_or_foreign_state_is_rejected_with_a_reason() {
        assert!(matches!(
            decode(b"not gzip at all"),
            Err(StateError::Compression(_))
        ));
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{\"hello\": 1}").unwrap();
        assert_eq!(
            decode(&gz.finish().unwrap()),
            Err(StateError::Version {
                found: 0,
                expected: Snapshot::VERSION
            })
        );
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(b"{\"version\": 1, \"dedupe\": 7}").unwrap();
        assert!(matches!(
            decode(&gz.finish().unwrap()),
            Err(StateError::Format(_))
        ));
    }

    #[test]
    fn pruning_drops_old_dedupe_entries_before_active_alerts() {
        let mut e = engine();
        // 3000 point-in-time alerts (dedupe entries only) and 50 active conditions.
        for i in 0..3000 {
            e.submit(alert(i, Severity::Warning).one_shot(), t(i as i64));
        }
        let active: Vec<Alert> = (5000..5050).map(|i| alert(i, Severity::Warning)).collect();
        let findings = active.iter().cloned().map(Finding::firing).collect();
        e.reconcile("pod_crashes", &Scope::All, findings, t(6000));
        let full = encode(&e.snapshot()).len();
        let limit = full / 3;
        let (bytes, pruned) = fit(e.snapshot(), limit);
        assert!(bytes.len() <= limit, "{} > {limit}", bytes.len());
        assert!(pruned > 0);
        let kept = decode(&bytes).unwrap();
        assert_eq!(
            kept.active.len(),
            50,
            "active alerts survive while dedupe entries can go"
        );
        // The newest dedupe entries are the ones kept.
        let oldest_kept = kept
            .dedupe
            .iter()
            .filter(|(k, _)| !active.iter().any(|a| &a.key == k))
            .map(|(_, ts)| *ts)
            .min()
            .unwrap();
        assert!(
            oldest_kept > t(1000),
            "oldest kept entry {oldest_kept} should be recent"
        );
    }

    #[test]
    fn pruning_reaches_digest_items_then_active_alerts_as_a_last_resort() {
        let mut e = engine();
        for i in 0..400 {
            e.submit(alert(i, Severity::Info), t(i as i64)); // digested, and active
        }
        let full = encode(&e.snapshot()).len();
        let (bytes, pruned) = fit(e.snapshot(), full / 4);
        assert!(bytes.len() <= full / 4);
        let kept = decode(&bytes).unwrap();
        assert!(pruned > 0);
        assert!(kept.digest.values().map(|q| q.items.len()).sum::<usize>() < 400);
        // Whatever active alerts remain are the newest.
        if let Some(oldest) = kept.active.iter().map(|a| a.since).min() {
            assert!(kept.active.iter().all(|a| a.since >= oldest));
        }
        let small = fit(e.snapshot(), usize::MAX);
        assert_eq!(small.1, 0, "nothing is pruned when it fits");
    }
}
