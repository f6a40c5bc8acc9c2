//! Non-streaming answers: Anthropic message <-> OpenAI `chat.completion`, and the stop-reason tables.
//!
//! Stop reasons (Anthropic -> OpenAI): `end_turn`, `stop_sequence`, `pause_turn` -> `stop`;
//! `max_tokens`, `model_context_window_exceeded` -> `length`; `tool_use` -> `tool_calls`; `refusal`
//! -> `content_filter`; anything newer -> `stop`. Back: `stop` -> `end_turn` (OpenAI does not say
//! whether a stop sequence matched, so `stop_sequence` is always null), `length` -> `max_tokens`,
//! `tool_calls` / `function_call` -> `tool_use`, `content_filter` -> `refusal`.
//!
//! Anthropic `thinking` and `redacted_thinking` blocks are skipped (OpenAI chat has no place for
//! them); other unknown blocks are an error rather than silently lost content.

use serde_json::{Value, json};

use super::error::TranslateError;
use super::json::{as_object, field, get, index, kind, opt_array, opt_str, parse_arguments, req_str};
use super::usage::{Usage, anthropic_usage, openai_usage};

/// The OpenAI `finish_reason` for an Anthropic `stop_reason`.
pub fn stop_reason_to_finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn, and reasons added after this was written.
        _ => "stop",
    }
}

/// The Anthropic `stop_reason` for an OpenAI `finish_reason`.
pub fn finish_reason_to_stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Translates an Anthropic message into an OpenAI `chat.completion` reporting `client_model`.
pub fn anthropic_to_openai_response(
    message: &Value,
    client_model: &str,
    created: u64,
) -> Result<Value, TranslateError> {
    let m = as_object(message, "")?;
    if let Some(ty) = opt_str(m, "type", "")?
        && ty != "message"
    {
        return Err(TranslateError::new("type", format!("expected a message, got \"{ty}\"")));
    }
    let mut text = String::new();
    let mut has_text = false;
    let mut calls = Vec::new();
    for (i, block) in opt_array(m, "content", "")?.into_iter().flatten().enumerate() {
        let path = index("content", i);
        let b = as_object(block, &path)?;
        match req_str(b, "type", &path)? {
            "text" => {
                text.push_str(req_str(b, "text", &path)?);
                has_text = true;
            }
            "tool_use" => {
                let input = get(b, "input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": req_str(b, "id", &path)?,
                    "type": "function",
                    "function": {"name": req_str(b, "name", &path)?, "arguments": input.to_string()},
                }));
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(TranslateError::new(
                    field(&path, "type"),
                    format!("\"{other}\" blocks cannot be translated to OpenAI"),
                ));
            }
        }
    }
    let mut reply = json!({
        "role": "assistant",
        "content": if has_text { Value::from(text) } else { Value::Null },
        "refusal": null,
    });
    if let (false, Some(r)) = (calls.is_empty(), reply.as_object_mut()) {
        r.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = opt_str(m, "stop_reason", "")?.map_or("stop", stop_reason_to_finish_reason);
    let usage = get(m, "usage").and_then(anthropic_usage).unwrap_or_default();
    Ok(json!({
        "id": opt_str(m, "id", "")?.unwrap_or_default(),
        "object": "chat.completion",
        "created": created,
        "model": client_model,
        "choices": [{"index": 0, "message": reply, "logprobs": null, "finish_reason": finish}],
        "usage": usage.to_openai_json(),
    }))
}

