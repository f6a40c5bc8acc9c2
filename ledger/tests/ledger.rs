//! The ledger against real databases: a SQLite file, and PostgreSQL when
//! `RATEWISE_POSTGRES_URL` names a server (scripts/test-all.sh starts one;
//! `RATEWISE_REQUIRE_POSTGRES=1` makes its absence a failure). Each PostgreSQL test works in a
//! database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};

use ratewise_ledger::{
    Event, EventKind, GroupBy, Ledger, LedgerConfig, LedgerError, Reader, Record, UsageQuery, now_ms,
};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("ratewise-ledger-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("sqlite:{}", dir.join(format!("ledger-{n}.db")).display())
}

/// A fresh database on the PostgreSQL server, or `None` when there is none.
fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("RATEWISE_POSTGRES_URL") else {
        assert!(
            std::env::var("RATEWISE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "RATEWISE_REQUIRE_POSTGRES=1 but RATEWISE_POSTGRES_URL is not set"
        );
        return None;
    };
    let name = format!(
        "rw_ledger_{}_{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = postgres::Client::connect(&base, postgres::NoTls).expect("RATEWISE_POSTGRES_URL reachable");
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let cut = base.rfind('/').unwrap();
    Some(format!("{}/{name}", &base[..cut]))
}

/// Runs a scenario on SQLite, then on PostgreSQL when there is one.
fn on_each(scenario: impl Fn(&str)) {
    scenario(&sqlite_url());
    if let Some(url) = postgres_url() {
        scenario(&url);
    }
}

fn cfg(url: &str) -> LedgerConfig {
    LedgerConfig {
        flush_ms: 20,
        ..LedgerConfig::new(url)
    }
}

fn rec(ts_ms: i64, key: &str, model: &str, input: u64, output: u64, cost: u64) -> Record {
    Record {
        ts_ms,
        request_id: format!("req-{ts_ms}-{key}"),
        key: key.into(),
        capability: "chat".into(),
        provider: format!("p-{model}"),
        model: model.into(),
        input_tokens: input,
        output_tokens: output,
        cached_tokens: input / 2,
        cost_micro_usd: cost,
        status: 200,
        domain: "ok".into(),
        latency_ms: 30,
        ttft_ms: Some(5),
        cache: "miss".into(),
        degraded: String::new(),
        attempts: 1,
    }
}

fn ev(ts_ms: i64, provider: &str, kind: EventKind, latency_ms: Option<u64>) -> Event {
    Event {
        ts_ms,
        provider: provider.into(),
        kind,
        latency_ms,
    }
}

#[test]
fn usage_groups_and_sums_exactly() {
    on_each(|url| {
        let ledger = Ledger::open(&cfg(url)).unwrap();
        let t = now_ms() - 10_000;
        for i in 0..100 {
            ledger.record(rec(
                t + i,
                if i % 4 == 0 { "a" } else { "b" },
                if i % 2 == 0 { "m1" } else { "m2" },
                10,
                3,
                7,
            ));
        }
        ledger.record(Record {
            status: 429,
            domain: "policy_quota".into(),
            ..rec(t + 200, "a", "m1", 0, 0, 0)
        });
        ledger.record(Record {
            cache: "hit".into(),
            ..rec(t + 201, "a", "m1", 0, 0, 0)
        });
        ledger.record(Record {
            degraded: "static".into(),
            cache: "".into(),
            ..rec(t + 202, "b", "m2", 0, 0, 0)
        });
        // Outside the window.
        ledger.record(rec(t - 1, "a", "m1", 1_000, 1_000, 1_000));
        ledger.flush().unwrap();
        assert_eq!((ledger.written(), ledger.dropped()), (104, 0));

        let mut r = Reader::open(&cfg(url)).unwrap();
        let q = |group_by| UsageQuery {
            from_ms: t,
            to_ms: t + 1_000,
            group_by,
        };
        let total = r.usage(&q(vec![])).unwrap();
        assert_eq!(total.len(), 1);
        let tr = &total[0];
        assert_eq!(
            (
                tr.requests,
                tr.input_tokens,
                tr.output_tokens,
                tr.cached_tokens,
                tr.cost_micro_usd
            ),
            (103, 1_000, 300, 500, 700)
        );
        assert_eq!((tr.errors, tr.cache_hits, tr.degraded), (1, 1, 1));

        let by = r.usage(&q(vec![GroupBy::Key, GroupBy::Model])).unwrap();
        let got: Vec<(String, String, u64, u64)> = by
            .iter()
            .map(|r| (r.group[0].clone(), r.group[1].clone(), r.requests, r.cost_micro_usd))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".into(), "m1".into(), 27, 175),
                ("b".into(), "m1".into(), 25, 175),
                ("b".into(), "m2".into(), 51, 350),
            ]
        );
        // Time buckets: the window's one minute.
        let by_min = r.usage(&q(vec![GroupBy::Time(60_000)])).unwrap();
        assert_eq!(by_min.iter().map(|r| r.requests).sum::<u64>(), 103);
        assert!(by_min.iter().all(|r| r.group[0].parse::<i64>().unwrap() % 60_000 == 0));
        // An empty window has no rows.
        assert!(
            r.usage(&UsageQuery {
                from_ms: 0,
                to_ms: 1,
                group_by: vec![]
            })
            .unwrap()
            .is_empty()
        );
    });
}

