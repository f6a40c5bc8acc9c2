//! One call through the gateway: the engine decides, the upstream answers, the permit settles.
//!
//! Attempts: acquire (at once, else wait in the lane until the deadline), send with the
//! deployment's model, and on a retryable failure before anything reached the client settle it
//! as what it was and try the next decision; never after the first byte. A [`Settle`] guard
//! owns every permit, so a client that goes away (its future or body dropped) settles the call
//! `interrupted` with the usage seen — or cancels it when nothing was sent.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{AGE, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use ratewise::{AcquireFuture, Error, Outcome, Permit, PermitId, Request, SkipReason, Status};
use serde_json::Value;

use crate::answers::{self, Assembler};
use crate::cache::{self, Entry};
use crate::config::Api;
use crate::ledger::{self, Line, SharedTally};
use crate::metrics::{
    AttemptLabels, CacheLabels, CapabilityKindLabels, CapabilityLabels, LaneLabels, RequestLabels, TokenLabels,
    provider as plabel,
};
use crate::relay::{self, Relay};
use crate::reply::{Domain, Failure, json_response};
use crate::sse;
use crate::state::State;
use crate::translate::{self, Usage};
use crate::upstream::{Endpoint, NoResponse, signal_headers};

/// Largest upstream error body read (the rest is dropped).
const MAX_ERROR_BODY: usize = 1 << 20;
/// Largest successful (non-streaming) answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Largest single SSE event accepted from an upstream.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// A parsed client request, ready for the attempt loop.
#[derive(Debug)]
pub struct Call {
    /// The API the client speaks.
    pub client_api: Api,
    /// What it asks for.
    pub endpoint: Endpoint,
    /// The body as sent.
    pub raw: Bytes,
    /// The body, parsed.
    pub body: Value,
    /// `stream: true`.
    pub stream: bool,
    /// An OpenAI client asked for `stream_options.include_usage`.
    pub client_wants_usage: bool,
    /// The capability.
    pub capability: String,
    /// Providers never to use (a pinned provider excludes the others; embeddings exclude
    /// non-OpenAI upstreams).
    pub exclude: Vec<String>,
    /// The lane (`None`: the engine's default).
    pub lane: Option<String>,
    /// The wait budget, ms.
    pub timeout_ms: u64,
    /// Input token estimate.
    pub input_tokens: u64,
    /// Output token estimate.
    pub output_tokens: u64,
    /// The request id.
    pub request_id: String,
    /// The virtual key's name (`None`: no keys configured).
    pub key: Option<String>,
    /// When the gateway received it.
    pub started: Instant,
    /// What it does with the cache (`None`: the capability's cache is off).
    pub cache: Option<crate::cache::Plan>,
    /// The capability's cache and degraded-answer settings.
    pub settings: crate::degraded::CapabilitySettings,
    /// A degraded answer may replace a refusal (the capability's and the key's settings).
    pub degraded: bool,
}

