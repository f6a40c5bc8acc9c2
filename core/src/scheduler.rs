//! Waiting (docs/design.md §8): a deterministic, clock-driven scheduler. `enqueue` adds a waiter,
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

use crate::call::{Permit, PermitId, Polled, Request};
use crate::config::LaneConfig;
use crate::engine::{Ask, Engine};
use crate::error::{Error, Result};
use crate::store::next_permit_id;
use crate::topology::{CapabilityRt, Topology};

/// With a shared store, how soon a waiter with no predictable ready time is polled again (ms).
pub const SHARED_REPOLL_MS: i64 = 50;

/// Providers that a higher-ranked waiter could use.
pub(crate) type Blocked = FxHashSet<Arc<str>>;

/// How many recent waits each lane keeps for its percentiles.
const WAIT_SAMPLES: usize = 4096;

/// Called with a waiter's outcome (its permit, or why it expired), outside every lock. Returns
/// whether the outcome was taken: a granted permit that nobody took (`false`: the receiver is
/// gone, the event loop closed) is cancelled by the engine, so no reservation outlives its waiter.
pub type OnDone = Box<dyn FnOnce(Result<Permit>) -> bool + Send>;

struct Waiter {
    id: u64,
    /// Who is told when the ticket resolves (blocking and async acquires); `None` for tickets
    /// that only polls report.
    on_done: Option<OnDone>,
    /// Interned (one allocation per capability name), so that walking a long queue reads one
    /// hot string instead of one per waiter.
    capability: Arc<str>,
    lane: usize,
    input_tokens: u64,
    output_tokens: u64,
    exclude: Vec<String>,
    arrival: i64,
    seq: u64,
    deadline: i64,
}

