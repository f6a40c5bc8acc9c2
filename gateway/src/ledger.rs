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
    AvailabilityRow, Event, EventKind, Ledger, LedgerConfig, LedgerError, Reader, Record, UsageQuery, UsageRow, now_ms,
};

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
        // The reports run on a blocking thread (spawn_blocking). The kept connection is taken
        // out of its slot, so that no lock is held while it connects or queries: a report that
        // finds the slot empty (another one is using it) opens its own.
        let kept = self.reader.lock().take();
        let mut reader = match kept {
            Some(r) => r,
            None => Reader::open(&self.config)?,
        };
        let out = f(&mut reader);
        // A broken connection is dropped (the next report opens another); one is kept. A spare
        // is closed after the lock is released (closing a PostgreSQL connection sends).
        if out.is_ok() {
            let spare = self.reader.lock().replace(reader);
            drop(spare);
        }
        out
    }

    /// Closes the report connection (blocking; the next report opens another).
    pub fn close_reader(&self) {
        let reader = self.reader.lock().take();
        drop(reader); // closed outside the lock
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