/// Runs `call` to its response.
pub async fn run(state: Arc<State>, call: Call) -> Response<Body> {
    let plan = call.cache.as_ref();
    let mut line = Line::new(
        &state,
        call.started,
        &call.request_id,
        call.key.as_deref(),
        &call.capability,
    );
    if let (Some(l), Some(p)) = (line.as_mut(), plan) {
        l.record.cache = p.miss_label().to_string();
    }
    let mut run = Run {
        waited: Duration::ZERO,
        upstream: Duration::ZERO,
        attempts: 0,
        line,
    };
    // A fresh entry answers at once: no permit, no key budget, no provider.
    let hit = match plan.filter(|p| p.read) {
        Some(p) => {
            state
                .cache
                .get(&call.capability, &call.settings.cache, &p.key(&call.body))
                .await
        }
        None => None,
    };
    let now = cache::now_ms();
    let (response, provider, domain) = match hit.filter(|e| e.fresh(now)) {
        Some(entry) => {
            count_cache(&state, &call, "hit");
            count_saved(&state, &call, &entry);
            (cached(&call, &entry, "hit", now), "cache".to_string(), Domain::Ok)
        }
        None => match attempts(&state, &call, &mut run).await {
            Ok((mut r, provider)) => {
                if let Some(l) = run.line.as_mut() {
                    l.record.provider = provider.clone();
                }
                if let Some(p) = plan {
                    count_cache(&state, &call, p.miss_label());
                    put(r.headers_mut(), X_RATEWISE_CACHE, p.miss_label());
                }
                (r, provider, Domain::Ok)
            }
            Err(f) => {
                let provider = f.provider.clone().unwrap_or_else(|| "-".into());
                let domain = f.failure.domain;
                let degraded = if f.degradable && call.degraded {
                    degraded(&state, &call).await
                } else {
                    None
                };
                match degraded {
                    Some(r) => (r, "-".to_string(), domain),
                    None => {
                        let mut r = f.response(call.client_api);
                        if let Some(p) = plan {
                            count_cache(&state, &call, p.miss_label());
                            put(r.headers_mut(), X_RATEWISE_CACHE, p.miss_label());
                        }
                        (r, provider, domain)
                    }
                }
            }
        },
    };
    let mut response = response;
    let overhead = call.started.elapsed().saturating_sub(run.waited + run.upstream);
    state.metrics.overhead.observe(overhead.as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            capability: call.capability.clone(),
            provider: provider.clone(),
            status: response.status().as_u16().to_string(),
            domain: domain.as_str().into(),
        })
        .inc();
    if let Some(mut l) = run.line.take() {
        // Not a live stream (that one writes its line when it ends): written now.
        l.answered(response.status().as_u16(), domain.as_str());
        l.record.attempts = run.attempts;
        let h = response.headers();
        let text = |name: &HeaderName| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        // The cache's verdict as the client saw it; a static answer carries none: the lookup's
        // (`miss`, `bypass`), set when the line was made, stands.
        let cache = text(&X_RATEWISE_CACHE);
        if !cache.is_empty() {
            l.record.cache = cache;
        }
        l.record.degraded = text(&X_RATEWISE_DEGRADED);
        if !l.record.degraded.is_empty() {
            // No deployment answered: no provider, no model (the domain stays the failure's).
            l.tally.lock().model.clear();
        } else if provider != "-" && provider != "cache" {
            l.record.provider = provider.clone();
        }
    }
    let h = response.headers_mut();
    put(h, X_REQUEST_ID, &call.request_id);
    put(h, X_RATEWISE_ATTEMPTS, &run.attempts.to_string());
    put(h, X_RATEWISE_OVERHEAD_US, &overhead.as_micros().to_string());
    // One line per request at debug (an info line per request costs ~35 µs of the gateway's
    // own time on this machine class: bench/README.md); warnings and errors are always logged.
    tracing::debug!(
        request_id = %call.request_id,
        capability = %call.capability,
        provider = %provider,
        status = response.status().as_u16(),
        attempts = run.attempts,
        latency_ms = call.started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Where a fresh answer is stored: what [`Call`] says about it, owned (a stream stores it when
/// it ends, after the call's other parts are gone).
struct StoreTarget {
    client_api: Api,
    capability: String,
    settings: crate::cache::CacheSettings,
    key: [u8; 32],
    fresh_ms: u64,
    keep_ms: u64,
}

impl StoreTarget {
    /// `None`: the call's answer is not stored.
    fn of(call: &Call) -> Option<StoreTarget> {
        let plan = call.cache.as_ref()?;
        Some(StoreTarget {
            client_api: call.client_api,
            capability: call.capability.clone(),
            settings: call.settings.cache.clone(),
            fresh_ms: plan.store_ttl_ms?,
            key: plan.key(&call.body),
            keep_ms: plan.keep_ms,
        })
    }

    /// Stores a whole answer (in the client's shape) when it may be stored.
    fn put(&self, state: &State, mut answer: Value, usage: Option<Usage>, cost: Option<f64>) {
        if !answers::storable(self.client_api, &answer) {
            return;
        }
        answers::zero_usage(self.client_api, &mut answer);
        let u = usage.unwrap_or_default();
        let entry = Entry {
            body: Bytes::from(answer.to_string()),
            stored_ms: cache::now_ms(),
            fresh_ms: self.fresh_ms,
            keep_ms: self.keep_ms,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost_usd: cost.unwrap_or(0.0),
        };
        state.cache.put(&self.capability, &self.settings, self.key, entry);
        state
            .metrics
            .cache
            .get_or_create(&CacheLabels {
                capability: self.capability.clone(),
                result: "stored".into(),
            })
            .inc();
    }
}

fn count_cache(state: &State, call: &Call, result: &str) {
    state
        .metrics
        .cache
        .get_or_create(&CacheLabels {
            capability: call.capability.clone(),
            result: result.into(),
        })
        .inc();
}

/// What a hit saved: the tokens and the cost of the call that stored it.
fn count_saved(state: &State, call: &Call, e: &Entry) {
    for (kind, n) in [("input", e.input_tokens), ("output", e.output_tokens)] {
        state
            .metrics
            .cache_saved_tokens
            .get_or_create(&CapabilityKindLabels {
                capability: call.capability.clone(),
                kind: kind.into(),
            })
            .inc_by(n);
    }
    state
        .metrics
        .cache_saved_usd
        .get_or_create(&CapabilityLabels {
            capability: call.capability.clone(),
        })
        .inc_by(e.cost_usd);
}

/// A whole answer (in the client's shape) as the client asked for it: JSON, or replayed as a
/// stream.
fn answer_response(call: &Call, body: Bytes) -> Response<Body> {
    if call.stream {
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let frames = answers::replay(call.client_api, &value, call.client_wants_usage);
        let mut r = Response::new(Body::from_stream(futures_util::stream::iter(
            frames.into_iter().map(Ok::<_, std::io::Error>),
        )));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else {
        let mut r = Response::new(Body::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}

/// A stored entry as the answer (`label`: `hit` or `stale`).
fn cached(call: &Call, e: &Entry, label: &'static str, now_ms: u64) -> Response<Body> {
    let mut r = answer_response(call, e.body.clone());
    let h = r.headers_mut();
    h.insert(X_RATEWISE_CACHE, HeaderValue::from_static(label));
    put(h, AGE, &e.age_s(now_ms).to_string());
    if !call.stream {
        h.insert(X_RATEWISE_COST_USD, HeaderValue::from_static("0.000000000"));
    }
    r
}

/// The degraded answer of a call no deployment could take: a kept entry, else the static
/// answer (`None`: neither; the refusal stands).
async fn degraded(state: &State, call: &Call) -> Option<Response<Body>> {
    let now = cache::now_ms();
    if let Some(plan) = call.cache.as_ref().filter(|p| !p.bypassed)
        && let Some(e) = state
            .cache
            .get(&call.capability, &call.settings.cache, &plan.key(&call.body))
            .await
    {
        count_cache(state, call, "stale");
        count_degraded(state, call, "stale");
        let mut r = cached(call, &e, "stale", now);
        r.headers_mut()
            .insert(X_RATEWISE_DEGRADED, HeaderValue::from_static("stale"));
        return Some(r);
    }
    let text = call
        .settings
        .degraded
        .static_text(&answers::last_user_text(&call.body))?;
    let model = call.body.get("model").and_then(Value::as_str).unwrap_or("");
    let answer = answers::static_answer(call.client_api, text, model, &call.request_id, relay::now_s());
    count_degraded(state, call, "static");
    let mut r = answer_response(call, Bytes::from(answer.to_string()));
    r.headers_mut()
        .insert(X_RATEWISE_DEGRADED, HeaderValue::from_static("static"));
    Some(r)
}

fn count_degraded(state: &State, call: &Call, kind: &str) {
    tracing::warn!(request_id = %call.request_id, capability = %call.capability, kind, "no provider could answer: a degraded answer");
    state
        .metrics
        .degraded
        .get_or_create(&CapabilityKindLabels {
            capability: call.capability.clone(),
            kind: kind.into(),
        })
        .inc();
}

fn put(h: &mut axum::http::HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// The headers of a relayed answer: content type (and cache control), provider, model, cost,
/// cache, request id, attempts, overhead.
const ANSWER_HEADERS: usize = 9;

// The gateway's own headers, made once (a name given as a string is parsed on every insert).
const X_RATEWISE_CACHE: HeaderName = HeaderName::from_static("x-ratewise-cache");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_RATEWISE_ATTEMPTS: HeaderName = HeaderName::from_static("x-ratewise-attempts");
const X_RATEWISE_OVERHEAD_US: HeaderName = HeaderName::from_static("x-ratewise-overhead-us");
const X_RATEWISE_PROVIDER: HeaderName = HeaderName::from_static("x-ratewise-provider");
const X_RATEWISE_MODEL: HeaderName = HeaderName::from_static("x-ratewise-model");
const X_RATEWISE_COST_USD: HeaderName = HeaderName::from_static("x-ratewise-cost-usd");
const X_RATEWISE_DEGRADED: HeaderName = HeaderName::from_static("x-ratewise-degraded");

/// Time accounting of one call, and its ledger line (taken by a live stream, which writes it
/// when it ends).
struct Run {
    waited: Duration,
    upstream: Duration,
    attempts: u32,
    line: Option<Line>,
}

impl Run {
    fn tally(&self) -> Option<SharedTally> {
        self.line.as_ref().map(|l| l.tally.clone())
    }
}

/// Moves on from `provider` to the next decision (an availability event).
fn fall_back(state: &State, tried: &mut Vec<String>, provider: String) {
    ledger::event(state, &provider, ratewise_ledger::EventKind::Fallback, None);
    tried.push(provider);
}

/// A failure with the provider it concerns.
struct Failed {
    failure: Failure,
    provider: Option<String>,
    /// An upstream error to forward as it came (status, body in the client's shape).
    upstream: Option<(StatusCode, Value)>,
    /// The upstream's headers worth passing on with it (`retry-after`, `retry-after-ms`).
    headers: Vec<(String, String)>,
    /// No deployment could answer (quota, health, provider failures): a degraded answer may
    /// replace it. Not a caller's error, a key's budget or the gateway's credentials.
    degradable: bool,
}

impl Failed {
    fn response(self, api: Api) -> Response<Body> {
        let mut r = match self.upstream {
            Some((status, body)) => json_response(status, &body),
            None => self.failure.response(api),
        };
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                r.headers_mut().insert(n, v);
            }
        }
        if let Some(p) = &self.provider {
            put(r.headers_mut(), X_RATEWISE_PROVIDER, p);
        }
        r
    }
}

impl Failed {
    /// A failure at `provider` answered by the gateway itself (status, kind, message).
    fn at(provider: &str, status: StatusCode, kind: &'static str, message: String) -> Failed {
        Failed {
            failure: Failure::new(status, kind, message, Domain::Provider),
            provider: Some(provider.to_string()),
            upstream: None,
            headers: Vec::new(),
            degradable: true,
        }
    }
}

impl From<Failure> for Failed {
    fn from(failure: Failure) -> Failed {
        Failed {
            failure,
            provider: None,
            upstream: None,
            headers: Vec::new(),
            degradable: false,
        }
    }
}

/// The engine found no deployment for the call: degradable unless it can never fit.
fn refused(e: &Error) -> Failed {
    let failure = Failure::from_engine(e);
    let degradable = match e {
        Error::NoAvailableProvider { .. } => failure.status != StatusCode::BAD_REQUEST,
        Error::StoreUnavailable(_) => true,
        _ => false,
    };
    Failed {
        degradable,
        ..Failed::from(failure)
    }
}

async fn attempts(state: &Arc<State>, call: &Call, run: &mut Run) -> Result<(Response<Body>, String), Failed> {
    let live = state.live.load_full();
    let max_attempts = live.gateway.max_attempts;
    let deadline = Instant::now() + Duration::from_millis(call.timeout_ms);
    let mut tried: Vec<String> = Vec::new();
    let mut last: Option<Failed> = None;
    if let (Some(budgets), Some(key)) = (&state.budgets, &call.key) {
        let reachable: Vec<&str> = live
            .capabilities
            .get(&call.capability)
            .into_iter()
            .flatten()
            .filter(|p| !call.exclude.contains(p))
            .map(String::as_str)
            .collect();
        if let Err(e) = state.blocking(|| budgets.check(key, &reachable, call.input_tokens, call.output_tokens)) {
            return Err(over_budget(key, &e).into());
        }
    }
    loop {
        let waited_from = Instant::now();
        let permit = acquire(state, call, &tried, deadline).await;
        let waited = waited_from.elapsed();
        run.waited += waited;
        state
            .metrics
            .wait
            .get_or_create(&LaneLabels {
                lane: call.lane.clone().unwrap_or_else(|| "default".into()),
            })
            .observe(waited.as_secs_f64());
        let permit = match permit {
            Ok(p) => p,
            // Out of time after a failure: the provider's own answer says most.
            Err(e) => return Err(last.unwrap_or_else(|| refused(&e))),
        };
        run.attempts += 1;
        if let Some(l) = run.line.as_mut() {
            // Kept current: a client that leaves mid-call drops the line with it.
            l.record.attempts = run.attempts;
        }
        let provider = permit.provider().to_string();
        let mut settle = Settle::new(state.clone(), &permit, run.tally());
        if let (Some(budgets), Some(key)) = (&state.budgets, &call.key) {
            match state.blocking(|| budgets.acquire(key, &provider, call.input_tokens, call.output_tokens)) {
                Ok(id) => settle.budget = id,
                Err(e) => {
                    settle.cancel();
                    return Err(over_budget(key, &e).into());
                }
            }
        }
        let Some(upstream) = live.upstreams.get(&provider).cloned() else {
            settle.cancel();
            return Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                format!("ratewise: provider '{provider}' has no upstream"),
                Domain::Gateway,
            )
            .into());
        };
        let body = match upstream_body(call, upstream.api, permit.model(), live.gateway.default_max_tokens) {
            Ok(b) => b,
            Err(f) => {
                settle.cancel();
                return Err(f.into());
            }
        };
        let retry_left = run.attempts < max_attempts;
        let sent_at = Instant::now();
        settle.sent = true;
        // Busy polling: the answer may come back within the window.
        state.kick();
        let sent = state.client.send(&upstream, call.endpoint, body).await;
        let head = sent_at.elapsed();
        run.upstream += head;
        state
            .metrics
            .upstream_latency
            .get_or_create(&plabel(&provider))
            .observe(head.as_secs_f64());
        let resp = match sent {
            Ok(r) => r,
            Err(why) => {
                let outcome = why.status();
                settle.attempt(outcome);
                let failure = no_response(why, &provider);
                if retry_left && Instant::now() < deadline {
                    fall_back(state, &mut tried, provider);
                    last = Some(failure);
                    continue;
                }
                return Err(failure);
            }
        };
        let status = resp.status();
        settle.headers = signal_headers(resp.headers());
        if !status.is_success() {
            let code = status.as_u16();
            // Known from the status line already: what a client going away now settles as.
            settle.dropped = Status::from_http(i64::from(code)).ok();
            let passed_on: Vec<(String, String)> = settle
                .headers
                .iter()
                .filter(|(n, _)| n == "retry-after" || n == "retry-after-ms")
                .cloned()
                .collect();
            // Over the cap (or cut): answered with the gateway's own message instead.
            let text = read_answer(resp, MAX_ERROR_BODY).await.unwrap_or_default();
            run.upstream += sent_at.elapsed().saturating_sub(head);
            let parsed: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
            let kind = error_type(&parsed);
            let outcome = Status::from_http_with_error_type(i64::from(code), kind).unwrap_or(Status::ServerError);
            settle.attempt(Some(outcome));
            // The provider refused the gateway's own credentials: not the client's fault, and
            // nothing of the upstream's answer (which may quote the key) goes back.
            let credentials = code == 401 || code == 403;
            let (status, body) = if credentials {
                let f = Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    format!("ratewise: the provider '{provider}' refused the gateway's credentials ({code})"),
                    Domain::Provider,
                );
                (StatusCode::BAD_GATEWAY, f.body(call.client_api))
            } else if parsed.is_null() {
                let f = Failure::new(
                    status,
                    translate::anthropic_type_for_status(code),
                    format!("ratewise: the provider answered {code}"),
                    Domain::Provider,
                );
                (status, f.body(call.client_api))
            } else {
                (
                    status,
                    relay::error_body_for(call.client_api, upstream.api, code, &parsed),
                )
            };
            let failed = Failed {
                failure: Failure::new(
                    status,
                    "api_error",
                    format!("upstream answered {code}"),
                    Domain::Provider,
                ),
                provider: Some(provider.clone()),
                upstream: Some((status, body)),
                headers: if credentials { Vec::new() } else { passed_on },
                degradable: outcome.is_retryable() && !credentials,
            };
            if outcome.is_retryable() && retry_left && Instant::now() < deadline {
                fall_back(state, &mut tried, provider);
                last = Some(failed);
                continue;
            }
            return Err(failed);
        }
        let answered = if call.stream {
            stream(state, call, &permit, &upstream, resp, settle, run).await
        } else {
            json_answer(state, call, &permit, upstream.api, resp, settle, run, sent_at).await
        };
        match answered {
            Ok(r) => return Ok((r, provider)),
            Err((failure, retry)) => {
                if retry && retry_left && Instant::now() < deadline {
                    fall_back(state, &mut tried, provider);
                    last = Some(*failure);
                    continue;
                }
                return Err(*failure);
            }
        }
    }
}

/// A key over its budget: 429 with the budget's predicted wait (400 if it can never fit).
fn over_budget(key: &str, e: &Error) -> Failure {
    let mut f = Failure::from_engine(e);
    f.message = format!("ratewise: the key '{key}' is over its budget ({})", f.message);
    f
}

fn no_response(why: NoResponse, provider: &str) -> Failed {
    let (status, kind, what) = match why {
        NoResponse::NotSent => (
            StatusCode::BAD_GATEWAY,
            "api_error",
            "could not connect to the provider",
        ),
        NoResponse::Timeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            "the provider did not answer in time",
        ),
        NoResponse::Lost => (
            StatusCode::BAD_GATEWAY,
            "api_error",
            "the connection to the provider was lost",
        ),
    };
    Failed::at(provider, status, kind, format!("ratewise: {what} ({provider})"))
}

