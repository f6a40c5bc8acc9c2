//! Waiting (DESIGN §8): a deterministic, clock-driven scheduler. `enqueue` adds a waiter,
//! `poll` grants waiters in rank order as capacity frees and expires those past their deadline,
//! `next_wake` says when something can next change. Only `poll` grants; `enqueue`, `complete`
//! and `cancel` poll at once.
//!
//! Rank is (effective lane, arrival, sequence): a waiter moves one lane up per `aging_ms` of its
//! own lane waited (the top lane does not age) and uses its effective lane's headroom. A waiter
//! that cannot be granted blocks the providers it could use for everyone ranked below, including
//! non-waiting `select` and `acquire` calls, which skip them as `queued`.
//!
//! Tickets share the permit id space, so a granted ticket becomes the permit of the same id.
//! Waiting order is per engine instance.

use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::call::{PermitId, Polled, Request};
use crate::config::LaneConfig;
use crate::engine::{Ask, Engine};
use crate::error::{Error, Result};
use crate::store::next_permit_id;
use crate::topology::{CapabilityRt, Topology};

/// Providers that a higher-ranked waiter could use.
pub(crate) type Blocked = FxHashSet<Arc<str>>;

/// How many recent waits each lane keeps for its percentiles.
const WAIT_SAMPLES: usize = 4096;

struct Waiter {
    id: u64,
    capability: String,
    lane: usize,
    input_tokens: u64,
    output_tokens: u64,
    exclude: Vec<String>,
    arrival: i64,
    seq: u64,
    deadline: i64,
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
    seq: u64,
    lanes: Vec<LaneWaits>,
}

/// The engine's waiting requests.
pub(crate) struct Scheduler {
    state: Mutex<State>,
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

impl Scheduler {
    pub fn new(lanes: usize) -> Self {
        Scheduler {
            state: Mutex::new(State {
                waiters: Vec::new(),
                seq: 0,
                lanes: vec![LaneWaits::default(); lanes],
            }),
            waiting: AtomicUsize::new(0),
        }
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
                    waiting: st.waiters.iter().filter(|w| w.lane == i).count() as u64,
                    expired: l.expired,
                    wait_p50_ms: pct(0.50),
                    wait_p99_ms: pct(0.99),
                    wait_max_ms: s.last().copied(),
                }
            })
            .collect()
    }
}

/// The lane a waiter ranks in now: one place up per `aging_ms` of its own lane waited.
fn effective_lane(w: &Waiter, now: i64, lanes: &[LaneConfig]) -> usize {
    match lanes.get(w.lane).and_then(|l| l.aging_ms) {
        Some(aging) if w.lane > 0 => {
            let steps = (now - w.arrival).max(0) / aging;
            w.lane.saturating_sub(usize::try_from(steps).unwrap_or(usize::MAX))
        }
        _ => w.lane,
    }
}

/// The providers a waiter could use: its capability's registered providers minus its exclude.
fn could_use<'a>(cap: &'a CapabilityRt, w: &'a Waiter) -> impl Iterator<Item = &'a Arc<str>> + 'a {
    cap.entries
        .iter()
        .filter(move |e| e.provider.is_some() && !w.exclude.iter().any(|x| **x == *e.name))
        .map(|e| &e.name)
}

impl Engine {
    /// Adds a waiting request for at most `timeout_ms` (> 0), then polls. Returns the ticket
    /// (granted tickets become permits with the same id) and what the poll did.
    pub fn enqueue(&self, capability: &str, request: &Request<'_>, timeout_ms: i64) -> Result<(PermitId, Polled)> {
        let now = self.tick();
        let topo = self.topo.load();
        topo.capability(capability)?;
        let lane = topo.lane(request.lane)?;
        if timeout_ms <= 0 {
            return Err(Error::InvalidArgument(format!(
                "timeout_ms must be > 0, got {timeout_ms}"
            )));
        }
        let id = next_permit_id();
        {
            let mut st = self.scheduler.state.lock();
            st.seq += 1;
            let seq = st.seq;
            st.waiters.push(Waiter {
                id,
                capability: capability.to_string(),
                lane,
                input_tokens: request.input_tokens,
                output_tokens: request.output_tokens,
                exclude: request.exclude.iter().map(|s| s.to_string()).collect(),
                arrival: now,
                seq,
                deadline: now.saturating_add(timeout_ms),
            });
            self.scheduler.waiting.store(st.waiters.len(), Ordering::Release);
        }
        Ok((PermitId(id), self.poll_at(now)))
    }

    /// Grants waiting requests in rank order as capacity allows and expires those past their
    /// deadline.
    pub fn poll(&self) -> Polled {
        let now = self.tick();
        self.poll_at(now)
    }

