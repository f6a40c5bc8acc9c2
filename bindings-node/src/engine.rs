//! `Engine`, `ManualClock`, `Decision` and `Permit`: thin wrappers around the core. Every call
//! converts arguments and results; every decision is the core's.

use napi::bindgen_prelude::*;
use ratewise::{Clock, Decision as CoreDecision, Dimension, Outcome, PermitId, Request, Status as CoreStatus};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config;
use crate::error::{IntoJsResult, SkippedProvider, invalid_argument, skipped};

/// A settable clock for tests and simulations.
#[napi]
pub struct ManualClock {
    inner: ratewise::ManualClock,
}

#[napi]
impl ManualClock {
    /// A manual clock reading `startMs` (default 0).
    #[napi(constructor)]
    pub fn new(start_ms: Option<i64>) -> Self {
        ManualClock {
            inner: ratewise::ManualClock::new(start_ms.unwrap_or(0)),
        }
    }

    /// Moves the clock forward by `ms` milliseconds.
    #[napi]
    pub fn advance(&self, env: &Env, ms: i64) -> Result<()> {
        if ms < 0 {
            return Err(invalid_argument(env, format!("ms must be >= 0, got {ms}")));
        }
        self.inner.advance(ms);
        Ok(())
    }

    /// The current time in milliseconds.
    #[napi(getter)]
    pub fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
}

/// What the caller wants to send.
#[napi(object)]
#[derive(Default)]
pub struct RequestOptions {
    /// Lane name (default `normal`).
    pub lane: Option<String>,
    /// Estimated input tokens.
    pub input_tokens: Option<i64>,
    /// Estimated output tokens (usually the call's `max_tokens`).
    pub output_tokens: Option<i64>,
    /// Providers not wanted now (e.g. the one that just answered 529).
    pub exclude: Option<Vec<String>>,
}

/// How a call went. `status` is a class name (`'success'`, `'rate_limited'`, ...) or an HTTP
/// code; token counts left out are "not reported"; `headers` is a plain object, a fetch
/// `Headers`, a `Map` or `[name, value]` pairs.
#[napi(object, object_to_js = false)]
pub struct OutcomeOptions<'a> {
    /// A class name or an HTTP status code.
    #[napi(ts_type = "OutcomeStatus | number")]
    pub status: Unknown<'a>,
    /// Observed latency in ms (complete: default the time since acquire).
    pub latency_ms: Option<i64>,
    /// Reported input tokens.
    pub input_tokens: Option<i64>,
    /// Reported output tokens.
    pub output_tokens: Option<i64>,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: Option<i64>,
    /// The provider's retry-after, in ms.
    pub retry_after_ms: Option<i64>,
    /// Response headers.
    #[napi(ts_type = "HeadersInput")]
    pub headers: Option<Unknown<'a>>,
}

/// How a call made without a permit went (`observe`); as `OutcomeOptions` plus `requests`.
#[napi(object, object_to_js = false)]
pub struct ObserveOptions<'a> {
    /// A class name or an HTTP status code.
    #[napi(ts_type = "OutcomeStatus | number")]
    pub status: Unknown<'a>,
    /// Observed latency in ms.
    pub latency_ms: Option<i64>,
    /// Requests made (default 1).
    pub requests: Option<i64>,
    /// Input tokens used (default 0).
    pub input_tokens: Option<i64>,
    /// Output tokens used (default 0).
    pub output_tokens: Option<i64>,
    /// Input tokens served from the provider's prompt cache.
    pub cached_input_tokens: Option<i64>,
    /// The provider's retry-after, in ms.
    pub retry_after_ms: Option<i64>,
    /// Response headers.
    #[napi(ts_type = "HeadersInput")]
    pub headers: Option<Unknown<'a>>,
}

fn count(env: &Env, name: &str, value: Option<i64>) -> Result<Option<u64>> {
    value
        .map(|v| u64::try_from(v).map_err(|_| invalid_argument(env, format!("{name} must be >= 0, got {v}"))))
        .transpose()
}

fn status(env: &Env, value: &Unknown<'_>) -> Result<CoreStatus> {
    match value.get_type()? {
        ValueType::String => {
            let name = value.coerce_to_string()?.into_utf8()?.into_owned()?;
            CoreStatus::from_str(&name).js(env)
        }
        ValueType::Number => {
            let code = value.coerce_to_number()?.get_double()?;
            if code.fract() != 0.0 {
                return Err(invalid_argument(env, format!("HTTP status {code} is not an integer")));
            }
            CoreStatus::from_http(code as i64).js(env)
        }
        _ => Err(invalid_argument(
            env,
            "status must be a class name (string) or an HTTP code (number)".into(),
        )),
    }
}