/// The error `type` (or OpenAI `code`) of an upstream error body.
fn error_type(body: &Value) -> Option<&str> {
    body.pointer("/error/code")
        .and_then(Value::as_str)
        .filter(|c| *c == "insufficient_quota")
        .or_else(|| body.pointer("/error/type").and_then(Value::as_str))
}

/// A permit: at once when one is free (another provider than those tried), else after waiting
/// in the lane until the deadline (any provider of the capability, holds included).
async fn acquire(state: &State, call: &Call, tried: &[String], deadline: Instant) -> Result<Permit, Error> {
    let engine = &state.engine;
    let mut excluded: Vec<&str> = call.exclude.iter().map(String::as_str).collect();
    let pinned = excluded.clone();
    excluded.extend(tried.iter().map(String::as_str));
    let mut request = Request::new().tokens(call.input_tokens, call.output_tokens);
    if let Some(lane) = &call.lane {
        request = request.lane(lane);
    }
    let first = state.blocking(|| engine.acquire(&call.capability, &request.exclude(&excluded)));
    let mut refused = match first {
        Ok(p) => return Ok(p),
        Err(e @ Error::NoAvailableProvider { .. }) => e,
        Err(e) => return Err(e),
    };
    if !tried.is_empty() {
        // The providers not tried yet cannot take it now: the ones tried may (their hold may be
        // over), and their reasons tell whether waiting can help.
        refused = match state.blocking(|| engine.acquire(&call.capability, &request.exclude(&pinned))) {
            Ok(p) => return Ok(p),
            Err(e @ Error::NoAvailableProvider { .. }) => e,
            Err(e) => return Err(e),
        };
    }
    let remaining = deadline.saturating_duration_since(Instant::now()).as_millis() as i64;
    // A request no provider can ever take, or none before its deadline, is refused now:
    // waiting would only block the waiters ranked below it (docs/design.md §8) until then.
    if remaining <= 0 || never_fits(&refused) || unhealthy_past(&refused, remaining) {
        return Err(refused);
    }
    let future = state.blocking(|| engine.acquire_async(&call.capability, &request.exclude(&pinned), remaining))?;
    Waiting {
        state,
        future: Some(future),
    }
    .await
}

