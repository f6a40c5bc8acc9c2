//! Anthropic SSE events -> OpenAI `chat.completion.chunk` objects, as a state machine without I/O.
//!
//! Event sequence followed (Anthropic streaming docs): `message_start`, then per content block
//! `content_block_start`, `content_block_delta`s (`text_delta`, `input_json_delta`, ...),
//! `content_block_stop`; then `message_delta` (stop reason, cumulative usage) and `message_stop`;
//! `ping` anywhere; `error` mid-stream. Unknown event and delta types are ignored, as Anthropic's
//! versioning policy asks of clients. Thinking blocks and their deltas are skipped.
//!
//! A mid-stream `error` event becomes an OpenAI error body (`{"error": {...}}`), returned as the
//! only item: OpenAI itself reports mid-stream failures as such a `data:` line. The gateway writes
//! it, does not write `data: [DONE]`, and can tell this case apart by [`AnthropicToOpenAiStream::upstream_error`].

use serde_json::{Map, Value, json};

use super::error::{TranslateError, error_to_openai};
use super::json::{as_object, field, get, opt_str, opt_u64, req_str};
use super::response::stop_reason_to_finish_reason;
use super::usage::{AnthropicCounts, Usage};

/// Translates one Anthropic message stream into OpenAI chunks.
#[derive(Debug, Clone)]
pub struct AnthropicToOpenAiStream {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    counts: AnthropicCounts,
    /// (Anthropic block index, OpenAI tool call index) for each `tool_use` block.
    tool_blocks: Vec<(u64, usize)>,
    finish_reason: Option<&'static str>,
    error: Option<Value>,
    finished: bool,
}

impl AnthropicToOpenAiStream {
    /// A stream answering as `client_model`; `id_hint` is the chunk id unless `message_start` carries one.
    ///
    /// `include_usage` is whether the client asked for `stream_options.include_usage`.
    pub fn new(id_hint: &str, client_model: &str, created: u64, include_usage: bool) -> Self {
        Self {
            id: id_hint.to_owned(),
            model: client_model.to_owned(),
            created,
            include_usage,
            counts: AnthropicCounts::default(),
            tool_blocks: Vec::new(),
            finish_reason: None,
            error: None,
            finished: false,
        }
    }

    /// Feeds one SSE event (its `event:` name, or `""` to use `data.type`) and returns the chunks to send.
    pub fn event(&mut self, event: &str, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let name = if event.is_empty() {
            data.get("type").and_then(Value::as_str).unwrap_or_default()
        } else {
            event
        };
        if self.finished || self.error.is_some() {
            return Ok(Vec::new());
        }
        match name {
            "message_start" => self.message_start(data),
            "content_block_start" => self.block_start(data),
            "content_block_delta" => self.block_delta(data),
            "message_delta" => self.message_delta(data),
            "message_stop" => {
                self.finished = true;
                Ok(if self.include_usage {
                    vec![self.usage_chunk()]
                } else {
                    Vec::new()
                })
            }
            "error" => {
                let body = error_to_openai(0, data);
                self.error = Some(body.clone());
                Ok(vec![body])
            }
            // content_block_stop, ping and event types added later carry nothing to forward.
            _ => Ok(Vec::new()),
        }
    }

    /// Usage seen so far (input from `message_start`, output from the latest `message_delta`).
    pub fn usage(&self) -> Option<Usage> {
        self.counts.usage()
    }

    /// Whether `message_stop` was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The OpenAI error body sent for an upstream `error` event, if one came.
    pub fn upstream_error(&self) -> Option<&Value> {
        self.error.as_ref()
    }

