//! The engine handle and its calls: construction, select, acquire, complete, cancel, observe,
//! the provider readings, the snapshot and the run-time configuration calls. The calls that
//! wait are in `scheduler`.

use ratewise::{Clock, Dimension, Engine, Observation, PermitId};
use std::ffi::c_char;

use crate::call::{outcome, rw_outcome, rw_request, with_request};
use crate::clock::rw_clock;
use crate::decision::{new_decision, rw_decision};
use crate::error::{core, fail_with, rw_result};
use crate::ffi::{self, c_string, free_box, guard, json_bytes, non_null, out_ptr, static_c_str, text, texts};
use crate::polled::{put_polled, rw_polled};

/// The engine. Create with rw_engine_new_from_json; owned by the caller, free with
/// rw_engine_free; share between threads freely.
pub struct rw_engine {
    pub(crate) inner: Engine,
}

/// Builds an engine from `len` bytes of JSON configuration (borrowed for the call, need not be
/// NUL-terminated), on the system clock when `clock` is NULL, else on that manual clock (the
/// engine keeps its own reference: the caller may free the clock at any time). On success
/// `*out` is owned by the caller: free it with rw_engine_free.
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

/// Frees an engine. NULL: no-op. No other thread may be using it. Decisions and poll reports it
/// handed out stay valid (each is freed on its own).
///
/// # Safety
/// `engine` must be NULL or an engine from rw_engine_new_from_json not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_free(engine: *mut rw_engine) {
    // SAFETY: per the contract, `engine` is NULL or came from Box::into_raw here.
    unsafe { free_box(engine) }
}

/// The engine's clock reading in Unix ms (with a Redis store on the system clock: the Redis
/// server's clock, extrapolated locally), written to the caller's `*out`.
///
/// # Safety
/// `engine` must be NULL or live; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_engine_now_ms(engine: *const rw_engine, out: *mut i64) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        ffi::out(out, e.inner.now_ms(), "out")
    })
}

/// Which provider a request would go to now (changes no state). On success `*out` is a decision
/// owned by the caller: free it with rw_decision_free. `request` may be NULL; it and
/// `capability` are borrowed for the call only.
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

/// Selects and reserves atomically. On success `*permit` is the permit id (settle it with
/// rw_engine_complete or rw_engine_cancel); if `decision` is not NULL, `*decision` is the
/// decision, owned by the caller (free with rw_decision_free). `request` may be NULL.
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
pub(crate) unsafe fn acquire_with(
    engine: *const rw_engine,
    capability: *const c_char,
    request: *const rw_request,
    permit: *mut u64,
    decision: *mut *mut rw_decision,
    f: impl FnOnce(&Engine, &str, &ratewise::Request<'_>) -> ratewise::Result<ratewise::Permit>,
) -> rw_result {
    guard(|| {
        let e = non_null(engine, "engine")?;
        let cap = text(capability, "capability")?;
        if permit.is_null() {
            return Err(fail_with(rw_result::NullParameter, "permit is NULL"));
        }
        let p = core(with_request(request, |r| f(&e.inner, cap, r))?)?;
        ffi::out(permit, p.id.0, "permit")?;
        if !decision.is_null() {
            out_ptr(decision, new_decision(p.decision))?;
        }
        Ok(())
    })
}

/// Settles a permit with the call's outcome (`result`, borrowed for the call). A second
/// completion, or an expired permit, is RW_RESULT_UNKNOWN_PERMIT. If `polled` is not NULL,
/// `*polled` receives what the poll this triggers did, owned by the caller (free with
/// rw_polled_free).
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

/// Records a call made without a permit (`requests` requests; negative token fields count as
/// 0). `provider` and `result` are borrowed for the call only.
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
/// The arrays and strings are borrowed for the call only.
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

/// Health of a provider now, in [0, 1], written to the caller's `*out`.
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
        ffi::out(out, v, "out")
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
        ffi::out(out, v.unwrap_or(0), "out")?;
        ffi::out(has_value, v.is_some(), "has_value")
    })
}

/// The provider's circuit: "closed", "open" or "half_open" (the core's `CircuitState` names).
/// `*out` is static, owned by the library; do not free.
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
        ffi::out(out, static_c_str(c.as_str()), "out")
    })
}

/// The engine's state as JSON (stable paths: providers, lanes, counters, store). `*out` is
/// owned by the caller: free it with rw_string_free.
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
        ffi::out(out, c_string(e.inner.snapshot().to_string()).into_raw(), "out")
    })
}

fn json_value(json: *const c_char, len: usize, what: &str) -> Result<serde_json::Value, rw_result> {
    let text = json_bytes(json, len, what)?;
    // The core's reader refuses duplicate keys, naming their path.
    ratewise::json::parse(text, what, what).map_err(|e| fail_with(rw_result::InvalidConfig, &e.to_string()))
}

/// Adds or replaces a provider (`len` bytes of JSON, as in providers[]; borrowed for the call,
/// need not be NUL-terminated).
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

/// Adds or replaces a capability (`len` bytes of JSON, as in capabilities[]; borrowed for the
/// call, need not be NUL-terminated).
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
