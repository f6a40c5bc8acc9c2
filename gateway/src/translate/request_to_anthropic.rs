//! OpenAI Chat Completions request -> Anthropic Messages request.
//!
//! Mapping: `system`/`developer` messages (anywhere) -> top-level `system`; `user`/`assistant`
//! content -> blocks; assistant `tool_calls` -> `tool_use`; `tool` messages -> `tool_result` blocks in
//! a user turn; consecutive same-role turns merged (Anthropic wants alternation), with `tool_result`
//! blocks first in a user turn; `tools`, `tool_choice`, `parallel_tool_calls: false`
//! (-> `disable_parallel_tool_use`), `stop` -> `stop_sequences`, `temperature` (values above
//! Anthropic's maximum of 1 are clamped to 1), `top_p`, `max_completion_tokens` / `max_tokens` (else
//! the deployment default), `stream`, `user` (or else `safety_identifier`) -> `metadata.user_id`.
//!
//! Dropped, having no Anthropic equivalent and no effect on what is answered: `model` (replaced),
//! `stream_options` (Anthropic streams always carry usage), `seed`, `store`, `metadata`,
//! `service_tier`, `prediction`, `prompt_cache_key`, message `name`, image `detail`, tool `strict`,
//! `tool_choice` when there are no tools, empty text parts and messages left empty by that, and any
//! unknown field. Defaults are accepted: `n: 1`, `logprobs: false`, `top_logprobs: 0`, zero
//! penalties, empty `logit_bias`, `response_format: {"type": "text"}`, `modalities: ["text"]`.
//!
//! Refused with the field's path, since they would change the answer: `n` > 1, `logprobs: true`,
//! `top_logprobs` > 0, non-zero `frequency_penalty` / `presence_penalty`, a non-empty `logit_bias`,
//! `response_format` other than text (Anthropic has no JSON mode here), `audio` and audio modalities,
//! `reasoning_effort`, `verbosity`, `web_search_options`, legacy `functions` / `function_call` and
//! `function` messages, `input_audio` and `file` parts, non-function tools and tool calls.

use serde_json::{Map, Value, json};

use super::error::TranslateError;
use super::json::{as_object, field, get, index, kind, opt_array, opt_bool, opt_number, opt_str, opt_u64, req_str};
use super::messages_to_anthropic::convert_messages;

