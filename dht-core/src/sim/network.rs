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

use rand::rngs::StdRng;
use rand::Rng;

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

    /// Whether this datagram is lost in transit.
    pub(crate) fn lost(&self, rng: &mut StdRng) -> bool {
        self.loss > 0.0 && rng.random::<f64>() < self.loss
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

    /// One datagram's one-way latency between `a` and `b`.
    pub(crate) fn latency(&self, a: u64, b: u64, rng: &mut StdRng) -> Duration {
        let jitter = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            rng.random_range(Duration::ZERO..=self.jitter)
        };
        self.base_latency(a, b) + jitter
    }
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
    use rand::SeedableRng;

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
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = wire.latency(3, 4, &mut rng);
            let base = wire.base_latency(3, 4);
            assert!(d >= base && d <= base + wire.jitter);
        }
    }
}