    pub(crate) fn poll_at(&self, now: i64) -> Polled {
        let mut out = Polled::default();
        if self.scheduler.waiting.load(Ordering::Acquire) == 0 {
            return out;
        }
        let topo = self.topo.load();
        let lanes = &topo.config.lanes;
        let mut st = self.scheduler.state.lock();
        let mut waiters = std::mem::take(&mut st.waiters);
        waiters.sort_by_key(|w| (effective_lane(w, now, lanes), w.arrival, w.seq));
        let mut live = Vec::with_capacity(waiters.len());
        for w in waiters {
            match topo.capabilities.get(&w.capability) {
                None => {
                    st.lanes[w.lane].expired += 1;
                    out.expired
                        .push((PermitId(w.id), Error::UnknownCapability(w.capability.clone())));
                }
                Some(cap) if now >= w.deadline => {
                    st.lanes[w.lane].expired += 1;
                    let error = self.predicted_refusal(&topo, cap, &w, now);
                    out.expired.push((PermitId(w.id), error));
                }
                Some(_) => live.push(w),
            }
        }
        let mut blocked = Blocked::default();
        let mut waiting = Vec::with_capacity(live.len());
        for w in live {
            let Some(cap) = topo.capabilities.get(&w.capability) else {
                continue;
            };
            let exclude: Vec<&str> = w.exclude.iter().map(String::as_str).collect();
            let request = Request {
                lane: None,
                input_tokens: w.input_tokens,
                output_tokens: w.output_tokens,
                exclude: &exclude,
            };
            let lane = effective_lane(&w, now, lanes);
            match self.try_acquire(
                &topo,
                cap,
                Ask {
                    lane,
                    request: &request,
                    now,
                    queued: Some(&blocked),
                },
                Some(w.id),
            ) {
                Ok(permit) => {
                    st.lanes[w.lane].record(now - w.arrival);
                    out.granted.push(permit);
                }
                Err(_) => {
                    blocked.extend(could_use(cap, &w).cloned());
                    waiting.push(w);
                }
            }
        }
        st.waiters = waiting;
        self.scheduler.waiting.store(st.waiters.len(), Ordering::Release);
        out
    }

    /// The earliest time at which a poll could change something (a deadline, an aging step, a
    /// refill, hold, circuit or recovery a waiter needs, a permit expiring), or `None` when
    /// nothing waits.
    pub fn next_wake(&self) -> Option<i64> {
        if self.scheduler.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let now = self.tick();
        let topo = self.topo.load();
        let lanes = &topo.config.lanes;
        let st = self.scheduler.state.lock();
        let mut wake = self.permits.earliest_deadline();
        for w in &st.waiters {
            wake = wake.min(w.deadline);
            if let Some(aging) = lanes.get(w.lane).and_then(|l| l.aging_ms) {
                if effective_lane(w, now, lanes) > 0 {
                    let steps = (now - w.arrival).max(0) / aging + 1;
                    wake = wake.min(w.arrival.saturating_add(steps.saturating_mul(aging)));
                }
            }
            if let Some(cap) = topo.capabilities.get(&w.capability) {
                match self.predicted_refusal(&topo, cap, w, now) {
                    Error::NoAvailableProvider {
                        retry_after_ms: Some(ms),
                        ..
                    } => wake = wake.min(now.saturating_add(ms)),
                    Error::NoAvailableProvider {
                        retry_after_ms: None, ..
                    } => {}
                    _ => wake = wake.min(now),
                }
            }
        }
        (wake != i64::MAX).then_some(wake.max(now))
    }

    /// Withdraws a waiting ticket; false when no waiter has that id.
    pub(crate) fn withdraw(&self, ticket: PermitId) -> bool {
        if self.scheduler.waiting.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut st = self.scheduler.state.lock();
        let before = st.waiters.len();
        st.waiters.retain(|w| w.id != ticket.0);
        self.scheduler.waiting.store(st.waiters.len(), Ordering::Release);
        st.waiters.len() != before
    }

    /// Providers that a non-waiting request in `lane` must skip as `queued`: those a waiter
    /// ranked above it could use. A waiter past its deadline blocks nothing.
    pub(crate) fn blocked_for(&self, topo: &Topology, lane: usize, now: i64) -> Option<Blocked> {
        if self.scheduler.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let lanes = &topo.config.lanes;
        let st = self.scheduler.state.lock();
        let mut blocked = Blocked::default();
        for w in st
            .waiters
            .iter()
            .filter(|w| now < w.deadline && effective_lane(w, now, lanes) <= lane)
        {
            if let Some(cap) = topo.capabilities.get(&w.capability) {
                blocked.extend(could_use(cap, w).cloned());
            }
        }
        Some(blocked)
    }

    /// What a waiter would be told now if it were refused: `no_available_provider` with the
    /// predicted wait (0 when it would fit now).
    fn predicted_refusal(&self, topo: &Topology, cap: &CapabilityRt, w: &Waiter, now: i64) -> Error {
        let exclude: Vec<&str> = w.exclude.iter().map(String::as_str).collect();
        let request = Request {
            lane: None,
            input_tokens: w.input_tokens,
            output_tokens: w.output_tokens,
            exclude: &exclude,
        };
        match self.refusal(topo, cap, effective_lane(w, now, &topo.config.lanes), &request, now) {
            Some(e) => e,
            None => Error::NoAvailableProvider {
                retry_after_ms: Some(0),
                skipped: Vec::new(),
            },
        }
    }
}
