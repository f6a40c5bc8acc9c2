//! The Redis store (docs/design.md §9): quota buckets, concurrency, permits, holds and the circuit
//! shared by every process that names the same Redis and prefix.
//!
//! The engine keeps its whole in-memory state as a *mirror* of the shared state and runs every
//! decision on it, exactly as with the memory store; Redis is the authority:
//!
//! - `acquire` ranks on the mirror, then sends the candidates (the eligible ones in score
//!   order, then those skipped only for shared reasons: held, circuit, quota) to one script,
//!   which reserves the first that fits everything atomically and answers with the state it saw
//!   of every candidate. The engine adopts that state, ranks again (the decision's scores) and
//!   charges its mirror as the script did. One round trip.
//! - `complete`, `cancel`, `observe` and `sync_headers` send what they change (per-bucket
//!   deltas, the hold, the outcome's signal for the circuit, header calibration) to the same
//!   script, then apply it to the mirror and adopt the state the script answers with. One round
//!   trip each.
//! - Ranking signals (health, latency, the consumption rate ρ) stay per process.
//!
//! With a single engine the mirror always equals Redis, so every decision is the memory
//! store's (the conformance suite replays unchanged on Redis). With many, admission is exact
//! (the script decides) and ranking uses the last reply.
//!
//! Time: the script is given the engine's clock. With the system clock the engine runs on the
//! Redis server's clock: each reply carries the server's ms, which re-bases a
//! [`SyncedClock`](crate::clock::SyncedClock) (monotonic in between), so hosts with skewed clocks
//! agree on holds, circuits, permits and buckets.
//!
//! Failures: every call is bounded by `timeout_ms` (connect, write and read). On a failure the
//! `on_error` mode applies (see [`Mode`]); while degraded the engine tries Redis again at most
//! once per [`RETRY_MS`], by re-registering its whole configuration (one call), and then resumes
//! shared accounting from Redis's state. Permits granted while degraded stay local.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::time::Instant;

use crate::config::{Algorithm, Config, HealthConfig, OnError, QuotaConfig, Settle, StoreConfig};
use crate::vocab::Dimension;

/// While degraded, how often (at most) the engine tries Redis again, in ms.
pub const RETRY_MS: i64 = 1000;

/// The lua script: one script for every operation.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) const SCRIPT: &str = include_str!("shared.lua");

/// Which accounting is in force (the snapshot's `/store/mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Shared accounting in Redis.
    Shared,
    /// Redis is not answering; each process enforces `local_share` of every limit in memory.
    Local,
    /// Redis is not answering; calls are admitted, counted locally.
    Open,
    /// Redis is not answering; calls are refused with `store_unavailable`.
    Closed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::Local => "local",
            Mode::Open => "open",
            Mode::Closed => "unavailable",
        }
    }
}

/// Why a store call failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Redis did not answer in time, refused the connection, or answered with an error.
    Unavailable(String),
    /// A bucket in Redis has another identity than this configuration's.
    Conflict(String),
}

/// One value of a reply: the script answers with integers and strings only.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Item {
    Int(i64),
    Str(String),
}

/// A bucket's state as Redis has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketReply {
    pub cap: i64,
    pub learned: Option<i64>,
    pub level: i64,
    pub at: i64,
}

/// A provider's shared state as Redis has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProviderReply {
    pub hold: Option<i64>,
    pub failures: i64,
    pub tripped_until: Option<i64>,
    pub k: i32,
    pub probe_busy: bool,
}

/// Reads a reply in order.
pub(crate) struct Reader {
    items: std::vec::IntoIter<Item>,
}

impl Reader {
    fn int(&mut self) -> Result<i64, Fail> {
        match self.items.next() {
            Some(Item::Int(n)) => Ok(n),
            Some(Item::Str(s)) => s
                .parse()
                .map_err(|_| Fail::Unavailable(format!("unexpected reply value '{s}'"))),
            None => Err(Fail::Unavailable("reply too short".into())),
        }
    }

