//! The words every part of ratewise shares: what a quota counts ([`Dimension`]), how a call
//! went ([`Status`]), the circuit's state ([`CircuitState`]) and why a provider was passed over
//! ([`SkipReason`], [`Skipped`]). Each has one stable string form, the same in every language.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// One per request.
    Requests,
    /// Input plus output tokens.
    Tokens,
    /// Input tokens.
    InputTokens,
    /// Output tokens.
    OutputTokens,
    /// Requests in flight (permits not yet completed); has no window.
    Concurrency,
    /// Micro-USD, from the provider's `price`.
    Cost,
}

impl Dimension {
    /// The configuration name of the dimension.
    pub fn as_str(&self) -> &'static str {
        match self {
            Dimension::Requests => "requests",
            Dimension::Tokens => "tokens",
            Dimension::InputTokens => "input_tokens",
            Dimension::OutputTokens => "output_tokens",
            Dimension::Concurrency => "concurrency",
            Dimension::Cost => "cost",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<Dimension> {
        Some(match name {
            "requests" => Dimension::Requests,
            "tokens" => Dimension::Tokens,
            "input_tokens" => Dimension::InputTokens,
            "output_tokens" => Dimension::OutputTokens,
            "concurrency" => Dimension::Concurrency,
            "cost" => Dimension::Cost,
            _ => return None,
        })
    }
}

/// The class of a call's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// 2xx.
    Success,
    /// Other 4xx (and 1xx/3xx): the request was at fault, not the provider.
    ClientError,
    /// 429.
    RateLimited,
    /// 401, 403, or a 429 saying the account's credit is exhausted.
    Forbidden,
    /// Other 5xx.
    ServerError,
    /// 503, 529: the provider is busy.
    Overloaded,
    /// 408, 504, transport timeouts.
    Timeout,
    /// The call reached the provider and stopped before finishing (a stream cut, a client that
    /// gave up mid-stream): quotas settle as for success, health and the circuit do not change.
    Interrupted,
}

