//! The `log` sink: one JSON line per notification on standard output.

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::json;

use super::{AttemptError, Batch, Delivered, Notifier, render};

/// Writes notifications as JSON lines. Each line carries the rendered headline in `text`, so a
/// person reading the log sees what a chat sink would show.
pub struct LogSink {
    channel: String,
    out: Arc<Mutex<dyn Write + Send>>,
}

impl LogSink {
    pub fn stdout(channel: &str) -> Self {
        LogSink {
            channel: channel.to_string(),
            out: Arc::new(Mutex::new(std::io::stdout())),
        }
    }

    pub fn to_writer(channel: &str, out: Arc<Mutex<dyn Write + Send>>) -> Self {
        LogSink {
            channel: channel.to_string(),
            out,
        }
    }

    /// The JSON lines for a batch.
    pub fn lines(batch: &Batch) -> Vec<String> {
        batch
            .items
            .iter()
            .map(|item| {
                let n = &item.notification;
                json!({
                    "kpulse": "notification",
                    "channel": batch.channel,
                    "digest": batch.kind == crate::engine::DispatchKind::Digest,
                    "state": n.state,
                    "text": render::headline(&batch.cluster, n),
                    "key": n.alert.key.to_string(),
                    "severity": n.alert.severity,
                    "message": render::summary(n),
                    "at": n.at.to_string(),
                    "alert": n.alert,
                })
                .to_string()
            })
            .collect()
    }
}

impl Notifier for LogSink {
    fn kind(&self) -> &'static str {
        "log"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let lines = Self::lines(batch);
            let mut out = self
                .out
                .lock()
                .map_err(|_| AttemptError::permanent("log output is poisoned"))?;
            for line in &lines {
                writeln!(out, "{line}")
                    .map_err(|e| AttemptError::transient(format!("write failed: {e}")))?;
            }
            out.flush()
                .map_err(|e| AttemptError::transient(format!("flush failed: {e}")))?;
            Ok(Delivered {
                references: Vec::new(),
                response: format!("{} line(s) written for {}", lines.len(), self.channel),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    #[tokio::test]
    async fn writes_one_json_line_per_notification() {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let sink = LogSink::to_writer("log", buf.clone());
        let batch = Batch::test("demo", "log", Timestamp::UNIX_EPOCH);
        sink.attempt(&batch).await.unwrap();
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["state"], "firing");
        assert_eq!(v["channel"], "log");
        assert_eq!(
            v["text"],
            "🚨 [demo] channel/log Test message for channel log"
        );
    }
}
