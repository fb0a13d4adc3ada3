//! The operator's live status: what `/status` shows beside the configuration and the active
//! alerts. Written by whoever learns something (deliveries, configuration reloads, leader
//! election) through [`crate::metrics::Metrics`], read by the HTTP server.

use std::collections::BTreeMap;
use std::sync::RwLock;

use jiff::Timestamp;
use serde::Serialize;

use crate::delivery::Report;

/// The last configuration that was rejected while an older one stayed in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigError {
    pub at: Timestamp,
    pub message: String,
}

/// The last outcome of deliveries to one channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelStatus {
    pub last_success: Option<Timestamp>,
    pub last_failure: Option<Timestamp>,
    /// The error of the last failure (sinks never put secrets in it).
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    leader: bool,
    config_error: Option<ConfigError>,
    channels: BTreeMap<String, ChannelStatus>,
}

/// Shared, cheap to update; see the module documentation.
#[derive(Debug)]
pub struct Status {
    inner: RwLock<Inner>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            inner: RwLock::new(Inner {
                // A single replica leads until leader election says otherwise.
                leader: true,
                config_error: None,
                channels: BTreeMap::new(),
            }),
        }
    }
}

impl Status {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().expect("status lock is never poisoned")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().expect("status lock is never poisoned")
    }

    pub fn is_leader(&self) -> bool {
        self.read().leader
    }

    pub fn set_leader(&self, leader: bool) {
        self.write().leader = leader;
    }

    /// The last rejected configuration, until a later one is applied.
    pub fn config_error(&self) -> Option<ConfigError> {
        self.read().config_error.clone()
    }

    pub fn config_rejected(&self, message: &str, at: Timestamp) {
        self.write().config_error = Some(ConfigError {
            at,
            message: message.to_string(),
        });
    }

    pub fn config_applied(&self) {
        self.write().config_error = None;
    }

    /// Per-channel outcomes, by channel name.
    pub fn channels(&self) -> BTreeMap<String, ChannelStatus> {
        self.read().channels.clone()
    }

    /// Records the outcome of one delivery (deliveries skipped without an attempt are ignored).
    pub fn record_delivery(&self, report: &Report, at: Timestamp) {
        if report.attempts == 0 && report.result.is_ok() {
            return;
        }
        let mut inner = self.write();
        let entry = inner.channels.entry(report.channel.clone()).or_default();
        match &report.result {
            Ok(_) => entry.last_success = Some(at),
            Err(e) => {
                entry.last_failure = Some(at);
                entry.last_error = Some(e.message.clone());
            }
        }
    }
}
