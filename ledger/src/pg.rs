//! PostgreSQL, for a fleet of gateways writing to one database. The synchronous client runs
//! on the ledger's own thread (or the reader's caller), never on the gateway's async workers.
//! A dropped connection is re-opened at the next write.

use postgres::types::ToSql;
use postgres::{Client, NoTls};

use crate::{AvailabilityRow, Event, Record, Store, UsageQuery, UsageRow, fold_availability, sql};

pub(crate) struct Pg {
    url: String,
    client: Client,
}

fn ph(n: usize) -> String {
    format!("${n}")
}

fn e(err: postgres::Error) -> String {
    // `Error`'s Display is terse ("db error"); the source carries the server's message.
    match std::error::Error::source(&err) {
        Some(src) => format!("{err}: {src}"),
        None => err.to_string(),
    }
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Rows per INSERT (PostgreSQL allows 65,535 parameters).
const CHUNK: usize = 1_000;

/// Two gateways starting together must not race on `CREATE TABLE IF NOT EXISTS`.
const SCHEMA_LOCK: i64 = 0x7261_7465_7769_7365; // "ratewise"

impl Pg {
    pub(crate) fn open(url: &str) -> Result<Pg, String> {
        let mut client = Client::connect(url, NoTls).map_err(e)?;
        let mut tx = client.transaction().map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(e)?;
        for stmt in sql::schema("BIGINT") {
            tx.batch_execute(&stmt).map_err(e)?;
        }
        tx.commit().map_err(e)?;
        Ok(Pg {
            url: url.to_string(),
            client,
        })
    }

    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.is_closed() {
            self.client = Client::connect(&self.url, NoTls).map_err(e)?;
        }
        Ok(&mut self.client)
    }
}

/// A record's columns as PostgreSQL values.
struct Row {
    ts_ms: i64,
    nums: [i64; 5],
    status: i32,
    ttft_ms: Option<i64>,
    attempts: i32,
}

impl Store for Pg {
    fn write(&mut self, records: &[Record], events: &[Event]) -> Result<(), String> {
        let client = self.client()?;
        let mut tx = client.transaction().map_err(e)?;
        for chunk in records.chunks(CHUNK) {
            let rows: Vec<Row> = chunk
                .iter()
                .map(|r| Row {
                    ts_ms: r.ts_ms,
                    nums: [
                        big(r.input_tokens),
                        big(r.output_tokens),
                        big(r.cached_tokens),
                        big(r.cost_micro_usd),
                        big(r.latency_ms),
                    ],
                    status: i32::from(r.status),
                    ttft_ms: r.ttft_ms.map(big),
                    attempts: i32::try_from(r.attempts).unwrap_or(i32::MAX),
                })
                .collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * sql::N_COLUMNS);
            for (r, v) in chunk.iter().zip(&rows) {
                params.extend([
                    &v.ts_ms as &(dyn ToSql + Sync),
                    &r.request_id,
                    &r.key,
                    &r.capability,
                    &r.provider,
                    &r.model,
                    &v.nums[0],
                    &v.nums[1],
                    &v.nums[2],
                    &v.nums[3],
                    &v.status,
                    &r.domain,
                    &v.nums[4],
                    &v.ttft_ms,
                    &r.cache,
                    &r.degraded,
                    &v.attempts,
                ]);
            }
            tx.execute(&sql::insert_records(chunk.len(), ph), &params).map_err(e)?;
        }
        for chunk in events.chunks(CHUNK) {
            let kinds: Vec<&str> = chunk.iter().map(|ev| ev.kind.as_str()).collect();
            let lat: Vec<Option<i64>> = chunk.iter().map(|ev| ev.latency_ms.map(big)).collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 4);
            for (i, ev) in chunk.iter().enumerate() {
                params.extend([&ev.ts_ms as &(dyn ToSql + Sync), &ev.provider, &kinds[i], &lat[i]]);
            }
            tx.execute(&sql::insert_events(chunk.len(), ph), &params).map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    fn prune(&mut self, before_ms: i64) -> Result<(), String> {
        let client = self.client()?;
        client
            .execute("DELETE FROM ratewise_requests WHERE ts_ms < $1", &[&before_ms])
            .map_err(e)?;
        client
            .execute("DELETE FROM ratewise_events WHERE ts_ms < $1", &[&before_ms])
            .map_err(e)?;
        Ok(())
    }

    fn usage(&mut self, q: &UsageQuery) -> Result<Vec<UsageRow>, String> {
        let g = q.group_by.len();
        let client = self.client()?;
        let rows = client.query(&sql::usage(q, ph), &[&q.from_ms, &q.to_ms]).map_err(e)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut group = Vec::with_capacity(g);
            for i in 0..g {
                group.push(row.try_get::<_, Option<String>>(i).map_err(e)?.unwrap_or_default());
            }
            let n = |i: usize| row.try_get::<_, i64>(g + i).map(|v| v.max(0) as u64).map_err(e);
            out.push(UsageRow {
                group,
                requests: n(0)?,
                input_tokens: n(1)?,
                output_tokens: n(2)?,
                cached_tokens: n(3)?,
                cost_micro_usd: n(4)?,
                errors: n(5)?,
                cache_hits: n(6)?,
                degraded: n(7)?,
            });
        }
        Ok(out)
    }

    fn availability(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<AvailabilityRow>, String> {
        let client = self.client()?;
        let mut counts = Vec::new();
        for row in client.query(&sql::event_counts(ph), &[&from_ms, &to_ms]).map_err(e)? {
            counts.push((
                row.try_get::<_, String>(0).map_err(e)?,
                row.try_get::<_, String>(1).map_err(e)?,
                row.try_get::<_, i64>(2).map_err(e)?.max(0) as u64,
                row.try_get::<_, i64>(3).map_err(e)?.max(0) as u64,
            ));
        }
        let stmt = client.prepare(&sql::latency_at(ph)).map_err(e)?;
        fold_availability(counts, |provider, offset| {
            let offset = big(offset);
            let rows = client
                .query(&stmt, &[&from_ms, &to_ms, &provider, &offset])
                .map_err(e)?;
            match rows.first() {
                Some(row) => Ok(Some(row.try_get::<_, i64>(0).map_err(e)?.max(0) as u64)),
                None => Ok(None),
            }
        })
    }
}
