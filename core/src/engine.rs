//! The engine: select, acquire, complete, cancel, observe and the run-time configuration calls
//! (docs/design.md §4), over the memory store.
//!
//! Concurrency: the configuration is an immutable `Topology` swapped whole on upserts
//! (`arc-swap`, so readers share no lock). Each bucket and each provider has its own lock; an
//! acquire locks the provider, then the provider's buckets in one global order (bucket ids),
//! so reservations over shared keys cannot deadlock and two acquires can never both take the
//! last unit. Nothing else nests locks. Counters live per capability, so threads working on
//! unrelated capabilities touch no common cache line on the hot path.

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use serde_json::{Map, Value, json};
use smallvec::SmallVec;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::call::{Alternative, Decision, Observation, Outcome, Permit, PermitId, Polled, Request};
use crate::clock::{Clock, SyncedClock};
use crate::config::{self, Config, OnError, Price, ProviderConfig, Settle};
use crate::error::{Error, Result};
use crate::health::{ProviderState, Reporter};
use crate::quota::{BucketGuard, Fit};
use crate::scheduler::{Blocked, Scheduler};
use crate::scoring::{self, Breakdown};
use crate::shared::{self, Args, Fail, Mode, Reader, Shared};
use crate::signals::{self, HeaderReport};
use crate::store::{PermitTable, next_permit_id};
use crate::topology::{self, CapabilityRt, ProviderRt, Topology};
use crate::vocab::{CircuitState, Dimension, SkipReason, Skipped, Status};

pub(crate) struct PermitRecord {
    provider: Arc<ProviderRt>,
    probe: bool,
    input_est: u64,
    output_est: u64,
    /// Units reserved per quota of `provider` (same order).
    charges: Vec<i64>,
    /// The shared store's instance number the permit was granted under; 0 when it was
    /// granted in memory only (no shared store, or while degraded).
    instance: i64,
}

/// Per quota of a provider: the capacity a reported limit makes the one in force, and the
/// reported remaining units (docs/design.md §7); empty when the headers reported nothing.
type Calibration = SmallVec<[(Option<i64>, Option<i64>); 8]>;

/// Per-provider evaluations of one request (inline for capabilities of up to 8 providers).
type Evals = SmallVec<[Eval; 8]>;
/// Eligible providers as (entry index, score), best first.
type Ranked = SmallVec<[(usize, f64); 8]>;

/// One ask of the engine: a request in a lane (an index) at a time, with the providers that
/// higher-ranked waiters could use (skipped as `queued`).
#[derive(Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub lane: usize,
    pub request: &'a Request<'a>,
    pub now: i64,
    pub queued: Option<&'a Blocked>,
}

