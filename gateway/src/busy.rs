//! Busy polling (`gateway.busy_poll_us`, off by default): for that long after each event (a
//! request arriving, a call sent upstream), the runtime keeps polling its sockets instead of
//! sleeping in the kernel, so that the next packet — the upstream's answer, the client's next
//! request — is picked up without a thread wake-up.
//!
//! On a virtual machine that wake-up is the largest part of what one more proxy hop costs: the
//! sleeping vCPU must be sent an interrupt and rescheduled by the host, twice per relayed call.
//! HAProxy's `busy-polling` option documents 30–100 µs saved for the same reason; on this
//! project's machine kind the gateway's added p50 drops by about 66 µs when it never sleeps
//! (`bench/README.md`). The price is CPU: up to `busy_poll_us` of it after each event, none
//! once the window has passed with nothing new (the poller then sleeps until the next request).
//!
//! It needs the single-threaded runtime (`worker_threads` 1, the memory store): there one
//! thread owns the sockets, and a task that yields in a loop makes that thread poll them with a
//! zero timeout between the other tasks. On the multi-threaded runtime the sockets are polled by
//! whichever worker parks, so a spinning task would burn a core and save nothing.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The poller's clock and its state; [`BusyPoll::kick`] is called on every event.
pub struct BusyPoll {
    window_ns: u64,
    /// When the last event was seen (ns on [`clock`]).
    last: AtomicU64,
    /// The poller sleeps: the next kick wakes it.
    asleep: AtomicBool,
    wake: Notify,
}

/// Nanoseconds since the first call (monotonic).
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl BusyPoll {
    /// Starts polling for `window` after each event, on the current runtime. `None` when the
    /// window is zero, or when this is no single-threaded runtime (with a warning: the setting
    /// would cost a core and save nothing there).
    pub fn start(window: Duration) -> Option<Arc<BusyPoll>> {
        if window.is_zero() {
            return None;
        }
        let single = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if !single {
            tracing::warn!("gateway.busy_poll_us needs the single-threaded runtime (worker_threads 1): not polling");
            return None;
        }
        let b = Arc::new(BusyPoll {
            window_ns: window.as_nanos().min(u128::from(u64::MAX)) as u64,
            last: AtomicU64::new(clock()),
            asleep: AtomicBool::new(false),
            wake: Notify::new(),
        });
        tokio::spawn(poll(b.clone()));
        Some(b)
    }

    /// An event: the window starts again, and a poller that had gone to sleep polls again.
    pub fn kick(&self) {
        self.last.store(clock(), Ordering::Relaxed);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    fn within(&self) -> bool {
        clock().saturating_sub(self.last.load(Ordering::Acquire)) < self.window_ns
    }
}

/// The poller: yields while within the window (each yield lets the runtime poll its sockets with
/// a zero timeout once the other tasks have run), then sleeps until a kick.
async fn poll(b: Arc<BusyPoll>) {
    loop {
        while b.within() {
            tokio::task::yield_now().await;
        }
        b.asleep.store(true, Ordering::Release);
        // A kick between the last check and the store saw `asleep` false and woke nobody.
        if b.within() && b.asleep.swap(false, Ordering::AcqRel) {
            continue;
        }
        b.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn it_polls_only_on_a_single_threaded_runtime() {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        assert!(
            multi
                .block_on(async { BusyPoll::start(Duration::from_millis(1)) })
                .is_none()
        );
        let single = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        single.block_on(async {
            assert!(BusyPoll::start(Duration::ZERO).is_none());
            assert!(BusyPoll::start(Duration::from_millis(1)).is_some());
        });
    }

    #[test]
    fn the_poller_sleeps_after_its_window_and_a_kick_wakes_it() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let b = BusyPoll::start(Duration::from_millis(20)).unwrap();
            // Other tasks still run while it polls.
            let t0 = Instant::now();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(!b.asleep.load(Ordering::Acquire), "polling within the window");
            // Past the window it sleeps (generous bound: 2 s).
            while !b.asleep.load(Ordering::Acquire) {
                assert!(t0.elapsed() < Duration::from_secs(2), "the poller never went to sleep");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            b.kick();
            assert!(!b.asleep.load(Ordering::Acquire), "a kick wakes it");
            tokio::task::yield_now().await;
            assert!(b.within());
        });
    }
}
