//! The manual clock: time as an input, for tests and simulations.

use ratewise::ManualClock;

use crate::error::{fail_with, rw_result};
use crate::ffi::{self, free_box, guard, non_null, out_ptr};

/// A settable clock for tests and simulations. Create with rw_clock_new_manual; owned by the
/// caller, free with rw_clock_free.
pub struct rw_clock {
    pub(crate) inner: ManualClock,
}

/// Creates a manual clock reading `start_ms`. On success `*out` is owned by the caller: free it
/// with rw_clock_free.
///
/// # Safety
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_clock_new_manual(start_ms: i64, out: *mut *mut rw_clock) -> rw_result {
    guard(|| {
        out_ptr(
            out,
            Box::into_raw(Box::new(rw_clock {
                inner: ManualClock::new(start_ms),
            })),
        )
    })
}

/// Moves a manual clock forward by `ms` (>= 0). Thread-safe. `clock` is borrowed for the call.
///
/// # Safety
/// `clock` must be NULL or a live rw_clock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_clock_advance(clock: *const rw_clock, ms: i64) -> rw_result {
    guard(|| {
        let c = non_null(clock, "clock")?;
        if ms < 0 {
            return Err(fail_with(rw_result::InvalidArgument, "ms must be >= 0"));
        }
        c.inner.advance(ms);
        Ok(())
    })
}

/// Reads a manual clock into the caller's `*out`. `clock` is borrowed for the call.
///
/// # Safety
/// `clock` must be NULL or a live rw_clock; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_clock_now_ms(clock: *const rw_clock, out: *mut i64) -> rw_result {
    guard(|| {
        let c = non_null(clock, "clock")?;
        ffi::out(out, c.inner.now_ms(), "out")
    })
}

/// Frees a clock (engines built on it keep their own reference). NULL: no-op.
///
/// # Safety
/// `clock` must be NULL or a clock from rw_clock_new_manual not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_clock_free(clock: *mut rw_clock) {
    // SAFETY: per the contract, `clock` is NULL or came from Box::into_raw here.
    unsafe { free_box(clock) }
}
