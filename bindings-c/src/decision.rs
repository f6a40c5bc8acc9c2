//! The accessors of a decision: where a request goes, its score and terms, the alternatives and
//! the skipped providers with their reasons.

use ratewise::Decision;
use std::ffi::{CString, c_char};
use std::sync::OnceLock;

use crate::error::{fail_with, rw_result};
use crate::ffi::{c_string, free_box, guard, non_null, out};

/// A decision (where a request goes, and why). Owned by the caller: free with rw_decision_free.
/// The strings its accessors hand out are owned by the decision and live until it is freed.
pub struct rw_decision {
    inner: Decision,
    provider: CString,
    model: CString,
    names: OnceLock<Names>,
}

/// The C strings of the alternatives and skipped providers, made on first use.
struct Names {
    alternatives: Vec<CString>,
    skipped: Vec<(CString, CString)>,
}

/// Boxes a core decision for the caller (who frees it with rw_decision_free).
pub(crate) fn new_decision(d: Decision) -> *mut rw_decision {
    let provider = c_string(d.provider.to_string());
    let model = c_string(d.model.to_string());
    Box::into_raw(Box::new(rw_decision {
        inner: d,
        provider,
        model,
        names: OnceLock::new(),
    }))
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

/// The upstream model to call on the chosen provider (its `model`, by default its name).
/// Owned by the decision (valid until rw_decision_free); do not free.
///
/// # Safety
/// `decision` must be NULL or live; NULL gives "" (static).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_model(decision: *const rw_decision) -> *const c_char {
    // SAFETY: the caller guarantees a NULL or live decision.
    match unsafe { decision.as_ref() } {
        Some(d) => d.model.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// The chosen provider. Owned by the decision (valid until rw_decision_free); do not free.
///
/// # Safety
/// `decision` must be NULL or live; NULL gives "" (static).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_provider(decision: *const rw_decision) -> *const c_char {
    // SAFETY: the caller guarantees a NULL or live decision.
    match unsafe { decision.as_ref() } {
        Some(d) => d.provider.as_ptr(),
        None => c"".as_ptr(),
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

/// The score terms, written as quota, health, priority, latency, cost into the caller's
/// `out[0..5]`.
///
/// # Safety
/// `decision` must be NULL or live; `out` must be valid for 5 writes.
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

/// Number of alternatives (other eligible providers, best first).
///
/// # Safety
/// `decision` must be NULL or live (NULL: 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_alternatives_len(decision: *const rw_decision) -> usize {
    // SAFETY: the caller guarantees a NULL or live decision.
    unsafe { decision.as_ref() }.map_or(0, |d| d.inner.alternatives.len())
}

/// Alternative `i`: its provider (`*provider`, owned by the decision and valid until
/// rw_decision_free; do not free) and score.
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

/// Skipped provider `i` and its reason ("held", "quota:tokens", ...). Both strings are owned by
/// the decision and valid until rw_decision_free; do not free them.
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

/// Frees a decision and every string it handed out. NULL: no-op.
///
/// # Safety
/// `decision` must be NULL or a decision from this library not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rw_decision_free(decision: *mut rw_decision) {
    // SAFETY: per the contract, `decision` is NULL or came from Box::into_raw here.
    unsafe { free_box(decision) }
}
