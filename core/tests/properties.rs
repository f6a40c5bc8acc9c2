//! Invariants that no list of scenarios can cover: checked over random inputs (proptest) and
//! under real threads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests say where they fail

use proptest::prelude::*;
use ratewise::{Config, Dimension, Engine, ManualClock, Observation, Outcome, PermitId, Request, Status};
use serde_json::{Value, json};
use std::sync::Arc;

fn engine(config: Value, clock: &ManualClock) -> Engine {
    let config = Config::from_value(&config).expect("test config refused");
    Engine::with_clock(config, clock.clone().into()).unwrap()
}

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// Admitted units in any interval never exceed the limit plus the refill over that interval.
    #[test]
    fn admitted_never_exceeds_limit_plus_refill(
        limit in 1i64..500,
        window_ms in 1i64..5_000,
        ops in prop::collection::vec((0u64..200, 0i64..400), 1..200),
    ) {
        let clock = ManualClock::new(0);
        let e = engine(json!({
            "providers": [{"name": "a", "quotas": [{"dimension": "tokens", "limit": limit, "window_ms": window_ms}]}],
            "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}]
        }), &clock);
        let mut grants: Vec<(i64, i64)> = Vec::new();
        for (tokens, advance) in ops {
            clock.advance(advance);
            if let Ok(p) = e.acquire("c", &Request::new().tokens(tokens, 0)) {
                grants.push((clock.now_ms(), tokens as i64));
                e.complete(p.id, &Outcome::success(1, tokens, 0)).unwrap();
            }
        }
        for i in 0..grants.len() {
            let mut sum = 0i128;
            for g in &grants[i..] {
                sum += g.1 as i128;
                let span = (g.0 - grants[i].0) as i128;
                // limit + limit·span/window, in exact integers.
                prop_assert!(sum * window_ms as i128 <= limit as i128 * (window_ms as i128 + span),
                    "admitted {sum} in {span} ms with limit {limit}/{window_ms} ms");
            }
        }
    }

    /// For every permit, what stays charged is exactly its settlement: reserved − refunded =
    /// charged (actual usage; max(reserved, actual) under settle: reserved; nothing when
    /// cancelled; the estimate or nothing when usage is not reported).
    #[test]
    fn settlement_accounts_for_every_unit(
        reserved_settle in any::<bool>(),
        ops in prop::collection::vec((1u64..50, 1u64..50, 0u8..5, prop::option::of(0u64..120)), 1..60),
    ) {
        let clock = ManualClock::new(0);
        let settle = if reserved_settle { "reserved" } else { "actual" };
        let limit = 1_000_000i64;
        let e = engine(json!({
            "providers": [{"name": "a", "quotas": [
                {"dimension": "tokens", "limit": limit, "window": "day", "settle": settle},
                {"dimension": "requests", "limit": limit, "window": "day"}]}],
            "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
            // Settlement only: keep health, holds and the circuit out of the way.
            "health": {"cooldown_after": 1_000_000, "min_health": 0.0}
        }), &clock);
        let mut charged = 0i64;
        let mut requests = 0i64;
        for (input, output, action, actual) in ops {
            let p = e.acquire("c", &Request::new().tokens(input, output)).unwrap();
            let est = (input + output) as i64;
            let status = match action { 0 => Status::Success, 1 => Status::RateLimited, 2 => Status::ServerError, 3 => Status::ClientError, _ => Status::Success };
            if action == 4 {
                e.cancel(p.id).unwrap();
                continue;
            }
            requests += 1;
            let mut o = Outcome::new(status);
            o.input_tokens = actual;
            e.complete(p.id, &o).unwrap();
            charged += match actual {
                // Only input reported: output keeps its estimate.
                Some(a) => {
                    let used = (a + output) as i64;
                    if reserved_settle { used.max(est) } else { used }
                }
                None if status.is_no_work() => 0,
                None => est,
            };
        }
        prop_assert_eq!(e.remaining("a", Dimension::Tokens).ok().flatten(), Some(limit - charged));
        prop_assert_eq!(e.remaining("a", Dimension::Requests).ok().flatten(), Some(limit - requests));
    }

    /// Random valid configurations and random operations never panic; errors are fine.
    #[test]
    fn random_operations_never_panic(
        quotas in prop::collection::vec((0usize..6, 1i64..1_000, 0usize..6, any::<bool>(), any::<bool>()), 0..5),
        ops in prop::collection::vec((0u8..15, any::<u64>(), any::<u64>(), 0u16..1000), 1..80),
        start in prop_oneof![Just(0i64), (i64::MIN / 2)..(i64::MAX / 2)],
    ) {
        let dims = ["requests", "tokens", "input_tokens", "output_tokens", "concurrency", "cost"];
        let windows = [1i64, 7, 1_000, 60_000, 3_600_000, 86_400_000];
        let qs: Vec<Value> = quotas.iter().enumerate().map(|(i, (d, limit, w, fixed, reserved))| {
            if dims[*d] == "concurrency" {
                json!({"dimension": "concurrency", "limit": limit, "key": format!("k{i}")})
            } else {
                json!({"dimension": dims[*d], "limit": limit, "window_ms": windows[*w], "key": format!("k{i}"),
                       "algorithm": if *fixed { "fixed_window" } else { "token_bucket" },
                       "settle": if *reserved { "reserved" } else { "actual" }})
            }
        }).collect();
        let clock = ManualClock::new(start);
        let e = engine(json!({
            "providers": [
                {"name": "a", "quotas": qs, "price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0}, "cooldown_ms": 10},
                {"name": "b", "quotas": [{"dimension": "concurrency", "limit": 1}]}],
            "capabilities": [{"name": "c", "providers": [{"provider": "a"}, {"provider": "b", "priority": 0}]}],
            "health": {"cooldown_after": 1}, "permit_ttl_ms": 500
        }), &clock);
        let mut permits: Vec<PermitId> = vec![PermitId(0)];
        let statuses = [Status::Success, Status::RateLimited, Status::Overloaded, Status::ServerError, Status::Timeout, Status::Forbidden, Status::ClientError];
        for (op, x, y, small) in ops {
            let pick = permits[small as usize % permits.len()];
            let mut o = Outcome::new(statuses[small as usize % statuses.len()]);
            o.input_tokens = Some(x % 1_000_000_007);
            o.output_tokens = if small % 2 == 0 { Some(y) } else { None };
            o.cached_input_tokens = Some(y % 3);
            o.retry_after_ms = Some(y % 5_000);
            o.latency_ms = y % 300;
            let lanes = ["critical", "normal", "batch", "nope"];
            let req = Request::new().tokens(x, y).lane(lanes[small as usize % 4]);
            let _ = match op {
                0 => e.select("c", &req).map(|_| ()),
                1 | 2 => e.acquire("c", &req).map(|p| permits.push(p.id)),
                3 => e.complete(pick, &o).map(|_| ()),
                4 => e.cancel(pick).map(|_| ()),
                5 => e.observe("a", &Observation::new(o.clone()).requests(y % 4)),
                6 => { clock.advance(i64::from(small)); Ok(()) }
                7 => e.health("a").map(|_| ()),
                8 => e.remaining("a", Dimension::Tokens).map(|_| ()),
                9 => { let _ = e.snapshot(); Ok(()) }
                10 => e.upsert_provider(&json!({"name": "a", "quotas": [{"dimension": "tokens", "limit": 1 + small as i64, "key": "k1"}]})),
                12 => e.enqueue("c", &req, i64::from(small) - 10).map(|(t, p)| {
                    permits.push(t);
                    permits.extend(p.granted.iter().map(|g| g.id));
                }),
                13 => { let p = e.poll(); permits.extend(p.granted.iter().map(|g| g.id)); Ok(()) }
                14 => { let _ = e.next_wake(); Ok(()) }
                _ => e.remove_provider(if small % 2 == 0 { "a" } else { "b" }),
            };
        }
    }
}

