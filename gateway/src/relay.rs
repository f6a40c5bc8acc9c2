//! One upstream stream relayed to one client: upstream SSE events in, the client API's SSE
//! bytes out, with the usage seen so far and whether the answer finished.
//!
//! Same API: the events are forwarded as they came (OpenAI's usage chunk, which the gateway
//! asked for, is hidden from a client that did not ask). Across APIs: the translate module's
//! state machines.

use bytes::Bytes;
use ratewise::Status;
use serde_json::Value;

use crate::config::Api;
use crate::sse;
use crate::translate::{
    AnthropicCounts, AnthropicToOpenAiStream, OpenAiToAnthropicStream, OpenAiUsageFilter, Usage, anthropic_error,
    error_to_anthropic, error_to_openai, openai_error,
};

/// A relay in one of the four directions (client API, upstream API).
#[derive(Debug)]
pub enum Relay {
    /// OpenAI client, OpenAI upstream.
    OpenAi {
        filter: OpenAiUsageFilter,
        done: bool,
        error: Option<Value>,
    },
    /// Anthropic client, Anthropic upstream.
    Anthropic {
        /// `message_start`'s counts, each replaced by a later `message_delta`'s where it has one.
        usage: AnthropicCounts,
        done: bool,
        error: Option<Value>,
    },
    /// OpenAI client, Anthropic upstream.
    ToOpenAi(Box<AnthropicToOpenAiStream>),
    /// Anthropic client, OpenAI upstream.
    ToAnthropic {
        conv: Box<OpenAiToAnthropicStream>,
        done: bool,
    },
}

impl Relay {
    /// A relay for a client of `client` reaching an upstream of `upstream`.
    pub fn new(client: Api, upstream: Api, client_wants_usage: bool, id_hint: &str, client_model: &str) -> Relay {
        match (client, upstream) {
            (Api::OpenAi, Api::OpenAi) => Relay::OpenAi {
                filter: OpenAiUsageFilter::new(client_wants_usage),
                done: false,
                error: None,
            },
            (Api::Anthropic, Api::Anthropic) => Relay::Anthropic {
                usage: AnthropicCounts::default(),
                done: false,
                error: None,
            },
            (Api::OpenAi, Api::Anthropic) => Relay::ToOpenAi(Box::new(AnthropicToOpenAiStream::new(
                id_hint,
                client_model,
                now_s(),
                client_wants_usage,
            ))),
            (Api::Anthropic, Api::OpenAi) => Relay::ToAnthropic {
                conv: Box::new(OpenAiToAnthropicStream::new(id_hint, client_model)),
                done: false,
            },
        }
    }

    /// The bytes to send the client for one upstream event.
    pub fn event(&mut self, e: &sse::Event) -> Result<Vec<Bytes>, String> {
        match self {
            Relay::OpenAi { filter, done, error } => {
                if e.data.trim() == "[DONE]" {
                    *done = true;
                    return Ok(vec![sse::data("[DONE]")]);
                }
                let chunk: Value = serde_json::from_str(&e.data).map_err(|err| format!("upstream chunk: {err}"))?;
                if chunk.get("error").is_some() {
                    *error = Some(chunk);
                    return Ok(vec![sse::data(&e.data)]);
                }
                Ok(if filter.chunk(&chunk) {
                    vec![sse::data(&e.data)]
                } else {
                    Vec::new()
                })
            }
            Relay::Anthropic { usage, done, error } => {
                let name = if e.event.is_empty() {
                    "message"
                } else {
                    e.event.as_str()
                };
                match name {
                    "message_start" | "message_delta" | "error" => {
                        let v: Value = serde_json::from_str(&e.data).map_err(|err| format!("upstream event: {err}"))?;
                        if name == "error" {
                            *error = Some(v);
                        } else {
                            let u = if name == "message_start" {
                                v.pointer("/message/usage")
                            } else {
                                v.get("usage")
                            };
                            if let Some(u) = u {
                                usage.update(u);
                            }
                        }
                    }
                    "message_stop" => *done = true,
                    _ => {}
                }
                Ok(vec![sse::named(name, &e.data)])
            }
            Relay::ToOpenAi(conv) => {
                let data: Value = serde_json::from_str(&e.data).map_err(|err| format!("upstream event: {err}"))?;
                let name = if e.event.is_empty() {
                    data.get("type").and_then(Value::as_str).unwrap_or("")
                } else {
                    &e.event
                };
                let chunks = conv.event(name, &data).map_err(|err| err.to_string())?;
                Ok(chunks.iter().map(|c| sse::data(&c.to_string())).collect())
            }
            Relay::ToAnthropic { conv, done } => {
                if e.data.trim() == "[DONE]" {
                    *done = true;
                    return Ok(conv
                        .finish()
                        .iter()
                        .map(|(n, v)| sse::named(n, &v.to_string()))
                        .collect());
                }
                let chunk: Value = serde_json::from_str(&e.data).map_err(|err| format!("upstream chunk: {err}"))?;
                let events = conv.chunk(&chunk).map_err(|err| err.to_string())?;
                Ok(events.iter().map(|(n, v)| sse::named(n, &v.to_string())).collect())
            }
        }
    }

    /// What to send when the upstream ended: the OpenAI `[DONE]` a translated stream ends with.
    pub fn end(&mut self) -> Vec<Bytes> {
        match self {
            Relay::ToOpenAi(conv) if conv.finished() => vec![sse::data("[DONE]")],
            _ => Vec::new(),
        }
    }

