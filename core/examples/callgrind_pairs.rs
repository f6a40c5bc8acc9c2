//! A fixed loop for counting instructions with callgrind (bench/README.md, "Instructions per
//! pair"): `callgrind_pairs select N` runs N `select`+`observe` pairs, `callgrind_pairs acquire
//! N` N `acquire`+`complete` pairs, on the benchmark's engine (3 providers x 4 quotas, manual
//! clock). Instructions per pair = (Ir at N − Ir at 0) / N.
#![allow(missing_docs)]

use ratewise::{Config, Engine, ManualClock, Outcome, Request};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (kind, n) = match args.as_slice() {
        [_, kind, n] => (kind.as_str(), n.parse::<u64>()?),
        _ => return Err("usage: callgrind_pairs select|acquire N".into()),
    };
    let quotas = json!([
        {"dimension": "requests", "limit": 1_000_000_000_000_i64, "window": "minute"},
        {"dimension": "tokens", "limit": 100_000_000_000_000_i64, "window": "minute"},
        {"dimension": "tokens", "limit": 300_000_000_000_000_i64, "window": "day"},
        {"dimension": "concurrency", "limit": 1_000}]);
    let names = ["p0", "p1", "p2"];
    let config = Config::from_value(&json!({
        "providers": names.iter().map(|n| json!({"name": n, "quotas": quotas})).collect::<Vec<_>>(),
        "capabilities": [{"name": "chat", "providers": names.iter().enumerate()
            .map(|(i, n)| json!({"provider": n, "priority": 10 - i})).collect::<Vec<_>>()}]
    }))?;
    let clock = ManualClock::new(0);
    let engine = Engine::with_clock(config, clock.clone().into())?;
    let request = Request::new().tokens(100, 50);
    for _ in 0..n {
        clock.advance(1);
        match kind {
            "select" => {
                let d = engine.select("chat", &request)?;
                engine.observe(&d.provider, &Outcome::success(120, 100, 50).into())?;
            }
            _ => {
                let p = engine.acquire("chat", &request)?;
                engine.complete(p.id, &Outcome::success(120, 100, 50))?;
            }
        }
    }
    Ok(())
}
