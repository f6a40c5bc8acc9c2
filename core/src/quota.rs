//! Exact integer quota arithmetic (docs/design.md §3).
//!
//! A token bucket of capacity `C` over a window of `W` ms is kept in units of `1/S`, with
//! `S = W / gcd(C, W)`, so that the refill of `C/g` units per ms is an integer and nothing is
//! ever rounded. The level may go negative (debt). A fixed window keeps a plain counter; a
//! concurrency quota counts permits in flight.

use crate::config::{Algorithm, MAX_SCALED_CAPACITY, QuotaConfig, Settle, gcd};
use crate::seqlock::{PublishGuard, Published, WORDS, Words};
use crate::vocab::Dimension;

/// One bucket, shared by every quota with its key: its state behind a lock, published for
/// lock-free readers (see [`crate::seqlock`]).
pub(crate) struct Bucket {
    /// Position in the global lock order.
    pub id: u64,
    cell: Published<BucketState>,
}

/// A locked bucket; publishes its state on drop.
pub(crate) type BucketGuard<'a> = PublishGuard<'a, BucketState>;

impl Bucket {
    pub fn new(id: u64, state: BucketState) -> Bucket {
        Bucket {
            id,
            cell: Published::new(state),
        }
    }

    /// Locks the bucket for a change.
    pub fn lock(&self) -> BucketGuard<'_> {
        self.cell.lock()
    }

    /// A consistent copy of the state, without locking.
    pub fn read(&self) -> BucketState {
        self.cell.read()
    }
}

/// Whether a request fits a quota now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// It fits.
    Yes,
    /// Not now; `Some(ms)` from now it will (a refill or a window boundary), `None` when no
    /// time is predictable (concurrency).
    Later(Option<i64>),
    /// It never fits (`n + R > C`).
    TooLarge,
}

/// The state of one bucket (shared by every quota with its key). Guarded by the bucket's lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BucketState {
    pub dimension: Dimension,
    pub algorithm: Algorithm,
    pub settle: Settle,
    pub count_cached: bool,
    /// Configured limit.
    pub configured: i64,
    /// Limit learned from provider headers, when lower than the configured one.
    pub learned: Option<i64>,
    pub window_ms: i64,
    pub offset_ms: i64,
    /// Capacity in force, `learned.unwrap_or(configured)`.
    cap: i64,
    /// Scale `S` (1 for fixed windows and concurrency).
    s: i64,
    /// Refill per ms in units of `1/S`: `C/g`.
    refill: i64,
    /// Token bucket: level in units of `1/S`. Fixed window: the counter. Concurrency: in flight.
    level: i64,
    /// Token bucket: time of the last refill. Fixed window: index `k` of the current window.
    at: i64,
    /// Decayed consumption rate ρ (units per second) and the time it was last updated.
    rho: f64,
    rho_at: i64,
}

impl Words for BucketState {
    fn to_words(&self) -> [u64; WORDS] {
        let dim = match self.dimension {
            Dimension::Requests => 0u64,
            Dimension::Tokens => 1,
            Dimension::InputTokens => 2,
            Dimension::OutputTokens => 3,
            Dimension::Concurrency => 4,
            Dimension::Cost => 5,
        };
        let algo = u64::from(self.algorithm == Algorithm::FixedWindow) << 8;
        let flags = u64::from(self.settle == Settle::Reserved) | u64::from(self.count_cached) << 1;
        [
            self.level as u64,
            self.at as u64,
            self.rho.to_bits(),
            self.rho_at as u64,
            self.cap as u64,
            self.s as u64,
            self.refill as u64,
            self.configured as u64,
            self.learned.unwrap_or(i64::MIN) as u64,
            self.offset_ms as u64,
            dim | algo | flags << 9,
            self.window_ms as u64,
        ]
    }

