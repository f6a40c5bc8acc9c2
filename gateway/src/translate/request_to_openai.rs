//! Anthropic Messages request -> OpenAI Chat Completions request.
//!
//! Mapping: `system` -> a first `system` message; text and image blocks -> content parts (base64
//! images become data URLs); assistant `tool_use` -> `tool_calls` (`content` null when there is no
//! text); user `tool_result` blocks -> `tool` messages placed before the rest of that user message;
//! `tools` -> function tools; `tool_choice` (+ `disable_parallel_tool_use` -> `parallel_tool_calls:
//! false`); `stop_sequences` -> `stop`; `max_tokens` -> `max_completion_tokens`; `temperature`,
//! `top_p`; `metadata.user_id` -> `user`; `stream: true` also asks for `stream_options.include_usage`
//! because the gateway must meter the stream.
//!
//! Dropped, having no OpenAI equivalent: `model` (replaced), `top_k`, `service_tier`,
//! `cache_control` and `citations` on blocks, other `metadata` keys, `is_error` on tool results (the
//! text is kept as is), `thinking: {"type": "disabled"}`, `tool_choice` when there are no tools, and
//! any unknown field.
//!
//! Refused with the field's path, since they would change the answer: enabled `thinking`,
//! `mcp_servers`, `container`, server tools (any tool `type` but `custom`), and blocks OpenAI chat
//! cannot carry: `document`, `thinking`, `redacted_thinking`, server tool blocks, images in assistant
//! turns or tool results, `file` image sources.

use serde_json::{Map, Value, json};

use super::error::TranslateError;
use super::json::{as_object, field, get, index, kind, opt_array, opt_bool, opt_number, opt_str, opt_u64, req_str};

