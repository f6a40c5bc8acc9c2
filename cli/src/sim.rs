//! The discrete-event simulation: the workload's traffic, in virtual time, against simulated
//! providers, under one policy at a time. Every run sees the same requests (drawn once from the
//! seed) and the same per-call randomness, so the policies are compared on equal terms, and the
//! same seed gives the same numbers on every machine.
//!
//! Policies:
//! - `naive`: each of `instances` processes keeps its own fixed-window counter of the primary
//!   provider's configured limits (the seeds' limiter: N processes, N times the limit), waits
//!   for its own window when the counter is spent, and backs off exponentially on failures.
//! - `retry`: no limiter; the primary provider, exponential backoff on 429, 529 and 5xx.
//! - `cascade`: no limiter; the capability's providers in their configured order, the next one
//!   at once after a failure, backing off after the last.
//! - `ratewise`: this engine on a manual clock, waiting in its lanes (`enqueue`, `poll` at
//!   `next_wake`), completing every call with its outcome and headers.
//!
//! A request is lost when it has not started a call by its deadline (waiting in a client's
//! worker queue, in the engine, or in backoff), or when `max_attempts` calls all failed. Its
//! wait is the time from arrival to the start of the call that succeeded.

use ratewise::{Config, Engine, ManualClock, Outcome, PermitId, Polled, Request, Status};
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use crate::provider::{Answer, EPOCH_MS, Live, Response, Usage};
use crate::rng::Rng;
use crate::workload::{Arrivals, Workload};

/// The policies, in report order.
pub const POLICIES: [&str; 4] = ["naive", "retry", "cascade", "ratewise"];

/// One request of the workload.
#[derive(Debug, Clone)]
pub struct Req {
    /// Its traffic class.
    pub class: usize,
    /// Arrival, ms from the start.
    pub arrival: i64,
    /// Input tokens.
    pub input: u64,
    /// `max_tokens`.
    pub max_tokens: u64,
    /// Output tokens it will produce.
    pub output: u64,
}

/// Draws every request of the workload, in arrival order.
pub fn generate(w: &Workload) -> Vec<Req> {
    let mut out = Vec::new();
    for (class, t) in w.traffic.iter().enumerate() {
        let mut rng = Rng::stream(w.seed, &[1, class as u64]);
        let mut times = Vec::new();
        match t.arrivals {
            Arrivals::Poisson { per_s } => {
                let mut at = t.start_ms as f64;
                loop {
                    at += rng.exponential(1_000.0 / per_s);
                    if at >= t.end_ms as f64 {
                        break;
                    }
                    times.push(at as i64);
                }
            }
            Arrivals::Bursts {
                every_ms,
                size,
                spread_ms,
            } => {
                let mut base = t.start_ms;
                while base < t.end_ms {
                    for _ in 0..size {
                        let at = base + (rng.unit() * spread_ms as f64) as i64;
                        if at < t.end_ms {
                            times.push(at);
                        }
                    }
                    base += every_ms;
                }
                times.sort_unstable();
            }
        }
        for arrival in times {
            let input = rng.draw(&t.input_tokens).round().max(1.0) as u64;
            let output = (rng.draw(&t.output_tokens).round().max(1.0) as u64).min(t.max_tokens);
            out.push(Req {
                class,
                arrival,
                input,
                max_tokens: t.max_tokens,
                output,
            });
        }
    }
    out.sort_by_key(|r| (r.arrival, r.class));
    out
}

/// Per-lane results.
#[derive(Debug, Clone, Default)]
pub struct LaneResult {
    /// Requests that arrived.
    pub requests: u64,
    /// Requests that succeeded.
    pub successes: u64,
    /// Requests lost.
    pub lost: u64,
    /// Waits of the successful requests (ms), sorted.
    pub waits: Vec<i64>,
    /// Per minute: the waits of requests whose successful call started in it.
    pub waits_by_minute: Vec<Vec<i64>>,
}

