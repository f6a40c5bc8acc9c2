//! Configuration and JSON conversion: objects are turned into JSON text by the JS engine's own
//! `JSON.stringify`, then parsed and validated once, in the core.

use napi::bindgen_prelude::*;
use ratewise::{Config, Error as CoreError};

use crate::error::{IntoJsResult, invalid_argument, to_js};

fn json_fn<'env>(env: &'env Env, name: &str) -> Result<Function<'env, Unknown<'env>, Unknown<'env>>> {
    let json: Object = env.get_global()?.get_named_property("JSON")?;
    json.get_named_property(name)
}

/// JSON text for a configuration given as an object or as JSON text.
pub(crate) fn to_json(env: &Env, value: Either<String, Unknown<'_>>, what: &str) -> Result<String> {
    match value {
        Either::A(text) => Ok(text),
        Either::B(obj) => {
            let text = json_fn(env, "stringify")?.call(obj).map_err(|e| {
                to_js(
                    env,
                    &CoreError::InvalidConfig(format!("{what} is not JSON-serialisable: {e}")),
                )
            })?;
            match text.get_type()? {
                ValueType::String => Ok(text.coerce_to_string()?.into_utf8()?.into_owned()?),
                _ => Err(to_js(
                    env,
                    &CoreError::InvalidConfig(format!("{what} must be an object or JSON text")),
                )),
            }
        }
    }
}

pub(crate) fn config(env: &Env, value: Either<String, Unknown<'_>>) -> Result<Config> {
    let text = to_json(env, value, "config")?;
    Config::from_json(&text).js(env)
}

pub(crate) fn to_value(env: &Env, value: Either<String, Unknown<'_>>, what: &str) -> Result<serde_json::Value> {
    let text = to_json(env, value, what)?;
    serde_json::from_str(&text)
        .map_err(|e| to_js(env, &CoreError::InvalidConfig(format!("{what} is not valid JSON: {e}"))))
}

/// A plain JS value for JSON text (the snapshot).
pub(crate) fn parse<'env>(env: &'env Env, text: &str) -> Result<Unknown<'env>> {
    let s = env.create_string(text)?;
    json_fn(env, "parse")?.call(s.to_unknown())
}

/// Headers from a plain object (`{name: value}`), a fetch `Headers`, a `Map`, or an array of
/// `[name, value]` pairs. Anything iterable goes through the JS engine's `Object.fromEntries`,
/// so nothing a `Headers` holds is lost.
pub(crate) fn headers(env: &Env, value: Option<Unknown<'_>>) -> Result<Vec<(String, String)>> {
    let Some(value) = value else { return Ok(Vec::new()) };
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => return Ok(Vec::new()),
        ValueType::Object => {}
        _ => {
            return Err(invalid_argument(
                env,
                "headers must be an object, a Headers, a Map or [name, value] pairs".into(),
            ));
        }
    }
    let obj: Object = value.coerce_to_object()?;
    let plain: Object = if obj.is_array()? || obj.has_named_property("entries")? {
        // `Object` is a function: read it untyped, then as an object to reach `fromEntries`.
        let object_ctor: Unknown = env.get_global()?.get_named_property("Object")?;
        let object_ctor: Object = object_ctor.coerce_to_object()?;
        let from_entries: Function<Unknown, Object> = object_ctor.get_named_property("fromEntries")?;
        from_entries.call(value).map_err(|_| {
            invalid_argument(
                env,
                "headers must be an object, a Headers, a Map or [name, value] pairs".into(),
            )
        })?
    } else {
        obj
    };
    let names: Object = plain.get_property_names()?;
    let mut out = Vec::new();
    for i in 0..names.get_array_length()? {
        let name: Unknown = names.get_element(i)?;
        let name = name.coerce_to_string()?.into_utf8()?.into_owned()?;
        let v: Unknown = plain.get_named_property(&name)?;
        out.push((name, v.coerce_to_string()?.into_utf8()?.into_owned()?));
    }
    Ok(out)
}
