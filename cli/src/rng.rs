//! Deterministic randomness: SplitMix64, with independent streams derived from the seed and a
//! few labels, so that request `r`'s draws are the same under every policy (a fair comparison)
//! and the same on every machine (the report is byte-identical for a seed).

use crate::workload::Dist;

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// The stream named by `labels` under `seed`.
    pub fn stream(seed: u64, labels: &[u64]) -> Rng {
        let mut state = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
        for (i, l) in labels.iter().enumerate() {
            state = mix(state ^ mix(l.wrapping_add(i as u64 + 1)));
        }
        Rng(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with this mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A draw from `dist`.
    pub fn draw(&mut self, dist: &Dist) -> f64 {
        match *dist {
            Dist::Fixed(x) => x,
            Dist::Uniform(lo, hi) => lo + (hi - lo) * self.unit(),
            Dist::LogNormal { median, p99 } => {
                // z(0.99) = 2.326: p99 = median · e^(2.326σ).
                let sigma = (p99 / median).ln() / 2.326_347_874;
                median * (sigma * self.normal()).exp()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(7, &[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::stream(7, &[1, 2]).next_u64(), Rng::stream(7, &[2, 1]).next_u64());
        assert_ne!(Rng::stream(7, &[1]).next_u64(), Rng::stream(8, &[1]).next_u64());
    }

    #[test]
    fn lognormal_median_and_p99() {
        let mut r = Rng::stream(1, &[]);
        let mut xs: Vec<f64> = (0..100_000)
            .map(|_| {
                r.draw(&Dist::LogNormal {
                    median: 100.0,
                    p99: 1000.0,
                })
            })
            .collect();
        xs.sort_by(f64::total_cmp);
        let (p50, p99) = (xs[50_000], xs[99_000]);
        assert!((p50 - 100.0).abs() < 3.0, "p50 {p50}");
        assert!((p99 - 1000.0).abs() < 60.0, "p99 {p99}");
    }
}
