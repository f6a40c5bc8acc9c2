//! The waiting queue (docs/design.md §8), pure: it is given the topology, the time and two
//! functions (try a grant, predict a refusal) and never calls the engine itself.
//!
//! Rank is (effective lane, arrival, sequence): a waiter moves one lane up per `aging_ms` of its
//! own lane waited (the top lane does not age) and uses its effective lane's headroom. A waiter
//! that cannot be granted blocks the providers it could use for everyone ranked below, including
//! non-waiting `select` and `acquire` calls, which skip them as `queued`.
//!
//! A poll plans under the queue's lock (ranks, expires, copies the live tickets), tries the
//! grants with no lock held (with the Redis store each is a round trip), then commits under the
//! lock: a ticket withdrawn meanwhile gets its permit given back. One poll runs at a time; a
//! poll asked for while one runs makes that one go round again, so no freed capacity is missed.
//!
//! Tickets share the permit id space, so a granted ticket becomes the permit of the same id.

use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::timer::TimerSignal;
use crate::call::{Permit, PermitId, Request};
use crate::config::LaneConfig;
use crate::error::{Error, Result};
use crate::store::permits::next_permit_id;
use crate::topology::{CapabilityRt, Topology};

/// Providers that a higher-ranked waiter could use.
pub(crate) type Blocked = FxHashSet<Arc<str>>;

/// How many recent waits each lane keeps for its percentiles.
const WAIT_SAMPLES: usize = 4096;

/// Called with a waiter's outcome (its permit, or why it expired), outside every lock. Returns
/// whether the outcome was taken: a granted permit that nobody took (`false`: the receiver is
/// gone, the event loop closed) is cancelled by the engine, so no reservation outlives its waiter.
pub type OnDone = Box<dyn FnOnce(Result<Permit>) -> bool + Send>;

/// What a waiter asks for. Shared between the queue and a poll's plan, so that planning copies
/// a pointer per waiter.
pub(crate) struct Ticket {
    pub id: u64,
    /// Interned (one allocation per capability name), so that walking a long queue reads one
    /// hot string instead of one per waiter.
    pub capability: Arc<str>,
    pub lane: usize,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub exclude: Vec<String>,
    pub arrival: i64,
    pub seq: u64,
    pub deadline: i64,
}

impl Ticket {
    /// Runs `f` with the ticket's request. Its lane is left out: callers pass the effective lane.
    pub fn with_request<T>(&self, f: impl FnOnce(&Request<'_>) -> T) -> T {
        let exclude: Vec<&str> = self.exclude.iter().map(String::as_str).collect();
        f(&Request {
            lane: None,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            exclude: &exclude,
        })
    }

    /// The lane it ranks in now: one place up per `aging_ms` of its own lane waited.
    pub fn effective_lane(&self, now: i64, lanes: &[LaneConfig]) -> usize {
        match lanes.get(self.lane).and_then(|l| l.aging_ms) {
            Some(aging) if self.lane > 0 => {
                let steps = now.saturating_sub(self.arrival).max(0) / aging;
                self.lane.saturating_sub(usize::try_from(steps).unwrap_or(usize::MAX))
            }
            _ => self.lane,
        }
    }

    fn rank(&self, now: i64, lanes: &[LaneConfig]) -> (usize, i64, u64) {
        // Keys are unique (the sequence number breaks every tie), so an unstable sort is exact.
        (self.effective_lane(now, lanes), self.arrival, self.seq)
    }
}

struct Waiter {
    ticket: Arc<Ticket>,
    /// Who is told when the ticket resolves (blocking and async acquires); `None` for tickets
    /// that only polls report.
    on_done: Option<OnDone>,
}

#[derive(Default, Clone)]
struct LaneWaits {
    expired: u64,
    samples: Vec<i64>,
    next: usize,
}

impl LaneWaits {
    fn record(&mut self, wait_ms: i64) {
        if self.samples.len() < WAIT_SAMPLES {
            self.samples.push(wait_ms);
        } else {
            self.samples[self.next] = wait_ms;
            self.next = (self.next + 1) % WAIT_SAMPLES;
        }
    }
}

struct State {
    waiters: Vec<Waiter>,
    /// Capability names of the waiters, interned.
    names: Vec<Arc<str>>,
    seq: u64,
    lanes: Vec<LaneWaits>,
    /// A poll is granting (with the lock released).
    polling: bool,
    /// Another poll was asked for meanwhile: the running one goes round again.
    again: bool,
}

/// The engine's waiting requests.
pub(crate) struct Queue {
    state: Mutex<State>,
    /// Wakes the timer thread (a new waiter may move the next wake-up earlier).
    pub timer: Arc<TimerSignal>,
    /// Number of waiters, read without the lock so that engines nobody waits on pay nothing.
    waiting: AtomicUsize,
}

/// Lane statistics for the snapshot.
pub(crate) struct LaneStats {
    pub waiting: u64,
    pub expired: u64,
    pub wait_p50_ms: Option<i64>,
    pub wait_p99_ms: Option<i64>,
    pub wait_max_ms: Option<i64>,
}

/// What one poll did: the reports for tickets without a callback, the callbacks to call, and
/// the permits to give back (granted to tickets withdrawn while the poll was granting).
#[derive(Default)]
pub(crate) struct PollOutcome {
    pub granted: Vec<Permit>,
    pub expired: Vec<(PermitId, Error)>,
    pub deliveries: Vec<(OnDone, Result<Permit>)>,
    pub orphans: Vec<PermitId>,
}

/// Tries to grant a ticket in its effective lane, skipping the providers higher-ranked waiters
/// could use.
pub(crate) trait Grant {
    fn grant(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ticket: &Ticket,
        lane: usize,
        queued: &Blocked,
    ) -> Result<Permit>;
    /// The refusal the ticket would get now (`no_available_provider` with the predicted wait, 0
    /// when it would fit now); predicting takes no network call.
    fn predict(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        ticket: &Ticket,
        lane: usize,
        queued: Option<&Blocked>,
    ) -> Error;
}

/// Resets `polling` if a grant unwinds, so that a panic cannot stop every later poll.
struct PollingGuard<'a> {
    queue: &'a Queue,
    armed: bool,
}

