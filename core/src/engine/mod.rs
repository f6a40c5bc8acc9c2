//! The engine: select, acquire, complete, cancel, observe and the run-time configuration calls
//! (docs/design.md §4). This file holds the engine and its thin public methods; the work is in
//! one file per job:
//!
//! - `decide`: rank the providers of a capability, the one eligibility rule, reserve.
//! - `apply`: settlement, holds, circuit signals and header calibration: one `apply` used by
//!   `complete`, `cancel`, `observe` and `sync_headers`.
//! - `runtime`: upserts and removals; `snapshot`: the JSON view; `waiting`: the queue's engine
//!   side (enqueue, poll, next wake-up, blocking and async acquires).
//!
//! Concurrency: the configuration is an immutable `Topology` swapped whole on upserts
//! (`arc-swap`, so readers share no lock). Each bucket and each provider has its own lock; an
//! acquire locks the provider, then the provider's buckets in one global order (bucket ids),
//! so reservations over shared keys cannot deadlock and two acquires can never both take the
//! last unit. Nothing else nests locks. Counters live per capability, so threads working on
//! unrelated capabilities touch no common cache line on the hot path.
//!
//! No lock is held across a network call: with the Redis store, every script call
//! (`store::redis`) is made with no engine, provider, bucket or queue lock held; locks are
//! taken after it, to apply and adopt what it answered.

mod apply;
mod decide;
mod runtime;
mod snapshot;
mod waiting;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::call::{Decision, Observation, Outcome, Permit, PermitId, Polled, Request};
use crate::clock::{Clock, SyncedClock};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::health::ProviderState;
use crate::scheduler::queue::Queue;
use crate::store::Names;
use crate::store::permits::PermitTable;
use crate::store::redis::{Mode, Shared};
use crate::topology::{self, CapStats, CapabilityRt, ProviderRt, Topology};
use crate::vocab::{CircuitState, Dimension};
use decide::{Ask, Evals};

pub(crate) struct PermitRecord {
    provider: Arc<ProviderRt>,
    probe: bool,
    input_est: u64,
    output_est: u64,
    /// Units reserved per quota of `provider` (same order).
    charges: Arc<[i64]>,
    /// The clock ms it was granted at, and its sequence in the provider's in-flight ledger.
    granted_at: i64,
    flight: u64,
    /// The shared store's instance number the permit was granted under; 0 when it was
    /// granted in memory only (no shared store, or while degraded).
    instance: i64,
}

/// Counters of removed capabilities, kept for the snapshot's totals.
#[derive(Debug, Clone, Default)]
struct Retired {
    selects: u64,
    acquires: u64,
    grants: u64,
    refusals: u64,
    lane_grants: Vec<u64>,
}

/// The ratewise engine. `Send + Sync`; share it with an `Arc`.
///
/// ```
/// use ratewise::{Engine, ManualClock, Outcome, Request};
/// let clock = ManualClock::new(0);
/// let engine = Engine::with_clock(
///     ratewise::Config::from_json(r#"{
///         "providers": [{"name": "gpt-4o", "quotas": [{"dimension": "requests", "limit": 500}]},
///                       {"name": "claude"}],
///         "capabilities": [{"name": "chat", "providers": [{"provider": "gpt-4o", "priority": 10},
///                                                         {"provider": "claude", "priority": 8}]}]
///     }"#).unwrap(),
///     clock.clone().into(),
/// ).unwrap();
/// let permit = engine.acquire("chat", &Request::new().tokens(500, 200)).unwrap();
/// assert_eq!(permit.provider(), "gpt-4o");
/// engine.complete(permit.id, &Outcome::success(350, 480, 150)).unwrap();
/// ```
pub struct Engine {
    clock: Clock,
    topo: ArcSwap<Topology>,
    /// Serialises the run-time configuration calls (readers never take it).
    writer: Mutex<()>,
    permits: PermitTable<PermitRecord>,
    next_bucket_id: AtomicU64,
    permits_expired: AtomicU64,
    header_errors: AtomicU64,
    /// Waiting requests (docs/design.md §8).
    queue: Queue,
    /// Whether the timer thread runs (see `start_timer`).
    timer_started: AtomicBool,
    retired: Mutex<Retired>,
    /// The Redis store, when configured (docs/design.md §9); `None` for the memory store.
    shared: Option<Shared>,
    /// What Redis has not received yet (settlements of shared permits made during an outage,
    /// releases of acquires whose reply was lost), sent in order once it answers.
    unsent: Mutex<std::collections::VecDeque<crate::store::Unsent>>,
    /// Unsent entries dropped because more than `UNSENT_MAX` waited.
    unsent_dropped: AtomicU64,
    /// Bucket keys and provider names this engine dropped at run time: re-added, they start
    /// fresh in the shared store too (docs/design.md §12), while keys this engine never had
    /// join the state other processes keep.
    dropped: Mutex<Names>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on the system clock.
    pub fn new(config: Config) -> Result<Engine> {
        Engine::with_clock(config, Clock::system())
    }

