//! The gateway's spend ledger and availability log.
//!
//! Every request the gateway answers becomes one [`Record`] (who, what, which deployment, the
//! tokens and cost, the status and fault domain, latency, cache and degraded flags); every
//! provider outcome, fallback and circuit change becomes one [`Event`]. Both are handed to
//! [`Ledger::record`] / [`Ledger::event`], which never block: they go into a bounded queue
//! (a full queue drops and counts, see [`Ledger::dropped`]) that one writer thread drains in
//! batches, one transaction each, into SQLite (the embedded default: WAL, bounded retention)
//! or PostgreSQL (several gateways writing to one database). A failed write keeps its batch
//! and retries with backoff, so a database outage loses only what overflows the queue.
//!
//! [`Reader`] answers the reports: spend grouped by key, capability, provider, model or time
//! ([`Reader::usage`]), and per-provider availability, latency and circuit changes over a
//! window ([`Reader::availability`]).
//!
//! ```
//! use ratewise_ledger::{GroupBy, Ledger, LedgerConfig, Reader, Record, UsageQuery};
//! let dir = std::env::temp_dir().join(format!("ratewise-ledger-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let cfg = LedgerConfig::new(format!("sqlite:{}", dir.join("ledger.db").display()));
//! let ledger = Ledger::open(&cfg).unwrap();
//! ledger.record(Record { ts_ms: 1_000, key: "team-a".into(), cost_micro_usd: 250, ..Record::default() });
//! ledger.flush().unwrap();
//! let rows = Reader::open(&cfg).unwrap()
//!     .usage(&UsageQuery { from_ms: 0, to_ms: 2_000, group_by: vec![GroupBy::Key] }).unwrap();
//! assert_eq!((rows[0].group[0].as_str(), rows[0].requests, rows[0].cost_micro_usd), ("team-a", 1, 250));
//! ```

mod pg;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where and how the ledger writes.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerConfig {
    /// `sqlite:PATH` (a file, created if missing) or `postgres://user:password@host:port/db`.
    pub url: String,
    /// Records and events older than this many days are deleted (hourly, and at start).
    pub retention_days: u32,
    /// At most this many records and events per write (one transaction).
    pub batch_max: usize,
    /// A record waits at most this long before it is written.
    pub flush_ms: u64,
    /// The queue between the callers and the writer; beyond it, records are dropped and counted.
    pub queue_max: usize,
}

impl LedgerConfig {
    /// The defaults for `url`: 30 days, batches of 512, 200 ms, a queue of 65,536.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            retention_days: 30,
            batch_max: 512,
            flush_ms: 200,
            queue_max: 65_536,
        }
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), LedgerError> {
        Target::parse(&self.url)?;
        let bad = |field: &str, why: &str| Err(LedgerError::Config(format!("{field}: {why}")));
        if self.retention_days == 0 {
            return bad("retention_days", "must be at least 1");
        }
        if self.batch_max == 0 || self.batch_max > 10_000 {
            return bad("batch_max", "must be between 1 and 10000");
        }
        if self.flush_ms == 0 || self.flush_ms > 60_000 {
            return bad("flush_ms", "must be between 1 and 60000");
        }
        if self.queue_max == 0 {
            return bad("queue_max", "must be at least 1");
        }
        Ok(())
    }

    /// The URL with any password replaced by `***` (for logs and errors).
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// One request the gateway answered (or refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// When the request arrived, in ms since the Unix epoch.
    pub ts_ms: i64,
    /// The gateway's `x-request-id`.
    pub request_id: String,
    /// The virtual key's name (`-` before a key was known).
    pub key: String,
    /// The capability (`-` when none was resolved).
    pub capability: String,
    /// The provider that answered (empty: none did — a refusal, a cache hit, a static answer).
    pub provider: String,
    /// The upstream model called.
    pub model: String,
    /// Input tokens billed (the provider's reported usage).
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Input tokens served from the provider's prompt cache (part of `input_tokens`).
    pub cached_tokens: u64,
    /// Cost in micro-USD.
    pub cost_micro_usd: u64,
    /// The HTTP status the client got.
    pub status: u16,
    /// The fault domain (`ok`, `caller_*`, `policy_*`, `provider_*`, `gateway_*`).
    pub domain: String,
    /// The whole request's latency as the client saw it.
    pub latency_ms: u64,
    /// Time to the first token for streams.
    pub ttft_ms: Option<u64>,
    /// The cache's verdict: `hit`, `miss`, `stale`, `bypass`, or empty (the cache was off).
    pub cache: String,
    /// `stale` or `static` for a degraded answer, else empty.
    pub degraded: String,
    /// Upstream attempts made.
    pub attempts: u32,
}