/// Translates an Anthropic messages request into an OpenAI chat request for upstream `model`.
pub fn anthropic_to_openai_request(body: &Value, model: &str) -> Result<Value, TranslateError> {
    let req = as_object(body, "")?;
    refuse_unexpressible(req)?;
    let mut messages = Vec::new();
    if let Some(system) = get(req, "system")
        && let Some(content) = system_content(system)?
    {
        messages.push(json!({"role": "system", "content": content}));
    }
    let turns =
        opt_array(req, "messages", "")?.ok_or_else(|| TranslateError::new("messages", "required array is missing"))?;
    for (i, turn) in turns.iter().enumerate() {
        let path = index("messages", i);
        let t = as_object(turn, &path)?;
        let content_path = field(&path, "content");
        let content =
            get(t, "content").ok_or_else(|| TranslateError::new(&content_path, "required content is missing"))?;
        match req_str(t, "role", &path)? {
            "user" => user_messages(content, &content_path, &mut messages)?,
            "assistant" => messages.push(assistant_message(content, &content_path)?),
            other => {
                return Err(TranslateError::new(
                    field(&path, "role"),
                    format!("unknown role \"{other}\""),
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = opt_u64(req, "max_tokens", "")? {
        out.insert("max_completion_tokens".into(), n.into());
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = opt_number(req, key, "")? {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stops) = opt_array(req, "stop_sequences", "")? {
        for (i, s) in stops.iter().enumerate() {
            if !s.is_string() {
                return Err(TranslateError::new(
                    index("stop_sequences", i),
                    format!("expected a string, got {}", kind(s)),
                ));
            }
        }
        if !stops.is_empty() {
            out.insert("stop".into(), Value::Array(stops.clone()));
        }
    }
    let tools = convert_tools(req)?;
    let (choice, parallel) = convert_tool_choice(req)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
        if parallel == Some(false) {
            out.insert("parallel_tool_calls".into(), false.into());
        }
    }
    if let Some(metadata) = get(req, "metadata") {
        let m = as_object(metadata, "metadata")?;
        if let Some(user) = opt_str(m, "user_id", "metadata")? {
            out.insert("user".into(), user.into());
        }
    }
    if let Some(stream) = opt_bool(req, "stream", "")? {
        out.insert("stream".into(), stream.into());
        if stream {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    Ok(Value::Object(out))
}

/// Errors for request fields whose effect OpenAI chat cannot reproduce.
fn refuse_unexpressible(req: &Map<String, Value>) -> Result<(), TranslateError> {
    if let Some(thinking) = get(req, "thinking") {
        let t = as_object(thinking, "thinking")?;
        if opt_str(t, "type", "thinking")? != Some("disabled") {
            return Err(TranslateError::new(
                "thinking",
                "extended thinking cannot be sent to OpenAI",
            ));
        }
    }
    if opt_array(req, "mcp_servers", "")?.is_some_and(|a| !a.is_empty()) {
        return Err(TranslateError::new(
            "mcp_servers",
            "MCP servers cannot be sent to OpenAI",
        ));
    }
    if get(req, "container").is_some() {
        return Err(TranslateError::new("container", "containers cannot be sent to OpenAI"));
    }
    Ok(())
}

/// The text blocks of `system` as one string, or as text parts when there are several.
fn system_content(system: &Value) -> Result<Option<Value>, TranslateError> {
    let texts = match system {
        Value::String(s) => vec![s.clone()],
        Value::Array(blocks) => {
            let mut texts = Vec::new();
            for (i, block) in blocks.iter().enumerate() {
                let path = index("system", i);
                let b = as_object(block, &path)?;
                match req_str(b, "type", &path)? {
                    "text" => texts.push(req_str(b, "text", &path)?.to_owned()),
                    other => {
                        return Err(TranslateError::new(
                            field(&path, "type"),
                            format!("system blocks must be text, got \"{other}\""),
                        ));
                    }
                }
            }
            texts
        }
        v => {
            return Err(TranslateError::new(
                "system",
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
    };
    let texts: Vec<String> = texts.into_iter().filter(|t| !t.is_empty()).collect();
    Ok(match texts.as_slice() {
        [] => None,
        [one] => Some(Value::from(one.as_str())),
        many => Some(Value::Array(
            many.iter().map(|t| json!({"type": "text", "text": t})).collect(),
        )),
    })
}

/// A block's type and object, or an error at its path.
fn block_type<'a>(block: &'a Value, path: &str) -> Result<(&'a Map<String, Value>, &'a str), TranslateError> {
    let b = as_object(block, path)?;
    Ok((b, req_str(b, "type", path)?))
}

/// A user turn: its tool results as `tool` messages first, then one user message with the rest.
fn user_messages(content: &Value, path: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        v => {
            return Err(TranslateError::new(
                path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let block_path = index(path, j);
        let (b, ty) = block_type(block, &block_path)?;
        match ty {
            "text" => parts.push(json!({"type": "text", "text": req_str(b, "text", &block_path)?})),
            "image" => parts.push(image_part(b, &block_path)?),
            "tool_result" => out.push(tool_message(b, &block_path)?),
            other => return Err(unsupported_block(&block_path, other)),
        }
    }
    match parts.as_slice() {
        [] => {}
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
            out.push(json!({"role": "user", "content": only.get("text").cloned().unwrap_or_default()}));
        }
        _ => out.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// The error for a block type OpenAI chat cannot carry.
fn unsupported_block(block_path: &str, ty: &str) -> TranslateError {
    TranslateError::new(
        field(block_path, "type"),
        format!("\"{ty}\" blocks cannot be sent to OpenAI"),
    )
}

/// An image block as an `image_url` part.
fn image_part(b: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let source_path = field(path, "source");
    let source = as_object(get(b, "source").unwrap_or(&Value::Null), &source_path)?;
    let url = match req_str(source, "type", &source_path)? {
        "base64" => format!(
            "data:{};base64,{}",
            req_str(source, "media_type", &source_path)?,
            req_str(source, "data", &source_path)?
        ),
        "url" => req_str(source, "url", &source_path)?.to_owned(),
        other => {
            return Err(TranslateError::new(
                field(&source_path, "type"),
                format!("\"{other}\" image sources cannot be sent to OpenAI"),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A `tool_result` block as a `tool` message whose content is its text.
fn tool_message(b: &Map<String, Value>, path: &str) -> Result<Value, TranslateError> {
    let id = req_str(b, "tool_use_id", path)?;
    opt_bool(b, "is_error", path)?;
    let content_path = field(path, "content");
    let text = match get(b, "content") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (k, block) in blocks.iter().enumerate() {
                let block_path = index(&content_path, k);
                match block_type(block, &block_path)? {
                    (inner, "text") => texts.push(req_str(inner, "text", &block_path)?),
                    (_, other) => return Err(unsupported_block(&block_path, other)),
                }
            }
            texts.join("\n")
        }
        Some(v) => {
            return Err(TranslateError::new(
                content_path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": text}))
}

/// An assistant turn as one assistant message with its text and tool calls.
fn assistant_message(content: &Value, path: &str) -> Result<Value, TranslateError> {
    let blocks = match content {
        Value::String(s) => return Ok(json!({"role": "assistant", "content": s})),
        Value::Array(blocks) => blocks,
        v => {
            return Err(TranslateError::new(
                path,
                format!("expected a string or an array, got {}", kind(v)),
            ));
        }
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let block_path = index(path, j);
        let (b, ty) = block_type(block, &block_path)?;
        match ty {
            "text" => texts.push(req_str(b, "text", &block_path)?),
            "tool_use" => {
                let input = get(b, "input").cloned().unwrap_or_else(|| json!({}));
                if !input.is_object() {
                    return Err(TranslateError::new(
                        field(&block_path, "input"),
                        format!("expected an object, got {}", kind(&input)),
                    ));
                }
                calls.push(json!({
                    "id": req_str(b, "id", &block_path)?,
                    "type": "function",
                    "function": {"name": req_str(b, "name", &block_path)?, "arguments": input.to_string()},
                }));
            }
            other => return Err(unsupported_block(&block_path, other)),
        }
    }
    let content = match texts.as_slice() {
        [] if calls.is_empty() => Value::from(""),
        [] => Value::Null,
        [one] => Value::from(*one),
        many => Value::Array(many.iter().map(|t| json!({"type": "text", "text": t})).collect()),
    };
    let mut message = json!({"role": "assistant", "content": content});
    if let (false, Some(m)) = (calls.is_empty(), message.as_object_mut()) {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(message)
}

/// Custom tools as OpenAI function tools.
fn convert_tools(req: &Map<String, Value>) -> Result<Vec<Value>, TranslateError> {
    let mut tools = Vec::new();
    for (i, tool) in opt_array(req, "tools", "")?.into_iter().flatten().enumerate() {
        let path = index("tools", i);
        let t = as_object(tool, &path)?;
        if let Some(ty) = opt_str(t, "type", &path)?
            && ty != "custom"
        {
            return Err(TranslateError::new(
                field(&path, "type"),
                format!("server tool \"{ty}\" cannot be sent to OpenAI"),
            ));
        }
        let mut function = Map::new();
        function.insert("name".into(), req_str(t, "name", &path)?.into());
        if let Some(d) = opt_str(t, "description", &path)? {
            function.insert("description".into(), d.into());
        }
        let schema = match get(t, "input_schema") {
            None => json!({"type": "object", "properties": {}}),
            Some(s @ Value::Object(_)) => s.clone(),
            Some(v) => {
                return Err(TranslateError::new(
                    field(&path, "input_schema"),
                    format!("expected an object, got {}", kind(v)),
                ));
            }
        };
        function.insert("parameters".into(), schema);
        tools.push(json!({"type": "function", "function": function}));
    }
    Ok(tools)
}

/// Anthropic `tool_choice` as OpenAI `tool_choice` and `parallel_tool_calls`.
fn convert_tool_choice(req: &Map<String, Value>) -> Result<(Option<Value>, Option<bool>), TranslateError> {
    let Some(choice) = get(req, "tool_choice") else {
        return Ok((None, None));
    };
    let c = as_object(choice, "tool_choice")?;
    let mapped = match req_str(c, "type", "tool_choice")? {
        "auto" => Value::from("auto"),
        "any" => Value::from("required"),
        "none" => Value::from("none"),
        "tool" => json!({"type": "function", "function": {"name": req_str(c, "name", "tool_choice")?}}),
        other => {
            return Err(TranslateError::new(
                "tool_choice.type",
                format!("unknown tool_choice type \"{other}\""),
            ));
        }
    };
    let parallel = opt_bool(c, "disable_parallel_tool_use", "tool_choice")?
        .filter(|d| *d)
        .map(|_| false);
    Ok((Some(mapped), parallel))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<Value, TranslateError> {
        anthropic_to_openai_request(&body, "gpt-x")
    }

    #[test]
    fn full_conversation() {
        let body = json!({
            "model": "claude-sonnet",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Look:"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4A"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                        {"type": "text", "text": "a cat"}, {"type": "text", "text": "sleeping"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon", "is_error": true},
                    {"type": "text", "text": "So?"}
                ]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]}
            ],
            "tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object",
                "properties": {"q": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}},
                {"type": "custom", "name": "now", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "temperature": 0.2,
            "top_p": 0.8,
            "top_k": 40,
            "metadata": {"user_id": "u-42"},
            "stream": true
        });
        assert_eq!(
            translate(body).unwrap(),
            json!({
                "model": "gpt-x",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "Look:"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4A"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ]},
                    {"role": "assistant", "content": "Let me check.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat\nsleeping"},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"},
                    {"role": "user", "content": "So?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "toolu_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_3", "content": ""}
                ],
                "tools": [
                    {"type": "function", "function": {"name": "lookup", "description": "Look up",
                        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}},
                    {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
                ],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "stop": ["END"],
                "temperature": 0.2,
                "top_p": 0.8,
                "max_completion_tokens": 1024,
                "user": "u-42",
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn plain_strings_and_choices() {
        let out = translate(json!({"max_tokens": 5, "system": "S", "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"}, "stream": false}))
        .unwrap();
        assert_eq!(
            out["messages"],
            json!([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(out["stream"], false);
        assert!(out.get("stream_options").is_none());
        assert!(out.get("parallel_tool_calls").is_none());
        for (ty, expected) in [("auto", "auto"), ("none", "none")] {
            let out = translate(json!({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"name": "f"}], "tool_choice": {"type": ty}}))
            .unwrap();
            assert_eq!(out["tool_choice"], expected);
        }
        let out = translate(json!({"messages": [], "tool_choice": {"type": "auto"}})).unwrap();
        assert!(out.get("tool_choice").is_none());
        let out = translate(json!({"messages": [], "thinking": {"type": "disabled"}})).unwrap();
        assert_eq!(out, json!({"model": "gpt-x", "messages": []}));
    }

    #[test]
    fn refusals_name_their_path() {
        let path = |body: Value| translate(body).unwrap_err().path;
        assert_eq!(
            path(json!({"messages": [], "thinking": {"type": "enabled", "budget_tokens": 2000}})),
            "thinking"
        );
        assert_eq!(
            path(
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                {"type": "document", "source": {"type": "text", "data": "x", "media_type": "text/plain"}}]}]})
            ),
            "messages[0].content[1].type"
        );
        assert_eq!(
            path(
                json!({"messages": [{"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]}]})
            ),
            "messages[0].content[0].type"
        );
        assert_eq!(
            path(
                json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}]}]})
            ),
            "messages[0].content[0].content[0].type"
        );
        assert_eq!(
            path(
                json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]})
            ),
            "messages[0].content[0].source.type"
        );
        assert_eq!(
            path(json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]})),
            "tools[0].type"
        );
        assert_eq!(
            path(json!({"messages": [{"role": "system", "content": "x"}]})),
            "messages[0].role"
        );
        assert_eq!(path(json!({"messages": [{"role": "user"}]})), "messages[0].content");
        assert_eq!(
            path(json!({"messages": [], "system": [{"type": "image"}]})),
            "system[0].type"
        );
        assert_eq!(
            path(json!({"messages": [], "tool_choice": {"type": "maybe"}})),
            "tool_choice.type"
        );
        assert_eq!(
            path(json!({"messages": [], "stop_sequences": [1]})),
            "stop_sequences[0]"
        );
        assert_eq!(path(json!({"max_tokens": 1})), "messages");
        let e = translate(json!({"messages": [], "mcp_servers": [{"url": "x"}]})).unwrap_err();
        assert_eq!(e.to_string(), "mcp_servers: MCP servers cannot be sent to OpenAI");
    }
}
