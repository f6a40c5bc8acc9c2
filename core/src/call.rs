//! What a call carries in and out: the request, the outcome, the decision and the permit.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::health::{Reporter, Signal};
use crate::scoring::Breakdown;
use crate::vocab::{Skipped, Status};

/// What the caller wants to send (all fields optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// Lane name; `None` is `normal`.
    pub lane: Option<&'a str>,
    /// Estimated input tokens.
    pub input_tokens: u64,
    /// Estimated output tokens (usually the call's `max_tokens`).
    pub output_tokens: u64,
    /// Providers the caller does not want now (e.g. the one that just answered 529).
    pub exclude: &'a [&'a str],
}

impl<'a> Request<'a> {
    /// An empty request in the `normal` lane.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the lane.
    pub fn lane(mut self, lane: &'a str) -> Self {
        self.lane = Some(lane);
        self
    }
    /// Sets the token estimates.
    pub fn tokens(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
        self
    }
    /// Sets the excluded providers.
    pub fn exclude(mut self, providers: &'a [&'a str]) -> Self {
        self.exclude = providers;
        self
    }
}

/// How a call went, for [`Engine::complete`](crate::Engine::complete) and [`Engine::observe`](crate::Engine::observe).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The outcome's class.
    pub status: Status,
    /// Observed latency; 0 records no latency sample.
    pub latency_ms: u64,
    /// Reported input tokens (`None`: not reported).
    pub input_tokens: Option<u64>,
    /// Reported output tokens (`None`: not reported).
    pub output_tokens: Option<u64>,
    /// Input tokens served from the provider's prompt cache (part of `input_tokens`).
    pub cached_input_tokens: Option<u64>,
    /// Input tokens written to the provider's prompt cache (part of `input_tokens`).
    pub cache_write_input_tokens: Option<u64>,
    /// The provider's retry-after, in ms (0 or `None`: none).
    pub retry_after_ms: Option<u64>,
    /// Response headers (names case-insensitive).
    pub headers: Vec<(String, String)>,
}

impl Outcome {
    /// An outcome with only a status.
    pub fn new(status: Status) -> Self {
        Outcome {
            status,
            latency_ms: 0,
            input_tokens: None,
            output_tokens: None,
            cached_input_tokens: None,
            cache_write_input_tokens: None,
            retry_after_ms: None,
            headers: Vec::new(),
        }
    }
    /// A success with its latency and reported usage.
    pub fn success(latency_ms: u64, input_tokens: u64, output_tokens: u64) -> Self {
        Outcome {
            latency_ms,
            input_tokens: Some(input_tokens),
            output_tokens: Some(output_tokens),
            ..Self::new(Status::Success)
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.validate_with(self.input_tokens)
    }

    /// Checks the outcome as if it reported `input` input tokens.
    fn validate_with(&self, input: Option<u64>) -> Result<()> {
        let Some(input) = input else { return Ok(()) };
        match (self.cached_input_tokens, self.cache_write_input_tokens) {
            (Some(cached), _) if cached > input => Err(Error::InvalidArgument(format!(
                "cached_input_tokens ({cached}) exceeds input_tokens ({input})"
            ))),
            (_, Some(written)) if written > input => Err(Error::InvalidArgument(format!(
                "cache_write_input_tokens ({written}) exceeds input_tokens ({input})"
            ))),
            (Some(cached), Some(written)) if cached.saturating_add(written) > input => {
                Err(Error::InvalidArgument(format!(
                    "cached_input_tokens ({cached}) and cache_write_input_tokens ({written}) together exceed \
                 input_tokens ({input})"
                )))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn signal(&self, reporter: Reporter, retry_after: Option<i64>) -> Signal {
        Signal {
            status: self.status,
            has_retry_after: retry_after.is_some(),
            latency_ms: self.latency_ms,
            reporter,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<i64> {
        self.retry_after_ms
            .filter(|ms| *ms > 0)
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// Input tokens that count against a quota with this `count_cached`.
    pub(crate) fn counted_input(&self, reported: u64, count_cached: bool) -> u64 {
        if count_cached {
            reported
        } else {
            reported - self.cached_input_tokens.unwrap_or(0).min(reported)
        }
    }
}

/// A call made without a permit, for [`Engine::observe`](crate::Engine::observe): its outcome
/// and how many requests it stands for. The rules every language shares live here: token counts
/// the outcome does not report are 0, and `requests` defaults to 1.
///
/// ```
/// use ratewise::{Observation, Outcome, Status};
/// let seen = Observation::new(Outcome::new(Status::RateLimited)).requests(3);
/// assert_eq!(seen.requests, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// How the call went; unreported token counts are 0.
    pub outcome: Outcome,
    /// How many requests it stands for (`None`: 1).
    pub requests: Option<u64>,
}

impl Observation {
    /// One request with this outcome.
    pub fn new(outcome: Outcome) -> Self {
        Observation {
            outcome,
            requests: None,
        }
    }

    /// The number of requests it stands for.
    pub fn requests(mut self, n: u64) -> Self {
        self.requests = Some(n);
        self
    }

    /// The input and output tokens (unreported: 0) and the request count, once the outcome is
    /// checked as if its unreported counts were 0.
    pub(crate) fn resolved(&self) -> Result<(u64, u64, u64)> {
        let o = &self.outcome;
        let input = o.input_tokens.unwrap_or(0);
        o.validate_with(Some(input))?;
        Ok((input, o.output_tokens.unwrap_or(0), self.requests.unwrap_or(1)))
    }
}

impl From<Outcome> for Observation {
    fn from(outcome: Outcome) -> Self {
        Observation::new(outcome)
    }
}

/// The engine's choice for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The chosen provider.
    pub provider: Arc<str>,
    /// The upstream model to call on it (the provider's `model`, by default its name).
    pub model: Arc<str>,
    /// Its score.
    pub score: f64,
    /// Its score terms.
    pub breakdown: Breakdown,
    /// Other eligible providers, best first.
    pub alternatives: Vec<Alternative>,
    /// Ineligible providers, in capability order.
    pub skipped: Vec<Skipped>,
}

/// An eligible provider that was not chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    /// Provider name.
    pub provider: Arc<str>,
    /// Its score.
    pub score: f64,
}

/// Identifies a permit; completing or cancelling it twice is `unknown_permit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermitId(pub u64);

/// A reservation on one provider, to be completed or cancelled.
#[derive(Debug, Clone)]
pub struct Permit {
    /// The id to pass to [`Engine::complete`](crate::Engine::complete) or [`Engine::cancel`](crate::Engine::cancel).
    pub id: PermitId,
    /// The decision that granted it (its `provider` is the permit's provider).
    pub decision: Decision,
}

impl Permit {
    /// The provider the call must go to.
    pub fn provider(&self) -> &str {
        &self.decision.provider
    }

    /// The upstream model to call (the provider's `model`).
    pub fn model(&self) -> &str {
        &self.decision.model
    }
}

/// What one poll of the waiting requests did (docs/design.md §8): the tickets granted, each now a permit
/// with the ticket's id, and the tickets that expired, each with its error (in rank order).
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// Permits granted to waiting tickets (`permit.id` is the ticket's id).
    pub granted: Vec<Permit>,
    /// Tickets removed: past their deadline (`no_available_provider` with the predicted wait) or
    /// their capability removed (`unknown_capability`).
    pub expired: Vec<(PermitId, Error)>,
}