    /// An engine from JSON configuration text, on the system clock.
    pub fn from_json(text: &str) -> Result<Engine> {
        Engine::new(Config::from_json(text)?)
    }

    /// An engine on the given clock.
    ///
    /// With the Redis store, construction registers every bucket in Redis (creating missing
    /// ones, and failing with `store_conflict` when one has another identity) and adopts the
    /// shared state; a system clock becomes the Redis server's clock. When Redis does not
    /// answer, `on_error: closed` fails with `store_unavailable`; `local` and `open` start
    /// degraded (see "Store" in `docs/configuration.md`).
    pub fn with_clock(config: Config, clock: Clock) -> Result<Engine> {
        let shared = Shared::open(&config)?;
        let clock = match (&shared, clock) {
            (Some(_), Clock::System(c)) => Clock::Synced(SyncedClock::new(c)),
            (_, c) => c,
        };
        let engine = Engine {
            clock,
            topo: ArcSwap::from_pointee(Topology {
                config: config.clone(),
                providers: HashMap::default(),
                capabilities: HashMap::default(),
                buckets: HashMap::default(),
            }),
            writer: Mutex::new(()),
            permits: PermitTable::new(),
            next_bucket_id: AtomicU64::new(0),
            permits_expired: AtomicU64::new(0),
            header_errors: AtomicU64::new(0),
            retired: Mutex::new(Retired {
                lane_grants: vec![0; config.lanes.len()],
                ..Retired::default()
            }),
            queue: Queue::new(config.lanes.len()),
            timer_started: AtomicBool::new(false),
            shared,
            unsent: Mutex::default(),
            unsent_dropped: AtomicU64::new(0),
            dropped: Mutex::default(),
        };
        let topo = topology::build(config, None, engine.clock.now_ms(), &engine.next_bucket_id);
        if let Some(sh) = &engine.shared
            && let Err(fail) = sh.register(&engine.clock, &topo, false, &Names::default())
        {
            sh.failed(&topo, fail)?;
        }
        engine.topo.store(Arc::new(topo));
        Ok(engine)
    }

    /// Whether state is shared through a store another process can reach (the Redis store):
    /// then `acquire`, `complete`, `cancel`, `observe`, `sync_headers`, `enqueue`, `poll` and
    /// `upsert_provider` may wait on the network (each call at most `timeout_ms`), and bindings
    /// release their runtime's lock around them.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The engine's clock reading, in Unix ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The configuration in force (including run-time changes).
    pub fn config(&self) -> Config {
        self.topo.load().config.clone()
    }

    // ----- decisions -------------------------------------------------------------------------

    /// Which provider a request would go to now. Changes no state.
    pub fn select(&self, capability: &str, request: &Request<'_>) -> Result<Decision> {
        self.ask(
            capability,
            request,
            |s| &s.selects,
            |topo, cap, ask| {
                let mut evals = Evals::new();
                let ranking = self.rank(topo, cap, ask, &mut evals);
                self.decide(cap, ranking, &evals, ask.now, None)
            },
        )
    }

