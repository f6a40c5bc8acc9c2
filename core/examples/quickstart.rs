//! A tour of ratewise on the embedded in-memory store: run with
//! `cargo run --release --example quickstart`.
//!
//! It drives one engine through a few minutes of simulated traffic (a manual clock, so the
//! output is the same every run) and prints every decision.

use ratewise::{Config, Engine, Error, ManualClock, Outcome, Request, Status};

const CONFIG: &str = r#"{
  "providers": [
    { "name": "gpt-4o",
      "quotas": [
        { "dimension": "requests", "limit": 60, "window": "minute" },
        { "dimension": "tokens", "limit": 20000, "window": "minute", "settle": "reserved" },
        { "dimension": "concurrency", "limit": 20 } ],
      "price": { "input_per_mtok": 2.5, "output_per_mtok": 10.0 } },
    { "name": "claude-sonnet",
      "quotas": [
        { "dimension": "requests", "limit": 50, "window": "minute" },
        { "dimension": "input_tokens", "limit": 30000, "window": "minute", "count_cached": false },
        { "dimension": "output_tokens", "limit": 8000, "window": "minute" } ],
      "price": { "input_per_mtok": 3.0, "output_per_mtok": 15.0 } },
    { "name": "small-fallback",
      "quotas": [ { "dimension": "requests", "limit": 600, "window": "minute" } ],
      "price": { "input_per_mtok": 0.15, "output_per_mtok": 0.6 } }
  ],
  "capabilities": [
    { "name": "chat", "providers": [
        { "provider": "gpt-4o", "priority": 10 },
        { "provider": "claude-sonnet", "priority": 8 },
        { "provider": "small-fallback", "priority": 2 } ] }
  ]
}"#;

fn main() -> Result<(), Error> {
    let clock = ManualClock::new(1_767_225_600_000); // 2026-01-01T00:00:00Z
    let engine = Engine::with_clock(Config::from_json(CONFIG)?, clock.clone().into())?;
    let t0 = clock.now_ms();
    let at = |clock: &ManualClock| format!("t={:>6.1}s", (clock.now_ms() - t0) as f64 / 1000.0);

    println!("ratewise quickstart: one engine, in memory, three providers behind the capability 'chat'\n");

    // 1. An interactive request: where does it go, and why?
    let permit = engine.acquire("chat", &Request::new().tokens(1_200, 400))?;
    let d = &permit.decision;
    println!(
        "{}  chat request (1200 in / 400 out) -> {}  score {:.3}",
        at(&clock),
        d.provider,
        d.score
    );
    println!(
        "           breakdown: quota {:.3}  health {:.3}  priority {:.3}  latency {:.3}  cost {:.3}",
        d.breakdown.quota, d.breakdown.health, d.breakdown.priority, d.breakdown.latency, d.breakdown.cost
    );
    for a in &d.alternatives {
        println!("           alternative: {} ({:.3})", a.provider, a.score);
    }
    clock.advance(850);
    engine.complete(permit.id, &Outcome::success(850, 1_150, 310))?;
    println!("{}  completed: 1150 in / 310 out, 850 ms", at(&clock));

    // 2. A batch flood: batch keeps 30% of every quota free for interactive traffic.
    let mut granted = std::collections::BTreeMap::<String, u32>::new();
    let mut refused = None;
    for _ in 0..1_000 {
        match engine.acquire("chat", &Request::new().lane("batch").tokens(800, 300)) {
            Ok(p) => {
                *granted.entry(p.provider().to_string()).or_default() += 1;
                engine.complete(p.id, &Outcome::success(900, 800, 300))?;
            }
            Err(e @ Error::NoAvailableProvider { .. }) => {
                refused = Some(e);
                break;
            }
            Err(e) => return Err(e),
        }
    }
    println!("\n{}  batch flood: granted {granted:?}", at(&clock));
    if let Some(Error::NoAvailableProvider {
        retry_after_ms,
        skipped,
    }) = &refused
    {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.provider, s.reason))
            .collect();
        println!(
            "           then refused: retry after {retry_after_ms:?} ms [{}]",
            reasons.join(", ")
        );
    }
    let chat = engine.select("chat", &Request::new().tokens(1_200, 400))?;
    println!(
        "           an interactive request still goes through: -> {}",
        chat.provider
    );

    // 3. The primary answers 529 (overloaded): it is held, and the retry moves on.
    clock.advance(20_000);
    let p = engine.acquire("chat", &Request::new().tokens(1_000, 300))?;
    let first = p.provider().to_string();
    engine.complete(
        p.id,
        &Outcome {
            status: Status::from_http(529)?,
            latency_ms: 2_000,
            ..Outcome::new(Status::Success)
        },
    )?;
    let retry = engine.acquire("chat", &Request::new().tokens(1_000, 300))?;
    println!(
        "\n{}  {first} answered 529 -> retry goes to {}",
        at(&clock),
        retry.provider()
    );
    for s in &retry.decision.skipped {
        println!("           skipped {}: {}", s.provider, s.reason);
    }
    engine.complete(retry.id, &Outcome::success(700, 1_000, 280))?;

    // 4. A 429 with Retry-After holds the provider for exactly that long.
    let p = engine.acquire("chat", &Request::new().tokens(500, 100))?;
    let who = p.provider().to_string();
    engine.complete(
        p.id,
        &Outcome {
            retry_after_ms: Some(12_000),
            ..Outcome::new(Status::RateLimited)
        },
    )?;
    let held = engine.snapshot()["providers"][&who]["held_ms"].clone();
    println!(
        "\n{}  {who} answered 429, retry-after 12 s -> held for {held} ms, health {:.3}",
        at(&clock),
        engine.health(&who)?
    );

    println!("\ncounters: {}", engine.snapshot()["counters"]);
    Ok(())
}
