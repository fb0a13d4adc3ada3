//! Fill-rate prediction for a free-space series, the equivalent of Prometheus'
//! `predict_linear(free[window], horizon) < 0`: a least-squares line through the samples of the
//! last `window`, evaluated now, and the time until it reaches zero.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

/// Samples kept per window at most; closer samples are skipped, so memory per series is bounded
/// whatever the scan interval.
pub const MAX_SAMPLES: u32 = 64;
/// Samples a prediction needs at least.
pub const MIN_SAMPLES: usize = 3;

/// The recent free amounts (bytes or inodes) of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// (seconds since the epoch, free), oldest first.
    samples: VecDeque<(f64, f64)>,
}

impl Series {
    /// Adds a reading taken at `at`, and drops what fell out of `window`. A reading closer than
    /// `window / (MAX_SAMPLES - 1)` to the last one kept is skipped, so at most `MAX_SAMPLES`
    /// are held (1 KiB).
    pub fn record(&mut self, at: Timestamp, free: f64, window: Duration) {
        let now = seconds(at);
        let window = window.as_secs_f64();
        let spacing = window / f64::from(MAX_SAMPLES - 1);
        if self.samples.back().is_none_or(|(t, _)| now - t >= spacing) {
            self.samples.push_back((now, free));
        }
        while self.samples.front().is_some_and(|(t, _)| *t < now - window) {
            self.samples.pop_front();
        }
    }

    /// How long until the series reaches zero at the rate of its samples, if it is falling and
    /// the samples (at least [`MIN_SAMPLES`]) cover at least half of `window`. Measured from
    /// `now` using the fitted line, as `predict_linear` does.
    pub fn time_to_empty(&self, now: Timestamp, window: Duration) -> Option<Duration> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        if self.samples.len() < MIN_SAMPLES || last.0 - first.0 < window.as_secs_f64() / 2.0 {
            return None;
        }
        let n = self.samples.len() as f64;
        // Centre time on the first sample to keep the sums well conditioned.
        let x0 = first.0;
        let (sx, sy) = self
            .samples
            .iter()
            .fold((0.0, 0.0), |(sx, sy), (t, v)| (sx + (t - x0), sy + v));
        let (mx, my) = (sx / n, sy / n);
        let (sxy, sxx) = self.samples.iter().fold((0.0, 0.0), |(sxy, sxx), (t, v)| {
            let dx = t - x0 - mx;
            (sxy + dx * (v - my), sxx + dx * dx)
        });
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx;
        if slope >= 0.0 {
            return None;
        }
        let free_now = (my + slope * (seconds(now) - x0 - mx)).max(0.0);
        Some(Duration::from_secs_f64(free_now / -slope))
    }
}

fn seconds(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// A duration as people say it: `3d 4h`, `5h 20m`, `12m`.
pub fn roughly(d: Duration) -> String {
    let mins = d.as_secs() / 60;
    let (days, hours, mins) = (mins / 1440, mins / 60 % 24, mins % 60);
    match (days, hours) {
        (0, 0) => format!("{}m", mins.max(1)),
        (0, h) => format!("{h}h {mins}m"),
        (d, h) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(mins: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + mins * 60).unwrap()
    }

    const SIX_HOURS: Duration = Duration::from_secs(6 * 3600);

    #[test]
    fn a_steady_fall_predicts_when_it_reaches_zero() {
        let mut s = Series::default();
        // 100 GiB free, losing 1 GiB every 10 minutes: empty 1000 minutes after the start.
        for i in 0..=36 {
            s.record(at(i * 10), 100.0 - i as f64, SIX_HOURS);
        }
        let left = s.time_to_empty(at(360), SIX_HOURS).unwrap();
        assert_eq!(left.as_secs() / 60, 640, "{left:?}");
        assert_eq!(roughly(left), "10h 40m");
    }

    #[test]
    fn no_prediction_without_enough_history_or_when_not_falling() {
        let mut s = Series::default();
        s.record(at(0), 100.0, SIX_HOURS);
        s.record(at(60), 90.0, SIX_HOURS);
        s.record(at(120), 80.0, SIX_HOURS);
        assert_eq!(
            s.time_to_empty(at(120), SIX_HOURS),
            None,
            "2h of a 6h window is too little"
        );
        s.record(at(180), 70.0, SIX_HOURS);
        assert!(s.time_to_empty(at(180), SIX_HOURS).is_some());

        let mut flat = Series::default();
        let mut rising = Series::default();
        for i in 0..=36 {
            flat.record(at(i * 10), 50.0, SIX_HOURS);
            rising.record(at(i * 10), 50.0 + i as f64, SIX_HOURS);
        }
        assert_eq!(flat.time_to_empty(at(360), SIX_HOURS), None);
        assert_eq!(rising.time_to_empty(at(360), SIX_HOURS), None);
    }

    #[test]
    fn samples_are_spaced_and_old_ones_dropped() {
        let mut s = Series::default();
        // One reading a second for 7 hours: one per 6h/63 is kept, none older than 6h.
        for i in 0..7 * 3600 {
            s.record(
                Timestamp::from_second(1_800_000_000 + i).unwrap(),
                1.0,
                SIX_HOURS,
            );
        }
        let kept = s.samples.len();
        assert!(
            (MAX_SAMPLES as usize - 2..=MAX_SAMPLES as usize).contains(&kept),
            "{kept}"
        );
        assert!(s.samples.capacity() <= 2 * MAX_SAMPLES as usize);
        let oldest = s.samples.front().unwrap().0;
        assert!(oldest >= (1_800_000_000 + 3600) as f64 - 1.0);
    }

    #[test]
    fn rough_durations() {
        assert_eq!(roughly(Duration::from_secs(20)), "1m");
        assert_eq!(roughly(Duration::from_secs(12 * 60)), "12m");
        assert_eq!(
            roughly(Duration::from_secs(3 * 86400 + 4 * 3600 + 59)),
            "3d 4h"
        );
    }
}
