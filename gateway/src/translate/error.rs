//! Errors: [`TranslateError`] for input that cannot be translated, and the error bodies of both APIs.
//!
//! Upstream error bodies are translated by their error type first and their HTTP status second.
//! The OpenAI side follows what OpenAI itself sends (checked against bodies quoted in public code):
//!
//! | status | OpenAI `type` | OpenAI `code` | Anthropic `type` |
//! |---|---|---|---|
//! | 400, 404, 413, other 4xx | `invalid_request_error` | `null` | `invalid_request_error`, `not_found_error`, `request_too_large` |
//! | 401 | `invalid_request_error` | `invalid_api_key` | `authentication_error` |
//! | 402 / quota | `insufficient_quota` | `insufficient_quota` | `billing_error` |
//! | 403 | `request_forbidden` | `null` | `permission_error` |
//! | 429 | `requests` | `rate_limit_exceeded` | `rate_limit_error` |
//! | 503, 529 | `service_unavailable_error` | `server_is_overloaded` | `overloaded_error` |
//! | 500, other 5xx | `server_error` | `null` | `api_error` |
//!
//! OpenAI's 401 message quotes part of the key it was given ("Incorrect API key provided: sk-…"),
//! so authentication failures get a fixed message, and every copied message has key-like words
//! (`sk-…`, `sess-…`, the word after `Bearer`, long random-looking tokens) replaced by `[redacted]`.

use std::fmt;

use serde_json::{Value, json};

use super::json::str_at;

