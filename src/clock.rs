//! The one source of time: the pipeline's clock, handed to whatever needs "now" (monitors, the
//! sinks' registry, metrics callers), so tests can inject their own and nothing reads the wall
//! clock on the side.

use std::sync::Arc;

use jiff::Timestamp;

/// A source of time; tests inject their own.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn wall() -> Clock {
    Arc::new(Timestamp::now)
}
