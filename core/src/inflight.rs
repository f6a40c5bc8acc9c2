//! The reservations of a provider's live permits, by grant time (docs/design.md §7): a reported
//! `remaining` was counted by the provider before the calls it has not seen yet, so
//! calibration subtracts what permits granted at or after the reporting point still reserve.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Live permits' reservations per quota, keyed by (grant ms, sequence).
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight {
    by_grant: BTreeMap<(i64, u64), Arc<[i64]>>,
    next: u64,
}

impl InFlight {
    /// Records a permit granted at `granted_at` reserving `charges` (per quota); returns its
    /// sequence number, to [`InFlight::remove`] it with.
    pub fn add(&mut self, granted_at: i64, charges: Arc<[i64]>) -> u64 {
        self.next += 1;
        self.by_grant.insert((granted_at, self.next), charges);
        self.next
    }

    pub fn remove(&mut self, granted_at: i64, seq: u64) {
        self.by_grant.remove(&(granted_at, seq));
    }

    /// Units of quota `i` reserved by the permits granted at or after `point`.
    pub fn reserved_since(&self, point: i64, i: usize) -> i64 {
        self.by_grant
            .range((point, 0)..)
            .map(|(_, c)| c.get(i).copied().unwrap_or(0).max(0))
            .fold(0i64, i64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_what_was_granted_at_or_after_the_point() {
        let mut f = InFlight::default();
        let a = f.add(10, Arc::from([1, 100]));
        f.add(20, Arc::from([1, 50]));
        f.add(20, Arc::from([1, 7]));
        assert_eq!(f.reserved_since(20, 1), 57);
        assert_eq!(f.reserved_since(0, 1), 157);
        assert_eq!(f.reserved_since(21, 0), 0);
        f.remove(10, a);
        assert_eq!(f.reserved_since(0, 0), 2);
        // A quota index the permit did not have (the provider changed since) counts nothing.
        assert_eq!(f.reserved_since(0, 5), 0);
    }
}
