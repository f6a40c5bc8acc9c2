//! Whole answers in a client API's shape, for the cache and the degraded answers: whether one
//! may be stored, a stream assembled into one, one replayed as a stream, and the static answer.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::config::Api;
use crate::sse;

/// Longest text piece of a replayed stream, in characters.
const PIECE_CHARS: usize = 16;

/// A complete, successful answer that may be stored: a finish reason that is not an error, and
/// tool calls whose arguments are JSON objects.
pub fn storable(api: Api, answer: &Value) -> bool {
    match api {
        Api::OpenAi => {
            let Some(choices) = answer.get("choices").and_then(Value::as_array) else {
                return false;
            };
            !choices.is_empty()
                && choices.iter().all(|c| {
                    let finished = c
                        .get("finish_reason")
                        .and_then(Value::as_str)
                        .is_some_and(|r| matches!(r, "stop" | "length" | "tool_calls" | "content_filter"));
                    let tools_ok = c
                        .pointer("/message/tool_calls")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .all(|t| {
                            t.pointer("/function/arguments")
                                .and_then(Value::as_str)
                                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                                .is_some_and(|v| v.is_object())
                        });
                    finished && tools_ok
                })
        }
        Api::Anthropic => {
            let finished = answer
                .get("stop_reason")
                .and_then(Value::as_str)
                .is_some_and(|r| matches!(r, "end_turn" | "max_tokens" | "stop_sequence" | "tool_use" | "refusal"));
            let blocks_ok = answer.get("content").and_then(Value::as_array).is_some_and(|blocks| {
                blocks.iter().all(|b| match b.get("type").and_then(Value::as_str) {
                    Some("text") => b.get("text").is_some_and(Value::is_string),
                    Some("tool_use") => b.get("input").is_some_and(Value::is_object),
                    _ => false,
                })
            });
            finished && blocks_ok
        }
    }
}

/// `answer` with every usage count 0 (what a hit or a static answer reports).
pub fn zero_usage(api: Api, answer: &mut Value) {
    let Some(map) = answer.as_object_mut() else { return };
    let usage = match api {
        Api::OpenAi => json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
        Api::Anthropic => json!({"input_tokens": 0, "output_tokens": 0}),
    };
    map.insert("usage".into(), usage);
}

/// Assembles the events a client received into the whole answer (`None`: not an answer that
/// can be rebuilt whole — an error event, a block or delta of a kind not kept).
#[derive(Debug)]
pub struct Assembler {
    api: Api,
    reader: sse::Reader,
    answer: Value,
    /// OpenAI: the text so far, the tool calls by index.
    text: String,
    tools: Vec<Value>,
    /// Anthropic: JSON of each tool_use block's input, by block index.
    partial: Vec<String>,
    broken: bool,
}

impl Assembler {
    /// For a stream in `api`'s shape.
    pub fn new(api: Api) -> Assembler {
        Assembler {
            api,
            reader: sse::Reader::new(64 << 20),
            answer: Value::Null,
            text: String::new(),
            tools: Vec::new(),
            partial: Vec::new(),
            broken: false,
        }
    }

    /// One frame as sent to the client.
    pub fn push(&mut self, frame: &[u8]) {
        if self.broken {
            return;
        }
        let Ok(events) = self.reader.push(frame) else {
            self.broken = true;
            return;
        };
        for e in events {
            if e.data.trim() == "[DONE]" {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                self.broken = true;
                return;
            };
            let ok = match self.api {
                Api::OpenAi => self.openai(&v),
                Api::Anthropic => self.anthropic(&v),
            };
            if !ok {
                self.broken = true;
                return;
            }
        }
    }

