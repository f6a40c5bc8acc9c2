//! The Redis store's benchmark (`bench/redis/run.sh` starts a server and runs this).
//!
//! Usage: `redis_bench REDIS_URL [PAIRS]`. On one server, in one run:
//!
//! 1. the round trip of `PING` (the floor any shared limiter pays);
//! 2. ratewise `acquire` + `complete` on the Redis store, with 1 and 8 client threads: latency
//!    of `acquire` (p50, p99) and pairs per second;
//! 3. the seeds' approaches on the same server, 8 threads racing for a limit of 1,000:
//!    a sorted-set sliding window in a Lua script (atomic: exact, one member per request), and a
//!    client-side `GET` then `SET` counter (not atomic: over-admits), with ratewise on the same
//!    race for comparison.

use ratewise::{Engine, Outcome, Request};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("redis_bench: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).ok_or("usage: redis_bench REDIS_URL [PAIRS]")?.clone();
    let pairs: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(20_000);
    let client = redis::Client::open(url.as_str())?;

    println!("Redis at {url}, {pairs} calls per measurement\n");
    println!("| what | threads | p50 µs | p99 µs | calls/s |");
    println!("|---|---|---|---|---|");
    let mut ping = Vec::new();
    for threads in [1, 8] {
        let stats = measure(threads, pairs, || {
            let mut con = client.get_connection()?;
            Ok(move || -> Res<Duration> {
                let t = Instant::now();
                redis::cmd("PING").query::<String>(&mut con)?;
                Ok(t.elapsed())
            })
        })?;
        row("PING", threads, &stats);
        ping.push(stats);
    }

    let engine = Arc::new(Engine::from_json(
        &serde_json::json!({
            "providers": [{"name": "gpt", "quotas": [
                {"dimension": "requests", "limit": 1_000_000_000_i64, "window": "day"},
                {"dimension": "tokens", "limit": 1_000_000_000_i64, "window": "day"},
                {"dimension": "concurrency", "limit": 10_000}]}],
            "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
            "store": {"kind": "redis", "url": url, "prefix": format!("bench-{}", std::process::id()),
                      "on_error": "closed", "timeout_ms": 1000}
        })
        .to_string(),
    )?);
    let mut acquire = Vec::new();
    for threads in [1, 8] {
        let stats = measure(threads, pairs, || {
            let e = engine.clone();
            Ok(move || -> Res<Duration> {
                let t = Instant::now();
                let p = e.acquire("chat", &Request::new().tokens(100, 50))?;
                let took = t.elapsed();
                e.complete(p.id, &Outcome::success(5, 90, 40))?;
                Ok(took)
            })
        })?;
        row("ratewise acquire (of acquire+complete)", threads, &stats);
        acquire.push(stats);
    }
    println!(
        "\nratewise acquire p50 / PING p50: {:.2}× with 1 thread, {:.2}× with 8 threads",
        acquire[0].p50 / ping[0].p50,
        acquire[1].p50 / ping[1].p50
    );

    println!("\n8 threads racing for a limit of 1,000 (each thread calls until refused 50 times):\n");
    println!("| approach | admitted | over-admitted | p50 µs |");
    println!("|---|---|---|---|");
    let limit = 1000;
    let zset = redis::Script::new(
        r"local now = tonumber(ARGV[1]); local window = tonumber(ARGV[2]); local limit = tonumber(ARGV[3])
          redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
          if redis.call('ZCARD', KEYS[1]) < limit then
            redis.call('ZADD', KEYS[1], now, ARGV[4]); redis.call('PEXPIRE', KEYS[1], window); return 1
          end
          return 0",
    );
    let key = format!("bench-zset-{}", std::process::id());
    let seq = Arc::new(AtomicU64::new(0));
    let (admitted, p50) = race(|| {
        let mut con = client.get_connection()?;
        let (zset, key, seq) = (zset.clone(), key.clone(), seq.clone());
        Ok(move || -> Res<bool> {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let member = seq.fetch_add(1, Ordering::Relaxed);
            let ok: i64 = zset
                .key(&key)
                .arg(now)
                .arg(3_600_000)
                .arg(limit)
                .arg(member)
                .invoke(&mut con)?;
            Ok(ok == 1)
        })
    })?;
    println!(
        "| sorted-set sliding window (Lua script) | {admitted} | {} | {p50:.1} |",
        admitted.saturating_sub(limit)
    );
    let key = format!("bench-getset-{}", std::process::id());
    let (admitted, p50) = race(|| {
        let mut con = client.get_connection()?;
        let key = key.clone();
        Ok(move || -> Res<bool> {
            let used: Option<u64> = redis::cmd("GET").arg(&key).query(&mut con)?;
            let used = used.unwrap_or(0);
            if used >= limit {
                return Ok(false);
            }
            redis::cmd("SET").arg(&key).arg(used + 1).query::<()>(&mut con)?;
            Ok(true)
        })
    })?;
    println!(
        "| client-side GET then SET counter | {admitted} | {} | {p50:.1} |",
        admitted.saturating_sub(limit)
    );
    let race_engine = Arc::new(Engine::from_json(
        &serde_json::json!({
            "providers": [{"name": "gpt", "quotas": [{"dimension": "requests", "limit": limit, "window": "day"}]}],
            "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
            "store": {"kind": "redis", "url": url, "prefix": format!("bench-race-{}", std::process::id()),
                      "on_error": "closed", "timeout_ms": 1000}
        })
        .to_string(),
    )?);
    let (admitted, p50) = race(|| {
        let e = race_engine.clone();
        Ok(move || -> Res<bool> {
            match e.acquire("chat", &Request::new()) {
                Ok(p) => {
                    e.complete(p.id, &Outcome::success(1, 0, 0))?;
                    Ok(true)
                }
                Err(ratewise::Error::NoAvailableProvider { .. }) => Ok(false),
                Err(err) => Err(err.into()),
            }
        })
    })?;
    println!(
        "| ratewise (acquire, then complete) | {admitted} | {} | {p50:.1} |",
        admitted.saturating_sub(limit)
    );
    Ok(())
}