#[test]
fn availability_counts_outcomes_and_ranks_latency() {
    on_each(|url| {
        let ledger = Ledger::open(&cfg(url)).unwrap();
        let t = now_ms() - 60_000;
        for i in 0..100u64 {
            ledger.event(ev(t + i as i64, "fast", EventKind::Success, Some(i + 1)));
        }
        for _ in 0..20 {
            ledger.event(ev(t, "fast", EventKind::RateLimited, Some(3)));
        }
        for _ in 0..5 {
            ledger.event(ev(t, "fast", EventKind::Overloaded, None));
        }
        ledger.event(ev(t, "fast", EventKind::Fallback, None));
        ledger.event(ev(t, "slow", EventKind::ServerError, Some(900)));
        ledger.event(ev(t, "slow", EventKind::Timeout, None));
        ledger.event(ev(t, "slow", EventKind::CircuitOpened, None));
        ledger.event(ev(t + 10, "slow", EventKind::CircuitClosed, None));
        ledger.event(ev(t - 5, "slow", EventKind::Success, Some(1)));
        ledger.flush().unwrap();

        let rows = Reader::open(&cfg(url)).unwrap().availability(t, t + 60_000).unwrap();
        assert_eq!(rows.len(), 2);
        let f = &rows[0];
        assert_eq!(f.provider, "fast");
        assert_eq!(
            (f.outcomes, f.successes, f.rate_limited, f.overloaded, f.fallbacks),
            (125, 100, 20, 5, 1)
        );
        assert_eq!(f.availability, Some(0.8));
        assert_eq!((f.latency_p50_ms, f.latency_p99_ms), (Some(50), Some(99)));
        let s = &rows[1];
        assert_eq!((s.outcomes, s.successes, s.server_errors, s.timeouts), (2, 0, 1, 1));
        assert_eq!((s.availability, s.latency_p50_ms), (Some(0.0), None));
        assert_eq!((s.circuit_opened, s.circuit_closed), (1, 1));
    });
}

#[test]
fn two_writers_share_one_database() {
    on_each(|url| {
        let t = now_ms() - 1_000;
        std::thread::scope(|s| {
            for w in 0..2 {
                s.spawn(move || {
                    let ledger = Ledger::open(&LedgerConfig {
                        batch_max: 37,
                        ..cfg(url)
                    })
                    .unwrap();
                    for i in 0..1_000 {
                        ledger.record(rec(t + i, &format!("w{w}"), "m", 1, 1, 1));
                    }
                    ledger.flush().unwrap();
                    assert_eq!(ledger.written(), 1_000);
                });
            }
        });
        let rows = Reader::open(&cfg(url))
            .unwrap()
            .usage(&UsageQuery {
                from_ms: t,
                to_ms: t + 1_000,
                group_by: vec![GroupBy::Key],
            })
            .unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.group[0].as_str(), r.requests))
                .collect::<Vec<_>>(),
            [("w0", 1_000), ("w1", 1_000)]
        );
    });
}

