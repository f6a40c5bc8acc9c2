//! The C ABI of ratewise (`libratewise`, `include/ratewise.h`).
//!
//! Opaque handles (`rw_engine`, `rw_clock`, `rw_decision`), permits as `uint64_t` ids (a stale or
//! repeated id is `RW_RESULT_UNKNOWN_PERMIT`, never undefined behaviour), a `#[repr(u32)]`
//! result enum with explicit values, a per-thread last error, and a panic boundary around every
//! export. The functions only convert; every decision is the core's.

// This crate is the FFI boundary: raw pointers from C are its job. Every `unsafe` block checks
// the pointer for NULL first and documents what the caller must guarantee.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

use ratewise::{
    Clock, Decision, Dimension, Engine, Error, ManualClock, Observation, Outcome, PermitId, Request, Status,
};
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::OnceLock;

/// The result of every fallible call. The values are stable; the name of each (the error code
/// shared with every language) is `rw_result_name`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rw_result {
    /// Success.
    Ok = 0,
    /// The configuration was refused; the message names the JSON path.
    InvalidConfig = 1,
    /// An argument was out of its domain.
    InvalidArgument = 2,
    /// No capability of that name.
    UnknownCapability = 3,
    /// No provider of that name.
    UnknownProvider = 4,
    /// The permit was never issued, or was already completed, cancelled or expired.
    UnknownPermit = 5,
    /// No provider can take the request now; see rw_last_error_retry_after_ms.
    NoAvailableProvider = 6,
    /// The shared store could not be reached.
    StoreUnavailable = 7,
    /// The shared store holds state written with a different configuration.
    StoreConflict = 8,
    /// A required pointer was NULL.
    NullParameter = 100,
    /// ratewise panicked (a bug); the engine may be left in any state.
    Panic = 101,
}

/// A settable clock for tests and simulations. Create with rw_clock_new_manual.
pub struct rw_clock {
    inner: ManualClock,
}

/// The engine. Create with rw_engine_new_from_json; share between threads freely.
pub struct rw_engine {
    inner: Engine,
}

/// A decision (where a request goes, and why). Owned by the caller: free with rw_decision_free.
pub struct rw_decision {
    inner: Decision,
    provider: CString,
    names: OnceLock<Names>,
}

struct Names {
    alternatives: Vec<CString>,
    skipped: Vec<(CString, CString)>,
}

/// What one poll of the waiting requests did: ticket ids granted (each now a permit of the same
/// id) and expired, in rank order. Owned by the caller: free with rw_polled_free.
pub struct rw_polled {
    granted: Vec<u64>,
    expired: Vec<u64>,
}

fn put_polled(out: *mut *mut rw_polled, p: ratewise::Polled) -> Result<(), rw_result> {
    if out.is_null() {
        return Ok(());
    }
    let value = rw_polled {
        granted: p.granted.iter().map(|g| g.id.0).collect(),
        expired: p.expired.iter().map(|(t, _)| t.0).collect(),
    };
    out_ptr(out, Box::into_raw(Box::new(value)))
}

/// What the caller wants to send. Pass NULL for the defaults (lane "normal", no tokens).
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

/// How a call went. Token fields are -1 when not reported (complete) or 0 (observe).
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
}

struct LastError {
    message: CString,
    retry_after_ms: i64,
    json: CString,
}

thread_local! {
    static LAST: RefCell<LastError> = RefCell::new(LastError {
        message: CString::default(),
        retry_after_ms: -1,
        json: CString::default(),
    });
}

fn code_of(e: &Error) -> rw_result {
    match e {
        Error::InvalidConfig(_) => rw_result::InvalidConfig,
        Error::InvalidArgument(_) => rw_result::InvalidArgument,
        Error::UnknownCapability(_) => rw_result::UnknownCapability,
        Error::UnknownProvider(_) => rw_result::UnknownProvider,
        Error::UnknownPermit(_) => rw_result::UnknownPermit,
        Error::NoAvailableProvider { .. } => rw_result::NoAvailableProvider,
        Error::StoreUnavailable(_) => rw_result::StoreUnavailable,
        Error::StoreConflict(_) => rw_result::StoreConflict,
        // `Error` is non-exhaustive; a newer code reads as an invalid argument until mapped.
        _ => rw_result::InvalidArgument,
    }
}

fn c_string(s: String) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

