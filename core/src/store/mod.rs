//! Where state lives: the permit table ([`permits`]) on every engine, and the Redis store
//! ([`redis`], cargo feature `redis`), which shares buckets, permits, holds and the circuit
//! across processes. A [`Change`] is what one settlement, observation or header report does to
//! one provider: the engine applies it to memory, and first sends it to Redis when it shares.
//!
//! No lock is held across a network call: the Redis module is called with no engine, provider,
//! bucket or scheduler lock taken, and takes each lock only to read or adopt state.

pub(crate) mod permits;
pub(crate) mod redis;

use rustc_hash::FxHashSet;
use smallvec::SmallVec;

use crate::health::Signal;

/// Per quota of a provider: units to charge (> 0) or refund (< 0).
pub(crate) type Deltas = SmallVec<[i64; 8]>;

/// What headers report for one quota of a provider (docs/design.md §7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reported {
    /// The capacity a reported limit makes the one in force.
    pub limit: Option<i64>,
    /// The reported remaining units.
    pub remaining: Option<i64>,
}

impl Reported {
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none()
    }
}

/// Per quota of a provider, what headers reported; empty when they reported nothing.
pub(crate) type Calibration = SmallVec<[Reported; 8]>;

/// A change of one provider's state: what `complete`, `cancel`, `observe` and `sync_headers`
/// do, in the order they do it (deltas, hold, circuit signal, calibration).
#[derive(Clone)]
pub(crate) struct Change {
    /// The permit being settled, as the shared store knows it: (instance, id); `None` for a
    /// change without a permit, or of a permit granted in memory only.
    pub permit: Option<(i64, u64)>,
    /// The deltas are this process's alone: the settlement of a permit granted in memory while
    /// Redis did not answer, which Redis never charged (its hold, signal and calibration are
    /// still shared).
    pub local_deltas: bool,
    pub deltas: Deltas,
    pub hold: Option<i64>,
    pub signal: Option<Signal>,
    pub calibration: Calibration,
    /// The reporting point of the calibration (docs/design.md §7): reservations of live permits
    /// granted at or after it are subtracted from a reported `remaining`; `None`: nothing is.
    pub point: Option<i64>,
    /// Malformed header values the calibration ignored.
    pub header_errors: u32,
}

/// Bucket keys and provider names: those an engine dropped at run time, or re-adds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    pub keys: FxHashSet<String>,
    pub providers: FxHashSet<String>,
}

/// What Redis has not received yet (docs/design.md §9), kept in order and sent once it answers
/// again, so that an outage loses no settlement of a shared permit and leaves no slot behind.
pub(crate) enum Unsent {
    /// The change of a shared permit's provider, settled while Redis did not answer.
    Settlement { provider: String, change: Box<Change> },
    /// A shared acquire whose reply was lost: the permit it may have reserved is released.
    Release { permit: (i64, u64) },
}

/// At most this many unsent entries are kept; beyond it the oldest is dropped (and counted).
pub(crate) const UNSENT_MAX: usize = 10_000;
