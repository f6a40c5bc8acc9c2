//! The boundary itself: the panic guard every export runs behind, the conversions of C pointers
//! and strings (each answering a NULL with RW_RESULT_NULL_PARAMETER), and the library-wide
//! exports (version, freeing strings).

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};

use crate::error::{fail_with, rw_result};

/// Runs an export body behind the panic boundary.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), rw_result>) -> rw_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => rw_result::Ok,
        Ok(Err(code)) => code,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            fail_with(rw_result::Panic, &format!("ratewise panicked: {what}"))
        }
    }
}

/// A C string of `s` (an interior NUL, which C could not see past, becomes U+FFFD).
pub(crate) fn c_string(s: String) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// A NUL-terminated copy of one of the core's static names (an error code, a status, a circuit
/// state), made on first use and kept for the life of the process, so that C may keep the
/// pointer. The core's names are a small fixed set, so the table stays a few entries long. (A `Vec`, not a hash
/// map: valgrind sees its entries as reachable, not as possibly lost.)
pub(crate) fn static_c_str(s: &'static str) -> *const c_char {
    static TABLE: Mutex<Vec<(&'static str, &'static CStr)>> = Mutex::new(Vec::new());
    let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, c)) = table.iter().find(|(name, _)| *name == s) {
        return c.as_ptr();
    }
    let c: &'static CStr = Box::leak(c_string(s.to_owned()).into_boxed_c_str());
    table.push((s, c));
    c.as_ptr()
}

/// A required pointer.
pub(crate) fn non_null<'a, T>(p: *const T, what: &str) -> Result<&'a T, rw_result> {
    // SAFETY: the caller guarantees that a non-NULL pointer points to a live value of T.
    unsafe { p.as_ref() }.ok_or_else(|| fail_with(rw_result::NullParameter, &format!("{what} is NULL")))
}

/// A required NUL-terminated UTF-8 string.
pub(crate) fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, rw_result> {
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees a NUL-terminated string that outlives the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail_with(rw_result::InvalidArgument, &format!("{what} is not valid UTF-8")))
}

/// An optional NUL-terminated UTF-8 string (NULL: `None`).
pub(crate) fn opt_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, rw_result> {
    if p.is_null() { Ok(None) } else { text(p, what).map(Some) }
}

/// `len` strings from an array (NULL allowed when len is 0).
pub(crate) fn texts<'a>(p: *const *const c_char, len: usize, what: &str) -> Result<Vec<&'a str>, rw_result> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees `len` readable pointers at `p`.
    let ptrs = unsafe { std::slice::from_raw_parts(p, len) };
    ptrs.iter().map(|s| text(*s, what)).collect()
}

/// `len` bytes of UTF-8 text, not NUL-terminated (JSON documents); bad UTF-8 is an invalid
/// configuration.
pub(crate) fn json_bytes<'a>(p: *const c_char, len: usize, what: &str) -> Result<&'a str, rw_result> {
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `p`.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| fail_with(rw_result::InvalidConfig, &format!("{what} is not valid UTF-8")))
}

/// Writes an output value through a required pointer.
pub(crate) fn out<T>(p: *mut T, value: T, what: &str) -> Result<(), rw_result> {
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees `p` is valid for a write of T.
    unsafe { p.write(value) };
    Ok(())
}

/// Hands a boxed handle to the caller through `out`; reclaims it when `out` is NULL.
pub(crate) fn out_ptr<T>(out: *mut *mut T, value: *mut T) -> Result<(), rw_result> {
    if out.is_null() {
        // SAFETY: `value` came from Box::into_raw in the caller; reclaim it rather than leak it.
        unsafe { free_box(value) };
        return Err(fail_with(rw_result::NullParameter, "out is NULL"));
    }
    // SAFETY: `out` is non-NULL and the caller guarantees it is valid for a write.
    unsafe { out.write(value) };
    Ok(())
}

/// Drops a handle the library boxed; NULL is a no-op.
///
/// # Safety
/// `p` must be NULL or a pointer from `Box::into_raw` not yet freed.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: guaranteed by the caller.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// The library's version ("0.1.0"): compare it with RATEWISE_VERSION to check that the header
/// and the library match. Static, owned by the library; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn rw_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast::<c_char>()
}

/// Frees a string the library handed to the caller (the JSON of rw_engine_snapshot). NULL:
/// no-op. Never pass a string the library still owns (names, messages, static strings).
///
/// # Safety
/// `s` must be NULL or a string returned by this library for the caller to free, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: per the contract, `s` came from CString::into_raw in this library.
        drop(unsafe { CString::from_raw(s) });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn static_c_str_is_made_once_per_name() {
        let a = static_c_str(ratewise::Status::RateLimited.as_str());
        assert_eq!(a, static_c_str("rate_limited"));
        // SAFETY: static_c_str answers a NUL-terminated string that lives forever.
        assert_eq!(unsafe { CStr::from_ptr(a) }.to_str().unwrap(), "rate_limited");
        assert_ne!(a, static_c_str(ratewise::CircuitState::HalfOpen.as_str()));
    }
}