impl Drop for PollingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.queue.state.lock().polling = false;
        }
    }
}

impl Queue {
    pub fn new(lanes: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                waiters: Vec::new(),
                names: Vec::new(),
                seq: 0,
                lanes: vec![LaneWaits::default(); lanes],
                polling: false,
                again: false,
            }),
            waiting: AtomicUsize::new(0),
            timer: Arc::new(TimerSignal::default()),
        }
    }

    /// Whether nobody waits (read without the lock).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
    }

    /// Adds a waiter for `request` in `lane` until `now + timeout_ms`; returns its ticket id.
    pub fn push(
        &self,
        capability: &str,
        lane: usize,
        request: &Request<'_>,
        now: i64,
        timeout_ms: i64,
        on_done: Option<OnDone>,
    ) -> u64 {
        let id = next_permit_id();
        let mut st = self.state.lock();
        st.seq += 1;
        let seq = st.seq;
        let name = match st.names.iter().find(|n| &***n == capability) {
            Some(n) => n.clone(),
            None => {
                // Names of capabilities no waiter uses any more are dropped first.
                st.names.retain(|n| Arc::strong_count(n) > 1);
                let n: Arc<str> = Arc::from(capability);
                st.names.push(n.clone());
                n
            }
        };
        st.waiters.push(Waiter {
            ticket: Arc::new(Ticket {
                id,
                capability: name,
                lane,
                input_tokens: request.input_tokens,
                output_tokens: request.output_tokens,
                exclude: request.exclude.iter().map(|s| s.to_string()).collect(),
                arrival: now,
                seq,
                deadline: now.saturating_add(timeout_ms),
            }),
            on_done,
        });
        self.waiting.store(st.waiters.len(), Ordering::Release);
        id
    }

    /// Withdraws a waiting ticket; false when no waiter has that id.
    pub fn withdraw(&self, ticket: PermitId) -> bool {
        if self.is_empty() {
            return false;
        }
        let mut st = self.state.lock();
        let Some(pos) = st.waiters.iter().position(|w| w.ticket.id == ticket.0) else {
            return false;
        };
        st.waiters.remove(pos);
        self.waiting.store(st.waiters.len(), Ordering::Release);
        true
    }

    /// Grants waiting tickets in rank order as capacity allows and expires those past their
    /// deadline. `grant` is called with no lock of the queue held.
    pub fn poll(&self, topo: &Topology, now: i64, engine: &impl Grant) -> PollOutcome {
        let mut out = PollOutcome::default();
        if self.is_empty() {
            return out;
        }
        let lanes = &topo.config.lanes;
        let mut st = self.state.lock();
        if st.polling {
            st.again = true;
            return out;
        }
        st.polling = true;
        let mut guard = PollingGuard {
            queue: self,
            armed: true,
        };
        loop {
            // 1. Plan, under the lock: rank, expire, copy the live tickets.
            let mut waiters = std::mem::take(&mut st.waiters);
            waiters.sort_unstable_by_key(|w| w.ticket.rank(now, lanes));
            let mut live = Vec::with_capacity(waiters.len());
            let mut plan = Vec::with_capacity(waiters.len());
            let mut lookup = CapabilityLookup::new(topo);
            for w in waiters {
                let t = &w.ticket;
                let error = match lookup.get(&t.capability) {
                    None => Error::UnknownCapability(t.capability.to_string()),
                    Some(cap) if now >= t.deadline => {
                        // An expired wait is a refused acquire (docs/design.md §9).
                        cap.stats.refusals.fetch_add(1, Ordering::Relaxed);
                        engine.predict(topo, cap, t, t.effective_lane(now, lanes), None)
                    }
                    Some(_) => {
                        plan.push(t.clone());
                        live.push(w);
                        continue;
                    }
                };
                st.lanes[t.lane].expired += 1;
                match w.on_done {
                    Some(f) => out.deliveries.push((f, Err(error))),
                    None => out.expired.push((PermitId(t.id), error)),
                }
            }
            st.waiters = live;
            self.waiting.store(st.waiters.len(), Ordering::Release);
            drop(st);

            // 2. Grant, with no lock held.
            let mut granted: FxHashMap<u64, Permit> = FxHashMap::default();
            let mut blocking = Blocking::default();
            let mut lookup = CapabilityLookup::new(topo);
            for t in &plan {
                let Some(cap) = lookup.get(&t.capability) else { continue };
                // A waiter whose providers are all blocked would only be skipped as `queued` by
                // each of them: it stays waiting without anything being scored.
                if blocking.blocks(cap, t) {
                    continue;
                }
                match engine.grant(topo, cap, t, t.effective_lane(now, lanes), &blocking.providers) {
                    Ok(permit) => {
                        granted.insert(t.id, permit);
                    }
                    Err(_) => blocking.add(cap, t),
                }
            }

            // 3. Commit, under the lock.
            st = self.state.lock();
            if !granted.is_empty() {
                let waiters = std::mem::take(&mut st.waiters);
                let mut live = Vec::with_capacity(waiters.len());
                for w in waiters {
                    match granted.remove(&w.ticket.id) {
                        Some(permit) => {
                            st.lanes[w.ticket.lane].record(now.saturating_sub(w.ticket.arrival));
                            match w.on_done {
                                Some(f) => out.deliveries.push((f, Ok(permit))),
                                None => out.granted.push(permit),
                            }
                        }
                        None => live.push(w),
                    }
                }
                st.waiters = live;
                self.waiting.store(st.waiters.len(), Ordering::Release);
                // Withdrawn while their grant was being made.
                out.orphans.extend(granted.into_values().map(|p| p.id));
            }
            if !st.again {
                st.polling = false;
                guard.armed = false;
                return out;
            }
            st.again = false;
        }
    }

    /// The earliest time at which a poll could change something (a deadline, an aging step, a
    /// refill, hold, circuit or recovery a waiter needs; `wake` already holds the earliest
    /// permit deadline), or `None` when nothing waits. With a shared store (`shared`), a waiter
    /// whose wait has no predictable end is polled again after `repoll_ms`.
    pub fn next_wake(
        &self,
        topo: &Topology,
        now: i64,
        mut wake: i64,
        repoll_ms: Option<i64>,
        engine: &impl Grant,
    ) -> Option<i64> {
        if self.is_empty() {
            return None;
        }
        let lanes = &topo.config.lanes;
        let st = self.state.lock();
        // In rank order: a waiter whose providers are all blocked by waiters ranked above it
        // cannot be granted before one of those changes (is granted, expires or is overtaken by
        // aging), and each of those is a wake-up of its own; its ready time is not needed.
        let mut ranked: Vec<&Ticket> = st.waiters.iter().map(|w| &*w.ticket).collect();
        ranked.sort_unstable_by_key(|t| t.rank(now, lanes));
        let mut blocking = Blocking::default();
        let mut lookup = CapabilityLookup::new(topo);
        for t in ranked {
            wake = wake.min(t.deadline);
            if let Some(aging) = lanes.get(t.lane).and_then(|l| l.aging_ms)
                && t.effective_lane(now, lanes) > 0
            {
                let steps = now.saturating_sub(t.arrival).max(0) / aging + 1;
                wake = wake.min(t.arrival.saturating_add(steps.saturating_mul(aging)));
            }
            let Some(cap) = lookup.get(&t.capability) else { continue };
            if blocking.blocks(cap, t) {
                continue;
            }
            // Predicted as the next poll will try it: providers that waiters ranked above
            // could use are `queued` (no ready time; their own wake-ups cover them).
            let refusal = engine.predict(topo, cap, t, t.effective_lane(now, lanes), Some(&blocking.providers));
            blocking.add(cap, t);
            match refusal {
                Error::NoAvailableProvider {
                    retry_after_ms: Some(ms),
                    ..
                } => wake = wake.min(now.saturating_add(ms)),
                // A slot another process frees (concurrency, a probe) is seen only by asking
                // the shared store: poll again soon rather than never.
                Error::NoAvailableProvider {
                    retry_after_ms: None, ..
                } => {
                    if let Some(ms) = repoll_ms {
                        wake = wake.min(now.saturating_add(ms));
                    }
                }
                _ => wake = wake.min(now),
            }
        }
        (wake != i64::MAX).then_some(wake.max(now))
    }

    /// Providers that a non-waiting request in `lane` must skip as `queued`: those a waiter
    /// ranked above it could use. A waiter past its deadline blocks nothing.
    pub fn blocked_for(&self, topo: &Topology, lane: usize, now: i64) -> Option<Blocked> {
        if self.is_empty() {
            return None;
        }
        let lanes = &topo.config.lanes;
        let st = self.state.lock();
        let mut blocked = Blocked::default();
        for t in st
            .waiters
            .iter()
            .map(|w| &*w.ticket)
            .filter(|t| now < t.deadline && t.effective_lane(now, lanes) <= lane)
        {
            if let Some(cap) = topo.capabilities.get(&*t.capability) {
                blocked.extend(could_use(cap, t).cloned());
            }
        }
        Some(blocked)
    }

    pub fn lane_stats(&self) -> Vec<LaneStats> {
        let st = self.state.lock();
        st.lanes
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mut s = l.samples.clone();
                s.sort_unstable();
                // Nearest-rank percentile.
                let pct =
                    |p: f64| (!s.is_empty()).then(|| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]);
                LaneStats {
                    waiting: st.waiters.iter().filter(|w| w.ticket.lane == i).count() as u64,
                    expired: l.expired,
                    wait_p50_ms: pct(0.50),
                    wait_p99_ms: pct(0.99),
                    wait_max_ms: s.last().copied(),
                }
            })
            .collect()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.timer.shut_down();
    }
}

