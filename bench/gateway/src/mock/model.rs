//! One model's hidden limits (continuous token buckets), faults in force and counters, all
//! behind one lock: a decision (fault, refusal, or admission and charge) is atomic.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::config::{Api, Distribution, ModelConfig};
use crate::format::{go_duration, rfc3339, unix_now};
use crate::rng::Rng;

/// Slack on bucket comparisons, so that a level that is a rounding error short still admits.
const EPS: f64 = 1e-9;

/// The dimensions a bucket can limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Requests.
    Requests,
    /// Input + output tokens.
    Tokens,
    /// Input tokens (Anthropic).
    InputTokens,
    /// Output tokens (Anthropic).
    OutputTokens,
}

impl Dim {
    fn index(self) -> usize {
        self as usize
    }

    /// The name in headers (`requests`, `tokens`, `input-tokens`, `output-tokens`).
    pub fn key(self) -> &'static str {
        match self {
            Dim::Requests => "requests",
            Dim::Tokens => "tokens",
            Dim::InputTokens => "input-tokens",
            Dim::OutputTokens => "output-tokens",
        }
    }

    /// The names as the API's error messages spell them: (`output tokens`, `OTPS`).
    fn label(self) -> (&'static str, &'static str) {
        match self {
            Dim::Requests => ("requests", "RPS"),
            Dim::Tokens => ("tokens", "TPS"),
            Dim::InputTokens => ("input tokens", "ITPS"),
            Dim::OutputTokens => ("output tokens", "OTPS"),
        }
    }

    /// The three rate-limit header names (limit, remaining, reset) in `api`'s spelling; static
    /// strings, so that no header name is formatted per request.
    fn headers(self, api: Api) -> [&'static str; 3] {
        match (api, self) {
            (Api::OpenAi, Dim::Requests) => [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
            (Api::OpenAi, _) => [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
            (Api::Anthropic, Dim::Requests) => [
                "anthropic-ratelimit-requests-limit",
                "anthropic-ratelimit-requests-remaining",
                "anthropic-ratelimit-requests-reset",
            ],
            (Api::Anthropic, Dim::Tokens) => [
                "anthropic-ratelimit-tokens-limit",
                "anthropic-ratelimit-tokens-remaining",
                "anthropic-ratelimit-tokens-reset",
            ],
            (Api::Anthropic, Dim::InputTokens) => [
                "anthropic-ratelimit-input-tokens-limit",
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-input-tokens-reset",
            ],
            (Api::Anthropic, Dim::OutputTokens) => [
                "anthropic-ratelimit-output-tokens-limit",
                "anthropic-ratelimit-output-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ],
        }
    }
}

/// A continuous token bucket: starts full, refills at `rate` per second up to `capacity`.
#[derive(Debug, Clone)]
struct Bucket {
    dim: Dim,
    rate: f64,
    capacity: f64,
    level: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        if now > self.last {
            self.level = (self.level + (now - self.last).as_secs_f64() * self.rate).min(self.capacity);
            self.last = now;
        }
    }

    fn to_full_s(&self) -> f64 {
        ((self.capacity - self.level) / self.rate).max(0.0)
    }
}

/// What one request needs: an amount per dimension (indexed by [`Dim`]), and what is counted
/// as charged input and output when admitted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Need {
    /// Amount per dimension.
    pub amounts: [f64; 4],
    /// Input tokens charged.
    pub input: u64,
    /// Output tokens charged.
    pub output: u64,
}

impl Need {
    /// A generation (or embedding, with `output` 0) of `input` + `output` tokens in `api`'s
    /// accounting.
    pub fn generation(input: u64, output: u64) -> Need {
        let (i, o) = (input as f64, output as f64);
        Need {
            amounts: [1.0, i + o, i, o],
            input,
            output,
        }
    }
}

/// An injected end of a stream.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// SSE events sent before it.
    pub after: usize,
    /// `Some(status)`: send the API's mid-stream error event for that status, then end; `None`:
    /// drop the connection without the terminating chunk.
    pub error_status: Option<u16>,
}

