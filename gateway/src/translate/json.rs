//! Accessors over `serde_json::Value` that name the JSON path of whatever does not fit.
//!
//! A `null` field is treated as absent everywhere, since both APIs' SDKs send `null` for unset options.

use serde_json::{Map, Value};

use super::error::TranslateError;

/// The path of `key` inside the object at `path` (`""` is the body itself).
pub(crate) fn field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The path of element `i` of the array at `path`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A short name for a JSON value's kind, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The object at `path`, or an error.
pub(crate) fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, TranslateError> {
    v.as_object()
        .ok_or_else(|| TranslateError::new(path, format!("expected an object, got {}", kind(v))))
}

/// `m[key]`, with `null` read as absent.
pub(crate) fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// An optional string field.
pub(crate) fn opt_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<Option<&'a str>, TranslateError> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(TranslateError::new(
            field(path, key),
            format!("expected a string, got {}", kind(v)),
        )),
    }
}

/// A required string field.
pub(crate) fn req_str<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, TranslateError> {
    opt_str(m, key, path)?.ok_or_else(|| TranslateError::new(field(path, key), "required string is missing"))
}

/// An optional array field.
pub(crate) fn opt_array<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Vec<Value>>, TranslateError> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(TranslateError::new(
            field(path, key),
            format!("expected an array, got {}", kind(v)),
        )),
    }
}

/// An optional non-negative integer field.
pub(crate) fn opt_u64(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<u64>, TranslateError> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            TranslateError::new(
                field(path, key),
                format!("expected a non-negative integer, got {}", kind(v)),
            )
        }),
    }
}

/// An optional boolean field.
pub(crate) fn opt_bool(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, TranslateError> {
    match get(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(TranslateError::new(
            field(path, key),
            format!("expected a boolean, got {}", kind(v)),
        )),
    }
}

/// An optional number field, kept as the original `Value` so integers stay integers.
pub(crate) fn opt_number<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Value>, TranslateError> {
    match get(m, key) {
        None => Ok(None),
        Some(v) if v.is_number() => Ok(Some(v)),
        Some(v) => Err(TranslateError::new(
            field(path, key),
            format!("expected a number, got {}", kind(v)),
        )),
    }
}

/// A `u64` read leniently from an upstream answer (missing or malformed counts are unknown, not fatal).
pub(crate) fn u64_at(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// A string read leniently from an upstream answer.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Tool-call arguments (a JSON string) as the object Anthropic wants; blank means no arguments.
pub(crate) fn parse_arguments(args: Option<&str>, path: &str) -> Result<Value, TranslateError> {
    match args {
        None => Ok(Value::Object(Map::new())),
        Some(s) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(v) => Err(TranslateError::new(
                path,
                format!("arguments must be a JSON object, got {}", kind(&v)),
            )),
            Err(e) => Err(TranslateError::new(path, format!("arguments are not valid JSON: {e}"))),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_compose() {
        assert_eq!(field("", "n"), "n");
        assert_eq!(field(&index("messages", 2), "content"), "messages[2].content");
    }

    #[test]
    fn typed_getters_name_the_path() {
        let v = json!({"a": 1, "s": "x", "z": null});
        let m = as_object(&v, "").unwrap();
        assert_eq!(opt_str(m, "s", "p").unwrap(), Some("x"));
        assert_eq!(opt_str(m, "z", "p").unwrap(), None);
        let e = opt_str(m, "a", "p").unwrap_err();
        assert_eq!(e.path, "p.a");
        assert_eq!(e.message, "expected a string, got a number");
        assert_eq!(req_str(m, "missing", "").unwrap_err().path, "missing");
        assert_eq!(
            opt_u64(m, "s", "").unwrap_err().message,
            "expected a non-negative integer, got a string"
        );
        assert_eq!(
            as_object(&json!([1]), "x").unwrap_err().message,
            "expected an object, got an array"
        );
    }
}
