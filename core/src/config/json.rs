//! Reading JSON objects with their paths: the one reader behind the configuration (and behind
//! the `ratewise` command's workload files).
//!
//! An [`Object`] knows where it is in its document (`providers[1].quotas[0]`), refuses keys it
//! does not know, and names the JSON path in every error it returns
//! (`providers[1].quotas[0].limit: must be > 0`). Every error is [`Error::InvalidConfig`].
//!
//! **`null` means absent.** A known key whose value is `null` reads exactly like a key left out:
//! it takes its default, or is reported as required. An unknown key is refused whatever its
//! value, and an array element is not a key: a `null` element is reported as the wrong type.
//!
//! **Text is read with [`parse`]**, which refuses a key given twice in one object
//! (`providers[0].name: duplicate key`) where `serde_json` would silently keep the last one.
//! Names ([`Object::name`]) and keys checked with [`printable`] refuse control characters: they
//! become parts of store keys and of tab-joined permit records.
//!
//! ```
//! use ratewise::json::{Bound, Object};
//!
//! let doc = serde_json::json!({"name": "a", "limit": 10, "window": null});
//! let quota = Object::new(&doc, "quotas[0]", &["name", "limit", "window"])?;
//! assert_eq!(quota.name("name")?, "a");
//! assert_eq!(quota.int("limit", 1, Bound::Positive)?, 10);
//! assert_eq!(quota.opt_str("window")?, None); // null is absent
//! let err = quota.required_number("weight", Bound::NonNegative).unwrap_err();
//! assert_eq!(err.to_string(), "quotas[0].weight: is required");
//! let err = Object::new(&doc, "quotas[0]", &["name"]).err().map(|e| e.to_string());
//! assert_eq!(err.as_deref(), Some("quotas[0].limit: unknown key"));
//! # Ok::<(), ratewise::Error>(())
//! ```

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt::{self, Write as _};

use crate::error::{Error, Result};

/// An [`Error::InvalidConfig`] at `path` (`"path: message"`; just `message` when `path` is empty,
/// which names the document itself).
pub fn error(path: &str, message: &str) -> Error {
    if path.is_empty() {
        Error::InvalidConfig(message.to_string())
    } else {
        Error::InvalidConfig(format!("{path}: {message}"))
    }
}

/// Parses JSON `text` that sits at `path` in its document (empty for a whole document), refusing
/// a key that appears twice in one object with an [`Error::InvalidConfig`] at the key's path
/// (`providers[0].name: duplicate key`). Invalid JSON is `"{what} is not valid JSON: ..."`.
///
/// ```
/// let err = ratewise::json::parse(r#"{"name": "a", "name": "b"}"#, "provider", "provider").unwrap_err();
/// assert_eq!(err.to_string(), "provider.name: duplicate key");
/// let value = ratewise::json::parse(r#"[{"a": 1}, {"a": 2}]"#, "", "list")?;
/// assert_eq!(value[1]["a"], 2);
/// # Ok::<(), ratewise::Error>(())
/// ```
pub fn parse(text: &str, path: &str, what: &str) -> Result<Value> {
    let reader = Reader {
        path: RefCell::new(path.to_string()),
        duplicate: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Seed(&reader).deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, reader.duplicate.into_inner()) {
        (_, Some(at)) => Err(error(&at, "duplicate key")),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(Error::InvalidConfig(format!("{what} is not valid JSON: {e}"))),
    }
}

/// The path of the value being read, and the path of the first duplicate key found.
struct Reader {
    path: RefCell<String>,
    duplicate: RefCell<Option<String>>,
}

/// Builds a [`Value`] as `serde_json` does, tracking the path so a duplicate key can be named.
#[derive(Clone, Copy)]
struct Seed<'r>(&'r Reader);

