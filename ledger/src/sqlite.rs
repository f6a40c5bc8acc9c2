//! The embedded default: one SQLite file, WAL (readers never wait for the writer), a busy
//! timeout so two gateways on one file take turns instead of failing. Opening retries SQLite's
//! immediate "database is locked" (which skips the busy handler) for up to the busy timeout, so
//! an open may wait up to about twice that behind another writer.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior, params_from_iter, types::Value};

use crate::{AvailabilityRow, Event, Record, Store, UsageQuery, UsageRow, fold_availability, sql};

pub(crate) struct Sqlite {
    conn: Connection,
}

fn ph(n: usize) -> String {
    format!("?{n}")
}

fn e(err: rusqlite::Error) -> String {
    err.to_string()
}

fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Sqlite, String> {
        if let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            return Err(format!("the folder {} does not exist", dir.display()));
        }
        let mut conn = Connection::open(path).map_err(e)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(e)?;
        // SQLite answers "database is locked" at once, without its busy handler, where waiting
        // could deadlock: two connections switching a new file to WAL, or one reading the
        // schema while another creates it. Gateways started together then take turns here.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        loop {
            match prepare(&mut conn) {
                Ok(()) => return Ok(Sqlite { conn }),
                Err(err) if busy(&err) && Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(err) => return Err(e(err)),
            }
        }
    }
}

/// How long a writer waits for another to release the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// WAL, and the tables, created under the write lock taken up front (`BEGIN IMMEDIATE`, which
/// waits in the busy handler instead of failing on a lock upgrade).
fn prepare(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for stmt in sql::schema("INTEGER") {
        tx.execute(&stmt, [])?;
    }
    tx.commit()
}

fn busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Rows per INSERT statement (SQLite allows 32,766 parameters).
const CHUNK: usize = 500;

impl Store for Sqlite {
    fn write(&mut self, records: &[Record], events: &[Event]) -> Result<(), String> {
        let tx = self.conn.transaction().map_err(e)?;
        for chunk in records.chunks(CHUNK) {
            let mut stmt = tx.prepare_cached(&sql::insert_records(chunk.len(), ph)).map_err(e)?;
            let mut vals: Vec<Value> = Vec::with_capacity(chunk.len() * sql::N_COLUMNS);
            for r in chunk {
                vals.extend([
                    Value::Integer(r.ts_ms),
                    Value::Text(r.request_id.clone()),
                    Value::Text(r.key.clone()),
                    Value::Text(r.capability.clone()),
                    Value::Text(r.provider.clone()),
                    Value::Text(r.model.clone()),
                    int(r.input_tokens),
                    int(r.output_tokens),
                    int(r.cached_tokens),
                    int(r.cost_micro_usd),
                    Value::Integer(i64::from(r.status)),
                    Value::Text(r.domain.clone()),
                    int(r.latency_ms),
                    r.ttft_ms.map_or(Value::Null, int),
                    Value::Text(r.cache.clone()),
                    Value::Text(r.degraded.clone()),
                    Value::Integer(i64::from(r.attempts)),
                ]);
            }
            stmt.execute(params_from_iter(vals)).map_err(e)?;
        }
        for chunk in events.chunks(CHUNK) {
            let mut stmt = tx.prepare_cached(&sql::insert_events(chunk.len(), ph)).map_err(e)?;
            let mut vals: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
            for ev in chunk {
                vals.extend([
                    Value::Integer(ev.ts_ms),
                    Value::Text(ev.provider.clone()),
                    Value::Text(ev.kind.as_str().to_string()),
                    ev.latency_ms.map_or(Value::Null, int),
                ]);
            }
            stmt.execute(params_from_iter(vals)).map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    fn prune(&mut self, before_ms: i64) -> Result<(), String> {
        self.conn
            .execute("DELETE FROM ratewise_requests WHERE ts_ms < ?1", [before_ms])
            .map_err(e)?;
        self.conn
            .execute("DELETE FROM ratewise_events WHERE ts_ms < ?1", [before_ms])
            .map_err(e)?;
        Ok(())
    }

    fn usage(&mut self, q: &UsageQuery) -> Result<Vec<UsageRow>, String> {
        let mut stmt = self.conn.prepare(&sql::usage(q, ph)).map_err(e)?;
        let g = q.group_by.len();
        let rows = stmt
            .query_map([q.from_ms, q.to_ms], |row| {
                let mut group = Vec::with_capacity(g);
                for i in 0..g {
                    group.push(row.get::<_, Option<String>>(i)?.unwrap_or_default());
                }
                let n = |i: usize| row.get::<_, i64>(g + i).map(|v| v.max(0) as u64);
                Ok(UsageRow {
                    group,
                    requests: n(0)?,
                    input_tokens: n(1)?,
                    output_tokens: n(2)?,
                    cached_tokens: n(3)?,
                    cost_micro_usd: n(4)?,
                    errors: n(5)?,
                    cache_hits: n(6)?,
                    degraded: n(7)?,
                })
            })
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    fn availability(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<AvailabilityRow>, String> {
        let counts = {
            let mut stmt = self.conn.prepare(&sql::event_counts(ph)).map_err(e)?;
            let rows = stmt
                .query_map([from_ms, to_ms], |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get::<_, i64>(2)?.max(0) as u64,
                        row.get::<_, i64>(3)?.max(0) as u64,
                    ))
                })
                .map_err(e)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(e)?
        };
        let mut stmt = self.conn.prepare(&sql::latency_at(ph)).map_err(e)?;
        fold_availability(counts, |provider, offset| {
            let mut rows = stmt
                .query(rusqlite::params![
                    from_ms,
                    to_ms,
                    provider,
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ])
                .map_err(e)?;
            match rows.next().map_err(e)? {
                Some(row) => Ok(Some(row.get::<_, i64>(0).map_err(e)?.max(0) as u64)),
                None => Ok(None),
            }
        })
    }
}
