//! OpenAI `chat.completion.chunk`s -> Anthropic SSE events, as a state machine without I/O.
//!
//! Output order: `message_start` on the first chunk (empty content, zero usage since OpenAI sends
//! usage last); then for text and for each tool call a `content_block_start`, its
//! `content_block_delta`s and a `content_block_stop` (a new tool call index closes the previous
//! block, text after a tool call opens a new block, block indices are consecutive); and from
//! [`OpenAiToAnthropicStream::finish`] at `[DONE]` the `message_delta` (stop reason and the usage
//! from the include_usage chunk, which comes after the chunk with `finish_reason`) and `message_stop`.
//!
//! A chunk carrying `{"error": {...}}` (how OpenAI reports a mid-stream failure) yields one
//! Anthropic `error` event, as Anthropic itself sends mid-stream; the stream then ends.

use serde_json::{Map, Value, json};

use super::error::{TranslateError, error_to_anthropic};
use super::json::{as_object, field, get, index, opt_array, opt_str, opt_u64};
use super::response::{anthropic_message, finish_reason_to_stop_reason};
use super::usage::{Usage, openai_usage};

/// The content block currently open on the Anthropic side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text { block: u64 },
    Tool { block: u64, call: u64 },
}

/// Translates one OpenAI chunk stream into Anthropic events.
#[derive(Debug, Clone)]
pub struct OpenAiToAnthropicStream {
    id: String,
    model: String,
    started: bool,
    next_block: u64,
    open: Open,
    /// OpenAI tool call indices already given a block.
    calls_seen: Vec<u64>,
    finish_reason: Option<String>,
    refused: bool,
    usage: Option<Usage>,
    error: Option<Value>,
    finished: bool,
}

impl OpenAiToAnthropicStream {
    /// A stream answering as `client_model`; `id_hint` is the message id unless the first chunk carries one.
    pub fn new(id_hint: &str, client_model: &str) -> Self {
        Self {
            id: id_hint.to_owned(),
            model: client_model.to_owned(),
            started: false,
            next_block: 0,
            open: Open::None,
            calls_seen: Vec::new(),
            finish_reason: None,
            refused: false,
            usage: None,
            error: None,
            finished: false,
        }
    }

