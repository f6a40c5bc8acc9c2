//! Round trips through both directions: a canonical body must come back unchanged but for the model.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

#[test]
fn openai_request_round_trip() {
    let original = json!({
        "model": "gpt-back",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR"}}
            ]},
            {"role": "assistant", "content": "Looking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "user", "content": "Sure?"},
            {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "Thanks."}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "stop": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_completion_tokens": 300,
        "user": "u-1",
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    let anthropic = openai_to_anthropic_request(&original, "claude-x", 1000).unwrap();
    let back = anthropic_to_openai_request(&anthropic, "gpt-back").unwrap();
    assert_eq!(back, original);
}

#[test]
fn anthropic_request_round_trip() {
    let original = json!({
        "model": "claude-back",
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}},
                {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "dog"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "a dog"},
                {"type": "text", "text": "Both?"}
            ]}
        ],
        "tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END", "FIN"],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 256,
        "metadata": {"user_id": "u-2"},
        "stream": true
    });
    let openai = anthropic_to_openai_request(&original, "gpt-x").unwrap();
    let back = openai_to_anthropic_request(&openai, "claude-back", 1).unwrap();
    assert_eq!(back, original);
}

#[test]
fn response_round_trips() {
    let message = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "alias",
        "content": [{"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 0}
    });
    let completion = anthropic_to_openai_response(&message, "gpt-alias", 7).unwrap();
    assert_eq!(openai_to_anthropic_response(&completion, "alias").unwrap(), message);

    let completion = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "alias",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "length",
            "message": {"role": "assistant", "content": "Partial", "refusal": null}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 16, "total_tokens": 56,
            "prompt_tokens_details": {"cached_tokens": 8}}
    });
    let message = openai_to_anthropic_response(&completion, "claude-alias").unwrap();
    assert_eq!(anthropic_to_openai_response(&message, "alias", 7).unwrap(), completion);
}

#[test]
fn stream_round_trip_keeps_text_arguments_and_stop_reason() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"x\""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}}),
        json!({"type": "message_stop"}),
    ];
    let mut to_openai = AnthropicToOpenAiStream::new("h", "gpt", 1, true);
    let mut to_anthropic = OpenAiToAnthropicStream::new("h", "claude");
    let mut out = Vec::new();
    for e in &events {
        for chunk in to_openai.event("", e).unwrap() {
            out.extend(to_anthropic.chunk(&chunk).unwrap());
        }
    }
    out.extend(to_anthropic.finish());
    let text: String = out.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    let args: String = out
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(text, "Hi there");
    assert_eq!(args, "{\"x\": 1}");
    let stops: Vec<Value> = out
        .iter()
        .map(|(_, d)| d["delta"]["stop_reason"].clone())
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(stops, [json!("tool_use")]);
    assert_eq!(out[0].1["message"]["id"], "msg_1");
    assert_eq!(
        to_anthropic.usage(),
        Some(Usage {
            input_tokens: 12,
            output_tokens: 20,
            cached_input_tokens: 0,
            cache_write_input_tokens: 0
        })
    );
    // Each upstream event maps to one event back: nothing lost, nothing duplicated.
    assert_eq!(out.len(), events.len());
}
