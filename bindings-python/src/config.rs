//! Configuration input: a dict (any JSON-serialisable mapping), JSON text, or an `os.PathLike`.
//! Parsing and validation happen once, in the core.

use pyo3::prelude::*;
use ratewise::{Config, Error};

use crate::error::{IntoPyResult, to_py};

/// Parses the `config` argument of `Engine(...)`.
pub(crate) fn from_py(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Config> {
    if let Ok(text) = config.extract::<String>() {
        return Config::from_json(&text).py(py);
    }
    if config.hasattr("__fspath__")? {
        let path: String = py.import("os")?.call_method1("fspath", (config,))?.extract()?;
        return Config::from_file(path).py(py);
    }
    Config::from_json(&to_json(py, config, "config")?).py(py)
}

/// JSON text for a dict (or JSON text given as is), for configuration objects.
pub(crate) fn to_json(py: Python<'_>, value: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if let Ok(text) = value.extract::<String>() {
        return Ok(text);
    }
    match py.import("json")?.call_method1("dumps", (value,)) {
        Ok(text) => text.extract(),
        Err(e) => Err(to_py(
            py,
            &Error::InvalidConfig(format!("{what} is not JSON-serialisable: {e}")),
        )),
    }
}

/// A JSON value for the run-time configuration calls (a dict, or JSON text).
pub(crate) fn to_value(py: Python<'_>, value: &Bound<'_, PyAny>, what: &str) -> PyResult<serde_json::Value> {
    let text = to_json(py, value, what)?;
    serde_json::from_str(&text).map_err(|e| to_py(py, &Error::InvalidConfig(format!("{what} is not valid JSON: {e}"))))
}