/// Every provider the request may use can never fit it (or none is left).
fn never_fits(refused: &Error) -> bool {
    let Error::NoAvailableProvider { skipped, .. } = refused else {
        return false;
    };
    skipped
        .iter()
        .filter(|s| !matches!(s.reason, SkipReason::Excluded | SkipReason::Unregistered))
        .all(|s| matches!(s.reason, SkipReason::QuotaTooLarge(_)))
}

/// Every provider the request may use is held or has its circuit open until after `remaining`
/// ms. Nothing ends a hold or an open circuit early (a circuit half-opens only at the end of its
/// cooldown), so the wait cannot succeed. Quotas are not counted: a permit in flight that
/// settles below its estimate gives tokens back before the predicted time.
fn unhealthy_past(refused: &Error, remaining: i64) -> bool {
    let Error::NoAvailableProvider {
        skipped,
        retry_after_ms: Some(wait),
    } = refused
    else {
        return false;
    };
    let mut considered = skipped
        .iter()
        .filter(|s| !matches!(s.reason, SkipReason::Excluded | SkipReason::Unregistered))
        .peekable();
    *wait > remaining
        && considered.peek().is_some()
        && considered.all(|s| matches!(s.reason, SkipReason::Held | SkipReason::CircuitOpen))
}

/// A wait for a permit whose withdrawal, when the client goes away, may be a store round
/// trip: it is dropped where blocking is allowed.
struct Waiting<'a> {
    state: &'a State,
    future: Option<AcquireFuture>,
}

