//! Same-API OpenAI streams: the gateway asks the upstream for `include_usage` to meter every stream,
//! and hides the extra usage-only chunk from a client that did not ask for it.
//!
//! With `include_usage`, OpenAI sends one last chunk with `choices: []` and the usage, and a
//! `usage: null` field on every other chunk; that null field is harmless to forward as is.

use serde_json::{Value, json};

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
