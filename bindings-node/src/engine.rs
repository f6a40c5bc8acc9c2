//! The native layer: free functions on `External` handles, with positional arguments.
//!
//! The public classes (`Engine`, `ManualClock`, `Decision`, `Permit`) are thin TypeScript
//! classes in `src-ts/ratewise.ts` (compiled to `ratewise.js`). napi-rs class methods validate
//! their receiver and class instances register a finalizer on every call (~0.3 µs and ~1.3 µs
//! here, see bench/README.md), and options objects are read field by field; free functions with
//! numbers in a reused `Float64Array` avoid all three. Every decision is still the core's: these functions only convert.

use napi::bindgen_prelude::*;
use ratewise::{Clock, Decision, Dimension, Observation, Outcome, PermitId, Request, Status as CoreStatus};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{IntoJsResult, invalid_argument, to_js};

type EngineHandle = External<Arc<ratewise::Engine>>;
type ClockHandle = External<ratewise::ManualClock>;

/// A number from the arguments array: NaN is "absent"; others must be whole and >= 0.
fn count(env: &Env, name: &str, x: f64) -> Result<Option<u64>> {
    if x.is_nan() {
        return Ok(None);
    }
    if x < 0.0 || x.fract() != 0.0 || !x.is_finite() {
        return Err(invalid_argument(
            env,
            format!("{name} must be a whole number >= 0, got {x}"),
        ));
    }
    Ok(Some(x as u64))
}

fn arg(nums: &[f64], i: usize) -> f64 {
    nums.get(i).copied().unwrap_or(f64::NAN)
}

fn status(env: &Env, value: Either<String, f64>) -> Result<CoreStatus> {
    match value {
        Either::A(name) => CoreStatus::from_str(&name).js(env),
        Either::B(code) if code.fract() == 0.0 && code.is_finite() => CoreStatus::from_http(code as i64).js(env),
        Either::B(code) => Err(invalid_argument(env, format!("HTTP status {code} is not an integer"))),
    }
}

/// Headers as the JS layer hands them over: one string, each name and each value followed by a
/// line break (which neither can hold: the JS layer writes one inside them as a space). One
/// string crosses for a whole response: a string per name and value cost a conversion each.
fn header_pairs(text: Option<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let text = text.unwrap_or_default();
    let mut it = text.split('\n');
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k.to_owned(), v.to_owned()));
    }
    out
}

/// A decision for JS as one string: `[<permit id>:]<provider length>:<provider><model
/// length>:<model><rest>`, the lengths in UTF-16 units (JS string length), `rest` JSON holding the score, breakdown, alternatives and
/// skipped list (parsed by JS only when read). One string is cheaper to hand over than an array. Written directly rather than
/// through `serde_json::Value`, whose maps cost more than the decision itself; f64 `Display` is
/// the shortest text that reads back to the same double.
fn decision(d: &Decision, permit: Option<u64>) -> String {
    use std::fmt::Write;
    let b = &d.breakdown;
    let mut rest = String::with_capacity(200 + 48 * (d.alternatives.len() + d.skipped.len()));
    if let Some(id) = permit {
        let _ = write!(rest, "{id}:");
    }
    let _ = write!(rest, "{}:{}", d.provider.encode_utf16().count(), d.provider);
    let _ = write!(rest, "{}:{}", d.model.encode_utf16().count(), d.model);
    let _ = write!(
        rest,
        r#"{{"score":{},"breakdown":{{"quota":{},"health":{},"priority":{},"latency":{},"cost":{}}},"alternatives":["#,
        d.score, b.quota, b.health, b.priority, b.latency, b.cost
    );
    for (i, a) in d.alternatives.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            rest,
            r#"{sep}{{"provider":{},"score":{}}}"#,
            json_str(&a.provider),
            a.score
        );
    }
    rest.push_str(r#"],"skipped":["#);
    for (i, s) in d.skipped.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            rest,
            r#"{sep}{{"provider":{},"reason":{}}}"#,
            json_str(&s.provider),
            json_str(&s.reason.code())
        );
    }
    rest.push_str("]}");
    rest
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A request's arguments, checked and owned (so that a thread-pool task can take them).
struct Args {
    lane: Option<String>,
    input_tokens: u64,
    output_tokens: u64,
    exclude: Vec<String>,
}

impl Args {
    /// `nums` = [inputTokens, outputTokens] (NaN: absent).
    fn parse(env: &Env, lane: Option<String>, nums: &[f64], exclude: Option<Vec<String>>) -> Result<Args> {
        Ok(Args {
            lane,
            input_tokens: count(env, "inputTokens", arg(nums, 0))?.unwrap_or(0),
            output_tokens: count(env, "outputTokens", arg(nums, 1))?.unwrap_or(0),
            exclude: exclude.unwrap_or_default(),
        })
    }