fn outcome(env: &Env, o: OutcomeOptions<'_>, default_latency: u64) -> Result<Outcome> {
    Ok(Outcome {
        status: status(env, &o.status)?,
        latency_ms: count(env, "latencyMs", o.latency_ms)?.unwrap_or(default_latency),
        input_tokens: count(env, "inputTokens", o.input_tokens)?,
        output_tokens: count(env, "outputTokens", o.output_tokens)?,
        cached_input_tokens: count(env, "cachedInputTokens", o.cached_input_tokens)?,
        retry_after_ms: count(env, "retryAfterMs", o.retry_after_ms)?,
        headers: config::headers(env, o.headers)?,
    })
}

fn with_request<T>(env: &Env, options: Option<RequestOptions>, f: impl FnOnce(&Request<'_>) -> T) -> Result<T> {
    let o = options.unwrap_or_default();
    let exclude: Vec<&str> = o.exclude.iter().flatten().map(String::as_str).collect();
    let req = Request {
        lane: o.lane.as_deref(),
        input_tokens: count(env, "inputTokens", o.input_tokens)?.unwrap_or(0),
        output_tokens: count(env, "outputTokens", o.output_tokens)?.unwrap_or(0),
        exclude: &exclude,
    };
    Ok(f(&req))
}

/// The engine. One instance serves every caller of the process.
#[napi]
pub struct Engine {
    inner: Arc<ratewise::Engine>,
}

impl Engine {
    fn build(env: &Env, config: ratewise::Config, clock: Option<&ManualClock>) -> Result<Engine> {
        let core_clock = match clock {
            Some(c) => Clock::Manual(c.inner.clone()),
            None => Clock::system(),
        };
        Ok(Engine {
            inner: Arc::new(ratewise::Engine::with_clock(config, core_clock).js(env)?),
        })
    }
}

#[napi]
impl Engine {
    /// An engine from a configuration object or JSON text, on the system clock or `clock`.
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        #[napi(ts_arg_type = "EngineConfig | string")] config: Either<String, Unknown<'_>>,
        clock: Option<&ManualClock>,
    ) -> Result<Self> {
        let config = config::config(env, config)?;
        Engine::build(env, config, clock)
    }

    /// An engine from JSON configuration text.
    #[napi(factory)]
    pub fn from_json(env: &Env, text: String, clock: Option<&ManualClock>) -> Result<Self> {
        let config = ratewise::Config::from_json(&text).js(env)?;
        Engine::build(env, config, clock)
    }

    /// An engine from a JSON configuration file.
    #[napi(factory)]
    pub fn from_file(env: &Env, path: String, clock: Option<&ManualClock>) -> Result<Self> {
        let config = ratewise::Config::from_file(path).js(env)?;
        Engine::build(env, config, clock)
    }

    /// The engine's clock reading in Unix ms.
    #[napi]
    pub fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }

    /// Which provider a request would go to now; changes no state.
    #[napi]
    pub fn select(&self, env: &Env, capability: String, options: Option<RequestOptions>) -> Result<Decision> {
        let d = with_request(env, options, |req| self.inner.select(&capability, req))?.js(env)?;
        Ok(Decision { inner: d })
    }

    /// Selects and reserves atomically; returns a `Permit` to complete or cancel.
    #[napi]
    pub fn acquire(&self, env: &Env, capability: String, options: Option<RequestOptions>) -> Result<Permit> {
        let (permit, input, output) = with_request(env, options, |req| {
            (
                self.inner.acquire(&capability, req),
                req.input_tokens,
                req.output_tokens,
            )
        })?;
        let permit = permit.js(env)?;
        Ok(Permit {
            engine: self.inner.clone(),
            id: permit.id,
            decision: permit.decision,
            estimates: (input, output),
            started: Instant::now(),
            done: AtomicBool::new(false),
        })
    }

    /// Completes a permit by id (for callers that keep ids rather than `Permit` objects).
    #[napi]
    pub fn complete(&self, env: &Env, permit_id: i64, outcome: OutcomeOptions<'_>) -> Result<()> {
        let o = self::outcome(env, outcome, 0)?;
        self.inner
            .complete(PermitId(u64::try_from(permit_id).unwrap_or(0)), &o)
            .js(env)
    }

    /// Cancels a permit by id.
    #[napi]
    pub fn cancel(&self, env: &Env, permit_id: i64) -> Result<()> {
        self.inner
            .cancel(PermitId(u64::try_from(permit_id).unwrap_or(0)))
            .js(env)
    }

    /// Records a call made without a permit.
    #[napi]
    pub fn observe(&self, env: &Env, provider: String, outcome: ObserveOptions<'_>) -> Result<()> {
        let requests = count(env, "requests", outcome.requests)?.unwrap_or(1);
        let o = Outcome {
            status: status(env, &outcome.status)?,
            latency_ms: count(env, "latencyMs", outcome.latency_ms)?.unwrap_or(0),
            input_tokens: Some(count(env, "inputTokens", outcome.input_tokens)?.unwrap_or(0)),
            output_tokens: Some(count(env, "outputTokens", outcome.output_tokens)?.unwrap_or(0)),
            cached_input_tokens: count(env, "cachedInputTokens", outcome.cached_input_tokens)?,
            retry_after_ms: count(env, "retryAfterMs", outcome.retry_after_ms)?,
            headers: config::headers(env, outcome.headers)?,
        };
        self.inner.observe(&provider, &o, requests).js(env)
    }

    /// Feeds a provider's response headers (retry-after, OpenAI and Anthropic rate-limit headers).
    #[napi]
    pub fn sync_headers(
        &self,
        env: &Env,
        provider: String,
        #[napi(ts_arg_type = "HeadersInput")] headers: Unknown<'_>,
    ) -> Result<()> {
        let h = config::headers(env, Some(headers))?;
        self.inner.sync_headers(&provider, &h).js(env)
    }

    /// Health of a provider now, in [0, 1].
    #[napi]
    pub fn health(&self, env: &Env, provider: String) -> Result<f64> {
        self.inner.health(&provider).js(env)
    }

    /// Units left in a dimension (the minimum over the provider's quotas of it), or null.
    #[napi]
    pub fn remaining(
        &self,
        env: &Env,
        provider: String,
        #[napi(ts_arg_type = "QuotaDimension")] dimension: String,
    ) -> Result<Option<i64>> {
        let dim = Dimension::parse(&dimension)
            .ok_or_else(|| invalid_argument(env, format!("unknown dimension '{dimension}'")))?;
        self.inner.remaining(&provider, dim).js(env)
    }

    /// The provider's circuit.
    #[napi(ts_return_type = "'closed' | 'open' | 'half_open'")]
    pub fn circuit(&self, env: &Env, provider: String) -> Result<&'static str> {
        Ok(self.inner.circuit(&provider).js(env)?.as_str())
    }

    /// The engine's state as a plain object (stable paths: providers, lanes, counters, store).
    #[napi(ts_return_type = "Snapshot")]
    pub fn snapshot<'env>(&self, env: &'env Env) -> Result<Unknown<'env>> {
        config::parse(env, &self.inner.snapshot().to_string())
    }

    /// The snapshot as JSON text (for logs; `snapshot()` is the same as an object).
    #[napi]
    pub fn snapshot_json(&self) -> String {
        self.inner.snapshot().to_string()
    }

    /// Adds or replaces a provider (an object as in `providers[]`, or JSON text).
    #[napi]
    pub fn upsert_provider(
        &self,
        env: &Env,
        #[napi(ts_arg_type = "ProviderConfig | string")] provider: Either<String, Unknown<'_>>,
    ) -> Result<()> {
        let v = config::to_value(env, provider, "provider")?;
        self.inner.upsert_provider(&v).js(env)
    }

    /// Adds or replaces a capability (an object as in `capabilities[]`, or JSON text).
    #[napi]
    pub fn upsert_capability(
        &self,
        env: &Env,
        #[napi(ts_arg_type = "CapabilityConfig | string")] capability: Either<String, Unknown<'_>>,
    ) -> Result<()> {
        let v = config::to_value(env, capability, "capability")?;
        self.inner.upsert_capability(&v).js(env)
    }

    /// Removes a provider; it stays listed in its capabilities as unregistered.
    #[napi]
    pub fn remove_provider(&self, env: &Env, name: String) -> Result<()> {
        self.inner.remove_provider(&name).js(env)
    }

    /// Removes a capability.
    #[napi]
    pub fn remove_capability(&self, env: &Env, name: String) -> Result<()> {
        self.inner.remove_capability(&name).js(env)
    }
}

