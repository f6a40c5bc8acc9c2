//! Soak worker (Rust) of `tests/soak/run.py`: acquires, holds and completes permits of one
//! capability through the shared Redis store while the runner injects faults into Redis.
//!
//! Usage: `soak_worker CONFIG_FILE START_MS STOP_MS SEED`. Waits until the engine's clock (the
//! Redis server's) reads START_MS, then until STOP_MS loops: acquire, hold the permit a random
//! 1–20 ms, complete (success); when refused, sleeps the predicted wait (clamped to 1–50 ms).
//! Prints one JSON line (the format is `tests/soak/worker.py`'s, documented in run.py):
//! one record per admission, the longest call, the seconds spent degraded and the store's
//! counters.

use ratewise::{Config, Engine, Error, Outcome, Request};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    if let Err(e) = run() {
        eprintln!("soak_worker: {e}");
        std::process::exit(1);
    }
}

/// Host wall clock in µs since `start_ms` (the same clock as the Redis server's: one host).
fn wall_us(start_ms: i64) -> i64 {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    us - start_ms * 1000
}

/// splitmix64: deterministic hold times without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The store's mode and counters, sampled after every call; degraded time is integrated here.
struct Sampler {
    start_ms: i64,
    last: Instant,
    degraded: bool,
    degraded_s: f64,
    spans: Vec<[i64; 2]>,
    resets: u64,
    reset_at: Vec<[i64; 3]>,
}

fn mode_code(mode: &str) -> i64 {
    match mode {
        "shared" => 0,
        "local" => 1,
        "open" => 2,
        "unavailable" => 3,
        _ => 9,
    }
}

impl Sampler {
    /// Samples the snapshot; returns the mode's code (0 shared, 1 local, 2 open, 3 unavailable).
    fn sample(&mut self, engine: &Engine) -> i64 {
        let snap = engine.snapshot();
        let mode = mode_code(snap.pointer("/store/mode").and_then(Value::as_str).unwrap_or(""));
        let now = Instant::now();
        if self.degraded {
            self.degraded_s += now.duration_since(self.last).as_secs_f64();
        }
        self.last = now;
        let degraded = mode != 0;
        let w = wall_us(self.start_ms);
        if degraded && !self.degraded {
            self.spans.push([w, w]);
        }
        if let Some(span) = self.spans.last_mut()
            && self.degraded
        {
            span[1] = w;
        }
        self.degraded = degraded;
        let resets = snap.pointer("/store/resets").and_then(Value::as_u64).unwrap_or(0);
        if resets > self.resets {
            self.resets = resets;
            self.reset_at.push([
                engine.now_ms() - self.start_ms,
                w,
                i64::try_from(resets).unwrap_or(i64::MAX),
            ]);
        }
        mode
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, start, stop, seed] = args.as_slice() else {
        return Err("usage: soak_worker CONFIG_FILE START_MS STOP_MS SEED".into());
    };
    let (start, stop, seed): (i64, i64, u64) = (start.parse()?, stop.parse()?, seed.parse()?);
    let engine = Engine::new(Config::from_file(file)?)?;
    let mut rng = Rng(seed);
    while engine.now_ms() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut s = Sampler {
        start_ms: start,
        last: Instant::now(),
        degraded: false,
        degraded_s: 0.0,
        spans: Vec::new(),
        resets: 0,
        reset_at: Vec::new(),
    };
    s.sample(&engine);
    let mut records: Vec<[i64; 8]> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut refused, mut longest_us, mut longest_what, mut longest_at) = (0u64, 0i64, "", 0i64);
    let mut slow_calls = 0u64;
    let mut note = |what: &'static str, t0: i64, t1: i64| {
        if t1 - t0 > longest_us {
            (longest_us, longest_what, longest_at) = (t1 - t0, what, t0);
        }
        if t1 - t0 > 95_000 {
            slow_calls += 1;
        }
    };
    while engine.now_ms() < stop {
        let e0 = engine.now_ms();
        let w0 = wall_us(start);
        let got = engine.acquire("chat", &Request::new());
        let w1 = wall_us(start);
        let e1 = engine.now_ms();
        note("acquire", w0, w1);
        let mode = s.sample(&engine);
        match got {
            Ok(p) => {
                let hold = 1 + rng.next() % 20;
                std::thread::sleep(Duration::from_millis(hold));
                let e2 = engine.now_ms();
                let w2 = wall_us(start);
                let done = engine.complete(p.id, &Outcome::success(hold, 0, 0));
                let w3 = wall_us(start);
                note("complete", w2, w3);
                s.sample(&engine);
                if let Err(e) = done {
                    *errors.entry(format!("complete:{}", e.code())).or_default() += 1;
                }
                records.push([e0 - start, e2 - start, mode, w0, w1, w2, w3, e1 - start]);
            }
            Err(Error::NoAvailableProvider { retry_after_ms, .. }) => {
                refused += 1;
                let wait = retry_after_ms.unwrap_or(2).clamp(1, 50);
                std::thread::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(1)));
            }
            Err(e) => {
                *errors.entry(format!("acquire:{}", e.code())).or_default() += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    s.sample(&engine);
    let snap = engine.snapshot();
    let store = snap.pointer("/store").cloned().unwrap_or_default();
    let out = json!({
        "lang": "rust",
        "records": records,
        "refused": refused,
        "errors": errors,
        "longest_call_us": longest_us,
        "longest_call": longest_what,
        "longest_call_at_us": longest_at,
        "slow_calls": slow_calls,
        "degraded_s": s.degraded_s,
        "degraded_spans_us": s.spans,
        "resets_at": s.reset_at,
        "resets": store.get("resets"),
        "unsent": store.get("unsent"),
        "unsent_dropped": store.get("unsent_dropped"),
        "mode": store.get("mode"),
        "end_ms": engine.now_ms() - start,
    });
    println!("{out}");
    Ok(())
}
