//! Converting between protocol time and wall-clock time. The protocol only
//! knows monotonic `Instant`s passed in by its driver; the store keeps unix
//! milliseconds, the only time a restarted process can interpret. The driver
//! captures one [`ClockAnchor`] (an `Instant` and a `SystemTime` read
//! together) when it starts and converts through it both ways, so within a
//! run expiries follow the monotonic clock and only a restart re-reads the
//! wall clock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Farthest into the future a converted `Instant` may lie. Longer spans (a
/// TTL of `u64::MAX` ms, say) are clamped so the addition cannot overflow.
const MAX_SPAN: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One moment read on both clocks.
#[derive(Clone, Copy, Debug)]
pub struct ClockAnchor {
    instant: Instant,
    unix_ms: u64,
}

impl ClockAnchor {
    /// An anchor from a pair of readings taken at the same moment. A wall
    /// clock before 1970 counts as 1970.
    pub fn new(instant: Instant, system: SystemTime) -> Self {
        let since_epoch = system.duration_since(UNIX_EPOCH).unwrap_or_default();
        ClockAnchor {
            instant,
            unix_ms: millis(since_epoch),
        }
    }

    /// Reads both clocks now; the driver does this once at start.
    pub fn now() -> Self {
        ClockAnchor::new(Instant::now(), SystemTime::now())
    }

    /// The anchor's wall-clock reading, in unix milliseconds.
    pub fn unix_ms(&self) -> u64 {
        self.unix_ms
    }

    /// The wall-clock time of `at`, in unix milliseconds (truncated).
    pub fn to_unix_ms(&self, at: Instant) -> u64 {
        if at >= self.instant {
            self.unix_ms.saturating_add(millis(at - self.instant))
        } else {
            self.unix_ms.saturating_sub(millis(self.instant - at))
        }
    }

    /// The `Instant` of a wall-clock time. Times too far in the past for the
    /// platform's `Instant` come back as the anchor itself (already past for
    /// a driver that anchored at its start); times more than a century ahead
    /// come back a century ahead.
    pub fn to_instant(&self, unix_ms: u64) -> Instant {
        if unix_ms >= self.unix_ms {
            let ahead = Duration::from_millis(unix_ms - self.unix_ms).min(MAX_SPAN);
            self.instant.checked_add(ahead).unwrap_or(self.instant)
        } else {
            let behind = Duration::from_millis(self.unix_ms - unix_ms);
            self.instant.checked_sub(behind).unwrap_or(self.instant)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor() -> (ClockAnchor, Instant) {
        let start = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
        (ClockAnchor::new(start, wall), start)
    }

    #[test]
    fn converts_both_ways_around_the_anchor() {
        let (a, start) = anchor();
        assert_eq!(a.to_unix_ms(start), 1_700_000_000_000);
        let later = start + Duration::from_millis(90_500);
        assert_eq!(a.to_unix_ms(later), 1_700_000_090_500);
        assert_eq!(a.to_instant(1_700_000_090_500), later);
        if let Some(earlier) = start.checked_sub(Duration::from_secs(2)) {
            assert_eq!(a.to_unix_ms(earlier), 1_699_999_998_000);
            assert_eq!(a.to_instant(1_699_999_998_000), earlier);
        }
    }

    #[test]
    fn sub_millisecond_parts_are_truncated() {
        let (a, start) = anchor();
        let t = start + Duration::from_micros(1_999);
        assert_eq!(a.to_unix_ms(t), 1_700_000_000_001);
        assert_eq!(
            a.to_instant(a.to_unix_ms(t)),
            start + Duration::from_millis(1)
        );
    }

    #[test]
    fn extremes_saturate_instead_of_panicking() {
        let (a, start) = anchor();
        assert_eq!(a.to_instant(u64::MAX), start + MAX_SPAN);
        // Before any Instant the platform can hold: clamped to the anchor or
        // a real earlier instant, never a panic.
        assert!(a.to_instant(0) <= start);
        let pre_1970 = ClockAnchor::new(start, UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(pre_1970.unix_ms(), 0);
        assert_eq!(pre_1970.to_unix_ms(start + Duration::from_secs(1)), 1000);
    }

    #[test]
    fn a_restart_reads_expiries_against_the_new_anchor() {
        // Run 1 anchors at wall time T and writes an expiry 60 s ahead.
        let (run1, start1) = anchor();
        let expires = run1.to_unix_ms(start1 + Duration::from_secs(60));
        // Run 2 starts 90 s of wall time later with an unrelated Instant base.
        let start2 = Instant::now();
        let run2 = ClockAnchor::new(
            start2,
            UNIX_EPOCH + Duration::from_millis(1_700_000_090_000),
        );
        assert!(run2.to_instant(expires) <= start2, "expired 30 s ago");
        // 40 s later instead: 20 s left.
        let run2b = ClockAnchor::new(
            start2,
            UNIX_EPOCH + Duration::from_millis(1_700_000_040_000),
        );
        assert_eq!(run2b.to_instant(expires), start2 + Duration::from_secs(20));
    }
}
