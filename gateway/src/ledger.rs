//! The gateway's side of the spend ledger and availability log (crate `ratewise-ledger`).
//!
//! Every request gets one [`Line`]: created when the call is parsed, filled as it goes, written
//! when it is dropped — at the end of `proxy::run` for a JSON answer, a cache hit, a degraded
//! answer or a refusal; when its stream ends (or its client goes away) for a live stream; and,
//! should the client vanish while the call is still deciding, as `499 caller_closed`. Tokens
//! and cost are what the call's settled attempts reported (a [`Tally`] the permit guards add
//! to). Each attempt's outcome, each fallback and each circuit change is an event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ratewise_ledger::{
    AvailabilityRow, Event, EventKind, GroupBy, Ledger, LedgerConfig, LedgerError, Reader, Record, UsageQuery,
    UsageRow, now_ms,
};
use serde_json::{Value, json};

use crate::state::State;

/// The ledger's writer and a reader for the reports.
pub struct Books {
    /// The writer (non-blocking record and event).
    pub ledger: Ledger,
    config: LedgerConfig,
    reader: Mutex<Option<Reader>>,
}

impl Books {
    /// Connects, creates the tables if needed, starts the writer. Blocking (at start).
    pub fn open(config: &LedgerConfig) -> Result<Books, String> {
        let ledger = Ledger::open(config).map_err(|e| e.to_string())?;
        Ok(Books {
            ledger,
            config: config.clone(),
            reader: Mutex::new(None),
        })
    }

    /// The URL without its password.
    pub fn url(&self) -> String {
        self.config.redacted_url()
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut Reader) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        // The reports run on a blocking thread (spawn_blocking): this lock is not an async
        // worker's, and only reports take it.
        let mut slot = self.reader.lock();
        if slot.is_none() {
            *slot = Some(Reader::open(&self.config)?);
        }
        let Some(reader) = slot.as_mut() else {
            return Err(LedgerError::Writer("no reader".into()));
        };
        let out = f(reader);
        if out.is_err() {
            // A broken connection is re-opened by the next report.
            *slot = None;
        }
        out
    }

    /// Spend in a window (blocking).
    pub fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, LedgerError> {
        self.with_reader(|r| r.usage(q))
    }

    /// Availability per provider (blocking).
    pub fn availability(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AvailabilityRow>, LedgerError> {
        self.with_reader(|r| r.availability(from_ms, to_ms))
    }
}

/// What a call's settled attempts reported, summed.
#[derive(Debug, Default)]
pub struct Tally {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// Cost, micro-USD (as the engine's cost quotas count it).
    pub cost_micro_usd: u64,
    /// The last attempt's upstream model.
    pub model: String,
    /// Time to the first byte sent to the client, ms (streams).
    pub ttft_ms: Option<u64>,
}

/// A call's tally, shared by its permit guards and its line.
pub type SharedTally = Arc<Mutex<Tally>>;

/// One request's ledger record, written once, when dropped.
pub struct Line {
    state: Arc<State>,
    /// The record; tokens, cost, model and latency are filled in when it is written.
    pub record: Record,
    /// What the attempts add to.
    pub tally: SharedTally,
    started: Instant,
}

impl Line {
    /// A line for a request that arrived at `started` (`None`: the ledger is off).
    pub fn new(
        state: &Arc<State>,
        started: Instant,
        request_id: &str,
        key: Option<&str>,
        capability: &str,
    ) -> Option<Line> {
        state.books.as_ref()?;
        let arrived = now_ms() - started.elapsed().as_millis() as i64;
        Some(Line {
            state: state.clone(),
            record: Record {
                ts_ms: arrived,
                request_id: request_id.to_string(),
                key: key.unwrap_or("-").to_string(),
                capability: capability.to_string(),
                // What a line dropped before its call was answered says: the client left.
                status: 499,
                domain: "caller_closed".into(),
                ..Record::default()
            },
            tally: Arc::new(Mutex::new(Tally::default())),
            started,
        })
    }

    /// Sets the answer's status and fault domain.
    pub fn answered(&mut self, status: u16, domain: &str) {
        self.record.status = status;
        self.record.domain = domain.to_string();
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let Some(books) = self.state.books.as_ref() else { return };
        let mut r = std::mem::take(&mut self.record);
        {
            let t = self.tally.lock();
            r.input_tokens = t.input_tokens;
            r.output_tokens = t.output_tokens;
            r.cached_tokens = t.cached_tokens;
            r.cost_micro_usd = t.cost_micro_usd;
            if r.model.is_empty() {
                r.model = t.model.clone();
            }
            r.ttft_ms = t.ttft_ms;
        }
        r.latency_ms = self.started.elapsed().as_millis() as u64;
        books.ledger.record(r);
    }
}

/// The event an attempt's outcome is (`None`: not an availability outcome — a client error,
/// a cut stream, the gateway's credentials refused).
pub fn outcome_kind(status: ratewise::Status) -> Option<EventKind> {
    use ratewise::Status as S;
    match status {
        S::Success => Some(EventKind::Success),
        S::RateLimited => Some(EventKind::RateLimited),
        S::Overloaded => Some(EventKind::Overloaded),
        S::ServerError => Some(EventKind::ServerError),
        S::Timeout => Some(EventKind::Timeout),
        _ => None,
    }
}