/// Translates an OpenAI `chat.completion` (its first choice) into an Anthropic message reporting `client_model`.
///
/// A `refusal` becomes a text block and the `refusal` stop reason, since Anthropic reports refusals that way.
pub fn openai_to_anthropic_response(completion: &Value, client_model: &str) -> Result<Value, TranslateError> {
    let c = as_object(completion, "")?;
    let choices =
        opt_array(c, "choices", "")?.ok_or_else(|| TranslateError::new("choices", "required array is missing"))?;
    let first = choices
        .first()
        .ok_or_else(|| TranslateError::new("choices", "the completion has no choice"))?;
    let choice = as_object(first, "choices[0]")?;
    let msg_path = "choices[0].message";
    let msg = as_object(get(choice, "message").unwrap_or(&Value::Null), msg_path)?;
    let mut content = Vec::new();
    let content_path = field(msg_path, "content");
    match get(msg, "content") {
        None => {}
        Some(Value::String(s)) => push_text(&mut content, s),
        // Some OpenAI-compatible servers answer with content parts.
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_path = index(&content_path, j);
                let p = as_object(part, &part_path)?;
                match req_str(p, "type", &part_path)? {
                    "text" => push_text(&mut content, req_str(p, "text", &part_path)?),
                    other => {
                        return Err(TranslateError::new(
                            field(&part_path, "type"),
                            format!("\"{other}\" parts cannot be translated to Anthropic"),
                        ));
                    }
                }
            }
        }
        Some(v) => {
            return Err(TranslateError::new(
                content_path,
                format!("expected a string, got {}", kind(v)),
            ));
        }
    }
    let refusal = opt_str(msg, "refusal", msg_path)?;
    if let Some(r) = refusal {
        push_text(&mut content, r);
    }
    let calls_path = field(msg_path, "tool_calls");
    for (j, call) in opt_array(msg, "tool_calls", msg_path)?
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = index(&calls_path, j);
        let tc = as_object(call, &path)?;
        let function_path = field(&path, "function");
        let f = as_object(get(tc, "function").unwrap_or(&Value::Null), &function_path)?;
        let input = parse_arguments(
            opt_str(f, "arguments", &function_path)?,
            &field(&function_path, "arguments"),
        )?;
        content.push(json!({
            "type": "tool_use",
            "id": req_str(tc, "id", &path)?,
            "name": req_str(f, "name", &function_path)?,
            "input": input,
        }));
    }
    let stop_reason = match (refusal, opt_str(choice, "finish_reason", "choices[0]")?) {
        (Some(_), _) => "refusal",
        (None, Some(f)) => finish_reason_to_stop_reason(f),
        (None, None) => "end_turn",
    };
    let usage = get(c, "usage").and_then(openai_usage).unwrap_or_default();
    Ok(anthropic_message(
        opt_str(c, "id", "")?.unwrap_or_default(),
        client_model,
        content,
        Value::from(stop_reason),
        &usage,
    ))
}

/// An Anthropic message object.
pub(crate) fn anthropic_message(
    id: &str,
    model: &str,
    content: Vec<Value>,
    stop_reason: Value,
    usage: &Usage,
) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage.to_anthropic_json(),
    })
}

/// Appends a text block unless the text is empty.
fn push_text(content: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_message_to_completion() {
        let message = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 0,
                "output_tokens": 20}
        });
        assert_eq!(
            anthropic_to_openai_response(&message, "my-model", 1_700_000_000).unwrap(),
            json!({
                "id": "msg_01", "object": "chat.completion", "created": 1_700_000_000u64, "model": "my-model",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Let me check.", "refusal": null,
                    "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}]}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                    "prompt_tokens_details": {"cached_tokens": 90}}
            })
        );
    }

    #[test]
    fn every_stop_reason() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ];
        for (stop, finish) in cases {
            let m = json!({"id": "m", "type": "message", "content": [], "stop_reason": stop});
            let out = anthropic_to_openai_response(&m, "x", 0).unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], finish, "{stop}");
            assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
            assert!(out["choices"][0]["message"].get("tool_calls").is_none());
        }
        let finishes = [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("function_call", "tool_use"),
            ("content_filter", "refusal"),
        ];
        for (finish, stop) in finishes {
            let c = json!({"id": "c", "choices": [{"index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": "x"}}]});
            assert_eq!(
                openai_to_anthropic_response(&c, "m").unwrap()["stop_reason"],
                stop,
                "{finish}"
            );
        }
    }

    #[test]
    fn completion_to_anthropic_message() {
        let completion = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                "role": "assistant", "content": "Checking.", "refusal": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 64}}
        });
        assert_eq!(
            openai_to_anthropic_response(&completion, "claude-alias").unwrap(),
            json!({
                "id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "claude-alias",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}},
                    {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 36, "output_tokens": 20, "cache_read_input_tokens": 64,
                    "cache_creation_input_tokens": 0}
            })
        );
    }

    #[test]
    fn refusal_and_errors() {
        let c = json!({"id": "c", "choices": [{"finish_reason": "stop",
            "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]});
        let out = openai_to_anthropic_response(&c, "m").unwrap();
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        assert_eq!(out["stop_reason"], "refusal");
        let bad = json!({"choices": [{"message": {"tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}}]});
        let e = openai_to_anthropic_response(&bad, "m").unwrap_err();
        assert_eq!(e.path, "choices[0].message.tool_calls[0].function.arguments");
        assert!(e.message.starts_with("arguments are not valid JSON"), "{}", e.message);
        assert_eq!(
            openai_to_anthropic_response(&json!({"choices": []}), "m")
                .unwrap_err()
                .path,
            "choices"
        );
        let e = anthropic_to_openai_response(
            &json!({"type": "message", "content": [{"type": "server_tool_use"}]}),
            "m",
            0,
        )
        .unwrap_err();
        assert_eq!(e.path, "content[0].type");
        assert_eq!(
            anthropic_to_openai_response(&json!({"type": "error", "error": {}}), "m", 0)
                .unwrap_err()
                .path,
            "type"
        );
    }
}
