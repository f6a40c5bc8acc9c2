//! What the gateway answers itself: errors in the client API's shape (OpenAI
//! `{"error": {...}}`, Anthropic `{"type": "error", "error": {...}}`), and its refusals with
//! `Retry-After` from the engine's predicted wait.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use ratewise::{Error, SkipReason, Skipped};
use serde_json::Value;

use crate::config::Api;
use crate::translate::{anthropic_error, openai_error};

/// Where a failure comes from (the `domain` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The call was fine.
    Ok,
    /// The caller's request or key.
    CallerInvalid,
    /// The caller's authentication.
    CallerAuth,
    /// Our own refusal: no provider could take it before the deadline.
    PolicyRefused,
    /// The provider refused or failed.
    Provider,
    /// The gateway itself.
    Gateway,
}

impl Domain {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Ok => "ok",
            Domain::CallerInvalid => "caller_invalid",
            Domain::CallerAuth => "caller_auth",
            Domain::PolicyRefused => "policy_refused",
            Domain::Provider => "provider_error",
            Domain::Gateway => "gateway_error",
        }
    }
}

/// A failure the gateway answers itself.
#[derive(Debug, Clone)]
pub struct Failure {
    /// HTTP status.
    pub status: StatusCode,
    /// Error kind, in the Anthropic vocabulary (`invalid_request_error`, `rate_limit_error`...);
    /// mapped to OpenAI's for OpenAI clients.
    pub kind: &'static str,
    /// OpenAI `code` (`model_not_found`...).
    pub code: Option<&'static str>,
    /// Human-readable message (never a secret).
    pub message: String,
    /// The engine's predicted wait, for `Retry-After`.
    pub retry_after_ms: Option<i64>,
    /// The metrics' fault domain.
    pub domain: Domain,
}

impl Failure {
    /// A 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            Domain::CallerInvalid,
        )
    }

    /// A failure with no code and no wait.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>, domain: Domain) -> Failure {
        Failure {
            status,
            kind,
            code: None,
            message: message.into(),
            retry_after_ms: None,
            domain,
        }
    }

    /// With an OpenAI `code`.
    pub fn code(mut self, code: &'static str) -> Failure {
        self.code = Some(code);
        self
    }

    /// The engine's refusal: 429 when some provider is limited (a quota, a hold, the queue),
    /// 503 when every provider is unhealthy or its circuit open, 400 when the request can never
    /// fit; with the skip reasons in the message.
    pub fn refused(err: &Error) -> Failure {
        let Error::NoAvailableProvider {
            retry_after_ms,
            skipped,
        } = err
        else {
            return Failure::from_engine(err);
        };
        let reasons: Vec<&Skipped> = skipped
            .iter()
            .filter(|s| !matches!(s.reason, SkipReason::Excluded | SkipReason::Unregistered))
            .collect();
        let limited = reasons
            .iter()
            .any(|s| matches!(s.reason, SkipReason::Quota(_) | SkipReason::Held | SkipReason::Queued));
        let never = !reasons.is_empty() && reasons.iter().all(|s| matches!(s.reason, SkipReason::QuotaTooLarge(_)));
        let detail = skipped
            .iter()
            .map(|s| format!("{}: {}", s.provider, s.reason))
            .collect::<Vec<_>>()
            .join(", ");
        let wait = retry_after_ms
            .map(|ms| format!("; retry after {ms} ms"))
            .unwrap_or_default();
        let (status, kind, what) = if never {
            (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "the request can never fit a quota",
            )
        } else if limited || reasons.is_empty() {
            (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "no provider can take the request before its deadline",
            )
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded_error",
                "every provider is unavailable",
            )
        };
        Failure {
            status,
            kind,
            code: if status == StatusCode::TOO_MANY_REQUESTS {
                Some("rate_limit_exceeded")
            } else {
                None
            },
            message: format!("ratewise: {what} ({detail}){wait}"),
            retry_after_ms: if never { None } else { *retry_after_ms },
            domain: Domain::PolicyRefused,
        }
    }

    /// Any other engine error.
    pub fn from_engine(err: &Error) -> Failure {
        match err {
            Error::NoAvailableProvider { .. } => Failure::refused(err),
            Error::UnknownCapability(_) | Error::UnknownProvider(_) => Failure::new(
                StatusCode::NOT_FOUND,
                "not_found_error",
                err.to_string(),
                Domain::CallerInvalid,
            )
            .code("model_not_found"),
            Error::InvalidArgument(_) => Failure::invalid(err.to_string()),
            _ => Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                format!("ratewise: {err}"),
                Domain::Gateway,
            ),
        }
    }

    /// The body in `api`'s shape.
    pub fn body(&self, api: Api) -> Value {
        match api {
            Api::Anthropic => anthropic_error(self.kind, &self.message),
            Api::OpenAi => openai_error(&self.message, openai_type(self.kind), self.code),
        }
    }

    /// The response for a client of `api`.
    pub fn response(&self, api: Api) -> Response<Body> {
        let mut r = json_response(self.status, &self.body(api));
        if let Some(ms) = self.retry_after_ms.filter(|ms| *ms > 0) {
            let secs = (ms + 999) / 1000;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            if let Ok(v) = HeaderValue::from_str(&ms.to_string()) {
                r.headers_mut().insert("retry-after-ms", v);
            }
        }
        r
    }
}

/// OpenAI's `type` for an Anthropic error kind.
fn openai_type(kind: &str) -> &str {
    match kind {
        "rate_limit_error" => "rate_limit_exceeded",
        "overloaded_error" => "server_error",
        "api_error" => "server_error",
        "authentication_error" => "invalid_request_error",
        "permission_error" => "invalid_request_error",
        "not_found_error" => "invalid_request_error",
        other => other,
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ratewise::Dimension;
    use std::sync::Arc;

    fn skipped(reasons: &[(&str, SkipReason)]) -> Error {
        Error::NoAvailableProvider {
            retry_after_ms: Some(1_250),
            skipped: reasons
                .iter()
                .map(|(p, r)| Skipped {
                    provider: Arc::from(*p),
                    reason: *r,
                })
                .collect(),
        }
    }

    #[test]
    fn a_quota_refusal_is_a_429_with_its_wait_rounded_up() {
        let f = Failure::refused(&skipped(&[
            ("a", SkipReason::Quota(Dimension::Tokens)),
            ("b", SkipReason::CircuitOpen),
        ]));
        assert_eq!(f.status, StatusCode::TOO_MANY_REQUESTS);
        let r = f.response(Api::OpenAi);
        assert_eq!(r.headers()["retry-after"], "2");
        assert_eq!(r.headers()["retry-after-ms"], "1250");
        let body = f.body(Api::OpenAi);
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert_eq!(body["error"]["type"], "rate_limit_exceeded");
        assert!(body["error"]["message"].as_str().unwrap().contains("a: "));
    }

    #[test]
    fn every_provider_unhealthy_is_a_503_in_anthropic_shape() {
        let f = Failure::refused(&skipped(&[
            ("a", SkipReason::CircuitOpen),
            ("b", SkipReason::Unhealthy),
        ]));
        assert_eq!(f.status, StatusCode::SERVICE_UNAVAILABLE);
        let body = f.body(Api::Anthropic);
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
    }

    #[test]
    fn a_request_that_can_never_fit_is_a_400_without_a_wait() {
        let f = Failure::refused(&skipped(&[("a", SkipReason::QuotaTooLarge(Dimension::Tokens))]));
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        assert!(f.response(Api::OpenAi).headers().get("retry-after").is_none());
    }
}