/// The score terms of a decision.
#[napi(object)]
pub struct Breakdown {
    /// Q: quota left after this request, minus the anticipation penalty.
    pub quota: f64,
    /// H: health now.
    pub health: f64,
    /// P: priority relative to the capability's largest.
    pub priority: f64,
    /// L: fastest latency among eligible providers over this one's.
    pub latency: f64,
    /// K: cheapest cost among eligible providers over this one's.
    pub cost: f64,
}

/// An eligible provider that was not chosen.
#[napi(object)]
pub struct Alternative {
    /// Provider name.
    pub provider: String,
    /// Its score.
    pub score: f64,
}

/// Where a request goes, and why. Fields are computed when read.
#[napi]
pub struct Decision {
    inner: CoreDecision,
}

#[napi]
impl Decision {
    /// The chosen provider.
    #[napi(getter)]
    pub fn provider(&self) -> String {
        self.inner.provider.to_string()
    }

    /// Its score in [0, 1].
    #[napi(getter)]
    pub fn score(&self) -> f64 {
        self.inner.score
    }

    /// Its score terms.
    #[napi(getter)]
    pub fn breakdown(&self) -> Breakdown {
        let b = &self.inner.breakdown;
        Breakdown {
            quota: b.quota,
            health: b.health,
            priority: b.priority,
            latency: b.latency,
            cost: b.cost,
        }
    }

