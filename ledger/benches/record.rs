//! What a request pays for its ledger record (issue 18's budget: ≤ 10 µs per record), and what
//! the writer sustains end to end on SQLite.
//!
//!     cargo bench -p ratewise-ledger --bench record
//!
//! `record` is the caller's cost (the non-blocking hand-off); `record+flush` is 1,000 records
//! through to the database file, per record (the writer's throughput).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratewise_ledger::{Ledger, LedgerConfig, Record, now_ms};

fn rec(i: i64) -> Record {
    Record {
        ts_ms: now_ms() + i,
        request_id: format!("req-{i:016x}"),
        key: "team-a".into(),
        capability: "chat".into(),
        provider: "openai-east".into(),
        model: "gpt-4o-mini".into(),
        input_tokens: 812,
        output_tokens: 96,
        cached_tokens: 512,
        cost_micro_usd: 180,
        status: 200,
        domain: "ok".into(),
        latency_ms: 412,
        ttft_ms: Some(88),
        cache: "miss".into(),
        degraded: String::new(),
        attempts: 1,
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ratewise-ledger-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = Ledger::open(&LedgerConfig::new(format!(
        "sqlite:{}",
        dir.join("ledger.db").display()
    )))
    .unwrap();
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1));
    let mut i = 0i64;
    g.bench_function("record", |b| {
        // In rounds of 10,000 (well inside the queue), flushed between rounds untimed: every
        // timed call is a real hand-off, none a drop.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters as i64;
            while left > 0 {
                let n = left.min(10_000);
                left -= n;
                let records: Vec<Record> = (0..n).map(|k| rec(i + k)).collect();
                i += n;
                let t = Instant::now();
                for r in records {
                    ledger.record(r);
                }
                spent += t.elapsed();
                ledger.flush().unwrap();
            }
            spent
        })
    });
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("record+flush 1000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let records: Vec<Record> = (0..1_000).map(|k| rec(i + k)).collect();
                i += 1_000;
                let t = Instant::now();
                for r in records {
                    ledger.record(r);
                }
                ledger.flush().unwrap();
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();
    assert_eq!(
        ledger.dropped(),
        0,
        "the bench overflowed the queue: its figures would be of drops"
    );
    drop(ledger);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
