//! What a delivery to one channel came to: the vocabulary the sinks report in and metrics,
//! `/status` and the pipeline read, kept below all of them so none reaches up into the sinks.

use std::time::Duration;

use crate::alert::AlertKey;

/// A successful delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delivered {
    /// Provider references for firing messages (Slack `ts`), kept so resolutions can thread.
    pub references: Vec<(AlertKey, String)>,
    /// The provider's answer, shortened, for `/test-channel`.
    pub response: String,
}

/// A delivery that failed for good: names the channel, never a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("channel {channel:?} ({sink}): {message} after {attempts} attempt(s)")]
pub struct SendError {
    pub channel: String,
    pub sink: &'static str,
    pub message: String,
    pub attempts: u32,
}

/// Outcome of one delivery, for metrics and logs.
#[derive(Debug)]
pub struct Report {
    pub channel: String,
    pub sink: &'static str,
    pub attempts: u32,
    pub latency: Duration,
    pub result: Result<Delivered, SendError>,
}
