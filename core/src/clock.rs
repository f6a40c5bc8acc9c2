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
    pub fn advance(&self, ms: i64) {
        if ms > 0 {
            self.0.fetch_add(ms, Ordering::AcqRel);
        }
    }

    /// Sets the clock to `ms` if that is not earlier than its current value.
    pub fn set_ms(&self, ms: i64) {
        self.0.fetch_max(ms, Ordering::AcqRel);
    }
}
