//! The permit table: live permits and their deadlines (on every store; with Redis, the
//! process's own view of the permits it granted).
//!
//! Permits are spread over shards by id (ids come in per-thread blocks, so one thread mostly
//! touches one shard). Each shard keeps a min-heap of deadlines; an entry whose permit was
//! completed stays in the heap until it surfaces or the heap is compacted, so completing a
//! permit is a hash removal, and expiry never scans the live permits.

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const SHARDS: usize = 16;
const BLOCK_BITS: u32 = 10;

/// Hands out permit ids in blocks of 1024 per thread, unique in the process.
pub(crate) fn next_permit_id() -> u64 {
    static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            next
        } else {
            let start = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed) << BLOCK_BITS;
            ids.set((start + 1, start + (1 << BLOCK_BITS)));
            start
        }
    })
}

type IdMap<V> = FxHashMap<u64, V>;

/// A shard: its lock, and apart from it (on its own cache line) a lower bound of its earliest
/// deadline, which every operation reads to know whether anything can have expired. The bound
/// is written only when it moves, so threads working in different shards share no written line.
#[repr(align(128))]
struct Shard<P> {
    inner: Mutex<ShardInner<P>>,
}

#[repr(align(128))]
struct DeadlineHint(AtomicI64);

struct ShardInner<P> {
    live: IdMap<(i64, P)>,
    deadlines: BinaryHeap<Reverse<(i64, u64)>>,
}

impl<P> ShardInner<P> {
    fn min_deadline(&self) -> i64 {
        self.deadlines.peek().map(|Reverse((d, _))| *d).unwrap_or(i64::MAX)
    }
}

/// Live permits with their deadlines.
pub(crate) struct PermitTable<P> {
    shards: Box<[Shard<P>]>,
    hints: Box<[DeadlineHint]>,
    /// A lower bound of every shard's hint: the one value most operations read.
    earliest: DeadlineHint,
}

impl<P> PermitTable<P> {
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                inner: Mutex::new(ShardInner {
                    live: IdMap::default(),
                    deadlines: BinaryHeap::new(),
                }),
            })
            .collect();
        let hints = (0..SHARDS).map(|_| DeadlineHint(AtomicI64::new(i64::MAX))).collect();
        PermitTable {
            shards,
            hints,
            earliest: DeadlineHint(AtomicI64::new(i64::MAX)),
        }
    }

    fn index(id: u64) -> usize {
        ((id >> BLOCK_BITS) as usize) % SHARDS
    }

    /// Stores a permit that expires at `deadline`.
    pub fn insert(&self, id: u64, deadline: i64, permit: P) {
        let i = Self::index(id);
        let mut inner = self.shards[i].inner.lock();
        inner.live.insert(id, (deadline, permit));
        inner.deadlines.push(Reverse((deadline, id)));
        // Deadlines mostly grow, so the hint rarely moves; skip the store when it does not.
        let hint = &self.hints[i].0;
        if deadline < hint.load(Ordering::Relaxed) {
            hint.store(deadline, Ordering::Release);
            self.earliest.0.fetch_min(deadline, Ordering::AcqRel);
        }
    }

    /// Removes a live permit, with its deadline; `Err(Some(p))` when it was found past its
    /// deadline at `now` (the caller treats it as expired), `Err(None)` when there is none.
    pub fn remove(&self, id: u64, now: i64) -> Result<(i64, P), Option<P>> {
        let mut inner = self.shards[Self::index(id)].inner.lock();
        let Some((deadline, permit)) = inner.live.remove(&id) else {
            return Err(None);
        };
        // Lazy deletion: compact when stale heap entries outnumber live permits. The hint stays
        // a lower bound (compaction only raises the true minimum), so it need not be written.
        if inner.deadlines.len() > 2 * inner.live.len() + 64 {
            let fresh: BinaryHeap<_> = inner.live.iter().map(|(id, (d, _))| Reverse((*d, *id))).collect();
            inner.deadlines = fresh;
        }
        if now >= deadline {
            Err(Some(permit))
        } else {
            Ok((deadline, permit))
        }
    }

    /// A lower bound of the earliest permit deadline (`i64::MAX` when none).
    pub fn earliest_deadline(&self) -> i64 {
        self.earliest.0.load(Ordering::Acquire)
    }

    /// Removes and returns every permit whose deadline is ≤ `now`.
    pub fn take_expired(&self, now: i64) -> Vec<P> {
        let mut out = Vec::new();
        if self.earliest.0.load(Ordering::Acquire) > now {
            return out;
        }
        // Reset the bound before scanning, so an insert racing with the scan lowers it again.
        self.earliest.0.store(i64::MAX, Ordering::Release);
        for (shard, hint) in self.shards.iter().zip(self.hints.iter()) {
            if hint.0.load(Ordering::Acquire) > now {
                continue;
            }
            let mut inner = shard.inner.lock();
            while let Some(Reverse((deadline, id))) = inner.deadlines.peek().copied() {
                if deadline > now {
                    break;
                }
                inner.deadlines.pop();
                if inner.live.get(&id).is_some_and(|(d, _)| *d == deadline)
                    && let Some((_, p)) = inner.live.remove(&id)
                {
                    out.push(p);
                }
            }
            hint.0.store(inner.min_deadline(), Ordering::Release);
        }
        for hint in self.hints.iter() {
            self.earliest
                .0
                .fetch_min(hint.0.load(Ordering::Acquire), Ordering::AcqRel);
        }
        out
    }
}