/// Several gateways started at once on one new SQLite file: every one opens (creating the file,
/// switching it to WAL and creating the tables take turns), none fails with "database is
/// locked". Before the open retried, about one run in fifteen of the two-writer test above
/// failed so; eight openers on twenty fresh files make it near certain.
#[test]
fn gateways_opening_one_new_sqlite_file_at_once_all_open() {
    for round in 0..20 {
        let url = format!("{}-open-{round}", sqlite_url());
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Ledger::open(&cfg(&url)).map(drop)
                    })
                })
                .collect();
            for h in handles {
                if let Err(err) = h.join().unwrap() {
                    panic!("round {round}: {err}");
                }
            }
        });
    }
}

#[test]
fn records_do_not_wake_the_writer() {
    // A wake-up per record is a context switch on the request's path (bench/README.md: the
    // gateway was 57 µs p50 slower with the ledger on, on one core, when each record woke it).
    let url = sqlite_url();
    let ledger = Ledger::open(&LedgerConfig {
        flush_ms: 60_000,
        ..LedgerConfig::new(&url)
    })
    .unwrap();
    let woke = ledger.wakeups();
    for i in 0..1000 {
        ledger.record(rec(1_000 + i, "k", "m", 1, 1, 1));
        ledger.event(ev(1_000 + i, "p", EventKind::Success, Some(1)));
    }
    // 2,000 queued: about one wake-up per batch_max (512) of them (a few more when the backlog
    // hovers at a multiple while the writer drains), not one each.
    let during = ledger.wakeups() - woke;
    assert!(
        during <= 20,
        "the writer woke {during} times for 2,000 records and events"
    );
    ledger.flush().unwrap();
    assert_eq!(ledger.written(), 2_000);
}

