//! Fleet worker (Rust) of `tests/fleet/run.py`: hammers one capability through the shared
//! Redis store. Usage: `fleet_worker CONFIG_FILE START_MS STOP_MS`. Waits until the engine's
//! clock (the Redis server's) reads START_MS, then acquires and completes as fast as the quota
//! allows until STOP_MS, sleeping the predicted wait when refused. Prints one JSON line.

use ratewise::{Config, Engine, Error, Outcome, Request};
use std::time::Duration;

fn main() {
    if let Err(e) = run() {
        eprintln!("fleet_worker: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, start, stop] = args.as_slice() else {
        return Err("usage: fleet_worker CONFIG_FILE START_MS STOP_MS".into());
    };
    let (start, stop): (i64, i64) = (start.parse()?, stop.parse()?);
    let engine = Engine::new(Config::from_file(file)?)?;
    while engine.now_ms() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut admitted = 0u64;
    while engine.now_ms() < stop {
        match engine.acquire("chat", &Request::new()) {
            Ok(p) => {
                admitted += 1;
                engine.complete(p.id, &Outcome::success(1, 0, 0))?;
            }
            Err(Error::NoAvailableProvider { retry_after_ms, .. }) => {
                let wait = retry_after_ms.unwrap_or(1).clamp(1, 50);
                std::thread::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(1)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mode = engine.snapshot().pointer("/store/mode").cloned().unwrap_or_default();
    println!(
        r#"{{"lang": "rust", "admitted": {admitted}, "end_ms": {}, "mode": {mode}}}"#,
        engine.now_ms()
    );
    Ok(())
}