/// Capabilities by name, remembering the last one found: queued waiters mostly share a
/// capability, so a poll compares names instead of hashing each one.
struct CapabilityLookup<'t> {
    topo: &'t Topology,
    /// The last name asked for (compared by address first: waiters' names are interned).
    last: Option<(*const u8, usize, &'t CapabilityRt)>,
}

impl<'t> CapabilityLookup<'t> {
    fn new(topo: &'t Topology) -> Self {
        CapabilityLookup { topo, last: None }
    }

    fn get(&mut self, name: &str) -> Option<&'t CapabilityRt> {
        if let Some((ptr, len, cap)) = self.last
            && std::ptr::eq(ptr, name.as_ptr())
            && len == name.len()
        {
            return Some(cap);
        }
        let cap = self.topo.capabilities.get(name)?;
        self.last = Some((name.as_ptr(), name.len(), cap));
        Some(cap)
    }
}

/// What waiters ranked above block, built in rank order: the providers, and the capabilities
/// all of whose providers are blocked (so that a queue of same-capability waiters behind an
/// exhausted provider costs a pointer comparison each, not a set lookup per provider).
#[derive(Default)]
struct Blocking<'t> {
    providers: Blocked,
    whole: Vec<&'t CapabilityRt>,
}

impl<'t> Blocking<'t> {
    fn whole(&self, cap: &CapabilityRt) -> bool {
        self.whole.iter().any(|c| std::ptr::eq(*c, cap))
    }

    /// Whether every provider `t` could use is blocked.
    fn blocks(&self, cap: &CapabilityRt, t: &Ticket) -> bool {
        (t.exclude.is_empty() && self.whole(cap)) || could_use(cap, t).all(|name| self.providers.contains(name))
    }

    /// `t` stays waiting: it blocks what it could use for everyone ranked below.
    fn add(&mut self, cap: &'t CapabilityRt, t: &Ticket) {
        if t.exclude.is_empty() {
            if self.whole(cap) {
                return;
            }
            self.whole.push(cap);
        }
        self.providers.extend(could_use(cap, t).cloned());
    }
}

/// The providers a ticket could use: its capability's registered providers minus its exclude.
fn could_use<'a>(cap: &'a CapabilityRt, t: &'a Ticket) -> impl Iterator<Item = &'a Arc<str>> + 'a {
    cap.entries
        .iter()
        .filter(move |e| e.provider.is_some() && !t.exclude.iter().any(|x| **x == *e.name))
        .map(|e| &e.name)
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