fn set_last(code: rw_result, message: String, retry_after_ms: Option<i64>, skipped: &[ratewise::Skipped]) {
    let json = serde_json::json!({
        "code": name_of(code).to_str().unwrap_or(""),
        "message": message,
        "retry_after_ms": retry_after_ms,
        "skipped": skipped.iter().map(|s| serde_json::json!({"provider": &*s.provider, "reason": s.reason.code()})).collect::<Vec<_>>(),
    });
    LAST.with(|l| {
        *l.borrow_mut() = LastError {
            message: c_string(message),
            retry_after_ms: retry_after_ms.unwrap_or(-1),
            json: c_string(json.to_string()),
        }
    });
}

fn fail(e: Error) -> rw_result {
    let code = code_of(&e);
    match &e {
        Error::NoAvailableProvider {
            retry_after_ms,
            skipped,
        } => set_last(code, e.to_string(), *retry_after_ms, skipped),
        _ => set_last(code, e.to_string(), None, &[]),
    }
    code
}

fn fail_with(code: rw_result, message: &str) -> rw_result {
    set_last(code, message.to_string(), None, &[]);
    code
}

/// Runs an export body behind the panic boundary.
fn guard(f: impl FnOnce() -> Result<(), rw_result>) -> rw_result {
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

fn core<T>(r: ratewise::Result<T>) -> Result<T, rw_result> {
    r.map_err(fail)
}

/// A required pointer.
fn non_null<'a, T>(p: *const T, what: &str) -> Result<&'a T, rw_result> {
    // SAFETY: the caller guarantees that a non-NULL pointer points to a live value of T.
    unsafe { p.as_ref() }.ok_or_else(|| fail_with(rw_result::NullParameter, &format!("{what} is NULL")))
}

/// A required NUL-terminated UTF-8 string.
fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, rw_result> {
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees a NUL-terminated string that outlives the call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| fail_with(rw_result::InvalidArgument, &format!("{what} is not valid UTF-8")))
}

fn opt_text<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, rw_result> {
    if p.is_null() { Ok(None) } else { text(p, what).map(Some) }
}

/// `len` strings from an array (NULL allowed when len is 0).
fn texts<'a>(p: *const *const c_char, len: usize, what: &str) -> Result<Vec<&'a str>, rw_result> {
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

fn out<T>(p: *mut T, value: T, what: &str) -> Result<(), rw_result> {
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees `p` is valid for a write of T.
    unsafe { p.write(value) };
    Ok(())
}

fn json_bytes<'a>(p: *const c_char, len: usize, what: &str) -> Result<&'a str, rw_result> {
    if p.is_null() {
        return Err(fail_with(rw_result::NullParameter, &format!("{what} is NULL")));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `p`.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|_| fail_with(rw_result::InvalidConfig, &format!("{what} is not valid UTF-8")))
}

/// The stable name of each result, NUL-terminated (the C API hands out the pointer).
fn name_of(r: rw_result) -> &'static CStr {
    match r {
        rw_result::Ok => c"ok",
        rw_result::InvalidConfig => c"invalid_config",
        rw_result::InvalidArgument => c"invalid_argument",
        rw_result::UnknownCapability => c"unknown_capability",
        rw_result::UnknownProvider => c"unknown_provider",
        rw_result::UnknownPermit => c"unknown_permit",
        rw_result::NoAvailableProvider => c"no_available_provider",
        rw_result::StoreUnavailable => c"store_unavailable",
        rw_result::StoreConflict => c"store_conflict",
        rw_result::NullParameter => c"null_parameter",
        rw_result::Panic => c"panic",
    }
}

macro_rules! static_cstr {
    ($s:expr) => {
        concat!($s, "\0").as_ptr().cast::<c_char>()
    };
}

/// The library version ("0.1.0"). Static; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn rw_version() -> *const c_char {
    static_cstr!(env!("CARGO_PKG_VERSION"))
}

/// The stable name of a result ("no_available_provider", ...; "ok"). Static; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn rw_result_name(result: rw_result) -> *const c_char {
    name_of(result).as_ptr()
}

/// The message of the last failed call on this thread ("" if none). Owned by the library; valid
/// until the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn rw_last_error_message() -> *const c_char {
    LAST.with(|l| l.borrow().message.as_ptr())
}

/// For RW_RESULT_NO_AVAILABLE_PROVIDER: ms from now until a provider is predicted ready, or -1
/// when none is predictable (and after any other failure).
#[unsafe(no_mangle)]
pub extern "C" fn rw_last_error_retry_after_ms() -> i64 {
    LAST.with(|l| l.borrow().retry_after_ms)
}

