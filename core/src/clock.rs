//! The engine's only source of time, in Unix milliseconds.
//!
//! The system clock is the Unix time read once at creation plus monotonic elapsed time, so it
//! never runs backwards. The manual clock is a shared, settable value for tests and simulation.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A clock the engine reads; cheap to clone.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Wall-clock start plus monotonic elapsed time.
    System(SystemClock),
    /// A value set by the caller.
    Manual(ManualClock),
    /// The system clock re-based on a shared store's clock (docs/design.md §9); an engine with the
    /// Redis store makes its system clock one.
    Synced(SyncedClock),
}

impl Clock {
    /// The system clock, started now.
    pub fn system() -> Clock {
        Clock::System(SystemClock::new())
    }

    /// Current time in Unix milliseconds.
    #[inline]
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System(c) => c.now_ms(),
            Clock::Manual(c) => c.now_ms(),
            Clock::Synced(c) => c.now_ms(),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl From<ManualClock> for Clock {
    fn from(c: ManualClock) -> Self {
        Clock::Manual(c)
    }
}

/// Unix time at creation plus monotonic elapsed time.
#[derive(Debug, Clone)]
pub struct SystemClock {
    unix_ms_at_start: i64,
    start: Instant,
}

impl SystemClock {
    /// Starts the clock at the current wall-clock time.
    pub fn new() -> Self {
        let unix_ms_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        SystemClock {
            unix_ms_at_start,
            start: Instant::now(),
        }
    }

    /// Current time in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.unix_ms_at_start.saturating_add(elapsed)
    }

    /// A system clock that reads `offset_ms` ahead of this host's (behind when negative): a
    /// host with a skewed clock, for tests of a shared store's clock.
    pub fn skewed(offset_ms: i64) -> Self {
        let mut c = SystemClock::new();
        c.unix_ms_at_start = c.unix_ms_at_start.saturating_add(offset_ms);
        c
    }
}

/// A system clock plus an offset to another clock (a Redis server's), re-based whenever that
/// clock is read; readings never run backwards. Cheap to clone; clones share the offset.
#[derive(Debug, Clone)]
pub struct SyncedClock {
    base: SystemClock,
    offset: Arc<AtomicI64>,
    last: Arc<AtomicI64>,
    synced: Arc<std::sync::atomic::AtomicBool>,
}

impl SyncedClock {
    /// Follows `base` until the first [`SyncedClock::observe`].
    pub fn new(base: SystemClock) -> Self {
        SyncedClock {
            base,
            offset: Arc::new(AtomicI64::new(0)),
            last: Arc::new(AtomicI64::new(i64::MIN)),
            synced: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Whether the other clock has been read at least once.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Current time in Unix milliseconds of the other clock, extrapolated with monotonic time.
    pub fn now_ms(&self) -> i64 {
        let t = self.base.now_ms().saturating_add(self.offset.load(Ordering::Acquire));
        let last = self.last.fetch_max(t, Ordering::AcqRel);
        t.max(last)
    }

    /// Records that the other clock read `remote_ms` while this host's base clock went from
    /// `sent_ms` to now (the round trip): the offset is taken at the round trip's midpoint.
    pub fn observe(&self, remote_ms: i64, sent_ms: i64) {
        let received = self.base.now_ms();
        let mid = sent_ms.saturating_add(received.saturating_sub(sent_ms) / 2);
        self.offset.store(remote_ms.saturating_sub(mid), Ordering::Release);
        // Readings before the first sync were this host's own clock: forget them, once.
        if !self.synced.swap(true, Ordering::AcqRel) {
            self.last.store(i64::MIN, Ordering::Release);
        }
    }

    /// The base clock's reading (what [`SyncedClock::observe`] takes as `sent_ms`).
    pub fn base_ms(&self) -> i64 {
        self.base.now_ms()
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

/// A settable clock shared by every clone: advancing one advances all.
///
/// ```
/// let clock = ratewise::ManualClock::new(1_000);
/// clock.advance(500);
/// assert_eq!(clock.now_ms(), 1_500);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A manual clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start_ms)))
    }

    /// Current value in milliseconds.
    #[inline]
    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    /// Moves the clock forward by `ms` (a negative value is ignored: time never runs backwards).
    /// Saturates at `i64::MAX` rather than wrapping into the past.
    pub fn advance(&self, ms: i64) {
        if ms > 0 {
            let _ = self
                .0
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_add(ms)));
        }
    }

    /// Sets the clock to `ms` if that is not earlier than its current value.
    pub fn set_ms(&self, ms: i64) {
        self.0.fetch_max(ms, Ordering::AcqRel);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{Config, Engine, Request};

    #[test]
    fn manual_clock_saturates_instead_of_wrapping() {
        let clock = ManualClock::new(i64::MAX - 5);
        clock.advance(10);
        assert_eq!(clock.now_ms(), i64::MAX);
        clock.advance(i64::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
        clock.set_ms(0);
        assert_eq!(clock.now_ms(), i64::MAX, "time never runs backwards");
        let clock = ManualClock::new(i64::MIN);
        clock.advance(i64::MAX);
        clock.advance(i64::MAX);
        assert_eq!(clock.now_ms(), i64::MAX - 1);
        clock.advance(5);
        assert_eq!(clock.now_ms(), i64::MAX);
    }

    /// A waiter with a huge timeout on a clock at either end of time: the clock saturates, and
    /// `next_wake`, `poll` and aging never overflow or answer a time before now.
    #[test]
    fn next_wake_never_falls_below_now_at_the_ends_of_time() {
        for start in [i64::MAX - 5, i64::MIN] {
            let clock = ManualClock::new(start);
            let config = Config::from_json(
                r#"{"providers":[{"name":"a","quotas":[{"dimension":"requests","limit":1,"window":"second"}]}],
                    "capabilities":[{"name":"chat","providers":[{"provider":"a"}]}],
                    "permit_ttl_ms": 9223372036854775807}"#,
            )
            .unwrap();
            let engine = Engine::with_clock(config, clock.clone().into()).unwrap();
            let req = Request::default();
            engine.acquire("chat", &req).unwrap();
            engine.enqueue("chat", &req, i64::MAX).unwrap();
            let batch = Request {
                lane: Some("batch"),
                ..Request::default()
            };
            engine.enqueue("chat", &batch, i64::MAX).unwrap();
            let mut before = start;
            for step in [0, 1, 4, 10, i64::MAX, 10, i64::MAX] {
                clock.advance(step);
                let now = engine.now_ms();
                assert_eq!(now, clock.now_ms());
                assert!(now >= before, "the clock ran backwards from {before} to {now}");
                if let Some(wake) = engine.next_wake() {
                    assert!(
                        wake >= now,
                        "next_wake {wake} is before now {now} (start {start}, step {step})"
                    );
                }
                engine.poll();
                before = now;
            }
            assert_eq!(engine.now_ms(), i64::MAX);
        }
    }
}