impl Seed<'_> {
    /// Sets the path to `base` plus one step (the borrow ends before the value is read).
    fn step(&self, base: usize, step: impl fmt::Display, key: bool) {
        let mut path = self.0.path.borrow_mut();
        path.truncate(base);
        let _ = match (key, base) {
            (true, 0) => write!(path, "{step}"),
            (true, _) => write!(path, ".{step}"),
            (false, _) => write!(path, "[{step}]"),
        };
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> std::result::Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> std::result::Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, x: f64) -> std::result::Result<Value, E> {
        Ok(Number::from_f64(x).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> std::result::Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let base = self.0.path.borrow().len();
        let mut items = Vec::new();
        loop {
            self.step(base, items.len(), false);
            match seq.next_element_seed(self)? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        self.0.path.borrow_mut().truncate(base);
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let base = self.0.path.borrow().len();
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.step(base, &key, true);
            if object.contains_key(&key) {
                *self.0.duplicate.borrow_mut() = Some(self.0.path.borrow().clone());
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        self.0.path.borrow_mut().truncate(base);
        Ok(Value::Object(object))
    }
}

/// Refuses a name or key holding a control character (`must not contain control characters
/// (found U+0009)`): names become parts of store keys and of tab-joined permit records, where a
/// TAB or newline would split a field.
pub fn printable(path: &str, s: &str) -> Result<()> {
    match s.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(error(
            path,
            &format!("must not contain control characters (found U+{:04X})", c as u32),
        )),
    }
}

/// The range a number must lie in; the getters check it and say which in the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// `> 0` (`must be > 0`).
    Positive,
    /// `≥ 0` (`must be >= 0`).
    NonNegative,
    /// In `[0, 1]` (`must be in [0, 1]`).
    UnitInterval,
}

impl Bound {
    fn check(self, x: f64) -> Option<&'static str> {
        match self {
            Bound::Positive if x <= 0.0 => Some("must be > 0"),
            Bound::NonNegative if x < 0.0 => Some("must be >= 0"),
            Bound::UnitInterval if !(0.0..=1.0).contains(&x) => Some("must be in [0, 1]"),
            _ => None,
        }
    }
}

