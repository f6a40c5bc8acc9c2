//! The engine's side of waiting (docs/design.md §8): `enqueue` adds a waiter, `poll` grants
//! waiters in rank order as capacity frees and expires those past their deadline, `next_wake`
//! says when something can next change; blocking and async acquires are built on them. Only a
//! poll grants; `enqueue`, `complete` and `cancel` poll at once. The algorithm is the queue's
//! (`scheduler::queue`); the engine tries grants and predicts refusals for it.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use super::decide::Ask;
use crate::call::{Permit, PermitId, Polled, Request};
use crate::error::{Error, Result};
use crate::scheduler::future::{Slot, Tickets};
use crate::scheduler::queue::{Blocked, Grant, Ticket};
use crate::scheduler::timer::{self, Pollable};
use crate::scheduler::{AcquireFuture, OnDone, SHARED_REPOLL_MS};
use crate::topology::{CapabilityRt, Topology};

impl Tickets for Engine {
    fn withdraw(&self, ticket: PermitId) -> bool {
        self.queue.withdraw(ticket)
    }

    fn give_back(&self, permit: PermitId) {
        let _ = self.cancel(permit);
    }
}

impl Pollable for Engine {
    fn next_wake(&self) -> Option<i64> {
        Engine::next_wake(self)
    }

    fn now_ms(&self) -> i64 {
        Engine::now_ms(self)
    }

    fn poll_waiters(&self) {
        let _ = self.poll();
    }
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
        let cap = topo.capability(capability)?;
        let lane = topo.lane(request.lane)?;
        if timeout_ms <= 0 {
            return Err(Error::InvalidArgument(format!(
                "timeout_ms must be > 0, got {timeout_ms}"
            )));
        }
        // A waiting acquire counts in `acquires` (and, if its wait expires, in `refusals`).
        cap.stats.acquires.fetch_add(1, Ordering::Relaxed);
        let deferred = on_done.is_some() && self.is_shared();
        let id = self.queue.push(capability, lane, request, now, timeout_ms, on_done);
        // A waiter with a callback on a shared store is first polled by the timer thread, so
        // that no caller's thread (an event loop) waits on the network here.
        let polled = if deferred { Polled::default() } else { self.poll_at(now) };
        self.queue.timer.notify();
        Ok((PermitId(id), polled))
    }

    /// Grants waiting requests in rank order as capacity allows and expires those past their
    /// deadline. One poll runs at a time: asked for while another thread's poll runs, this one
    /// returns at once (empty) and that poll goes round again, so its report lists what both
    /// would have granted.
    pub fn poll(&self) -> Polled {
        let now = self.tick();
        self.poll_at(now)
    }

    /// Polls at `now`: the queue plans and commits under its lock and calls back for each
    /// grant with no lock held; callbacks are then called, and permits nobody took given back.
    pub(crate) fn poll_at(&self, now: i64) -> Polled {
        if self.queue.is_empty() {
            return Polled::default();
        }
        let topo = self.topo.load();
        let done = self.queue.poll(&topo, now, &At { engine: self, now });
        drop(topo);
        for (f, result) in done.deliveries {
            let granted = result.as_ref().ok().map(|p| p.id);
            if !f(result)
                && let Some(id) = granted
            {
                let _ = self.cancel(id);
            }
        }
        for id in done.orphans {
            let _ = self.cancel(id);
        }
        Polled {
            granted: done.granted,
            expired: done.expired,
        }
    }

    /// The earliest time at which a poll could change something (a deadline, an aging step, a
    /// refill, hold, circuit or recovery a waiter needs, a permit expiring), or `None` when
    /// nothing waits.
    ///
    /// With a shared store, a waiter whose wait has no predictable end (a concurrency slot, a
    /// busy probe) is polled again after [`SHARED_REPOLL_MS`]: another process may free it.
    pub fn next_wake(&self) -> Option<i64> {
        if self.queue.is_empty() {
            return None;
        }
        let now = self.tick();
        let topo = self.topo.load();
        let repoll = self.is_shared().then_some(SHARED_REPOLL_MS);
        self.queue.next_wake(
            &topo,
            now,
            self.permits.earliest_deadline(),
            repoll,
            &At { engine: self, now },
        )
    }

    /// Waits for a permit at most `timeout_ms` (> 0), blocking the calling thread: the request
    /// joins the waiters (docs/design.md §8) and is granted in rank order as capacity frees. The
    /// thread sleeps on a condition variable, woken by the poll that grants it (a completion, a
    /// cancel, another waiter) or at [`Engine::next_wake`], when it polls; it never
    /// sleep-polls. Fails with `no_available_provider` (and the predicted wait) when the timeout
    /// passes.
    ///
    /// With a manual clock, time passes only when the clock is advanced and something polls.
    pub fn acquire_wait(&self, capability: &str, request: &Request<'_>, timeout_ms: i64) -> Result<Permit> {
        let slot: Arc<(Mutex<Option<Result<Permit>>>, Condvar)> = Arc::default();
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
                self.next_wake().map(|at| at.saturating_sub(self.now_ms()).max(1))
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
        if !timer::spawn(Arc::downgrade(self), self.queue.timer.clone()) {
            self.timer_started.store(false, Ordering::Release);
        }
    }

    /// Waits for a permit at most `timeout_ms` (> 0) without blocking a thread: the future
    /// resolves when the request is granted (or expires), woken by the engine's timer thread or
    /// by whoever frees capacity (see [`Engine::enqueue_with`]). Dropping the future withdraws
    /// the request, or cancels the permit if it was granted but not taken, so nothing is lost.
    /// Runtime-agnostic (no tokio needed).
    pub fn acquire_async(
        self: &Arc<Self>,
        capability: &str,
        request: &Request<'_>,
        timeout_ms: i64,
    ) -> Result<AcquireFuture> {
        let slot = Slot::default();
        let ticket = self.enqueue_with(capability, request, timeout_ms, slot.on_done())?;
        let owner: Arc<dyn Tickets> = self.clone();
        Ok(slot.future(owner, ticket))
    }
}

/// The engine at one poll's `now`: every grant and prediction of the poll is made at it.
struct At<'a> {
    engine: &'a Engine,
    now: i64,
}

impl At<'_> {
    /// The ticket's ask at this poll's `now`, in `lane`.
    fn ask<T>(&self, t: &Ticket, lane: usize, queued: Option<&Blocked>, f: impl FnOnce(Ask<'_>) -> T) -> T {
        t.with_request(|request| {
            f(Ask {
                lane,
                request,
                now: self.now,
                queued,
            })
        })
    }
}

impl Grant for At<'_> {
    fn grant(&self, topo: &Topology, cap: &CapabilityRt, t: &Ticket, lane: usize, queued: &Blocked) -> Result<Permit> {
        self.ask(t, lane, Some(queued), |ask| {
            self.engine.try_acquire(topo, cap, ask, Some(t.id))
        })
    }

    fn predict(&self, topo: &Topology, cap: &CapabilityRt, t: &Ticket, lane: usize, queued: Option<&Blocked>) -> Error {
        let refusal = self.ask(t, lane, queued, |ask| self.engine.refusal(topo, cap, ask));
        refusal.unwrap_or(Error::NoAvailableProvider {
            retry_after_ms: Some(0),
            skipped: Vec::new(),
        })
    }
}