    /// Selects and reserves atomically: the best provider whose reservation fits every quota is
    /// charged (requests 1, token estimates, cost, one concurrency slot) and a permit returned.
    /// Providers that a higher-ranked waiter could use are skipped as `queued` (docs/design.md §8).
    pub fn acquire(&self, capability: &str, request: &Request<'_>) -> Result<Permit> {
        self.ask(
            capability,
            request,
            |s| &s.acquires,
            |topo, cap, ask| self.try_acquire(topo, cap, ask, None),
        )
    }

    /// Runs a non-waiting ask of `capability` now, skipping what waiters could use; counts it
    /// (`counter`) and, when `f` fails, a refusal.
    fn ask<T>(
        &self,
        capability: &str,
        request: &Request<'_>,
        counter: impl Fn(&CapStats) -> &AtomicU64,
        f: impl FnOnce(&Topology, &CapabilityRt, Ask<'_>) -> Result<T>,
    ) -> Result<T> {
        let now = self.tick();
        let topo = self.topo.load();
        let cap = topo.capability(capability)?;
        let lane = topo.lane(request.lane)?;
        counter(&cap.stats).fetch_add(1, Ordering::Relaxed);
        let queued = self.queue.blocked_for(&topo, lane, now);
        let ask = Ask {
            lane,
            request,
            now,
            queued: queued.as_ref(),
        };
        let result = f(&topo, cap, ask);
        if result.is_err() {
            cap.stats.refusals.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Settles a permit (docs/design.md §4), then updates health and the circuit (§6), then
    /// applies the outcome's headers (§7); then polls the waiters (§8) and returns what that
    /// poll did.
    pub fn complete(&self, permit: PermitId, outcome: &Outcome) -> Result<Polled> {
        outcome.validate()?;
        let now = self.tick();
        let (deadline, record) = self.take_permit(permit, now)?;
        let topo = self.topo.load();
        let change = self.settlement(&record, outcome, now, &topo.config);
        self.settle(&topo, permit, deadline, record, change, now)?;
        Ok(self.poll_at(now))
    }

    /// The call was never sent: refunds every reservation; no health change. A ticket still
    /// waiting (docs/design.md §8) is withdrawn instead. Then polls the waiters and returns what
    /// that poll did.
    pub fn cancel(&self, permit: PermitId) -> Result<Polled> {
        let now = self.tick();
        if self.queue.withdraw(permit) {
            return Ok(self.poll_at(now));
        }
        let (deadline, record) = self.take_permit(permit, now)?;
        let topo = self.topo.load();
        let change = apply::refund(&record);
        self.settle(&topo, permit, deadline, record, change, now)?;
        Ok(self.poll_at(now))
    }

    /// Records a call made without a permit: usage is charged to every rate quota of the
    /// provider (concurrency is untouched); health, holds and the circuit as for `complete`.
    /// Unreported token counts are 0 and the request count defaults to 1 ([`Observation`]).
    pub fn observe(&self, provider: &str, observation: &Observation) -> Result<()> {
        let usage = observation.resolved()?;
        let now = self.tick();
        let topo = self.topo.load();
        let p = topo.provider(provider)?;
        let change = self.observation(p, &observation.outcome, usage, now, &topo.config);
        self.apply(&topo, p, &change, None, now)
    }

    /// Feeds a provider's response headers (docs/design.md §7): a `retry-after-ms` /
    /// `retry-after` holds the provider; OpenAI (`x-ratelimit-*`) and Anthropic
    /// (`anthropic-ratelimit-*`) headers calibrate the matching quota with the shortest window
    /// (`level = min(level, remaining·S)`) and adopt a lower reported limit. Malformed values
    /// are ignored and counted in the snapshot's `header_errors`; they never raise. Names are
    /// case-insensitive.
    ///
    /// ```
    /// # let engine = ratewise::Engine::from_json(r#"{"providers": [{"name": "gpt-4o",
    /// #   "quotas": [{"dimension": "tokens", "limit": 150000}]}]}"#).unwrap();
    /// engine.sync_headers("gpt-4o", &[("x-ratelimit-remaining-tokens", "1200"), ("x-ratelimit-reset-tokens", "6m0s")])?;
    /// assert_eq!(engine.remaining("gpt-4o", ratewise::Dimension::Tokens)?, Some(1200));
    /// # Ok::<(), ratewise::Error>(())
    /// ```
    pub fn sync_headers<K: AsRef<str>, V: AsRef<str>>(&self, provider: &str, headers: &[(K, V)]) -> Result<()> {
        let now = self.tick();
        let topo = self.topo.load();
        let p = topo.provider(provider)?;
        let change = self.header_report(p, headers, now, &topo.config);
        self.apply(&topo, p, &change, None, now)
    }

    /// Health of a provider now, in [0, 1].
    pub fn health(&self, provider: &str) -> Result<f64> {
        let now = self.tick();
        let topo = self.topo.load();
        let p = topo.provider(provider)?;
        Ok(p.state.lock().health(now, &topo.config.health))
    }

    /// Units left now: the minimum over the provider's quotas of that dimension; `None` when
    /// it has none.
    pub fn remaining(&self, provider: &str, dimension: Dimension) -> Result<Option<i64>> {
        let now = self.tick();
        let topo = self.topo.load();
        let p = topo.provider(provider)?;
        let mut out: Option<i64> = None;
        for q in p.quotas.iter().filter(|q| q.cfg.dimension == dimension) {
            let mut b = q.bucket.read();
            b.sync(now);
            let r = b.remaining();
            out = Some(out.map_or(r, |o| o.min(r)));
        }
        Ok(out)
    }

    /// The provider's circuit state now.
    pub fn circuit(&self, provider: &str) -> Result<CircuitState> {
        let now = self.tick();
        let topo = self.topo.load();
        Ok(topo.provider(provider)?.state.lock().circuit(now))
    }

    // ----- internals ---------------------------------------------------------------------------

    /// Reads the clock and expires permits past their deadline.
    fn tick(&self) -> i64 {
        let now = self.clock.now_ms();
        for record in self.permits.take_expired(now) {
            self.release_expired(record);
        }
        now
    }

    /// The shared store when shared accounting is in force (trying Redis again first when a
    /// degraded engine is due to); `None` for the memory store or while degraded (`local`,
    /// `open`); `store_unavailable` while degraded in `closed` mode.
    /// What Redis has not received yet is sent first (in order), so that a recovered store
    /// gets every settlement and release before anything new.
    fn sharing(&self, topo: &Topology) -> Result<Option<&Shared>> {
        match &self.shared {
            Some(sh) if sh.ready(&self.clock, topo)? => {
                self.send_unsent(sh, topo, self.clock.now_ms());
                Ok(Some(sh))
            }
            _ => Ok(None),
        }
    }

    /// Whether quotas are enforced: always, except while a shared store is degraded in `open`
    /// mode (admit, counting locally).
    #[inline]
    fn quotas_enforced(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| s.mode() != Mode::Open)
    }

    fn release_expired(&self, record: PermitRecord) {
        for (q, _) in record.provider.quotas.iter().zip(record.charges.iter()) {
            if q.cfg.dimension == Dimension::Concurrency {
                q.bucket.lock().refund(1);
            }
        }
        release(&mut record.provider.state.lock(), &record);
        self.permits_expired.fetch_add(1, Ordering::Relaxed);
    }

    fn take_permit(&self, permit: PermitId, now: i64) -> Result<(i64, PermitRecord)> {
        match self.permits.remove(permit.0, now) {
            Ok(found) => Ok(found),
            Err(Some(expired)) => {
                self.release_expired(expired);
                Err(Error::UnknownPermit(permit.0))
            }
            Err(None) => Err(Error::UnknownPermit(permit.0)),
        }
    }
}

/// A permit leaves its provider (settled, cancelled or expired): its probe slot, if it held it,
/// is free again, and it no longer counts as live.
fn release(st: &mut ProviderState, record: &PermitRecord) {
    if record.probe {
        st.probe_out = false;
    }
    st.live_permits -= 1;
    st.in_flight.remove(record.granted_at, record.flight);
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
};
