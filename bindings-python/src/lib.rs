//! `ratewise._native`: the Python binding of the ratewise core. It only converts types and
//! errors; the public surface is the pure-Python package `ratewise`, which re-exports these
//! classes next to its exception classes.

mod config;
mod engine;
mod error;

use pyo3::prelude::*;

/// The native module. `gil_used = false`: every class is frozen around the core's thread-safe
/// engine, so the module is safe on free-threaded Python and needs no Python-level lock.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<engine::PyManualClock>()?;
    m.add_class::<engine::PyDecision>()?;
    m.add_class::<engine::PyPermit>()?;
    m.add_function(wrap_pyfunction!(engine::status_from_http, m)?)?;
    m.add_function(wrap_pyfunction!(engine::is_retryable, m)?)?;
    m.add_function(wrap_pyfunction!(engine::status_from_error_event, m)?)?;
    m.add_function(wrap_pyfunction!(engine::estimate_tokens, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Every stable error code of the core, so that the tests can check each has its class.
    m.add("ERROR_CODES", ratewise::Error::CODES.to_vec())?;
    Ok(())
}