impl std::future::Future for Waiting<'_> {
    type Output = Result<Permit, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match self.future.as_mut() {
            Some(f) => {
                let polled = Pin::new(f).poll(cx);
                if polled.is_ready() {
                    self.future = None;
                }
                polled
            }
            None => std::task::Poll::Ready(Err(Error::InvalidArgument("polled after completion".into()))),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.future.take() {
            self.state.blocking(|| drop(f));
        }
    }
}

/// The body to send upstream: the client's bytes when nothing must change, else the body with
/// the deployment's model (and, for OpenAI streams, `include_usage`), or its translation.
fn upstream_body(call: &Call, upstream: Api, model: &str, default_max_tokens: u64) -> Result<Bytes, Failure> {
    let translated = match (call.client_api, upstream) {
        (Api::OpenAi, Api::Anthropic) => Some(translate::openai_to_anthropic_request(
            &call.body,
            model,
            default_max_tokens,
        )),
        (Api::Anthropic, Api::OpenAi) => Some(translate::anthropic_to_openai_request(&call.body, model)),
        _ => None,
    };
    if let Some(t) = translated {
        let body = t.map_err(|e| Failure::invalid(format!("cannot translate the request: {e}")))?;
        return Ok(Bytes::from(body.to_string()));
    }
    let same_model = call.body.get("model").and_then(Value::as_str) == Some(model);
    let needs_usage = call.stream && upstream == Api::OpenAi && !call.client_wants_usage;
    if same_model && !needs_usage {
        return Ok(call.raw.clone());
    }
    if !needs_usage && let Some(map) = call.body.as_object().filter(|m| m.contains_key("model")) {
        return Ok(Bytes::from(translate::with_model(map, model)));
    }
    let mut body = call.body.clone();
    if let Some(map) = body.as_object_mut() {
        map.insert("model".into(), Value::String(model.into()));
    }
    if call.stream && upstream == Api::OpenAi {
        translate::ensure_openai_stream_usage(&mut body);
    }
    Ok(Bytes::from(body.to_string()))
}