/// The last failure on this thread as JSON: {"code", "message", "retry_after_ms", "skipped":
/// [{"provider", "reason"}]}. Owned by the library; valid until the next failing call.
#[unsafe(no_mangle)]
pub extern "C" fn rw_last_error_json() -> *const c_char {
    LAST.with(|l| l.borrow().json.as_ptr())
}

/// Frees a string returned by the library (rw_engine_snapshot, rw_decision_json). NULL: no-op.
///
/// # Safety
/// `s` must be NULL or a string returned by this library and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: per the contract, `s` came from CString::into_raw in this library.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Creates a manual clock reading `start_ms`. Free with rw_clock_free.
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

/// Drops a handle the library boxed; NULL is a no-op.
///
/// # Safety
/// `p` must be NULL or a pointer from `Box::into_raw` not yet freed.
unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: guaranteed by the caller.
        drop(unsafe { Box::from_raw(p) });
    }
}

fn out_ptr<T>(out: *mut *mut T, value: *mut T) -> Result<(), rw_result> {
    if out.is_null() {
        // SAFETY: `value` came from Box::into_raw in the caller; reclaim it rather than leak it.
        unsafe { free_box(value) };
        return Err(fail_with(rw_result::NullParameter, "out is NULL"));
    }
    // SAFETY: `out` is non-NULL and the caller guarantees it is valid for a write.
    unsafe { out.write(value) };
    Ok(())
}

/// Moves a manual clock forward by `ms` (>= 0). Thread-safe.
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

/// Reads a manual clock.
///
/// # Safety
/// `clock` must be NULL or a live rw_clock; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_clock_now_ms(clock: *const rw_clock, out: *mut i64) -> rw_result {
    guard(|| {
        let c = non_null(clock, "clock")?;
        self::out(out, c.inner.now_ms(), "out")
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

/// Builds an engine from `len` bytes of JSON configuration, on the system clock when `clock` is
/// NULL, else on that manual clock. Free with rw_engine_free.
///
/// # Safety
/// `json` must point to `len` readable bytes; `clock` NULL or live; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_new_from_json(
    json: *const c_char,
    len: usize,
    clock: *const rw_clock,
    out: *mut *mut rw_engine,
) -> rw_result {
    guard(|| {
        let text = json_bytes(json, len, "json")?;
        let config = core(ratewise::Config::from_json(text))?;
        // SAFETY: the caller guarantees a NULL or live clock.
        let clock = match unsafe { clock.as_ref() } {
            Some(c) => Clock::Manual(c.inner.clone()),
            None => Clock::system(),
        };
        let engine = core(Engine::with_clock(config, clock))?;
        out_ptr(out, Box::into_raw(Box::new(rw_engine { inner: engine })))
    })
}

/// Frees an engine. NULL: no-op. No other thread may be using it.
///
/// # Safety
/// `engine` must be NULL or an engine from rw_engine_new_from_json not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_free(engine: *mut rw_engine) {
    // SAFETY: per the contract, `engine` is NULL or came from Box::into_raw here.
    unsafe { free_box(engine) }
}

/// The engine's clock reading in Unix ms (with a Redis store on the system clock: the Redis
/// server's clock, extrapolated locally).
///
/// # Safety
/// `engine` must be NULL or live; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_now_ms(engine: *const rw_engine, out: *mut i64) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        self::out(out, e.inner.now_ms(), "out")
    })
}

fn with_request<T>(req: *const rw_request, f: impl FnOnce(&Request<'_>) -> T) -> Result<T, rw_result> {
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

fn new_decision(d: Decision) -> *mut rw_decision {
    let provider = c_string(d.provider.to_string());
    Box::into_raw(Box::new(rw_decision {
        inner: d,
        provider,
        names: OnceLock::new(),
    }))
}

/// Which provider a request would go to now (changes no state). On success `*out` is a decision
/// the caller frees with rw_decision_free. `request` may be NULL.
///
/// # Safety
/// Pointers must be NULL or valid as documented on the types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_select(
    engine: *const rw_engine,
    capability: *const c_char,
    request: *const rw_request,
    out: *mut *mut rw_decision,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let cap = text(capability, "capability")?;
        if out.is_null() {
            return Err(fail_with(rw_result::NullParameter, "out is NULL"));
        }
        let d = core(with_request(request, |r| e.inner.select(cap, r))?)?;
        out_ptr(out, new_decision(d))
    })
}