/// The result of checking one provider for one request.
struct Eval {
    skip: Option<SkipReason>,
    /// When every predictable blocker is gone; `None` when some blocker is unpredictable.
    ready: Option<i64>,
    quota: f64,
    health: f64,
    latency: Option<f64>,
    cost: Option<u64>,
    latency_term: f64,
    cost_term: f64,
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
    pub(crate) topo: ArcSwap<Topology>,
    /// Serialises the run-time configuration calls (readers never take it).
    writer: Mutex<()>,
    pub(crate) permits: PermitTable<PermitRecord>,
    next_bucket_id: AtomicU64,
    permits_expired: AtomicU64,
    header_errors: AtomicU64,
    /// Waiting requests (docs/design.md §8).
    pub(crate) scheduler: Scheduler,
    /// Whether the timer thread runs (see `start_timer`).
    pub(crate) timer_started: std::sync::atomic::AtomicBool,
    /// Counters of removed capabilities: selects, acquires, grants, refusals, grants per lane.
    retired: Mutex<(u64, u64, u64, u64, Vec<u64>)>,
    /// The Redis store, when configured (docs/design.md §9); `None` for the memory store.
    shared: Option<Shared>,
    /// Bucket keys and provider names this engine dropped at run time: re-added, they start
    /// fresh in the shared store too (docs/design.md §12), while keys this engine never had join the
    /// state other processes keep.
    dropped: Mutex<(FxHashSet<String>, FxHashSet<String>)>,
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
            retired: Mutex::new((0, 0, 0, 0, vec![0; config.lanes.len()])),
            scheduler: Scheduler::new(config.lanes.len()),
            timer_started: std::sync::atomic::AtomicBool::new(false),
            shared,
            dropped: Mutex::default(),
        };
        let topo = topology::build(config, None, engine.clock.now_ms(), &engine.next_bucket_id);
        if let Some(sh) = &engine.shared {
            if let Err(fail) = engine.register(sh, &topo, false, &Default::default()) {
                engine.store_failed(sh, &topo, fail)?;
            }
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
        let now = self.tick();
        let topo = self.topo.load();
        let cap = topo.capability(capability)?;
        let lane = topo.lane(request.lane)?;
        cap.stats.selects.fetch_add(1, Ordering::Relaxed);
        let queued = self.blocked_for(&topo, lane, now);
        let mut evals = Evals::new();
        let (eligible, skipped) = self.rank(
            &topo,
            cap,
            Ask {
                lane,
                request,
                now,
                queued: queued.as_ref(),
            },
            &mut evals,
        );
        match self.decide(cap, eligible, skipped, &evals, now, None) {
            Ok(d) => Ok(d),
            Err(e) => {
                cap.stats.refusals.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Selects and reserves atomically: the best provider whose reservation fits every quota is
    /// charged (requests 1, token estimates, cost, one concurrency slot) and a permit returned.
    /// Providers that a higher-ranked waiter could use are skipped as `queued` (docs/design.md §8).
    pub fn acquire(&self, capability: &str, request: &Request<'_>) -> Result<Permit> {
        let now = self.tick();
        let topo = self.topo.load();
        let cap = topo.capability(capability)?;
        let lane = topo.lane(request.lane)?;
        cap.stats.acquires.fetch_add(1, Ordering::Relaxed);
        let queued = self.blocked_for(&topo, lane, now);
        let result = self.try_acquire(
            &topo,
            cap,
            Ask {
                lane,
                request,
                now,
                queued: queued.as_ref(),
            },
            None,
        );
        if result.is_err() {
            cap.stats.refusals.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Reserves on the best provider not in `queued`, in lane `lane` (an index), as permit `id`
    /// (a new id when `None`). Counts the grant; the caller counts a refusal.
    pub(crate) fn try_acquire(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        id: Option<u64>,
    ) -> Result<Permit> {
        if let Some(sh) = self.store_ready(topo)? {
            return self.acquire_shared(sh, topo, cap, ask, id);
        }
        let Ask { lane, request, now, .. } = ask;
        let ppm = topo.config.lanes[lane].headroom_ppm;
        // A reservation can lose a race after scoring; rank again (bounded) before refusing.
        for _ in 0..4 {
            let mut evals = Evals::new();
            let (eligible, skipped) = self.rank(topo, cap, ask, &mut evals);
            if eligible.is_empty() {
                break;
            }
            for (pos, &(idx, _)) in eligible.iter().enumerate() {
                let Some(provider) = &cap.entries[idx].provider else {
                    continue;
                };
                let Some(record) = self.reserve(topo, provider, request, ppm, evals[idx].cost, now, true) else {
                    continue;
                };
                let decision = self.decide(cap, eligible.clone(), skipped, &evals, now, Some(pos))?;
                let id = id.unwrap_or_else(next_permit_id);
                return Ok(self.issue(topo, cap, ask, id, record, decision));
            }
        }
        let mut evals = Evals::new();
        let (eligible, skipped) = self.rank(topo, cap, ask, &mut evals);
        Err(refused(self.decide(cap, eligible, skipped, &evals, now, None)))
    }

    /// Stores a reserved permit with its deadline and counts the grant.
    fn issue(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        id: u64,
        record: PermitRecord,
        decision: Decision,
    ) -> Permit {
        self.permits
            .insert(id, ask.now.saturating_add(topo.config.permit_ttl_ms), record);
        cap.stats.grants.fetch_add(1, Ordering::Relaxed);
        cap.stats.lane_grants[ask.lane].fetch_add(1, Ordering::Relaxed);
        Permit {
            id: PermitId(id),
            decision,
        }
    }

    /// Settles a permit (docs/design.md §4), then updates health and the circuit (§6), then applies the
    /// outcome's headers (§7); then polls the waiters (§8) and returns what that poll did.
    pub fn complete(&self, permit: PermitId, outcome: &Outcome) -> Result<Polled> {
        outcome.validate()?;
        let now = self.tick();
        let (deadline, record) = self.take_permit(permit, now)?;
        let topo = self.topo.load();
        let provider = &record.provider;
        let deltas = settle_deltas(&record, outcome);
        let report = signals::parse(&outcome.headers, now);
        let retry_after = outcome.retry_after().or(report.retry_after_ms);
        let hold = hold_until(outcome.status, retry_after, now, &topo.config);
        let (calibration, header_errors) = self.calibration(provider, &report);
        let reporter = if record.probe {
            Reporter::Probe
        } else {
            Reporter::Permit
        };
        let signal = outcome.signal(reporter, retry_after);
        let change = Change {
            permit: None, // set by share_settlement
            deltas: &deltas,
            hold,
            signal: Some(signal),
            calibration: &calibration,
        };
        let (record, post) = self.share_settlement(&topo, permit, deadline, record, change, now)?;
        let provider = &record.provider;
        apply_deltas(provider, &deltas, now, topo.config.rate_tau_ms);
        let mut st = provider.state.lock();
        if let Some(until) = hold {
            st.hold(until);
        }
        st.record(signal, now, provider.cfg.cooldown_ms, &topo.config.health);
        release(&mut st, &record);
        drop(st);
        self.apply_calibration(provider, &calibration, header_errors, now);
        if let Some(post) = post {
            adopt(provider, &post);
        }
        Ok(self.poll_at(now))
    }

    /// The call was never sent: refunds every reservation; no health change. A ticket still
    /// waiting (docs/design.md §8) is withdrawn instead. Then polls the waiters and returns what that
    /// poll did.
    pub fn cancel(&self, permit: PermitId) -> Result<Polled> {
        let now = self.tick();
        if self.withdraw(permit) {
            return Ok(self.poll_at(now));
        }
        let (deadline, record) = self.take_permit(permit, now)?;
        let topo = self.topo.load();
        let deltas: Deltas = record.charges.iter().map(|&c| -c).collect();
        let change = Change {
            permit: None, // set by share_settlement
            deltas: &deltas,
            hold: None,
            signal: None,
            calibration: &Calibration::new(),
        };
        let (record, post) = self.share_settlement(&topo, permit, deadline, record, change, now)?;
        apply_deltas(&record.provider, &deltas, now, topo.config.rate_tau_ms);
        release(&mut record.provider.state.lock(), &record);
        if let Some(post) = post {
            adopt(&record.provider, &post);
        }
        Ok(self.poll_at(now))
    }

    /// Records a call made without a permit: usage is charged to every rate quota of the
    /// provider (concurrency is untouched); health, holds and the circuit as for `complete`.
    /// Unreported token counts are 0 and the request count defaults to 1 ([`Observation`]).
    pub fn observe(&self, provider: &str, observation: &Observation) -> Result<()> {
        let (input, output, requests) = observation.resolved()?;
        let outcome = &observation.outcome;
        let now = self.tick();
        let topo = self.topo.load();
        let p = topo.provider(provider)?;
        let deltas: Deltas = p
            .quotas
            .iter()
            .map(|q| {
                let count_cached = q.cfg.count_cached;
                to_i64(match q.cfg.dimension {
                    Dimension::Concurrency => 0,
                    Dimension::Requests => requests,
                    Dimension::Tokens => outcome.counted_input(input, count_cached).saturating_add(output),
                    Dimension::InputTokens => outcome.counted_input(input, count_cached),
                    Dimension::OutputTokens => output,
                    Dimension::Cost => p.cfg.price.map(|pr| pr.cost_micro_usd(input, output)).unwrap_or(0),
                })
            })
            .collect();
        let report = signals::parse(&outcome.headers, now);
        let retry_after = outcome.retry_after().or(report.retry_after_ms);
        let hold = hold_until(outcome.status, retry_after, now, &topo.config);
        let (calibration, header_errors) = self.calibration(p, &report);
        let signal = outcome.signal(Reporter::Observe, retry_after);
        let change = Change {
            permit: None,
            deltas: &deltas,
            hold,
            signal: Some(signal),
            calibration: &calibration,
        };
        let post = self.share_change(&topo, p, change, now)?;
        apply_deltas(p, &deltas, now, topo.config.rate_tau_ms);
        let mut st = p.state.lock();
        if let Some(until) = hold {
            st.hold(until);
        }
        st.record(signal, now, p.cfg.cooldown_ms, &topo.config.health);
        drop(st);
        self.apply_calibration(p, &calibration, header_errors, now);
        if let Some(post) = post {
            adopt(p, &post);
        }
        Ok(())
    }

    /// Feeds a provider's response headers (docs/design.md §7): a `retry-after-ms` / `retry-after`
    /// holds the provider; OpenAI (`x-ratelimit-*`) and Anthropic (`anthropic-ratelimit-*`)
    /// headers calibrate the matching quota with the shortest window (`level = min(level,
    /// remaining·S)`) and adopt a lower reported limit. Malformed values are ignored and counted
    /// in the snapshot's `header_errors`; they never raise. Names are case-insensitive.
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
        let report = signals::parse(headers, now);
        let hold = report.retry_after_ms.map(|ms| now.saturating_add(ms));
        let (calibration, header_errors) = self.calibration(p, &report);
        let deltas: Deltas = p.quotas.iter().map(|_| 0).collect();
        let change = Change {
            permit: None,
            deltas: &deltas,
            hold,
            signal: None,
            calibration: &calibration,
        };
        let post = self.share_change(&topo, p, change, now)?;
        if let Some(until) = hold {
            p.state.lock().hold(until);
        }
        self.apply_calibration(p, &calibration, header_errors, now);
        if let Some(post) = post {
            adopt(p, &post);
        }
        Ok(())
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

    /// A JSON view of the engine (stable paths: docs/design.md §9).
    pub fn snapshot(&self) -> Value {
        let now = self.tick();
        let topo = self.topo.load();
        let cfg = &topo.config;
        let mut providers = Map::new();
        for pc in &cfg.providers {
            let Some(p) = topo.providers.get(&pc.name) else {
                continue;
            };
            let st = p.state.lock().clone();
            let quotas: Vec<Value> = p
                .quotas
                .iter()
                .map(|q| {
                    let mut b = q.bucket.lock();
                    b.sync(now);
                    json!({
                        "key": q.cfg.key,
                        "dimension": q.cfg.dimension.as_str(),
                        "remaining": b.remaining(),
                        "capacity": b.configured,
                        "learned_limit": b.learned,
                        "drain_per_s": b.drain_per_s(now, cfg.rate_tau_ms),
                    })
                })
                .collect();
            providers.insert(
                pc.name.clone(),
                json!({
                    "health": st.health(now, &cfg.health),
                    "circuit": st.circuit(now).as_str(),
                    "held_ms": (st.hold_until.saturating_sub(now)).max(0),
                    "in_flight": st.live_permits,
                    "latency_ms": st.latency_ms,
                    "quotas": quotas,
                }),
            );
        }
        let retired = self.retired.lock().clone();
        let (mut selects, mut acquires, mut grants, mut refusals, mut lane_grants) = retired;
        for cap in topo.capabilities.values() {
            let s = &cap.stats;
            selects += s.selects.load(Ordering::Relaxed);
            acquires += s.acquires.load(Ordering::Relaxed);
            grants += s.grants.load(Ordering::Relaxed);
            refusals += s.refusals.load(Ordering::Relaxed);
            for (total, g) in lane_grants.iter_mut().zip(&s.lane_grants) {
                *total += g.load(Ordering::Relaxed);
            }
        }
        let mut lanes = Map::new();
        let waits = self.scheduler.lane_stats();
        for ((lane, granted), w) in cfg.lanes.iter().zip(lane_grants).zip(waits) {
            lanes.insert(
                lane.name.clone(),
                json!({"waiting": w.waiting, "granted": granted, "expired": w.expired,
                       "wait_p50_ms": w.wait_p50_ms, "wait_p99_ms": w.wait_p99_ms, "wait_max_ms": w.wait_max_ms}),
            );
        }
        json!({
            "providers": providers,
            "lanes": lanes,
            "counters": {
                "selects": selects,
                "acquires": acquires,
                "grants": grants,
                "refusals": refusals,
                "permits_expired": self.permits_expired.load(Ordering::Relaxed),
                "header_errors": self.header_errors.load(Ordering::Relaxed),
            },
            "store": match &self.shared {
                None => json!({"kind": "memory", "mode": "normal"}),
                Some(sh) => json!({"kind": "redis", "mode": sh.mode().as_str()}),
            },
        })
    }

    // ----- run-time configuration -------------------------------------------------------------

    /// Adds or replaces a provider (a JSON object as in `providers[]`). Usage state of every
    /// quota whose key, dimension and window are unchanged is kept; health, circuit and latency
    /// are kept.
    pub fn upsert_provider(&self, provider: &Value) -> Result<()> {
        let new = config::parse_provider(provider, "provider")?;
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        let mut cfg = topo.config.clone();
        let others: Vec<ProviderConfig> = cfg.providers.iter().filter(|p| p.name != new.name).cloned().collect();
        let mut check = others.clone();
        check.push(new.clone());
        let last = check.len() - 1;
        config::check_shared_keys(&check, |i| {
            if i == last {
                "provider".into()
            } else {
                format!("providers[{i}]")
            }
        })?;
        match cfg.providers.iter_mut().find(|p| p.name == new.name) {
            Some(slot) => *slot = new,
            None => cfg.providers.push(new),
        }
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        self.swap_topology(&topo, next, true)
    }

    /// Installs a new topology. With a shared store, an upsert (`register`) first registers it
    /// (one call), telling Redis which keys and providers this engine re-adds after dropping
    /// them; a removal only notes what it drops.
    fn swap_topology(&self, old: &Topology, next: Topology, register: bool) -> Result<()> {
        if self.shared.is_some() {
            let mut dropped = self.dropped.lock();
            let (mut keys, mut names) = dropped.clone();
            keys.extend(old.buckets.keys().filter(|k| !next.buckets.contains_key(*k)).cloned());
            names.extend(
                old.providers
                    .keys()
                    .filter(|n| !next.providers.contains_key(*n))
                    .cloned(),
            );
            let fresh: (FxHashSet<String>, FxHashSet<String>) = (
                keys.iter().filter(|k| next.buckets.contains_key(*k)).cloned().collect(),
                names
                    .iter()
                    .filter(|n| next.providers.contains_key(*n))
                    .cloned()
                    .collect(),
            );
            if register {
                if let Some(sh) = self.store_ready(&next)? {
                    if let Err(fail) = self.register(sh, &next, true, &fresh) {
                        self.store_failed(sh, &next, fail)?;
                    }
                }
            }
            keys.retain(|k| !fresh.0.contains(k));
            names.retain(|n| !fresh.1.contains(n));
            *dropped = (keys, names);
        }
        self.topo.store(Arc::new(next));
        Ok(())
    }

    /// Removes a provider: it stays listed in its capabilities and is skipped as `unregistered`.
    pub fn remove_provider(&self, name: &str) -> Result<()> {
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        if !topo.providers.contains_key(name) {
            return Err(Error::UnknownProvider(name.to_string()));
        }
        let mut cfg = topo.config.clone();
        cfg.providers.retain(|p| p.name != name);
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        self.swap_topology(&topo, next, false)
    }

    /// Adds or replaces a capability (a JSON object as in `capabilities[]`).
    pub fn upsert_capability(&self, capability: &Value) -> Result<()> {
        let new = config::parse_capability(capability, "capability")?;
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        config::check_capability_providers(&new, "capability", |n| topo.providers.contains_key(n))?;
        let mut cfg = topo.config.clone();
        match cfg.capabilities.iter_mut().find(|c| c.name == new.name) {
            Some(slot) => *slot = new,
            None => cfg.capabilities.push(new),
        }
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        self.topo.store(Arc::new(next));
        Ok(())
    }

    /// Removes a capability.
    pub fn remove_capability(&self, name: &str) -> Result<()> {
        let _w = self.writer.lock();
        let topo = self.topo.load_full();
        let cap = topo.capability(name)?;
        let mut cfg = topo.config.clone();
        cfg.capabilities.retain(|c| c.name != name);
        let next = topology::build(cfg, Some(&topo), self.clock.now_ms(), &self.next_bucket_id);
        self.topo.store(Arc::new(next));
        let mut retired = self.retired.lock();
        let s = &cap.stats;
        retired.0 += s.selects.load(Ordering::Relaxed);
        retired.1 += s.acquires.load(Ordering::Relaxed);
        retired.2 += s.grants.load(Ordering::Relaxed);
        retired.3 += s.refusals.load(Ordering::Relaxed);
        for (total, g) in retired.4.iter_mut().zip(&s.lane_grants) {
            *total += g.load(Ordering::Relaxed);
        }
        Ok(())
    }

    // ----- internals ---------------------------------------------------------------------------

    /// Reads the clock and expires permits past their deadline.
    pub(crate) fn tick(&self) -> i64 {
        let now = self.clock.now_ms();
        for record in self.permits.take_expired(now) {
            self.release_expired(record);
        }
        now
    }

    /// What headers report for each quota of the provider (docs/design.md §7): every matching quota
    /// with the shortest window of a reported dimension is calibrated.
    /// Also returns the count of malformed values, except those of a dimension the provider
    /// does not limit (ignored entirely).
    fn calibration(&self, p: &ProviderRt, report: &HeaderReport) -> (Calibration, u32) {
        if report.is_empty() {
            return (Calibration::new(), 0);
        }
        let mut out: Calibration = p.quotas.iter().map(|_| (None, None)).collect();
        let mut errors = report.retry_errors;
        for (dim, d) in signals::REPORTED.iter().zip(&report.dimensions) {
            let matching = || p.quotas.iter().enumerate().filter(|(_, q)| q.cfg.dimension == *dim);
            let Some(shortest) = matching().map(|(_, q)| q.cfg.window_ms).min() else {
                continue;
            };
            errors += d.errors;
            if d.limit.is_none() && d.remaining.is_none() {
                continue;
            }
            for (i, _) in matching().filter(|(_, q)| q.cfg.window_ms == shortest) {
                out[i] = (d.limit, d.remaining);
            }
        }
        (out, errors)
    }

    /// Applies a calibration (empty: headers reported nothing) to the provider's quotas and
    /// counts malformed header values.
    fn apply_calibration(&self, p: &ProviderRt, calibration: &Calibration, errors: u32, now: i64) {
        for (q, &(limit, remaining)) in p.quotas.iter().zip(calibration) {
            if limit.is_none() && remaining.is_none() {
                continue;
            }
            let mut b = q.bucket.lock();
            b.sync(now);
            if let Some(limit) = limit {
                b.learn_limit(limit);
            }
            if let Some(remaining) = remaining {
                b.calibrate(remaining);
            }
        }
        if errors > 0 {
            self.header_errors.fetch_add(u64::from(errors), Ordering::Relaxed);
        }
    }

    // ----- the shared store ---------------------------------------------------------------------

    /// The shared store when shared accounting is in force (trying Redis again first when a
    /// degraded engine is due to); `None` for the memory store or while degraded (`local`,
    /// `open`); `store_unavailable` while degraded in `closed` mode.
    fn store_ready(&self, topo: &Topology) -> Result<Option<&Shared>> {
        let Some(sh) = &self.shared else { return Ok(None) };
        if sh.mode() == Mode::Shared {
            return Ok(Some(sh));
        }
        if sh.retry_due() {
            match self.register(sh, topo, false, &Default::default()) {
                Ok(()) => {
                    sh.recover();
                    return Ok(Some(sh));
                }
                Err(fail) => {
                    self.store_failed(sh, topo, fail)?;
                    return Ok(None);
                }
            }
        }
        match sh.on_error {
            OnError::Closed => Err(Error::StoreUnavailable(format!(
                "Redis is not answering (tried again at most every {} ms)",
                shared::RETRY_MS
            ))),
            _ => Ok(None),
        }
    }

    /// Handles a failed store call: a conflict is an error; an unavailable store switches to
    /// the `on_error` mode (`local` enforces `local_share` of every limit from now on) and is
    /// an error only in `closed` mode.
    fn store_failed(&self, sh: &Shared, topo: &Topology, fail: Fail) -> Result<()> {
        match fail {
            Fail::Conflict(m) => Err(Error::StoreConflict(m)),
            Fail::Unavailable(m) => {
                if sh.degrade() && sh.on_error == OnError::Local {
                    for b in topo.buckets.values() {
                        b.lock().degrade(sh.local_share);
                    }
                }
                match sh.on_error {
                    OnError::Closed => Err(Error::StoreUnavailable(m)),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Runs the script, re-basing a synced clock on the server's ms in the reply; returns the
    /// reply's value after the server's ms, and the rest.
    fn store_call(&self, sh: &Shared, args: &Args) -> std::result::Result<(i64, Reader), Fail> {
        let sent = match &self.clock {
            Clock::Synced(c) => c.base_ms(),
            _ => 0,
        };
        let (server_ms, third, rest) = sh.call(args)?.head()?;
        if let Clock::Synced(c) = &self.clock {
            c.observe(server_ms, sent);
        }
        Ok((third, rest))
    }

    /// Registers every bucket and provider of `topo` in Redis (creating missing buckets;
    /// `upsert` adopts this configuration where Redis has another, else that is a conflict),
    /// and adopts the shared state.
    fn register(
        &self,
        sh: &Shared,
        topo: &Topology,
        upsert: bool,
        fresh: &(FxHashSet<String>, FxHashSet<String>),
    ) -> std::result::Result<(), Fail> {
        let now = match &self.clock {
            Clock::Synced(c) if !c.is_synced() => None,
            c => Some(c.now_ms()),
        };
        let mut args = Args::new("reg", now, sh.gc_ms);
        args.s(if upsert { "upsert" } else { "new" });
        let mut quotas = Vec::new();
        let mut seen = FxHashSet::default();
        for pc in &topo.config.providers {
            if let Some(p) = topo.providers.get(&pc.name) {
                for q in p.quotas.iter().filter(|q| seen.insert(q.cfg.key.clone())) {
                    quotas.push(q);
                }
            }
        }
        args.n(quotas.len() as i64);
        for q in &quotas {
            args.bucket(&q.cfg)
                .s(if fresh.0.contains(&q.cfg.key) { "fresh" } else { "keep" });
        }
        let providers: Vec<&Arc<ProviderRt>> = topo
            .config
            .providers
            .iter()
            .filter_map(|pc| topo.providers.get(&pc.name))
            .collect();
        args.n(providers.len() as i64);
        for p in &providers {
            args.s(&p.cfg.name)
                .s(if fresh.1.contains(&p.cfg.name) { "fresh" } else { "keep" });
        }
        let (instance, mut reply) = self.store_call(sh, &args)?;
        let buckets = quotas
            .iter()
            .map(|_| reply.bucket())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let states = providers
            .iter()
            .map(|_| reply.provider())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        sh.instance.store(instance, Ordering::Release);
        for (q, b) in quotas.iter().zip(&buckets) {
            q.bucket.lock().adopt(b);
        }
        for (p, st) in providers.iter().zip(&states) {
            p.state.lock().adopt(st);
        }
        Ok(())
    }

    /// Sends a settled permit's change to the shared store; on an error the permit is put back
    /// (a failed call changes nothing) and the error returned.
    fn share_settlement(
        &self,
        topo: &Topology,
        permit: PermitId,
        deadline: i64,
        record: PermitRecord,
        change: Change<'_>,
        now: i64,
    ) -> Result<(PermitRecord, Option<Post>)> {
        // A permit granted while degraded is not in Redis: its settlement stays local.
        let change = Change {
            permit: (record.instance != 0).then_some((record.instance, permit.0)),
            ..change
        };
        match self.share_change(topo, &record.provider, change, now) {
            Ok(post) => Ok((record, post)),
            Err(e) => {
                self.permits.insert(permit.0, deadline, record);
                Err(e)
            }
        }
    }

    /// Sends one change of a provider's shared state to Redis (when shared accounting is in
    /// force) and returns the state Redis answers with; `None` when the change stays local.
    fn share_change(&self, topo: &Topology, p: &ProviderRt, change: Change<'_>, now: i64) -> Result<Option<Post>> {
        let Some(sh) = self.store_ready(topo)? else {
            return Ok(None);
        };
        let permit = match change.permit {
            Some((instance, id)) => format!("{instance}:{id}"),
            None => String::new(),
        };
        let mut args = Args::new("app", Some(now), sh.gc_ms);
        args.s(&permit).s(&p.cfg.name);
        match change.hold {
            Some(until) => args.n(until),
            None => args.s(""),
        };
        let (sig, rep) = match change.signal {
            None => ("n", "o"),
            Some(s) => (
                if s.has_retry_after && matches!(s.status, Status::RateLimited | Status::Overloaded) {
                    "h"
                } else if s.status == Status::Success {
                    "s"
                } else if s.status.is_failure() {
                    "f"
                } else {
                    "c"
                },
                match s.reporter {
                    Reporter::Probe => "p",
                    Reporter::Permit => "m",
                    Reporter::Observe => "o",
                },
            ),
        };
        args.s(sig).s(rep).n(topo.config.health.cooldown_after);
        let cooldowns = shared::cooldowns(p.cfg.cooldown_ms, &topo.config.health);
        args.n(cooldowns.len() as i64);
        for d in cooldowns {
            args.n(d);
        }
        args.n(p.quotas.len() as i64);
        for (i, (q, &delta)) in p.quotas.iter().zip(change.deltas).enumerate() {
            let (limit, remaining) = change.calibration.get(i).copied().unwrap_or((None, None));
            let learned = limit.and_then(|l| q.bucket.read().learned_capacity(l)).unwrap_or(0);
            args.bucket(&q.cfg)
                .n(delta)
                .n(learned)
                .n(remaining.map_or(-1, |r| r.max(0)));
        }
        match self.store_call(sh, &args) {
            Ok((_known, mut reply)) => {
                let provider = match reply.provider() {
                    Ok(st) => st,
                    Err(f) => return self.store_failed(sh, topo, f).map(|()| None),
                };
                let mut buckets = SmallVec::new();
                for _ in &p.quotas {
                    match reply.bucket() {
                        Ok(b) => buckets.push(b),
                        Err(f) => return self.store_failed(sh, topo, f).map(|()| None),
                    }
                }
                Ok(Some(Post { provider, buckets }))
            }
            Err(fail) => self.store_failed(sh, topo, fail).map(|()| None),
        }
    }

    /// `acquire` with shared accounting: one script call reserves the first candidate that
    /// fits in Redis (see [`crate::shared`]); the mirror adopts what the script saw, the
    /// decision is ranked on it, and the mirror is charged as the script charged.
    fn acquire_shared(
        &self,
        sh: &Shared,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        id: Option<u64>,
    ) -> Result<Permit> {
        let Ask { lane, request, now, .. } = ask;
        let ppm = topo.config.lanes[lane].headroom_ppm;
        let mut evals = Evals::new();
        let (eligible, skipped) = self.rank(topo, cap, ask, &mut evals);
        // Candidates: the eligible ones, and those skipped only for what other processes may
        // have changed since the last reply. One skipped for a quota ranks by its score with
        // Q = 0 (as if the unit it needs had just been freed, say by another process's
        // completion); one held or with its circuit open or busy goes last.
        let w = &topo.config.scoring;
        let mut ranked: SmallVec<[(usize, f64); 8]> = eligible.clone();
        let mut last: SmallVec<[usize; 8]> = SmallVec::new();
        for (i, reason, _) in &skipped {
            match reason {
                SkipReason::Quota(_) | SkipReason::QuotaTooLarge(_) => {
                    let b = Breakdown {
                        quota: 0.0,
                        health: evals[*i].health,
                        priority: cap.entries[*i].priority,
                        latency: 1.0,
                        cost: 1.0,
                    };
                    ranked.push((*i, b.score(w)));
                }
                SkipReason::Held | SkipReason::CircuitOpen | SkipReason::HalfOpenBusy => last.push(*i),
                _ => {}
            }
        }
        // Stable: the eligible keep their order, and win ties.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut cands: SmallVec<[usize; 8]> = ranked.iter().map(|&(i, _)| i).collect();
        cands.extend(last);
        if cands.is_empty() {
            return Err(refused(self.decide(cap, eligible, skipped, &evals, now, None)));
        }
        let id = id.unwrap_or_else(next_permit_id);
        let instance = sh.instance.load(Ordering::Acquire);
        let mut args = Args::new("acq", Some(now), sh.gc_ms);
        args.s(&format!("{instance}:{id}"))
            .n(now.saturating_add(topo.config.permit_ttl_ms))
            .n(ppm)
            .n(cands.len() as i64);
        for &i in &cands {
            let Some(p) = &cap.entries[i].provider else { continue };
            args.s(&p.cfg.name).n(p.quotas.len() as i64);
            for q in &p.quotas {
                args.bucket(&q.cfg).n(units(q.cfg.dimension, request, evals[i].cost));
            }
        }
        let (chosen, mut reply) = match self.store_call(sh, &args) {
            Ok(r) => r,
            Err(fail) => {
                self.store_failed(sh, topo, fail)?;
                // Degraded (`local` or `open`): decide in memory.
                return self.try_acquire(topo, cap, ask, Some(id));
            }
        };
        let mut adopted = Ok(());
        for &i in &cands {
            let Some(p) = &cap.entries[i].provider else { continue };
            match reply.provider() {
                Ok(st) => p.state.lock().adopt(&st),
                Err(f) => adopted = Err(f),
            }
            for q in &p.quotas {
                match reply.bucket() {
                    Ok(b) => q.bucket.lock().adopt(&b),
                    Err(f) => adopted = Err(f),
                }
            }
        }
        if let Err(fail) = adopted {
            self.store_failed(sh, topo, fail)?;
        }
        let mut evals = Evals::new();
        let (mut eligible, mut skipped) = self.rank(topo, cap, ask, &mut evals);
        let Some(&idx) = usize::try_from(chosen).ok().and_then(|c| cands.get(c)) else {
            return Err(refused(self.decide(cap, eligible, skipped, &evals, now, None)));
        };
        let pos = match eligible.iter().position(|&(i, _)| i == idx) {
            Some(pos) => pos,
            None => {
                // The script reserved a provider this process's own signals (health) now rule
                // out: the reservation stands, so the decision names it.
                skipped.retain(|(i, _, _)| *i != idx);
                eligible.insert(0, (idx, 0.0));
                0
            }
        };
        let Some(provider) = &cap.entries[idx].provider else {
            return Err(refused(self.decide(cap, eligible, skipped, &evals, now, None)));
        };
        // An unchecked reservation always succeeds.
        let Some(mut record) = self.reserve(topo, provider, request, ppm, evals[idx].cost, now, false) else {
            return Err(refused(self.decide(cap, eligible, skipped, &evals, now, None)));
        };
        record.instance = instance;
        let decision = self.decide(cap, eligible, skipped, &evals, now, Some(pos))?;
        Ok(self.issue(topo, cap, ask, id, record, decision))
    }

    fn release_expired(&self, record: PermitRecord) {
        for (q, _) in record.provider.quotas.iter().zip(&record.charges) {
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

    /// Evaluates every provider of the capability: the eligible ones as `(entry index,
    /// score)` sorted best first (ties in capability order), the skipped ones in order.
    #[allow(clippy::type_complexity)]
    fn rank(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ask: Ask<'_>,
        evals: &mut Evals,
    ) -> (Ranked, Vec<(usize, SkipReason, Option<i64>)>) {
        let Ask {
            lane,
            request,
            now,
            queued,
        } = ask;
        let ppm = topo.config.lanes[lane].headroom_ppm;
        evals.clear();
        let mut skipped = Vec::new();
        for (i, e) in cap.entries.iter().enumerate() {
            let ev = match &e.provider {
                None => Eval::skip(SkipReason::Unregistered),
                Some(_) if request.exclude.iter().any(|x| **x == *e.name) => Eval::skip(SkipReason::Excluded),
                // A higher-ranked waiter could use it (docs/design.md §8); no ready time.
                Some(_) if queued.is_some_and(|q| q.contains(&e.name)) => Eval::skip(SkipReason::Queued),
                Some(p) => self.evaluate(topo, p, request, ppm, now),
            };
            if let Some(reason) = ev.skip {
                skipped.push((i, reason, ev.ready));
            }
            evals.push(ev);
        }
        let min_latency = evals
            .iter()
            .filter(|e| e.skip.is_none())
            .filter_map(|e| e.latency)
            .reduce(f64::min);
        let min_cost = evals.iter().filter(|e| e.skip.is_none()).filter_map(|e| e.cost).min();
        let w = &topo.config.scoring;
        let mut eligible = Ranked::new();
        for (i, ev) in evals.iter_mut().enumerate() {
            if ev.skip.is_some() {
                continue;
            }
            let b = Breakdown {
                quota: ev.quota,
                health: ev.health,
                priority: cap.entries[i].priority,
                latency: scoring::relative(min_latency, ev.latency),
                cost: match ev.cost {
                    Some(c) if c > 0 => scoring::relative(min_cost.map(|m| m as f64), Some(c as f64)),
                    _ => 1.0,
                },
            };
            ev.latency_term = b.latency;
            ev.cost_term = b.cost;
            eligible.push((i, b.score(w)));
        }
        eligible.sort_by(|a, b| b.1.total_cmp(&a.1));
        (eligible, skipped)
    }

    /// The refusal a request would get now (`None` when some provider is eligible).
    pub(crate) fn refusal(&self, topo: &Topology, cap: &CapabilityRt, ask: Ask<'_>) -> Option<Error> {
        let mut evals = Evals::new();
        let (eligible, skipped) = self.rank(topo, cap, ask, &mut evals);
        self.decide(cap, eligible, skipped, &evals, ask.now, None).err()
    }

    /// Builds the decision (with `chosen` the position in `eligible` actually reserved) or the
    /// refusal.
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        cap: &CapabilityRt,
        mut eligible: Ranked,
        skipped: Vec<(usize, SkipReason, Option<i64>)>,
        evals: &[Eval],
        now: i64,
        chosen: Option<usize>,
    ) -> Result<Decision> {
        let skipped_out: Vec<Skipped> = skipped
            .iter()
            .map(|(i, reason, _)| Skipped {
                provider: cap.entries[*i].name.clone(),
                reason: *reason,
            })
            .collect();
        if eligible.is_empty() {
            let ready = skipped.iter().filter_map(|(_, _, r)| *r).min();
            return Err(Error::NoAvailableProvider {
                retry_after_ms: ready.map(|t| t.saturating_sub(now).max(0)),
                skipped: skipped_out,
            });
        }
        let (idx, score) = eligible.remove(chosen.unwrap_or(0));
        let ev = &evals[idx];
        Ok(Decision {
            provider: cap.entries[idx].name.clone(),
            score,
            breakdown: Breakdown {
                quota: ev.quota,
                health: ev.health,
                priority: cap.entries[idx].priority,
                latency: ev.latency_term,
                cost: ev.cost_term,
            },
            alternatives: eligible
                .into_iter()
                .map(|(i, s)| Alternative {
                    provider: cap.entries[i].name.clone(),
                    score: s,
                })
                .collect(),
            skipped: skipped_out,
        })
    }

    /// Checks one provider (docs/design.md §4 eligibility order) and computes its Q and H.
    fn evaluate(&self, topo: &Topology, p: &ProviderRt, request: &Request<'_>, ppm: i64, now: i64) -> Eval {
        let hc = &topo.config.health;
        let cost = p
            .cfg
            .price
            .map(|pr| pr.cost_micro_usd(request.input_tokens, request.output_tokens));
        let mut ev = Eval {
            skip: None,
            ready: Some(now),
            quota: 1.0,
            health: 1.0,
            latency: None,
            cost,
            latency_term: 1.0,
            cost_term: 1.0,
        };
        {
            let st = p.state.lock();
            if st.hold_until > now {
                ev.block(SkipReason::Held, Some(st.hold_until));
            }
            match st.circuit(now) {
                CircuitState::Open => ev.block(SkipReason::CircuitOpen, st.circuit_until()),
                CircuitState::HalfOpen if st.probe_out => ev.block(SkipReason::HalfOpenBusy, None),
                _ => {}
            }
            ev.health = st.health(now, hc);
            if ev.health < hc.min_health {
                ev.block(SkipReason::Unhealthy, st.recovered_at(now, hc));
            }
            ev.latency = st.latency_ms;
        }
        let tau = topo.config.rate_tau_ms;
        let enforce = self.quotas_enforced();
        let mut r = 1.0f64;
        let mut t = f64::INFINITY;
        for q in &p.quotas {
            let n = units(q.cfg.dimension, request, cost);
            // A lock-free copy, refilled locally: deciding writes nothing.
            let mut b = q.bucket.read();
            b.sync(now);
            match b.fits(n, ppm, now) {
                Fit::Yes => {}
                _ if !enforce => {}
                Fit::Later(wait) => ev.block(SkipReason::Quota(q.cfg.dimension), wait.map(|w| now.saturating_add(w))),
                Fit::TooLarge => ev.block(SkipReason::QuotaTooLarge(q.cfg.dimension), None),
            }
            r = r.min(b.fraction_after(n));
            t = t.min(b.seconds_to_empty(n, now, tau));
        }
        ev.quota = (r - scoring::anticipation_penalty(t)).max(0.0);
        ev
    }

    /// Re-checks (when `check`) and charges one provider under its locks (provider, then
    /// buckets in global order). `None` when it no longer fits. Without `check` it charges
    /// what a shared store has already reserved.
    #[allow(clippy::too_many_arguments)]
    fn reserve(
        &self,
        topo: &Topology,
        p: &Arc<ProviderRt>,
        request: &Request<'_>,
        ppm: i64,
        cost: Option<u64>,
        now: i64,
        check: bool,
    ) -> Option<PermitRecord> {
        let hc = &topo.config.health;
        let mut st = p.state.lock();
        let circuit = st.circuit(now);
        if check
            && (st.hold_until > now
                || circuit == CircuitState::Open
                || (circuit == CircuitState::HalfOpen && st.probe_out)
                || st.health(now, hc) < hc.min_health)
        {
            return None;
        }
        let check_quotas = check && self.quotas_enforced();
        let mut guards: Vec<(usize, BucketGuard<'_>)> =
            p.lock_order.iter().map(|&i| (i, p.quotas[i].bucket.lock())).collect();
        let mut charges = vec![0i64; p.quotas.len()];
        for (i, b) in guards.iter_mut() {
            let n = units(p.quotas[*i].cfg.dimension, request, cost);
            b.sync(now);
            if check_quotas && b.fits(n, ppm, now) != Fit::Yes {
                return None;
            }
            charges[*i] = n;
        }
        for (i, b) in guards.iter_mut() {
            b.charge(charges[*i], now, topo.config.rate_tau_ms);
        }
        drop(guards);
        let probe = circuit == CircuitState::HalfOpen;
        if probe {
            st.probe_out = true;
        }
        st.live_permits += 1;
        Some(PermitRecord {
            provider: p.clone(),
            probe,
            input_est: request.input_tokens,
            output_est: request.output_tokens,
            charges,
            instance: 0,
        })
    }

    /// Whether quotas are enforced: always, except while a shared store is degraded in `open`
    /// mode (admit, counting locally).
    #[inline]
    fn quotas_enforced(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| s.mode() != Mode::Open)
    }
}

impl Eval {
    fn skip(reason: SkipReason) -> Eval {
        Eval {
            skip: Some(reason),
            ready: None,
            quota: 0.0,
            health: 0.0,
            latency: None,
            cost: None,
            latency_term: 1.0,
            cost_term: 1.0,
        }
    }

    /// Records a blocker: the first one is the skip reason; the ready time is the latest
    /// predictable one, or none once any blocker is unpredictable.
    fn block(&mut self, reason: SkipReason, ready: Option<i64>) {
        if self.skip.is_none() {
            self.skip = Some(reason);
        }
        self.ready = match (self.ready, ready) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
}

/// The hold an outcome asks for: its retry-after (the outcome's own, else its headers'), or
/// `overload_hold_ms` for `overloaded` without one. A success never holds.
fn hold_until(status: Status, retry_after: Option<i64>, now: i64, cfg: &Config) -> Option<i64> {
    if status == Status::Success {
        return None;
    }
    match retry_after {
        Some(ms) => Some(now.saturating_add(ms)),
        None if status == Status::Overloaded && cfg.health.overload_hold_ms > 0 => {
            Some(now.saturating_add(cfg.health.overload_hold_ms))
        }
        None => None,
    }
}

/// Per quota of a provider: units to charge (> 0) or refund (< 0).
type Deltas = SmallVec<[i64; 8]>;

/// A change of one provider's shared state: what `complete`, `cancel`, `observe` and
/// `sync_headers` do, in the order they do it.
struct Change<'a> {
    /// The permit being settled: (instance, id).
    permit: Option<(i64, u64)>,
    deltas: &'a [i64],
    hold: Option<i64>,
    signal: Option<crate::health::Signal>,
    calibration: &'a Calibration,
}

/// The shared state of one provider after a change, as Redis answered.
struct Post {
    provider: shared::ProviderReply,
    buckets: SmallVec<[shared::BucketReply; 8]>,
}

/// A permit leaves its provider (settled, cancelled or expired): its probe slot, if it held it,
/// is free again, and it no longer counts as live.
fn release(st: &mut ProviderState, record: &PermitRecord) {
    if record.probe {
        st.probe_out = false;
    }
    st.live_permits -= 1;
}

/// Adopts the state Redis answered with into the mirror.
fn adopt(p: &ProviderRt, post: &Post) {
    p.state.lock().adopt(&post.provider);
    for (q, b) in p.quotas.iter().zip(&post.buckets) {
        q.bucket.lock().adopt(b);
    }
}

/// Settlement of a permit (docs/design.md §4): per quota, the units to charge or refund. Requests stay
/// charged; the concurrency slot is released; a reported dimension is charged `actual −
/// reserved` (never below the reservation with `settle: reserved`); an unreported one keeps its
/// estimate, except that a no-work outcome refunds it.
fn settle_deltas(record: &PermitRecord, outcome: &Outcome) -> Deltas {
    let provider = &record.provider;
    provider
        .quotas
        .iter()
        .zip(&record.charges)
        .map(|(q, &reserved)| match q.cfg.dimension {
            Dimension::Requests => 0,
            Dimension::Concurrency => -1,
            dim => match actual_units(dim, outcome, record, provider.cfg.price.as_ref(), q.cfg.count_cached) {
                Some(actual) => match q.cfg.settle {
                    Settle::Reserved => actual.max(reserved) - reserved,
                    Settle::Actual => actual - reserved,
                },
                None if outcome.status.is_no_work() => -reserved,
                None => 0,
            },
        })
        .collect()
}

/// Applies per-quota deltas to the provider's buckets (charges update ρ).
fn apply_deltas(p: &ProviderRt, deltas: &[i64], now: i64, tau_ms: i64) {
    // A zero delta changes nothing (a refill is the same whenever it is computed).
    for (q, &delta) in p.quotas.iter().zip(deltas).filter(|(_, d)| **d != 0) {
        let mut b = q.bucket.lock();
        b.sync(now);
        if delta > 0 {
            b.charge(delta, now, tau_ms);
        } else {
            b.refund(-delta);
        }
    }
}

/// The error of a decision that should have been a refusal: everything looked eligible but
/// nothing could be reserved, so every provider is reported as skipped by what was found.
fn refused(decision: Result<Decision>) -> Error {
    match decision {
        Err(e) => e,
        Ok(d) => Error::NoAvailableProvider {
            retry_after_ms: None,
            skipped: d.skipped,
        },
    }
}

/// Units a request takes from a quota of `dim`.
fn units(dim: Dimension, r: &Request<'_>, cost: Option<u64>) -> i64 {
    match dim {
        Dimension::Requests | Dimension::Concurrency => 1,
        Dimension::Tokens => to_i64(r.input_tokens.saturating_add(r.output_tokens)),
        Dimension::InputTokens => to_i64(r.input_tokens),
        Dimension::OutputTokens => to_i64(r.output_tokens),
        Dimension::Cost => to_i64(cost.unwrap_or(0)),
    }
}

/// Reported usage in `dim`, or `None` when the outcome does not report it (docs/design.md §4, §12).
fn actual_units(
    dim: Dimension,
    o: &Outcome,
    rec: &PermitRecord,
    price: Option<&Price>,
    count_cached: bool,
) -> Option<i64> {
    let reported = o.input_tokens.is_some() || o.output_tokens.is_some();
    let input = o.input_tokens.map(|i| o.counted_input(i, count_cached));
    let n = match dim {
        Dimension::InputTokens => input?,
        Dimension::OutputTokens => o.output_tokens?,
        Dimension::Tokens if reported => input
            .unwrap_or(rec.input_est)
            .saturating_add(o.output_tokens.unwrap_or(rec.output_est)),
        Dimension::Cost if reported => price?.cost_micro_usd(
            o.input_tokens.unwrap_or(rec.input_est),
            o.output_tokens.unwrap_or(rec.output_est),
        ),
        _ => return None,
    };
    Some(to_i64(n))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
};
