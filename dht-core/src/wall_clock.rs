//! The one link between the protocol's monotonic time and unix time.
//!
//! Signed records carry their expiry in unix seconds (the signer's clock),
//! while the protocol only ever sees the `now: Instant` it is given. A
//! [`WallClock`] is an anchor taken once, at construction: an instant and
//! the unix time at that instant. The tokio driver anchors at
//! `SystemTime::now()`; the simulator at a fixed virtual epoch, so runs stay
//! repeatable. Nothing here reads a clock.

use std::time::{Duration, Instant};

/// Unix time the protocol assumes at its start when none is configured
/// (the simulator, unit tests): 2023-11-14T22:13:20Z.
pub const VIRTUAL_EPOCH_UNIX: u64 = 1_700_000_000;

/// An instant and the unix time (seconds) at that instant.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    at: Instant,
    unix: u64,
}

impl WallClock {
    pub fn new(at: Instant, unix: u64) -> Self {
        WallClock { at, unix }
    }

    /// The unix time at `now` (whole seconds, rounded down).
    pub fn unix_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs();
        let before = self.at.saturating_duration_since(now).as_secs();
        self.unix.saturating_add(elapsed).saturating_sub(before)
    }

    /// The instant of unix time `unix`, seen from `now`: never before `now`
    /// (a time already past is treated as expired by the caller anyway) and
    /// never past [`FURTHEST`] from `now` (a signer may write any u64).
    pub fn instant_of(&self, now: Instant, unix: u64) -> Instant {
        let exact = if unix >= self.unix {
            let ahead = Duration::from_secs(unix - self.unix);
            self.at.checked_add(ahead).unwrap_or(now + FURTHEST)
        } else {
            let behind = Duration::from_secs(self.unix - unix);
            self.at.checked_sub(behind).unwrap_or(now)
        };
        exact.clamp(now, now + FURTHEST)
    }
}

/// The furthest expiry kept: ten years.
pub const FURTHEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0, 1000);
        let later = t0 + Duration::from_millis(90_500);
        assert_eq!(clock.unix_at(later), 1090);
        assert_eq!(clock.instant_of(later, 1100), t0 + Duration::from_secs(100));
        assert_eq!(clock.instant_of(later, u64::MAX), later + FURTHEST);
        assert_eq!(clock.instant_of(later, 5), later, "past times are now");
    }
}