/// What an [`Event`] says about a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A call that succeeded.
    Success,
    /// A 429.
    RateLimited,
    /// A 503 or 529.
    Overloaded,
    /// Another 5xx.
    ServerError,
    /// A timeout (408, 504, or the transport's).
    Timeout,
    /// A call that moved on from this provider to try another decision.
    Fallback,
    /// The provider's circuit opened.
    CircuitOpened,
    /// The provider's circuit closed again.
    CircuitClosed,
}

impl EventKind {
    /// Every kind, in report order.
    pub const ALL: [EventKind; 8] = [
        EventKind::Success,
        EventKind::RateLimited,
        EventKind::Overloaded,
        EventKind::ServerError,
        EventKind::Timeout,
        EventKind::Fallback,
        EventKind::CircuitOpened,
        EventKind::CircuitClosed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Success => "success",
            EventKind::RateLimited => "rate_limited",
            EventKind::Overloaded => "overloaded",
            EventKind::ServerError => "server_error",
            EventKind::Timeout => "timeout",
            EventKind::Fallback => "fallback",
            EventKind::CircuitOpened => "circuit_opened",
            EventKind::CircuitClosed => "circuit_closed",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// An outcome of a call (counted in availability), not a fallback or a circuit change.
    pub fn is_outcome(self) -> bool {
        matches!(
            self,
            EventKind::Success
                | EventKind::RateLimited
                | EventKind::Overloaded
                | EventKind::ServerError
                | EventKind::Timeout
        )
    }
}

/// One line of the availability log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When, in ms since the Unix epoch.
    pub ts_ms: i64,
    /// The provider.
    pub provider: String,
    /// What happened.
    pub kind: EventKind,
    /// The call's latency, for outcomes.
    pub latency_ms: Option<u64>,
}

/// A column to group usage by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The virtual key.
    Key,
    /// The capability.
    Capability,
    /// The provider.
    Provider,
    /// The upstream model.
    Model,
    /// Time buckets of this many ms (the bucket's start, in ms since the epoch, as text).
    Time(i64),
}

impl GroupBy {
    /// `key`, `capability`, `provider`, `model`, `minute`, `hour` or `day`.
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "key" => GroupBy::Key,
            "capability" => GroupBy::Capability,
            "provider" => GroupBy::Provider,
            "model" => GroupBy::Model,
            "minute" => GroupBy::Time(60_000),
            "hour" => GroupBy::Time(3_600_000),
            "day" => GroupBy::Time(86_400_000),
            _ => return None,
        })
    }

    /// Parses a comma-separated list (`key,model`); the error names the unknown entry.
    pub fn parse_list(s: &str) -> Result<Vec<GroupBy>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g = GroupBy::parse(part).ok_or_else(|| {
                format!("unknown group_by {part:?}: expected key, capability, provider, model, minute, hour or day")
            })?;
            if !out.contains(&g) {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The column name in reports.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::Capability => "capability",
            GroupBy::Provider => "provider",
            GroupBy::Model => "model",
            GroupBy::Time(60_000) => "minute",
            GroupBy::Time(3_600_000) => "hour",
            GroupBy::Time(86_400_000) => "day",
            GroupBy::Time(_) => "time",
        }
    }

    fn sql(self) -> String {
        match self {
            GroupBy::Key => "key".into(),
            GroupBy::Capability => "capability".into(),
            GroupBy::Provider => "provider".into(),
            GroupBy::Model => "model".into(),
            GroupBy::Time(ms) => format!("CAST((ts_ms / {ms}) * {ms} AS TEXT)", ms = ms.max(1)),
        }
    }
}