    fn from_words(w: &[u64; WORDS]) -> BucketState {
        let dimension = match w[10] & 0xff {
            0 => Dimension::Requests,
            1 => Dimension::Tokens,
            2 => Dimension::InputTokens,
            3 => Dimension::OutputTokens,
            4 => Dimension::Concurrency,
            _ => Dimension::Cost,
        };
        let algorithm = if w[10] & 0x100 != 0 {
            Algorithm::FixedWindow
        } else {
            Algorithm::TokenBucket
        };
        let window_ms = w[11] as i64;
        let flags = w[10] >> 9;
        let learned = w[8] as i64;
        BucketState {
            dimension,
            algorithm,
            settle: if flags & 1 != 0 {
                Settle::Reserved
            } else {
                Settle::Actual
            },
            count_cached: flags & 2 != 0,
            configured: w[7] as i64,
            learned: if learned == i64::MIN { None } else { Some(learned) },
            window_ms,
            offset_ms: w[9] as i64,
            cap: w[4] as i64,
            s: w[5] as i64,
            refill: w[6] as i64,
            level: w[0] as i64,
            at: w[1] as i64,
            rho: f64::from_bits(w[2]),
            rho_at: w[3] as i64,
        }
    }
}

impl BucketState {
    /// A new, full bucket for `q`, at time `now`.
    pub fn new(q: &QuotaConfig, now: i64) -> BucketState {
        let mut b = BucketState {
            dimension: q.dimension,
            algorithm: q.algorithm,
            settle: q.settle,
            count_cached: q.count_cached,
            configured: q.limit,
            learned: None,
            window_ms: q.window_ms,
            offset_ms: q.offset_ms,
            cap: 0,
            s: 1,
            refill: 0,
            level: 0,
            at: now,
            rho: 0.0,
            rho_at: now,
        };
        b.set_scale(q.limit);
        b.level = match b.kind() {
            Kind::Bucket => b.cap * b.s,
            Kind::Fixed => b.cap,
            Kind::Concurrency => 0,
        };
        if b.kind() == Kind::Fixed {
            b.at = b.window_index(now);
        }
        b
    }

    fn kind(&self) -> Kind {
        match (self.dimension, self.algorithm) {
            (Dimension::Concurrency, _) => Kind::Concurrency,
            (_, Algorithm::FixedWindow) => Kind::Fixed,
            (_, Algorithm::TokenBucket) => Kind::Bucket,
        }
    }

    /// Whether this is a rate quota (has a window), as opposed to concurrency.
    pub fn is_rate(&self) -> bool {
        self.dimension != Dimension::Concurrency
    }

    fn set_scale(&mut self, cap: i64) {
        self.cap = cap;
        if self.kind() == Kind::Bucket {
            let g = gcd(cap as u128, self.window_ms as u128) as i64;
            self.s = self.window_ms / g;
            self.refill = cap / g;
        } else {
            self.s = 1;
            self.refill = 0;
        }
    }

    fn window_index(&self, now: i64) -> i64 {
        now.saturating_sub(self.offset_ms).div_euclid(self.window_ms)
    }

    /// Brings the state to `now`: refills a token bucket, rolls a fixed window.
    pub fn sync(&mut self, now: i64) {
        match self.kind() {
            Kind::Bucket => {
                if now > self.at {
                    let full = self.cap * self.s;
                    if self.level < full {
                        let add = now.saturating_sub(self.at).saturating_mul(self.refill);
                        self.level = self.level.saturating_add(add).min(full);
                    }
                    self.at = now;
                }
            }
            Kind::Fixed => {
                let k = self.window_index(now);
                if k > self.at {
                    let m = k - self.at;
                    // At each boundary the counter becomes C + min(0, counter): debt carries over.
                    self.level = if self.level >= 0 {
                        self.cap
                    } else {
                        self.level.saturating_add(m.saturating_mul(self.cap)).min(self.cap)
                    };
                    self.at = k;
                }
            }
            Kind::Concurrency => {}
        }
    }