/// Per-provider results.
#[derive(Debug, Clone, Default)]
pub struct ProviderResult {
    /// Calls sent.
    pub calls: u64,
    /// Successful calls.
    pub successes: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 529 answers.
    pub overloaded: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Input and output tokens of successful calls.
    pub input_tokens: u64,
    /// Output tokens of successful calls.
    pub output_tokens: u64,
    /// Micro-USD of successful calls (from the configuration's prices).
    pub cost_micro_usd: u64,
    /// Units the provider counted within the run, by dimension.
    pub used: Usage,
    /// Units counted per minute, by dimension.
    pub used_by_minute: Vec<Usage>,
    /// The provider's real limits per minute, by dimension.
    pub limits: [Option<f64>; 4],
}

/// One policy's results.
#[derive(Debug, Clone, Default)]
pub struct PolicyResult {
    /// The policy.
    pub name: String,
    /// Calls sent (attempts).
    pub calls: u64,
    /// Per lane, in the configuration's order.
    pub lanes: Vec<LaneResult>,
    /// Per provider, in the configuration's order.
    pub providers: Vec<ProviderResult>,
    /// `ratewise`: the limits the engine learned from the providers' headers, as (provider,
    /// quota key, learned limit, configured limit).
    pub learned: Vec<(String, String, i64, i64)>,
}

/// What happens next.
#[derive(Debug)]
enum Ev {
    /// A request arrives.
    Arrive(usize),
    /// A request (re)starts: a retry after backoff, a local window reopening.
    Start(usize),
    /// A call's answer arrives.
    Done {
        req: usize,
        provider: usize,
        permit: Option<PermitId>,
        response: Response,
    },
    /// The engine's next wake-up.
    Wake,
}

struct Scheduled {
    at: i64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the earliest event is the greatest.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ReqState {
    attempts: u32,
    failures: u32,
    /// Which provider of the capability's order `cascade` tries next.
    cascade_next: usize,
    holds_worker: bool,
    done: bool,
}

/// The simulation's shared state; policies act through it.
struct Ctx<'a> {
    w: &'a Workload,
    config: &'a Config,
    reqs: &'a [Req],
    state: Vec<ReqState>,
    now: i64,
    seq: u64,
    heap: BinaryHeap<Scheduled>,
    providers: Vec<Live>,
    /// Provider index by configured name.
    provider_index: FxHashMap<String, usize>,
    /// Per class: capability providers (indices), in configured order.
    class_providers: Vec<Vec<usize>>,
    class_lane: Vec<usize>,
    class_deadline: Vec<i64>,
    workers_busy: Vec<usize>,
    backlog: Vec<VecDeque<usize>>,
    /// Requests finished whose worker may take the next one of its class.
    freed: Vec<usize>,
    out: PolicyResult,
    minutes: usize,
}

