//! Waiting in real time (system clock): many threads and futures wait on one engine with a
//! small quota. Every waiter is granted, in rank order, exactly once. Order and completeness
//! are asserted, never timings; the wake-up lateness is printed (recorded in bench/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests say where they fail

use ratewise::{Config, Engine, Outcome, Request, Status};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

const INTERVAL_MS: i64 = 20;

fn engine() -> Arc<Engine> {
    let config = Config::from_value(&json!({
        "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window_ms": INTERVAL_MS}]}],
        "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
        // No aging: once everyone waits, the order is the lane order.
        "lanes": [{"name": "critical"}, {"name": "normal"}, {"name": "batch"}]
    }))
    .unwrap();
    Arc::new(Engine::new(config).unwrap())
}

fn waiting(e: &Engine) -> u64 {
    let s = e.snapshot();
    ["critical", "normal", "batch"]
        .iter()
        .map(|l| s["lanes"][l]["waiting"].as_u64().unwrap_or(0))
        .sum()
}

fn wait_until_queued(e: &Engine, n: u64) {
    // Setup only: the waiters have to be queued before the quota frees.
    let start = Instant::now();
    while waiting(e) < n && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(waiting(e), n, "waiters did not all queue");
}

/// Checks grants: complete, unique, and in lane order; prints the mean lateness.
fn check(order: &[(usize, u64, Instant)], n: usize, start: Instant, what: &str) {
    assert_eq!(order.len(), n, "{what}: every waiter is granted");
    let mut ids: Vec<u64> = order.iter().map(|o| o.1).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "{what}: no permit is granted twice");
    let lanes: Vec<usize> = order.iter().map(|o| o.0).collect();
    let mut sorted = lanes.clone();
    sorted.sort_unstable();
    assert_eq!(lanes, sorted, "{what}: grants follow the lane order");
    let late: f64 = order
        .iter()
        .enumerate()
        .map(|(k, o)| o.2.duration_since(start).as_secs_f64() * 1000.0 - ((k + 1) as f64 * INTERVAL_MS as f64))
        .sum::<f64>()
        / n as f64;
    println!("{what}: {n} waiters granted in lane order; mean lateness after each unit frees: {late:.2} ms");
}

