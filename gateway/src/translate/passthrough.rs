//! Same-API OpenAI streams: the gateway asks the upstream for `include_usage` to meter every stream,
//! and hides the extra usage-only chunk from a client that did not ask for it.
//!
//! With `include_usage`, OpenAI sends one last chunk with `choices: []` and the usage, and a
//! `usage: null` field on every other chunk; that null field is harmless to forward as is.
//!
//! Also what forwarding an answer or a request unchanged needs without a whole `Value`: the
//! answer's `usage` ([`answer_usage`]), and a request body with its model replaced
//! ([`with_model`]).

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::usage::{Usage, openai_usage};

/// Whether `chunk` is the usage-only chunk: `choices` empty (or missing/null, as some servers send) and `usage` set.
pub fn is_usage_only_chunk(chunk: &Value) -> bool {
    let no_choices = match chunk.get("choices") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    no_choices && chunk.get("usage").is_some_and(Value::is_object)
}

/// The usage carried by any chunk, if it has one.
pub fn chunk_usage(chunk: &Value) -> Option<Usage> {
    chunk.get("usage").and_then(openai_usage)
}

/// Makes a streaming OpenAI request ask for usage; returns whether the client had asked itself.
///
/// Non-streaming requests are left alone (their answer always carries usage).
pub fn ensure_openai_stream_usage(body: &mut Value) -> bool {
    let Some(req) = body.as_object_mut() else {
        return false;
    };
    let asked = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    if req.get("stream").and_then(Value::as_bool) == Some(true) && !asked {
        let options = req.entry("stream_options").or_insert_with(|| json!({}));
        if !options.is_object() {
            *options = json!({});
        }
        if let Some(o) = options.as_object_mut() {
            o.insert("include_usage".into(), true.into());
        }
    }
    asked
}

/// Watches a same-API OpenAI stream: records usage and says which chunks the client should see.
#[derive(Debug, Clone, Default)]
pub struct OpenAiUsageFilter {
    client_wants_usage: bool,
    usage: Option<Usage>,
}

impl OpenAiUsageFilter {
    /// A filter for a client that did (`true`) or did not ask for `include_usage`.
    pub fn new(client_wants_usage: bool) -> Self {
        Self {
            client_wants_usage,
            usage: None,
        }
    }

