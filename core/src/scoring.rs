//! Scoring (docs/design.md §5): `score = clamp01(w_q·Q + w_h·H + w_p·P + w_l·L + w_c·K)`.

use crate::config::ScoringWeights;

/// The score terms of one provider, as actually used (Q after its anticipation penalty).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Breakdown {
    /// Q: quota left after this request, minus the anticipation penalty.
    pub quota: f64,
    /// H: health now.
    pub health: f64,
    /// P: priority relative to the capability's largest.
    pub priority: f64,
    /// L: fastest latency among eligible providers over this one's.
    pub latency: f64,
    /// K: cheapest cost among eligible providers over this one's.
    pub cost: f64,
}

impl Breakdown {
    /// The weighted, clamped score.
    pub fn score(&self, w: &ScoringWeights) -> f64 {
        let s = w.quota * self.quota
            + w.health * self.health
            + w.priority * self.priority
            + w.latency * self.latency
            + w.cost * self.cost;
        s.clamp(0.0, 1.0)
    }
}

/// Anticipation penalty `E` for `t` seconds until the first quota runs dry.
pub(crate) fn anticipation_penalty(t: f64) -> f64 {
    if t < 10.0 {
        0.8
    } else if t < 30.0 {
        0.5
    } else if t < 60.0 {
        0.3
    } else if t < 120.0 {
        0.1
    } else {
        0.0
    }
}

/// `P` for each entry: priority over the largest priority (0.5 for all when that is 0).
pub(crate) fn priority_terms(priorities: &[f64]) -> Vec<f64> {
    let max = priorities.iter().copied().fold(0.0, f64::max);
    priorities
        .iter()
        .map(|p| if max == 0.0 { 0.5 } else { p / max })
        .collect()
}

/// `min / x` for a term where smaller is better; 1.0 when `x` is unknown or `min` is unknown.
pub(crate) fn relative(min: Option<f64>, x: Option<f64>) -> f64 {
    match (min, x) {
        (Some(m), Some(x)) if x > 0.0 => m / x,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_bands_are_half_open() {
        assert_eq!(anticipation_penalty(9.999), 0.8);
        assert_eq!(anticipation_penalty(10.0), 0.5);
        assert_eq!(anticipation_penalty(119.9), 0.1);
        assert_eq!(anticipation_penalty(120.0), 0.0);
        assert_eq!(anticipation_penalty(f64::INFINITY), 0.0);
    }

    #[test]
    fn priorities() {
        assert_eq!(priority_terms(&[10.0, 8.0]), vec![1.0, 0.8]);
        assert_eq!(priority_terms(&[0.0, 0.0]), vec![0.5, 0.5]);
    }
}