/// A usage report's window and grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// From this ms since the epoch (inclusive).
    pub from_ms: i64,
    /// To this ms (exclusive).
    pub to_ms: i64,
    /// The grouping columns, in order; empty: one total row.
    pub group_by: Vec<GroupBy>,
}

/// One row of a usage report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// The group's values, in `group_by` order.
    pub group: Vec<String>,
    /// Requests.
    pub requests: u64,
    /// Input tokens billed.
    pub input_tokens: u64,
    /// Output tokens billed.
    pub output_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// Cost in micro-USD.
    pub cost_micro_usd: u64,
    /// Requests answered with a status ≥ 400.
    pub errors: u64,
    /// Requests answered from the cache (`hit` or `stale`).
    pub cache_hits: u64,
    /// Degraded answers (stale or static).
    pub degraded: u64,
}

/// One provider's line in an availability report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvailabilityRow {
    /// The provider.
    pub provider: String,
    /// Outcomes (success, rate_limited, overloaded, server_error, timeout).
    pub outcomes: u64,
    /// Successes.
    pub successes: u64,
    /// `successes / outcomes` (`None`: no outcome in the window).
    pub availability: Option<f64>,
    /// Median latency of the successes, in ms (nearest rank).
    pub latency_p50_ms: Option<u64>,
    /// 99th percentile latency of the successes, in ms (nearest rank).
    pub latency_p99_ms: Option<u64>,
    /// 429s.
    pub rate_limited: u64,
    /// 503s and 529s.
    pub overloaded: u64,
    /// Other 5xx.
    pub server_errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Calls that moved on to another decision.
    pub fallbacks: u64,
    /// Circuit openings.
    pub circuit_opened: u64,
    /// Circuit closings.
    pub circuit_closed: u64,
}

/// A ledger failure. Its text never contains a database password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// The configuration is invalid (the text names the field).
    #[error("ledger configuration: {0}")]
    Config(String),
    /// The database refused or failed.
    #[error("ledger database ({url}): {message}")]
    Database {
        /// The redacted URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The writer has stopped (or did not answer a flush in time).
    #[error("ledger writer: {0}")]
    Writer(String),
}

