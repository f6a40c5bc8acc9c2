//! Maps the core's errors onto the exception classes of `ratewise/errors.py` (one place, one
//! match). The classes are defined in Python so that `InvalidConfigError` can subclass both
//! `RatewiseError` and `ValueError`, and so that they pickle like any exception.

use pyo3::prelude::*;
use ratewise::Error;

/// The Python class name for each error code.
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::InvalidConfig(_) => "InvalidConfigError",
        Error::InvalidArgument(_) => "InvalidArgumentError",
        Error::UnknownCapability(_) => "UnknownCapabilityError",
        Error::UnknownProvider(_) => "UnknownProviderError",
        Error::UnknownPermit(_) => "UnknownPermitError",
        Error::NoAvailableProvider { .. } => "NoAvailableProviderError",
        Error::StoreUnavailable(_) => "StoreUnavailableError",
        Error::StoreConflict(_) => "StoreConflictError",
        // `Error` is non-exhaustive: a code added to the core before its class exists here
        // still reaches Python as a RatewiseError carrying its code.
        _ => "RatewiseError",
    }
}

/// Builds the Python exception for a core error.
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    build(py, e).unwrap_or_else(|failure| failure)
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let cls = py.import("ratewise.errors")?.getattr(class_name(e))?;
    let value = match e {
        Error::NoAvailableProvider {
            retry_after_ms,
            skipped,
        } => {
            let skipped: Vec<(String, String)> = skipped
                .iter()
                .map(|s| (s.provider.to_string(), s.reason.code()))
                .collect();
            cls.call1((e.to_string(), *retry_after_ms, skipped))?
        }
        other if class_name(other) == "RatewiseError" => cls.call1((e.to_string(), e.code()))?,
        _ => cls.call1((e.to_string(),))?,
    };
    Ok(PyErr::from_value(value))
}

/// `?` for core results inside `#[pymethods]`.
pub(crate) trait IntoPyResult<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for ratewise::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}

/// An `invalid_argument` error raised from the binding's own argument checks.
pub(crate) fn invalid_argument(py: Python<'_>, message: String) -> PyErr {
    to_py(py, &Error::InvalidArgument(message))
}