/// An injected stall.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// How long.
    pub duration: Duration,
    /// `None`: before the response head; `Some(k)`: after `k` SSE events.
    pub after: Option<usize>,
}

/// The outcome of [`Model::decide`].
#[derive(Debug)]
pub enum Decision {
    /// An injected status (not charged).
    Fault {
        /// The HTTP status.
        status: u16,
        /// `retry-after` to send, seconds.
        retry_after_s: Option<f64>,
        /// Rate-limit headers (429s only).
        headers: Vec<(&'static str, String)>,
    },
    /// Refused by a hidden limit (429, not charged).
    Limited {
        /// The API's error message.
        message: String,
        /// OpenAI's error `type` (`requests` or `tokens`).
        kind: &'static str,
        /// Rate-limit headers plus `retry-after` (and `retry-after-ms` for OpenAI).
        headers: Vec<(&'static str, String)>,
    },
    /// Admitted and charged.
    Admitted {
        /// Rate-limit headers after the charge.
        headers: Vec<(&'static str, String)>,
        /// Wait before the head.
        latency: Duration,
        /// Wait between SSE events.
        chunk: Duration,
        /// A stream cut in force for this request.
        cut: Option<Cut>,
        /// A stall in force for this request.
        stall: Option<Stall>,
    },
}

/// Counters of one model (or of the unattributed requests).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Requests matched to the model.
    pub received: u64,
    /// 200s delivered (a JSON reply handed to the server, or a stream sent to its end).
    pub ok: u64,
    /// Requests charged.
    pub admitted: u64,
    /// Replies by status.
    pub status: BTreeMap<u16, u64>,
    /// Streams admitted.
    pub streams: u64,
    /// Streams ended by a cut fault.
    pub streams_cut: u64,
    /// Admitted requests whose client left before the end.
    pub aborted: u64,
    /// Input tokens charged.
    pub input_tokens_charged: u64,
    /// Output tokens charged.
    pub output_tokens_charged: u64,
}

impl Stats {
    /// As JSON (`status` keys are strings, as in the Python mock).
    pub fn to_json(&self) -> Value {
        let status: serde_json::Map<String, Value> =
            self.status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        json!({
            "received": self.received, "ok": self.ok, "admitted": self.admitted, "status": status,
            "streams": self.streams, "streams_cut": self.streams_cut, "aborted": self.aborted,
            "input_tokens_charged": self.input_tokens_charged,
            "output_tokens_charged": self.output_tokens_charged,
        })
    }

    /// Adds `other` into `self` (for `total`).
    pub fn add(&mut self, other: &Stats) {
        self.received += other.received;
        self.ok += other.ok;
        self.admitted += other.admitted;
        for (k, v) in &other.status {
            *self.status.entry(*k).or_default() += v;
        }
        self.streams += other.streams;
        self.streams_cut += other.streams_cut;
        self.aborted += other.aborted;
        self.input_tokens_charged += other.input_tokens_charged;
        self.output_tokens_charged += other.output_tokens_charged;
    }

    /// Counts one reply of `status`.
    pub fn count_status(&mut self, status: u16) {
        *self.status.entry(status).or_default() += 1;
    }
}

#[derive(Debug, Clone, Copy)]
struct StatusFault {
    status: u16,
    remaining: Option<u64>,
    until: Option<Instant>,
    retry_after_s: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
struct Counted<T> {
    what: T,
    remaining: u64,
}

/// Faults in force on a model.
#[derive(Debug, Clone, Default)]
struct Faults {
    status: Option<StatusFault>,
    cut: Option<Counted<Cut>>,
    stall: Option<Counted<Stall>>,
    latency_ms: Option<f64>,
    chunk_ms: Option<f64>,
}

/// What `POST /_mock/faults` applies to a model (parsed once, applied to one or all models).
#[derive(Debug, Clone, Default)]
pub struct FaultSpec {
    /// Clear every fault first.
    pub clear: bool,
    /// Status, count, for_ms, retry_after_s.
    pub status: Option<(u16, u64, Option<f64>, Option<f64>)>,
    /// A stream cut and how many streams it applies to.
    pub cut: Option<(Cut, u64)>,
    /// A stall and how many requests it applies to.
    pub stall: Option<(Stall, u64)>,
    /// `Some(None)` restores the configured latency.
    pub latency_ms: Option<Option<f64>>,
    /// `Some(None)` restores the configured pacing.
    pub chunk_ms: Option<Option<f64>>,
}

struct State {
    buckets: Vec<Bucket>,
    faults: Faults,
    stats: Stats,
}

/// One model of the mock.
pub struct Model {
    /// Its name (the `model` of requests, echoed in answers).
    pub name: String,
    /// Its name as a JSON string literal, pre-serialised.
    pub name_json: String,
    /// Its configuration.
    pub cfg: ModelConfig,
    /// The answer text for the configured `output_tokens`, pre-serialised (`tok0 tok1 …`).
    pub default_text: String,
    state: Mutex<State>,
}

impl Model {
    /// A model with full buckets and no faults.
    pub fn new(name: &str, cfg: ModelConfig) -> Model {
        let mut name_json = String::new();
        crate::format::json_str(&mut name_json, name);
        Model {
            name: name.to_string(),
            name_json,
            default_text: answer_text(cfg.output_tokens),
            state: Mutex::new(State {
                buckets: buckets(&cfg, Instant::now()),
                faults: Faults::default(),
                stats: Stats::default(),
            }),
            cfg,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters to a benchmark, so a poisoned lock is simply taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the counters.
    pub fn with_stats<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        f(&mut self.lock().stats)
    }

    /// Atomically: consumes a status fault, or admits and charges `need`, or refuses it.
    pub fn decide(&self, need: &Need, stream: bool, rng: &Rng) -> Decision {
        let now = Instant::now();
        let mut st = self.lock();
        let st = &mut *st;
        st.stats.received += 1;
        for b in &mut st.buckets {
            b.refill(now);
        }
        if let Some(sf) = st.faults.status.as_mut() {
            let active = match (sf.until, sf.remaining.as_mut()) {
                (Some(until), _) => now < until,
                (None, Some(r)) if *r > 0 => {
                    *r -= 1;
                    true
                }
                _ => false,
            };
            let f = *sf;
            let spent = f.until.map_or(f.remaining == Some(0), |u| now >= u);
            if spent {
                st.faults.status = None;
            }
            if active {
                let headers = if f.status == 429 {
                    self.rl_headers(&st.buckets)
                } else {
                    Vec::new()
                };
                st.stats.count_status(f.status);
                return Decision::Fault {
                    status: f.status,
                    retry_after_s: f.retry_after_s,
                    headers,
                };
            }
        }
        // Admission: the first short bucket decides the message, except that "too large"
        // (larger than the bucket could ever hold) wins, since retrying would not help.
        let mut fail: Option<(usize, f64, bool)> = None;
        let mut wait = 0.0f64;
        for (i, b) in st.buckets.iter().enumerate() {
            let amount = need.amounts[b.dim.index()];
            if amount <= 0.0 || b.level + EPS >= amount {
                continue;
            }
            let too_large = amount > b.capacity + EPS;
            let w = if too_large {
                b.to_full_s().max(1.0)
            } else {
                (amount - b.level) / b.rate
            };
            if fail.is_none() || (too_large && !fail.is_some_and(|f| f.2)) {
                fail = Some((i, amount, too_large));
            }
            wait = wait.max(w);
        }
        if let Some((i, amount, too_large)) = fail {
            st.stats.count_status(429);
            return self.limited(&st.buckets, i, amount, too_large, wait);
        }
        for b in &mut st.buckets {
            b.level -= need.amounts[b.dim.index()];
        }
        st.stats.admitted += 1;
        st.stats.input_tokens_charged += need.input;
        st.stats.output_tokens_charged += need.output;
        let faults = &mut st.faults;
        let mut cut = None;
        if stream {
            st.stats.streams += 1;
            cut = take(&mut faults.cut);
        }
        let stall = take(&mut faults.stall);
        let base = faults.latency_ms.unwrap_or(self.cfg.latency_ms);
        let latency_ms = match (self.cfg.latency_jitter_ms, self.cfg.latency_distribution) {
            (j, _) if j <= 0.0 => base,
            (j, Distribution::Uniform) => (base + (rng.next_f64() * 2.0 - 1.0) * j).max(0.0),
            (j, Distribution::Exponential) => base - j * (1.0 - rng.next_f64()).ln(),
        };
        let chunk_ms = faults.chunk_ms.unwrap_or(self.cfg.chunk_ms);
        Decision::Admitted {
            headers: self.rl_headers(&st.buckets),
            latency: ms(latency_ms),
            chunk: ms(chunk_ms),
            cut,
            stall,
        }
    }

    fn limited(&self, buckets: &[Bucket], i: usize, amount: f64, too_large: bool, wait: f64) -> Decision {
        let b = &buckets[i];
        let mut headers = self.rl_headers(buckets);
        if self.cfg.headers {
            headers.push(("retry-after", ((wait - 1e-6).ceil().max(1.0) as u64).to_string()));
            if self.cfg.api == Api::OpenAi {
                headers.push((
                    "retry-after-ms",
                    ((wait * 1000.0 - 1e-6).ceil().max(1.0) as u64).to_string(),
                ));
            }
        }
        let (label, abbr) = b.dim.label();
        let cap = (b.capacity + EPS).floor() as u64;
        let used = (b.capacity - b.level - EPS).ceil().max(0.0) as u64;
        let requested = amount as u64;
        let name = &self.name;
        let message = match (self.cfg.api, too_large) {
            (Api::OpenAi, true) => format!(
                "Request too large for {name} in organization org-mock on {label} per second ({abbr}): Limit {cap}, \
                 Requested {requested}. The input or output tokens must be reduced in order to run successfully."
            ),
            (Api::OpenAi, false) => format!(
                "Rate limit reached for {label} per second ({abbr}) on {name} in organization org-mock: Limit {cap}, \
                 Used {used}, Requested {requested}. Please try again in {}. Visit \
                 https://platform.openai.com/account/rate-limits to learn more.",
                go_duration(wait)
            ),
            (Api::Anthropic, _) => format!(
                "This request would exceed the rate limit for your organization (org-mock) of {} {label} per second \
                 (bucket capacity {cap}). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can \
                 see the response headers for current usage. Please reduce the prompt length or the maximum tokens \
                 requested, or try again later.",
                b.rate
            ),
        };
        Decision::Limited {
            message,
            kind: if b.dim == Dim::Requests { "requests" } else { "tokens" },
            headers,
        }
    }

    /// The rate-limit headers of the buckets' current state; none for unlimited dimensions.
    fn rl_headers(&self, buckets: &[Bucket]) -> Vec<(&'static str, String)> {
        if !self.cfg.headers || buckets.is_empty() {
            return Vec::new();
        }
        let wall = if self.cfg.api == Api::Anthropic {
            unix_now()
        } else {
            0.0
        };
        let mut h = Vec::with_capacity(buckets.len() * 3);
        for b in buckets {
            let [limit, remaining, reset] = b.dim.headers(self.cfg.api);
            h.push((limit, ((b.capacity + EPS).floor() as u64).to_string()));
            h.push((remaining, ((b.level + EPS).floor().max(0.0) as u64).to_string()));
            let to_full = b.to_full_s();
            h.push((
                reset,
                match self.cfg.api {
                    Api::OpenAi => go_duration(to_full),
                    Api::Anthropic => rfc3339(wall + to_full),
                },
            ));
        }
        h
    }

    /// Applies a fault specification.
    pub fn apply(&self, spec: &FaultSpec) {
        let now = Instant::now();
        let mut st = self.lock();
        let f = &mut st.faults;
        if spec.clear {
            *f = Faults::default();
        }
        if let Some((status, count, for_ms, retry_after_s)) = spec.status {
            f.status = Some(StatusFault {
                status,
                remaining: if for_ms.is_some() { None } else { Some(count) },
                until: for_ms.map(|t| now + ms(t)),
                retry_after_s,
            });
        }
        if let Some((cut, remaining)) = spec.cut {
            f.cut = Some(Counted { what: cut, remaining });
        }
        if let Some((stall, remaining)) = spec.stall {
            f.stall = Some(Counted { what: stall, remaining });
        }
        if let Some(l) = spec.latency_ms {
            f.latency_ms = l;
        }
        if let Some(c) = spec.chunk_ms {
            f.chunk_ms = c;
        }
    }

    /// The faults in force, as JSON.
    pub fn faults_json(&self) -> Value {
        let st = self.lock();
        let f = &st.faults;
        let mut out = serde_json::Map::new();
        if let Some(s) = f.status {
            out.insert(
                "status".into(),
                json!({"status": s.status, "remaining": s.remaining, "retry_after_s": s.retry_after_s,
                       "for_ms_left": s.until.map(|u| u.saturating_duration_since(Instant::now()).as_secs_f64() * 1000.0)}),
            );
        }
        if let Some(c) = f.cut {
            out.insert(
                "cut_stream_after".into(),
                json!({"after": c.what.after, "error_status": c.what.error_status, "remaining": c.remaining}),
            );
        }
        if let Some(s) = f.stall {
            out.insert(
                "stall".into(),
                json!({"stall_ms": s.what.duration.as_secs_f64() * 1000.0, "stall_after": s.what.after,
                       "remaining": s.remaining}),
            );
        }
        if let Some(l) = f.latency_ms {
            out.insert("latency_ms".into(), json!(l));
        }
        if let Some(c) = f.chunk_ms {
            out.insert("chunk_ms".into(), json!(c));
        }
        Value::Object(out)
    }

    /// The counters, the hidden limits and the buckets' levels, as JSON.
    pub fn snapshot(&self) -> (Stats, Value) {
        let now = Instant::now();
        let mut st = self.lock();
        let mut limits = serde_json::Map::new();
        let mut levels = serde_json::Map::new();
        for b in &mut st.buckets {
            b.refill(now);
            limits.insert(format!("{}_per_s", b.dim.key().replace('-', "_")), json!(b.rate));
            levels.insert(b.dim.key().into(), json!((b.level * 1000.0).round() / 1000.0));
        }
        let stats = st.stats.clone();
        drop(st);
        let mut v = stats.to_json();
        if let Value::Object(o) = &mut v {
            o.insert(
                "api".into(),
                json!(if self.cfg.api == Api::OpenAi {
                    "openai"
                } else {
                    "anthropic"
                }),
            );
            o.insert("limits".into(), Value::Object(limits));
            o.insert("buckets".into(), Value::Object(levels));
            o.insert("faults".into(), self.faults_json());
        }
        (stats, v)
    }

    /// Zeroes the counters, refills the buckets, clears the faults.
    pub fn reset(&self) {
        let mut st = self.lock();
        st.buckets = buckets(&self.cfg, Instant::now());
        st.faults = Faults::default();
        st.stats = Stats::default();
    }
}

fn take<T: Copy>(slot: &mut Option<Counted<T>>) -> Option<T> {
    let c = slot.as_mut()?;
    if c.remaining == 0 {
        *slot = None;
        return None;
    }
    c.remaining -= 1;
    let what = c.what;
    if c.remaining == 0 {
        *slot = None;
    }
    Some(what)
}

/// A duration of `x` milliseconds (0 for anything not positive or not finite).
pub fn ms(x: f64) -> Duration {
    if x.is_finite() && x > 0.0 {
        Duration::from_secs_f64(x / 1000.0)
    } else {
        Duration::ZERO
    }
}

/// `tok0 tok1 … tok{n-1}`: the deterministic answer text.
pub fn answer_text(n: u64) -> String {
    let mut s = String::with_capacity(n as usize * 6);
    for k in 0..n {
        if k > 0 {
            s.push(' ');
        }
        s.push_str("tok");
        s.push_str(&k.to_string());
    }
    s
}

fn buckets(cfg: &ModelConfig, now: Instant) -> Vec<Bucket> {
    let dims: &[(Dim, Option<f64>)] = match cfg.api {
        Api::OpenAi => &[(Dim::Requests, cfg.requests_per_s), (Dim::Tokens, cfg.tokens_per_s)],
        Api::Anthropic => &[
            (Dim::Requests, cfg.requests_per_s),
            (Dim::InputTokens, cfg.input_tokens_per_s),
            (Dim::OutputTokens, cfg.output_tokens_per_s),
            (Dim::Tokens, cfg.tokens_per_s),
        ],
    };
    dims.iter()
        .filter_map(|&(dim, rate)| {
            rate.map(|rate| Bucket {
                dim,
                rate,
                capacity: rate * cfg.burst_s,
                level: rate * cfg.burst_s,
                last: now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(api: Api, rps: f64) -> Model {
        let mut c = ModelConfig::new(api);
        c.requests_per_s = Some(rps);
        c.tokens_per_s = Some(1000.0);
        Model::new("m", c)
    }

    #[test]
    fn buckets_admit_then_refuse_without_charging() {
        let m = model(Api::OpenAi, 2.0);
        let rng = Rng::new(1);
        let need = Need::generation(10, 5);
        for _ in 0..2 {
            let Decision::Admitted { headers, .. } = m.decide(&need, false, &rng) else {
                panic!("refused")
            };
            assert!(headers.iter().any(|(k, _)| *k == "x-ratelimit-reset-requests"));
        }
        let Decision::Limited { message, kind, headers } = m.decide(&need, false, &rng) else {
            panic!("admitted")
        };
        assert_eq!(kind, "requests");
        assert!(
            message.starts_with("Rate limit reached for requests per second (RPS) on m"),
            "{message}"
        );
        assert!(headers.iter().any(|(k, v)| *k == "retry-after" && v == "1"));
        let (stats, _) = m.snapshot();
        assert_eq!((stats.received, stats.admitted, stats.input_tokens_charged), (3, 2, 20));
        assert_eq!(stats.status.get(&429), Some(&1));
        let big = Need::generation(5000, 0);
        let Decision::Limited { message, .. } = m.decide(&big, false, &rng) else {
            panic!("admitted")
        };
        assert!(message.starts_with("Request too large"), "{message}");
    }

    #[test]
    fn faults_count_down_and_clear() {
        let m = model(Api::Anthropic, 100.0);
        let rng = Rng::new(1);
        m.apply(&FaultSpec {
            status: Some((529, 2, None, Some(3.0))),
            cut: Some((
                Cut {
                    after: 2,
                    error_status: None,
                },
                1,
            )),
            ..FaultSpec::default()
        });
        let need = Need::generation(1, 1);
        for _ in 0..2 {
            assert!(matches!(
                m.decide(&need, true, &rng),
                Decision::Fault {
                    status: 529,
                    retry_after_s: Some(_),
                    ..
                }
            ));
        }
        let Decision::Admitted { cut, .. } = m.decide(&need, true, &rng) else {
            panic!("refused")
        };
        assert_eq!(cut.map(|c| c.after), Some(2));
        let Decision::Admitted { cut, headers, .. } = m.decide(&need, true, &rng) else {
            panic!("refused")
        };
        assert!(cut.is_none());
        let reset = headers
            .iter()
            .find(|(k, _)| *k == "anthropic-ratelimit-requests-reset")
            .unwrap();
        assert!(reset.1.ends_with('Z'));
        m.reset();
        assert_eq!(m.snapshot().0.received, 0);
    }

    #[test]
    fn jitter_stays_in_its_range() {
        let mut c = ModelConfig::new(Api::OpenAi);
        c.latency_ms = 10.0;
        c.latency_jitter_ms = 2.0;
        let m = Model::new("m", c);
        let rng = Rng::new(7);
        for _ in 0..200 {
            let Decision::Admitted { latency, .. } = m.decide(&Need::generation(1, 1), false, &rng) else {
                panic!("refused")
            };
            assert!(
                (Duration::from_millis(8)..=Duration::from_millis(12)).contains(&latency),
                "{latency:?}"
            );
        }
    }

    #[test]
    fn answer_text_is_deterministic() {
        assert_eq!(answer_text(3), "tok0 tok1 tok2");
        assert_eq!(answer_text(0), "");
    }
}
