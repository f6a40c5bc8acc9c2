//! Engine benchmarks (issue budgets in bench/README.md). Run: `cargo bench -p ratewise --bench engine`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests say where they fail
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ratewise::{Config, Engine, ManualClock, Outcome, Request, Status};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// A provider with 4 quotas: requests, tokens per minute, tokens per day, concurrency. The
/// limits are large enough that millions of iterations on a frozen clock never exhaust them
/// (and still within the 2^53 exactness bound), so every iteration does the full arithmetic.
fn provider(name: &str) -> Value {
    json!({"name": name, "quotas": [
        {"dimension": "requests", "limit": 1_000_000_000_000_i64, "window": "minute"},
        {"dimension": "tokens", "limit": 100_000_000_000_000_i64, "window": "minute"},
        {"dimension": "tokens", "limit": 300_000_000_000_000_i64, "window": "day"},
        {"dimension": "concurrency", "limit": 1_000}]})
}

fn engine(extra_providers: usize, capabilities: usize, clock: &ManualClock) -> Engine {
    let mut providers: Vec<Value> = Vec::new();
    let mut caps = Vec::new();
    for c in 0..capabilities {
        let names: Vec<String> = (0..3).map(|i| format!("p{c}-{i}")).collect();
        for n in &names {
            providers.push(provider(n));
        }
        caps.push(json!({"name": format!("chat{c}"), "providers": names.iter().enumerate()
            .map(|(i, n)| json!({"provider": n, "priority": 10 - i})).collect::<Vec<_>>()}));
    }
    for i in 0..extra_providers {
        providers.push(provider(&format!("extra{i}")));
    }
    let config = Config::from_value(&json!({"providers": providers, "capabilities": caps})).unwrap();
    Engine::with_clock(config, clock.clone().into()).unwrap()
}

fn select_observe(e: &Engine, cap: &str, clock: &ManualClock) {
    clock.advance(1);
    let req = Request::new().tokens(100, 50);
    let d = e.select(cap, &req).unwrap();
    let o = Outcome::success(120, 100, 50);
    e.observe(&d.provider, &o.into()).unwrap();
}

fn acquire_complete(e: &Engine, cap: &str, clock: &ManualClock) {
    clock.advance(1);
    let p = e.acquire(cap, &Request::new().tokens(100, 50)).unwrap();
    e.complete(p.id, &Outcome::success(120, 100, 50)).unwrap();
}

fn pairs(c: &mut Criterion) {
    let clock = ManualClock::new(0);
    let e = engine(0, 1, &clock);
    c.bench_function("select+observe (3 providers x 4 quotas)", |b| {
        b.iter(|| select_observe(&e, "chat0", &clock))
    });
    c.bench_function("acquire+complete (3 providers x 4 quotas)", |b| {
        b.iter(|| acquire_complete(&e, "chat0", &clock))
    });
    let sys = Engine::new(e.config()).unwrap();
    c.bench_function("select+observe, system clock", |b| {
        b.iter(|| {
            let d = sys.select("chat0", &Request::new().tokens(100, 50)).unwrap();
            sys.observe(&d.provider, &Outcome::success(120, 100, 50).into())
                .unwrap();
        })
    });
}

fn registered(c: &mut Criterion) {
    let clock = ManualClock::new(0);
    let small = engine(0, 1, &clock);
    let large = engine(997, 1, &clock);
    let req = Request::new().tokens(100, 50);
    c.bench_function("select, 3 registered providers", |b| {
        b.iter(|| black_box(small.select("chat0", &req)))
    });
    c.bench_function("select, 1000 registered providers", |b| {
        b.iter(|| black_box(large.select("chat0", &req)))
    });
}

/// Throughput of acquire+complete: one thread, then two threads on different capabilities.
/// Each measurement reports time per operation (lower is better); the ratio is the scaling.
fn threads(c: &mut Criterion) {
    let clock = ManualClock::new(0);
    let e = engine(0, 2, &clock);
    let mut g = c.benchmark_group("threads");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("1 thread, per op", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let p = e.acquire("chat0", &Request::new().tokens(100, 50)).unwrap();
                let _ = e.complete(p.id, &Outcome::new(Status::Success));
            }
            start.elapsed()
        })
    });
    g.bench_function("2 threads on different capabilities, per op", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for cap in ["chat0", "chat1"] {
                    let e = &e;
                    s.spawn(move || {
                        for _ in 0..iters {
                            let p = e.acquire(cap, &Request::new().tokens(100, 50)).unwrap();
                            let _ = e.complete(p.id, &Outcome::new(Status::Success));
                        }
                    });
                }
            });
            // Two operations were done per iteration: report the wall time per operation.
            start.elapsed() / 2
        })
    });
    // Control: two threads on two separate engines share no memory at all, so their scaling is
    // the ceiling this machine allows (its two vCPUs may not be two independent cores).
    let other = engine(0, 2, &clock);
    g.bench_function("2 threads on separate engines (control), per op", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for e in [&e, &other] {
                    s.spawn(move || {
                        for _ in 0..iters {
                            let p = e.acquire("chat0", &Request::new().tokens(100, 50)).unwrap();
                            let _ = e.complete(p.id, &Outcome::new(Status::Success));
                        }
                    });
                }
            });
            start.elapsed() / 2
        })
    });
    g.finish();
}

criterion_group!(benches, pairs, registered, threads);
criterion_main!(benches);