    fn opt_int(&mut self) -> Result<Option<i64>, Fail> {
        match self.items.next() {
            Some(Item::Str(s)) if s.is_empty() => Ok(None),
            Some(Item::Int(n)) => Ok(Some(n)),
            Some(Item::Str(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| Fail::Unavailable(format!("unexpected reply value '{s}'"))),
            None => Err(Fail::Unavailable("reply too short".into())),
        }
    }

    pub fn bucket(&mut self) -> Result<BucketReply, Fail> {
        let cap = self.int()?;
        let learned = self.int()?;
        Ok(BucketReply {
            cap,
            learned: (learned > 0).then_some(learned),
            level: self.int()?,
            at: self.int()?,
        })
    }

    pub fn provider(&mut self) -> Result<ProviderReply, Fail> {
        Ok(ProviderReply {
            hold: self.opt_int()?,
            failures: self.int()?,
            tripped_until: self.opt_int()?,
            k: i32::try_from(self.int()?).unwrap_or(i32::MAX),
            probe_busy: self.int()? != 0,
        })
    }

    /// Every reply starts with the server's ms and one integer that depends on the operation
    /// (the instance number, the chosen candidate, whether the permit was known): both, and the
    /// rest.
    pub fn head(mut self) -> Result<(i64, i64, Reader), Fail> {
        let ms = self.int()?;
        let third = self.int()?;
        Ok((ms, third, self))
    }
}

/// Arguments of one script call.
#[derive(Default)]
pub(crate) struct Args(pub Vec<String>);

impl Args {
    /// A call of `op` at `now` (`None`: at the server's clock, before the engine has read it).
    pub fn new(op: &str, now: Option<i64>, gc_ms: i64) -> Args {
        let now = now.map_or_else(|| "server".to_string(), |n| n.to_string());
        Args(vec![op.to_string(), now, gc_ms.to_string()])
    }

    pub fn s(&mut self, v: &str) -> &mut Self {
        self.0.push(v.to_string());
        self
    }

    pub fn n(&mut self, v: i64) -> &mut Self {
        self.0.push(v.to_string());
        self
    }

    /// A bucket's spec: key, identity, compatibility, kind, configured limit, window, offset.
    pub fn bucket(&mut self, q: &QuotaConfig) -> &mut Self {
        let alg = match q.algorithm {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::FixedWindow => "fixed_window",
        };
        let settle = match q.settle {
            Settle::Actual => "actual",
            Settle::Reserved => "reserved",
        };
        let dim = q.dimension.as_str();
        let kind = match (q.dimension, q.algorithm) {
            (Dimension::Concurrency, _) => "c",
            (_, Algorithm::FixedWindow) => "f",
            (_, Algorithm::TokenBucket) => "b",
        };
        self.0.push(q.key.clone());
        self.0.push(format!(
            "{dim}|{}|{}|{alg}|{settle}|{}|{}",
            q.limit, q.window_ms, q.offset_ms, q.count_cached
        ));
        self.0.push(format!("{dim}|{}|{alg}", q.window_ms));
        self.0.push(kind.to_string());
        self.n(q.limit).n(q.window_ms).n(q.offset_ms)
    }
}

/// The circuit's cooldown for each re-open count `k`, until it reaches the cap (the script
/// uses the last one beyond): computed here so that it is the memory store's float arithmetic.
pub(crate) fn cooldowns(cooldown_ms: i64, cfg: &HealthConfig) -> Vec<i64> {
    let mut out = Vec::new();
    for k in 0..64 {
        let d = crate::health::cooldown(cooldown_ms, k, cfg);
        out.push(d);
        if d >= cfg.max_cooldown_ms {
            break;
        }
    }
    out
}

/// The shared store of one engine: the connection pool, the mode in force.
pub(crate) struct Shared {
    transport: Transport,
    /// The keys' hash tag, `{prefix}`.
    pub anchor: String,
    pub on_error: OnError,
    pub local_share: f64,
    /// GC TTL of every key, in ms (long after anything in them can matter).
    pub gc_ms: i64,
    /// This engine's instance number (permit ids are `<instance>:<id>`).
    pub instance: AtomicI64,
    mode: AtomicU8,
    /// Monotonic ms (since `started`) before which a degraded engine does not try Redis.
    retry_at: AtomicI64,
    started: Instant,
}

impl Shared {
    /// The store `config` names, if it is Redis. Connects lazily: the first call opens the
    /// first connection. A malformed URL is `invalid_config` naming `store.url`.
    pub fn open(config: &Config) -> crate::Result<Option<Shared>> {
        let StoreConfig::Redis {
            url,
            prefix,
            timeout_ms,
            on_error,
            local_share,
        } = &config.store
        else {
            return Ok(None);
        };
        // Keys' TTLs are garbage collection only: a day, or twice the longest window or permit
        // TTL of the configuration at construction.
        let longest = config
            .providers
            .iter()
            .flat_map(|p| p.quotas.iter().map(|q| q.window_ms))
            .chain([config.permit_ttl_ms])
            .max()
            .unwrap_or(0);
        let gc_ms = longest.saturating_mul(2).max(86_400_000);
        let transport = Transport::open(url, *timeout_ms)?;
        Ok(Some(Shared {
            transport,
            anchor: format!("{{{prefix}}}"),
            on_error: *on_error,
            local_share: *local_share,
            gc_ms,
            instance: AtomicI64::new(0),
            mode: AtomicU8::new(0),
            retry_at: AtomicI64::new(i64::MIN),
            started: Instant::now(),
        }))
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        match self.mode.load(Ordering::Acquire) {
            0 => Mode::Shared,
            _ => match self.on_error {
                OnError::Local => Mode::Local,
                OnError::Open => Mode::Open,
                OnError::Closed => Mode::Closed,
            },
        }
    }