/// An input that cannot be translated: the JSON path at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    /// JSON path of the offending value, like `messages[2].content[0].type`; empty for the whole body.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl TranslateError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// This error as an OpenAI 400 body; `param` carries the path, as OpenAI does for bad parameters.
    pub fn to_openai_body(&self) -> Value {
        let param = if self.path.is_empty() {
            Value::Null
        } else {
            Value::from(self.path.as_str())
        };
        json!({"error": {"message": self.to_string(), "type": "invalid_request_error", "param": param, "code": null}})
    }

    /// This error as an Anthropic 400 body.
    pub fn to_anthropic_body(&self) -> Value {
        anthropic_error("invalid_request_error", &self.to_string())
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for TranslateError {}

/// An OpenAI error body: `{"error": {"message", "type", "param": null, "code"}}`.
pub fn openai_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// An Anthropic error body: `{"type": "error", "error": {"type", "message"}}`.
pub fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The Anthropic error type Anthropic uses for an HTTP status.
pub fn anthropic_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The OpenAI error `type` and `code` OpenAI sends for an HTTP status (table in the module docs).
pub fn openai_type_for_status(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        402 => ("insufficient_quota", Some("insufficient_quota")),
        403 => ("request_forbidden", None),
        429 => ("requests", Some("rate_limit_exceeded")),
        503 | 529 => ("service_unavailable_error", Some("server_is_overloaded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    }
}

/// The OpenAI type and code for an Anthropic error type, when it has one.
fn openai_type_for_anthropic(kind: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match kind {
        "invalid_request_error" | "not_found_error" | "request_too_large" => ("invalid_request_error", None),
        "authentication_error" => ("invalid_request_error", Some("invalid_api_key")),
        "billing_error" => ("insufficient_quota", Some("insufficient_quota")),
        "permission_error" => ("request_forbidden", None),
        "rate_limit_error" => ("requests", Some("rate_limit_exceeded")),
        "overloaded_error" => ("service_unavailable_error", Some("server_is_overloaded")),
        "api_error" | "timeout_error" => ("server_error", None),
        _ => return None,
    })
}

/// Translates an Anthropic upstream error body into an OpenAI one (status 0 when unknown, e.g. mid-stream).
pub fn error_to_openai(status: u16, anthropic_body: &Value) -> Value {
    let err = anthropic_body.get("error");
    let upstream_kind = err.and_then(|e| str_at(e, "type"));
    let (kind, code) = upstream_kind
        .and_then(openai_type_for_anthropic)
        .unwrap_or_else(|| openai_type_for_status(status));
    let is_auth = status == 401 || upstream_kind == Some("authentication_error");
    let message = safe_message(err.and_then(|e| str_at(e, "message")), status, is_auth);
    openai_error(&message, kind, code)
}

/// Translates an OpenAI upstream error body into an Anthropic one (status 0 when unknown, e.g. mid-stream).
pub fn error_to_anthropic(status: u16, openai_body: &Value) -> Value {
    let err = openai_body.get("error");
    let (code, kind, message) = match err {
        Some(Value::Object(_)) => (
            err.and_then(|e| str_at(e, "code")),
            err.and_then(|e| str_at(e, "type")),
            err.and_then(|e| str_at(e, "message")),
        ),
        // Some OpenAI-compatible servers send `{"error": "text"}` or `{"message": "text"}`.
        Some(Value::String(s)) => (None, None, Some(s.as_str())),
        _ => (None, None, str_at(openai_body, "message")),
    };
    // OpenAI types are irregular (`requests`, `tokens`, `invalid_request_error` on a 401), so the code
    // decides first, then the status, then the type.
    let by_code = code.and_then(|c| match c {
        "invalid_api_key" => Some("authentication_error"),
        "insufficient_quota" => Some("billing_error"),
        "rate_limit_exceeded" => Some("rate_limit_error"),
        "server_is_overloaded" | "slow_down" => Some("overloaded_error"),
        "model_not_found" => Some("not_found_error"),
        _ => None,
    });
    let by_type = kind.map(|t| match t {
        "authentication_error" => "authentication_error",
        "insufficient_quota" => "billing_error",
        "requests" | "tokens" | "rate_limit_error" => "rate_limit_error",
        "service_unavailable_error" => "overloaded_error",
        "invalid_request_error" => "invalid_request_error",
        _ => "api_error",
    });
    let anthropic_kind = by_code
        .or_else(|| (status >= 400).then(|| anthropic_type_for_status(status)))
        .or(by_type)
        .unwrap_or("api_error");
    let is_auth = status == 401 || anthropic_kind == "authentication_error";
    anthropic_error(anthropic_kind, &safe_message(message, status, is_auth))
}

/// The message to show a client: fixed for authentication failures, otherwise redacted.
fn safe_message(upstream: Option<&str>, status: u16, is_auth: bool) -> String {
    if is_auth {
        return "the upstream provider rejected the gateway's credentials".to_owned();
    }
    match upstream {
        Some(m) if !m.trim().is_empty() => redact_secrets(m),
        _ if status == 0 => "the upstream provider reported an error".to_owned(),
        _ => format!("the upstream provider answered HTTP {status}"),
    }
}

/// Replaces key-like words in `message` with `[redacted]`.
fn redact_secrets(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let mut after_bearer = false;
    fn flush(word: &mut String, out: &mut String, after_bearer: &mut bool) {
        if word.is_empty() {
            return;
        }
        if *after_bearer || looks_secret(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        *after_bearer = word.eq_ignore_ascii_case("bearer");
        word.clear();
    }
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.' | '/' | '+' | '=') {
            word.push(c);
        } else {
            flush(&mut word, &mut out, &mut after_bearer);
            out.push(c);
        }
    }
    flush(&mut word, &mut out, &mut after_bearer);
    out
}

/// Whether a word looks like a credential: a known key prefix, or a long mix of letters and digits.
fn looks_secret(word: &str) -> bool {
    let w = word.trim_end_matches('.');
    let prefixed = ["sk-", "sk_", "sess-", "key-", "AKIA"].iter().any(|p| w.starts_with(p));
    let long_random = w.len() >= 32
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().any(|c| c.is_ascii_alphabetic())
        && !w.contains('/');
    prefixed || long_random
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn translate_error_displays_and_renders() {
        let e = TranslateError::new(
            "messages[2].content[0].type",
            "audio content parts cannot be translated",
        );
        assert_eq!(
            e.to_string(),
            "messages[2].content[0].type: audio content parts cannot be translated"
        );
        assert_eq!(
            e.to_openai_body(),
            json!({"error": {"message": e.to_string(), "type": "invalid_request_error",
                "param": "messages[2].content[0].type", "code": null}})
        );
        assert_eq!(
            e.to_anthropic_body(),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": e.to_string()}})
        );
        assert_eq!(
            TranslateError::new("", "body must be an object").to_string(),
            "body must be an object"
        );
        assert_eq!(
            TranslateError::new("", "x").to_openai_body()["error"]["param"],
            Value::Null
        );
    }

    #[test]
    fn builders_have_the_documented_shape() {
        assert_eq!(
            openai_error("slow down", "requests", Some("rate_limit_exceeded")),
            json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
        );
        assert_eq!(openai_error("m", "server_error", None)["error"]["code"], Value::Null);
        assert_eq!(
            anthropic_error("overloaded_error", "Overloaded"),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        );
    }

    #[test]
    fn status_tables() {
        let a: Vec<_> = [400, 401, 403, 404, 413, 429, 500, 529, 418, 502]
            .iter()
            .map(|s| anthropic_type_for_status(*s))
            .collect();
        assert_eq!(
            a,
            [
                "invalid_request_error",
                "authentication_error",
                "permission_error",
                "not_found_error",
                "request_too_large",
                "rate_limit_error",
                "api_error",
                "overloaded_error",
                "invalid_request_error",
                "api_error"
            ]
        );
        assert_eq!(openai_type_for_status(429), ("requests", Some("rate_limit_exceeded")));
        assert_eq!(
            openai_type_for_status(401),
            ("invalid_request_error", Some("invalid_api_key"))
        );
        assert_eq!(openai_type_for_status(500), ("server_error", None));
        assert_eq!(openai_type_for_status(404), ("invalid_request_error", None));
    }

    #[test]
    fn anthropic_errors_become_openai_errors() {
        let body = anthropic_error("rate_limit_error", "Number of requests has exceeded your rate limit");
        assert_eq!(
            error_to_openai(429, &body),
            openai_error(
                "Number of requests has exceeded your rate limit",
                "requests",
                Some("rate_limit_exceeded")
            )
        );
        let body = anthropic_error("overloaded_error", "Overloaded");
        assert_eq!(
            error_to_openai(529, &body),
            openai_error("Overloaded", "service_unavailable_error", Some("server_is_overloaded"))
        );
        let body = anthropic_error("not_found_error", "model: claude-nope");
        assert_eq!(
            error_to_openai(404, &body),
            openai_error("model: claude-nope", "invalid_request_error", None)
        );
        // Unparsable body: the status decides and the message says so.
        assert_eq!(
            error_to_openai(500, &json!("<html>")),
            openai_error("the upstream provider answered HTTP 500", "server_error", None)
        );
        assert_eq!(
            error_to_openai(0, &json!({"type": "error", "error": {"type": "api_error"}})),
            openai_error("the upstream provider reported an error", "server_error", None)
        );
    }

    #[test]
    fn openai_errors_become_anthropic_errors() {
        let body = json!({"error": {"message": "Rate limit reached for gpt-4o on tokens per min (TPM)",
            "type": "tokens", "param": null, "code": "rate_limit_exceeded"}});
        assert_eq!(
            error_to_anthropic(429, &body),
            anthropic_error(
                "rate_limit_error",
                "Rate limit reached for gpt-4o on tokens per min (TPM)"
            )
        );
        let body = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
            "param": null, "code": "insufficient_quota"}});
        assert_eq!(error_to_anthropic(429, &body)["error"]["type"], "billing_error");
        let body = json!({"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
            "param": null, "code": "model_not_found"}});
        assert_eq!(error_to_anthropic(404, &body)["error"]["type"], "not_found_error");
        let body = json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}});
        assert_eq!(error_to_anthropic(413, &body)["error"]["type"], "request_too_large");
        assert_eq!(
            error_to_anthropic(400, &body),
            anthropic_error("invalid_request_error", "bad")
        );
        let body =
            json!({"error": {"message": "busy", "type": "service_unavailable_error", "code": "server_is_overloaded"}});
        assert_eq!(
            error_to_anthropic(503, &body),
            anthropic_error("overloaded_error", "busy")
        );
        assert_eq!(
            error_to_anthropic(0, &json!({"error": {"message": "x", "type": "server_error"}}))["error"]["type"],
            "api_error"
        );
        assert_eq!(
            error_to_anthropic(502, &json!({"error": "bad gateway"})),
            anthropic_error("api_error", "bad gateway")
        );
        assert_eq!(
            error_to_anthropic(500, &Value::Null),
            anthropic_error("api_error", "the upstream provider answered HTTP 500")
        );
    }

    #[test]
    fn upstream_keys_never_reach_the_client() {
        let body = json!({"error": {"message": "Incorrect API key provided: sk-proj-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}});
        let out = error_to_anthropic(401, &body);
        assert_eq!(
            out,
            anthropic_error(
                "authentication_error",
                "the upstream provider rejected the gateway's credentials"
            )
        );
        let body = anthropic_error("authentication_error", "invalid x-api-key sk-ant-api03-SECRET");
        let out = error_to_openai(401, &body);
        assert_eq!(
            out["error"]["message"],
            "the upstream provider rejected the gateway's credentials"
        );
        assert_eq!(out["error"]["code"], "invalid_api_key");
        // Other errors keep their text but lose key-like words.
        let body = anthropic_error(
            "invalid_request_error",
            "header Bearer abc.def was odd; key sk-ant-api03-Zz9 and a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8 leaked",
        );
        assert_eq!(
            error_to_openai(400, &body)["error"]["message"],
            "header Bearer [redacted] was odd; key [redacted] and [redacted] leaked"
        );
        assert_eq!(
            redact_secrets("model: claude-3-5-sonnet-20241022."),
            "model: claude-3-5-sonnet-20241022."
        );
    }
}