    /// Runs `f` with the core request.
    fn with<T>(&self, f: impl FnOnce(&Request<'_>) -> T) -> T {
        let refs: Vec<&str> = self.exclude.iter().map(String::as_str).collect();
        f(&Request {
            lane: self.lane.as_deref(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            exclude: &refs,
        })
    }
}

/// Runs `f` with the core request: `nums` = [inputTokens, outputTokens] (NaN: absent).
fn with_request<T>(
    env: &Env,
    lane: Option<String>,
    nums: &[f64],
    exclude: Option<Vec<String>>,
    f: impl FnOnce(&Request<'_>) -> T,
) -> Result<T> {
    Ok(Args::parse(env, lane, nums, exclude)?.with(f))
}

/// A manual clock reading `start_ms`.
#[napi]
pub fn clock_new(start_ms: i64) -> ClockHandle {
    External::new(ratewise::ManualClock::new(start_ms))
}

/// Moves a manual clock forward.
#[napi]
pub fn clock_advance(env: &Env, clock: &ClockHandle, ms: f64) -> Result<()> {
    let ms = count(env, "ms", ms)?.unwrap_or(0);
    clock.advance(i64::try_from(ms).unwrap_or(i64::MAX));
    Ok(())
}

/// A manual clock's reading.
#[napi]
pub fn clock_now(clock: &ClockHandle) -> i64 {
    clock.now_ms()
}

fn build(env: &Env, config: ratewise::Config, clock: Option<&ClockHandle>) -> Result<EngineHandle> {
    let clock = match clock {
        Some(c) => Clock::Manual((**c).clone()),
        None => Clock::system(),
    };
    Ok(External::new(Arc::new(
        ratewise::Engine::with_clock(config, clock).js(env)?,
    )))
}

/// An engine from JSON configuration text.
#[napi]
pub fn engine_new(env: &Env, config_json: String, clock: Option<&ClockHandle>) -> Result<EngineHandle> {
    let config = ratewise::Config::from_json(&config_json).js(env)?;
    build(env, config, clock)
}

/// An engine from a JSON configuration file.
#[napi]
pub fn engine_from_file(env: &Env, path: String, clock: Option<&ClockHandle>) -> Result<EngineHandle> {
    let config = ratewise::Config::from_file(path).js(env)?;
    build(env, config, clock)
}

/// The engine's clock reading in Unix ms.
#[napi]
pub fn engine_now(engine: &EngineHandle) -> i64 {
    engine.now_ms()
}

/// `select`: `nums` = [inputTokens, outputTokens] (NaN: absent). Returns the decision string.
#[napi]
pub fn engine_select(
    env: &Env,
    engine: &EngineHandle,
    capability: String,
    lane: Option<String>,
    nums: Float64Array,
    exclude: Option<Vec<String>>,
) -> Result<String> {
    let d = with_request(env, lane, &nums, exclude, |req| engine.select(&capability, req))?.js(env)?;
    Ok(decision(&d, None))
}

/// `acquire`: as `select`; the decision string starts with the permit id.
#[napi]
pub fn engine_acquire(
    env: &Env,
    engine: &EngineHandle,
    capability: String,
    lane: Option<String>,
    nums: Float64Array,
    exclude: Option<Vec<String>>,
) -> Result<String> {
    let permit = with_request(env, lane, &nums, exclude, |req| engine.acquire(&capability, req))?.js(env)?;
    Ok(decision(&permit.decision, Some(permit.id.0)))
}

/// An outcome from `nums` = [latencyMs, inputTokens, outputTokens, cachedInputTokens,
/// retryAfterMs, requests, cacheWriteInputTokens] (NaN: absent).
fn outcome(env: &Env, status_value: Either<String, f64>, nums: &[f64], headers: Option<String>) -> Result<Outcome> {
    Ok(Outcome {
        status: status(env, status_value)?,
        latency_ms: count(env, "latencyMs", arg(nums, 0))?.unwrap_or(0),
        input_tokens: count(env, "inputTokens", arg(nums, 1))?,
        output_tokens: count(env, "outputTokens", arg(nums, 2))?,
        cached_input_tokens: count(env, "cachedInputTokens", arg(nums, 3))?,
        cache_write_input_tokens: count(env, "cacheWriteInputTokens", arg(nums, 6))?,
        retry_after_ms: count(env, "retryAfterMs", arg(nums, 4))?,
        headers: header_pairs(headers),
    })
}

fn permit_id(id: f64) -> PermitId {
    PermitId(if id >= 0.0 && id.fract() == 0.0 { id as u64 } else { 0 })
}

/// A poll report for JS: `"<granted ids>;<expired ids>"`, ids separated by commas.
fn polled(p: &ratewise::Polled) -> String {
    let ids = |it: &mut dyn Iterator<Item = u64>| it.map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    format!(
        "{};{}",
        ids(&mut p.granted.iter().map(|g| g.id.0)),
        ids(&mut p.expired.iter().map(|(t, _)| t.0))
    )
}

/// `enqueue`: `nums` = [inputTokens, outputTokens, timeoutMs]. Returns `"<ticket>;<report>"`.
#[napi]
pub fn engine_enqueue(
    env: &Env,
    engine: &EngineHandle,
    capability: String,
    lane: Option<String>,
    nums: Float64Array,
    exclude: Option<Vec<String>>,
) -> Result<String> {
    let timeout = timeout_ms(env, &nums)?;
    let (ticket, p) = with_request(env, lane, &nums, exclude, |req| {
        engine.enqueue(&capability, req, timeout)
    })?
    .js(env)?;
    Ok(format!("{};{}", ticket.0, polled(&p)))
}

/// `timeoutMs` from `nums[2]`: a whole number (the core checks that it is > 0).
fn timeout_ms(env: &Env, nums: &[f64]) -> Result<i64> {
    let timeout = arg(nums, 2);
    if !timeout.is_finite() || timeout.fract() != 0.0 {
        return Err(invalid_argument(
            env,
            format!("timeoutMs must be a whole number, got {timeout}"),
        ));
    }
    Ok(timeout as i64)
}

/// The JS callback of `acquireAsync`: `(error, permit)`, two arguments (FnArgs), not one array.
type Notify<'a> = Function<'a, FnArgs<(Option<napi::Error>, Option<String>)>, ()>;

/// `acquireAsync`: enqueues (`nums` as for `enqueue`) a waiter whose outcome is delivered to
/// `callback(error, permit)` on the JS thread, from whichever thread grants or expires it (the
/// engine's timer thread, or a completion): `permit` as `engineAcquire` returns it, or `error`
/// built as every other call builds its errors. Returns the ticket. The callback is not weak: a
/// pending wait keeps Node alive, as a timer does.
#[napi(
    ts_args_type = "engine: EngineHandle, capability: string, lane: string | undefined | null, nums: Float64Array, exclude: Array<string> | undefined | null, callback: (error: Error | null, permit: string | null) => void"
)]
pub fn engine_enqueue_notify(
    env: &Env,
    engine: &EngineHandle,
    capability: String,
    lane: Option<String>,
    nums: Float64Array,
    exclude: Option<Vec<String>>,
    callback: Notify<'_>,
) -> Result<f64> {
    let timeout = timeout_ms(env, &nums)?;
    let notify = callback
        .build_threadsafe_function::<ratewise::Result<ratewise::Permit>>()
        .callee_handled::<false>()
        .build_callback(|ctx| {
            Ok(FnArgs::from(match ctx.value {
                Ok(p) => (None, Some(decision(&p.decision, Some(p.id.0)))),
                Err(e) => (Some(to_js(&ctx.env, &e)), None),
            }))
        })?;
    // Not delivered (Node is shutting down): the engine cancels the permit.
    let on_done: ratewise::OnDone = Box::new(move |result| {
        notify.call(
            result,
            napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
        ) == Status::Ok
    });
    let ticket = with_request(env, lane, &nums, exclude, |req| {
        engine.enqueue_with(&capability, req, timeout, on_done)
    })?
    .js(env)?;
    Ok(ticket.0 as f64)
}

/// `poll`: the report of one poll.
#[napi]
pub fn engine_poll(engine: &EngineHandle) -> String {
    polled(&engine.poll())
}

/// `nextWake`: when a poll could next change something (Unix ms), or null.
#[napi]
pub fn engine_next_wake(engine: &EngineHandle) -> Option<i64> {
    engine.next_wake()
}

/// `complete`: returns the report of the poll it triggers.
#[napi]
pub fn engine_complete(
    env: &Env,
    engine: &EngineHandle,
    permit: f64,
    status: Either<String, f64>,
    nums: Float64Array,
    headers: Option<String>,
) -> Result<String> {
    let o = outcome(env, status, &nums, headers)?;
    Ok(polled(&engine.complete(permit_id(permit), &o).js(env)?))
}

/// `cancel` (or withdraw a waiting ticket): returns the report of the poll it triggers.
#[napi]
pub fn engine_cancel(env: &Env, engine: &EngineHandle, permit: f64) -> Result<String> {
    Ok(polled(&engine.cancel(permit_id(permit)).js(env)?))
}

/// `observe`.
#[napi]
pub fn engine_observe(
    env: &Env,
    engine: &EngineHandle,
    provider: String,
    status: Either<String, f64>,
    nums: Float64Array,
    headers: Option<String>,
) -> Result<()> {
    let seen = observed(env, status, &nums, headers)?;
    engine.observe(&provider, &seen).js(env)
}

/// `observe`'s arguments (the core applies its defaults).
fn observed(env: &Env, status: Either<String, f64>, nums: &[f64], headers: Option<String>) -> Result<Observation> {
    Ok(Observation {
        outcome: outcome(env, status, nums, headers)?,
        requests: count(env, "requests", arg(nums, 5))?,
    })
}

/// `syncHeaders`.
#[napi]
pub fn engine_sync_headers(env: &Env, engine: &EngineHandle, provider: String, headers: String) -> Result<()> {
    engine.sync_headers(&provider, &header_pairs(Some(headers))).js(env)
}

/// `health`.
#[napi]
pub fn engine_health(env: &Env, engine: &EngineHandle, provider: String) -> Result<f64> {
    engine.health(&provider).js(env)
}

/// `remaining`.
#[napi]
pub fn engine_remaining(env: &Env, engine: &EngineHandle, provider: String, dimension: String) -> Result<Option<i64>> {
    let dim = Dimension::parse(&dimension)
        .ok_or_else(|| invalid_argument(env, format!("unknown dimension '{dimension}'")))?;
    engine.remaining(&provider, dim).js(env)
}

/// `circuit`.
#[napi]
pub fn engine_circuit(env: &Env, engine: &EngineHandle, provider: String) -> Result<&'static str> {
    Ok(engine.circuit(&provider).js(env)?.as_str())
}