/// A whole answer, at most `limit` bytes; `Err` says what went wrong.
async fn read_answer(resp: crate::upstream::Response, limit: usize) -> Result<Bytes, String> {
    let mut out = bytes::BytesMut::new();
    let mut body = std::pin::pin!(resp.bytes_stream());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("was cut ({e})"))?;
        if out.len() + chunk.len() > limit {
            return Err(format!("is over {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

type Answered = Result<Response<Body>, (Box<Failed>, bool)>;

#[allow(clippy::too_many_arguments)]
async fn json_answer(
    state: &Arc<State>,
    call: &Call,
    permit: &Permit,
    upstream: Api,
    resp: crate::upstream::Response,
    mut settle: Settle,
    run: &mut Run,
    sent_at: Instant,
) -> Answered {
    let bytes = read_answer(resp, MAX_ANSWER_BYTES).await;
    run.upstream = run.upstream.max(sent_at.elapsed());
    let provider = permit.provider().to_string();
    let cut = |settle: &mut Settle, what: String| {
        settle.attempt(Some(Status::Interrupted));
        let failed = Failed::at(&provider, StatusCode::BAD_GATEWAY, "api_error", what);
        // Nothing reached the client yet: another attempt may answer.
        Err((Box::new(failed), true))
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(what) => return cut(&mut settle, format!("ratewise: the provider's answer {what}")),
    };
    let store = StoreTarget::of(call);
    // The whole answer is built only to translate or store it; forwarded as it came, only its
    // usage is (the rest is checked as JSON, not built).
    let whole = store.is_some() || call.client_api != upstream;
    let read = if whole {
        serde_json::from_slice::<Value>(&bytes).map(|v| {
            let u = v.get("usage").cloned();
            (v, u)
        })
    } else {
        translate::answer_usage(&bytes).map(|u| (Value::Null, u))
    };
    let Ok((parsed, usage)) = read else {
        return cut(&mut settle, "ratewise: the provider's answer is not JSON".into());
    };
    let usage = usage.as_ref().and_then(|u| match upstream {
        Api::OpenAi => translate::openai_usage(u),
        Api::Anthropic => translate::anthropic_usage(u),
    });
    let client_model = call.body.get("model").and_then(Value::as_str).unwrap_or("");
    let out = match (call.client_api, upstream) {
        (Api::OpenAi, Api::Anthropic) => translate::anthropic_to_openai_response(&parsed, client_model, relay::now_s()),
        (Api::Anthropic, Api::OpenAi) => translate::openai_to_anthropic_response(&parsed, client_model),
        _ => Ok(Value::Null),
    };
    let (body, answer) = match out {
        Ok(Value::Null) => (bytes, parsed),
        Ok(v) => (Bytes::from(v.to_string()), v),
        Err(e) => {
            return cut(
                &mut settle,
                format!("ratewise: cannot translate the provider's answer: {e}"),
            );
        }
    };
    let cost = settle.success(usage);
    if let Some(target) = store {
        target.put(state, answer, usage, cost);
    }
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    // Room for every header the answer gets here and in `run` (no regrowing on the way).
    h.reserve(ANSWER_HEADERS);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    put(h, X_RATEWISE_PROVIDER, permit.provider());
    put(h, X_RATEWISE_MODEL, permit.model());
    if let Some(usd) = cost {
        put(h, X_RATEWISE_COST_USD, &format!("{usd:.9}"));
    }
    Ok(r)
}

type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, crate::upstream::BodyError>> + Send>>;

/// A streamed answer: the first events are read (and may still fail over) before the
/// response head goes out; then the relay runs as the client reads.
async fn stream(
    state: &Arc<State>,
    call: &Call,
    permit: &Permit,
    upstream: &crate::config::Upstream,
    resp: crate::upstream::Response,
    mut settle: Settle,
    run: &mut Run,
) -> Answered {
    let provider = permit.provider().to_string();
    let client_model = call.body.get("model").and_then(Value::as_str).unwrap_or("").to_string();
    let mut relay = Relay::new(
        call.client_api,
        upstream.api,
        call.client_wants_usage,
        &call.request_id,
        &client_model,
    );
    let mut body: Upstream = Box::pin(resp.bytes_stream());
    let mut reader = sse::Reader::new(MAX_EVENT_BYTES);
    let mut first: VecDeque<Bytes> = VecDeque::new();
    let t0 = Instant::now();
    let fail = |settle: &mut Settle, status: Status, what: String| {
        settle.attempt(Some(status));
        // A cut before anything reached the client may be answered elsewhere; an error event
        // is retried as its status says (an invalid request is not).
        let retry = status == Status::Interrupted || status.is_retryable();
        let code = if status == Status::ClientError {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::BAD_GATEWAY
        };
        let failed = Failed {
            degradable: retry,
            ..Failed::at(&provider, code, "api_error", what)
        };
        Err((Box::new(failed), retry))
    };
    // Until something can go to the client, a failure may still be retried elsewhere.
    while first.is_empty() {
        match body.next().await {
            Some(Ok(chunk)) => {
                let events = match reader.push(&chunk) {
                    Ok(e) => e,
                    Err(_) => {
                        return fail(
                            &mut settle,
                            Status::Interrupted,
                            "ratewise: an upstream event is too large".into(),
                        );
                    }
                };
                for e in &events {
                    match relay.event(e) {
                        Ok(out) => first.extend(out),
                        Err(what) => return fail(&mut settle, Status::Interrupted, format!("ratewise: {what}")),
                    }
                    if let Some(err) = relay.upstream_error() {
                        let status = relay::event_error_status(err);
                        return fail(&mut settle, status, "ratewise: the provider's stream failed".into());
                    }
                }
            }
            Some(Err(e)) => {
                let status = if e.is_timeout() {
                    Status::Timeout
                } else {
                    Status::Interrupted
                };
                return fail(
                    &mut settle,
                    status,
                    format!("ratewise: the provider's stream was cut ({e})"),
                );
            }
            None => {
                first.extend(relay.end());
                if first.is_empty() {
                    return fail(
                        &mut settle,
                        Status::Interrupted,
                        "ratewise: the provider's stream was empty".into(),
                    );
                }
            }
        }
    }
    run.upstream += t0.elapsed();
    let ttft = call.started.elapsed();
    state
        .metrics
        .ttft
        .get_or_create(&plabel(&provider))
        .observe(ttft.as_secs_f64());
    let mut line = run.line.take();
    if let Some(l) = line.as_mut() {
        l.tally.lock().ttft_ms = Some(ttft.as_millis() as u64);
        l.record.provider = provider.clone();
        l.record.attempts = run.attempts;
        l.answered(200, "ok");
    }
    let keep = StoreTarget::of(call).map(|target| {
        let mut assembler = Assembler::new(call.client_api);
        for f in &first {
            assembler.push(f);
        }
        Keep {
            state: state.clone(),
            call: target,
            assembler,
        }
    });
    let pump = Pump {
        body: Some(body),
        reader,
        relay,
        settle,
        pending: first,
        client_api: call.client_api,
        over: false,
        keep,
        cost: None,
        line,
    };
    let stream = futures_util::stream::unfold(pump, |mut p| async move {
        p.next().await.map(|b| (Ok::<_, std::io::Error>(b), p))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().reserve(ANSWER_HEADERS);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    put(h, X_RATEWISE_PROVIDER, permit.provider());
    put(h, X_RATEWISE_MODEL, permit.model());
    Ok(r)
}

/// The relay of a stream whose head went out. Dropped early (the client went away), it drops
/// the upstream body (closing that connection) and its guard settles `interrupted`.
struct Pump {
    body: Option<Upstream>,
    reader: sse::Reader,
    relay: Relay,
    settle: Settle,
    pending: VecDeque<Bytes>,
    client_api: Api,
    over: bool,
    /// The answer being assembled for the cache (`None`: not stored).
    keep: Option<Keep>,
    /// The settled cost, USD.
    cost: Option<f64>,
    /// The call's ledger line, written when the stream ends. Last: dropped after `settle`, so
    /// that a client leaving settles (and tallies) before the line is written.
    line: Option<Line>,
}

/// A streamed answer on its way into the cache.
struct Keep {
    state: Arc<State>,
    call: StoreTarget,
    assembler: Assembler,
}

impl Pump {
    /// Frames the relay produced: queued for the client, and seen by the assembler.
    fn queue(&mut self, frames: Vec<Bytes>) {
        if let Some(k) = self.keep.as_mut() {
            for f in &frames {
                k.assembler.push(f);
            }
        }
        self.pending.extend(frames);
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Some(b);
            }
            if self.over {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                self.over = true;
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => match self.reader.push(&chunk) {
                    Ok(events) => {
                        for e in &events {
                            match self.relay.event(e) {
                                Ok(out) => self.queue(out),
                                Err(what) => {
                                    self.break_off(&what);
                                    break;
                                }
                            }
                        }
                        // Settled as soon as the answer is complete: what follows (the rest of
                        // the bytes, a cut, the client leaving) cannot undo it.
                        if self.relay.finished() && self.settle.is_open() {
                            self.cost = self.settle.success(self.relay.usage());
                        }
                    }
                    Err(_) => self.break_off("an upstream event is too large"),
                },
                Some(Err(_)) => self.break_off("the provider's stream was cut"),
                None => {
                    let end = self.relay.end();
                    self.queue(end);
                    self.body = None;
                    let usage = self.relay.usage();
                    if self.relay.finished() {
                        if self.settle.is_open() {
                            self.cost = self.settle.success(usage);
                        }
                        // Whole and ended normally: the only stream that is stored.
                        if let Some(k) = self.keep.take()
                            && let Some(answer) = k.assembler.finish()
                        {
                            k.call.put(&k.state, answer, usage, self.cost);
                        }
                    } else {
                        if self.relay.upstream_error().is_none() {
                            self.pending.push_back(
                                self.relay
                                    .broken(self.client_api, "ratewise: the provider's stream ended early"),
                            );
                        }
                        self.settle.usage = usage;
                        self.settle.attempt(Some(Status::Interrupted));
                    }
                    self.over = true;
                }
            }
        }
    }

    /// The upstream broke mid-stream: tell the client, settle `interrupted` with what was seen.
    fn break_off(&mut self, what: &str) {
        self.body = None;
        if self.relay.finished() {
            // A cut after the end: the client has its whole answer.
            self.pending.extend(self.relay.end());
            self.over = true;
            return;
        }
        self.pending
            .push_back(self.relay.broken(self.client_api, &format!("ratewise: {what}")));
        self.settle.usage = self.relay.usage();
        self.settle.attempt(Some(Status::Interrupted));
        self.over = true;
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if !self.over {
            // The client went away: keep what the relay saw for the guard's settlement.
            self.settle.usage = self.relay.usage();
        }
        if let Some(l) = self.line.as_mut() {
            // The client had a 200 head; the domain says how the stream ended. A whole answer is
            // `ok` even when the client closed before the upstream's body ended (the SDKs close
            // at `[DONE]`).
            if self.relay.finished() {
                l.record.domain = "ok".into();
            } else if !self.over {
                l.record.domain = "caller_closed".into();
            } else {
                l.record.domain = Domain::Provider.as_str().into();
            }
        }
    }
}

/// The one owner of a permit: settled exactly once, by [`Settle::attempt`],
/// [`Settle::success`] or, when dropped, as `interrupted` (sent) or cancelled (not sent).
pub struct Settle {
    state: Arc<State>,
    id: Option<PermitId>,
    provider: String,
    started: Instant,
    /// The request left for the provider.
    pub sent: bool,
    /// The usage seen so far.
    pub usage: Option<Usage>,
    /// The response's rate-limit headers.
    pub headers: Vec<(String, String)>,
    /// The virtual key's budget permit, settled with the call.
    pub budget: Option<PermitId>,
    /// What a drop settles as once the outcome is known (else `interrupted` when sent).
    pub dropped: Option<Status>,
    /// The call's ledger tally (`None`: the ledger is off).
    tally: Option<SharedTally>,
}

impl Settle {
    fn new(state: Arc<State>, permit: &Permit, tally: Option<SharedTally>) -> Settle {
        if let Some(t) = &tally {
            t.lock().model = permit.model().to_string();
        }
        Settle {
            tally,
            state,
            id: Some(permit.id),
            provider: permit.provider().to_string(),
            started: Instant::now(),
            sent: false,
            usage: None,
            headers: Vec::new(),
            budget: None,
            dropped: None,
        }
    }

    /// Not settled yet.
    fn is_open(&self) -> bool {
        self.id.is_some()
    }

    /// Refunds a permit whose call was never sent.
    fn cancel(&mut self) {
        self.attempt(None);
    }

    /// Settles with `status` (`None`: cancel).
    fn attempt(&mut self, status: Option<Status>) {
        let Some(id) = self.id.take() else { return };
        let headers = std::mem::take(&mut self.headers);
        let state = &self.state;
        let label = status.map_or("cancelled", |s| s.as_str());
        state
            .metrics
            .attempts
            .get_or_create(&AttemptLabels {
                provider: self.provider.clone(),
                outcome: label.into(),
            })
            .inc();
        let result = match status {
            None => state.blocking(|| state.engine.cancel(id)).map(drop),
            Some(status) => {
                let mut outcome = Outcome::new(status);
                outcome.latency_ms = self.started.elapsed().as_millis() as u64;
                outcome.headers = headers;
                if let Some(u) = self
                    .usage
                    .filter(|_| status == Status::Success || status == Status::Interrupted)
                {
                    u.report(&mut outcome);
                    self.count_tokens(u);
                    self.tally_usage(u);
                }
                let watched = state.books.is_some() || state.alerts.as_ref().is_some_and(|a| a.settings.circuit_open);
                let before = if watched {
                    state.engine.circuit(&self.provider).ok()
                } else {
                    None
                };
                let done = state.blocking(|| state.engine.complete(id, &outcome)).map(drop);
                if watched {
                    self.log_events(status, outcome.latency_ms, before);
                }
                done
            }
        };
        if let Err(e) = result {
            tracing::warn!(provider = %self.provider, error = %e, "settling a permit failed");
        }
        if let (Some(b), Some(bid)) = (&state.budgets, self.budget.take()) {
            let usage = self.usage;
            let latency = self.started.elapsed().as_millis() as u64;
            state.blocking(|| b.settle(bid, status, latency, usage));
        }
    }

    /// Adds reported usage, and its cost as the engine counts it, to the ledger's tally.
    fn tally_usage(&self, u: Usage) {
        let Some(t) = &self.tally else { return };
        let cost = self
            .state
            .live
            .load()
            .prices
            .get(&self.provider)
            .map_or(0, |p| p.cost_with_cache(u.tokens()));
        let mut t = t.lock();
        t.input_tokens += u.input_tokens;
        t.output_tokens += u.output_tokens;
        t.cached_tokens += u.cached_input_tokens;
        t.cost_micro_usd = t.cost_micro_usd.saturating_add(cost);
    }

    /// The availability log: the outcome, and the circuit's change if the settlement moved it.
    fn log_events(&self, status: Status, latency_ms: u64, before: Option<ratewise::CircuitState>) {
        use ratewise::CircuitState as C;
        use ratewise_ledger::EventKind as K;
        let state = &self.state;
        if let Some(kind) = ledger::outcome_kind(status) {
            ledger::event(state, &self.provider, kind, Some(Duration::from_millis(latency_ms)));
        }
        let after = state.engine.circuit(&self.provider).ok();
        match (before, after) {
            (Some(b), Some(C::Open)) if b != C::Open => {
                ledger::event(state, &self.provider, K::CircuitOpened, None);
                if let Some(a) = state.alerts.as_ref().filter(|a| a.settings.circuit_open) {
                    a.fire(
                        "circuit_opened",
                        &self.provider,
                        format!(
                            "provider '{}': the circuit opened (last outcome: {})",
                            self.provider,
                            status.as_str()
                        ),
                        serde_json::json!({"provider": self.provider, "last_outcome": status.as_str()}),
                    );
                }
            }
            (Some(C::Open | C::HalfOpen), Some(C::Closed)) => {
                ledger::event(state, &self.provider, K::CircuitClosed, None);
            }
            _ => {}
        }
    }

    /// Settles a finished answer with its usage; returns its cost in USD when priced.
    fn success(&mut self, usage: Option<Usage>) -> Option<f64> {
        self.usage = usage;
        self.attempt(Some(Status::Success));
        let u = usage?;
        let price = self.state.live.load().prices.get(&self.provider).copied()?;
        let usd = price.cost_usd(u.tokens());
        self.state
            .metrics
            .cost_usd
            .get_or_create(&plabel(&self.provider))
            .inc_by(usd);
        Some(usd)
    }

    fn count_tokens(&self, u: Usage) {
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cached_input", u.cached_input_tokens),
            ("cache_write_input", u.cache_write_input_tokens),
        ] {
            self.state
                .metrics
                .tokens
                .get_or_create(&TokenLabels {
                    provider: self.provider.clone(),
                    kind: kind.into(),
                })
                .inc_by(n);
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if self.id.is_some() {
            let status = match (self.dropped, self.sent) {
                (Some(known), _) => Some(known),
                (None, true) => Some(Status::Interrupted),
                (None, false) => None,
            };
            self.attempt(status);
        }
    }
}