    fn mono_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether a degraded engine should try Redis again now (claims the attempt).
    pub fn retry_due(&self) -> bool {
        let now = self.mono_ms();
        let at = self.retry_at.load(Ordering::Acquire);
        now >= at
            && self
                .retry_at
                .compare_exchange(at, now.saturating_add(RETRY_MS), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Records a failure; true when this call switched the engine out of shared accounting.
    pub fn degrade(&self) -> bool {
        self.retry_at
            .store(self.mono_ms().saturating_add(RETRY_MS), Ordering::Release);
        self.mode.swap(1, Ordering::AcqRel) == 0
    }

    /// Back to shared accounting.
    pub fn recover(&self) {
        self.mode.store(0, Ordering::Release);
    }

    /// Runs the script; `Ok` holds the reply after its `'ok'` marker.
    pub fn call(&self, args: &Args) -> Result<Reader, Fail> {
        let items = self.transport.eval(&self.anchor, &args.0)?;
        let mut it = items.into_iter();
        match it.next() {
            Some(Item::Str(s)) if s == "ok" => Ok(Reader { items: it }),
            Some(Item::Str(s)) if s == "conflict" => {
                let key = match it.next() {
                    Some(Item::Str(k)) => k,
                    _ => String::new(),
                };
                Err(Fail::Conflict(format!(
                    "the bucket '{key}' in Redis has another dimension, limit, window, algorithm, settle, offset or count_cached than this configuration"
                )))
            }
            other => Err(Fail::Unavailable(format!(
                "unexpected reply from the script: {other:?}"
            ))),
        }
    }
}

#[cfg(feature = "redis")]
mod transport {
    use parking_lot::Mutex;
    use std::time::Duration;

    use super::{Fail, Item};
    use crate::error::Error;

    /// A pool of blocking connections, each bounded by the timeout; a connection that failed
    /// is dropped (a late reply may still be on its way), never reused.
    pub(crate) struct Transport {
        url: String,
        client: redis::Client,
        timeout: Duration,
        pool: Mutex<Vec<redis::Connection>>,
        script: redis::Script,
    }

    impl Transport {
        pub fn open(url: &str, timeout_ms: i64) -> crate::Result<Transport> {
            let client = redis::Client::open(url)
                .map_err(|e| Error::InvalidConfig(format!("store.url: not a usable Redis URL ({e})")))?;
            Ok(Transport {
                // The address only: a URL may carry a password.
                url: client.get_connection_info().addr().to_string(),
                client,
                timeout: Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(50)),
                pool: Mutex::new(Vec::new()),
                script: redis::Script::new(super::SCRIPT),
            })
        }

        fn connect(&self) -> Result<redis::Connection, Fail> {
            let unavailable = |e: redis::RedisError| Fail::Unavailable(format!("Redis at {}: {e}", self.url));
            let con = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(unavailable)?;
            con.set_read_timeout(Some(self.timeout)).map_err(unavailable)?;
            con.set_write_timeout(Some(self.timeout)).map_err(unavailable)?;
            Ok(con)
        }

        pub fn eval(&self, anchor: &str, args: &[String]) -> Result<Vec<Item>, Fail> {
            let popped = self.pool.lock().pop();
            let mut con = match popped {
                Some(c) => c,
                None => self.connect()?,
            };
            let mut inv = self.script.prepare_invoke();
            inv.key(anchor);
            inv.arg(args);
            let value: redis::Value = inv
                .invoke(&mut con)
                .map_err(|e| Fail::Unavailable(format!("Redis at {}: {e}", self.url)))?;
            self.pool.lock().push(con);
            let redis::Value::Array(values) = value else {
                return Err(Fail::Unavailable(format!(
                    "unexpected reply from the script: {value:?}"
                )));
            };
            values
                .into_iter()
                .map(|v| match v {
                    redis::Value::Int(n) => Ok(Item::Int(n)),
                    redis::Value::BulkString(b) => Ok(Item::Str(String::from_utf8_lossy(&b).into_owned())),
                    redis::Value::SimpleString(s) => Ok(Item::Str(s)),
                    other => Err(Fail::Unavailable(format!(
                        "unexpected value in the script's reply: {other:?}"
                    ))),
                })
                .collect()
        }
    }
}

#[cfg(not(feature = "redis"))]
mod transport {
    use super::{Fail, Item};
    use crate::error::Error;

    /// Without the `redis` feature there is no transport: a redis store cannot be opened.
    pub(crate) enum Transport {}

    impl Transport {
        pub fn open(_url: &str, _timeout_ms: i64) -> crate::Result<Transport> {
            Err(Error::StoreUnavailable(
                "this build of ratewise has no redis store (enable the cargo feature `redis`)".into(),
            ))
        }

        pub fn eval(&self, _anchor: &str, _args: &[String]) -> Result<Vec<Item>, Fail> {
            match *self {}
        }
    }
}

use transport::Transport;