/// The snapshot as JSON text.
#[napi]
pub fn engine_snapshot_json(engine: &EngineHandle) -> String {
    engine.snapshot().to_string()
}

fn json_value(env: &Env, text: &str, what: &str) -> Result<serde_json::Value> {
    // The core's reader refuses duplicate keys, naming their path.
    ratewise::json::parse(text, what, what).map_err(|e| crate::error::to_js(env, &e))
}

/// `upsertProvider` (JSON text).
#[napi]
pub fn engine_upsert_provider(env: &Env, engine: &EngineHandle, provider_json: String) -> Result<()> {
    engine
        .upsert_provider(&json_value(env, &provider_json, "provider")?)
        .js(env)
}

/// `upsertCapability` (JSON text).
#[napi]
pub fn engine_upsert_capability(env: &Env, engine: &EngineHandle, capability_json: String) -> Result<()> {
    engine
        .upsert_capability(&json_value(env, &capability_json, "capability")?)
        .js(env)
}

/// `removeProvider`.
#[napi]
pub fn engine_remove_provider(env: &Env, engine: &EngineHandle, name: String) -> Result<()> {
    engine.remove_provider(&name).js(env)
}

/// `removeCapability`.
#[napi]
pub fn engine_remove_capability(env: &Env, engine: &EngineHandle, name: String) -> Result<()> {
    engine.remove_capability(&name).js(env)
}