struct Stats {
    p50: f64,
    p99: f64,
    per_s: f64,
}

fn row(what: &str, threads: usize, s: &Stats) {
    println!("| {what} | {threads} | {:.1} | {:.1} | {:.0} |", s.p50, s.p99, s.per_s);
}

fn summarize(mut lat: Vec<Duration>, calls: usize, wall: Duration) -> Stats {
    lat.sort();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    Stats {
        p50: at(0.5),
        p99: at(0.99),
        per_s: calls as f64 / wall.as_secs_f64(),
    }
}

/// `threads` threads each make `calls / threads` calls of the closure `make` builds for them;
/// each call returns the latency it measured (its whole duration, or the part that counts).
fn measure<F>(threads: usize, calls: usize, make: impl Fn() -> Res<F>) -> Res<Stats>
where
    F: FnMut() -> Res<Duration> + Send + 'static,
{
    let per = calls / threads;
    let workers: Vec<F> = (0..threads).map(|_| make()).collect::<Res<_>>()?;
    let start = Instant::now();
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut f| {
            std::thread::spawn(move || -> Res<Vec<Duration>> {
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    lat.push(f()?);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "a thread panicked")??);
    }
    Ok(summarize(all, per * threads, start.elapsed()))
}

/// 8 threads call until each has been refused 50 times; returns (admitted, p50 µs).
fn race<F>(make: impl Fn() -> Res<F>) -> Res<(u64, f64)>
where
    F: FnMut() -> Res<bool> + Send + 'static,
{
    let workers: Vec<F> = (0..8).map(|_| make()).collect::<Res<_>>()?;
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut f| {
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Res<(u64, Vec<Duration>)> {
                barrier.wait();
                let (mut admitted, mut refused, mut lat) = (0, 0, Vec::new());
                while refused < 50 {
                    let t = Instant::now();
                    if f()? {
                        admitted += 1;
                    } else {
                        refused += 1;
                    }
                    lat.push(t.elapsed());
                }
                Ok((admitted, lat))
            })
        })
        .collect();
    let (mut admitted, mut all) = (0, Vec::new());
    for h in handles {
        let (a, lat) = h.join().map_err(|_| "a thread panicked")??;
        admitted += a;
        all.extend(lat);
    }
    let n = all.len();
    Ok((admitted, summarize(all, n, Duration::from_secs(1)).p50))
}