/// Translates an OpenAI chat request into an Anthropic messages request for upstream `model`.
pub fn openai_to_anthropic_request(
    body: &Value,
    model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    let req = as_object(body, "")?;
    refuse_unexpressible(req)?;
    let messages =
        opt_array(req, "messages", "")?.ok_or_else(|| TranslateError::new("messages", "required array is missing"))?;
    let (system, turns) = convert_messages(messages)?;
    if turns.is_empty() {
        return Err(TranslateError::new(
            "messages",
            "at least one user or assistant message is required",
        ));
    }

    let mut out = Map::new();
    out.insert("model".into(), model.into());
    if let Some(system) = system {
        out.insert("system".into(), system);
    }
    out.insert("messages".into(), Value::Array(turns));
    let max_tokens = match opt_u64(req, "max_completion_tokens", "")? {
        Some(n) => n,
        None => opt_u64(req, "max_tokens", "")?.unwrap_or(default_max_tokens),
    };
    out.insert("max_tokens".into(), max_tokens.into());
    if let Some(t) = opt_number(req, "temperature", "")? {
        // OpenAI allows 0..2, Anthropic 0..1: clamping keeps the request valid at its most random.
        let clamped = if t.as_f64().is_some_and(|f| f > 1.0) {
            Value::from(1.0)
        } else {
            t.clone()
        };
        out.insert("temperature".into(), clamped);
    }
    if let Some(p) = opt_number(req, "top_p", "")? {
        out.insert("top_p".into(), p.clone());
    }
    let stops = stop_sequences(req)?;
    if !stops.is_empty() {
        out.insert("stop_sequences".into(), Value::Array(stops));
    }
    let tools = convert_tools(req)?;
    let choice = convert_tool_choice(req)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(stream) = opt_bool(req, "stream", "")? {
        out.insert("stream".into(), stream.into());
    }
    let user = match opt_str(req, "user", "")? {
        Some(u) => Some(u),
        None => opt_str(req, "safety_identifier", "")?,
    };
    if let Some(user) = user {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    Ok(Value::Object(out))
}

/// Errors for request fields whose effect Anthropic cannot reproduce.
fn refuse_unexpressible(req: &Map<String, Value>) -> Result<(), TranslateError> {
    let refuse = |path: &str, why: &str| Err(TranslateError::new(path, why));
    if opt_u64(req, "n", "")?.is_some_and(|n| n != 1) {
        return refuse("n", "only n = 1 can be sent to an Anthropic deployment");
    }
    if opt_bool(req, "logprobs", "")? == Some(true) {
        return refuse("logprobs", "log probabilities are not available from Anthropic");
    }
    if opt_u64(req, "top_logprobs", "")?.is_some_and(|n| n > 0) {
        return refuse("top_logprobs", "log probabilities are not available from Anthropic");
    }
    for key in ["frequency_penalty", "presence_penalty"] {
        if opt_number(req, key, "")?.is_some_and(|v| v.as_f64() != Some(0.0)) {
            return refuse(key, "penalties have no Anthropic equivalent");
        }
    }
    if let Some(bias) = get(req, "logit_bias")
        && bias.as_object().is_none_or(|m| !m.is_empty())
    {
        return refuse("logit_bias", "logit bias has no Anthropic equivalent");
    }
    if let Some(format) = get(req, "response_format") {
        let format = as_object(format, "response_format")?;
        let ty = req_str(format, "type", "response_format")?;
        if ty != "text" {
            return refuse(
                "response_format.type",
                "only response_format type \"text\" can be sent to Anthropic",
            );
        }
    }
    if let Some(modalities) = opt_array(req, "modalities", "")? {
        for (i, m) in modalities.iter().enumerate() {
            if m.as_str() != Some("text") {
                return refuse(
                    &index("modalities", i),
                    "only the text modality can be sent to Anthropic",
                );
            }
        }
    }
    let never = [
        ("audio", "audio output is not available from Anthropic"),
        ("reasoning_effort", "reasoning effort cannot be translated to Anthropic"),
        ("verbosity", "verbosity has no Anthropic equivalent"),
        ("web_search_options", "web search cannot be translated to Anthropic"),
        ("functions", "legacy functions are not supported; use tools"),
        (
            "function_call",
            "legacy function_call is not supported; use tool_choice",
        ),
    ];
    for (key, why) in never {
        if get(req, key).is_some() {
            return refuse(key, why);
        }
    }
    Ok(())
}

/// `stop` (a string or an array of strings) as Anthropic `stop_sequences`.
fn stop_sequences(req: &Map<String, Value>) -> Result<Vec<Value>, TranslateError> {
    match get(req, "stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Value::from(s.as_str())]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::String(_) => Ok(s.clone()),
                v => Err(TranslateError::new(
                    index("stop", i),
                    format!("expected a string, got {}", kind(v)),
                )),
            })
            .collect(),
        Some(v) => Err(TranslateError::new(
            "stop",
            format!("expected a string or an array, got {}", kind(v)),
        )),
    }
}

/// OpenAI function tools as Anthropic tools.
fn convert_tools(req: &Map<String, Value>) -> Result<Vec<Value>, TranslateError> {
    let mut tools = Vec::new();
    for (i, tool) in opt_array(req, "tools", "")?.into_iter().flatten().enumerate() {
        let path = index("tools", i);
        let t = as_object(tool, &path)?;
        if let Some(ty) = opt_str(t, "type", &path)?
            && ty != "function"
        {
            return Err(TranslateError::new(
                field(&path, "type"),
                format!("only function tools are supported, got \"{ty}\""),
            ));
        }
        let function_path = field(&path, "function");
        let f = as_object(get(t, "function").unwrap_or(&Value::Null), &function_path)?;
        let mut out = Map::new();
        out.insert("name".into(), req_str(f, "name", &function_path)?.into());
        if let Some(d) = opt_str(f, "description", &function_path)? {
            out.insert("description".into(), d.into());
        }
        let schema = match get(f, "parameters") {
            None => json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(v) => {
                return Err(TranslateError::new(
                    field(&function_path, "parameters"),
                    format!("expected an object, got {}", kind(v)),
                ));
            }
        };
        out.insert("input_schema".into(), schema);
        tools.push(Value::Object(out));
    }
    Ok(tools)
}

