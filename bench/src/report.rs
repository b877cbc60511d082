//! Latency samples and their summary.

use std::time::Duration;

/// Latencies of one phase.
#[derive(Default)]
pub struct Samples {
    micros: Vec<u64>,
    /// Failed requests.
    pub errors: u64,
}

impl Samples {
    /// Records one latency.
    pub fn add(&mut self, d: Duration) {
        self.micros.push(d.as_micros() as u64);
    }

    /// Merges another set.
    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// The p-th percentile in milliseconds.
    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_unstable();
        let i = ((p / 100.0) * (self.micros.len() - 1) as f64).round() as usize;
        self.micros[i.min(self.micros.len() - 1)] as f64 / 1000.0
    }

    /// The largest latency in milliseconds.
    pub fn max(&self) -> f64 {
        self.micros.iter().copied().max().unwrap_or(0) as f64 / 1000.0
    }

    /// A one-line summary: rate, p50, p99, max, errors.
    pub fn line(&mut self, name: &str, elapsed: Duration) -> String {
        let rate = self.len() as f64 / elapsed.as_secs_f64();
        format!(
            "| {name} | {:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms | {} |",
            rate,
            self.percentile(50.0),
            self.percentile(99.0),
            self.max(),
            self.errors
        )
    }
}

/// The table header matching [`Samples::line`].
pub const HEADER: &str =
    "| phase | throughput | p50 | p99 | max | errors |\n|---|---|---|---|---|---|";
