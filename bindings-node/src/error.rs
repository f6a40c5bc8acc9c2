//! Maps the core's errors onto JS `Error` objects (one place). Every error carries `code`, the
//! stable error code (`err.code === 'no_available_provider'`); `no_available_provider` also
//! carries `retryAfterMs` (a number or null) and `skipped` ([{provider, reason}]).

use napi::bindgen_prelude::*;
use ratewise::Error as CoreError;

/// One provider that was not chosen, and why.
#[napi(object)]
pub struct SkippedProvider {
    /// The provider's name.
    pub provider: String,
    /// Why it was skipped (`held`, `circuit_open`, `quota:tokens`, ...).
    pub reason: String,
}

pub(crate) fn skipped(list: &[ratewise::Skipped]) -> Vec<SkippedProvider> {
    list.iter()
        .map(|s| SkippedProvider {
            provider: s.provider.to_string(),
            reason: s.reason.code(),
        })
        .collect()
}

/// Builds the JS error for a core error.
pub(crate) fn to_js(env: &Env, e: &CoreError) -> napi::Error {
    build(env, e).unwrap_or_else(|failure| failure)
}

fn build(env: &Env, e: &CoreError) -> Result<napi::Error> {
    let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, e.to_string()))?;
    obj.set_named_property("code", e.code())?;
    if let CoreError::NoAvailableProvider {
        retry_after_ms,
        skipped: list,
    } = e
    {
        obj.set_named_property("retryAfterMs", *retry_after_ms)?;
        obj.set_named_property("skipped", skipped(list))?;
    }
    Ok(napi::Error::from(obj.to_unknown()))
}

/// `?` for core results in `#[napi]` methods.
pub(crate) trait IntoJsResult<T> {
    fn js(self, env: &Env) -> Result<T>;
}

impl<T> IntoJsResult<T> for ratewise::Result<T> {
    fn js(self, env: &Env) -> Result<T> {
        self.map_err(|e| to_js(env, &e))
    }
}

/// An `invalid_argument` error from the binding's own argument checks.
pub(crate) fn invalid_argument(env: &Env, message: String) -> napi::Error {
    to_js(env, &CoreError::InvalidArgument(message))
}

/// The core's stable error codes (`ratewise::Error::CODES`): test/error-codes.test.mjs checks
/// that each reaches JS as its own `err.code`.
#[napi]
pub fn error_codes() -> Vec<String> {
    CoreError::CODES.iter().map(|c| c.to_string()).collect()
}
