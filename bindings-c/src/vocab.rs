//! The core's shared words as C strings: the class of an HTTP status.

use ratewise::Status;
use std::ffi::c_char;

use crate::error::{core, rw_result};
use crate::ffi::{self, guard, opt_text, static_c_str};

/// The class of an HTTP status code ("success", "rate_limited", "overloaded", ...; the core's
/// `Status` names); a 429 whose error type (may be NULL) is "insufficient_quota" is "forbidden".
/// `*out` is static, owned by the library; do not free.
///
/// # Safety
/// `error_type` NULL or a string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_status_from_http(
    code: i32,
    error_type: *const c_char,
    out: *mut *const c_char,
) -> rw_result {
    guard(|| {
        let t = opt_text(error_type, "error_type")?;
        let s = core(Status::from_http_with_error_type(i64::from(code), t))?;
        ffi::out(out, static_c_str(s.as_str()), "out")
    })
}

/// Whether another attempt can succeed after an outcome of `status` ("rate_limited",
/// "overloaded", "server_error", "timeout"; docs/design.md §6): what a caller should retry.
/// An unknown status is `RW_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `status` a NUL-terminated string; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_status_is_retryable(status: *const c_char, out: *mut bool) -> rw_result {
    guard(|| {
        let s = core(ffi::text(status, "status")?.parse::<Status>())?;
        ffi::out(out, s.is_retryable(), "out")
    })
}

/// A conservative estimate of the input tokens of `len` bytes of JSON (a messages array, or a
/// request body), as the core counts them in every language (docs/design.md §12). Text that
/// is not JSON is `RW_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `json` must point to `len` readable bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_estimate_tokens(json: *const c_char, len: usize, out: *mut u64) -> rw_result {
    guard(|| {
        let text = ffi::json_bytes(json, len, "json")?;
        let n = core(ratewise::estimate_tokens_json(text))?;
        ffi::out(out, n, "out")
    })
}