impl LedgerError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LedgerError::Config(_) => "ledger_config",
            LedgerError::Database { .. } => "ledger_database",
            LedgerError::Writer(_) => "ledger_writer",
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db` (and `?password=`): the
/// core's, which every store URL goes through.
pub use ratewise::redact_url;

/// The database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Sqlite(String),
    Postgres(String),
}

impl Target {
    fn parse(url: &str) -> Result<Target, LedgerError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(LedgerError::Config(
                    "url: sqlite: needs a file path (sqlite:ledger.db)".into(),
                ));
            }
            return Ok(Target::Sqlite(path.to_string()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_string()));
        }
        Err(LedgerError::Config(format!(
            "url: {:?} is neither sqlite:PATH nor postgres://…",
            redact_url(url)
        )))
    }
}

/// What a backend does; one per connection.
trait Store: Send {
    fn write(&mut self, records: &[Record], events: &[Event]) -> Result<(), String>;
    fn prune(&mut self, before_ms: i64) -> Result<(), String>;
    fn usage(&mut self, q: &UsageQuery) -> Result<Vec<UsageRow>, String>;
    fn availability(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<AvailabilityRow>, String>;
}

fn connect(cfg: &LedgerConfig) -> Result<Box<dyn Store>, LedgerError> {
    let db_err = |message: String| LedgerError::Database {
        url: cfg.redacted_url(),
        message: scrub(&message, &cfg.url),
    };
    Ok(match Target::parse(&cfg.url)? {
        Target::Sqlite(path) => Box::new(sqlite::Sqlite::open(&path).map_err(db_err)?),
        Target::Postgres(url) => Box::new(pg::Pg::open(&url).map_err(db_err)?),
    })
}

/// Removes the URL's passwords from a message, should a driver ever echo one: the user
/// information's and a `pass` / `password` query parameter's, each as written and decoded.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_string();
    for secret in secrets_of(url) {
        if !secret.is_empty() {
            out = out.replace(&secret, "***");
        }
    }
    out
}

fn secrets_of(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // The user information ends at the last `@`, as `redact_url` reads it.
    if let Some(at) = rest.rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
    {
        found.push(password.to_string());
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split('#').next().unwrap_or("");
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if k == "pass" || k == "password" {
                found.push(v.to_string());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decoded(s)).collect();
    found.extend(decoded);
    // Longest first, so that a secret containing another is replaced whole.
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found
}

/// `%XX` escapes decoded (others left as they are).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The SQL shared by both backends (`ph` writes the n-th placeholder, 1-based).
pub(crate) mod sql {
    use super::UsageQuery;

    pub const COLUMNS: &str = "ts_ms, request_id, key, capability, provider, model, input_tokens, output_tokens, \
        cached_tokens, cost_micro_usd, status, domain, latency_ms, ttft_ms, cache, degraded, attempts";
    pub const N_COLUMNS: usize = 17;

    pub fn schema(bigint: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS ratewise_requests (ts_ms {bigint} NOT NULL, request_id TEXT NOT NULL, \
                 key TEXT NOT NULL, capability TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, \
                 input_tokens {bigint} NOT NULL, output_tokens {bigint} NOT NULL, cached_tokens {bigint} NOT NULL, \
                 cost_micro_usd {bigint} NOT NULL, status INTEGER NOT NULL, domain TEXT NOT NULL, \
                 latency_ms {bigint} NOT NULL, ttft_ms {bigint}, cache TEXT NOT NULL, degraded TEXT NOT NULL, \
                 attempts INTEGER NOT NULL)"
            ),
            "CREATE INDEX IF NOT EXISTS ratewise_requests_ts ON ratewise_requests (ts_ms)".into(),
            format!(
                "CREATE TABLE IF NOT EXISTS ratewise_events (ts_ms {bigint} NOT NULL, provider TEXT NOT NULL, \
                 kind TEXT NOT NULL, latency_ms {bigint})"
            ),
            "CREATE INDEX IF NOT EXISTS ratewise_events_ts ON ratewise_events (ts_ms)".into(),
        ]
    }

    /// `INSERT INTO ratewise_requests (...) VALUES (...), ...` for `rows` rows.
    pub fn insert_records(rows: usize, ph: impl Fn(usize) -> String) -> String {
        values("ratewise_requests", COLUMNS, N_COLUMNS, rows, ph)
    }

    pub fn insert_events(rows: usize, ph: impl Fn(usize) -> String) -> String {
        values("ratewise_events", "ts_ms, provider, kind, latency_ms", 4, rows, ph)
    }

    fn values(table: &str, cols: &str, n: usize, rows: usize, ph: impl Fn(usize) -> String) -> String {
        let mut s = format!("INSERT INTO {table} ({cols}) VALUES ");
        for r in 0..rows {
            if r > 0 {
                s.push(',');
            }
            s.push('(');
            for c in 0..n {
                if c > 0 {
                    s.push(',');
                }
                s.push_str(&ph(r * n + c + 1));
            }
            s.push(')');
        }
        s
    }

    /// The usage query: the group columns, then requests, input, output, cached, cost, errors,
    /// cache hits, degraded; parameters 1 and 2 are the window.
    pub fn usage(q: &UsageQuery, ph: impl Fn(usize) -> String) -> String {
        let groups: Vec<String> = q.group_by.iter().map(|g| g.sql()).collect();
        let sum = |e: &str| format!("CAST(COALESCE(SUM({e}), 0) AS BIGINT)");
        let mut cols = groups.clone();
        cols.extend([
            "CAST(COUNT(*) AS BIGINT)".to_string(),
            sum("input_tokens"),
            sum("output_tokens"),
            sum("cached_tokens"),
            sum("cost_micro_usd"),
            sum("CASE WHEN status >= 400 THEN 1 ELSE 0 END"),
            sum("CASE WHEN cache IN ('hit', 'stale') THEN 1 ELSE 0 END"),
            sum("CASE WHEN degraded <> '' THEN 1 ELSE 0 END"),
        ]);
        let mut s = format!(
            "SELECT {} FROM ratewise_requests WHERE ts_ms >= {} AND ts_ms < {}",
            cols.join(", "),
            ph(1),
            ph(2)
        );
        if !groups.is_empty() {
            let ords: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
            s += &format!(" GROUP BY {} ORDER BY {}", ords.join(", "), ords.join(", "));
        }
        s
    }

    pub fn event_counts(ph: impl Fn(usize) -> String) -> String {
        format!(
            "SELECT provider, kind, CAST(COUNT(*) AS BIGINT), CAST(COUNT(latency_ms) AS BIGINT) FROM ratewise_events \
             WHERE ts_ms >= {} AND ts_ms < {} GROUP BY provider, kind ORDER BY provider, kind",
            ph(1),
            ph(2)
        )
    }

    /// The latency at a rank (parameters: from, to, provider, offset).
    pub fn latency_at(ph: impl Fn(usize) -> String) -> String {
        format!(
            "SELECT latency_ms FROM ratewise_events WHERE ts_ms >= {} AND ts_ms < {} AND provider = {} \
             AND kind = 'success' AND latency_ms IS NOT NULL ORDER BY latency_ms LIMIT 1 OFFSET {}",
            ph(1),
            ph(2),
            ph(3),
            ph(4)
        )
    }
}

/// Folds `(provider, kind, count, with_latency)` rows into report lines; `rank` fetches the
/// latency at an offset among a provider's successes.
fn fold_availability(
    counts: Vec<(String, String, u64, u64)>,
    mut rank: impl FnMut(&str, u64) -> Result<Option<u64>, String>,
) -> Result<Vec<AvailabilityRow>, String> {
    let mut rows: Vec<(AvailabilityRow, u64)> = Vec::new();
    for (provider, kind, n, with_latency) in counts {
        let Some(kind) = EventKind::parse(&kind) else { continue };
        let i = match rows.iter().position(|(r, _)| r.provider == provider) {
            Some(i) => i,
            None => {
                rows.push((
                    AvailabilityRow {
                        provider: provider.clone(),
                        ..AvailabilityRow::default()
                    },
                    0,
                ));
                rows.len() - 1
            }
        };
        let (r, timed) = &mut rows[i];
        if kind.is_outcome() {
            r.outcomes += n;
        }
        match kind {
            EventKind::Success => {
                r.successes += n;
                *timed += with_latency;
            }
            EventKind::RateLimited => r.rate_limited += n,
            EventKind::Overloaded => r.overloaded += n,
            EventKind::ServerError => r.server_errors += n,
            EventKind::Timeout => r.timeouts += n,
            EventKind::Fallback => r.fallbacks += n,
            EventKind::CircuitOpened => r.circuit_opened += n,
            EventKind::CircuitClosed => r.circuit_closed += n,
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (mut r, timed) in rows {
        if r.outcomes > 0 {
            r.availability = Some(r.successes as f64 / r.outcomes as f64);
        }
        if timed > 0 {
            // Nearest rank: the ceil(q·n)-th smallest.
            let at = |q: f64| ((q * timed as f64).ceil() as u64).clamp(1, timed) - 1;
            r.latency_p50_ms = rank(&r.provider, at(0.50))?;
            r.latency_p99_ms = rank(&r.provider, at(0.99))?;
        }
        out.push(r);
    }
    Ok(out)
}

/// Reads the reports (a connection of its own; the writer is not involved).
pub struct Reader {
    cfg: LedgerConfig,
    store: Box<dyn Store>,
}

impl Reader {
    /// Connects (and creates the tables if they are missing).
    pub fn open(cfg: &LedgerConfig) -> Result<Reader, LedgerError> {
        cfg.validate()?;
        Ok(Reader {
            cfg: cfg.clone(),
            store: connect(cfg)?,
        })
    }

    /// Spend in a window, grouped.
    pub fn usage(&mut self, q: &UsageQuery) -> Result<Vec<UsageRow>, LedgerError> {
        let mut rows = self.store.usage(q).map_err(|m| self.err(m))?;
        rows.retain(|r| r.requests > 0);
        Ok(rows)
    }

    /// Per provider, over a window: availability, latency, 429/529 counts and circuit changes.
    pub fn availability(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<AvailabilityRow>, LedgerError> {
        self.store.availability(from_ms, to_ms).map_err(|m| self.err(m))
    }

    fn err(&self, message: String) -> LedgerError {
        LedgerError::Database {
            url: self.cfg.redacted_url(),
            message: scrub(&message, &self.cfg.url),
        }
    }
}

/// Records are boxed: the channel allocates its slots up front, so a slot stays small.
enum Msg {
    Record(Box<Record>),
    Event(Event),
    Flush(SyncSender<Result<(), String>>),
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed_writes: AtomicU64,
    wakeups: AtomicU64,
    /// Messages sent so far: the writer is woken once per `batch_max` of them (senders alone
    /// write it).
    sent: AtomicUsize,
}

/// The writer: non-blocking [`record`](Ledger::record) and [`event`](Ledger::event), batched
/// writes on a thread of its own. Dropping it writes what is queued (one attempt) and stops.
pub struct Ledger {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    url: String,
    batch_max: usize,
}

impl Ledger {
    /// Validates, connects (so a wrong URL or an unreachable database fails here, at start),
    /// creates the tables if they are missing, prunes past the retention and starts the writer.
    pub fn open(cfg: &LedgerConfig) -> Result<Ledger, LedgerError> {
        cfg.validate()?;
        let mut store = connect(cfg)?;
        let retention_ms = i64::from(cfg.retention_days) * 86_400_000;
        store
            .prune(now_ms() - retention_ms)
            .map_err(|m| LedgerError::Database {
                url: cfg.redacted_url(),
                message: scrub(&m, &cfg.url),
            })?;
        let (tx, rx) = mpsc::sync_channel(cfg.queue_max);
        let counters = Arc::new(Counters::default());
        let w = Writer {
            cfg: cfg.clone(),
            store,
            counters: counters.clone(),
            records: Vec::new(),
            events: Vec::new(),
            oldest: None,
            retention_ms,
            last_prune: Instant::now(),
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("ratewise-ledger".into())
            .spawn(move || {
                background();
                w.run(rx)
            })
            .map_err(|e| LedgerError::Writer(format!("cannot start the writer thread: {e}")))?;
        Ok(Ledger {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            url: cfg.redacted_url(),
            batch_max: cfg.batch_max,
        })
    }

    /// Wakes the writer (it otherwise sleeps until its next `flush_ms` tick).
    fn wake(&self) {
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Queues a record; never blocks (a full queue drops it and counts it in `dropped`).
    pub fn record(&self, record: Record) {
        self.send(Msg::Record(Box::new(record)));
    }

    /// Queues an event; never blocks.
    pub fn event(&self, event: Event) {
        self.send(Msg::Event(event));
    }

    /// Never wakes the writer thread, but once per `batch_max` messages: the writer does not
    /// block on the channel (a blocked receiver is woken by every send, a context switch on
    /// the request's path); it sleeps until its next tick and drains what came.
    fn send(&self, msg: Msg) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(msg) {
            Ok(()) => {
                let sent = self.counters.sent.fetch_add(1, Ordering::Relaxed) + 1;
                if sent.is_multiple_of(self.batch_max) {
                    self.wake();
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes everything queued before this call and waits for it (at most 30 s). Blocking:
    /// call it from a blocking context (`spawn_blocking`), not on an async worker.
    pub fn flush(&self) -> Result<(), LedgerError> {
        let Some(tx) = &self.tx else {
            return Err(LedgerError::Writer("stopped".into()));
        };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        tx.send(Msg::Flush(ack_tx))
            .map_err(|_| LedgerError::Writer("stopped".into()))?;
        self.wake();
        match ack_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(m)) => Err(LedgerError::Database {
                url: self.url.clone(),
                message: m,
            }),
            Err(_) => Err(LedgerError::Writer("no answer to a flush within 30 s".into())),
        }
    }

    /// Records and events written so far.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Records and events dropped (queue full, or the writer stopped).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Writes that failed (each is retried; see `dropped` for what was lost).
    pub fn failed_writes(&self) -> u64 {
        self.counters.failed_writes.load(Ordering::Relaxed)
    }

    /// How many times the writer thread has woken up. A record or an event does not wake it
    /// (that would cost the request a context switch): it wakes every `flush_ms`, on a
    /// [`flush`](Ledger::flush), and once per `batch_max` queued.
    pub fn wakeups(&self) -> u64 {
        self.counters.wakeups.load(Ordering::Relaxed)
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.tx = None;
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Makes the calling (writer) thread a background one: `SCHED_BATCH` (a woken batch thread never
/// preempts a running one, so a write never cuts into a request being served) at niceness 9
/// (a tenth of a request thread's share of a busy CPU, ample for ~3 µs per record; at niceness 0
/// the writes cost requests 22.5 µs p50 at 1,000 RPS: bench/README.md). Where the OS refuses,
/// the thread stays as it was (logged at debug).
fn background() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
        };
        // The crate maps 0..=99 onto niceness 19..=-20: 23 is niceness 9.
        let priority = thread_priority::ThreadPriority::Crossplatform(23u8.try_into().unwrap_or_default());
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
        if let Err(e) = set_thread_priority_and_policy(thread_native_id(), priority, policy) {
            tracing::debug!(target: "ratewise::ledger", error = ?e, "ledger: the writer keeps its scheduling");
        }
    }
}

/// The writer thread's state.
struct Writer {
    cfg: LedgerConfig,
    store: Box<dyn Store>,
    counters: Arc<Counters>,
    records: Vec<Record>,
    events: Vec<Event>,
    oldest: Option<Instant>,
    retention_ms: i64,
    last_prune: Instant,
    failing: bool,
}

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Writer {
    /// Sleeps until the oldest buffered message is `flush_ms` old (or for `flush_ms` when
    /// nothing is buffered; `park_timeout`, so a flush, a shutdown or a full batch wakes it
    /// early), drains the channel, and writes when a batch is full or due.
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let flush_after = Duration::from_millis(self.cfg.flush_ms);
        let mut backoff = Duration::from_millis(100);
        // What a drain takes arrived after the previous drain began: that instant stands for
        // its age (never younger than it is), so nothing waits more than about `flush_ms` plus
        // the writes in between.
        let mut since = Instant::now();
        loop {
            let stamp = std::mem::replace(&mut since, Instant::now());
            let mut stop = false;
            // While writes fail, stop draining past the queue's size: the channel fills and
            // new records are dropped and counted, instead of memory growing without bound.
            while self.records.len() + self.events.len() < self.cfg.queue_max {
                match rx.try_recv() {
                    Ok(msg) => match msg {
                        Msg::Record(r) => {
                            self.records.push(*r);
                            self.oldest.get_or_insert(stamp);
                        }
                        Msg::Event(e) => {
                            self.events.push(e);
                            self.oldest.get_or_insert(stamp);
                        }
                        Msg::Flush(ack) => {
                            let r = self.write_all();
                            let _ = ack.send(r);
                        }
                    },
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stop = true;
                        break;
                    }
                }
            }
            if stop {
                if let Err(m) = self.write_all() {
                    let lost = (self.records.len() + self.events.len()) as u64;
                    self.counters.dropped.fetch_add(lost, Ordering::Relaxed);
                    tracing::error!(target: "ratewise::ledger", lost, error = %m, "ledger: could not write at shutdown");
                }
                return;
            }
            let due = self.oldest.is_some_and(|t| t.elapsed() >= flush_after);
            if self.records.len() + self.events.len() >= self.cfg.batch_max || due {
                match self.write_all() {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(_) => {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            if self.last_prune.elapsed() >= PRUNE_EVERY {
                self.last_prune = Instant::now();
                if let Err(m) = self.store.prune(now_ms() - self.retention_ms) {
                    tracing::warn!(target: "ratewise::ledger", error = %scrub(&m, &self.cfg.url), "ledger: pruning failed");
                }
            }
            let wait = match self.oldest {
                Some(t) => flush_after.saturating_sub(t.elapsed()),
                None => flush_after,
            };
            std::thread::park_timeout(wait);
            self.counters.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes the buffers in batches of `batch_max`; what fails stays buffered.
    fn write_all(&mut self) -> Result<(), String> {
        while !self.records.is_empty() || !self.events.is_empty() {
            let nr = self.records.len().min(self.cfg.batch_max);
            let ne = self.events.len().min(self.cfg.batch_max - nr);
            match self.store.write(&self.records[..nr], &self.events[..ne]) {
                Ok(()) => {
                    self.records.drain(..nr);
                    self.events.drain(..ne);
                    self.counters.written.fetch_add((nr + ne) as u64, Ordering::Relaxed);
                    if self.failing {
                        self.failing = false;
                        tracing::info!(target: "ratewise::ledger", url = %self.cfg.redacted_url(), "ledger: writing again");
                    }
                }
                Err(m) => {
                    let m = scrub(&m, &self.cfg.url);
                    self.counters.failed_writes.fetch_add(1, Ordering::Relaxed);
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(target: "ratewise::ledger", url = %self.cfg.redacted_url(), error = %m,
                            "ledger: write failed; keeping the batch and retrying");
                    }
                    return Err(m);
                }
            }
        }
        self.oldest = None;
        Ok(())
    }
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://rw:s3cret@127.0.0.1:5432/db"),
            "postgres://rw:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact_url("postgres://rw@h/db"), "postgres://rw@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=a&password=x"),
            "postgres://h/db?user=a&password=***"
        );
        assert_eq!(redact_url("sqlite:ledger.db"), "sqlite:ledger.db");
        assert_eq!(
            scrub("auth failed for s3cret", "postgres://rw:s3cret@h/db"),
            "auth failed for ***"
        );
    }

    #[test]
    fn scrub_hides_query_and_percent_encoded_passwords() {
        // A password in the query, and one percent-encoded in the user information: a driver
        // may echo either as given or decoded.
        let url = "postgres://h/db?user=a&password=hunter2";
        assert_eq!(scrub("bad password hunter2", url), "bad password ***");
        let url = "postgres://rw:p%40ss%21@h/db";
        assert_eq!(scrub("p%40ss%21 or p@ss!", url), "*** or ***");
        assert_eq!(scrub("nothing secret", "sqlite:ledger.db"), "nothing secret");
    }

    #[test]
    fn config_errors_name_the_field() {
        let mut c = LedgerConfig::new("mysql://x");
        assert!(c.validate().unwrap_err().to_string().contains("url:"));
        c.url = "sqlite:".into();
        assert!(c.validate().unwrap_err().to_string().contains("url:"));
        c.url = "sqlite:x.db".into();
        c.batch_max = 0;
        assert!(c.validate().unwrap_err().to_string().contains("batch_max"));
        let c = LedgerConfig::new("postgres://u:pw@h/db?x=1");
        assert!(c.validate().is_ok());
        let e = LedgerConfig {
            url: "mongodb://u:pw@h".into(),
            ..c
        }
        .validate()
        .unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn group_by_lists() {
        assert_eq!(
            GroupBy::parse_list("key, model,key").unwrap(),
            vec![GroupBy::Key, GroupBy::Model]
        );
        assert!(GroupBy::parse_list("key,team").unwrap_err().contains("\"team\""));
        assert_eq!(GroupBy::parse_list("").unwrap(), vec![]);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let counts = vec![
            ("a".to_string(), "success".to_string(), 100, 100),
            ("a".to_string(), "rate_limited".to_string(), 25, 0),
            ("a".to_string(), "circuit_opened".to_string(), 1, 0),
        ];
        let mut asked = vec![];
        let rows = fold_availability(counts, |_, off| {
            asked.push(off);
            Ok(Some(off + 1))
        })
        .unwrap();
        assert_eq!(asked, vec![49, 98]);
        assert_eq!(rows[0].availability, Some(0.8));
        assert_eq!(
            (rows[0].outcomes, rows[0].rate_limited, rows[0].circuit_opened),
            (125, 25, 1)
        );
        assert_eq!((rows[0].latency_p50_ms, rows[0].latency_p99_ms), (Some(50), Some(99)));
    }
}
