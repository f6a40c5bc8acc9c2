//! The calls that wait (docs/design.md §8): acquire with a timeout, and the clock-driven
//! enqueue, poll and next-wake for callers that run their own loop.

use std::ffi::c_char;

use crate::call::{rw_request, with_request};
use crate::decision::rw_decision;
use crate::engine::{acquire_with, rw_engine};
use crate::error::{core, fail_with, rw_result};
use crate::ffi::{self, guard, non_null, text};
use crate::polled::{put_polled, rw_polled};

/// As rw_engine_acquire, but waits at most `timeout_ms` (> 0) for a permit, in the request's
/// lane's priority order, blocking the calling thread (it sleeps until a grant, a completion or
/// the next refill; it never spins). Other threads may use the engine meanwhile; completing or
/// cancelling a permit wakes the waiter it frees capacity for. Past the timeout it fails with
/// RW_RESULT_NO_AVAILABLE_PROVIDER (and the predicted wait in rw_last_error_retry_after_ms).
/// Ownership as for rw_engine_acquire.
///
/// # Safety
/// Pointers must be NULL or valid as documented on the types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_acquire_wait(
    engine: *const rw_engine,
    capability: *const c_char,
    request: *const rw_request,
    timeout_ms: i64,
    permit: *mut u64,
    decision: *mut *mut rw_decision,
) -> rw_result {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        acquire_with(engine, capability, request, permit, decision, |e, cap, r| {
            e.acquire_wait(cap, r, timeout_ms)
        })
    }
}

/// Adds a waiting request for at most `timeout_ms` (> 0), then polls: `*ticket` is its id (a
/// granted ticket is a permit of the same id); `polled` as for rw_engine_complete (NULL: no
/// report; else owned by the caller, free with rw_polled_free).
///
/// # Safety
/// Pointers must be NULL or valid as documented on the types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_enqueue(
    engine: *const rw_engine,
    capability: *const c_char,
    request: *const rw_request,
    timeout_ms: i64,
    ticket: *mut u64,
    polled: *mut *mut rw_polled,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let cap = text(capability, "capability")?;
        if ticket.is_null() {
            return Err(fail_with(rw_result::NullParameter, "ticket is NULL"));
        }
        let (t, p) = core(with_request(request, |r| e.inner.enqueue(cap, r, timeout_ms))?)?;
        ffi::out(ticket, t.0, "ticket")?;
        put_polled(polled, p)
    })
}

/// Grants waiting requests as capacity allows and expires those past their deadline; `*polled`
/// receives what it did, owned by the caller (free with rw_polled_free).
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_poll(engine: *const rw_engine, polled: *mut *mut rw_polled) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        if polled.is_null() {
            return Err(fail_with(rw_result::NullParameter, "polled is NULL"));
        }
        put_polled(polled, e.inner.poll())
    })
}

/// When a poll could next change something (Unix ms); `*has_value` is false when nothing waits.
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_next_wake(
    engine: *const rw_engine,
    out: *mut i64,
    has_value: *mut bool,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        if out.is_null() || has_value.is_null() {
            return Err(fail_with(rw_result::NullParameter, "out or has_value is NULL"));
        }
        let w = e.inner.next_wake();
        ffi::out(out, w.unwrap_or(0), "out")?;
        ffi::out(has_value, w.is_some(), "has_value")
    })
}