    fn openai(&mut self, chunk: &Value) -> bool {
        if chunk.get("error").is_some() {
            return false;
        }
        if self.answer.is_null() {
            let mut a = Map::new();
            for k in ["id", "created", "model", "system_fingerprint"] {
                if let Some(v) = chunk.get(k).filter(|v| !v.is_null()) {
                    a.insert(k.into(), v.clone());
                }
            }
            a.insert("object".into(), json!("chat.completion"));
            self.answer = Value::Object(a);
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
            return true;
        };
        for c in choices {
            // One choice (`n` = 1): the gateway refuses others on translation, and a
            // passthrough stream of several choices is not kept.
            if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                return false;
            }
            if let Some(delta) = c.get("delta") {
                if let Some(t) = delta.get("content").and_then(Value::as_str) {
                    self.text.push_str(t);
                }
                if delta.get("refusal").is_some_and(|r| !r.is_null()) {
                    return false;
                }
                for t in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let i = t.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if i > 1024 {
                        return false;
                    }
                    while self.tools.len() <= i {
                        self.tools
                            .push(json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}));
                    }
                    let slot = &mut self.tools[i];
                    if let Some(id) = t.get("id").and_then(Value::as_str) {
                        slot["id"] = json!(id);
                    }
                    if let Some(n) = t.pointer("/function/name").and_then(Value::as_str) {
                        let name = format!("{}{n}", slot["function"]["name"].as_str().unwrap_or(""));
                        slot["function"]["name"] = json!(name);
                    }
                    if let Some(a) = t.pointer("/function/arguments").and_then(Value::as_str) {
                        let args = format!("{}{a}", slot["function"]["arguments"].as_str().unwrap_or(""));
                        slot["function"]["arguments"] = json!(args);
                    }
                }
            }
            if let Some(r) = c.get("finish_reason").filter(|r| !r.is_null()) {
                self.answer["finish_reason"] = r.clone();
            }
        }
        true
    }

    fn anthropic(&mut self, e: &Value) -> bool {
        match e.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let Some(m) = e.get("message") else { return false };
                self.answer = m.clone();
                self.answer["content"] = json!([]);
                true
            }
            Some("content_block_start") => {
                let Some(block) = e.get("content_block") else {
                    return false;
                };
                let Some(content) = self.answer.get_mut("content").and_then(Value::as_array_mut) else {
                    return false;
                };
                match block.get("type").and_then(Value::as_str) {
                    Some("text") | Some("tool_use") => {
                        let mut b = block.clone();
                        if b["type"] == "tool_use" {
                            b["input"] = json!({});
                        }
                        content.push(b);
                        self.partial.push(String::new());
                        true
                    }
                    _ => false,
                }
            }
            Some("content_block_delta") => {
                let i = e.get("index").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
                let Some(block) = self.answer.pointer_mut(&format!("/content/{i}")) else {
                    return false;
                };
                let delta = e.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let t = format!(
                            "{}{}",
                            block["text"].as_str().unwrap_or(""),
                            delta["text"].as_str().unwrap_or("")
                        );
                        block["text"] = json!(t);
                        true
                    }
                    Some("input_json_delta") => match self.partial.get_mut(i) {
                        Some(p) => {
                            p.push_str(delta["partial_json"].as_str().unwrap_or(""));
                            true
                        }
                        None => false,
                    },
                    _ => false,
                }
            }
            Some("content_block_stop") => {
                let i = e.get("index").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
                let Some(block) = self.answer.pointer_mut(&format!("/content/{i}")) else {
                    return false;
                };
                if block["type"] == "tool_use" {
                    let text = self.partial.get(i).map_or("", String::as_str);
                    let input = if text.trim().is_empty() {
                        json!({})
                    } else {
                        match serde_json::from_str::<Value>(text) {
                            Ok(v) => v,
                            Err(_) => return false,
                        }
                    };
                    block["input"] = input;
                }
                true
            }
            Some("message_delta") => {
                if let Some(d) = e.get("delta") {
                    for k in ["stop_reason", "stop_sequence"] {
                        if let Some(v) = d.get(k) {
                            self.answer[k] = v.clone();
                        }
                    }
                }
                true
            }
            Some("message_stop") | Some("ping") => true,
            _ => false,
        }
    }

    /// The whole answer, when the stream was one (usage zeroed).
    pub fn finish(mut self) -> Option<Value> {
        if self.broken || !self.answer.is_object() {
            return None;
        }
        if self.api == Api::OpenAi {
            let finish = self.answer.as_object_mut()?.remove("finish_reason")?;
            let mut message = json!({"role": "assistant", "content": Value::Null, "refusal": Value::Null});
            if !self.text.is_empty() || self.tools.is_empty() {
                message["content"] = json!(self.text);
            }
            if !self.tools.is_empty() {
                message["tool_calls"] = Value::Array(std::mem::take(&mut self.tools));
            }
            self.answer["choices"] =
                json!([{"index": 0, "message": message, "logprobs": Value::Null, "finish_reason": finish}]);
        }
        zero_usage(self.api, &mut self.answer);
        storable(self.api, &self.answer).then_some(self.answer)
    }
}

