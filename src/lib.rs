//! kpulse: an event-driven Kubernetes alerting operator.
//!
//! The data path reads top to bottom: monitors ([`monitors`]) observe the cluster and report
//! alerts to the [`pipeline`], which asks the pure [`engine`] what to send and hands the result to
//! the [`sinks`]. Configuration lives in [`config`].

pub mod alert;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod engine;
pub mod evidence;
pub mod examples;
pub mod generated;
pub mod http;
pub mod kubelet;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod monitors;
pub mod operator;
pub mod pipeline;
pub mod redact;
pub mod reload;
pub mod silences;
pub mod sinks;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod templates;
pub mod welcome;

/// Installs the process-wide rustls crypto provider (ring). Call once, first thing in `main`;
/// later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
