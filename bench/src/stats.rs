//! Latency samples and their summary.

use std::time::{Duration, Instant};

/// Latencies of one measured operation, in nanoseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// Records one latency.
    pub fn push(&mut self, elapsed: Duration) {
        self.0.push(elapsed.as_nanos() as u64);
    }

    /// Records the time since `started`.
    pub fn since(&mut self, started: Instant) {
        self.push(started.elapsed());
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in microseconds, nearest rank.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1_000.0
    }

    /// The median in microseconds.
    pub fn median_us(&self) -> f64 {
        self.quantile_us(0.5)
    }

    /// The 99th percentile in microseconds.
    pub fn p99_us(&self) -> f64 {
        self.quantile_us(0.99)
    }
}
