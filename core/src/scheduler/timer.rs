//! The timer thread: polls at the next wake-up, so that waiters with no thread of their own
//! (async acquires) are granted when a refill, a hold or a circuit ends without anyone polling.
//! It holds its target weakly and ends with it.

use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What the timer thread drives (the engine).
pub(crate) trait Pollable: Send + Sync + 'static {
    /// When a poll could next change something (`None`: nothing waits).
    fn next_wake(&self) -> Option<i64>;
    /// The clock's reading.
    fn now_ms(&self) -> i64;
    /// Polls the waiters.
    fn poll_waiters(&self);
}

#[derive(Default)]
struct Bell {
    /// Rung this many times.
    rings: u64,
    shut_down: bool,
}

/// The timer thread's doorbell: rung when a new waiter may move the next wake-up earlier.
#[derive(Default)]
pub(crate) struct TimerSignal {
    state: Mutex<Bell>,
    cv: Condvar,
}

impl TimerSignal {
    pub fn notify(&self) {
        let mut s = self.state.lock();
        s.rings = s.rings.wrapping_add(1);
        self.cv.notify_all();
    }

    pub fn shut_down(&self) {
        let mut s = self.state.lock();
        s.shut_down = true;
        self.cv.notify_all();
    }
}

/// Starts the timer thread for `target`; false when the thread could not be spawned.
pub(crate) fn spawn<T: Pollable>(target: Weak<T>, signal: Arc<TimerSignal>) -> bool {
    std::thread::Builder::new()
        .name("ratewise-timer".into())
        .spawn(move || {
            let mut seen = 0u64;
            loop {
                let Some(e) = target.upgrade() else { return };
                let wake = e.next_wake().map(|at| at.saturating_sub(e.now_ms()).max(0));
                drop(e);
                let mut s = signal.state.lock();
                if s.shut_down {
                    return;
                }
                if s.rings == seen {
                    match wake {
                        Some(ms) => {
                            let _ = signal.cv.wait_for(&mut s, Duration::from_millis(ms.max(1) as u64));
                        }
                        None => signal.cv.wait(&mut s),
                    }
                }
                if s.shut_down {
                    return;
                }
                seen = s.rings;
                drop(s);
                let Some(e) = target.upgrade() else { return };
                e.poll_waiters();
            }
        })
        .is_ok()
}