impl<'a> Ctx<'a> {
    fn schedule(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled { at, seq: self.seq, ev });
    }

    fn deadline(&self, req: usize) -> i64 {
        let r = &self.reqs[req];
        r.arrival + self.class_deadline[r.class]
    }

    fn minute(&self, at: i64) -> Option<usize> {
        let m = (at / 60_000) as usize;
        (at >= 0 && m < self.minutes).then_some(m)
    }

    fn record_usage(&mut self, provider: usize, usage: &Usage, at: i64) {
        let Some(m) = self.minute(at) else { return };
        let p = &mut self.out.providers[provider];
        for (d, units) in usage.iter().enumerate() {
            p.used[d] += units;
            p.used_by_minute[m][d] += units;
        }
    }

    /// Sends request `req` to `provider` now; its answer arrives as a `Done` event.
    fn send(&mut self, req: usize, provider: usize, permit: Option<PermitId>) {
        let st = &mut self.state[req];
        st.attempts += 1;
        let attempt = st.attempts;
        let r = &self.reqs[req];
        let mut rng = Rng::stream(
            self.w.seed,
            &[2, req as u64, attempt as u64, self.providers[provider].label()],
        );
        let (response, usage) = self.providers[provider].call(self.now, r.input, r.max_tokens, &mut rng);
        self.record_usage(provider, &usage, self.now);
        self.out.calls += 1;
        let p = &mut self.out.providers[provider];
        p.calls += 1;
        match response.answer {
            Answer::Success => {}
            Answer::RateLimited => p.rate_limited += 1,
            Answer::Overloaded => p.overloaded += 1,
            Answer::ServerError => p.server_errors += 1,
        }
        let at = self.now + response.latency_ms;
        self.schedule(
            at,
            Ev::Done {
                req,
                provider,
                permit,
                response,
            },
        );
    }

    /// The call of `req` to `provider` succeeded (its answer just arrived).
    fn succeed(&mut self, req: usize, provider: usize, latency_ms: i64) {
        let r = &self.reqs[req];
        let (input, output) = (r.input, r.output);
        let usage = self.providers[provider].finish(self.now, output);
        self.record_usage(provider, &usage, self.now);
        let started = self.now - latency_ms;
        let wait = started - r.arrival;
        let lane = self.class_lane[r.class];
        let minute = self.minute(started);
        let l = &mut self.out.lanes[lane];
        l.successes += 1;
        l.waits.push(wait);
        if let Some(m) = minute {
            l.waits_by_minute[m].push(wait);
        }
        let price = self.config.providers[provider].price.as_ref();
        let p = &mut self.out.providers[provider];
        p.successes += 1;
        p.input_tokens += input;
        p.output_tokens += output;
        if let Some(price) = price {
            // Priced as the engine prices its `cost` quotas: exact pico-USD, rounded up to µUSD.
            p.cost_micro_usd += price.cost_micro_usd(input, output);
        }
        self.finish(req);
    }

    fn lose(&mut self, req: usize) {
        let lane = self.class_lane[self.reqs[req].class];
        self.out.lanes[lane].lost += 1;
        self.finish(req);
    }

    fn finish(&mut self, req: usize) {
        let st = &mut self.state[req];
        debug_assert!(!st.done);
        st.done = true;
        if st.holds_worker {
            st.holds_worker = false;
            self.freed.push(self.reqs[req].class);
        }
    }

    /// The backoff before attempt `failures + 1`: `backoff_ms · 2^(failures−1)`, jittered ±50%.
    fn backoff(&self, req: usize) -> i64 {
        let st = &self.state[req];
        let mut rng = Rng::stream(self.w.seed, &[3, req as u64, st.attempts as u64]);
        let exp = st.failures.saturating_sub(1).min(16);
        let base = self.w.backoff_ms as f64 * f64::from(1u32 << exp);
        (base * (0.5 + rng.unit())).round() as i64
    }

    /// After a failed call: retry at `at` if attempts and the deadline allow, else lose it.
    fn retry_at(&mut self, req: usize, at: i64) {
        if self.state[req].attempts >= self.w.max_attempts || at >= self.deadline(req) {
            self.lose(req);
        } else {
            self.schedule(at, Ev::Start(req));
        }
    }
}

