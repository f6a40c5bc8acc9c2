use crate::seqlock::Words;
use proptest::prelude::*;

proptest! {
    /// The seqlock publishes a bucket as words: every state the configuration allows (any
    /// positive window and non-negative offset, any level, time and rate) comes back whole.
    /// (Windows of 2^48 ms or more, which the configuration accepts, once lost their top bits.)
    #[test]
    fn bucket_words_round_trip(
        dim in 0usize..6, fixed in any::<bool>(), reserved in any::<bool>(), cached in any::<bool>(),
        configured in 0i64..i64::MAX, learned in proptest::option::of(0i64..i64::MAX),
        window in 1i64..i64::MAX, offset in 0i64..i64::MAX,
        cap in any::<i64>(), s in any::<i64>(), refill in any::<i64>(), level in any::<i64>(),
        at in any::<i64>(), rho in -1e300f64..1e300, rho_at in any::<i64>(),
    ) {
        let dims = [Dimension::Requests, Dimension::Tokens, Dimension::InputTokens,
                    Dimension::OutputTokens, Dimension::Concurrency, Dimension::Cost];
        let b = BucketState {
            dimension: dims[dim],
            algorithm: if fixed { Algorithm::FixedWindow } else { Algorithm::TokenBucket },
            settle: if reserved { Settle::Reserved } else { Settle::Actual },
            count_cached: cached,
            configured,
            learned,
            window_ms: window,
            offset_ms: offset,
            cap, s, refill, level, at, rho, rho_at,
        };
        let back = BucketState::from_words(&b.to_words());
        prop_assert_eq!(format!("{back:?}"), format!("{b:?}"));
    }
}

use super::*;

fn quota(dimension: Dimension, limit: i64, window_ms: i64, algorithm: Algorithm) -> QuotaConfig {
    QuotaConfig {
        dimension,
        limit,
        window_ms,
        algorithm,
        settle: Settle::Actual,
        key: "k".into(),
        offset_ms: 0,
        count_cached: true,
    }
}

#[test]
fn bucket_refills_exactly() {
    // C = 7 per 60 s: g = 1, S = 60000, refill 7 units of 1/S per ms.
    let mut b = BucketState::new(&quota(Dimension::Requests, 7, 60_000, Algorithm::TokenBucket), 0);
    for _ in 0..7 {
        assert_eq!(b.fits(1, 0, 0), Fit::Yes);
        b.charge(1, 0, 10_000);
    }
    // One unit needs 60000/7 = 8571.43 ms → 8572.
    assert_eq!(b.fits(1, 0, 0), Fit::Later(Some(8572)));
    b.sync(8571);
    assert_eq!(b.fits(1, 0, 8571), Fit::Later(Some(1)));
    b.sync(8572);
    assert_eq!(b.fits(1, 0, 8572), Fit::Yes);
    assert_eq!(b.fits(8, 0, 8572), Fit::TooLarge);
}

#[test]
fn debt_and_refund_cap() {
    let mut b = BucketState::new(&quota(Dimension::Tokens, 100, 1_000, Algorithm::TokenBucket), 0);
    b.charge(150, 0, 10_000);
    assert_eq!(b.remaining(), 0);
    b.refund(30);
    assert_eq!(b.remaining(), 0); // still 20 in debt
    b.refund(1_000);
    assert_eq!(b.remaining(), 100);
}

#[test]
fn fixed_window_carries_debt() {
    let mut b = BucketState::new(&quota(Dimension::Tokens, 10, 1_000, Algorithm::FixedWindow), 0);
    b.charge(25, 0, 10_000); // counter −15
    assert_eq!(b.fits(1, 0, 500), Fit::Later(Some(1_500))); // −15 → −5 → 10 (+1 boundary: 2000)
    b.sync(1_000);
    assert_eq!(b.remaining(), 0);
    b.sync(2_000);
    assert_eq!(b.remaining(), 5); // −15 → −5 → min(10, 5)
}

#[test]
fn learned_limit_keeps_exactness() {
    // 10^9 per day: g = 1.6e6, S = 54. A prime learned limit would need S = 86.4e6 and
    // C·S ≈ 8.6e16 > 2^53, so it is rounded down to a multiple of g.
    let mut b = BucketState::new(
        &quota(Dimension::Tokens, 1_000_000_000, 86_400_000, Algorithm::TokenBucket),
        0,
    );
    b.learn_limit(999_999_937);
    assert_eq!(b.learned, Some(998_400_000));
    assert_eq!(b.remaining(), 998_400_000);
    b.learn_limit(500_000_000); // exact: kept as reported
    assert_eq!(b.learned, Some(500_000_000));
    b.learn_limit(1_000_000_000);
    assert_eq!((b.learned, b.remaining()), (None, 500_000_000));
}

#[test]
fn capacity_change_floors_negative_levels() {
    let mut b = BucketState::new(&quota(Dimension::Tokens, 3, 1_000, Algorithm::TokenBucket), 0);
    b.charge(4, 0, 10_000); // level −1 unit = −1000/3·... in 1/S units: S = 1000, level = −1000
    b.set_capacity(7); // S' = 1000, unchanged scale
    assert_eq!(b.remaining(), 0);
    let mut c = BucketState::new(&quota(Dimension::Tokens, 2, 3, Algorithm::TokenBucket), 0);
    c.charge(3, 0, 10_000); // S = 3, level = 6 − 9 = −3
    c.set_capacity(3); // S' = 1: −3·1/3 = −1
    assert_eq!(c.fits(1, 0, 0), Fit::Later(Some(2)));
}
