//! OpenAI `messages` -> Anthropic `system` and alternating turns (used by [`super::openai_to_anthropic_request`]).
//!
//! `system`/`developer` messages anywhere become the `system` value; `tool` messages become
//! `tool_result` blocks in a user turn; consecutive same-role turns are merged, tool results first.
//! Empty text parts are dropped (Anthropic rejects empty text blocks), and so are messages they leave empty.

use serde_json::{Map, Value, json};

use super::error::TranslateError;
use super::json::{as_object, field, get, index, kind, opt_array, opt_str, parse_arguments, req_str};

/// Splits the OpenAI messages into Anthropic's `system` value and its alternating turns.
pub(crate) fn convert_messages(messages: &[Value]) -> Result<(Option<Value>, Vec<Value>), TranslateError> {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let path = index("messages", i);
        let m = as_object(message, &path)?;
        match req_str(m, "role", &path)? {
            "system" | "developer" => system.extend(system_texts(m, &path)?),
            "user" => push_turn(&mut turns, "user", user_blocks(m, &path)?),
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(m, &path)?),
            "tool" => push_turn(&mut turns, "user", vec![tool_result(m, &path)?]),
            "function" => {
                return Err(TranslateError::new(
                    field(&path, "role"),
                    "legacy function messages are not supported",
                ));
            }
            other => {
                return Err(TranslateError::new(
                    field(&path, "role"),
                    format!("unknown role \"{other}\""),
                ));
            }
        }
    }
    let system = match system.as_slice() {
        [] => None,
        [one] => Some(Value::from(one.as_str())),
        many => Some(Value::Array(
            many.iter().map(|t| json!({"type": "text", "text": t})).collect(),
        )),
    };
    let turns = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // Anthropic wants a user turn's tool results before anything else in it.
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            json!({"role": role, "content": blocks})
        })
        .collect();
    Ok((system, turns))
}

