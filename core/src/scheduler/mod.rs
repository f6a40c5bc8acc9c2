//! Waiting (docs/design.md §8): a deterministic, clock-driven queue of waiting requests. The
//! engine (`engine/waiting.rs`) adds waiters, polls them in rank order as capacity frees and
//! asks when something can next change; this module holds the algorithm and knows nothing of
//! the engine:
//!
//! - [`queue`]: the waiters, their rank (effective lane with aging, arrival, sequence), what
//!   each blocks for the ones ranked below, and the poll in three steps: plan under the lock,
//!   grant with no lock held (a grant may be a Redis round trip), commit under the lock.
//! - [`timer`]: the thread that polls at the next wake-up for waiters with no thread of their own.
//! - [`future`]: the runtime-agnostic future of an async acquire.
//!
//! No lock of this module is held across a grant, so a non-waiting `acquire` on another
//! thread never waits for a poll's network calls.

pub(crate) mod future;
pub(crate) mod queue;
pub(crate) mod timer;

pub use future::AcquireFuture;
pub use queue::OnDone;

/// With a shared store, how soon a waiter with no predictable ready time is polled again (ms).
pub const SHARED_REPOLL_MS: i64 = 50;