    /// Records the chunk's usage; returns whether to forward the chunk to the client.
    pub fn chunk(&mut self, chunk: &Value) -> bool {
        if let Some(u) = chunk_usage(chunk) {
            self.usage = Some(u);
        }
        self.client_wants_usage || !is_usage_only_chunk(chunk)
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// The `usage` member of a JSON answer, every other member checked as JSON but not built:
/// `Ok(Some(Value::Null))` for `"usage": null`, `Ok(None)` when there is none (or the answer is
/// no object), `Err` when the bytes are not JSON. What `from_slice::<Value>` then
/// `.get("usage")` gives (the last of duplicate members wins), without building the rest —
/// except that inside the members skipped, serde_json's skipping does not refuse three things a
/// whole parse refuses: a lone surrogate escape (`"\ud800"`), a number past `f64`'s range
/// (`1e400`), nesting deeper than 128. Such an answer is forwarded as it came (the client's own
/// parser judges it) instead of being retried as "not JSON"; its usage is read all the same.
pub fn answer_usage(bytes: &[u8]) -> Result<Option<Value>, serde_json::Error> {
    // Skipped strings are not checked as UTF-8 either: checked here, once (an answer that is
    // not UTF-8 is no JSON, and must not reach a client as `application/json`).
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(serde::de::Error::custom(format!("the answer is not UTF-8: {e}")));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let usage = (&mut de).deserialize_any(UsageOf)?;
    de.end()?;
    Ok(usage)
}

struct UsageOf;

impl<'de> Visitor<'de> for UsageOf {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut usage = None;
        while let Some(is_usage) = map.next_key_seed(KeyIs("usage"))? {
            if is_usage {
                usage = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(usage)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }
}

/// Whether a map key is this name (escapes decoded), without keeping the key.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// `body` (an object holding `model`) serialised with `model` in place of its own, the other
/// members as they are: the same bytes as cloning it, replacing the member and serialising,
/// without the clone.
pub fn with_model(body: &Map<String, Value>, model: &str) -> Vec<u8> {
    struct WithModel<'a>(&'a Map<String, Value>, &'a str);
    impl Serialize for WithModel<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                if k == "model" {
                    m.serialize_entry(k, self.1)?;
                } else {
                    m.serialize_entry(k, v)?;
                }
            }
            m.end()
        }
    }
    // Serialising a map of strings and `Value`s cannot fail.
    serde_json::to_vec(&WithModel(body, model)).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answer_usage_reads_what_a_whole_parse_reads() {
        for text in [
            r#"{"id": "a", "choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3}}"#,
            r#"{"usage": null}"#,
            r#"{"usage": 1, "usage": {"prompt_tokens": 2}}"#,
            r#"{"u\u0073age": {"prompt_tokens": 4}, "x": [1, {"usage": 5}]}"#,
            r#"{"x": "usage"}"#,
            r#"[{"usage": 1}]"#,
            r#""usage""#,
            "17",
            "null",
            " {} ",
        ] {
            let whole: Value = serde_json::from_slice(text.as_bytes()).unwrap();
            assert_eq!(
                answer_usage(text.as_bytes()).unwrap(),
                whole.get("usage").cloned(),
                "{text}"
            );
        }
        for text in [
            "",
            "{",
            r#"{"usage": {"a": 1}"#,
            r#"{"usage": 1} x"#,
            r#"{"a": tru}"#,
            "[1,]",
        ] {
            assert!(serde_json::from_slice::<Value>(text.as_bytes()).is_err(), "{text}");
            assert!(answer_usage(text.as_bytes()).is_err(), "{text}");
        }
        // Not UTF-8, in a member skipped or not: not JSON either way.
        for bytes in [&b"{\"x\": \"\xff\", \"usage\": null}"[..], b"{\"usage\": \"\xc3\"}"] {
            assert!(serde_json::from_slice::<Value>(bytes).is_err());
            assert!(answer_usage(bytes).is_err());
        }
        // What skipping does not refuse (documented): forwarded, the usage still read.
        let deep = format!(r#"{{"x": {}1{}, "usage": 3}}"#, "[".repeat(200), "]".repeat(200));
        for text in [r#"{"x": "\ud800", "usage": 1}"#, r#"{"x": 1e400, "usage": 1}"#, &deep] {
            assert!(serde_json::from_slice::<Value>(text.as_bytes()).is_err(), "{text}");
            assert!(answer_usage(text.as_bytes()).unwrap().is_some(), "{text}");
        }
        // In the usage itself, a whole parse: refused as before.
        assert!(answer_usage(br#"{"usage": {"prompt_tokens": 1e400}}"#).is_err());
    }

    #[test]
    fn with_model_writes_what_a_clone_and_replace_writes() {
        let body = json!({"model": "chat", "messages": [{"role": "user", "content": "x\"y"}],
            "max_tokens": 16, "temperature": 0.5, "a": {"model": "inner"}});
        let mut expected = body.clone();
        expected["model"] = json!("gpt-\"4o");
        assert_eq!(
            with_model(body.as_object().unwrap(), "gpt-\"4o"),
            expected.to_string().into_bytes()
        );
    }

    fn usage_chunk() -> Value {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})
    }

    #[test]
    fn detects_the_usage_only_chunk() {
        assert!(is_usage_only_chunk(&usage_chunk()));
        assert!(is_usage_only_chunk(&json!({"usage": {"prompt_tokens": 1}})));
        assert!(!is_usage_only_chunk(
            &json!({"choices": [{"delta": {}}], "usage": null})
        ));
        assert!(!is_usage_only_chunk(&json!({"choices": []})));
        assert_eq!(
            chunk_usage(&usage_chunk()),
            Some(Usage {
                input_tokens: 9,
                output_tokens: 3,
                cached_input_tokens: 0,
                cache_write_input_tokens: 0
            })
        );
        assert_eq!(chunk_usage(&json!({"choices": [], "usage": null})), None);
    }

    #[test]
    fn filter_hides_usage_only_from_clients_that_did_not_ask() {
        let text = json!({"choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": null});
        let mut hidden = OpenAiUsageFilter::new(false);
        assert!(hidden.chunk(&text));
        assert!(!hidden.chunk(&usage_chunk()));
        assert_eq!(hidden.usage().map(|u| u.output_tokens), Some(3));
        let mut shown = OpenAiUsageFilter::new(true);
        assert!(shown.chunk(&usage_chunk()));
        assert_eq!(shown.usage().map(|u| u.input_tokens), Some(9));
    }

    #[test]
    fn ensures_include_usage_on_streams_only() {
        let mut body = json!({"stream": true, "messages": []});
        assert!(!ensure_openai_stream_usage(&mut body));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        let mut body = json!({"stream": true, "stream_options": {"include_usage": true}});
        assert!(ensure_openai_stream_usage(&mut body));
        let mut body = json!({"stream": true, "stream_options": {"include_obfuscation": false}});
        assert!(!ensure_openai_stream_usage(&mut body));
        assert_eq!(
            body["stream_options"],
            json!({"include_obfuscation": false, "include_usage": true})
        );
        let mut body = json!({"messages": []});
        assert!(!ensure_openai_stream_usage(&mut body));
        assert!(body.get("stream_options").is_none());
    }
}