#[test]
fn blocking_waiters_are_granted_in_rank_order() {
    let e = engine();
    let first = e.acquire("c", &Request::new()).unwrap();
    // The next unit refills one interval after this: the reference for the lateness.
    let start = Instant::now();
    let lanes = ["batch", "normal", "critical"];
    let n = 18;
    let order: Arc<Mutex<Vec<(usize, u64, Instant)>>> = Arc::default();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (e, order) = (e.clone(), order.clone());
            std::thread::spawn(move || {
                let lane = lanes[i % 3];
                let p = e.acquire_wait("c", &Request::new().lane(lane), 60_000);
                let p = p.unwrap();
                let rank = 2 - (i % 3); // critical 0, normal 1, batch 2
                order
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((rank, p.id.0, Instant::now()));
                let _ = e.complete(p.id, &Outcome::new(Status::Success));
            })
        })
        .collect();
    wait_until_queued(&e, n as u64);
    let _ = e.complete(first.id, &Outcome::new(Status::Success));
    for h in handles {
        h.join().expect("waiter panicked");
    }
    let order = order.lock().unwrap_or_else(|p| p.into_inner()).clone();
    check(&order, n, start, "blocking");
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: parks the thread until the future's waker unparks it.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn async_waiters_are_granted_in_rank_order_and_dropping_loses_nothing() {
    let e = engine();
    let first = e.acquire("c", &Request::new()).unwrap();
    // The next unit refills one interval after this: the reference for the lateness.
    let start = Instant::now();
    let lanes = ["batch", "normal", "critical"];
    let n = 12;
    let futures: Vec<_> = (0..n)
        .map(|i| {
            let f = e.acquire_async("c", &Request::new().lane(lanes[i % 3]), 60_000);
            (2 - (i % 3), f.unwrap())
        })
        .collect();
    // A waiter that gives up: dropping its future withdraws it.
    let dropped = e.acquire_async("c", &Request::new().lane("critical"), 60_000);
    drop(dropped);
    assert_eq!(waiting(&e), n as u64);
    let _ = e.complete(first.id, &Outcome::new(Status::Success));
    let order: Arc<Mutex<Vec<(usize, u64, Instant)>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = futures
        .into_iter()
        .map(|(rank, f)| {
            let (e, order, done) = (e.clone(), order.clone(), done.clone());
            std::thread::spawn(move || {
                let p = block_on(f).unwrap();
                order
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((rank, p.id.0, Instant::now()));
                done.fetch_add(1, Ordering::Relaxed);
                let _ = e.complete(p.id, &Outcome::new(Status::Success));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("waiter panicked");
    }
    let mut order = order.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Each thread records when its future resolved; sort by that to recover the grant order.
    order.sort_by_key(|o| o.2);
    check(&order, n, start, "async");
    assert_eq!(done.load(Ordering::Relaxed), n);
    assert_eq!(waiting(&e), 0);
}

#[test]
fn a_blocking_waiter_times_out_with_the_predicted_wait() {
    let e = engine();
    let _held = e.acquire("c", &Request::new()).unwrap();
    // The one unit refills after INTERVAL_MS, but a higher-ranked waiter takes it first.
    let blocker = {
        let e = e.clone();
        std::thread::spawn(move || e.acquire_wait("c", &Request::new().lane("critical"), 60_000))
    };
    wait_until_queued(&e, 1);
    let r = e.acquire_wait("c", &Request::new().lane("batch"), 1);
    match r {
        Err(ratewise::Error::NoAvailableProvider { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let granted = blocker.join().expect("waiter panicked");
    assert!(granted.is_ok());
}

#[test]
fn an_acquire_future_can_be_spawned_on_any_runtime() {
    // tokio::spawn (and every other executor's spawn) needs Send + 'static; the core has no
    // runtime of its own to depend on.
    fn spawnable<F: std::future::Future + Send + 'static>(f: F) -> F {
        f
    }
    let e = engine();
    let f = spawnable(e.acquire_async("c", &Request::new(), 1_000).unwrap());
    let p = block_on(f).unwrap();
    assert!(e.complete(p.id, &Outcome::new(Status::Success)).is_ok());
}

#[test]
fn a_permit_nobody_takes_is_cancelled_and_a_timeout_must_be_positive() {
    let e = engine();
    // Granted at once (the quota is free), but the receiver is gone: the engine gives it back.
    let taken = Arc::new(AtomicUsize::new(0));
    let seen = taken.clone();
    let ticket = e.enqueue_with(
        "c",
        &Request::new(),
        60_000,
        Box::new(move |result| {
            assert!(result.is_ok());
            seen.fetch_add(1, Ordering::Relaxed);
            false
        }),
    );
    assert!(ticket.is_ok());
    assert_eq!(taken.load(Ordering::Relaxed), 1);
    let left = e.remaining("a", ratewise::Dimension::Requests);
    assert_eq!(left.ok().flatten(), Some(1), "the untaken permit was refunded");
    assert_eq!(waiting(&e), 0);

    for timeout in [0, -5] {
        match e.acquire_wait("c", &Request::new(), timeout) {
            Err(ratewise::Error::InvalidArgument(m)) => assert!(m.contains("timeout_ms"), "{m}"),
            other => panic!("expected invalid_argument, got {other:?}"),
        }
        assert!(matches!(
            e.acquire_async("c", &Request::new(), timeout),
            Err(ratewise::Error::InvalidArgument(_))
        ));
    }
}

/// A waiter that a higher-ranked waiter blocks on one provider, and whose other provider is
/// exhausted, is next grantable when one of those changes, never "now": otherwise every timer
/// (the engine's own, a simulator's) would poll again and again at the same instant.
#[test]
fn next_wake_after_a_poll_is_in_the_future() {
    let config = Config::from_value(&json!({
        "providers": [
            {"name": "a", "quotas": [{"dimension": "tokens", "limit": 100}]},
            {"name": "b", "quotas": [{"dimension": "requests", "limit": 1, "window": "hour"}]}],
        "capabilities": [
            {"name": "only-a", "providers": [{"provider": "a"}]},
            {"name": "only-b", "providers": [{"provider": "b"}]},
            {"name": "both", "providers": [{"provider": "a"}, {"provider": "b"}]}]
    }))
    .unwrap();
    let clock = ratewise::ManualClock::new(0);
    let e = Engine::with_clock(config, clock.clone().into()).unwrap();
    let ok = |r: ratewise::Result<ratewise::Permit>| r.unwrap();
    ok(e.acquire("only-b", &Request::new())); // b: its one request this hour
    ok(e.acquire("only-a", &Request::new().tokens(60, 0))); // a: 40 tokens left
    // 90 tokens do not fit a: they will after 50 more refill, at 100 a minute: 30 s.
    let (_, polled) = e
        .enqueue("only-a", &Request::new().lane("critical").tokens(90, 0), 600_000)
        .unwrap();
    assert!(polled.granted.is_empty());
    // 10 tokens would fit a, but the critical waiter holds a; b is spent for the hour.
    let (_, polled) = e.enqueue("both", &Request::new().tokens(10, 0), 600_000).unwrap();
    assert!(polled.granted.is_empty());
    assert_eq!(e.next_wake(), Some(30_000));
}
