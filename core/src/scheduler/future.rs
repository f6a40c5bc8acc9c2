//! The future of an async acquire: runtime-agnostic (no tokio needed), resolved by the
//! callback the queue calls with the waiter's outcome.

use parking_lot::Mutex;
use std::sync::Arc;

use crate::call::{Permit, PermitId};
use crate::error::Result;
use crate::scheduler::OnDone;

/// Who owns the tickets a future waits on (the engine).
pub(crate) trait Tickets: Send + Sync {
    /// Withdraws a waiting ticket; false when no waiter has that id.
    fn withdraw(&self, ticket: PermitId) -> bool;
    /// Gives back a granted permit nobody took.
    fn give_back(&self, permit: PermitId);
}

#[derive(Default)]
struct Pending {
    result: Option<Result<Permit>>,
    waker: Option<std::task::Waker>,
    /// The future was dropped before its outcome arrived.
    dropped: bool,
}

/// A permit being waited for (see [`Engine::acquire_async`](crate::Engine::acquire_async)).
pub struct AcquireFuture {
    owner: Arc<dyn Tickets>,
    ticket: PermitId,
    shared: Arc<Mutex<Pending>>,
    done: bool,
}

/// The state a future and its waiter's callback share.
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<Pending>>);

impl Slot {
    /// The waiter's callback: stores the outcome and wakes the future; a future already
    /// dropped refuses it, and the engine gives the permit back.
    pub fn on_done(&self) -> OnDone {
        let tx = self.0.clone();
        Box::new(move |result| {
            let mut p = tx.lock();
            if p.dropped {
                return false;
            }
            p.result = Some(result);
            if let Some(w) = p.waker.take() {
                w.wake();
            }
            true
        })
    }

    /// The future waiting on `ticket`.
    pub fn future(self, owner: Arc<dyn Tickets>, ticket: PermitId) -> AcquireFuture {
        AcquireFuture {
            owner,
            ticket,
            shared: self.0,
            done: false,
        }
    }
}

impl AcquireFuture {
    /// The ticket (the permit's id once granted).
    pub fn ticket(&self) -> PermitId {
        self.ticket
    }
}

impl std::fmt::Debug for AcquireFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquireFuture")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
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
        if !self.owner.withdraw(self.ticket) {
            let mut p = self.shared.lock();
            p.dropped = true;
            if let Some(Ok(permit)) = p.result.take() {
                drop(p);
                self.owner.give_back(permit.id);
            }
        }
    }
}
