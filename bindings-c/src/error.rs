//! Results and errors: the `rw_result` enum, the core's [`Error`] mapped onto it (one value per
//! code of [`Error::CODES`]), the name of each result, and the per-thread last error.

use ratewise::Error;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::sync::OnceLock;

use crate::ffi::{c_string, static_c_str};

/// The result of every fallible call. The values are stable; the name of each (the error code
/// shared with every language) is `rw_result_name`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

impl rw_result {
    /// The result a core error is reported as. `Error` is `#[non_exhaustive]`: a code the core
    /// adds later reads as an invalid argument until it is given its own value here (the tests
    /// below fail until then).
    pub(crate) fn of(e: &Error) -> rw_result {
        match e {
            Error::InvalidConfig(_) => rw_result::InvalidConfig,
            Error::InvalidArgument(_) => rw_result::InvalidArgument,
            Error::UnknownCapability(_) => rw_result::UnknownCapability,
            Error::UnknownProvider(_) => rw_result::UnknownProvider,
            Error::UnknownPermit(_) => rw_result::UnknownPermit,
            Error::NoAvailableProvider { .. } => rw_result::NoAvailableProvider,
            Error::StoreUnavailable(_) => rw_result::StoreUnavailable,
            Error::StoreConflict(_) => rw_result::StoreConflict,
            _ => rw_result::InvalidArgument,
        }
    }

    /// The stable name of the result: the core's `Error::code` for a core error.
    pub(crate) fn name(self) -> &'static str {
        names().iter().find(|n| n.result == self).map_or("", |n| n.code)
    }
}

/// What rw_result_name answers for a value that is not an rw_result (no code is named so).
const UNKNOWN_NAME: &CStr = c"unknown";

/// One error of each code of the core, for the names of their results.
fn one_of_each() -> Vec<Error> {
    vec![
        Error::InvalidConfig(String::new()),
        Error::InvalidArgument(String::new()),
        Error::UnknownCapability(String::new()),
        Error::UnknownProvider(String::new()),
        Error::UnknownPermit(0),
        Error::NoAvailableProvider {
            retry_after_ms: None,
            skipped: Vec::new(),
        },
        Error::StoreUnavailable(String::new()),
        Error::StoreConflict(String::new()),
    ]
}

struct Name {
    result: rw_result,
    code: &'static str,
}

/// The name of every result, built once: the core's code for each result that reports a core
/// error, the C library's own for the three that do not.
fn names() -> &'static [Name] {
    static NAMES: OnceLock<Vec<Name>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let own = [
            (rw_result::Ok, "ok"),
            (rw_result::NullParameter, "null_parameter"),
            (rw_result::Panic, "panic"),
        ];
        let errors = one_of_each();
        let core = errors.iter().map(|e| (rw_result::of(e), e.code()));
        own.into_iter()
            .chain(core)
            .map(|(result, code)| Name { result, code })
            .collect()
    })
}

/// The stable name of a result value: "ok", an error code shared with every language
/// ("invalid_config", "no_available_provider", ...), "null_parameter" or "panic". Takes the
/// value as an integer so that any value is safe: one that is not an rw_result (from a newer
/// header, or garbage) gives "unknown". Static, owned by the library; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn rw_result_name(result: u32) -> *const c_char {
    match names().iter().find(|n| n.result as u32 == result) {
        Some(n) => static_c_str(n.code),
        None => UNKNOWN_NAME.as_ptr(),
    }
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

fn set_last(code: rw_result, message: String, retry_after_ms: Option<i64>, skipped: &[ratewise::Skipped]) {
    let json = serde_json::json!({
        "code": code.name(),
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

/// Records a core error as this thread's last error and answers its result.
pub(crate) fn fail(e: Error) -> rw_result {
    let code = rw_result::of(&e);
    match &e {
        Error::NoAvailableProvider {
            retry_after_ms,
            skipped,
        } => set_last(code, e.to_string(), *retry_after_ms, skipped),
        _ => set_last(code, e.to_string(), None, &[]),
    }
    code
}

/// Records a failure of the C layer itself (a NULL pointer, bad UTF-8, ...).
pub(crate) fn fail_with(code: rw_result, message: &str) -> rw_result {
    set_last(code, message.to_string(), None, &[]);
    code
}

/// A core result, its error recorded as this thread's last error.
pub(crate) fn core<T>(r: ratewise::Result<T>) -> Result<T, rw_result> {
    r.map_err(fail)
}

/// The message of the last failed call on this thread ("" if none). Owned by the library; valid
/// until the next failing call on this thread; do not free.
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
/// [{"provider", "reason"}]}. Owned by the library; valid until the next failing call on this
/// thread; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn rw_last_error_json() -> *const c_char {
    LAST.with(|l| l.borrow().json.as_ptr())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every value, as C could pass it.
    const ALL: [rw_result; 11] = [
        rw_result::Ok,
        rw_result::InvalidConfig,
        rw_result::InvalidArgument,
        rw_result::UnknownCapability,
        rw_result::UnknownProvider,
        rw_result::UnknownPermit,
        rw_result::NoAvailableProvider,
        rw_result::StoreUnavailable,
        rw_result::StoreConflict,
        rw_result::NullParameter,
        rw_result::Panic,
    ];

    fn name(value: u32) -> &'static str {
        // SAFETY: rw_result_name always answers a static NUL-terminated string.
        unsafe { CStr::from_ptr(rw_result_name(value)) }.to_str().unwrap()
    }

    #[test]
    fn every_core_code_has_its_own_result_named_by_it() {
        let errors = one_of_each();
        let mut taken: HashSet<rw_result> = [rw_result::Ok, rw_result::NullParameter, rw_result::Panic].into();
        for code in Error::CODES {
            let e = errors
                .iter()
                .find(|e| e.code() == code)
                .unwrap_or_else(|| panic!("one_of_each has no error of code {code}: map it to an rw_result"));
            let result = rw_result::of(e);
            assert!(
                taken.insert(result),
                "{code} is reported as {result:?}, which another result uses"
            );
            assert_eq!(name(result as u32), code);
        }
        assert_eq!(
            errors.len(),
            Error::CODES.len(),
            "one_of_each holds a code the core does not list"
        );
    }

    #[test]
    fn every_value_has_one_name_and_others_are_unknown() {
        let named: HashSet<&str> = ALL.iter().map(|r| name(*r as u32)).collect();
        assert_eq!(named.len(), ALL.len(), "two results share a name");
        assert!(!named.contains("unknown") && !named.contains(""));
        for value in [9, 99, 102, 12345, u32::MAX] {
            assert_eq!(name(value), "unknown");
        }
        assert_eq!(name(rw_result::Ok as u32), "ok");
    }

    #[test]
    fn the_header_names_each_code_upper_cased() {
        let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/ratewise.h")).unwrap();
        for r in ALL {
            let line = format!("RW_RESULT_{} = {},", r.name().to_uppercase(), r as u32);
            assert!(header.contains(&line), "include/ratewise.h lacks `{line}`");
        }
    }

    #[test]
    fn last_error_json_carries_the_core_code() {
        let e = Error::UnknownPermit(7);
        let code = e.code();
        assert_eq!(fail(e), rw_result::UnknownPermit);
        // SAFETY: the pointer is valid until the next failing call on this thread.
        let json = unsafe { CStr::from_ptr(rw_last_error_json()) }.to_str().unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["code"], code);
        assert_eq!(v["message"], "unknown permit 7");
    }
}
