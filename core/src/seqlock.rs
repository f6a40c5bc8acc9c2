//! State behind a mutex that readers copy without taking it.
//!
//! Writers lock; when their guard drops, the state is published as words through a sequence
//! counter (a seqlock), so a reader gets a consistent copy with plain loads and no
//! read-modify-write. Decisions read every bucket and provider of a capability: with locks that
//! is two atomic RMWs each, more than the arithmetic itself.

use parking_lot::{Mutex, MutexGuard};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering, fence};

/// Words a published state may use.
pub(crate) const WORDS: usize = 12;

/// A state that can be written as, and read back from, `WORDS` words.
pub(crate) trait Words: Copy {
    fn to_words(&self) -> [u64; WORDS];
    fn from_words(w: &[u64; WORDS]) -> Self;
}

/// A mutex-guarded state, published for lock-free readers. Aligned to its own cache lines so
/// that unrelated states allocated side by side do not share one.
#[repr(align(128))]
pub(crate) struct Published<T: Words> {
    state: Mutex<T>,
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl<T: Words> Published<T> {
    pub fn new(value: T) -> Self {
        let p = Published {
            state: Mutex::new(value),
            seq: AtomicU64::new(0),
            words: Default::default(),
        };
        p.publish(&value);
        p
    }

    /// Locks for a change; the change is published when the guard drops.
    pub fn lock(&self) -> PublishGuard<'_, T> {
        PublishGuard {
            owner: self,
            state: self.state.lock(),
        }
    }

    /// A consistent copy of the state, without locking.
    pub fn read(&self) -> T {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let mut w = [0u64; WORDS];
                for (x, a) in w.iter_mut().zip(&self.words) {
                    *x = a.load(Ordering::Relaxed);
                }
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return T::from_words(&w);
                }
            }
            std::hint::spin_loop();
        }
    }

    fn publish(&self, value: &T) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (a, x) in self.words.iter().zip(value.to_words()) {
            a.store(x, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }
}

impl<T: Words + Default> Default for Published<T> {
    fn default() -> Self {
        Published::new(T::default())
    }
}

/// A locked state; publishes it on drop.
pub(crate) struct PublishGuard<'a, T: Words> {
    owner: &'a Published<T>,
    state: MutexGuard<'a, T>,
}

impl<T: Words> Deref for PublishGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.state
    }
}

impl<T: Words> DerefMut for PublishGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.state
    }
}

impl<T: Words> Drop for PublishGuard<'_, T> {
    fn drop(&mut self) {
        self.owner.publish(&self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Copy, Default)]
    struct Pair(u64, u64);

    impl Words for Pair {
        fn to_words(&self) -> [u64; WORDS] {
            let mut w = [0; WORDS];
            w[0] = self.0;
            w[1] = self.1;
            w
        }
        fn from_words(w: &[u64; WORDS]) -> Self {
            Pair(w[0], w[1])
        }
    }

    /// Readers never see a half-written state while a writer keeps both halves equal.
    #[test]
    fn readers_see_whole_states() {
        let p = Arc::new(Published::new(Pair(0, 0)));
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 1..200_000u64 {
                    let mut g = p.lock();
                    g.0 = i;
                    g.1 = i;
                }
            })
        };
        loop {
            let done = writer.is_finished();
            let Pair(a, b) = p.read();
            assert_eq!(a, b, "a torn read");
            if done {
                break;
            }
        }
        let _ = writer.join();
        assert_eq!(p.read().0, 199_999);
    }
}