    /// Lane reserve `R = floor(h_ppm·C / 10^6)`.
    pub fn reserve(&self, headroom_ppm: i64) -> i64 {
        // h_ppm ≤ 10^6 and C ≤ 2^53, so the product can exceed i64: widen only then (i128
        // division is a slow library call, and this runs for every quota of every decision).
        match headroom_ppm.checked_mul(self.cap) {
            Some(0) => 0,
            Some(p) => p / 1_000_000,
            None => ((headroom_ppm as i128 * self.cap as i128) / 1_000_000) as i64,
        }
    }

    /// Whether `n` units fit now in a lane with `headroom_ppm` (call [`Self::sync`] first).
    pub fn fits(&self, n: i64, headroom_ppm: i64, now: i64) -> Fit {
        let r = self.reserve(headroom_ppm);
        match self.kind() {
            Kind::Concurrency => {
                if 1 + r > self.cap {
                    Fit::TooLarge
                } else if self.level + 1 + r <= self.cap {
                    Fit::Yes
                } else {
                    Fit::Later(None)
                }
            }
            Kind::Bucket => {
                let need = n.saturating_add(r);
                if need > self.cap {
                    return Fit::TooLarge;
                }
                let need_scaled = need * self.s; // ≤ C·S ≤ 2^53
                if self.level >= need_scaled {
                    Fit::Yes
                } else {
                    let missing = need_scaled as i128 - self.level as i128;
                    let ms = (missing + self.refill as i128 - 1) / self.refill as i128;
                    Fit::Later(Some(i64::try_from(ms).unwrap_or(i64::MAX)))
                }
            }
            Kind::Fixed => {
                let need = n.saturating_add(r);
                if need > self.cap {
                    return Fit::TooLarge;
                }
                if self.level >= need {
                    return Fit::Yes;
                }
                // Boundaries needed: the reset counter after j boundaries is min(C, c + j·C) for
                // c < 0, and C for c ≥ 0.
                let j = if self.level >= 0 {
                    1
                } else {
                    let missing = need as i128 - self.level as i128;
                    ((missing + self.cap as i128 - 1) / self.cap as i128).max(1) as i64
                };
                let boundary = self.offset_ms as i128 + (self.at as i128 + j as i128) * self.window_ms as i128;
                Fit::Later(Some(i64::try_from(boundary - now as i128).unwrap_or(i64::MAX).max(0)))
            }
        }
    }

    /// Takes `n` units (one slot for concurrency); the level may go negative. Updates ρ.
    pub fn charge(&mut self, n: i64, now: i64, tau_ms: i64) {
        if n <= 0 {
            return;
        }
        match self.kind() {
            Kind::Concurrency => self.level += 1,
            Kind::Bucket => self.level = self.level.saturating_sub(n.saturating_mul(self.s)),
            Kind::Fixed => self.level = self.level.saturating_sub(n),
        }
        if self.is_rate() {
            let tau_s = tau_ms as f64 / 1000.0;
            self.rho = self.rate_at(now, tau_ms) + n as f64 / tau_s;
            self.rho_at = self.rho_at.max(now);
        }
    }

    /// Gives back `n` units (a concurrency slot), capped at capacity. ρ is unchanged.
    pub fn refund(&mut self, n: i64) {
        if n <= 0 {
            return;
        }
        match self.kind() {
            Kind::Concurrency => self.level = (self.level - 1).max(0),
            Kind::Bucket => {
                self.level = self
                    .level
                    .saturating_add(n.saturating_mul(self.s))
                    .min(self.cap * self.s)
            }
            Kind::Fixed => self.level = self.level.saturating_add(n).min(self.cap),
        }
    }

    /// Units left now, never below 0 (`C − in_flight` for concurrency).
    pub fn remaining(&self) -> i64 {
        match self.kind() {
            Kind::Concurrency => (self.cap - self.level).max(0),
            Kind::Bucket => self.level.max(0) / self.s,
            Kind::Fixed => self.level.max(0),
        }
    }