/// Selects and reserves atomically. On success `*permit` is the permit id; if `decision` is not
/// NULL, `*decision` is the decision (free with rw_decision_free).
///
/// # Safety
/// Pointers must be NULL or valid as documented on the types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_acquire(
    engine: *const rw_engine,
    capability: *const c_char,
    request: *const rw_request,
    permit: *mut u64,
    decision: *mut *mut rw_decision,
) -> rw_result {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        acquire_with(engine, capability, request, permit, decision, |e, cap, r| {
            e.acquire(cap, r)
        })
    }
}

/// rw_engine_acquire and rw_engine_acquire_wait: checks the pointers, reserves with `f`, and
/// writes the permit id and (if wanted) the decision.
///
/// # Safety
/// As rw_engine_acquire.
unsafe fn acquire_with(
    engine: *const rw_engine,
    capability: *const c_char,
    request: *const rw_request,
    permit: *mut u64,
    decision: *mut *mut rw_decision,
    f: impl FnOnce(&ratewise::Engine, &str, &ratewise::Request<'_>) -> ratewise::Result<ratewise::Permit>,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let cap = text(capability, "capability")?;
        if permit.is_null() {
            return Err(fail_with(rw_result::NullParameter, "permit is NULL"));
        }
        let p = core(with_request(request, |r| f(&e.inner, cap, r))?)?;
        out(permit, p.id.0, "permit")?;
        if !decision.is_null() {
            out_ptr(decision, new_decision(p.decision))?;
        }
        Ok(())
    })
}

/// As rw_engine_acquire, but waits at most `timeout_ms` (> 0) for a permit, in the request's
/// lane's priority order, blocking the calling thread (it sleeps until a grant, a completion or
/// the next refill; it never spins). Other threads may use the engine meanwhile; completing or
/// cancelling a permit wakes the waiter it frees capacity for. Past the timeout it fails with
/// RW_RESULT_NO_AVAILABLE_PROVIDER (and the predicted wait in rw_last_error_retry_after_ms).
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

fn count(x: i64) -> Option<u64> {
    u64::try_from(x).ok()
}

fn outcome(o: &rw_outcome) -> Result<Outcome, rw_result> {
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
        retry_after_ms: count(o.retry_after_ms),
        headers: names
            .iter()
            .zip(&values)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    })
}

/// Settles a permit with the call's outcome. A second completion, or an expired permit, is
/// RW_RESULT_UNKNOWN_PERMIT. If `polled` is not NULL, `*polled` receives what the poll this
/// triggers did (free with rw_polled_free).
///
/// # Safety
/// Pointers must be NULL or valid as documented on the types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_complete(
    engine: *const rw_engine,
    permit: u64,
    result: *const rw_outcome,
    polled: *mut *mut rw_polled,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let o = outcome(non_null(result, "outcome")?)?;
        put_polled(polled, core(e.inner.complete(PermitId(permit), &o))?)
    })
}

/// The call was never sent: refunds every reservation of the permit (or withdraws a waiting
/// ticket). `polled` as for rw_engine_complete.
///
/// # Safety
/// `engine` must be NULL or live; `polled` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_cancel(
    engine: *const rw_engine,
    permit: u64,
    polled: *mut *mut rw_polled,
) -> rw_result {
    guard(|| {
        put_polled(
            polled,
            core(non_null(engine, "engine")?.inner.cancel(PermitId(permit)))?,
        )
    })
}

/// Adds a waiting request for at most `timeout_ms` (> 0), then polls: `*ticket` is its id (a
/// granted ticket is a permit of the same id); `polled` as for rw_engine_complete.
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
        out(ticket, t.0, "ticket")?;
        put_polled(polled, p)
    })
}

/// Grants waiting requests as capacity allows and expires those past their deadline; `*polled`
/// receives what it did (free with rw_polled_free).
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
        self::out(out, w.unwrap_or(0), "out")?;
        self::out(has_value, w.is_some(), "has_value")
    })
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

/// Records a call made without a permit (`requests` requests; negative token fields count as 0).
///
/// # Safety
/// Pointers must be NULL or valid as documented on the types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_observe(
    engine: *const rw_engine,
    provider: *const c_char,
    result: *const rw_outcome,
    requests: u64,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let p = text(provider, "provider")?;
        let seen = Observation::new(outcome(non_null(result, "outcome")?)?).requests(requests);
        core(e.inner.observe(p, &seen))
    })
}

/// Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers).
///
/// # Safety
/// `names` and `values` must hold `len` strings each (may be NULL when len is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_sync_headers(
    engine: *const rw_engine,
    provider: *const c_char,
    names: *const *const c_char,
    values: *const *const c_char,
    len: usize,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let p = text(provider, "provider")?;
        let n = texts(names, len, "names")?;
        let v = texts(values, len, "values")?;
        let pairs: Vec<(&str, &str)> = n.into_iter().zip(v).collect();
        core(e.inner.sync_headers(p, &pairs))
    })
}

/// Health of a provider now, in [0, 1].
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_health(
    engine: *const rw_engine,
    provider: *const c_char,
    out: *mut f64,
) -> rw_result {
    guard(|| {
        let v = core(non_null(engine, "engine")?.inner.health(text(provider, "provider")?))?;
        self::out(out, v, "out")
    })
}

/// Units left in a dimension ("tokens", ...): the minimum over the provider's quotas of it.
/// `*has_value` is false when the provider has no quota of that dimension.
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_remaining(
    engine: *const rw_engine,
    provider: *const c_char,
    dimension: *const c_char,
    out: *mut i64,
    has_value: *mut bool,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let p = text(provider, "provider")?;
        let d = text(dimension, "dimension")?;
        let dim = Dimension::parse(d)
            .ok_or_else(|| fail_with(rw_result::InvalidArgument, &format!("unknown dimension '{d}'")))?;
        if out.is_null() || has_value.is_null() {
            return Err(fail_with(rw_result::NullParameter, "out or has_value is NULL"));
        }
        let v = core(e.inner.remaining(p, dim))?;
        self::out(out, v.unwrap_or(0), "out")?;
        self::out(has_value, v.is_some(), "has_value")
    })
}

/// The provider's circuit: "closed", "open" or "half_open" (static; do not free).
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_circuit(
    engine: *const rw_engine,
    provider: *const c_char,
    out: *mut *const c_char,
) -> rw_result {
    guard(|| {
        let c = core(non_null(engine, "engine")?.inner.circuit(text(provider, "provider")?))?;
        let s = match c {
            ratewise::CircuitState::Closed => static_cstr!("closed"),
            ratewise::CircuitState::Open => static_cstr!("open"),
            ratewise::CircuitState::HalfOpen => static_cstr!("half_open"),
        };
        self::out(out, s, "out")
    })
}

/// The engine's state as JSON (stable paths: providers, lanes, counters, store). The caller
/// frees `*out` with rw_string_free.
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_snapshot(engine: *const rw_engine, out: *mut *mut c_char) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        if out.is_null() {
            return Err(fail_with(rw_result::NullParameter, "out is NULL"));
        }
        self::out(out, c_string(e.inner.snapshot().to_string()).into_raw(), "out")
    })
}

fn json_value(json: *const c_char, len: usize, what: &str) -> Result<serde_json::Value, rw_result> {
    let text = json_bytes(json, len, what)?;
    serde_json::from_str(text)
        .map_err(|e| fail_with(rw_result::InvalidConfig, &format!("{what} is not valid JSON: {e}")))
}

/// Adds or replaces a provider (`len` bytes of JSON, as in providers[]).
///
/// # Safety
/// `json` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_upsert_provider(
    engine: *const rw_engine,
    json: *const c_char,
    len: usize,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        core(e.inner.upsert_provider(&json_value(json, len, "provider")?))
    })
}

/// Adds or replaces a capability (`len` bytes of JSON, as in capabilities[]).
///
/// # Safety
/// `json` must point to `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_upsert_capability(
    engine: *const rw_engine,
    json: *const c_char,
    len: usize,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        core(e.inner.upsert_capability(&json_value(json, len, "capability")?))
    })
}

/// Removes a provider (it stays listed in its capabilities as unregistered).
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_remove_provider(engine: *const rw_engine, name: *const c_char) -> rw_result {
    guard(|| core(non_null(engine, "engine")?.inner.remove_provider(text(name, "name")?)))
}

/// Removes a capability.
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_remove_capability(engine: *const rw_engine, name: *const c_char) -> rw_result {
    guard(|| core(non_null(engine, "engine")?.inner.remove_capability(text(name, "name")?)))
}

/// The chosen provider (owned by the decision).
///
/// # Safety
/// `decision` must be NULL or live; NULL gives "".
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_provider(decision: *const rw_decision) -> *const c_char {
    // SAFETY: the caller guarantees a NULL or live decision.
    match unsafe { decision.as_ref() } {
        Some(d) => d.provider.as_ptr(),
        None => static_cstr!(""),
    }
}

