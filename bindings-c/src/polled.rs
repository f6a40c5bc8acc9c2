//! The poll report: which waiting requests a poll granted and which it expired.

use crate::error::rw_result;
use crate::ffi::{free_box, out_ptr};

/// What one poll of the waiting requests did: ticket ids granted (each now a permit of the same
/// id) and expired, in rank order. Owned by the caller: free with rw_polled_free.
pub struct rw_polled {
    granted: Vec<u64>,
    expired: Vec<u64>,
}

/// Hands the caller a report of `p` through `out` (owned by the caller, freed with
/// rw_polled_free); NULL `out`: the caller does not want one.
pub(crate) fn put_polled(out: *mut *mut rw_polled, p: ratewise::Polled) -> Result<(), rw_result> {
    if out.is_null() {
        return Ok(());
    }
    let value = rw_polled {
        granted: p.granted.iter().map(|g| g.id.0).collect(),
        expired: p.expired.iter().map(|(t, _)| t.0).collect(),
    };
    out_ptr(out, Box::into_raw(Box::new(value)))
}

/// Number of tickets granted by the poll (NULL: 0).
///
/// # Safety
/// `polled` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_polled_granted_len(polled: *const rw_polled) -> usize {
    // SAFETY: the caller guarantees a NULL or live report.
    unsafe { polled.as_ref() }.map_or(0, |p| p.granted.len())
}

/// Granted ticket `i` (0 when out of range or NULL).
///
/// # Safety
/// `polled` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_polled_granted(polled: *const rw_polled, i: usize) -> u64 {
    // SAFETY: the caller guarantees a NULL or live report.
    unsafe { polled.as_ref() }
        .and_then(|p| p.granted.get(i).copied())
        .unwrap_or(0)
}

/// Number of tickets the poll expired (NULL: 0).
///
/// # Safety
/// `polled` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_polled_expired_len(polled: *const rw_polled) -> usize {
    // SAFETY: the caller guarantees a NULL or live report.
    unsafe { polled.as_ref() }.map_or(0, |p| p.expired.len())
}

/// Expired ticket `i` (0 when out of range or NULL).
///
/// # Safety
/// `polled` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_polled_expired(polled: *const rw_polled, i: usize) -> u64 {
    // SAFETY: the caller guarantees a NULL or live report.
    unsafe { polled.as_ref() }
        .and_then(|p| p.expired.get(i).copied())
        .unwrap_or(0)
}

/// Frees a poll report. NULL: no-op.
///
/// # Safety
/// `polled` must be NULL or a report from this library not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_polled_free(polled: *mut rw_polled) {
    // SAFETY: per the contract, `polled` is NULL or came from Box::into_raw here.
    unsafe { free_box(polled) }
}