/// `tool_choice` and `parallel_tool_calls` as Anthropic's `tool_choice`.
fn convert_tool_choice(req: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let mut choice = match get(req, "tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "none" => json!({"type": "none"}),
            "required" => json!({"type": "any"}),
            other => {
                return Err(TranslateError::new(
                    "tool_choice",
                    format!("unknown tool_choice \"{other}\""),
                ));
            }
        }),
        Some(Value::Object(o)) => {
            let ty = req_str(o, "type", "tool_choice")?;
            if ty != "function" {
                return Err(TranslateError::new(
                    "tool_choice.type",
                    format!("only function tool_choice is supported, got \"{ty}\""),
                ));
            }
            let f = as_object(get(o, "function").unwrap_or(&Value::Null), "tool_choice.function")?;
            Some(json!({"type": "tool", "name": req_str(f, "name", "tool_choice.function")?}))
        }
        Some(v) => {
            return Err(TranslateError::new(
                "tool_choice",
                format!("expected a string or an object, got {}", kind(v)),
            ));
        }
    };
    if opt_bool(req, "parallel_tool_calls", "")? == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        // `none` takes no options, and with no tool calls there is nothing to serialize.
        if let Some(obj) = c
            .as_object_mut()
            .filter(|o| o.get("type") != Some(&Value::from("none")))
        {
            obj.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    Ok(choice)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Result<Value, TranslateError> {
        openai_to_anthropic_request(&body, "claude-x", 4096)
    }

    fn err_path(body: Value) -> String {
        translate(body).unwrap_err().path
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let out = translate(
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": true}, "seed": 7, "store": true, "n": 1, "logprobs": false}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"model": "claude-x", "max_tokens": 4096,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
        );
    }

    #[test]
    fn full_conversation() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "a dog"}]},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
                {"role": "user", "content": "Thanks. And?"}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}, "strict": true}},
                {"type": "function", "function": {"name": "now"}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "stop": ["END", "STOP"],
            "temperature": 1.5,
            "top_p": 0.9,
            "max_completion_tokens": 500,
            "max_tokens": 9,
            "stream": true,
            "user": "u-42"
        });
        let out = translate(body).unwrap();
        assert_eq!(
            out,
            json!({
                "model": "claude-x",
                "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in English."}],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}},
                        {"type": "tool_use", "id": "call_2", "name": "lookup", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "a dog"}]},
                        {"type": "text", "text": "Thanks. And?"}
                    ]}
                ],
                "tools": [
                    {"name": "lookup", "description": "Look up",
                        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
                    {"name": "now", "input_schema": {"type": "object", "properties": {}}}
                ],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "stop_sequences": ["END", "STOP"],
                "temperature": 1.0,
                "top_p": 0.9,
                "max_tokens": 500,
                "stream": true,
                "metadata": {"user_id": "u-42"}
            })
        );
    }

    #[test]
    fn single_system_text_is_a_string_and_merging_keeps_alternation() {
        let out = translate(json!({"messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "c"}
        ], "max_tokens": 10, "stop": "X", "temperature": 0.3}))
        .unwrap();
        assert_eq!(out["system"], "S");
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"},
                {"type": "text", "text": "c"}]}])
        );
        assert_eq!(out["max_tokens"], 10);
        assert_eq!(out["stop_sequences"], json!(["X"]));
        assert_eq!(out["temperature"], 0.3);
    }

    #[test]
    fn tool_choice_variants() {
        let base = |choice: Value| {
            let out = translate(json!({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}))
            .unwrap();
            out["tool_choice"].clone()
        };
        assert_eq!(base(json!("auto")), json!({"type": "auto"}));
        assert_eq!(base(json!("none")), json!({"type": "none"}));
        assert_eq!(
            base(json!({"type": "function", "function": {"name": "f"}})),
            json!({"type": "tool", "name": "f"})
        );
        let out = translate(json!({"messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": false}))
        .unwrap();
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
        );
        // Without tools the choice is meaningless and dropped.
        let out = translate(json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none"})).unwrap();
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn refusals_name_their_path() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let with = |key: &str, v: Value| {
            let mut body = json!({"messages": msgs.clone()});
            body.as_object_mut().unwrap().insert(key.into(), v);
            err_path(body)
        };
        assert_eq!(with("n", json!(2)), "n");
        assert_eq!(with("logprobs", json!(true)), "logprobs");
        assert_eq!(with("top_logprobs", json!(3)), "top_logprobs");
        assert_eq!(with("presence_penalty", json!(0.5)), "presence_penalty");
        assert_eq!(with("logit_bias", json!({"50256": -100})), "logit_bias");
        assert_eq!(
            with("response_format", json!({"type": "json_object"})),
            "response_format.type"
        );
        assert_eq!(with("functions", json!([])), "functions");
        assert_eq!(with("modalities", json!(["text", "audio"])), "modalities[1]");
        assert_eq!(with("reasoning_effort", json!("high")), "reasoning_effort");
        assert_eq!(with("tool_choice", json!("sometimes")), "tool_choice");
        assert_eq!(with("stop", json!(["a", 1])), "stop[1]");
        assert_eq!(with("max_tokens", json!(-1)), "max_tokens");
        assert!(
            translate(json!({"messages": msgs, "response_format": {"type": "text"}, "frequency_penalty": 0})).is_ok()
        );
        let e = translate(json!({"messages": [{"role": "user", "content": "x"}], "n": 3})).unwrap_err();
        assert_eq!(e.to_string(), "n: only n = 1 can be sent to an Anthropic deployment");
    }
}