/// Two threads acquire on capabilities whose providers list the same two shared keys in
/// opposite orders: nothing deadlocks and the shared pools are never over-admitted.
#[test]
fn opposite_key_orders_neither_deadlock_nor_over_admit() {
    let clock = ManualClock::new(0);
    let e = Arc::new(engine(
        json!({
            "providers": [
                {"name": "a", "quotas": [{"dimension": "tokens", "limit": 50_000, "window": "day", "key": "k1"},
                                         {"dimension": "requests", "limit": 20_000, "window": "day", "key": "k2"},
                                         {"dimension": "concurrency", "limit": 3, "key": "k3"}]},
                {"name": "b", "quotas": [{"dimension": "concurrency", "limit": 3, "key": "k3"},
                                         {"dimension": "requests", "limit": 20_000, "window": "day", "key": "k2"},
                                         {"dimension": "tokens", "limit": 50_000, "window": "day", "key": "k1"}]}],
            "capabilities": [{"name": "x", "providers": [{"provider": "a"}]}, {"name": "y", "providers": [{"provider": "b"}]}]
        }),
        &clock,
    ));
    // A deadlock would hang the joins below (and the test run): no timing is asserted.
    let handles: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|cap| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut tokens = 0u64;
                let mut requests = 0u64;
                for i in 0..40_000u64 {
                    if let Ok(p) = e.acquire(cap, &Request::new().tokens(1 + i % 7, 0)) {
                        tokens += 1 + i % 7;
                        requests += 1;
                        let _ = e.complete(p.id, &Outcome::new(Status::Success));
                    }
                }
                (tokens, requests)
            })
        })
        .collect();
    let mut tokens = 0;
    let mut requests = 0;
    for h in handles {
        let (t, r) = h.join().expect("worker panicked");
        tokens += t;
        requests += r;
    }
    assert!(tokens <= 50_000, "over-admitted tokens: {tokens}");
    assert!(requests <= 20_000, "over-admitted requests: {requests}");
    // The clock is frozen, so the pools must have been drained to (almost) exactly empty.
    assert!(
        tokens > 50_000 - 7 || requests == 20_000,
        "under-admitted: {tokens} tokens, {requests} requests"
    );
    assert_eq!(e.remaining("a", Dimension::Concurrency).ok().flatten(), Some(3));
}

