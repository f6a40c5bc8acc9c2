//! Health, holds and the circuit breaker of one provider (docs/design.md §6).
//!
//! Health is stored as `(h, t_h)` and read as `1 − (1 − h)·0.5^((now − t_h)/half_life)`, so a
//! provider nobody calls still recovers. A hold (retry-after) makes the provider ineligible
//! until a time; holds only ever extend. The circuit opens after `cooldown_after` consecutive
//! failures, for `cooldown_ms·multiplier^k` (capped), and is half-open from
//! `opened_at + duration` exactly, letting one probe through.

use crate::config::HealthConfig;
use crate::inflight::InFlight;
use crate::vocab::{CircuitState, SkipReason, Status};

/// Mutable per-provider signals. Guarded by the provider's lock.
#[derive(Debug, Clone)]
pub(crate) struct ProviderState {
    h: f64,
    t_h: i64,
    failures: i64,
    /// `Some((until, k))` while the circuit is open or half-open; half-open from `until`.
    tripped: Option<(i64, i32)>,
    pub probe_out: bool,
    pub hold_until: i64,
    pub latency_ms: Option<f64>,
    /// Permits issued on this provider and not yet completed, cancelled or expired.
    pub live_permits: i64,
    /// Their reservations by grant time, for calibration (docs/design.md §7).
    pub in_flight: InFlight,
}

/// What an outcome tells health and the circuit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signal {
    pub status: Status,
    /// The outcome carried a retry-after (in itself or its headers).
    pub has_retry_after: bool,
    pub latency_ms: u64,
    pub reporter: Reporter,
}

impl Signal {
    /// A 429 or 529/503 with a retry-after only holds the provider (docs/design.md §6): health
    /// and the circuit do not change. The one place this rule is written (the Redis script is
    /// told it as the signal letter 'h').
    pub fn hold_only(&self) -> bool {
        self.has_retry_after && matches!(self.status, Status::RateLimited | Status::Overloaded)
    }
}

/// What an outcome means for the circuit, given who reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reporter {
    /// The half-open probe's permit.
    Probe,
    /// Any other permit.
    Permit,
    /// `observe` (a call made without a permit).
    Observe,
}

impl Default for ProviderState {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderState {
    pub fn new() -> ProviderState {
        ProviderState {
            h: 1.0,
            t_h: 0,
            failures: 0,
            tripped: None,
            probe_out: false,
            hold_until: i64::MIN,
            latency_ms: None,
            live_permits: 0,
            in_flight: InFlight::default(),
        }
    }

    /// Health at `now`.
    pub fn health(&self, now: i64, cfg: &HealthConfig) -> f64 {
        if self.h >= 1.0 {
            return 1.0;
        }
        let dt = now.saturating_sub(self.t_h).max(0) as f64;
        1.0 - (1.0 - self.h) * 0.5f64.powf(dt / cfg.half_life_ms as f64)
    }

    /// First time ≥ `now` at which health is back to `min_health`; `None` if it never is.
    pub fn recovered_at(&self, now: i64, cfg: &HealthConfig) -> Option<i64> {
        let h = self.health(now, cfg);
        if h >= cfg.min_health {
            return Some(now);
        }
        if cfg.min_health >= 1.0 {
            return None;
        }
        let dt = cfg.half_life_ms as f64 * ((1.0 - h) / (1.0 - cfg.min_health)).log2();
        let mut t = now.saturating_add(dt.ceil().max(0.0) as i64);
        // Settle float rounding against the very formula the eligibility check uses.
        // (A float estimate is off by a few ms at most; the bound keeps extreme clocks finite.)
        for _ in 0..64 {
            if self.health(t, cfg) >= cfg.min_health {
                break;
            }
            t = t.saturating_add(1);
        }
        for _ in 0..64 {
            if t > now && self.health(t - 1, cfg) >= cfg.min_health {
                t -= 1;
            } else {
                break;
            }
        }
        Some(t)
    }