    /// Other eligible providers, best first.
    #[napi(getter)]
    pub fn alternatives(&self) -> Vec<Alternative> {
        self.inner
            .alternatives
            .iter()
            .map(|a| Alternative {
                provider: a.provider.to_string(),
                score: a.score,
            })
            .collect()
    }

    /// Ineligible providers, in capability order.
    #[napi(getter)]
    pub fn skipped(&self) -> Vec<SkippedProvider> {
        skipped(&self.inner.skipped)
    }
}

/// A reservation on one provider: complete it with what happened, or cancel it if the call was
/// never sent.
#[napi]
pub struct Permit {
    engine: Arc<ratewise::Engine>,
    id: PermitId,
    decision: CoreDecision,
    estimates: (u64, u64),
    started: Instant,
    done: AtomicBool,
}

#[napi]
impl Permit {
    /// The permit's id.
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        i64::try_from(self.id.0).unwrap_or(i64::MAX)
    }

    /// The provider the call must go to.
    #[napi(getter)]
    pub fn provider(&self) -> String {
        self.decision.provider.to_string()
    }

    /// The decision that granted the permit.
    #[napi(getter)]
    pub fn decision(&self) -> Decision {
        Decision {
            inner: self.decision.clone(),
        }
    }

    /// Whether the permit was completed or cancelled.
    #[napi(getter)]
    pub fn done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Settles the permit with the call's outcome (`latencyMs` defaults to the time since
    /// acquire). Without any token count, the estimates stand unless the status says the
    /// provider did no work; `completeWithEstimates` reports them as used.
    #[napi]
    pub fn complete(&self, env: &Env, outcome: OutcomeOptions<'_>) -> Result<()> {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let o = self::outcome(env, outcome, elapsed)?;
        self.engine.complete(self.id, &o).js(env)?;
        self.done.store(true, Ordering::Release);
        Ok(())
    }

    /// The call was never sent: refunds every reservation.
    #[napi]
    pub fn cancel(&self, env: &Env) -> Result<()> {
        self.engine.cancel(self.id).js(env)?;
        self.done.store(true, Ordering::Release);
        Ok(())
    }

    /// The estimates given at acquire, as `[inputTokens, outputTokens]`.
    #[napi(getter)]
    pub fn estimates(&self) -> Vec<i64> {
        vec![
            i64::try_from(self.estimates.0).unwrap_or(i64::MAX),
            i64::try_from(self.estimates.1).unwrap_or(i64::MAX),
        ]
    }
}

/// The class of an HTTP status code: 'success', 'rate_limited', 'overloaded', ... A 429 whose
/// error body type says the account is out of credit (`insufficient_quota`) is 'forbidden'.
#[napi(ts_return_type = "OutcomeStatus")]
// Called from JS only: in the test cfg napi registers nothing, so Rust sees no caller.
#[cfg_attr(test, allow(dead_code))]
pub fn status_from_http(env: &Env, code: i64, error_type: Option<String>) -> Result<&'static str> {
    Ok(CoreStatus::from_http_with_error_type(code, error_type.as_deref())
        .js(env)?
        .as_str())
}