/// Queues one event (no-op when the ledger is off).
pub fn event(state: &State, provider: &str, kind: EventKind, latency: Option<Duration>) {
    if let Some(books) = &state.books {
        books.ledger.event(Event {
            ts_ms: now_ms(),
            provider: provider.to_string(),
            kind,
            latency_ms: latency.map(|d| d.as_millis() as u64),
        });
    }
}

/// A report's window from a query string: `from` and `to` (RFC 3339, or seconds since the
/// epoch), else `window` (`5m`, `24h`...) ending now; default: the last 24 hours.
pub fn window(query: &[(String, String)], default: Duration) -> Result<(i64, i64), String> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let now = now_ms();
    let to = match get("to") {
        Some(t) => parse_time(t).map_err(|e| format!("to: {e}"))?,
        None => now + 1,
    };
    let from = match (get("from"), get("window")) {
        (Some(_), Some(_)) => return Err("give from or window, not both".into()),
        (Some(f), None) => parse_time(f).map_err(|e| format!("from: {e}"))?,
        (None, Some(w)) => to - duration_ms(w).map_err(|e| format!("window: {e}"))?,
        (None, None) => to - default.as_millis() as i64,
    };
    if from >= to {
        return Err("from must be before to".into());
    }
    Ok((from, to))
}

/// RFC 3339 (`2026-12-03T10:00:00Z`) or seconds since the epoch → ms since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<i64>() {
        return secs
            .checked_mul(1000)
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("{text:?} is neither RFC 3339 (2026-12-03T10:00:00Z) nor seconds since the epoch"))?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?;
    Ok(d.as_millis() as i64)
}

/// `5m`, `24h`, `7d`, `90s` → ms.
pub fn duration_ms(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text).map_err(|_| format!("{text:?} is not a duration like 5m, 24h or 7d"))?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d.as_millis().min(i64::MAX as u128) as i64)
}

/// The usage report as JSON.
pub fn usage_json(q: &UsageQuery, rows: &[UsageRow]) -> Value {
    let names: Vec<&str> = q.group_by.iter().map(|g| g.name()).collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (n, v) in names.iter().zip(&r.group) {
                o.insert((*n).to_string(), Value::String(v.clone()));
            }
            o.insert("requests".into(), json!(r.requests));
            o.insert("input_tokens".into(), json!(r.input_tokens));
            o.insert("output_tokens".into(), json!(r.output_tokens));
            o.insert("cached_tokens".into(), json!(r.cached_tokens));
            o.insert("cost_micro_usd".into(), json!(r.cost_micro_usd));
            o.insert("cost_usd".into(), json!(r.cost_micro_usd as f64 / 1e6));
            o.insert("errors".into(), json!(r.errors));
            o.insert("cache_hits".into(), json!(r.cache_hits));
            o.insert("degraded".into(), json!(r.degraded));
            Value::Object(o)
        })
        .collect();
    json!({"from_ms": q.from_ms, "to_ms": q.to_ms, "group_by": names, "rows": rows})
}

/// The availability report as JSON.
pub fn availability_json(from_ms: i64, to_ms: i64, rows: &[AvailabilityRow]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "provider": r.provider,
                "outcomes": r.outcomes,
                "successes": r.successes,
                "availability": r.availability,
                "latency_p50_ms": r.latency_p50_ms,
                "latency_p99_ms": r.latency_p99_ms,
                "rate_limited": r.rate_limited,
                "overloaded": r.overloaded,
                "server_errors": r.server_errors,
                "timeouts": r.timeouts,
                "fallbacks": r.fallbacks,
                "circuit_opened": r.circuit_opened,
                "circuit_closed": r.circuit_closed,
            })
        })
        .collect();
    json!({"from_ms": from_ms, "to_ms": to_ms, "providers": rows})
}

/// A `group_by` parameter.
pub fn group_by(query: &[(String, String)]) -> Result<Vec<GroupBy>, String> {
    match query.iter().find(|(n, _)| n == "group_by") {
        Some((_, v)) => GroupBy::parse_list(v),
        None => Ok(vec![GroupBy::Key]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn windows() {
        assert_eq!(
            window(
                &q(&[("from", "2026-12-03T10:00:00Z"), ("to", "1796292060")]),
                Duration::ZERO
            ),
            Ok((1_796_292_000_000, 1_796_292_060_000))
        );
        let (f, t) = window(&q(&[("window", "5m")]), Duration::from_secs(60)).unwrap();
        assert_eq!(t - f, 300_000);
        let (f, t) = window(&[], Duration::from_secs(86_400)).unwrap();
        assert_eq!(t - f, 86_400_000);
        assert!(
            window(&q(&[("window", "5 parsecs")]), Duration::ZERO)
                .unwrap_err()
                .starts_with("window:")
        );
        assert!(
            window(&q(&[("from", "yesterday")]), Duration::ZERO)
                .unwrap_err()
                .starts_with("from:")
        );
        assert!(window(&q(&[("from", "20"), ("to", "10")]), Duration::ZERO).is_err());
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
    }
}