/// A policy reacts to requests starting, answers arriving and its own wake-ups.
trait Policy {
    /// What the policy learned, once the run is over.
    fn learned(&self) -> Vec<(String, String, i64, i64)> {
        Vec::new()
    }
    fn start(&mut self, cx: &mut Ctx<'_>, req: usize);
    fn done(&mut self, cx: &mut Ctx<'_>, req: usize, provider: usize, permit: Option<PermitId>, response: Response);
    fn wake(&mut self, _cx: &mut Ctx<'_>) {}
    /// Called once all events at the current time are handled.
    fn settle(&mut self, _cx: &mut Ctx<'_>) {}
}

/// What every limiter-less policy does with an answer: success, or back off and retry.
fn plain_done(cx: &mut Ctx<'_>, req: usize, provider: usize, response: &Response) {
    if response.answer == Answer::Success {
        cx.succeed(req, provider, response.latency_ms);
    } else {
        cx.state[req].failures += 1;
        let at = cx.now + cx.backoff(req);
        cx.retry_at(req, at);
    }
}

struct Retry;

impl Policy for Retry {
    fn start(&mut self, cx: &mut Ctx<'_>, req: usize) {
        let primary = cx.class_providers[cx.reqs[req].class][0];
        cx.send(req, primary, None);
    }
    fn done(&mut self, cx: &mut Ctx<'_>, req: usize, provider: usize, _: Option<PermitId>, response: Response) {
        plain_done(cx, req, provider, &response);
    }
}

struct Cascade;

impl Policy for Cascade {
    fn start(&mut self, cx: &mut Ctx<'_>, req: usize) {
        let order = &cx.class_providers[cx.reqs[req].class];
        let provider = order[cx.state[req].cascade_next % order.len()];
        cx.send(req, provider, None);
    }
    fn done(&mut self, cx: &mut Ctx<'_>, req: usize, provider: usize, _: Option<PermitId>, response: Response) {
        if response.answer == Answer::Success {
            cx.succeed(req, provider, response.latency_ms);
            return;
        }
        let len = cx.class_providers[cx.reqs[req].class].len();
        let st = &mut cx.state[req];
        st.cascade_next += 1;
        if !st.cascade_next.is_multiple_of(len) {
            let now = cx.now;
            cx.retry_at(req, now);
        } else {
            st.failures += 1;
            let at = cx.now + cx.backoff(req);
            cx.retry_at(req, at);
        }
    }
}

/// One process's fixed-window counter of a configured quota.
#[derive(Debug, Clone)]
struct LocalWindow {
    dimension: ratewise::Dimension,
    limit: i64,
    window_ms: i64,
    start: i64,
    used: i64,
}

struct Naive {
    /// Per instance, per provider: its windows.
    windows: Vec<Vec<Vec<LocalWindow>>>,
}

impl Naive {
    fn new(cx: &Ctx<'_>) -> Naive {
        let per_provider: Vec<Vec<LocalWindow>> = cx
            .config
            .providers
            .iter()
            .map(|p| {
                p.quotas
                    .iter()
                    .filter(|q| {
                        q.dimension != ratewise::Dimension::Concurrency && q.dimension != ratewise::Dimension::Cost
                    })
                    .map(|q| LocalWindow {
                        dimension: q.dimension,
                        limit: q.limit,
                        window_ms: q.window_ms,
                        start: 0,
                        used: 0,
                    })
                    .collect()
            })
            .collect();
        Naive {
            windows: vec![per_provider; cx.w.instances],
        }
    }
}

impl Policy for Naive {
    fn start(&mut self, cx: &mut Ctx<'_>, req: usize) {
        let r = &cx.reqs[req];
        let primary = cx.class_providers[r.class][0];
        let now = cx.now;
        let windows = &mut self.windows[req % cx.w.instances][primary];
        let cost = |d: ratewise::Dimension| -> i64 {
            match d {
                ratewise::Dimension::Requests => 1,
                ratewise::Dimension::Tokens => (r.input + r.max_tokens) as i64,
                ratewise::Dimension::InputTokens => r.input as i64,
                ratewise::Dimension::OutputTokens => r.max_tokens as i64,
                _ => 0,
            }
        };
        let mut reopen = now;
        for q in windows.iter_mut() {
            let start = now - now.rem_euclid(q.window_ms);
            if start != q.start {
                q.start = start;
                q.used = 0;
            }
            if q.used + cost(q.dimension) > q.limit {
                reopen = reopen.max(q.start + q.window_ms);
            }
        }
        if reopen > now {
            if reopen >= cx.deadline(req) {
                cx.lose(req);
            } else {
                cx.schedule(reopen, Ev::Start(req));
            }
            return;
        }
        for q in windows.iter_mut() {
            q.used += cost(q.dimension);
        }
        cx.send(req, primary, None);
    }
    fn done(&mut self, cx: &mut Ctx<'_>, req: usize, provider: usize, _: Option<PermitId>, response: Response) {
        plain_done(cx, req, provider, &response);
    }
}

struct Ratewise {
    engine: Engine,
    clock: ManualClock,
    /// Request by ticket (and permit) id.
    tickets: FxHashMap<u64, usize>,
    /// The wake-up already scheduled, if any.
    wake_at: Option<i64>,
}

impl Ratewise {
    fn new(config: &Config) -> Result<Ratewise, ratewise::Error> {
        let clock = ManualClock::new(EPOCH_MS);
        let engine = Engine::with_clock(config.clone(), clock.clone().into())?;
        Ok(Ratewise {
            engine,
            clock,
            tickets: FxHashMap::default(),
            wake_at: None,
        })
    }

    fn handle(&mut self, cx: &mut Ctx<'_>, polled: Polled) {
        for permit in polled.granted {
            let Some(req) = self.tickets.get(&permit.id.0).copied() else {
                continue;
            };
            let provider = cx.provider_index.get(permit.provider()).copied().unwrap_or(0);
            cx.send(req, provider, Some(permit.id));
        }
        for (ticket, _) in polled.expired {
            if let Some(req) = self.tickets.remove(&ticket.0) {
                cx.lose(req);
            }
        }
    }
}

impl Policy for Ratewise {
    fn learned(&self) -> Vec<(String, String, i64, i64)> {
        let snapshot = self.engine.snapshot();
        let mut out = Vec::new();
        let Some(providers) = snapshot["providers"].as_object() else {
            return out;
        };
        for (name, p) in providers {
            for q in p["quotas"].as_array().into_iter().flatten() {
                if let (Some(learned), Some(capacity), Some(key)) =
                    (q["learned_limit"].as_i64(), q["capacity"].as_i64(), q["key"].as_str())
                {
                    out.push((name.clone(), key.to_string(), learned, capacity));
                }
            }
        }
        out
    }

    fn start(&mut self, cx: &mut Ctx<'_>, req: usize) {
        let r = &cx.reqs[req];
        let timeout = cx.deadline(req) - cx.now;
        if timeout <= 0 {
            cx.lose(req);
            return;
        }
        let class = &cx.w.traffic[r.class];
        let request = Request::new().lane(&class.lane).tokens(r.input, r.max_tokens);
        self.clock.set_ms(EPOCH_MS + cx.now);
        match self.engine.enqueue(&class.capability, &request, timeout) {
            Ok((ticket, polled)) => {
                self.tickets.insert(ticket.0, req);
                self.handle(cx, polled);
            }
            // The workload was checked against the configuration, so this is not expected;
            // count it rather than stop the run.
            Err(_) => cx.lose(req),
        }
    }

    fn done(&mut self, cx: &mut Ctx<'_>, req: usize, provider: usize, permit: Option<PermitId>, response: Response) {
        let r = &cx.reqs[req];
        // The engine classifies the HTTP status as every binding's helper does (529: overloaded).
        let status = Status::from_http(response.answer.http()).unwrap_or(Status::ServerError);
        let success = status == Status::Success;
        let outcome = Outcome {
            status,
            latency_ms: response.latency_ms as u64,
            input_tokens: success.then_some(r.input),
            output_tokens: success.then_some(r.output),
            cached_input_tokens: None,
            cache_write_input_tokens: None,
            retry_after_ms: None,
            headers: response.headers,
        };
        self.clock.set_ms(EPOCH_MS + cx.now);
        if let Some(id) = permit {
            self.tickets.remove(&id.0);
            if let Ok(polled) = self.engine.complete(id, &outcome) {
                self.handle(cx, polled);
            }
        }
        if success {
            cx.succeed(req, provider, response.latency_ms);
        } else {
            cx.state[req].failures += 1;
            if cx.state[req].attempts >= cx.w.max_attempts {
                cx.lose(req);
            } else {
                self.start(cx, req);
            }
        }
    }

    fn wake(&mut self, cx: &mut Ctx<'_>) {
        self.wake_at = None;
        self.clock.set_ms(EPOCH_MS + cx.now);
        let polled = self.engine.poll();
        self.handle(cx, polled);
    }

    fn settle(&mut self, cx: &mut Ctx<'_>) {
        self.clock.set_ms(EPOCH_MS + cx.now);
        let Some(at) = self.engine.next_wake() else { return };
        // Every engine call here has just polled, and after a poll the engine's next wake-up is
        // in the future (core/tests/waiting.rs pins it). The max only keeps a regression there
        // from stalling the run at one instant.
        let at = at - EPOCH_MS;
        debug_assert!(at > cx.now, "next_wake {at} is not after the poll at {}", cx.now);
        let at = at.max(cx.now + 1);
        if self.wake_at.is_none_or(|w| at < w) {
            self.wake_at = Some(at);
            cx.schedule(at, Ev::Wake);
        }
    }
}

/// Runs one policy over the requests; `progress` is told the fraction of simulated time done.
pub fn run(
    policy: &str,
    w: &Workload,
    config: &Config,
    reqs: &[Req],
    progress: &mut dyn FnMut(f64),
) -> Result<PolicyResult, ratewise::Error> {
    let provider_index: FxHashMap<String, usize> = config
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();
    let providers: Vec<Live> = config
        .providers
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Live::new(i as u64, &p.name, w))
        .collect();
    let class_providers = w
        .traffic
        .iter()
        .map(|t| {
            config
                .capabilities
                .iter()
                .find(|c| c.name == t.capability)
                .map(|c| {
                    c.providers
                        .iter()
                        .filter_map(|e| provider_index.get(&e.provider).copied())
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let minutes = (w.duration_ms as usize).div_ceil(60_000);
    let mut out = PolicyResult {
        name: policy.to_string(),
        lanes: vec![
            LaneResult {
                waits_by_minute: vec![Vec::new(); minutes],
                ..LaneResult::default()
            };
            config.lanes.len()
        ],
        providers: providers
            .iter()
            .map(|p| ProviderResult {
                used_by_minute: vec![[0.0; 4]; minutes],
                limits: p.limits(),
                ..ProviderResult::default()
            })
            .collect(),
        ..PolicyResult::default()
    };
    let class_lane: Vec<usize> = w
        .traffic
        .iter()
        .map(|t| config.lanes.iter().position(|l| l.name == t.lane).unwrap_or(0))
        .collect();
    for r in reqs {
        out.lanes[class_lane[r.class]].requests += 1;
    }
    let mut cx = Ctx {
        w,
        config,
        reqs,
        state: vec![ReqState::default(); reqs.len()],
        now: 0,
        seq: 0,
        heap: BinaryHeap::new(),
        providers,
        provider_index,
        class_providers,
        class_lane,
        class_deadline: w.traffic.iter().map(|t| t.deadline_ms).collect(),
        workers_busy: vec![0; w.traffic.len()],
        backlog: vec![VecDeque::new(); w.traffic.len()],
        freed: Vec::new(),
        out,
        minutes,
    };
    let mut policy: Box<dyn Policy> = match policy {
        "naive" => Box::new(Naive::new(&cx)),
        "retry" => Box::new(Retry),
        "cascade" => Box::new(Cascade),
        _ => Box::new(Ratewise::new(config)?),
    };
    // Arrivals are pushed lazily, one ahead, to keep the heap small.
    let mut next_arrival = 0usize;
    if !reqs.is_empty() {
        cx.schedule(reqs[0].arrival, Ev::Arrive(0));
        next_arrival = 1;
    }
    let mut reported_minute = -1i64;
    while let Some(item) = cx.heap.pop() {
        cx.now = item.at;
        match item.ev {
            Ev::Arrive(req) => {
                if next_arrival < reqs.len() {
                    cx.schedule(reqs[next_arrival].arrival, Ev::Arrive(next_arrival));
                    next_arrival += 1;
                }
                let class = reqs[req].class;
                match w.traffic[class].workers {
                    Some(limit) if cx.workers_busy[class] >= limit => cx.backlog[class].push_back(req),
                    _ => {
                        cx.workers_busy[class] += 1;
                        cx.state[req].holds_worker = true;
                        policy.start(&mut cx, req);
                    }
                }
            }
            Ev::Start(req) => policy.start(&mut cx, req),
            Ev::Done {
                req,
                provider,
                permit,
                response,
            } => policy.done(&mut cx, req, provider, permit, response),
            Ev::Wake => policy.wake(&mut cx),
        }
        // A finished request frees its worker for the next one of its class.
        while let Some(class) = cx.freed.pop() {
            cx.workers_busy[class] -= 1;
            while let Some(next) = cx.backlog[class].pop_front() {
                if cx.now >= cx.deadline(next) {
                    cx.lose(next);
                    continue;
                }
                cx.workers_busy[class] += 1;
                cx.state[next].holds_worker = true;
                policy.start(&mut cx, next);
                break;
            }
        }
        if cx.heap.peek().is_none_or(|n| n.at > cx.now) {
            policy.settle(&mut cx);
        }
        let minute = cx.now / 60_000;
        if minute != reported_minute {
            reported_minute = minute;
            progress((cx.now as f64 / w.duration_ms as f64).min(1.0));
        }
    }
    // Backlogged requests whose workers never freed (cannot happen: every request finishes).
    for q in &cx.backlog {
        debug_assert!(q.is_empty());
    }
    for l in &mut cx.out.lanes {
        l.waits.sort_unstable();
    }
    cx.out.learned = policy.learned();
    Ok(cx.out)
}