/// Appends blocks to the last turn when it has the same role, else starts a turn.
fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// The non-empty texts of a system or developer message.
fn system_texts(m: &Map<String, Value>, path: &str) -> Result<Vec<String>, TranslateError> {
    let content_path = field(path, "content");
    let mut texts = Vec::new();
    match get(m, "content") {
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_path = index(&content_path, j);
                let p = as_object(part, &part_path)?;
                match req_str(p, "type", &part_path)? {
                    "text" => texts.push(req_str(p, "text", &part_path)?.to_owned()),
                    other => {
                        return Err(TranslateError::new(
                            field(&part_path, "type"),
                            format!("system content parts must be text, got \"{other}\""),
                        ));
                    }
                }
            }
        }
        Some(v) => {
            return Err(TranslateError::new(
                content_path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
        None => return Err(TranslateError::new(content_path, "required content is missing")),
    }
    texts.retain(|t| !t.is_empty());
    Ok(texts)
}

/// A text block, or nothing for empty text (Anthropic rejects empty text blocks).
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// The blocks of a user message.
fn user_blocks(m: &Map<String, Value>, path: &str) -> Result<Vec<Value>, TranslateError> {
    let content_path = field(path, "content");
    let parts = match get(m, "content") {
        Some(Value::String(s)) => return Ok(text_block(s).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        Some(v) => {
            return Err(TranslateError::new(
                content_path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
        None => return Err(TranslateError::new(content_path, "required content is missing")),
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let part_path = index(&content_path, j);
        let p = as_object(part, &part_path)?;
        match req_str(p, "type", &part_path)? {
            "text" => blocks.extend(text_block(req_str(p, "text", &part_path)?)),
            "image_url" => blocks.push(image_block(p, &part_path)?),
            "input_audio" => {
                return Err(TranslateError::new(
                    field(&part_path, "type"),
                    "audio content parts cannot be sent to Anthropic",
                ));
            }
            "file" => {
                return Err(TranslateError::new(
                    field(&part_path, "type"),
                    "file content parts cannot be sent to Anthropic",
                ));
            }
            other => {
                return Err(TranslateError::new(
                    field(&part_path, "type"),
                    format!("unknown content part type \"{other}\""),
                ));
            }
        }
    }
    Ok(blocks)
}

/// An `image_url` part as an Anthropic image block with a base64 or url source.
fn image_block(p: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let url_path = field(&field(path, "image_url"), "url");
    let url = match get(p, "image_url") {
        Some(Value::String(url)) => url.as_str(),
        Some(Value::Object(o)) => req_str(o, "url", &field(path, "image_url"))?,
        _ => {
            return Err(TranslateError::new(
                field(path, "image_url"),
                "required image_url is missing",
            ));
        }
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranslateError::new(&url_path, "malformed data URL"))?;
        let meta = meta
            .strip_suffix(";base64")
            .ok_or_else(|| TranslateError::new(&url_path, "only base64 data URLs can be sent to Anthropic"))?;
        let media_type = meta.split(';').next().unwrap_or_default();
        if media_type.is_empty() {
            return Err(TranslateError::new(&url_path, "data URL has no media type"));
        }
        Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
    } else {
        Err(TranslateError::new(
            url_path,
            "image URL must be a base64 data URL or an http(s) URL",
        ))
    }
}

/// The blocks of an assistant message: its text, then its tool calls.
fn assistant_blocks(m: &Map<String, Value>, path: &str) -> Result<Vec<Value>, TranslateError> {
    for key in ["function_call", "audio"] {
        if get(m, key).is_some() {
            return Err(TranslateError::new(
                field(path, key),
                format!("assistant {key} cannot be sent to Anthropic"),
            ));
        }
    }
    let content_path = field(path, "content");
    let mut blocks = Vec::new();
    match get(m, "content") {
        None => {}
        Some(Value::String(s)) => blocks.extend(text_block(s)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_path = index(&content_path, j);
                let p = as_object(part, &part_path)?;
                match req_str(p, "type", &part_path)? {
                    "text" => blocks.extend(text_block(req_str(p, "text", &part_path)?)),
                    // A refusal the assistant gave earlier is part of what it said.
                    "refusal" => blocks.extend(text_block(req_str(p, "refusal", &part_path)?)),
                    other => {
                        return Err(TranslateError::new(
                            field(&part_path, "type"),
                            format!("assistant content parts must be text or refusal, got \"{other}\""),
                        ));
                    }
                }
            }
        }
        Some(v) => {
            return Err(TranslateError::new(
                content_path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
    }
    if blocks.is_empty()
        && let Some(refusal) = opt_str(m, "refusal", path)?
    {
        blocks.extend(text_block(refusal));
    }
    let calls_path = field(path, "tool_calls");
    for (j, call) in opt_array(m, "tool_calls", path)?.into_iter().flatten().enumerate() {
        blocks.push(tool_use_block(call, &index(&calls_path, j))?);
    }
    Ok(blocks)
}

/// One OpenAI tool call as a `tool_use` block; the arguments string must hold a JSON object.
fn tool_use_block(call: &Value, path: &str) -> Result<Value, TranslateError> {
    let c = as_object(call, path)?;
    if let Some(ty) = opt_str(c, "type", path)?
        && ty != "function"
    {
        return Err(TranslateError::new(
            field(path, "type"),
            format!("only function tool calls are supported, got \"{ty}\""),
        ));
    }
    let id = req_str(c, "id", path)?;
    let function_path = field(path, "function");
    let function = as_object(get(c, "function").unwrap_or(&Value::Null), &function_path)?;
    let name = req_str(function, "name", &function_path)?;
    let args_path = field(&function_path, "arguments");
    let input = parse_arguments(opt_str(function, "arguments", &function_path)?, &args_path)?;
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// A `tool` message as a `tool_result` block.
fn tool_result(m: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let id = req_str(m, "tool_call_id", path)?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    let content_path = field(path, "content");
    let content = match get(m, "content") {
        None => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Value::from(s.as_str())),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                let part_path = index(&content_path, j);
                let p = as_object(part, &part_path)?;
                match req_str(p, "type", &part_path)? {
                    "text" => texts.extend(text_block(req_str(p, "text", &part_path)?)),
                    other => {
                        return Err(TranslateError::new(
                            field(&part_path, "type"),
                            format!("tool message parts must be text, got \"{other}\""),
                        ));
                    }
                }
            }
            (!texts.is_empty()).then_some(Value::Array(texts))
        }
        Some(v) => {
            return Err(TranslateError::new(
                content_path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
    };
    if let (Some(content), Some(obj)) = (content, block.as_object_mut()) {
        obj.insert("content".into(), content);
    }
    Ok(block)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<Value, TranslateError> {
        super::super::openai_to_anthropic_request(&body, "claude-x", 4096)
    }

    fn err_path(body: Value) -> String {
        translate(body).unwrap_err().path
    }

    #[test]
    fn bad_messages_name_their_path() {
        let audio = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "..", "format": "wav"}}]}]});
        let e = translate(audio).unwrap_err();
        assert_eq!(e.path, "messages[2].content[0].type");
        assert_eq!(e.message, "audio content parts cannot be sent to Anthropic");
        let args = json!({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}]}]});
        let e = translate(args).unwrap_err();
        assert_eq!(e.path, "messages[1].tool_calls[0].function.arguments");
        assert_eq!(e.message, "arguments must be a JSON object, got an array");
        let broken = json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "function": {"name": "f", "arguments": "{\"a\":"}}]}]});
        assert_eq!(err_path(broken), "messages[0].tool_calls[0].function.arguments");
        assert_eq!(
            err_path(json!({"messages": [{"role": "wizard", "content": "x"}]})),
            "messages[0].role"
        );
        assert_eq!(err_path(json!({"messages": [{"role": "user"}]})), "messages[0].content");
        assert_eq!(
            err_path(json!({"messages": [{"role": "tool", "content": "x"}]})),
            "messages[0].tool_call_id"
        );
        assert_eq!(
            err_path(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]})
            ),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            err_path(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]})
            ),
            "messages[0].content[0].image_url.url"
        );
        assert_eq!(
            err_path(json!({"messages": [{"role": "system", "content": "only"}]})),
            "messages"
        );
        assert_eq!(err_path(json!({"messages": "hi"})), "messages");
        assert_eq!(err_path(json!([])), "");
        assert_eq!(
            err_path(
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {}}]})
            ),
            "tools[0].type"
        );
    }
}