impl Status {
    /// The stable name (`success`, `rate_limited`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::ClientError => "client_error",
            Status::RateLimited => "rate_limited",
            Status::Forbidden => "forbidden",
            Status::ServerError => "server_error",
            Status::Overloaded => "overloaded",
            Status::Timeout => "timeout",
            Status::Interrupted => "interrupted",
        }
    }

    /// The class of an HTTP status code (docs/design.md §6); codes outside 100–599 are
    /// `invalid_argument`.
    ///
    /// ```
    /// use ratewise::Status;
    /// assert_eq!(Status::from_http(529).unwrap(), Status::Overloaded);
    /// assert_eq!(Status::from_http(404).unwrap(), Status::ClientError);
    /// assert!(Status::from_http(600).is_err());
    /// ```
    pub fn from_http(code: i64) -> Result<Status> {
        Ok(match code {
            200..=299 => Status::Success,
            401 | 403 => Status::Forbidden,
            408 | 504 => Status::Timeout,
            429 => Status::RateLimited,
            503 | 529 => Status::Overloaded,
            100..=499 => Status::ClientError,
            500..=599 => Status::ServerError,
            _ => return Err(Error::InvalidArgument(format!("HTTP status {code} is outside 100-599"))),
        })
    }

    /// Like [`Status::from_http`], but a 429 whose error body type says the account's spend or
    /// credit is exhausted (OpenAI `insufficient_quota`) is `forbidden`.
    pub fn from_http_with_error_type(code: i64, error_type: Option<&str>) -> Result<Status> {
        let status = Status::from_http(code)?;
        Ok(match (status, error_type) {
            (Status::RateLimited, Some("insufficient_quota" | "billing_error" | "credit_balance_too_low")) => {
                Status::Forbidden
            }
            _ => status,
        })
    }

    /// Whether the provider did no work (tokens and cost are refunded unless reported).
    pub fn is_no_work(&self) -> bool {
        matches!(
            self,
            Status::RateLimited | Status::Overloaded | Status::Forbidden | Status::ClientError
        )
    }

    /// Whether this outcome counts as a failure of the provider.
    pub fn is_failure(&self) -> bool {
        !matches!(self, Status::Success | Status::ClientError | Status::Interrupted)
    }

    /// Whether the outcome says anything about the provider's health (an interrupted call
    /// does not: it says the stream or its consumer stopped).
    pub fn informs_health(&self) -> bool {
        *self != Status::Interrupted
    }

    /// The class of an error *event* inside a 2xx stream, by its error type (Anthropic
    /// `overloaded_error`, OpenAI `server_is_overloaded`, ...), received before any data
    /// (docs/design.md §6): the provider says it is busy or limited (no work done), the
    /// request is at fault, or it failed. `None` when no type is given.
    ///
    /// ```
    /// use ratewise::Status;
    /// assert_eq!(Status::from_error_event(Some("overloaded_error")), Some(Status::Overloaded));
    /// assert_eq!(Status::from_error_event(Some("invalid_request_error")), Some(Status::ClientError));
    /// assert_eq!(Status::from_error_event(Some("anything else")), Some(Status::ServerError));
    /// ```
    pub fn from_error_event(error_type: Option<&str>) -> Option<Status> {
        Some(match error_type? {
            "overloaded_error" | "server_is_overloaded" | "service_unavailable_error" => Status::Overloaded,
            "rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens" => Status::RateLimited,
            "insufficient_quota" | "billing_error" | "credit_balance_too_low" => Status::Forbidden,
            "invalid_request_error" => Status::ClientError,
            _ => Status::ServerError,
        })
    }

    /// Whether another attempt can succeed where this one failed (docs/design.md §6): the
    /// provider was limited, busy, broken or slow, so the next decision (another provider, or
    /// the same one after its hold) may take the call. The SDK wrappers and the gateway retry
    /// exactly these, and only before anything reached the caller.
    ///
    /// ```
    /// use ratewise::Status;
    /// assert!(Status::Overloaded.is_retryable());
    /// assert!(!Status::ClientError.is_retryable());
    /// assert!(!Status::Interrupted.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Status::RateLimited | Status::Overloaded | Status::ServerError | Status::Timeout
        )
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Status> {
        Ok(match s {
            "success" => Status::Success,
            "client_error" => Status::ClientError,
            "rate_limited" => Status::RateLimited,
            "forbidden" => Status::Forbidden,
            "server_error" => Status::ServerError,
            "overloaded" => Status::Overloaded,
            "timeout" => Status::Timeout,
            "interrupted" => Status::Interrupted,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown status '{other}' (expected success, client_error, rate_limited, forbidden, server_error, overloaded, timeout or interrupted)"
                )));
            }
        })
    }
}

/// State of the circuit breaker, read at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// No calls until the cooldown ends.
    Open,
    /// One probe at a time.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// Why a provider was not chosen (the `skipped` list of a [`crate::Decision`] or of
/// [`Error::NoAvailableProvider`]). Its string form is the stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// The capability lists a provider that is not (or no longer) registered.
    Unregistered,
    /// The request's `exclude` named it.
    Excluded,
    /// A higher-ranked waiter could use it (docs/design.md §8).
    Queued,
    /// A retry-after hold is in force.
    Held,
    /// The circuit is open.
    CircuitOpen,
    /// The circuit is half-open and its one probe is out.
    HalfOpenBusy,
    /// Health is below `min_health`.
    Unhealthy,
    /// A quota of this dimension has not enough left now.
    Quota(Dimension),
    /// The request can never fit a quota of this dimension.
    QuotaTooLarge(Dimension),
}

impl SkipReason {
    /// The stable reason code, e.g. `held` or `quota:tokens:too_large`.
    pub fn code(&self) -> String {
        match self {
            SkipReason::Unregistered => "unregistered".into(),
            SkipReason::Excluded => "excluded".into(),
            SkipReason::Queued => "queued".into(),
            SkipReason::Held => "held".into(),
            SkipReason::CircuitOpen => "circuit_open".into(),
            SkipReason::HalfOpenBusy => "half_open_busy".into(),
            SkipReason::Unhealthy => "unhealthy".into(),
            SkipReason::Quota(d) => format!("quota:{}", d.as_str()),
            SkipReason::QuotaTooLarge(d) => format!("quota:{}:too_large", d.as_str()),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// One provider that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The provider's name.
    pub provider: Arc<str>,
    /// Why it was skipped.
    pub reason: SkipReason,
}
