//! How often copies are refreshed: the replicate and republish intervals a
//! node is configured with, and the period a value's publisher re-puts it
//! at, which must always land before the copies it refreshes lapse.
//! [`crate::records`] keeps the due times; this module only says how far
//! apart they are.

use std::time::Duration;

/// How often held copies are re-sent and own values re-put (from
/// [`crate::Config`]). Not to be confused with a put's
/// [`crate::Lifetime`], which says whether anyone re-puts it at all.
#[derive(Clone, Copy, Debug)]
pub struct RefreshIntervals {
    pub replicate_interval: Duration,
    pub republish_interval: Duration,
}

/// How often the publisher re-puts a value put with `ttl`: every
/// `republish_interval`, but always early enough that the re-put (a lookup
/// and k STOREs, seconds at most) lands before the previous copies expire:
/// a quarter of the TTL early, at most one replicate interval early.
pub fn republish_period(ttl: Duration, intervals: &RefreshIntervals) -> Duration {
    let margin = (ttl / 4).min(intervals.replicate_interval);
    intervals
        .republish_interval
        .min(ttl.saturating_sub(margin))
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn republish_always_lands_before_copies_lapse() {
        let intervals = RefreshIntervals {
            replicate_interval: HOUR,
            republish_interval: 24 * HOUR,
        };
        for ttl_secs in [1, 60, 3600, 24 * 3600, 25 * 3600, 7 * 24 * 3600] {
            let ttl = Duration::from_secs(ttl_secs);
            let period = republish_period(ttl, &intervals);
            assert!(
                period < ttl || ttl_secs == 1,
                "ttl {ttl_secs}s: period {period:?}"
            );
            assert!(period <= 24 * HOUR);
        }
        let day = republish_period(24 * HOUR, &intervals);
        assert_eq!(day, 23 * HOUR, "default TTL: one hour early");
        // A short TTL: a quarter of it early, never less than a second.
        assert_eq!(
            republish_period(Duration::from_secs(240), &intervals),
            Duration::from_secs(180)
        );
        assert_eq!(
            republish_period(Duration::from_secs(1), &intervals),
            Duration::from_secs(1)
        );
    }
}