/// Two threads racing for the last unit: exactly one wins, every time.
#[test]
fn last_unit_has_exactly_one_winner() {
    for _ in 0..200 {
        let clock = ManualClock::new(0);
        let e = Arc::new(engine(
            json!({
                "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window": "day"}]}],
                "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}]
            }),
            &clock,
        ));
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let winners: usize = (0..2)
            .map(|_| {
                let (e, b) = (e.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    usize::from(e.acquire("c", &Request::new()).is_ok())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap_or(0))
            .sum();
        assert_eq!(winners, 1);
    }
}

/// Header names the engine recognises, to aim random values at the real parsers.
const HEADER_NAMES: [&str; 14] = [
    "retry-after",
    "retry-after-ms",
    "date",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "X-RateLimit-Reset-Requests",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-limit",
    "anthropic-ratelimit-output-tokens-reset",
    "anthropic-ratelimit--reset",
    "x-ratelimit-",
];

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,25}(\\.[0-9]{0,25})?",
        "([0-9.]{1,6}(h|m|s|ms|us|µs|ns|x)){0,4}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        "(Sun|Mon), [0-9]{1,2} (Jan|Feb|Xyz) [0-9]{2,4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        Just("-1".to_string()),
        Just("99999999999999999999999".to_string()),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    /// Arbitrary header names and values (any Unicode, and realistic shapes aimed at each
    /// parser) never panic, whatever the engine clock, through every call that takes headers.
    #[test]
    fn headers_never_panic(
        random in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
        aimed in prop::collection::vec((0usize..HEADER_NAMES.len(), header_value()), 0..10),
        start in prop_oneof![Just(0i64), (i64::MIN / 2)..(i64::MAX / 2)],
    ) {
        let clock = ManualClock::new(start);
        let e = engine(json!({
            "providers": [{"name": "a", "quotas": [
                {"dimension": "requests", "limit": 7, "window": "second"},
                {"dimension": "tokens", "limit": 999_999_937, "window": "minute"},
                {"dimension": "input_tokens", "limit": 40_000, "count_cached": false},
                {"dimension": "output_tokens", "limit": 3, "window_ms": 7, "algorithm": "fixed_window"}]}],
            "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}]
        }), &clock);
        let mut headers: Vec<(String, String)> = random;
        headers.extend(aimed.into_iter().map(|(i, v)| (HEADER_NAMES[i].to_string(), v)));
        let _ = e.sync_headers("a", &headers);
        let mut o = Outcome::new(Status::RateLimited);
        o.headers = headers.clone();
        let _ = e.observe("a", &o.clone().into());
        if let Ok(p) = e.acquire("c", &Request::new().tokens(1, 1)) {
            let _ = e.complete(p.id, &o);
        }
        let _ = e.select("c", &Request::new());
        let _ = e.snapshot();
        // Whatever the headers said, a bucket never reports more than its capacity.
        let remaining = e.remaining("a", Dimension::Requests).ok().flatten().unwrap_or(0);
        prop_assert!((0..=7).contains(&remaining));
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// Waiting (docs/design.md §8): one unit every T = 100 ms, lanes critical / normal / batch with aging
    /// A = 500 ms, random arrivals, polls at least once per T. Every waiter is served within its
    /// aging bound (lane·A, after which only waiters that arrived before it rank above it) plus
    /// the time to serve those M waiters and itself ((M + 1)·2T: a one-unit bucket loses refill
    /// while full, and polls are up to T apart) plus one T of slack; and grants never exceed the
    /// capacity (1 + elapsed/T).
    #[test]
    fn waiters_are_served_within_their_bound(
        arrivals in prop::collection::vec((0i64..=100, 0usize..3, any::<bool>()), 1..60),
    ) {
        const T: i64 = 100;
        const A: i64 = 500;
        let clock = ManualClock::new(0);
        let e = engine(json!({
            "providers": [{"name": "a", "quotas": [{"dimension": "requests", "limit": 1, "window_ms": T}]}],
            "capabilities": [{"name": "c", "providers": [{"provider": "a"}]}],
            "lanes": [{"name": "critical"}, {"name": "normal", "aging_ms": A}, {"name": "batch", "aging_ms": A}]
        }), &clock);
        let lanes = ["critical", "normal", "batch"];
        // ticket -> (arrival, lane, waiting ahead at arrival, granted at)
        let mut waiters: std::collections::HashMap<u64, (i64, usize, usize, Option<i64>)> = Default::default();
        let mut grants = 0i64;
        let mut record = |polled: ratewise::Polled, now: i64, waiters: &mut std::collections::HashMap<u64, (i64, usize, usize, Option<i64>)>| {
            for p in polled.granted {
                if let Some(w) = waiters.get_mut(&p.id.0) {
                    w.3 = Some(now);
                }
                grants += 1;
                let _ = e.complete(p.id, &Outcome::new(Status::Success));
            }
            prop_assert!(polled.expired.is_empty(), "nobody should expire");
            // Capacity: the bucket starts full (1) and refills one unit per T.
            prop_assert!(grants <= 1 + now / T, "{grants} grants by {now} ms");
            Ok(())
        };
        for (advance, lane, enqueue) in arrivals {
            clock.advance(advance);
            let now = clock.now_ms();
            if enqueue {
                let ahead = waiters.values().filter(|w| w.3.is_none()).count();
                let (ticket, polled) = e.enqueue("c", &Request::new().lane(lanes[lane]), 10_000_000)
                    .unwrap();
                waiters.insert(ticket.0, (now, lane, ahead, None));
                record(polled, now, &mut waiters)?;
            } else {
                record(e.poll(), now, &mut waiters)?;
            }
        }
        for _ in 0..10_000 {
            if waiters.values().all(|w| w.3.is_some()) {
                break;
            }
            clock.advance(T);
            let now = clock.now_ms();
            record(e.poll(), now, &mut waiters)?;
        }
        for (arrival, lane, ahead, granted) in waiters.values() {
            let granted = granted.unwrap_or(i64::MAX);
            // A one-unit bucket refills nothing while full, so with polls up to T apart each grant
            // can take up to 2T.
            let bound = *lane as i64 * A + (*ahead as i64 + 1) * 2 * T + T;
            prop_assert!(granted - arrival <= bound,
                "lane {lane} waiter arrived at {arrival}, {ahead} ahead, granted at {granted} (bound {bound} ms)");
        }
    }
}