    /// Feeds one parsed `data:` chunk and returns the (event name, data) pairs to send.
    pub fn chunk(&mut self, chunk: &Value) -> Result<Vec<(&'static str, Value)>, TranslateError> {
        let c = as_object(chunk, "")?;
        if self.finished || self.error.is_some() {
            return Ok(Vec::new());
        }
        if get(c, "error").is_some() {
            let body = error_to_anthropic(0, chunk);
            self.error = Some(body.clone());
            return Ok(vec![("error", body)]);
        }
        if let Some(u) = get(c, "usage").and_then(openai_usage) {
            self.usage = Some(u);
        }
        let mut out = Vec::new();
        if !self.started {
            if let Some(id) = opt_str(c, "id", "")?.filter(|id| !id.is_empty()) {
                self.id = id.to_owned();
            }
            self.start(&mut out);
        }
        for (i, choice) in opt_array(c, "choices", "")?.into_iter().flatten().enumerate() {
            let path = index("choices", i);
            let ch = as_object(choice, &path)?;
            if opt_u64(ch, "index", &path)?.unwrap_or(0) != 0 {
                return Err(TranslateError::new(
                    field(&path, "index"),
                    "only one choice can be streamed to Anthropic",
                ));
            }
            if let Some(delta) = get(ch, "delta") {
                let delta_path = field(&path, "delta");
                let d = as_object(delta, &delta_path)?;
                if let Some(text) = opt_str(d, "content", &delta_path)? {
                    self.text(&mut out, text);
                }
                if let Some(refusal) = opt_str(d, "refusal", &delta_path)?.filter(|r| !r.is_empty()) {
                    self.refused = true;
                    self.text(&mut out, refusal);
                }
                let calls_path = field(&delta_path, "tool_calls");
                for (j, call) in opt_array(d, "tool_calls", &delta_path)?
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    self.tool_call(&mut out, call, &index(&calls_path, j))?;
                }
            }
            if let Some(finish) = opt_str(ch, "finish_reason", &path)? {
                self.finish_reason = Some(finish.to_owned());
            }
        }
        Ok(out)
    }

    /// Closes the message at `[DONE]`: the open block's stop, `message_delta` and `message_stop`.
    ///
    /// Returns nothing when already finished or after an upstream error.
    pub fn finish(&mut self) -> Vec<(&'static str, Value)> {
        if self.finished || self.error.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.started {
            self.start(&mut out);
        }
        self.close(&mut out);
        let stop_reason = if self.refused {
            "refusal"
        } else {
            self.finish_reason
                .as_deref()
                .map_or("end_turn", finish_reason_to_stop_reason)
        };
        out.push((
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": self.usage.unwrap_or_default().to_anthropic_json(),
            }),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        self.finished = true;
        out
    }

    /// Usage from the include_usage chunk (or any chunk that carried usage), once seen.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether [`Self::finish`] has closed the message.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The Anthropic error body sent for an upstream error chunk, if one came.
    pub fn upstream_error(&self) -> Option<&Value> {
        self.error.as_ref()
    }

    fn start(&mut self, out: &mut Vec<(&'static str, Value)>) {
        self.started = true;
        let usage = self.usage.unwrap_or_default();
        let message = anthropic_message(&self.id, &self.model, Vec::new(), Value::Null, &usage);
        out.push(("message_start", json!({"type": "message_start", "message": message})));
    }

    fn close(&mut self, out: &mut Vec<(&'static str, Value)>) {
        let block = match self.open {
            Open::None => return,
            Open::Text { block } | Open::Tool { block, .. } => block,
        };
        out.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": block}),
        ));
        self.open = Open::None;
    }

    /// Opens a block at the next index and returns that index.
    fn open_block(&mut self, out: &mut Vec<(&'static str, Value)>, content_block: Value) -> u64 {
        self.close(out);
        let block = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        out.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": block, "content_block": content_block}),
        ));
        block
    }

    fn text(&mut self, out: &mut Vec<(&'static str, Value)>, text: &str) {
        if text.is_empty() {
            return;
        }
        let block = match self.open {
            Open::Text { block } => block,
            _ => {
                let block = self.open_block(out, json!({"type": "text", "text": ""}));
                self.open = Open::Text { block };
                block
            }
        };
        out.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": block, "delta": {"type": "text_delta", "text": text}}),
        ));
    }

    fn tool_call(
        &mut self,
        out: &mut Vec<(&'static str, Value)>,
        call: &Value,
        path: &str,
    ) -> Result<(), TranslateError> {
        let t = as_object(call, path)?;
        let empty = Map::new();
        let function_path = field(path, "function");
        let f = match get(t, "function") {
            Some(f) => as_object(f, &function_path)?,
            None => &empty,
        };
        let id = opt_str(t, "id", path)?;
        // OpenAI always sends `index`; some compatible servers omit it, so an id marks a new call.
        let call_index = match (opt_u64(t, "index", path)?, self.open) {
            (Some(i), _) => i,
            (None, Open::Tool { call, .. }) if id.is_none() => call,
            (None, _) => self.calls_seen.iter().max().map_or(0, |m| m.saturating_add(1)),
        };
        let block = match self.open {
            Open::Tool { block, call } if call == call_index => block,
            _ => {
                if self.calls_seen.contains(&call_index) {
                    return Err(TranslateError::new(
                        field(path, "index"),
                        "a tool call resumed after another block began; Anthropic blocks cannot be reopened",
                    ));
                }
                let id = id.map_or_else(|| format!("toolu_{}_{call_index}", self.id), str::to_owned);
                let name = opt_str(f, "name", &function_path)?.unwrap_or_default();
                let block = self.open_block(out, json!({"type": "tool_use", "id": id, "name": name, "input": {}}));
                self.calls_seen.push(call_index);
                self.open = Open::Tool {
                    block,
                    call: call_index,
                };
                block
            }
        };
        if let Some(args) = opt_str(f, "arguments", &function_path)?.filter(|a| !a.is_empty()) {
            out.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": args}}),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null})
    }

    fn call(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
        let mut function = json!({"arguments": args});
        if let Some(n) = name {
            function["name"] = json!(n);
        }
        let mut c = json!({"index": index, "function": function});
        if let Some(id) = id {
            c["id"] = json!(id);
            c["type"] = json!("function");
        }
        json!({"tool_calls": [c]})
    }

    #[test]
    fn text_then_two_streamed_tool_calls() {
        let chunks = vec![
            chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ),
            chunk(json!({"content": "Checking "}), Value::Null),
            chunk(json!({"content": "both."}), Value::Null),
            chunk(call(0, Some("call_a"), Some("weather"), ""), Value::Null),
            chunk(call(0, None, None, "{\"city\":"), Value::Null),
            chunk(call(0, None, None, "\"Paris\"}"), Value::Null),
            chunk(call(1, Some("call_b"), Some("time"), ""), Value::Null),
            chunk(call(1, None, None, "{\"tz\":\"CET\"}"), Value::Null),
            chunk(json!({}), json!("tool_calls")),
            json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                "choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80,
                    "prompt_tokens_details": {"cached_tokens": 20}}}),
        ];
        let mut s = OpenAiToAnthropicStream::new("msg_hint", "claude-alias");
        let mut events = Vec::new();
        for c in &chunks {
            events.extend(s.chunk(c).unwrap());
        }
        assert_eq!(
            s.usage(),
            Some(Usage {
                input_tokens: 50,
                output_tokens: 30,
                cached_input_tokens: 20,
                cache_write_input_tokens: 0
            })
        );
        assert!(!s.finished());
        events.extend(s.finish());
        assert!(s.finished());
        let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        for (name, data) in &events {
            assert_eq!(data["type"], *name);
        }
        let data: Vec<&Value> = events.iter().map(|(_, d)| d).collect();
        assert_eq!(
            *data[0],
            json!({"type": "message_start", "message": {"id": "chatcmpl-9", "type": "message", "role": "assistant",
                "model": "claude-alias", "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                    "cache_creation_input_tokens": 0}}})
        );
        assert_eq!(
            *data[1],
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        );
        assert_eq!(
            *data[2],
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking "}})
        );
        assert_eq!(*data[4], json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(
            *data[5],
            json!({"type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": "call_a", "name": "weather", "input": {}}})
        );
        assert_eq!(
            *data[6],
            json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})
        );
        assert_eq!(data[9]["index"], 2);
        assert_eq!(data[9]["content_block"]["id"], "call_b");
        assert_eq!(data[10]["delta"]["partial_json"], "{\"tz\":\"CET\"}");
        assert_eq!(*data[11], json!({"type": "content_block_stop", "index": 2}));
        assert_eq!(
            *data[12],
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"input_tokens": 30, "output_tokens": 30, "cache_read_input_tokens": 20,
                    "cache_creation_input_tokens": 0}})
        );
        assert_eq!(*data[13], json!({"type": "message_stop"}));
        assert!(s.finish().is_empty());
    }

    #[test]
    fn text_after_a_tool_call_opens_a_new_block() {
        let mut s = OpenAiToAnthropicStream::new("msg_hint", "m");
        let mut events = Vec::new();
        for c in [
            chunk(call(0, Some("c"), Some("f"), "{}"), Value::Null),
            chunk(json!({"content": "done"}), json!("length")),
        ] {
            events.extend(s.chunk(&c).unwrap());
        }
        events.extend(s.finish());
        let summary: Vec<(&str, Value)> = events.iter().map(|(n, d)| (*n, d["index"].clone())).collect();
        assert_eq!(
            summary,
            [
                ("message_start", Value::Null),
                ("content_block_start", json!(0)),
                ("content_block_delta", json!(0)),
                ("content_block_stop", json!(0)),
                ("content_block_start", json!(1)),
                ("content_block_delta", json!(1)),
                ("content_block_stop", json!(1)),
                ("message_delta", Value::Null),
                ("message_stop", Value::Null),
            ]
        );
        assert_eq!(events[7].1["delta"]["stop_reason"], "max_tokens");
        // Usage never came: zeros, and usage() says unknown.
        assert_eq!(events[7].1["usage"]["output_tokens"], 0);
        assert_eq!(s.usage(), None);
    }

    #[test]
    fn every_finish_reason_and_refusal() {
        for (finish, stop) in [
            (json!("stop"), "end_turn"),
            (json!("length"), "max_tokens"),
            (json!("tool_calls"), "tool_use"),
            (json!("content_filter"), "refusal"),
            (Value::Null, "end_turn"),
        ] {
            let mut s = OpenAiToAnthropicStream::new("h", "m");
            s.chunk(&chunk(json!({"content": "x"}), finish)).unwrap();
            let out = s.finish();
            assert_eq!(out[out.len() - 2].1["delta"]["stop_reason"], stop);
        }
        let mut s = OpenAiToAnthropicStream::new("h", "m");
        let out = s.chunk(&chunk(json!({"refusal": "No."}), json!("stop"))).unwrap();
        assert_eq!(out[2].1["delta"]["text"], "No.");
        assert_eq!(s.finish()[1].1["delta"]["stop_reason"], "refusal");
    }

    #[test]
    fn empty_stream_errors_and_bad_chunks() {
        let mut s = OpenAiToAnthropicStream::new("msg_h", "m");
        let out = s.finish();
        let names: Vec<&str> = out.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["message_start", "message_delta", "message_stop"]);
        assert_eq!(out[0].1["message"]["id"], "msg_h");

        let mut s = OpenAiToAnthropicStream::new("msg_h", "m");
        s.chunk(&chunk(json!({"content": "a"}), Value::Null)).unwrap();
        let out = s
            .chunk(&json!({"error": {"message": "The server had an error", "type": "server_error", "code": null}}))
            .unwrap();
        let expected = json!({"type": "error", "error": {"type": "api_error", "message": "The server had an error"}});
        assert_eq!(out, vec![("error", expected.clone())]);
        assert_eq!(s.upstream_error(), Some(&expected));
        assert!(s.finish().is_empty());
        assert!(!s.finished());

        let mut s = OpenAiToAnthropicStream::new("h", "m");
        s.chunk(&chunk(call(0, Some("a"), Some("f"), "{"), Value::Null))
            .unwrap();
        s.chunk(&chunk(call(1, Some("b"), Some("g"), "{"), Value::Null))
            .unwrap();
        let e = s.chunk(&chunk(call(0, None, None, "}"), Value::Null)).unwrap_err();
        assert_eq!(e.path, "choices[0].delta.tool_calls[0].index");
        let e = s.chunk(&json!({"choices": [{"index": 1, "delta": {}}]})).unwrap_err();
        assert_eq!(e.path, "choices[0].index");
        let e = s
            .chunk(&json!({"choices": [{"index": 0, "delta": {"content": 5}}]}))
            .unwrap_err();
        assert_eq!(e.path, "choices[0].delta.content");
    }

    #[test]
    fn calls_without_index_are_told_apart_by_id() {
        let mut s = OpenAiToAnthropicStream::new("h", "m");
        let no_index = |id: Option<&str>, args: &str| {
            let mut c = json!({"function": {"name": "f", "arguments": args}});
            if let Some(id) = id {
                c["id"] = json!(id);
            }
            chunk(json!({"tool_calls": [c]}), Value::Null)
        };
        let mut events = Vec::new();
        for c in [no_index(Some("a"), "{"), no_index(None, "}"), no_index(Some("b"), "{}")] {
            events.extend(s.chunk(&c).unwrap());
        }
        let starts: Vec<&Value> = events
            .iter()
            .filter(|(n, _)| *n == "content_block_start")
            .map(|(_, d)| &d["content_block"]["id"])
            .collect();
        assert_eq!(starts, [&json!("a"), &json!("b")]);
    }
}
