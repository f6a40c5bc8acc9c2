//! The Redis store against a real server (docs/design.md §9). Each test starts its own `redis-server`
//! on a free loopback port (no persistence) and stops it at the end, so that stopping or
//! pausing one server disturbs no other test. `redis-server` must be on `PATH` (`.ci/run`
//! installs it).
//!
//! Timings are printed, never asserted: the bounds checked are generous multiples of
//! `timeout_ms` that only a hang would miss.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests say where they fail
#![cfg(feature = "redis")]

use ratewise::conformance::{discover, run_scenario, run_scenario_on};
use ratewise::{Clock, Config, Engine, ManualClock, Outcome, Request, SystemClock};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A redis-server of this test's own.
struct Server {
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        let dir = std::env::temp_dir().join(format!("ratewise-redis-test-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let server = Server { port, dir };
        server.launch();
        server
    }

    fn launch(&self) {
        let status = Command::new("redis-server")
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
            ])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .arg("--dir")
            .arg(&self.dir)
            .status()
            .expect("cannot run redis-server (is it installed?)");
        assert!(status.success(), "redis-server failed to start");
        for _ in 0..200 {
            if self.cli(&["ping"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn stop(&self) {
        let _ = self.cli(&["shutdown", "nosave"]);
        for _ in 0..200 {
            if self.cli(&["ping"]).trim() != "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A counter of `INFO commandstats` (`cmdstat_<command>:calls=`).
    fn calls(&self, command: &str) -> u64 {
        let info = self.cli(&["info", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(server: &Server, prefix: &str, body: Value, store_extra: Value) -> Config {
    let mut body = body;
    let mut store = json!({"kind": "redis", "url": server.url(), "prefix": prefix, "timeout_ms": 50});
    if let (Some(s), Some(extra)) = (store.as_object_mut(), store_extra.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    body["store"] = store;
    Config::from_value(&body).unwrap()
}

fn engine(config: Config, clock: Clock) -> Engine {
    Engine::with_clock(config, clock).unwrap()
}

fn one_provider(quotas: Value) -> Value {
    json!({
        "providers": [{"name": "gpt", "quotas": quotas}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}]
    })
}

#[test]
fn the_whole_conformance_suite_gives_the_memory_transcript() {
    let server = Server::start();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/scenarios");
    let mut errors = Vec::new();
    let scenarios = discover(&dir, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(scenarios.len() > 100, "only {} scenarios found", scenarios.len());
    let mut mismatches = Vec::new();
    for (order, (file, scenario)) in scenarios.iter().enumerate() {
        let id = scenario.get("id").and_then(Value::as_str).unwrap_or("?");
        let store = json!({"kind": "redis", "url": server.url(), "prefix": format!("conf-{order}"),
                           "on_error": "closed", "timeout_ms": 2000});
        let memory = run_scenario(id, scenario);
        let redis = run_scenario_on(id, scenario, Some(&store));
        let failures = redis.failures();
        if !failures.is_empty() {
            mismatches.push(format!("{file} {id}: {failures:?}"));
            continue;
        }
        // The one difference allowed: the store's kind in snapshots.
        let lines: Vec<String> = redis
            .lines()
            .iter()
            .map(|l| l.replace(r#""/store/kind":"redis""#, r#""/store/kind":"memory""#))
            .collect();
        if lines != memory.lines() {
            mismatches.push(format!(
                "{file} {id}: transcript differs\n{lines:#?}\n{:#?}",
                memory.lines()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    eprintln!(
        "{} scenarios replayed on Redis with the memory store's transcript",
        scenarios.len()
    );
}

#[test]
fn one_script_call_per_acquire_and_per_settlement() {
    let server = Server::start();
    let clock = ManualClock::new(1_000);
    let e = engine(
        config(
            &server,
            "rt",
            one_provider(json!([{"dimension": "requests", "limit": 1000},
                                {"dimension": "tokens", "limit": 100000},
                                {"dimension": "concurrency", "limit": 50}])),
            json!({}),
        ),
        clock.clone().into(),
    );
    let _ = server.cli(&["config", "resetstat"]);
    let n = 40;
    let mut permits = Vec::new();
    for _ in 0..n {
        permits.push(e.acquire("chat", &Request::new().tokens(100, 50)).unwrap());
    }
    let after_acquires = server.calls("evalsha");
    for p in permits {
        e.complete(p.id, &Outcome::success(100, 90, 40)).unwrap();
    }
    let after_completes = server.calls("evalsha");
    let _ = e.select("chat", &Request::new());
    let after_select = server.calls("evalsha");
    eprintln!(
        "INFO commandstats: {after_acquires} script calls for {n} acquires, {} for {n} completes, {} for a select",
        after_completes - after_acquires,
        after_select - after_completes
    );
    assert_eq!(after_acquires, n as u64, "one EVALSHA per acquire");
    assert_eq!(after_completes - after_acquires, n as u64, "one EVALSHA per complete");
    assert_eq!(after_select, after_completes, "select reads the last reply");
    assert_eq!(server.calls("eval"), 0);
}

#[test]
fn two_engines_share_buckets_concurrency_holds_and_the_circuit() {
    let server = Server::start();
    let clock = ManualClock::new(0);
    let body = json!({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 10, "window": "minute"},
                                               {"dimension": "concurrency", "limit": 3}],
                       "cooldown_ms": 1000},
                      {"name": "b"}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "a", "priority": 10},
                                                        {"provider": "b", "priority": 1}]}],
        "scoring": {"quota": 0.0, "health": 0.0, "priority": 1.0, "latency": 0.0, "cost": 0.0}
    });
    let one = engine(config(&server, "share", body.clone(), json!({})), clock.clone().into());
    let two = engine(config(&server, "share", body, json!({})), clock.clone().into());
    // Concurrency: three slots in all, whichever engine takes them.
    let p1 = one.acquire("chat", &Request::new()).unwrap();
    let p2 = two.acquire("chat", &Request::new()).unwrap();
    let p3 = one.acquire("chat", &Request::new()).unwrap();
    assert_eq!([p1.provider(), p2.provider(), p3.provider()], ["a", "a", "a"]);
    let p4 = two.acquire("chat", &Request::new()).unwrap();
    assert_eq!(
        p4.provider(),
        "b",
        "the fourth call finds a's three slots taken by both engines"
    );
    // Settling in one engine frees the slot for the other.
    one.complete(p1.id, &Outcome::success(100, 0, 0)).unwrap();
    let p5 = two.acquire("chat", &Request::new()).unwrap();
    assert_eq!(p5.provider(), "a");
    assert_eq!(two.remaining("a", ratewise::Dimension::Requests), Ok(Some(6)));
    // One 429 with Retry-After in engine one holds a for engine two as well.
    let mut limited = Outcome::new(ratewise::Status::RateLimited);
    limited.retry_after_ms = Some(5_000);
    one.complete(p3.id, &limited).unwrap();
    let p6 = two.acquire("chat", &Request::new()).unwrap();
    assert_eq!(p6.provider(), "b", "held by the other engine's 429");
    assert_eq!(two.snapshot().pointer("/providers/a/held_ms"), Some(&json!(5_000)));
    clock.advance(5_000);
    // Three failures across the two engines open the circuit for both.
    for (e, p) in [(&two, p2.id), (&two, p5.id)] {
        e.complete(p, &Outcome::new(ratewise::Status::ServerError)).unwrap();
    }
    let p7 = one.acquire("chat", &Request::new()).unwrap();
    assert_eq!(p7.provider(), "a");
    one.complete(p7.id, &Outcome::new(ratewise::Status::Timeout)).unwrap();
    let p8 = two.acquire("chat", &Request::new()).unwrap();
    assert_eq!(p8.provider(), "b");
    assert_eq!(two.circuit("a"), Ok(ratewise::CircuitState::Open));
    for p in [p4, p6, p8] {
        two.complete(p.id, &Outcome::success(10, 0, 0)).unwrap();
    }
}

#[test]
fn a_disagreeing_configuration_is_a_store_conflict() {
    let server = Server::start();
    let clock = ManualClock::new(0);
    let _first = engine(
        config(
            &server,
            "conflict",
            one_provider(json!([{"dimension": "requests", "limit": 10}])),
            json!({}),
        ),
        clock.clone().into(),
    );
    let other = Engine::with_clock(
        config(
            &server,
            "conflict",
            one_provider(json!([{"dimension": "requests", "limit": 20}])),
            json!({}),
        ),
        clock.into(),
    );
    assert_eq!(other.err().map(|e| e.code()), Some("store_conflict"));
}

/// With `RATEWISE_CRASH_CHILD` set this test is the child of
/// `a_killed_process_frees_its_slots_after_the_permit_ttl`: it takes both slots and waits to be
/// killed.
#[test]
fn crash_child() {
    let Ok(url) = std::env::var("RATEWISE_CRASH_CHILD") else {
        return;
    };
    let text = json!({
        "providers": [{"name": "gpt", "quotas": [{"dimension": "concurrency", "limit": 2}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
        "permit_ttl_ms": 1500,
        "store": {"kind": "redis", "url": url, "prefix": "crash", "on_error": "closed", "timeout_ms": 2000}
    });
    let e = Engine::from_json(&text.to_string()).unwrap();
    let a = e.acquire("chat", &Request::new());
    let b = e.acquire("chat", &Request::new());
    println!("HOLDING {} {}", a.is_ok(), b.is_ok());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_process_frees_its_slots_after_the_permit_ttl() {
    let server = Server::start();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("RATEWISE_CRASH_CHILD", server.url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = String::new();
    let started = Instant::now();
    while !seen.contains("HOLDING") && started.elapsed() < Duration::from_secs(30) {
        let mut buf = [0u8; 256];
        match std::io::Read::read(&mut out, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(
        seen.contains("HOLDING true true"),
        "the child did not take both slots: {seen}"
    );
    // SIGKILL: no destructor, no completion.
    let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
    let _ = child.wait();
    let killed_at = Instant::now();
    let text = json!({
        "providers": [{"name": "gpt", "quotas": [{"dimension": "concurrency", "limit": 2}]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
        "permit_ttl_ms": 1500,
        "store": {"kind": "redis", "url": server.url(), "prefix": "crash", "on_error": "closed", "timeout_ms": 2000}
    });
    let e = Engine::from_json(&text.to_string()).unwrap();
    let refused = e.acquire("chat", &Request::new());
    assert_eq!(
        refused.as_ref().err().map(|e| e.code()),
        Some("no_available_provider"),
        "the dead process's slots are still within their deadline"
    );
    let mut freed = None;
    while killed_at.elapsed() < Duration::from_secs(10) {
        if let Ok(p) = e.acquire("chat", &Request::new()) {
            freed = Some((p, killed_at.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let (p, after) = freed.expect("the slots were never freed");
    eprintln!(
        "a killed process's slots were free again {} ms after the kill (permit_ttl_ms 1500)",
        after.as_millis()
    );
    let q = e.acquire("chat", &Request::new());
    assert!(q.is_ok(), "both slots are free");
    assert_eq!(e.snapshot().pointer("/providers/gpt/in_flight"), Some(&json!(2)));
    drop(p);
}

/// Runs `f` and returns how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn fault_config(server: &Server, prefix: &str, mode: &str) -> Config {
    // Hourly, so that the refill during the drill (one request per 36 s) does not blur counts.
    config(
        server,
        prefix,
        one_provider(json!([{"dimension": "requests", "limit": 100, "window": "hour"}])),
        json!({"on_error": mode, "local_share": 0.25, "timeout_ms": 50}),
    )
}

/// Drives one engine per `on_error` mode through a fault (`fault` starts it, `heal` ends it).
fn fault_drill(server: &Server, name: &str, survives: bool, fault: impl Fn(), heal: impl Fn()) {
    let engines: Vec<(&str, Engine)> = ["local", "open", "closed"]
        .into_iter()
        .map(|mode| {
            (
                mode,
                engine(fault_config(server, &format!("{name}-{mode}"), mode), Clock::system()),
            )
        })
        .collect();
    for (_, e) in &engines {
        for _ in 0..10 {
            let p = e.acquire("chat", &Request::new()).unwrap();
            e.complete(p.id, &Outcome::success(10, 0, 0)).unwrap();
        }
    }
    fault();
    for (mode, e) in &engines {
        let (first, took) = timed(|| e.acquire("chat", &Request::new()));
        eprintln!(
            "{name}, on_error {mode}: first acquire answered in {} ms",
            took.as_millis()
        );
        assert!(
            took < Duration::from_secs(2),
            "{name}/{mode}: {took:?} is far beyond timeout_ms"
        );
        let mut granted = usize::from(first.is_ok());
        let (_, rest) = timed(|| {
            for _ in 0..200 {
                if e.acquire("chat", &Request::new()).is_ok() {
                    granted += 1;
                }
            }
        });
        eprintln!(
            "{name}, on_error {mode}: 200 more acquires in {} ms, {granted} granted in all, mode {}",
            rest.as_millis(),
            e.snapshot().pointer("/store/mode").cloned().unwrap_or_default()
        );
        assert!(
            rest < Duration::from_secs(10),
            "{name}/{mode}: degraded calls must not each wait"
        );
        match *mode {
            // 90 of 100 left, of which this process may take a quarter of the capacity (25).
            "local" => {
                assert_eq!(granted, 25, "local enforces local_share of the limit");
                assert_eq!(e.snapshot().pointer("/store/mode"), Some(&json!("local")));
            }
            "open" => {
                assert_eq!(granted, 201, "open admits everything");
                assert_eq!(e.snapshot().pointer("/store/mode"), Some(&json!("open")));
            }
            _ => {
                assert_eq!(granted, 0, "closed refuses");
                assert_eq!(first.err().map(|e| e.code()), Some("store_unavailable"));
                assert_eq!(e.snapshot().pointer("/store/mode"), Some(&json!("unavailable")));
            }
        }
    }
    heal();
    // Accounting resumes from Redis's state once the engine tries again (at most a second).
    for (mode, e) in &engines {
        let started = Instant::now();
        loop {
            let r = e.acquire("chat", &Request::new());
            if e.snapshot().pointer("/store/mode") == Some(&json!("shared")) {
                eprintln!(
                    "{name}, on_error {mode}: shared again after {} ms",
                    started.elapsed().as_millis()
                );
                break;
            }
            drop(r);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name}/{mode}: never recovered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Shared again: a new process sees what this one sees, and this one's next call counts
        // for both.
        let newcomer = engine(fault_config(server, &format!("{name}-{mode}"), mode), Clock::system());
        let left = |e: &Engine| e.remaining("gpt", ratewise::Dimension::Requests).unwrap_or_default();
        let p = e.acquire("chat", &Request::new()).unwrap();
        let _ = newcomer.acquire("chat", &Request::new()).map(|p| newcomer.cancel(p.id));
        assert_eq!(left(&newcomer), left(e), "{name}/{mode}: the newcomer's view");
        e.complete(p.id, &Outcome::success(10, 0, 0)).unwrap();
        if survives {
            // The 10 requests before the fault, and the ones since, are still counted.
            assert!(left(e).is_some_and(|l| l <= 89), "{name}/{mode}: {:?} left", left(e));
        }
    }
}

#[test]
fn redis_stopped_then_restarted() {
    let server = Server::start();
    // Without persistence a restarted Redis starts empty: accounting resumes from there.
    fault_drill(&server, "stopped", false, || server.stop(), || server.launch());
}

#[test]
fn redis_hung_by_client_pause() {
    let server = Server::start();
    fault_drill(
        &server,
        "paused",
        true,
        || {
            let _ = server.cli(&["client", "pause", "3000", "all"]);
        },
        || std::thread::sleep(Duration::from_millis(3000)),
    );
}

#[test]
fn clocks_30_seconds_apart_agree_through_the_server() {
    let server = Server::start();
    let body = one_provider(json!([{"dimension": "requests", "limit": 60, "window": "minute"}]));
    let on_time = engine(
        config(&server, "skew", body.clone(), json!({})),
        Clock::System(SystemClock::skewed(0)),
    );
    let ahead = engine(
        config(&server, "skew", body, json!({})),
        Clock::System(SystemClock::skewed(30_000)),
    );
    let gap = (ahead.now_ms() - on_time.now_ms()).abs();
    eprintln!("engines whose clocks are 30 s apart read {gap} ms apart on the server's clock");
    assert!(gap < 1_000, "{gap} ms apart");
    for _ in 0..30 {
        let p = on_time.acquire("chat", &Request::new()).unwrap();
        on_time.complete(p.id, &Outcome::success(10, 0, 0)).unwrap();
    }
    // The skewed engine sees the 30 used (give or take the refill of a second: 1 per second).
    let p = ahead.acquire("chat", &Request::new()).unwrap();
    let left = ahead
        .remaining("gpt", ratewise::Dimension::Requests)
        .unwrap_or_default()
        .unwrap_or_default();
    assert!(
        (29..=31).contains(&left),
        "{left} left: a skewed clock would have refilled 30 more"
    );
    // A hold of 10 s set by the skewed engine is 10 s for the other, not 40 s or -20 s.
    let mut limited = Outcome::new(ratewise::Status::RateLimited);
    limited.retry_after_ms = Some(10_000);
    ahead.complete(p.id, &limited).unwrap();
    let _ = on_time.acquire("chat", &Request::new());
    let held = on_time
        .snapshot()
        .pointer("/providers/gpt/held_ms")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    eprintln!("a 10 s hold set by the skewed engine: {held} ms left for the other");
    // Each engine extrapolates the server's clock from its own round trips: they agree within
    // a few ms (printed above), not to the ms.
    assert!((9_000..=10_050).contains(&held), "{held}");
}

#[test]
fn a_bad_url_or_an_unreachable_server_is_a_clear_error_or_the_on_error_mode() {
    let bad = Config::from_json(r#"{"store": {"kind": "redis", "url": "http://nowhere"}}"#).unwrap();
    let err = Engine::new(bad).expect_err("a bad URL was accepted");
    assert_eq!(err.code(), "invalid_config");
    assert!(err.to_string().contains("store.url"), "{err}");
    // Nothing listens on this port (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    for (mode, code) in [("closed", Some("store_unavailable")), ("local", None), ("open", None)] {
        let text = json!({"providers": [{"name": "gpt"}], "capabilities": [{"name": "chat", "providers": [{"provider": "gpt"}]}],
                          "store": {"kind": "redis", "url": format!("redis://127.0.0.1:{port}/0"), "on_error": mode}});
        let (built, took) = timed(|| Engine::from_json(&text.to_string()));
        eprintln!(
            "unreachable server, on_error {mode}: construction answered in {} ms",
            took.as_millis()
        );
        match code {
            Some(code) => {
                let e = built.expect_err("construction succeeded");
                assert_eq!(e.code(), code);
                assert!(e.to_string().contains("127.0.0.1"), "{e}");
            }
            None => {
                let e = built.unwrap();
                assert_eq!(e.snapshot().pointer("/store/mode"), Some(&json!(mode)));
                assert!(e.acquire("chat", &Request::new()).is_ok());
            }
        }
    }
}

#[test]
fn a_waiter_gets_the_slot_another_process_frees() {
    let server = Server::start();
    let body = one_provider(json!([{"dimension": "concurrency", "limit": 1}]));
    let holder = engine(config(&server, "wait", body.clone(), json!({})), Clock::system());
    let waiter = std::sync::Arc::new(engine(config(&server, "wait", body, json!({})), Clock::system()));
    let held = holder.acquire("chat", &Request::new()).unwrap();
    let w = waiter.clone();
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        (w.acquire_wait("chat", &Request::new(), 10_000), started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // Completed in the other engine: only Redis knows the slot is free.
    holder.complete(held.id, &Outcome::success(300, 0, 0)).unwrap();
    let (got, after) = waiting.join().unwrap();
    eprintln!(
        "a waiter got the slot another engine freed after {} ms of waiting",
        after.as_millis()
    );
    assert!(got.is_ok(), "the waiter was not granted: {:?}", got.err());
    // Granted soon after the slot was freed, not when its 10 s deadline forced a last poll (a
    // generous bound: the expected wait is ~300 ms).
    assert!(
        after < Duration::from_secs(9),
        "granted only at its deadline ({after:?})"
    );
}

/// A TCP proxy in front of `target` that delays every chunk the server sends by `delay` (a slow
/// link), until `stop` is set; it accepts at most 64 connections.
fn delaying_proxy(target: u16, delay: Duration, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::Ordering;
    let listener = TcpListener::bind("127.0.0.1:0").expect("no free port");
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let _ = listener.set_nonblocking(true);
    std::thread::spawn(move || {
        let mut accepted = 0;
        while !stop.load(Ordering::Acquire) && accepted < 64 {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            accepted += 1;
            let _ = client.set_nonblocking(false);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let pump = |mut from: TcpStream, mut to: TcpStream, delay: Option<Duration>| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if let Some(d) = delay {
                            std::thread::sleep(d);
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            };
            match (client.try_clone(), server.try_clone()) {
                (Ok(c2), Ok(s2)) => {
                    pump(client, server, None);
                    pump(s2, c2, Some(delay));
                }
                _ => continue,
            }
        }
    });
    port
}

/// Waiters on a shared store are polled with Redis round trips; a poll must not hold the
/// queue's lock across them, or every `select`/`acquire` (they read the queue to skip what
/// waiters could use) waits for the whole poll: 16 waiters × a 40 ms link was up to 1,360 ms
/// for a non-waiting acquire on an idle capability instead of one round trip.
#[test]
fn a_poll_of_waiters_never_blocks_a_non_waiting_acquire() {
    let server = Server::start();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let delay = Duration::from_millis(40);
    let proxy = delaying_proxy(server.port, delay, stop.clone());
    // 16 capabilities, each with its own provider, all sharing one concurrency slot: each
    // waiter is its own grant attempt (one round trip) in every poll.
    let mut providers: Vec<Value> = (0..16)
        .map(|i| json!({"name": format!("p{i}"), "quotas": [{"dimension": "concurrency", "limit": 1, "key": "org"}]}))
        .collect();
    providers.push(json!({"name": "idle"}));
    let mut capabilities: Vec<Value> = (0..16)
        .map(|i| json!({"name": format!("c{i}"), "providers": [{"provider": format!("p{i}")}]}))
        .collect();
    capabilities.push(json!({"name": "idle", "providers": [{"provider": "idle"}]}));
    let body = json!({"providers": providers, "capabilities": capabilities, "store": {
        "kind": "redis", "url": format!("redis://127.0.0.1:{proxy}/0"), "prefix": "blocking", "timeout_ms": 2000}});
    let config = Config::from_value(&body).unwrap();
    let engine = std::sync::Arc::new(engine(config, Clock::system()));
    // Warm up (connection, script load), then take the one slot.
    for _ in 0..2 {
        let p = engine.acquire("idle", &Request::new()).unwrap();
        engine.complete(p.id, &Outcome::success(1, 0, 0)).unwrap();
    }
    let held = engine.acquire("c0", &Request::new()).unwrap();
    let waiters: Vec<_> = (0..16)
        .map(|i| engine.acquire_async(&format!("c{i}"), &Request::new(), 60_000).unwrap())
        .collect();
    // Let the timer thread poll the queue (every 50 ms with nothing predictable).
    std::thread::sleep(Duration::from_millis(300));
    let before = server.calls("evalsha");
    let mut worst = Duration::ZERO;
    for _ in 0..12 {
        let (permit, took) = timed(|| engine.acquire("idle", &Request::new()));
        let permit = permit.unwrap();
        worst = worst.max(took);
        engine.complete(permit.id, &Outcome::success(1, 0, 0)).unwrap();
        std::thread::sleep(Duration::from_millis(37));
    }
    let polled = server.calls("evalsha") - before;
    println!(
        "non-waiting acquire, worst of 12 with 16 waiters polled behind a 40 ms link: {worst:?} ({polled} script calls meanwhile)"
    );
    // The waiters really were polled (each poll is up to 16 calls) while we measured.
    assert!(
        polled >= 12 * 2 + 16,
        "the waiters were not polled: {polled} script calls"
    );
    // One round trip is 40 ms; a poll of 16 waiters is 640 ms.
    assert!(
        worst < 6 * delay,
        "a non-waiting acquire took {worst:?}: it waited for a poll"
    );
    drop(waiters);
    engine.complete(held.id, &Outcome::success(1, 0, 0)).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
}

// ----- faults Redis really has (issue 15) ----------------------------------------------------

impl Server {
    fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.pid"))
            .map(|s| s.trim().to_string())
            .expect("redis.pid")
    }

    /// Stops the server's process (SIGSTOP): connections stay open, nothing answers.
    fn freeze(&self) {
        let _ = Command::new("kill").args(["-STOP", &self.pid()]).status();
    }

    fn thaw(&self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid()]).status();
    }
}

/// One provider with a concurrency limit, on Redis, in `mode`, with a 50 ms timeout.
fn slots(server: &Server, prefix: &str, limit: i64, mode: &str) -> Engine {
    let body = one_provider(json!([{"dimension": "concurrency", "limit": limit}]));
    let extra = json!({"on_error": mode, "local_share": 0.5, "timeout_ms": 50});
    engine(config(server, prefix, body, extra), Clock::system())
}

fn in_flight_refused(e: &Engine) -> bool {
    matches!(
        e.acquire("chat", &Request::new()),
        Err(ratewise::Error::NoAvailableProvider { .. })
    )
}

/// Calls `f` until it answers `true` (Redis back, the engine recovered), at most 5 s.
fn until(mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(5), "never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

fn mode(e: &Engine) -> String {
    e.snapshot()
        .pointer("/store/mode")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A permit granted in memory while Redis did not answer (paused, or its process stopped),
/// completed after it came back, must not refund in Redis a slot Redis never charged (before: 6
/// in flight against a limit of 4).
#[test]
fn a_local_permit_settled_after_recovery_refunds_nothing_in_redis() {
    let server = Server::start();
    for fault in ["pause", "sigstop"] {
        let prefix = format!("local-settle-{fault}");
        let a = slots(&server, &prefix, 4, "local");
        let b = slots(&server, &prefix, 4, "local");
        match fault {
            "pause" => {
                server.cli(&["client", "pause", "700", "ALL"]);
            }
            _ => server.freeze(),
        }
        // Redis does not answer: A degrades and grants in memory (local_share 0.5 of 4 = 2).
        let local: Vec<_> = (0..2).map(|_| a.acquire("chat", &Request::new()).unwrap()).collect();
        assert_eq!(mode(&a), "local", "{fault}");
        match fault {
            "pause" => std::thread::sleep(Duration::from_millis(800)),
            _ => server.thaw(),
        }
        // A recovers (a call that reaches Redis and changes nothing; it also releases what its
        // lost acquire may have reserved once the server ran it).
        until(|| {
            let _ = a.sync_headers("gpt", &[] as &[(&str, &str)]);
            mode(&a) == "shared"
        });
        // B takes every shared slot; then A settles its local permits.
        let shared: Vec<_> = (0..4).map(|_| b.acquire("chat", &Request::new()).unwrap()).collect();
        assert!(in_flight_refused(&b), "{fault}");
        for p in &local {
            a.complete(p.id, &Outcome::success(1, 0, 0)).unwrap();
        }
        // Redis still counts B's 4: nothing more fits.
        assert!(
            in_flight_refused(&b),
            "{fault}: a local permit's settlement freed a slot Redis never charged"
        );
        assert!(in_flight_refused(&a), "{fault}");
        for p in shared {
            b.complete(p.id, &Outcome::success(1, 0, 0)).unwrap();
        }
    }
}

/// Shared permits completed while Redis did not answer must free their slots once it answers
/// again, not after `permit_ttl_ms` (before: every process refused for the TTL), in every mode.
#[test]
fn shared_permits_settled_during_an_outage_free_their_slots_on_recovery() {
    let server = Server::start();
    for on_error in ["local", "closed"] {
        let prefix = format!("outage-settle-{on_error}");
        let a = slots(&server, &prefix, 2, on_error);
        let b = slots(&server, &prefix, 2, on_error);
        let held: Vec<_> = (0..2).map(|_| a.acquire("chat", &Request::new()).unwrap()).collect();
        assert!(in_flight_refused(&b));
        server.freeze();
        for p in &held {
            // The outcome is known; Redis will be told when it answers.
            a.complete(p.id, &Outcome::success(1, 0, 0)).unwrap();
        }
        server.thaw();
        // A's next call that reaches Redis sends what it kept.
        let took = until(|| {
            let _ = a.acquire("chat", &Request::new()).map(|p| a.cancel(p.id));
            a.snapshot().pointer("/store/unsent") == Some(&json!(0)) && mode(&a) == "shared"
        });
        eprintln!(
            "{on_error}: settlements made during the outage reached Redis {} ms after it came back",
            took.as_millis()
        );
        let again: Vec<_> = (0..2).map(|_| b.acquire("chat", &Request::new())).collect();
        assert!(
            again.iter().all(Result::is_ok),
            "{on_error}: the slots stayed taken: {again:?}"
        );
    }
}

/// An acquire whose reply was lost (the server stopped mid-call) may still run when the server
/// resumes; the slot it takes must be released at recovery (before: held for permit_ttl_ms).
#[test]
fn an_acquire_whose_reply_was_lost_leaves_no_phantom_slot() {
    let server = Server::start();
    let a = slots(&server, "phantom", 2, "local");
    let b = slots(&server, "phantom", 2, "local");
    server.freeze();
    // Times out; the script runs when the server resumes.
    let local = a.acquire("chat", &Request::new()).unwrap();
    server.thaw();
    let took = until(|| {
        let _ = a.acquire("chat", &Request::new()).map(|p| a.cancel(p.id));
        a.snapshot().pointer("/store/unsent") == Some(&json!(0)) && mode(&a) == "shared"
    });
    eprintln!(
        "the lost acquire was released {} ms after the server resumed",
        took.as_millis()
    );
    a.complete(local.id, &Outcome::success(1, 0, 0)).unwrap();
    let both: Vec<_> = (0..2).map(|_| b.acquire("chat", &Request::new())).collect();
    assert!(both.iter().all(Result::is_ok), "a phantom slot is held: {both:?}");
}

/// FLUSHALL (or an empty restart) loses every bucket and slot; each engine detects it on its
/// next call, counts it in `/store/resets`, registers again and carries on.
#[test]
fn a_flushed_store_is_detected_counted_and_registered_again() {
    let server = Server::start();
    let a = slots(&server, "flushed", 4, "closed");
    let b = slots(&server, "flushed", 4, "closed");
    let held: Vec<_> = (0..4).map(|_| a.acquire("chat", &Request::new()).unwrap()).collect();
    assert!(in_flight_refused(&b));
    server.cli(&["flushall"]);
    // B's next call finds the state gone: it registers again (the slots Redis forgot are free).
    let p = b.acquire("chat", &Request::new()).unwrap();
    assert_eq!(b.snapshot().pointer("/store/resets"), Some(&json!(1)));
    assert_eq!(mode(&b), "shared");
    b.complete(p.id, &Outcome::success(1, 0, 0)).unwrap();
    a.complete(held[0].id, &Outcome::success(1, 0, 0)).unwrap();
    assert_eq!(a.snapshot().pointer("/store/resets"), Some(&json!(1)));
}

/// A `}` or `:` in a prefix or a key could make two prefixes share one bucket ("a" + "x}:b:y"
/// and "a}:b:x" + "y" were both `{a}:b:x}:b:y`); every key part is escaped now.
#[test]
fn braces_and_colons_in_prefixes_and_keys_never_share_a_bucket() {
    let server = Server::start();
    let body = |key: &str| one_provider(json!([{"dimension": "requests", "limit": 1, "window": "minute", "key": key}]));
    let one = engine(config(&server, "a", body("x}:b:y"), json!({})), Clock::system());
    let two = engine(config(&server, "a}:b:x", body("y"), json!({})), Clock::system());
    one.acquire("chat", &Request::new()).unwrap();
    assert!(
        two.acquire("chat", &Request::new()).is_ok(),
        "two prefixes shared one bucket"
    );
    let keys = server.cli(&["--scan"]);
    assert!(
        keys.lines().all(|k| k.matches('}').count() == 1),
        "a key escapes its hash tag: {keys}"
    );
}

/// An empty restart noticed while degraded (the engine registers again on recovery, in a new
/// epoch) is a lost store too, and counted.
#[test]
fn an_empty_restart_seen_while_degraded_is_counted() {
    let server = Server::start();
    let a = slots(&server, "restarted", 2, "local");
    a.acquire("chat", &Request::new())
        .map(|p| a.cancel(p.id))
        .unwrap()
        .unwrap();
    server.stop();
    let _ = a.acquire("chat", &Request::new());
    assert_eq!(mode(&a), "local");
    server.launch();
    until(|| {
        let _ = a.sync_headers("gpt", &[] as &[(&str, &str)]);
        mode(&a) == "shared"
    });
    assert_eq!(a.snapshot().pointer("/store/resets"), Some(&json!(1)));
}

/// Degraded to `local`, a process enforces `local_share` of each limit for its own traffic:
/// slots other processes held at the last reply are theirs to free, and it would never see
/// them freed (before: it refused everything for the whole outage).
#[test]
fn a_degraded_process_counts_only_its_own_slots() {
    let server = Server::start();
    let a = slots(&server, "own-slots", 4, "local");
    let b = slots(&server, "own-slots", 4, "local");
    let held: Vec<_> = (0..3).map(|_| a.acquire("chat", &Request::new()).unwrap()).collect();
    // B's mirror learns that 3 of 4 are taken.
    let p = b.acquire("chat", &Request::new()).unwrap();
    b.complete(p.id, &Outcome::success(1, 0, 0)).unwrap();
    server.freeze();
    let first = b.acquire("chat", &Request::new());
    let second = b.acquire("chat", &Request::new());
    let third = b.acquire("chat", &Request::new());
    server.thaw();
    assert_eq!(mode(&b), "local");
    // local_share 0.5 of 4: two slots of B's own.
    assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    assert!(third.is_err(), "{third:?}");
    drop(held);
}

/// docs/design.md §7 on the shared store: a permit another process granted after the
/// reporting call is in flight too, and is subtracted from the reported remaining.
#[test]
fn calibration_subtracts_what_other_processes_have_in_flight() {
    let server = Server::start();
    let clock = ManualClock::new(1_000);
    let body = one_provider(json!([{"dimension": "tokens", "limit": 1000, "window": "minute"}]));
    let a = engine(config(&server, "fl", body.clone(), json!({})), clock.clone().into());
    let b = engine(config(&server, "fl", body, json!({})), clock.clone().into());
    let reporter = a.acquire("chat", &Request::new().tokens(100, 0)).unwrap();
    clock.advance(10);
    // Granted by the other process after the reporting call: the provider has not seen it.
    let _other = b.acquire("chat", &Request::new().tokens(200, 0)).unwrap();
    let mut done = Outcome::success(50, 100, 0);
    done.headers = vec![("x-ratelimit-remaining-tokens".into(), "600".into())];
    a.complete(reporter.id, &done).unwrap();
    // 600 - 200, not the 600 reported (nor the local 1000 - 200 - 100 of neither engine).
    assert_eq!(a.remaining("gpt", ratewise::Dimension::Tokens).unwrap(), Some(400));
}
