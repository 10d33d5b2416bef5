//! At most one warning per interval for what any client can cause at will
//! (a connection closed for a malformed message): a client opening
//! connections that each send garbage must not flood the node's log. The
//! warnings left out are counted, and the next one says how many there were.

use std::sync::atomic::{AtomicU64, Ordering};

/// The rate limit of one kind of warning. Times are nanoseconds on any
/// clock that does not go back (the server's time since it started).
#[derive(Debug)]
pub(crate) struct WarnLimit {
    interval_ns: u64,
    /// When the next warning may be logged.
    next_ns: AtomicU64,
    /// Warnings left out since the last one logged.
    left_out: AtomicU64,
}

impl WarnLimit {
    pub(crate) fn new(interval_ns: u64) -> Self {
        WarnLimit {
            interval_ns,
            next_ns: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// Whether a warning may be logged at `now_ns`: `Some(n)` with the
    /// number left out since the last one, or `None` (this one is counted).
    pub(crate) fn allow(&self, now_ns: u64) -> Option<u64> {
        let next = self.next_ns.load(Ordering::Acquire);
        if now_ns >= next
            && self
                .next_ns
                .compare_exchange(
                    next,
                    now_ns.saturating_add(self.interval_ns),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::AcqRel));
        }
        self.left_out.fetch_add(1, Ordering::AcqRel);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_then_the_count_left_out() {
        let limit = WarnLimit::new(10);
        assert_eq!(limit.allow(0), Some(0));
        assert_eq!(limit.allow(3), None);
        assert_eq!(limit.allow(9), None);
        assert_eq!(limit.allow(10), Some(2));
        assert_eq!(limit.allow(15), None);
        assert_eq!(limit.allow(100), Some(1));
        assert_eq!(limit.allow(100), None);
    }
}