    /// The finish reason sent, once `message_delta` carried a stop reason.
    pub fn finish_reason(&self) -> Option<&'static str> {
        self.finish_reason
    }

    fn message_start(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let d = as_object(data, "message_start")?;
        let message = as_object(get(d, "message").unwrap_or(&Value::Null), "message_start.message")?;
        if let Some(id) = opt_str(message, "id", "message_start.message")?.filter(|id| !id.is_empty()) {
            self.id = id.to_owned();
        }
        if let Some(usage) = get(message, "usage") {
            self.counts.update(usage);
        }
        Ok(vec![
            self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        ])
    }

    fn block_start(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let path = "content_block_start";
        let d = as_object(data, path)?;
        let block_index = opt_u64(d, "index", path)?
            .ok_or_else(|| TranslateError::new(field(path, "index"), "required index is missing"))?;
        let block_path = field(path, "content_block");
        let block = as_object(get(d, "content_block").unwrap_or(&Value::Null), &block_path)?;
        match req_str(block, "type", &block_path)? {
            "text" => Ok(match opt_str(block, "text", &block_path)? {
                Some(t) if !t.is_empty() => vec![self.chunk(json!({"content": t}), Value::Null)],
                _ => Vec::new(),
            }),
            "tool_use" => {
                let call_index = self.tool_blocks.len();
                self.tool_blocks.push((block_index, call_index));
                // Streamed tool_use blocks start with `input: {}`; a non-empty one is sent whole.
                let args = match get(block, "input") {
                    Some(Value::Object(m)) if !m.is_empty() => Value::Object(m.clone()).to_string(),
                    _ => String::new(),
                };
                let call = json!({
                    "index": call_index,
                    "id": req_str(block, "id", &block_path)?,
                    "type": "function",
                    "function": {"name": req_str(block, "name", &block_path)?, "arguments": args},
                });
                Ok(vec![self.chunk(json!({"tool_calls": [call]}), Value::Null)])
            }
            "thinking" | "redacted_thinking" => Ok(Vec::new()),
            other => Err(TranslateError::new(
                field(&block_path, "type"),
                format!("\"{other}\" blocks cannot be translated to OpenAI"),
            )),
        }
    }

    fn block_delta(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let path = "content_block_delta";
        let d = as_object(data, path)?;
        let block_index = opt_u64(d, "index", path)?
            .ok_or_else(|| TranslateError::new(field(path, "index"), "required index is missing"))?;
        let delta_path = field(path, "delta");
        let delta = as_object(get(d, "delta").unwrap_or(&Value::Null), &delta_path)?;
        match req_str(delta, "type", &delta_path)? {
            "text_delta" => {
                let text = req_str(delta, "text", &delta_path)?;
                Ok(if text.is_empty() {
                    Vec::new()
                } else {
                    vec![self.chunk(json!({"content": text}), Value::Null)]
                })
            }
            "input_json_delta" => {
                let partial = req_str(delta, "partial_json", &delta_path)?;
                let call_index = self
                    .tool_blocks
                    .iter()
                    .find(|(b, _)| *b == block_index)
                    .map(|(_, c)| *c)
                    .ok_or_else(|| {
                        TranslateError::new(field(path, "index"), "no tool_use block was started at this index")
                    })?;
                if partial.is_empty() {
                    return Ok(Vec::new());
                }
                let call = json!({"index": call_index, "function": {"arguments": partial}});
                Ok(vec![self.chunk(json!({"tool_calls": [call]}), Value::Null)])
            }
            // thinking_delta, signature_delta, citations_delta and later kinds have no OpenAI form.
            _ => Ok(Vec::new()),
        }
    }

    fn message_delta(&mut self, data: &Value) -> Result<Vec<Value>, TranslateError> {
        let path = "message_delta";
        let d = as_object(data, path)?;
        if let Some(usage) = get(d, "usage") {
            self.counts.update(usage);
        }
        let stop = match get(d, "delta") {
            Some(delta) => opt_str(
                as_object(delta, &field(path, "delta"))?,
                "stop_reason",
                &field(path, "delta"),
            )?,
            None => None,
        };
        let Some(stop) = stop else {
            return Ok(Vec::new());
        };
        let finish = stop_reason_to_finish_reason(stop);
        self.finish_reason = Some(finish);
        Ok(vec![self.chunk(json!({}), Value::from(finish))])
    }

    /// A chunk with one choice; with `include_usage`, every chunk but the last has `usage: null` as OpenAI sends.
    fn chunk(&self, delta: Value, finish_reason: Value) -> Value {
        let mut c = self.envelope();
        c.insert(
            "choices".into(),
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]),
        );
        if self.include_usage {
            c.insert("usage".into(), Value::Null);
        }
        Value::Object(c)
    }

    /// The final chunk for `include_usage`: no choices, the usage.
    fn usage_chunk(&self) -> Value {
        let mut c = self.envelope();
        c.insert("choices".into(), json!([]));
        c.insert("usage".into(), self.usage().unwrap_or_default().to_openai_json());
        Value::Object(c)
    }

    fn envelope(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("id".into(), self.id.as_str().into());
        c.insert("object".into(), "chat.completion.chunk".into());
        c.insert("created".into(), self.created.into());
        c.insert("model".into(), self.model.as_str().into());
        c
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A full Anthropic stream: text, then a tool_use whose input arrives in pieces.
    fn events() -> Vec<(&'static str, Value)> {
        vec![
            (
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "claude-sonnet", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 25, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                    "output_tokens": 1}}}),
            ),
            ("ping", json!({"type": "ping"})),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "Let me "}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": "check."}}),
            ),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            (
                "content_block_start",
                json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}}),
            ),
            (
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "ncisco\"}"}}),
            ),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
            (
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use",
                "stop_sequence": null}, "usage": {"output_tokens": 89}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ]
    }

    #[test]
    fn full_stream_translates() {
        let mut s = AnthropicToOpenAiStream::new("chatcmpl-hint", "my-model", 1_700_000_000, true);
        let mut chunks = Vec::new();
        for (name, data) in events() {
            chunks.extend(s.event(name, &data).unwrap());
        }
        assert!(s.finished());
        // role, 2 text, tool start, 2 argument pieces, finish, usage
        assert_eq!(chunks.len(), 8);
        for c in &chunks {
            assert_eq!(c["id"], "msg_1");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "my-model");
            assert_eq!(c["created"], 1_700_000_000u64);
        }
        assert_eq!(
            chunks[0]["choices"],
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}])
        );
        assert_eq!(chunks[0]["usage"], Value::Null);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Let me check.");
        assert_eq!(
            chunks[3]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]})
        );
        let args: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, "{\"location\": \"San Francisco\"}");
        assert_eq!(chunks[4]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(
            chunks[6]["choices"],
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "tool_calls"}])
        );
        assert_eq!(chunks[7]["choices"], json!([]));
        assert_eq!(
            chunks[7]["usage"],
            json!({"prompt_tokens": 130, "completion_tokens": 89, "total_tokens": 219,
                "prompt_tokens_details": {"cached_tokens": 100}})
        );
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 130,
                output_tokens: 89,
                cached_input_tokens: 100,
                cache_write_input_tokens: 5
            })
        );
        assert_eq!(s.finish_reason(), Some("tool_calls"));
        // Nothing is emitted after message_stop.
        assert!(s.event("ping", &json!({})).unwrap().is_empty());
    }

    #[test]
    fn without_include_usage_there_is_no_usage_chunk_and_tool_indices_count_tools() {
        let mut s = AnthropicToOpenAiStream::new("chatcmpl-hint", "m", 1, false);
        let mut chunks = Vec::new();
        let seq = [
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "a", "name": "f", "input": {}}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "b", "name": "g", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 7}}),
            json!({"type": "message_stop"}),
        ];
        for data in &seq {
            chunks.extend(s.event("", data).unwrap());
        }
        assert_eq!(chunks.len(), 5);
        assert_eq!(chunks[0]["id"], "chatcmpl-hint");
        assert!(chunks[0].get("usage").is_none());
        assert_eq!(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(chunks[3]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "length");
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 7,
                cached_input_tokens: 0,
                cache_write_input_tokens: 0
            })
        );
    }

    #[test]
    fn interrupted_stream_keeps_usage_and_errors_are_distinguished() {
        let mut s = AnthropicToOpenAiStream::new("id", "m", 1, true);
        let all = events();
        for (name, data) in all.iter().take(4) {
            s.event(name, data).unwrap();
        }
        assert!(!s.finished());
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 130,
                output_tokens: 1,
                cached_input_tokens: 100,
                cache_write_input_tokens: 5
            })
        );
        let out = s
            .event(
                "error",
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            )
            .unwrap();
        let expected = json!({"error": {"message": "Overloaded", "type": "service_unavailable_error", "param": null,
            "code": "server_is_overloaded"}});
        assert_eq!(out, vec![expected.clone()]);
        assert_eq!(s.upstream_error(), Some(&expected));
        assert!(!s.finished());
        assert!(s.event("message_stop", &json!({})).unwrap().is_empty());
    }

    #[test]
    fn malformed_events_name_their_path() {
        let mut s = AnthropicToOpenAiStream::new("id", "m", 1, false);
        let e = s
            .event(
                "content_block_delta",
                &json!({"index": 4, "delta": {"type": "input_json_delta", "partial_json": "{"}}),
            )
            .unwrap_err();
        assert_eq!(e.path, "content_block_delta.index");
        let e = s
            .event(
                "content_block_start",
                &json!({"index": 0, "content_block": {"type": "server_tool_use"}}),
            )
            .unwrap_err();
        assert_eq!(e.path, "content_block_start.content_block.type");
        let e = s
            .event("content_block_start", &json!({"content_block": {"type": "text"}}))
            .unwrap_err();
        assert_eq!(e.path, "content_block_start.index");
        assert_eq!(s.event("message_start", &json!([])).unwrap_err().path, "message_start");
        assert!(s.event("brand_new_event", &json!({})).unwrap().is_empty());
    }
}