/// Splits `s` into pieces of at most [`PIECE_CHARS`] characters.
fn pieces(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (n, (i, _)) in s.char_indices().enumerate() {
        if n > 0 && n % PIECE_CHARS == 0 {
            out.push(&s[start..i]);
            start = i;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// `answer` (whole, in `api`'s shape) as the SSE frames of a stream; `usage_chunk`: an OpenAI
/// client asked for `stream_options.include_usage`.
pub fn replay(api: Api, answer: &Value, usage_chunk: bool) -> Vec<Bytes> {
    match api {
        Api::OpenAi => replay_openai(answer, usage_chunk),
        Api::Anthropic => replay_anthropic(answer),
    }
}

fn replay_openai(answer: &Value, usage_chunk: bool) -> Vec<Bytes> {
    let mut out = Vec::new();
    let head = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": answer.get("id").cloned().unwrap_or(json!("chatcmpl-ratewise")),
            "object": "chat.completion.chunk",
            "created": answer.get("created").cloned().unwrap_or(json!(0)),
            "model": answer.get("model").cloned().unwrap_or(json!("")),
            "choices": [{"index": 0, "delta": delta, "logprobs": Value::Null, "finish_reason": finish}],
        });
        if let Some(f) = answer.get("system_fingerprint") {
            c["system_fingerprint"] = f.clone();
        }
        sse::data(&c.to_string())
    };
    let choice = answer.pointer("/choices/0").cloned().unwrap_or(Value::Null);
    out.push(head(json!({"role": "assistant", "content": ""}), Value::Null));
    if let Some(text) = choice.pointer("/message/content").and_then(Value::as_str) {
        for p in pieces(text) {
            out.push(head(json!({"content": p}), Value::Null));
        }
    }
    for (i, t) in choice
        .pointer("/message/tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        out.push(head(
            json!({"tool_calls": [{"index": i, "id": t["id"], "type": "function",
                    "function": {"name": t["function"]["name"], "arguments": ""}}]}),
            Value::Null,
        ));
        for p in pieces(t["function"]["arguments"].as_str().unwrap_or("")) {
            out.push(head(
                json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                Value::Null,
            ));
        }
    }
    out.push(head(
        json!({}),
        choice.get("finish_reason").cloned().unwrap_or(json!("stop")),
    ));
    if usage_chunk {
        let mut c = json!({
            "id": answer.get("id").cloned().unwrap_or(json!("chatcmpl-ratewise")),
            "object": "chat.completion.chunk",
            "created": answer.get("created").cloned().unwrap_or(json!(0)),
            "model": answer.get("model").cloned().unwrap_or(json!("")),
            "choices": [],
        });
        c["usage"] = answer
            .get("usage")
            .cloned()
            .unwrap_or(json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}));
        out.push(sse::data(&c.to_string()));
    }
    out.push(sse::data("[DONE]"));
    out
}

fn replay_anthropic(answer: &Value) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = answer.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["stop_sequence"] = Value::Null;
    let usage = answer
        .get("usage")
        .cloned()
        .unwrap_or(json!({"input_tokens": 0, "output_tokens": 0}));
    start["usage"] = usage.clone();
    let ev = |name: &str, v: Value| sse::named(name, &v.to_string());
    out.push(ev("message_start", json!({"type": "message_start", "message": start})));
    for (i, b) in answer
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let mut first = b.clone();
                first["input"] = json!({});
                out.push(ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i, "content_block": first}),
                ));
                let input = b.get("input").map(Value::to_string).unwrap_or_default();
                for p in pieces(&input) {
                    out.push(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": i,
                               "delta": {"type": "input_json_delta", "partial_json": p}}),
                    ));
                }
            }
            _ => {
                out.push(ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
                ));
                for p in pieces(b.get("text").and_then(Value::as_str).unwrap_or("")) {
                    out.push(ev(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": p}}),
                    ));
                }
            }
        }
        out.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    out.push(ev(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": answer.get("stop_reason").cloned().unwrap_or(json!("end_turn")),
                         "stop_sequence": answer.get("stop_sequence").cloned().unwrap_or(Value::Null)},
               "usage": {"output_tokens": usage.get("output_tokens").cloned().unwrap_or(json!(0))}}),
    ));
    out.push(ev("message_stop", json!({"type": "message_stop"})));
    out
}

