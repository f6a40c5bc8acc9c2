//! Configuration input: a dict (any mapping, holding mappings, lists, tuples, str, int, float,
//! bool and None), JSON text, or an `os.PathLike`. Parsing and validation happen once, in the
//! core; a dict is turned into the core's JSON value here, naming the path of anything JSON
//! cannot hold (`providers[0].price.input_per_mtok: must be a finite number`).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use ratewise::{Config, json};
use serde_json::{Map, Number, Value};

use crate::error::{IntoPyResult, to_py};

/// Deepest nesting a dict may have (serde_json's own limit for JSON text).
const MAX_DEPTH: usize = 128;

/// Parses the `config` argument of `Engine(...)`.
pub(crate) fn from_py(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Config> {
    if let Ok(text) = config.cast::<PyString>() {
        let text = text.to_cow()?;
        return match Config::from_json(&text) {
            Err(_) if looks_like_path(&text) => Err(invalid(
                py,
                "",
                &format!(
                    "configuration text is not JSON, but '{text}' looks like a file name: \
                     pass a path with Engine(pathlib.Path('{text}')) or Engine.from_file('{text}')"
                ),
            )),
            parsed => parsed.py(py),
        };
    }
    if config.hasattr("__fspath__")? {
        let path: String = py.import("os")?.call_method1("fspath", (config,))?.extract()?;
        return Config::from_file(path).py(py);
    }
    Config::from_value(&to_value(py, config, "")?).py(py)
}

/// Whether configuration text that is not JSON names a file (an existing one, or a `.json`
/// name): the caller meant a path.
fn looks_like_path(text: &str) -> bool {
    let t = text.trim();
    !t.starts_with('{') && !t.contains('\n') && (t.ends_with(".json") || std::path::Path::new(t).is_file())
}

/// A conservative estimate of the input tokens of `value` (messages, or a request body), as
/// the core counts them; a value JSON cannot hold is `invalid_argument`.
pub(crate) fn estimate(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    // The common case walks the Python values themselves: no JSON value built, no path strings.
    // Anything that walk does not take goes the long way, which names what JSON cannot hold.
    if let Some(n) = estimate_walk(value) {
        return Ok(n);
    }
    let v = convert(py, value, "messages", 0)
        .map_err(|e| to_py(py, &ratewise::Error::InvalidArgument(e.value(py).to_string())))?;
    Ok(ratewise::estimate_tokens(&v))
}

/// [`ratewise::estimate_tokens`] of `value` counted on the Python values, as [`convert`] would
/// turn them into JSON: `None` when `value` holds anything but dicts (with str keys), lists,
/// tuples, str, int, float, bool and None, or anything [`convert`] refuses (it is converted
/// then, and the error names its path). `bindings-python/tests/test_estimate.py` holds the two ways equal.
fn estimate_walk(value: &Bound<'_, PyAny>) -> Option<u64> {
    let messages = if let Ok(list) = value.cast::<PyList>() {
        list.len()
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        tuple.len()
    } else if let Ok(dict) = value.cast::<PyDict>() {
        match dict.get_item("messages").ok().flatten() {
            Some(m) => match m.cast::<PyList>() {
                Ok(list) => list.len(),
                Err(_) => m.cast::<PyTuple>().map_or(0, |t| t.len()),
            },
            None => 0,
        }
    } else {
        0
    };
    Some(ratewise::request_tokens(text_tokens(value, 0, true)?, messages as u64))
}

/// The text tokens of one value (`count`: false when only checking that it converts, inside an
/// image part, whose content is not counted).
fn text_tokens(v: &Bound<'_, PyAny>, depth: usize, count: bool) -> Option<u64> {
    if depth > MAX_DEPTH {
        return None;
    }
    if v.is_none() {
        return Some(0);
    }
    if let Ok(s) = v.cast::<PyString>() {
        let s = s.to_cow().ok()?;
        return Some(if count { ratewise::string_tokens(&s) } else { 0 });
    }
    if let Ok(list) = v.cast::<PyList>() {
        return list.iter().try_fold(0u64, |t, item| {
            Some(t.saturating_add(text_tokens(&item, depth + 1, count)?))
        });
    }
    if let Ok(dict) = v.cast::<PyDict>() {
        let image = match dict.get_item("type").ok().flatten() {
            Some(t) => t
                .cast::<PyString>()
                .ok()
                .and_then(|t| t.to_cow().ok())
                .is_some_and(|t| ratewise::is_image_part(&t)),
            None => false,
        };
        let mut total = 0u64;
        for (k, item) in dict.iter() {
            // Keys are exact str: then Python's lookups above find what the JSON object would
            // (a str subclass may hash and compare as it likes).
            k.cast_exact::<PyString>().ok()?.to_cow().ok()?;
            total = total.saturating_add(text_tokens(&item, depth + 1, count && !image)?);
        }
        return Some(if image && count { ratewise::IMAGE_TOKENS } else { total });
    }
    if v.cast::<PyBool>().is_ok() {
        return Some(u64::from(count));
    }
    if v.is_instance_of::<PyInt>() {
        let n = match v.extract::<i64>() {
            Ok(i) => Number::from(i),
            Err(_) => Number::from(v.extract::<u64>().ok()?),
        };
        return Some(if count {
            ratewise::string_tokens(&n.to_string())
        } else {
            0
        });
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        let n = Number::from_f64(f.value())?;
        return Some(if count {
            ratewise::string_tokens(&n.to_string())
        } else {
            0
        });
    }
    if let Ok(tuple) = v.cast::<PyTuple>() {
        return tuple.iter().try_fold(0u64, |t, item| {
            Some(t.saturating_add(text_tokens(&item, depth + 1, count)?))
        });
    }
    None
}

/// The JSON value of a configuration object found at `path` (`""` for the whole configuration,
/// `provider` for `upsert_provider`): JSON text is parsed by the core (which refuses duplicate
/// keys), anything else converted with [`convert`].
pub(crate) fn to_value(py: Python<'_>, value: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    if let Ok(text) = value.cast::<PyString>() {
        let what = if path.is_empty() { "configuration" } else { path };
        return json::parse(&text.to_cow()?, path, what).py(py);
    }
    convert(py, value, path, 0)
}