    /// Fraction left after taking `n` units, clamped to [0, 1] (the `f` of docs/design.md §5).
    pub fn fraction_after(&self, n: i64) -> f64 {
        let f = match self.kind() {
            Kind::Concurrency => (self.cap - self.level - 1) as f64 / self.cap as f64,
            Kind::Bucket => {
                // In i64 unless it overflows (an i128 → f64 conversion is a slow library call).
                let after = n.checked_mul(self.s).and_then(|x| self.level.checked_sub(x));
                let after = after.map_or_else(
                    || (self.level as i128 - n as i128 * self.s as i128) as f64,
                    |a| a as f64,
                );
                after / (self.cap as f64 * self.s as f64)
            }
            Kind::Fixed => self.level.saturating_sub(n) as f64 / self.cap as f64,
        };
        f.clamp(0.0, 1.0)
    }

    /// ρ decayed to `now`, in units per second.
    pub fn rate_at(&self, now: i64, tau_ms: i64) -> f64 {
        if self.rho == 0.0 {
            return 0.0;
        }
        let dt = now.saturating_sub(self.rho_at).max(0) as f64;
        self.rho * (-dt / tau_ms as f64).exp()
    }

    /// Net drain per second: ρ minus the refill rate (ρ alone for a fixed window). `None` for
    /// concurrency.
    pub fn drain_per_s(&self, now: i64, tau_ms: i64) -> Option<f64> {
        match self.kind() {
            Kind::Concurrency => None,
            Kind::Bucket => Some(self.rate_at(now, tau_ms) - self.refill_per_s()),
            Kind::Fixed => Some(self.rate_at(now, tau_ms)),
        }
    }

    fn refill_per_s(&self) -> f64 {
        self.cap as f64 * 1000.0 / self.window_ms as f64
    }

    /// Seconds until this quota runs dry at the current drain after taking `n` (∞ when not
    /// draining, or for concurrency).
    pub fn seconds_to_empty(&self, n: i64, now: i64, tau_ms: i64) -> f64 {
        // ρ only decays, so a stored ρ at or below the refill rate cannot drain the bucket now:
        // the answer is ∞ without computing exp().
        if self.kind() == Kind::Bucket && self.rho <= self.refill_per_s() {
            return f64::INFINITY;
        }
        match self.drain_per_s(now, tau_ms) {
            Some(d) if d > 0.0 => {
                let units = match self.kind() {
                    Kind::Bucket => self.level as f64 / self.s as f64,
                    _ => self.level as f64,
                };
                (units - n as f64).max(0.0) / d
            }
            _ => f64::INFINITY,
        }
    }

    /// Changes the capacity in force: the level is converted to the new scale rounding toward
    /// −∞, then capped (docs/design.md §12).
    pub fn set_capacity(&mut self, cap: i64) {
        if cap == self.cap {
            return;
        }
        match self.kind() {
            Kind::Bucket => {
                let old_s = self.s;
                self.set_scale(cap);
                let converted = (self.level as i128 * self.s as i128).div_euclid(old_s as i128);
                let full = self.cap as i128 * self.s as i128;
                self.level = converted.clamp(i64::MIN as i128, full) as i64;
            }
            Kind::Fixed => {
                self.set_scale(cap);
                self.level = self.level.min(cap);
            }
            Kind::Concurrency => self.set_scale(cap),
        }
    }

    /// Adopts a new configuration for the same key (an upsert): a changed limit keeps the
    /// units left, capped; everything else is taken as given.
    pub fn reconfigure(&mut self, q: &QuotaConfig) {
        self.settle = q.settle;
        self.count_cached = q.count_cached;
        self.offset_ms = q.offset_ms;
        self.configured = q.limit;
        let cap = match self.learned {
            Some(l) if l < q.limit => l,
            _ => {
                self.learned = None;
                q.limit
            }
        };
        self.set_capacity(cap);
    }