    /// Circuit state at `now`.
    pub fn circuit(&self, now: i64) -> CircuitState {
        match self.tripped {
            None => CircuitState::Closed,
            Some((until, _)) if now < until => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// Checks the provider's own state for a request at `now` (docs/design.md §4 eligibility
    /// order: held, circuit, health), calling `block` with each reason that rules it out and when
    /// that reason ends (`None`: not predictable). Returns the health. This is the one
    /// eligibility rule: deciding and reserving both use it.
    pub fn check(&self, now: i64, cfg: &HealthConfig, mut block: impl FnMut(SkipReason, Option<i64>)) -> f64 {
        if self.hold_until > now {
            block(SkipReason::Held, Some(self.hold_until));
        }
        match self.circuit(now) {
            CircuitState::Open => block(SkipReason::CircuitOpen, self.circuit_until()),
            CircuitState::HalfOpen if self.probe_out => block(SkipReason::HalfOpenBusy, None),
            _ => {}
        }
        let health = self.health(now, cfg);
        if health < cfg.min_health {
            block(SkipReason::Unhealthy, self.recovered_at(now, cfg));
        }
        health
    }

    /// When an open circuit turns half-open.
    pub fn circuit_until(&self) -> Option<i64> {
        self.tripped.map(|(until, _)| until)
    }

    /// Takes the shared part of the state as a store has it (docs/design.md §9): the hold, the
    /// consecutive failures and the circuit with its probe slot.
    pub fn set_shared(
        &mut self,
        hold: Option<i64>,
        failures: i64,
        tripped_until: Option<i64>,
        k: i32,
        probe_busy: bool,
    ) {
        self.hold_until = hold.unwrap_or(i64::MIN);
        self.failures = failures;
        self.tripped = tripped_until.map(|t| (t, k));
        self.probe_out = probe_busy;
    }

    /// Extends the hold to `until` (holds never shrink).
    pub fn hold(&mut self, until: i64) {
        self.hold_until = self.hold_until.max(until);
    }

    /// Applies an outcome's health, latency and circuit effects (holds are applied by the
    /// caller, first, because they apply even while the circuit is open).
    pub fn record(&mut self, signal: Signal, now: i64, cooldown_ms: i64, cfg: &HealthConfig) {
        let Signal {
            status,
            has_retry_after: _,
            latency_ms,
            reporter,
        } = signal;
        let circuit = self.circuit(now);
        if circuit == CircuitState::Open {
            // Outcomes of calls made before it opened carry no new information.
            return;
        }
        let hold_only = signal.hold_only();
        if !hold_only {
            let h = self.health(now, cfg);
            self.t_h = now;
            if status.is_failure() {
                let penalty = match status {
                    Status::RateLimited => cfg.penalty_rate_limited,
                    Status::Forbidden => cfg.penalty_forbidden,
                    Status::ServerError => cfg.penalty_server_error,
                    Status::Overloaded => cfg.penalty_overloaded,
                    _ => cfg.penalty_timeout,
                };
                self.h = (h - penalty).max(0.0);
                self.failures += 1;
            } else {
                self.h = (h + cfg.boost_success).min(1.0);
                self.failures = 0;
            }
        }
        if status == Status::Success && latency_ms > 0 {
            let sample = latency_ms as f64;
            self.latency_ms = Some(match self.latency_ms {
                None => sample,
                Some(l) => 0.3 * sample + 0.7 * l,
            });
        }
        match circuit {
            CircuitState::HalfOpen => {
                let decides = match reporter {
                    Reporter::Probe => true,
                    Reporter::Observe => !self.probe_out,
                    Reporter::Permit => false,
                };
                if !decides || hold_only {
                    return;
                }
                let k = self.tripped.map(|(_, k)| k).unwrap_or(0);
                if status == Status::Success {
                    self.tripped = None;
                    self.failures = 0;
                } else if status.is_failure() {
                    self.tripped = Some((now.saturating_add(cooldown(cooldown_ms, k + 1, cfg)), k + 1));
                }
            }
            CircuitState::Closed => {
                if self.failures >= cfg.cooldown_after {
                    self.tripped = Some((now.saturating_add(cooldown(cooldown_ms, 0, cfg)), 0));
                }
            }
            CircuitState::Open => {}
        }
    }
}

/// `cooldown_ms · multiplier^k`, capped at `max_cooldown_ms`, rounded up to whole ms.
pub(crate) fn cooldown(cooldown_ms: i64, k: i32, cfg: &HealthConfig) -> i64 {
    let d = (cooldown_ms as f64 * cfg.cooldown_multiplier.powi(k)).ceil();
    if d.is_nan() || d >= cfg.max_cooldown_ms as f64 {
        cfg.max_cooldown_ms
    } else {
        d as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealthConfig {
        crate::Config::from_json("{}").unwrap().health
    }

    #[test]
    fn http_classes() {
        let expect = [
            (200, "success"),
            (204, "success"),
            (101, "client_error"),
            (302, "client_error"),
            (400, "client_error"),
            (401, "forbidden"),
            (403, "forbidden"),
            (408, "timeout"),
            (429, "rate_limited"),
            (500, "server_error"),
            (503, "overloaded"),
            (504, "timeout"),
            (529, "overloaded"),
        ];
        for (code, class) in expect {
            assert_eq!(Status::from_http(code).map(|s| s.as_str()), Ok(class), "{code}");
        }
        assert_eq!(Status::from_http(99).map_err(|e| e.code()), Err("invalid_argument"));
        assert_eq!(
            Status::from_http_with_error_type(429, Some("insufficient_quota")),
            Ok(Status::Forbidden)
        );
    }

    #[test]
    fn recovery_time_is_exact_to_the_ms() {
        let c = cfg();
        let mut s = ProviderState::new();
        for _ in 0..2 {
            s.record(
                Signal {
                    status: Status::Forbidden,
                    has_retry_after: false,
                    latency_ms: 0,
                    reporter: Reporter::Permit,
                },
                0,
                30_000,
                &c,
            );
        } // h = 0
        let t = s.recovered_at(0, &c).unwrap_or(-1);
        assert!(s.health(t, &c) >= c.min_health);
        assert!(s.health(t - 1, &c) < c.min_health);
    }

    #[test]
    fn cooldown_grows_and_caps() {
        let c = cfg();
        assert_eq!(cooldown(30_000, 0, &c), 30_000);
        assert_eq!(cooldown(30_000, 2, &c), 120_000);
        assert_eq!(cooldown(30_000, 10, &c), 600_000);
    }
}