/// An `invalid_config` error at `path` (`$` for the document itself, as the core writes it).
fn invalid(py: Python<'_>, path: &str, message: &str) -> PyErr {
    to_py(py, &json::error(if path.is_empty() { "$" } else { path }, message))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A Python object as a JSON value, as `json.dumps` would write it, except that what JSON text
/// cannot hold (NaN, infinities, integers beyond 64 bits) is refused at its path rather than
/// written as text the core's parser then refuses without one.
fn convert(py: Python<'_>, v: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(invalid(py, path, "is nested too deeply"));
    }
    if v.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: `True` is an int in Python.
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(invalid(py, path, "must fit in 64 bits"));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return match Number::from_f64(f.value()) {
            Some(n) => Ok(Value::Number(n)),
            None => Err(invalid(py, path, "must be a finite number")),
        };
    }
    if let Ok(s) = v.cast::<PyString>() {
        // to_cow: borrowed on full-API builds, copied on the stable ABI before 3.10 (abi3 wheel).
        return match s.to_cow() {
            Ok(s) => Ok(Value::String(s.into_owned())),
            Err(_) => Err(invalid(py, path, "must be valid Unicode (no lone surrogates)")),
        };
    }
    if let Ok(list) = v.cast::<PyList>() {
        return list
            .iter()
            .enumerate()
            .map(|(i, item)| convert(py, &item, &format!("{path}[{i}]"), depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(tuple) = v.cast::<PyTuple>() {
        return tuple
            .iter()
            .enumerate()
            .map(|(i, item)| convert(py, &item, &format!("{path}[{i}]"), depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    let mut object = Map::new();
    let mut entry = |k: &Bound<'_, PyAny>, item: &Bound<'_, PyAny>| -> PyResult<()> {
        let Ok(key) = k.cast::<PyString>() else {
            let kind = k.get_type().name()?;
            return Err(invalid(py, path, &format!("keys must be strings, not {kind}")));
        };
        let key = key
            .to_cow()
            .map_err(|_| invalid(py, path, "keys must be valid Unicode (no lone surrogates)"))?;
        let value = convert(py, item, &join(path, &key), depth + 1)?;
        object.insert(key.into_owned(), value);
        Ok(())
    };
    if let Ok(dict) = v.cast::<PyDict>() {
        for (k, item) in dict.iter() {
            entry(&k, &item)?;
        }
        return Ok(Value::Object(object));
    }
    if let Ok(mapping) = v.cast::<PyMapping>() {
        for pair in mapping.items()?.iter() {
            let (k, item): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
            entry(&k, &item)?;
        }
        return Ok(Value::Object(object));
    }
    let kind = v.get_type().name()?;
    Err(invalid(py, path, &format!("is not JSON-serialisable (type {kind})")))
}