    /// Provider-reported limit (docs/design.md §7, §12): a lower one is adopted as the learned limit
    /// (the capacity in force for everything); one at or above the configured limit clears it.
    ///
    /// A learned limit must keep the bucket exact (`C·S ≤ 2^53`, §3): when an odd reported
    /// limit would break that bound, it is rounded down to a multiple of `gcd(configured, W)`
    /// (whose scale is no larger than the configured one), which is conservative; if that
    /// leaves nothing, the report is not adopted.
    pub fn learn_limit(&mut self, limit: i64) {
        match self.learned_capacity(limit) {
            None => {}
            Some(cap) if cap >= self.configured => {
                self.learned = None;
                self.set_capacity(self.configured);
            }
            Some(cap) => {
                self.learned = Some(cap);
                self.set_capacity(cap);
            }
        }
    }

    /// The capacity a reported limit makes the one in force: the configured one when the
    /// report is at or above it (clearing a learned limit), `None` when it is not adopted.
    /// Depends only on the configuration, so a shared store is told the result.
    pub fn learned_capacity(&self, limit: i64) -> Option<i64> {
        if limit >= self.configured {
            return Some(self.configured);
        }
        let mut cap = limit;
        if self.kind() == Kind::Bucket {
            let w = self.window_ms as u128;
            if cap as u128 * (w / gcd(cap as u128, w)) > MAX_SCALED_CAPACITY {
                let g = gcd(self.configured as u128, w) as i64;
                cap = cap / g * g;
                if cap == 0 {
                    return None;
                }
            }
        }
        Some(cap)
    }

    /// Takes the state a shared store has for this bucket (docs/design.md §9): the capacity in force,
    /// the learned limit, the level and its time. ρ is process-local and kept.
    pub fn set_shared(&mut self, cap: i64, learned: Option<i64>, level: i64, at: i64) {
        if cap != self.cap && cap > 0 {
            self.set_scale(cap);
        }
        self.learned = learned;
        self.level = level;
        self.at = at;
    }

    /// Enforces `share` of the capacity in force (a degraded shared store, docs/design.md §9): at least
    /// one unit, the level capped as for any capacity change. A concurrency count becomes
    /// `own`, the slots this process's permits hold: the others' slots are theirs to free, and
    /// this process would never see them freed.
    pub fn degrade(&mut self, share: f64, own: i64) {
        let cap = ((self.cap as f64 * share).floor() as i64).clamp(1, self.cap);
        self.set_capacity(cap);
        if self.kind() == Kind::Concurrency {
            self.level = own;
        }
    }

    /// Provider-reported remaining units, less `reserved` (what live permits the provider has
    /// not seen yet reserve): `level = min(level, (remaining − reserved)·S)`, possibly negative
    /// (a debt); refill then continues as usual.
    pub fn calibrate(&mut self, remaining: i64, reserved: i64) {
        let units = remaining.max(0) as i128 - reserved.max(0) as i128;
        match self.kind() {
            Kind::Bucket => {
                let scaled = (units * self.s as i128).clamp(i64::MIN as i128 / 2, i64::MAX as i128) as i64;
                self.level = self.level.min(scaled);
            }
            Kind::Fixed => self.level = self.level.min(units.max(i64::MIN as i128 / 2) as i64),
            Kind::Concurrency => {}
        }
    }

    /// Whether a bucket with this state can keep serving quota `q` (same identity up to a
    /// changed limit, settle, offset or count_cached); otherwise a fresh bucket is started.
    pub fn compatible_with(&self, q: &QuotaConfig) -> bool {
        self.dimension == q.dimension && self.window_ms == q.window_ms && self.algorithm == q.algorithm
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bucket,
    Fixed,
    Concurrency,
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
