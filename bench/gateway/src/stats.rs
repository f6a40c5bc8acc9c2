//! Latency summaries: exact percentiles over every sample (a run keeps at most a few hundred
//! thousand, so sorting them all is cheaper and simpler than a histogram, and exact).

use std::fmt::Write as _;

/// Percentiles of a set of samples, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Summary {
    /// Summarises `samples` (sorted in place). Nearest-rank percentiles: the value below which
    /// at least that fraction of the samples lie, always one of the samples.
    pub fn of(samples: &mut [u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Summary {
            n,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[n - 1],
            mean: samples.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
        }
    }

    /// As a JSON object: `{"p50": …, "p90": …, "p99": …, "p99.9": …, "max": …, "mean": …}`.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"p99.9\": {}, \"max\": {}, \"mean\": {:.1}}}",
            self.p50, self.p90, self.p99, self.p999, self.max, self.mean
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = Summary::of(&mut v);
        assert_eq!((s.p50, s.p90, s.p99, s.p999, s.max), (500, 900, 990, 999, 1000));
        assert_eq!(s.n, 1000);
        assert!((s.mean - 500.5).abs() < 1e-9);
        assert_eq!(Summary::of(&mut []), Summary::default());
        let mut one = [7];
        assert_eq!(Summary::of(&mut one).p999, 7);
    }
}
