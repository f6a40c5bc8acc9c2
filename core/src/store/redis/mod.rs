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
//! Failures: every call is bounded by one deadline, `timeout_ms` from its start (connecting,
//! loading the script, the call; see `transport.rs`); a pooled connection the server closed while
//! idle is replaced and the call sent again within it, so a restart or an idle timeout costs no
//! call. On a failure the `on_error` mode applies (see [`Mode`]); while degraded the engine tries
//! Redis again at most once per backoff period ([`RETRY_MIN_MS`], doubling per failed try up to
//! [`RETRY_MAX_MS`], ±[`RETRY_JITTER_PERCENT`]%), by re-registering its whole configuration (one
//! call), and then resumes shared accounting from Redis's state. Permits granted while degraded
//! stay local.

mod mirror;
mod transport;
mod wire;

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use crate::clock::Clock;
use crate::config::{Config, OnError, StoreConfig};
use crate::error::{Error, Result as CoreResult};
use crate::quota::Bucket;
use crate::topology::Topology;
use crate::vocab::Dimension;
pub(crate) use mirror::Candidate;
use std::sync::Arc;
use transport::Transport;
use wire::{Args, Item, Reader};

/// While degraded, the engine tries Redis again this long (in ms) after the failure; each try
/// that fails doubles the wait, up to [`RETRY_MAX_MS`]. One try that succeeds recovers.
pub const RETRY_MIN_MS: i64 = 100;

/// The longest wait between two tries of a degraded engine, in ms: Redis healthy again is used
/// again within this (plus jitter and one call).
pub const RETRY_MAX_MS: i64 = 2000;

/// Each wait is drawn within ± this percentage of its period, so that a fleet that lost Redis
/// together does not come back in lockstep.
pub const RETRY_JITTER_PERCENT: i64 = 20;

/// A per-engine seed for the retry jitter: std's randomly keyed hasher, no crate needed.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    h.finish() | 1 // xorshift never leaves 0
}

/// The lua script: one script for every operation.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) const SCRIPT: &str = include_str!("script.lua");

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
    /// Redis no longer has the state this engine registered (its epoch key is gone or another):
    /// it was flushed or restarted empty. The engine registers again.
    Reset,
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
    /// How many times Redis was found to have lost the shared state (FLUSHALL, an empty
    /// restart, a failover to an empty replica): the snapshot's `/store/resets`.
    pub resets: std::sync::atomic::AtomicU64,
    /// The epoch of the state this engine registered in (Redis's `{prefix}:epoch`).
    pub epoch: AtomicI64,
    mode: AtomicU8,
    /// Monotonic ms (since `started`) before which a degraded engine does not try Redis.
    retry_at: AtomicI64,
    /// The backoff period in force, in ms.
    backoff_ms: AtomicI64,
    /// xorshift state of the jitter, seeded per engine.
    jitter: AtomicU64,
    started: Instant,
}