/// A conservative estimate of the input tokens of a JSON value (messages, or a request body),
/// as the core counts them in every language (docs/design.md §12).
#[napi]
pub fn estimate_tokens_json(env: &Env, json: String) -> Result<f64> {
    Ok(ratewise::estimate_tokens_json(&json).js(env)? as f64)
}

/// The core's estimate rule (docs/design.md §12), which `estimateTokens` walks in JS: the
/// tokens of an image part, of a message and of a request, and the image parts' types. Read
/// once, when the package loads, so that the rule is written in one place, the core.
#[napi(object)]
pub struct EstimateRule {
    pub image_tokens: u32,
    pub message_tokens: u32,
    pub request_tokens: u32,
    pub image_part_types: Vec<String>,
}

/// The core's estimate rule, for the JS walk of `estimateTokens`.
#[napi]
pub fn estimate_rule() -> EstimateRule {
    let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    EstimateRule {
        image_tokens: small(ratewise::IMAGE_TOKENS),
        message_tokens: small(ratewise::MESSAGE_TOKENS),
        request_tokens: small(ratewise::REQUEST_TOKENS),
        image_part_types: ratewise::IMAGE_PART_TYPES.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// The class of an HTTP status code; a 429 whose error type is `insufficient_quota` is
/// `forbidden`.
#[napi]
pub fn status_from_http(env: &Env, code: f64, error_type: Option<String>) -> Result<&'static str> {
    if code.fract() != 0.0 || !code.is_finite() {
        return Err(invalid_argument(env, format!("HTTP status {code} is not an integer")));
    }
    Ok(
        CoreStatus::from_http_with_error_type(code as i64, error_type.as_deref())
            .js(env)?
            .as_str(),
    )
}

/// Whether another attempt can succeed after an outcome of `status` (`rate_limited`,
/// `overloaded`, `server_error`, `timeout`): what the SDK wrappers retry.
#[napi]
pub fn is_retryable(env: &Env, status: String) -> Result<bool> {
    Ok(status.parse::<CoreStatus>().js(env)?.is_retryable())
}

/// Work of an `*Async` call: runs on the libuv thread pool (never on the event loop), so a call
/// that waits on a Redis store (at most its `timeout_ms`) does not block JS.
pub struct Io {
    work: Option<Box<dyn FnOnce() -> ratewise::Result<String> + Send>>,
    error: Option<ratewise::Error>,
}

impl Io {
    fn task(work: impl FnOnce() -> ratewise::Result<String> + Send + 'static) -> AsyncTask<Io> {
        AsyncTask::new(Io {
            work: Some(Box::new(work)),
            error: None,
        })
    }
}

impl Task for Io {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        match self.work.take().map(|f| f()) {
            Some(Ok(out)) => Ok(out),
            Some(Err(e)) => {
                let message = e.to_string();
                self.error = Some(e);
                Err(napi::Error::from_reason(message))
            }
            None => Err(napi::Error::from_reason("this call already ran")),
        }
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> Result<String> {
        Err(match self.error.take() {
            Some(e) => to_js(&env, &e),
            None => err,
        })
    }
}

/// Whether the engine shares state through Redis (its calls may wait on the network).
#[napi]
pub fn engine_is_shared(engine: &EngineHandle) -> bool {
    engine.is_shared()
}

/// `acquire` on the thread pool: resolves with what `engineAcquire` returns.
#[napi(ts_return_type = "Promise<string>")]
pub fn engine_acquire_task(
    env: &Env,
    engine: &EngineHandle,
    capability: String,
    lane: Option<String>,
    nums: Float64Array,
    exclude: Option<Vec<String>>,
) -> Result<AsyncTask<Io>> {
    // Arguments are checked here, on the JS thread, so that bad ones reject as every call does.
    let args = Args::parse(env, lane, &nums, exclude)?;
    let engine = Arc::clone(engine);
    Ok(Io::task(move || {
        let p = args.with(|req| engine.acquire(&capability, req))?;
        Ok(decision(&p.decision, Some(p.id.0)))
    }))
}

/// `complete` on the thread pool: resolves with the poll report string.
#[napi(ts_return_type = "Promise<string>")]
pub fn engine_complete_task(
    env: &Env,
    engine: &EngineHandle,
    permit: f64,
    status: Either<String, f64>,
    nums: Float64Array,
    headers: Option<String>,
) -> Result<AsyncTask<Io>> {
    let o = outcome(env, status, &nums, headers)?;
    let engine = Arc::clone(engine);
    Ok(Io::task(move || Ok(polled(&engine.complete(permit_id(permit), &o)?))))
}

/// `cancel` on the thread pool: resolves with the poll report string.
#[napi(ts_return_type = "Promise<string>")]
pub fn engine_cancel_task(engine: &EngineHandle, permit: f64) -> AsyncTask<Io> {
    let engine = Arc::clone(engine);
    Io::task(move || Ok(polled(&engine.cancel(permit_id(permit))?)))
}

/// `observe` on the thread pool.
#[napi(ts_return_type = "Promise<string>")]
pub fn engine_observe_task(
    env: &Env,
    engine: &EngineHandle,
    provider: String,
    status: Either<String, f64>,
    nums: Float64Array,
    headers: Option<String>,
) -> Result<AsyncTask<Io>> {
    let seen = observed(env, status, &nums, headers)?;
    let engine = Arc::clone(engine);
    Ok(Io::task(move || {
        engine.observe(&provider, &seen).map(|()| String::new())
    }))
}

/// `syncHeaders` on the thread pool.
#[napi(ts_return_type = "Promise<string>")]
pub fn engine_sync_headers_task(engine: &EngineHandle, provider: String, headers: String) -> AsyncTask<Io> {
    let engine = Arc::clone(engine);
    Io::task(move || {
        engine
            .sync_headers(&provider, &header_pairs(Some(headers)))
            .map(|()| String::new())
    })
}