/// A JSON object being read: its path in the document and the keys it may hold.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Object<'a> {
    /// Reads `value`, found at `path` (empty for the document itself), as an object that may
    /// hold only the keys in `allowed`. Refuses a value that is not an object, and the first
    /// unknown key in sorted order (`path.key: unknown key`).
    pub fn new(value: &'a Value, path: &str, allowed: &[&str]) -> Result<Object<'a>> {
        let map = value
            .as_object()
            .ok_or_else(|| error(if path.is_empty() { "$" } else { path }, "must be an object"))?;
        // Report unknown keys in a stable (sorted) order, whatever the map's own order.
        if let Some(k) = map.keys().filter(|k| !allowed.contains(&k.as_str())).min() {
            return Err(error(&join(path, k), "unknown key"));
        }
        Ok(Object {
            map,
            path: path.to_string(),
        })
    }

    /// The path of `key` in this object (`providers[0].name`).
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// An [`Error::InvalidConfig`] at `key`, for checks the getters do not make.
    pub fn error(&self, key: &str, message: &str) -> Error {
        error(&self.at(key), message)
    }

    /// The value of `key`; `None` when it is absent or `null`.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The keys and their values, in key order, leaving out `null` values.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + use<'a> {
        self.map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `key`, which must be there.
    pub fn required(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| self.error(key, "is required"))
    }

    /// An array; empty when absent.
    pub fn array(&self, key: &str) -> Result<&'a [Value]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.error(key, "must be an array")),
        }
    }

    /// A required, non-empty string without control characters, as names are.
    pub fn name(&self, key: &str) -> Result<String> {
        let s = self.required_str(key)?;
        if s.is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        printable(&self.at(key), s)?;
        Ok(s.to_string())
    }

    /// A required string.
    pub fn required_str(&self, key: &str) -> Result<&'a str> {
        self.opt_str(key)?.ok_or_else(|| self.error(key, "is required"))
    }

    /// A string, or `None` when absent.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    /// `true` or `false`, or `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }

    /// A required JSON integer (`10`, not `10.0`) within `bound`.
    pub fn required_int(&self, key: &str, bound: Bound) -> Result<i64> {
        let n = match self.get(key) {
            None => return Err(self.error(key, "is required")),
            Some(Value::Number(n)) => n,
            Some(_) => return Err(self.error(key, "must be an integer")),
        };
        let x = match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i,
            (None, Some(_)) => return Err(self.error(key, "is too large")),
            (None, None) => {
                // A fraction out of bounds says so first: `-1.5` "must be > 0".
                let f = n.as_f64().unwrap_or(f64::NAN);
                return Err(self.error(key, bound.check(f).unwrap_or("must be an integer")));
            }
        };
        match bound.check(x as f64) {
            Some(msg) => Err(self.error(key, msg)),
            None => Ok(x),
        }
    }

    /// A JSON integer within `bound`, or `default` when absent.
    pub fn int(&self, key: &str, default: i64, bound: Bound) -> Result<i64> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.required_int(key, bound),
        }
    }

    /// A required finite number within `bound`.
    pub fn required_number(&self, key: &str, bound: Bound) -> Result<f64> {
        let x = match self.get(key) {
            None => return Err(self.error(key, "is required")),
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(_) => return Err(self.error(key, "must be a number")),
        };
        if !x.is_finite() {
            return Err(self.error(key, "must be finite"));
        }
        match bound.check(x) {
            Some(msg) => Err(self.error(key, msg)),
            None => Ok(x),
        }
    }

    /// A finite number within `bound`, or `default` when absent.
    pub fn number(&self, key: &str, default: f64, bound: Bound) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.required_number(key, bound),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_reads_as_absent_for_known_keys_only() {
        let doc = json!({"a": null, "n": null, "list": null});
        let o = Object::new(&doc, "x", &["a", "n", "list"]).unwrap();
        assert_eq!(o.get("a"), None);
        assert_eq!(o.opt_str("a").unwrap(), None);
        assert_eq!(o.int("n", 7, Bound::Positive).unwrap(), 7);
        assert!(o.array("list").unwrap().is_empty());
        assert_eq!(o.entries().count(), 0);
        assert_eq!(
            o.required_int("n", Bound::Positive).unwrap_err().to_string(),
            "x.n: is required"
        );
        // An unknown key is refused whatever its value.
        let err = Object::new(&doc, "x", &["a", "n"]).unwrap_err();
        assert_eq!(err.to_string(), "x.list: unknown key");
    }

    #[test]
    fn parse_refuses_duplicates_at_their_path_and_deep_nesting_without_overflow() {
        let dup = |text: &str, path: &str| parse(text, path, "doc").unwrap_err().to_string();
        assert_eq!(
            dup(r#"{"a": [{"b": 1}, {"b": 1, "b": 2}]}"#, ""),
            "a[1].b: duplicate key"
        );
        assert_eq!(dup(r#"[{"k": 1, "k": 1}]"#, ""), "[0].k: duplicate key");
        assert_eq!(
            dup(r#"{"name": 1, "name": 1}"#, "provider"),
            "provider.name: duplicate key"
        );
        let same = r#"{"a": [1, 2.5, -3, 18446744073709551615, 1e400000, "x", true, null, {}], "b": {"c": []}}"#;
        let err = parse(same, "", "doc").unwrap_err().to_string();
        assert!(err.starts_with("doc is not valid JSON: number out of range"), "{err}");
        let same = r#"{"a": [1, 2.5, -3, 18446744073709551615, 1180591620717411303424, "x\t", true, null, {}]}"#;
        assert_eq!(
            parse(same, "", "doc").unwrap(),
            serde_json::from_str::<Value>(same).unwrap()
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(&deep, "", "doc").unwrap_err().to_string();
        assert!(
            err.starts_with("doc is not valid JSON: recursion limit exceeded"),
            "{err}"
        );
        assert!(
            parse("{} x", "", "doc")
                .unwrap_err()
                .to_string()
                .contains("trailing characters")
        );
    }

    #[test]
    fn errors_name_the_path() {
        let doc = json!({"b": 1, "a": 2});
        assert_eq!(Object::new(&doc, "", &[]).unwrap_err().to_string(), "a: unknown key");
        assert_eq!(
            Object::new(&json!([]), "", &[]).unwrap_err().to_string(),
            "$: must be an object"
        );
        let doc = json!({"f": 1.5, "g": -0.5, "s": 3});
        let o = Object::new(&doc, "o", &["f", "g", "s"]).unwrap();
        assert_eq!(
            o.required_int("f", Bound::Positive).unwrap_err().to_string(),
            "o.f: must be an integer"
        );
        assert_eq!(
            o.required_int("g", Bound::Positive).unwrap_err().to_string(),
            "o.g: must be > 0"
        );
        assert_eq!(o.name("s").unwrap_err().to_string(), "o.s: must be a string");
        assert_eq!(
            o.number("g", 0.0, Bound::UnitInterval).unwrap_err().to_string(),
            "o.g: must be in [0, 1]"
        );
        assert_eq!(error("", "whole").to_string(), "whole");
    }
}