impl Shared {
    /// The store `config` names, if it is Redis. Connects lazily: the first call opens the
    /// first connection. A malformed URL is `invalid_config` naming `store.url`.
    pub fn open(config: &Config) -> CoreResult<Option<Shared>> {
        let StoreConfig::Redis {
            url,
            prefix,
            timeout_ms,
            connect_timeout_ms,
            on_error,
            local_share,
            tls,
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
        let transport = Transport::open(url, *timeout_ms, *connect_timeout_ms, tls.as_ref())?;
        Ok(Some(Shared {
            transport,
            anchor: format!("{{{}}}", wire::key_part(prefix)),
            on_error: *on_error,
            local_share: *local_share,
            gc_ms,
            instance: AtomicI64::new(0),
            resets: std::sync::atomic::AtomicU64::new(0),
            epoch: AtomicI64::new(0),
            mode: AtomicU8::new(0),
            retry_at: AtomicI64::new(i64::MIN),
            backoff_ms: AtomicI64::new(RETRY_MIN_MS),
            jitter: AtomicU64::new(seed()),
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

    /// `period` ms ± [`RETRY_JITTER_PERCENT`]%, drawn with xorshift64 (races between threads
    /// only reuse a draw, which is harmless).
    fn jittered(&self, period: i64) -> i64 {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        let spread = period * RETRY_JITTER_PERCENT / 100;
        let offset = i64::try_from(x % (2 * spread as u64 + 1)).unwrap_or(0);
        period - spread + offset
    }

    /// Whether a degraded engine should try Redis again now (claims the attempt; should it fail,
    /// the next wait is twice as long, up to [`RETRY_MAX_MS`]).
    fn retry_due(&self) -> bool {
        let now = self.mono_ms();
        let at = self.retry_at.load(Ordering::Acquire);
        if now < at {
            return false;
        }
        let period = self
            .backoff_ms
            .load(Ordering::Acquire)
            .saturating_mul(2)
            .min(RETRY_MAX_MS);
        let next = now.saturating_add(self.jittered(period));
        if self
            .retry_at
            .compare_exchange(at, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.backoff_ms.store(period, Ordering::Release);
        true
    }

    /// The ms until a degraded engine's next try (0 when it is due).
    fn retry_in_ms(&self) -> i64 {
        self.retry_at
            .load(Ordering::Acquire)
            .saturating_sub(self.mono_ms())
            .max(0)
    }

    /// Records a failure; true when this call switched the engine out of shared accounting.
    /// The next try comes one backoff period after it: [`RETRY_MIN_MS`] after the first
    /// failure, the period the last try claimed after a failed try.
    fn degrade(&self) -> bool {
        if self.mode.load(Ordering::Acquire) == 0 {
            self.backoff_ms.store(RETRY_MIN_MS, Ordering::Release);
        }
        let period = self.backoff_ms.load(Ordering::Acquire);
        // The next try is set before the mode flips, so that no caller sees the engine
        // degraded with a try due at once.
        self.retry_at
            .store(self.mono_ms().saturating_add(self.jittered(period)), Ordering::Release);
        self.mode.swap(1, Ordering::AcqRel) == 0
    }

    /// Back to shared accounting (the next failure starts the backoff afresh).
    fn recover(&self) {
        self.backoff_ms.store(RETRY_MIN_MS, Ordering::Release);
        self.mode.store(0, Ordering::Release);
    }

    /// Whether shared accounting is in force (trying Redis again first when a degraded engine
    /// is due to): `false` while degraded in `local` or `open` mode; `store_unavailable` while
    /// degraded in `closed` mode.
    pub fn ready(&self, clock: &Clock, topo: &Topology) -> CoreResult<bool> {
        if self.mode() == Mode::Shared {
            return Ok(true);
        }
        if self.retry_due() {
            return match self.register(clock, topo, false, &Default::default()) {
                Ok(()) => {
                    self.recover();
                    Ok(true)
                }
                Err(fail) => self.failed(topo, fail).map(|()| false),
            };
        }
        match self.on_error {
            OnError::Closed => Err(Error::StoreUnavailable(format!(
                "Redis is not answering (the next try is in {} ms)",
                self.retry_in_ms()
            ))),
            _ => Ok(false),
        }
    }

    /// Handles a failed store call: a conflict is an error; an unavailable store switches to
    /// the `on_error` mode (`local` enforces `local_share` of every limit from now on) and is
    /// an error only in `closed` mode.
    pub fn failed(&self, topo: &Topology, fail: Fail) -> CoreResult<()> {
        match fail {
            Fail::Conflict(m) => Err(Error::StoreConflict(m)),
            Fail::Reset => self.failed(
                topo,
                Fail::Unavailable("Redis lost the shared state and could not be registered again".into()),
            ),
            Fail::Unavailable(m) => {
                if self.degrade() && self.on_error == OnError::Local {
                    // This process's own permits per concurrency bucket (each live permit of a
                    // provider holds a slot in each of its concurrency buckets).
                    let mut own: rustc_hash::FxHashMap<*const Bucket, i64> = Default::default();
                    for p in topo.providers.values() {
                        let live = p.state.lock().live_permits;
                        for q in p.quotas.iter().filter(|q| q.cfg.dimension == Dimension::Concurrency) {
                            *own.entry(Arc::as_ptr(&q.bucket)).or_default() += live;
                        }
                    }
                    for b in topo.buckets.values() {
                        let mine = own.get(&Arc::as_ptr(b)).copied().unwrap_or(0);
                        b.lock().degrade(self.local_share, mine);
                    }
                }
                match self.on_error {
                    OnError::Closed => Err(Error::StoreUnavailable(m)),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Runs the script, re-basing a synced clock on the server's ms in the reply; returns the
    /// reply's value after the server's ms, and the rest.
    fn call_at(&self, clock: &Clock, args: &Args) -> Result<(i64, Reader), Fail> {
        let sent = match clock {
            Clock::Synced(c) => c.base_ms(),
            _ => 0,
        };
        let (server_ms, third, rest) = self.call(args)?.head()?;
        if let Clock::Synced(c) = clock {
            c.observe(server_ms, sent);
        }
        Ok((third, rest))
    }

    /// Runs the script; `Ok` holds the reply after its `'ok'` marker.
    fn call(&self, args: &Args) -> Result<Reader, Fail> {
        let items = self.transport.eval(&self.anchor, &args.0)?;
        let mut it = items.into_iter();
        match it.next() {
            Some(Item::Str(s)) if s == "ok" => Ok(Reader::new(it)),
            Some(Item::Str(s)) if s == "reset" => Err(Fail::Reset),
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
