//! The simulated wire: how long a datagram takes between two nodes, which
//! datagrams never arrive, and counters of what happened to each one.
//!
//! Latency is a stable base per pair of nodes (a hash of the seed and the
//! pair, uniform in the configured range) plus a small random jitter per
//! datagram, because real paths have a fixed round-trip time that varies a
//! little: drawing an independent latency per datagram hides reordering bugs
//! and makes every peer look equally fast. Datagrams larger than an IPv4 UDP
//! payload (65,507 bytes) are dropped, as a real socket refuses them.

use std::time::Duration;

/// Largest UDP payload over IPv4; anything longer cannot be sent.
pub const MAX_DATAGRAM: usize = 65_507;

/// What happened to the datagrams sent so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network by nodes (and by `send_raw`).
    pub sent: u64,
    /// Datagrams handed to a running node.
    pub delivered: u64,
    /// Lost at random (see [`crate::sim::Simulation::set_loss`]).
    pub dropped_loss: u64,
    /// Longer than [`MAX_DATAGRAM`].
    pub dropped_oversize: u64,
    /// Addressed to nobody, or to a node that was not running on arrival.
    pub dropped_unreachable: u64,
}

impl NetStats {
    /// Every datagram that did not reach a running node.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_oversize + self.dropped_unreachable
    }
}

/// Per-pair latency, jitter and loss.
#[derive(Clone)]
pub(crate) struct Wire {
    seed: u64,
    base: (Duration, Duration),
    jitter: Duration,
    loss: f64,
}

impl Wire {
    pub(crate) fn new(seed: u64, base: (Duration, Duration)) -> Self {
        let (lo, hi) = base;
        Wire {
            seed,
            base: (lo.min(hi), hi.max(lo)),
            // A few percent of the range: enough to reorder close datagrams,
            // small against the per-pair differences.
            jitter: (hi.saturating_sub(lo) / 20).max(Duration::from_micros(100)),
            loss: 0.0,
        }
    }

    pub(crate) fn set_jitter(&mut self, jitter: Duration) {
        self.jitter = jitter;
    }

    pub(crate) fn set_loss(&mut self, loss: f64) {
        self.loss = if loss.is_nan() {
            0.0
        } else {
            loss.clamp(0.0, 1.0)
        };
    }

    /// What becomes of the datagram that node `from` sends to `to` as its
    /// entry `seq` (see [`super::queue::Tie`]): lost (`None`), or its one-way
    /// latency. The randomness is a hash of the seed, the sender and its
    /// count, not a draw from a shared generator, so it does not depend on
    /// which thread sends first.
    pub(crate) fn fate(&self, from: u64, to: u64, seq: u64) -> Option<Duration> {
        let draw =
            mix(mix(self.seed ^ 0x6c6f_7373 ^ from.wrapping_mul(0xff51_afd7_ed55_8ccd)) ^ seq);
        if self.loss > 0.0 && unit(draw) < self.loss {
            return None;
        }
        let jitter = self.jitter.as_nanos() as u64;
        let jitter = if jitter == 0 {
            0
        } else {
            mix(draw) % (jitter + 1)
        };
        Some(self.base_latency(from, to) + Duration::from_nanos(jitter))
    }

    /// The shortest latency any datagram can have: nothing a node sends
    /// reaches another node sooner, which is what lets shards run a window
    /// of this length side by side.
    pub(crate) fn min_latency(&self) -> Duration {
        self.base.0
    }

    /// The stable part of the one-way latency between nodes `a` and `b`
    /// (symmetric: both directions take the same path).
    pub(crate) fn base_latency(&self, a: u64, b: u64) -> Duration {
        let (lo, hi) = self.base;
        let span = (hi - lo).as_nanos() as u64;
        if span == 0 {
            return lo;
        }
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        let h = mix(mix(self.seed ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ y);
        lo + Duration::from_nanos(h % (span + 1))
    }
}

/// A 64-bit hash as a number in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// splitmix64's finaliser: a cheap, well-spread 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_latency_is_stable_symmetric_and_in_range() {
        let lo = Duration::from_millis(5);
        let hi = Duration::from_millis(50);
        let wire = Wire::new(9, (lo, hi));
        let mut distinct = std::collections::BTreeSet::new();
        for a in 0..50u64 {
            for b in 0..50u64 {
                let d = wire.base_latency(a, b);
                assert!(d >= lo && d <= hi);
                assert_eq!(d, wire.base_latency(b, a));
                assert_eq!(d, Wire::new(9, (lo, hi)).base_latency(a, b));
                distinct.insert(d);
            }
        }
        // Pairs differ from one another (not one latency for everybody).
        assert!(distinct.len() > 1000, "{}", distinct.len());
        let base = wire.base_latency(3, 4);
        let jittered: std::collections::BTreeSet<Duration> = (0..100)
            .map(|seq| wire.fate(3, 4, seq).unwrap())
            .inspect(|d| assert!(*d >= base && *d <= base + wire.jitter))
            .collect();
        assert!(jittered.len() > 50, "{}", jittered.len());
        assert_eq!(wire.fate(3, 4, 7), Wire::new(9, (lo, hi)).fate(3, 4, 7));
    }

    #[test]
    fn loss_drops_about_the_fraction_asked() {
        let mut wire = Wire::new(3, (Duration::from_millis(5), Duration::from_millis(9)));
        wire.set_loss(0.25);
        let lost = (0..40_000)
            .filter(|&seq| wire.fate(1, 2, seq).is_none())
            .count();
        assert!((9_000..11_000).contains(&lost), "{lost}");
        wire.set_loss(0.0);
        assert!((0..1000).all(|seq| wire.fate(1, 2, seq).is_some()));
    }
}