/// The decision's score in [0, 1] (NaN for a NULL decision).
///
/// # Safety
/// `decision` must be NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_score(decision: *const rw_decision) -> f64 {
    // SAFETY: the caller guarantees a NULL or live decision.
    unsafe { decision.as_ref() }.map_or(f64::NAN, |d| d.inner.score)
}

/// The score terms, written as quota, health, priority, latency, cost into `out[0..5]`.
///
/// # Safety
/// `out` must be valid for 5 writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_breakdown(decision: *const rw_decision, out: *mut f64) -> rw_result {
    guard(|| {
        let d = non_null(decision, "decision")?;
        if out.is_null() {
            return Err(fail_with(rw_result::NullParameter, "out is NULL"));
        }
        let b = &d.inner.breakdown;
        for (i, v) in [b.quota, b.health, b.priority, b.latency, b.cost]
            .into_iter()
            .enumerate()
        {
            // SAFETY: the caller guarantees 5 writable doubles at `out`.
            unsafe { out.add(i).write(v) };
        }
        Ok(())
    })
}

fn names(d: &rw_decision) -> &Names {
    d.names.get_or_init(|| Names {
        alternatives: d
            .inner
            .alternatives
            .iter()
            .map(|a| c_string(a.provider.to_string()))
            .collect(),
        skipped: d
            .inner
            .skipped
            .iter()
            .map(|s| (c_string(s.provider.to_string()), c_string(s.reason.code())))
            .collect(),
    })
}

/// Number of alternatives (other eligible providers, best first).
///
/// # Safety
/// `decision` must be NULL or live (NULL: 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_alternatives_len(decision: *const rw_decision) -> usize {
    // SAFETY: the caller guarantees a NULL or live decision.
    unsafe { decision.as_ref() }.map_or(0, |d| d.inner.alternatives.len())
}

/// Alternative `i`: its provider (owned by the decision) and score.
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_alternative(
    decision: *const rw_decision,
    i: usize,
    provider: *mut *const c_char,
    score: *mut f64,
) -> rw_result {
    guard(|| {
        let d = non_null(decision, "decision")?;
        let a = d
            .inner
            .alternatives
            .get(i)
            .ok_or_else(|| fail_with(rw_result::InvalidArgument, "index out of range"))?;
        out(provider, names(d).alternatives[i].as_ptr(), "provider")?;
        out(score, a.score, "score")
    })
}

/// Number of skipped providers (ineligible ones, in capability order).
///
/// # Safety
/// `decision` must be NULL or live (NULL: 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_skipped_len(decision: *const rw_decision) -> usize {
    // SAFETY: the caller guarantees a NULL or live decision.
    unsafe { decision.as_ref() }.map_or(0, |d| d.inner.skipped.len())
}

/// Skipped provider `i` and its reason ("held", "quota:tokens", ...), owned by the decision.
///
/// # Safety
/// Pointers must be NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_skipped(
    decision: *const rw_decision,
    i: usize,
    provider: *mut *const c_char,
    reason: *mut *const c_char,
) -> rw_result {
    guard(|| {
        let d = non_null(decision, "decision")?;
        let (p, r) = names(d)
            .skipped
            .get(i)
            .ok_or_else(|| fail_with(rw_result::InvalidArgument, "index out of range"))?;
        out(provider, p.as_ptr(), "provider")?;
        out(reason, r.as_ptr(), "reason")
    })
}

/// Frees a decision. NULL: no-op.
///
/// # Safety
/// `decision` must be NULL or a decision from this library not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_free(decision: *mut rw_decision) {
    // SAFETY: per the contract, `decision` is NULL or came from Box::into_raw here.
    unsafe { free_box(decision) }
}

/// The class of an HTTP status code ("success", "rate_limited", "overloaded", ...); a 429 whose
/// error type (may be NULL) is "insufficient_quota" is "forbidden". Static; do not free.
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
        let p = match s {
            Status::Success => static_cstr!("success"),
            Status::ClientError => static_cstr!("client_error"),
            Status::RateLimited => static_cstr!("rate_limited"),
            Status::Forbidden => static_cstr!("forbidden"),
            Status::ServerError => static_cstr!("server_error"),
            Status::Overloaded => static_cstr!("overloaded"),
            Status::Timeout => static_cstr!("timeout"),
            _ => static_cstr!("client_error"),
        };
        self::out(out, p, "out")
    })
}
