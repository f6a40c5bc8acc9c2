//! What a call carries in: the request (`rw_request`) and the outcome (`rw_outcome`), as C
//! structs the caller owns, converted to the core's `Request` and `Outcome` for one call.

use ratewise::{Outcome, Request, Status};
use std::ffi::c_char;
use std::str::FromStr;

use crate::error::{core, rw_result};
use crate::ffi::{opt_text, texts};

/// What the caller wants to send. Pass NULL for the defaults (lane "normal", no tokens). Owned
/// by the caller and borrowed for the call only: the strings need only outlive the call.
#[repr(C)]
pub struct rw_request {
    /// Lane name, or NULL for "normal".
    pub lane: *const c_char,
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Estimated output tokens (usually the call's max_tokens).
    pub output_tokens: u64,
    /// Providers not wanted now (may be NULL when exclude_len is 0).
    pub exclude: *const *const c_char,
    /// Number of entries in exclude.
    pub exclude_len: usize,
}

/// How a call went. Token fields are -1 when not reported (complete) or 0 (observe). Owned by
/// the caller and borrowed for the call only: the strings need only outlive the call.
#[repr(C)]
pub struct rw_outcome {
    /// Status class ("success", "rate_limited", ...), or NULL to use http_status.
    pub status: *const c_char,
    /// HTTP status code, used when status is NULL.
    pub http_status: i32,
    /// Observed latency in ms (0: no sample).
    pub latency_ms: u64,
    /// Reported input tokens, or -1.
    pub input_tokens: i64,
    /// Reported output tokens, or -1.
    pub output_tokens: i64,
    /// Input tokens served from the provider's prompt cache, or -1.
    pub cached_input_tokens: i64,
    /// The provider's retry-after in ms, or -1 (0 also means none).
    pub retry_after_ms: i64,
    /// Response header names (may be NULL when headers_len is 0).
    pub header_names: *const *const c_char,
    /// Response header values, parallel to header_names.
    pub header_values: *const *const c_char,
    /// Number of headers.
    pub headers_len: usize,
    /// Input tokens written to the provider's prompt cache (Anthropic's
    /// cache_creation_input_tokens; part of input_tokens), or -1 (0 also means none). Last, so
    /// that an initializer written before it leaves it 0.
    pub cache_write_input_tokens: i64,
}

/// Runs `f` on the core request of `req` (NULL: the defaults).
pub(crate) fn with_request<T>(req: *const rw_request, f: impl FnOnce(&Request<'_>) -> T) -> Result<T, rw_result> {
    // SAFETY: the caller guarantees a NULL or valid request.
    let Some(r) = (unsafe { req.as_ref() }) else {
        return Ok(f(&Request::default()));
    };
    let lane = opt_text(r.lane, "request.lane")?;
    let exclude = texts(r.exclude, r.exclude_len, "request.exclude")?;
    Ok(f(&Request {
        lane,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        exclude: &exclude,
    }))
}

/// A reported count: negative means not reported.
fn count(x: i64) -> Option<u64> {
    u64::try_from(x).ok()
}

/// The core outcome of a C outcome.
pub(crate) fn outcome(o: &rw_outcome) -> Result<Outcome, rw_result> {
    let status = match opt_text(o.status, "outcome.status")? {
        Some(name) => core(Status::from_str(name))?,
        None => core(Status::from_http(i64::from(o.http_status)))?,
    };
    let names = texts(o.header_names, o.headers_len, "outcome.header_names")?;
    let values = texts(o.header_values, o.headers_len, "outcome.header_values")?;
    Ok(Outcome {
        status,
        latency_ms: o.latency_ms,
        input_tokens: count(o.input_tokens),
        output_tokens: count(o.output_tokens),
        cached_input_tokens: count(o.cached_input_tokens),
        cache_write_input_tokens: count(o.cache_write_input_tokens),
        retry_after_ms: count(o.retry_after_ms),
        headers: names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    })
}