    /// Whether the upstream finished its answer.
    pub fn finished(&self) -> bool {
        match self {
            Relay::OpenAi { done, error, .. } | Relay::Anthropic { done, error, .. } => *done && error.is_none(),
            Relay::ToOpenAi(conv) => conv.finished() && conv.upstream_error().is_none(),
            Relay::ToAnthropic { conv, done } => *done && conv.upstream_error().is_none(),
        }
    }

    /// The usage seen so far.
    pub fn usage(&self) -> Option<Usage> {
        match self {
            Relay::OpenAi { filter, .. } => filter.usage(),
            Relay::Anthropic { usage, .. } => usage.usage(),
            Relay::ToOpenAi(conv) => conv.usage(),
            Relay::ToAnthropic { conv, .. } => conv.usage(),
        }
    }

    /// The upstream's error event, if it sent one.
    pub fn upstream_error(&self) -> Option<&Value> {
        match self {
            Relay::OpenAi { error, .. } | Relay::Anthropic { error, .. } => error.as_ref(),
            Relay::ToOpenAi(conv) => conv.upstream_error(),
            Relay::ToAnthropic { conv, .. } => conv.upstream_error(),
        }
    }

    /// The error event to send a client whose stream broke (the upstream cut it, or sent what
    /// could not be read), in the client API's shape.
    pub fn broken(&self, client: Api, message: &str) -> Bytes {
        match client {
            Api::OpenAi => sse::data(&openai_error(message, "server_error", None).to_string()),
            Api::Anthropic => sse::named("error", &anthropic_error("api_error", message).to_string()),
        }
    }
}

/// The status of an error event received before anything reached the client: the provider did
/// no work when it says it is busy or limited (then another attempt may go elsewhere).
pub fn event_error_status(error: &Value) -> Status {
    let kind = error
        .pointer("/error/type")
        .or_else(|| error.pointer("/error/code"))
        .and_then(Value::as_str);
    Status::from_error_event(Some(kind.unwrap_or(""))).unwrap_or(Status::ServerError)
}

/// Unix seconds, for `created`.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An upstream error body in the client API's shape.
pub fn error_body_for(client: Api, upstream: Api, status: u16, body: &Value) -> Value {
    match (client, upstream) {
        (Api::OpenAi, Api::Anthropic) => error_to_openai(status, body),
        (Api::Anthropic, Api::OpenAi) => error_to_anthropic(status, body),
        _ => body.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(event: &str, data: &str) -> sse::Event {
        sse::Event {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn an_openai_relay_hides_the_usage_chunk_it_asked_for() {
        let mut r = Relay::new(Api::OpenAi, Api::OpenAi, false, "id", "chat");
        let text = r#"{"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(r.event(&ev("", text)).unwrap().len(), 1);
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        assert!(r.event(&ev("", usage)).unwrap().is_empty());
        assert!(!r.finished());
        assert_eq!(r.event(&ev("", "[DONE]")).unwrap(), vec![sse::data("[DONE]")]);
        assert!(r.finished());
        assert_eq!(r.usage().unwrap().output_tokens, 2);
    }

    #[test]
    fn an_anthropic_relay_forwards_events_and_takes_the_delta_usage() {
        let mut r = Relay::new(Api::Anthropic, Api::Anthropic, false, "id", "chat");
        let start = r#"{"type":"message_start","message":{"usage":{"input_tokens":12,"cache_read_input_tokens":4,"output_tokens":1}}}"#;
        assert_eq!(
            r.event(&ev("message_start", start)).unwrap(),
            vec![sse::named("message_start", start)]
        );
        r.event(&ev(
            "message_delta",
            r#"{"type":"message_delta","usage":{"output_tokens":9}}"#,
        ))
        .unwrap();
        assert!(!r.finished());
        r.event(&ev("message_stop", r#"{"type":"message_stop"}"#)).unwrap();
        assert!(r.finished());
        let u = r.usage().unwrap();
        assert_eq!((u.input_tokens, u.cached_input_tokens, u.output_tokens), (16, 4, 9));
    }

    #[test]
    fn an_anthropic_relay_keeps_the_cache_counts_a_delta_leaves_out() {
        // A delta that repeats the input but not the cache counts: the reads and writes of
        // message_start stand (each counter is replaced only where the delta has one).
        let mut r = Relay::new(Api::Anthropic, Api::Anthropic, false, "id", "chat");
        let start = r#"{"type":"message_start","message":{"usage":{"input_tokens":12,"cache_read_input_tokens":4,"cache_creation_input_tokens":30,"output_tokens":1}}}"#;
        r.event(&ev("message_start", start)).unwrap();
        let delta = r#"{"type":"message_delta","usage":{"input_tokens":12,"output_tokens":9}}"#;
        r.event(&ev("message_delta", delta)).unwrap();
        let u = r.usage().unwrap();
        assert_eq!(
            (
                u.input_tokens,
                u.cached_input_tokens,
                u.cache_write_input_tokens,
                u.output_tokens
            ),
            (46, 4, 30, 9)
        );
    }

    #[test]
    fn an_error_event_says_whether_the_provider_did_work() {
        let e: Value = serde_json::from_str(r#"{"type":"error","error":{"type":"overloaded_error"}}"#).unwrap();
        assert_eq!(event_error_status(&e), Status::Overloaded);
        let mut r = Relay::new(Api::Anthropic, Api::Anthropic, false, "id", "chat");
        r.event(&ev(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
        ))
        .unwrap();
        assert!(r.upstream_error().is_some());
        assert!(!r.finished());
    }
}