/// The text of the last user message of a request in `api`'s shape.
pub fn last_user_text(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A static answer with `text`, in `api`'s shape, named `model` (the client's), usage 0.
pub fn static_answer(api: Api, text: &str, model: &str, request_id: &str, now_s: u64) -> Value {
    match api {
        Api::OpenAi => json!({
            "id": format!("chatcmpl-ratewise-static-{request_id}"),
            "object": "chat.completion",
            "created": now_s,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": Value::Null},
                         "logprobs": Value::Null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }),
        Api::Anthropic => json!({
            "id": format!("msg_ratewise_static_{request_id}"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": Value::Null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn assemble(api: Api, frames: &[Bytes]) -> Option<Value> {
        let mut a = Assembler::new(api);
        for f in frames {
            a.push(f);
        }
        a.finish()
    }

    fn openai_answer() -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4 tok5 ünï", "refusal": null},
                            "logprobs": null, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
    }

    #[test]
    fn an_openai_answer_replays_and_reassembles_to_itself() {
        let a = openai_answer();
        let frames = replay(Api::OpenAi, &a, false);
        assert!(frames.len() > 4, "the text is sent in pieces");
        assert_eq!(frames.last().unwrap().as_ref(), b"data: [DONE]\n\n");
        assert_eq!(assemble(Api::OpenAi, &frames).unwrap(), a);
        let with_usage = replay(Api::OpenAi, &a, true);
        assert_eq!(with_usage.len(), frames.len() + 1);
        assert_eq!(assemble(Api::OpenAi, &with_usage).unwrap(), a);
    }

    #[test]
    fn tool_calls_replay_and_reassemble() {
        let mut a = openai_answer();
        a["choices"][0]["message"]["content"] = Value::Null;
        a["choices"][0]["message"]["tool_calls"] = json!([
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris, the capital\"}"}}]);
        a["choices"][0]["finish_reason"] = json!("tool_calls");
        let frames = replay(Api::OpenAi, &a, false);
        assert_eq!(assemble(Api::OpenAi, &frames).unwrap(), a);
    }

    #[test]
    fn an_anthropic_answer_replays_and_reassembles_to_itself() {
        let a = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                       "content": [{"type": "text", "text": "tok0 tok1 tok2 tok3 tok4"},
                                   {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2], "b": "ccccccccccccccccccccc"}}],
                       "stop_reason": "tool_use", "stop_sequence": null,
                       "usage": {"input_tokens": 0, "output_tokens": 0}});
        let frames = replay(Api::Anthropic, &a, false);
        assert_eq!(assemble(Api::Anthropic, &frames).unwrap(), a);
    }

    #[test]
    fn unfinished_errored_or_invalid_answers_are_not_stored() {
        let a = openai_answer();
        let mut frames = replay(Api::OpenAi, &a, false);
        // Cut before the finish reason.
        let cut: Vec<Bytes> = frames[..frames.len() - 2].to_vec();
        assert!(assemble(Api::OpenAi, &cut).is_none());
        // An error event.
        frames.insert(2, sse::data(r#"{"error":{"message":"boom"}}"#));
        assert!(assemble(Api::OpenAi, &frames).is_none());
        // Invalid tool arguments.
        let mut bad = openai_answer();
        bad["choices"][0]["message"]["tool_calls"] =
            json!([{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]);
        assert!(!storable(Api::OpenAi, &bad));
        let mut unfinished = openai_answer();
        unfinished["choices"][0]["finish_reason"] = Value::Null;
        assert!(!storable(Api::OpenAi, &unfinished));
        let anthropic_cut = json!({"type": "message", "content": [{"type": "text", "text": "x"}], "stop_reason": null});
        assert!(!storable(Api::Anthropic, &anthropic_cut));
    }

    #[test]
    fn pieces_split_on_characters() {
        let s = "é".repeat(40);
        let p = pieces(&s);
        assert_eq!(p.len(), 3);
        assert_eq!(p.concat(), s);
        assert!(pieces("").is_empty());
    }

    #[test]
    fn the_last_user_message_is_found_in_either_shape() {
        let oa = json!({"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                                     {"role": "user", "content": [{"type": "text", "text": "Refund please"}]}]});
        assert_eq!(last_user_text(&oa), "Refund please");
        assert_eq!(last_user_text(&json!({})), "");
    }

    #[test]
    fn static_answers_are_valid_answers_with_zero_usage() {
        let oa = static_answer(Api::OpenAi, "sorry", "chat", "r1", 1);
        assert!(storable(Api::OpenAi, &oa));
        let an = static_answer(Api::Anthropic, "sorry", "chat", "r1", 1);
        assert!(storable(Api::Anthropic, &an));
        assert_eq!(an["usage"]["output_tokens"], 0);
    }
}