impl Waiter {
    /// Runs `f` with the waiter's request. Its lane is left out: callers pass the effective lane.
    fn with_request<T>(&self, f: impl FnOnce(&Request<'_>) -> T) -> T {
        let exclude: Vec<&str> = self.exclude.iter().map(String::as_str).collect();
        f(&Request {
            lane: None,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            exclude: &exclude,
        })
    }
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
    /// Boxed: a poll reorders and partitions the queue, moving a pointer per waiter.
    #[allow(clippy::vec_box)] // measured: moving 150-byte waiters dominated a 200-waiter poll
    waiters: Vec<Box<Waiter>>,
    /// Capability names of the waiters, interned.
    names: Vec<Arc<str>>,
    seq: u64,
    lanes: Vec<LaneWaits>,
}

/// The engine's waiting requests.
pub(crate) struct Scheduler {
    state: Mutex<State>,
    /// Wakes the timer thread (a new waiter may move the next wake-up earlier).
    timer: Arc<TimerSignal>,
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
                names: Vec::new(),
                seq: 0,
                lanes: vec![LaneWaits::default(); lanes],
            }),
            waiting: AtomicUsize::new(0),
            timer: Arc::new(TimerSignal::default()),
        }
    }

    fn wake_timer(&self) {
        self.timer.notify();
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

    /// Whether every provider `w` could use is blocked.
    fn blocks(&self, cap: &CapabilityRt, w: &Waiter) -> bool {
        (w.exclude.is_empty() && self.whole(cap)) || could_use(cap, w).all(|name| self.providers.contains(name))
    }

    /// `w` stays waiting: it blocks what it could use for everyone ranked below.
    fn add(&mut self, cap: &'t CapabilityRt, w: &Waiter) {
        if w.exclude.is_empty() {
            if self.whole(cap) {
                return;
            }
            self.whole.push(cap);
        }
        self.providers.extend(could_use(cap, w).cloned());
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
        self.enqueue_inner(capability, request, timeout_ms, None)
    }

    /// As [`Engine::enqueue`], and `on_done` is called once with the ticket's outcome: its
    /// permit, or the error it expired with. It may be called before this returns (when the
    /// first poll grants the ticket), and is called outside the engine's locks. Such a ticket
    /// is not listed in poll reports. The engine's timer thread (started here, once) polls at
    /// [`Engine::next_wake`], so the ticket is granted when a refill, a hold or a circuit ends
    /// without anyone polling. This is what the async acquires of every language are built on.
    /// With a shared store ([`Engine::is_shared`]) this call does not poll (no network here):
    /// the timer thread polls at once, and `on_done` is always called from it.
    pub fn enqueue_with(
        self: &Arc<Self>,
        capability: &str,
        request: &Request<'_>,
        timeout_ms: i64,
        on_done: OnDone,
    ) -> Result<PermitId> {
        self.start_timer();
        let (ticket, _) = self.enqueue_inner(capability, request, timeout_ms, Some(on_done))?;
        Ok(ticket)
    }

    fn enqueue_inner(
        &self,
        capability: &str,
        request: &Request<'_>,
        timeout_ms: i64,
        on_done: Option<OnDone>,
    ) -> Result<(PermitId, Polled)> {
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
        let deferred = on_done.is_some() && self.is_shared();
        {
            let mut st = self.scheduler.state.lock();
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
            st.waiters.push(Box::new(Waiter {
                id,
                on_done,
                capability: name,
                lane,
                input_tokens: request.input_tokens,
                output_tokens: request.output_tokens,
                exclude: request.exclude.iter().map(|s| s.to_string()).collect(),
                arrival: now,
                seq,
                deadline: now.saturating_add(timeout_ms),
            }));
            self.scheduler.waiting.store(st.waiters.len(), Ordering::Release);
        }
        // A waiter with a callback on a shared store is first polled by the timer thread, so
        // that no caller's thread (an event loop) waits on the network here.
        let polled = if deferred { Polled::default() } else { self.poll_at(now) };
        self.scheduler.wake_timer();
        Ok((PermitId(id), polled))
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
        let mut deliveries: Vec<(OnDone, Result<Permit>)> = Vec::new();
        let topo = self.topo.load();
        let lanes = &topo.config.lanes;
        let mut st = self.scheduler.state.lock();
        let mut waiters = std::mem::take(&mut st.waiters);
        // Keys are unique (the sequence number breaks every tie), so an unstable sort is exact.
        waiters.sort_unstable_by_key(|w| (effective_lane(w, now, lanes), w.arrival, w.seq));
        let mut live = Vec::with_capacity(waiters.len());
        let mut lookup = CapabilityLookup::new(&topo);
        for w in waiters {
            match lookup.get(&w.capability) {
                None => {
                    st.lanes[w.lane].expired += 1;
                    let error = Error::UnknownCapability(w.capability.to_string());
                    match w.on_done {
                        Some(f) => deliveries.push((f, Err(error))),
                        None => out.expired.push((PermitId(w.id), error)),
                    }
                }
                Some(cap) if now >= w.deadline => {
                    st.lanes[w.lane].expired += 1;
                    let error = self.predicted_refusal(&topo, cap, &w, now, None);
                    match w.on_done {
                        Some(f) => deliveries.push((f, Err(error))),
                        None => out.expired.push((PermitId(w.id), error)),
                    }
                }
                Some(cap) => live.push((w, cap)),
            }
        }
        let mut blocking = Blocking::default();
        let mut waiting = Vec::with_capacity(live.len());
        for (w, cap) in live {
            // A waiter whose providers are all blocked would only be skipped as `queued` by
            // each of them: it stays waiting without anything being scored.
            if blocking.blocks(cap, &w) {
                waiting.push(w);
                continue;
            }
            let lane = effective_lane(&w, now, lanes);
            let attempt = w.with_request(|request| {
                self.try_acquire(
                    &topo,
                    cap,
                    Ask {
                        lane,
                        request,
                        now,
                        queued: Some(&blocking.providers),
                    },
                    Some(w.id),
                )
            });
            match attempt {
                Ok(permit) => {
                    st.lanes[w.lane].record(now - w.arrival);
                    match w.on_done {
                        Some(f) => deliveries.push((f, Ok(permit))),
                        None => out.granted.push(permit),
                    }
                }
                Err(_) => {
                    blocking.add(cap, &w);
                    waiting.push(w);
                }
            }
        }
        st.waiters = waiting;
        self.scheduler.waiting.store(st.waiters.len(), Ordering::Release);
        drop(st);
        for (f, result) in deliveries {
            let granted = result.as_ref().ok().map(|p| p.id);
            if !f(result)
                && let Some(id) = granted
            {
                let _ = self.cancel(id);
            }
        }
        out
    }

    /// The earliest time at which a poll could change something (a deadline, an aging step, a
    /// refill, hold, circuit or recovery a waiter needs, a permit expiring), or `None` when
    /// nothing waits.
    ///
    /// With a shared store, a waiter whose wait has no predictable end (a concurrency slot, a
    /// busy probe) is polled again after [`SHARED_REPOLL_MS`]: another process may free it.
    pub fn next_wake(&self) -> Option<i64> {
        if self.scheduler.waiting.load(Ordering::Acquire) == 0 {
            return None;
        }
        let now = self.tick();
        let topo = self.topo.load();
        let lanes = &topo.config.lanes;
        let st = self.scheduler.state.lock();
        let mut wake = self.permits.earliest_deadline();
        // In rank order: a waiter whose providers are all blocked by waiters ranked above it
        // cannot be granted before one of those changes (is granted, expires or is overtaken by
        // aging), and each of those is a wake-up of its own; its ready time is not needed.
        let mut ranked: Vec<&Waiter> = st.waiters.iter().map(|w| &**w).collect();
        ranked.sort_unstable_by_key(|w| (effective_lane(w, now, lanes), w.arrival, w.seq));
        let mut blocking = Blocking::default();
        let mut lookup = CapabilityLookup::new(&topo);
        for w in ranked {
            wake = wake.min(w.deadline);
            if let Some(aging) = lanes.get(w.lane).and_then(|l| l.aging_ms) {
                if effective_lane(w, now, lanes) > 0 {
                    let steps = (now - w.arrival).max(0) / aging + 1;
                    wake = wake.min(w.arrival.saturating_add(steps.saturating_mul(aging)));
                }
            }
            if let Some(cap) = lookup.get(&w.capability) {
                if blocking.blocks(cap, w) {
                    continue;
                }
                // Predicted as the next poll will try it: providers that waiters ranked above
                // could use are `queued` (no ready time; their own wake-ups cover them).
                let refusal = self.predicted_refusal(&topo, cap, w, now, Some(&blocking.providers));
                blocking.add(cap, w);
                match refusal {
                    Error::NoAvailableProvider {
                        retry_after_ms: Some(ms),
                        ..
                    } => wake = wake.min(now.saturating_add(ms)),
                    // With a shared store, a slot another process frees (concurrency, a
                    // probe) is seen only by asking Redis: poll again soon rather than never.
                    Error::NoAvailableProvider {
                        retry_after_ms: None, ..
                    } if self.is_shared() => wake = wake.min(now.saturating_add(SHARED_REPOLL_MS)),
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
        let Some(pos) = st.waiters.iter().position(|w| w.id == ticket.0) else {
            return false;
        };
        st.waiters.remove(pos);
        self.scheduler.waiting.store(st.waiters.len(), Ordering::Release);
        true
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
            if let Some(cap) = topo.capabilities.get(&*w.capability) {
                blocked.extend(could_use(cap, w).cloned());
            }
        }
        Some(blocked)
    }

    /// What a waiter would be told now if it were refused: `no_available_provider` with the
    /// predicted wait (0 when it would fit now).
    fn predicted_refusal(
        &self,
        topo: &Topology,
        cap: &CapabilityRt,
        w: &Waiter,
        now: i64,
        queued: Option<&Blocked>,
    ) -> Error {
        let lane = effective_lane(w, now, &topo.config.lanes);
        match w.with_request(|request| {
            self.refusal(
                topo,
                cap,
                Ask {
                    lane,
                    request,
                    now,
                    queued,
                },
            )
        }) {
            Some(e) => e,
            None => Error::NoAvailableProvider {
                retry_after_ms: Some(0),
                skipped: Vec::new(),
            },
        }
    }
}

/// The timer thread's doorbell: a generation counter, a shutdown flag and a condition variable.
#[derive(Default)]
pub(crate) struct TimerSignal {
    state: Mutex<(u64, bool)>,
    cv: parking_lot::Condvar,
}

impl TimerSignal {
    fn notify(&self) {
        let mut s = self.state.lock();
        s.0 = s.0.wrapping_add(1);
        self.cv.notify_all();
    }

    fn shut_down(&self) {
        let mut s = self.state.lock();
        s.1 = true;
        self.cv.notify_all();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.timer.shut_down();
    }
}

impl Engine {
    /// Waits for a permit at most `timeout_ms` (> 0), blocking the calling thread: the request joins the
    /// waiters (docs/design.md §8) and is granted in rank order as capacity frees. The thread sleeps on
    /// a condition variable, woken by the poll that grants it (a completion, a cancel, another
    /// waiter) or at [`Engine::next_wake`], when it polls; it never sleep-polls. Fails with
    /// `no_available_provider` (and the predicted wait) when the timeout passes.
    ///
    /// With a manual clock, time passes only when the clock is advanced and something polls.
    pub fn acquire_wait(&self, capability: &str, request: &Request<'_>, timeout_ms: i64) -> Result<Permit> {
        let slot: Arc<(Mutex<Option<Result<Permit>>>, parking_lot::Condvar)> = Arc::default();
        let tx = slot.clone();
        // No timer: the waiting thread polls at next_wake itself.
        self.enqueue_inner(
            capability,
            request,
            timeout_ms,
            Some(Box::new(move |result| {
                *tx.0.lock() = Some(result);
                tx.1.notify_all();
                true // the waiting thread takes it: it returns only with a result
            })),
        )?;
        let mut guard = slot.0.lock();
        loop {
            if let Some(result) = guard.take() {
                return result;
            }
            let wait = parking_lot::MutexGuard::unlocked(&mut guard, || {
                self.next_wake().map(|at| (at - self.now_ms()).max(1))
            });
            if guard.is_some() {
                continue;
            }
            let timed_out = match wait {
                Some(ms) => slot
                    .1
                    .wait_for(&mut guard, std::time::Duration::from_millis(ms as u64))
                    .timed_out(),
                None => {
                    slot.1.wait(&mut guard);
                    false
                }
            };
            if timed_out && guard.is_none() {
                // Woken by time, not by a grant: let the clock's passage take effect.
                parking_lot::MutexGuard::unlocked(&mut guard, || {
                    let _ = self.poll();
                });
            }
        }
    }

    /// Starts (once) the engine's timer thread, which polls at [`Engine::next_wake`] so that
    /// waiters with no thread of their own (async acquires) are granted when a refill, a hold or
    /// a circuit ends. It holds the engine weakly and ends with it.
    fn start_timer(self: &Arc<Self>) {
        if self.timer_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let engine = Arc::downgrade(self);
        let signal = self.scheduler.timer.clone();
        let spawned = std::thread::Builder::new()
            .name("ratewise-timer".into())
            .spawn(move || {
                let mut seen = 0u64;
                loop {
                    let Some(e) = engine.upgrade() else { return };
                    let wake = e.next_wake().map(|at| (at - e.now_ms()).max(0));
                    drop(e);
                    let mut s = signal.state.lock();
                    if s.1 {
                        return;
                    }
                    if s.0 == seen {
                        match wake {
                            Some(ms) => {
                                let _ = signal
                                    .cv
                                    .wait_for(&mut s, std::time::Duration::from_millis(ms.max(1) as u64));
                            }
                            None => signal.cv.wait(&mut s),
                        }
                    }
                    if s.1 {
                        return;
                    }
                    seen = s.0;
                    drop(s);
                    let Some(e) = engine.upgrade() else { return };
                    let _ = e.poll();
                }
            });
        if spawned.is_err() {
            self.timer_started.store(false, Ordering::Release);
        }
    }

    /// Waits for a permit at most `timeout_ms` (> 0) without blocking a thread: the future
    /// resolves when the request is granted (or expires), woken by the engine's timer thread or
    /// by whoever frees capacity (see [`Engine::enqueue_with`]). Dropping the future withdraws the request, or cancels the permit if
    /// it was granted but not taken, so nothing is lost. Runtime-agnostic (no tokio needed).
    pub fn acquire_async(
        self: &Arc<Self>,
        capability: &str,
        request: &Request<'_>,
        timeout_ms: i64,
    ) -> Result<AcquireFuture> {
        let shared: Arc<Mutex<Pending>> = Arc::default();
        let tx = shared.clone();
        let ticket = self.enqueue_with(
            capability,
            request,
            timeout_ms,
            Box::new(move |result| {
                let mut p = tx.lock();
                if p.dropped {
                    return false; // the future is gone: the engine cancels the permit
                }
                p.result = Some(result);
                if let Some(w) = p.waker.take() {
                    w.wake();
                }
                true
            }),
        )?;
        Ok(AcquireFuture {
            engine: self.clone(),
            ticket,
            shared,
            done: false,
        })
    }
}

#[derive(Default)]
struct Pending {
    result: Option<Result<Permit>>,
    waker: Option<std::task::Waker>,
    /// The future was dropped before its outcome arrived.
    dropped: bool,
}

/// A permit being waited for (see [`Engine::acquire_async`]).
pub struct AcquireFuture {
    engine: Arc<Engine>,
    ticket: PermitId,
    shared: Arc<Mutex<Pending>>,
    done: bool,
}

impl AcquireFuture {
    /// The ticket (the permit's id once granted).
    pub fn ticket(&self) -> PermitId {
        self.ticket
    }
}

impl std::future::Future for AcquireFuture {
    type Output = Result<Permit>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let mut p = self.shared.lock();
        match p.result.take() {
            Some(result) => {
                drop(p);
                self.done = true;
                std::task::Poll::Ready(result)
            }
            None => {
                p.waker = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}

impl Drop for AcquireFuture {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Withdraw the waiter. If a poll has taken it already, its outcome is either here (a
        // permit to give back) or on its way, and then the callback sees `dropped` and the
        // engine cancels the permit.
        if !self.engine.withdraw(self.ticket) {
            let mut p = self.shared.lock();
            p.dropped = true;
            if let Some(Ok(permit)) = p.result.take() {
                drop(p);
                let _ = self.engine.cancel(permit.id);
            }
        }
    }
}