#[test]
fn a_record_waits_at_most_about_flush_ms() {
    // What a crash can lose is what waits in the queue: at most about flush_ms of records. (A
    // writer that dated a record from the wake-up that took it kept it one tick more: up to
    // twice flush_ms, which the gateway's SIGKILL test caught.) Records sent at spread offsets
    // from the writer's tick; the bound is generous for scheduling, under the two ticks.
    let flush_ms = 100;
    let ledger = Ledger::open(&LedgerConfig {
        flush_ms,
        ..LedgerConfig::new(sqlite_url())
    })
    .unwrap();
    let mut waits = Vec::new();
    for i in 0..8 {
        std::thread::sleep(std::time::Duration::from_millis(13 * i + 5));
        let before = ledger.written();
        let t = std::time::Instant::now();
        ledger.record(rec(1_000 + i as i64, "k", "m", 1, 1, 1));
        while ledger.written() == before {
            assert!(t.elapsed().as_secs() < 5, "the record was not written in 5 s");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        waits.push(t.elapsed().as_millis() as u64);
    }
    assert!(
        waits.iter().all(|w| *w < flush_ms * 16 / 10),
        "waits {waits:?} ms at flush_ms {flush_ms}"
    );
}

#[test]
fn dropping_the_ledger_writes_what_is_queued() {
    on_each(|url| {
        let t = now_ms() - 1_000;
        {
            let ledger = Ledger::open(&LedgerConfig {
                flush_ms: 60_000,
                batch_max: 10_000,
                ..cfg(url)
            })
            .unwrap();
            for i in 0..500 {
                ledger.record(rec(t + i, "k", "m", 1, 1, 1));
            }
        }
        let rows = Reader::open(&cfg(url))
            .unwrap()
            .usage(&UsageQuery {
                from_ms: t,
                to_ms: t + 1_000,
                group_by: vec![],
            })
            .unwrap();
        assert_eq!(rows[0].requests, 500);
    });
}

#[test]
fn retention_prunes_at_open() {
    on_each(|url| {
        let old = now_ms() - 3 * 86_400_000;
        {
            let ledger = Ledger::open(&cfg(url)).unwrap();
            ledger.record(rec(old, "k", "m", 1, 1, 1));
            ledger.record(rec(now_ms(), "k", "m", 1, 1, 1));
            ledger.event(ev(old, "p", EventKind::Success, Some(1)));
            ledger.flush().unwrap();
        }
        let _pruning = Ledger::open(&LedgerConfig {
            retention_days: 2,
            ..cfg(url)
        })
        .unwrap();
        let mut r = Reader::open(&cfg(url)).unwrap();
        let all = r
            .usage(&UsageQuery {
                from_ms: 0,
                to_ms: i64::MAX,
                group_by: vec![],
            })
            .unwrap();
        assert_eq!(all[0].requests, 1);
        assert!(r.availability(0, i64::MAX).unwrap().is_empty());
    });
}

/// A database that fails writes (its table dropped under it) loses nothing: the batch stays,
/// is retried, and lands once the table is back.
#[test]
fn a_failing_database_loses_nothing_it_queued() {
    let url = sqlite_url();
    let path = url.strip_prefix("sqlite:").unwrap().to_string();
    let ledger = Ledger::open(&cfg(&url)).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute("DROP TABLE ratewise_requests", []).unwrap();
    let t = now_ms() - 1_000;
    for i in 0..50 {
        ledger.record(rec(t + i, "k", "m", 1, 1, 1));
    }
    let err = ledger.flush().unwrap_err();
    assert_eq!(err.code(), "ledger_database");
    assert!(err.to_string().contains("ratewise_requests"), "{err}");
    assert!(ledger.failed_writes() >= 1);
    drop(Reader::open(&cfg(&url)).unwrap()); // re-creates the table
    ledger.flush().unwrap();
    assert_eq!((ledger.written(), ledger.dropped()), (50, 0));
    let rows = Reader::open(&cfg(&url))
        .unwrap()
        .usage(&UsageQuery {
            from_ms: t,
            to_ms: t + 100,
            group_by: vec![],
        })
        .unwrap();
    assert_eq!(rows[0].requests, 50);
}

/// Past the queue, records are dropped and counted, never blocking the caller.
#[test]
fn a_full_queue_drops_and_counts() {
    let url = sqlite_url();
    let path = url.strip_prefix("sqlite:").unwrap().to_string();
    let c = LedgerConfig {
        queue_max: 4,
        batch_max: 2,
        ..cfg(&url)
    };
    let ledger = Ledger::open(&c).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DROP TABLE ratewise_requests", [])
        .unwrap();
    let t = now_ms() - 1_000;
    for i in 0..200 {
        ledger.record(rec(t + i, "k", "m", 1, 1, 1));
    }
    let dropped = ledger.dropped();
    assert!(dropped > 0, "a 4-slot queue over a failing database took 200 records");
    drop(Reader::open(&cfg(&url)).unwrap());
    // The writer may be in its backoff; flush until everything it kept is written.
    for _ in 0..50 {
        if ledger.flush().is_ok() {
            break;
        }
    }
    assert_eq!(ledger.written() + ledger.dropped(), 200);
}

#[test]
fn bad_urls_fail_at_open_with_the_field_and_no_password() {
    let e = Ledger::open(&LedgerConfig::new("redis://u:hunter2@h")).err().unwrap();
    assert_eq!(e.code(), "ledger_config");
    assert!(
        e.to_string().contains("url:") && !e.to_string().contains("hunter2"),
        "{e}"
    );
    let e = Ledger::open(&LedgerConfig::new("sqlite:/no/such/folder/ledger.db"))
        .err()
        .unwrap();
    assert!(
        matches!(e, LedgerError::Database { .. }) && e.to_string().contains("/no/such/folder"),
        "{e}"
    );
    // Nothing listens on port 9: connecting fails, and the password stays out of the text.
    let e = Ledger::open(&LedgerConfig::new("postgres://rw:hunter2@127.0.0.1:9/db"))
        .err()
        .unwrap();
    assert_eq!(e.code(), "ledger_database");
    assert!(
        !e.to_string().contains("hunter2") && e.to_string().contains("rw:***"),
        "{e}"
    );
}
