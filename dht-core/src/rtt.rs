//! Round-trip time estimates, in the style of TCP's retransmission timer
//! (RFC 6298): a smoothed RTT and its variance per peer address, kept in
//! the peer's record of the [`crate::peer_book::PeerBook`], plus a
//! node-wide estimate for peers never measured.
//!
//! The resulting timeout (`srtt + 4 × rttvar`, clamped between a floor and
//! the configured `rpc_timeout`) is a *soft* deadline: a lookup stops waiting
//! on a peer then and queries the next candidate, but a late reply is still
//! accepted until the hard `rpc_timeout`. So a dead peer costs a lookup one
//! round trip's worth of patience, not a full RPC timeout.

use std::time::Duration;

/// Smoothed RTT and its variance, 16 bits each: 4 bytes where two
/// `Duration`s take 32, and a node keeps one per peer it measured (the
/// largest part of a simulated node is its peer book, whose records this
/// keeps at 12 bytes). The arithmetic is done on `Duration`s; only storage
/// is compact, within 1/2048 of the value (see [`pack`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Estimate {
    srtt: u16,
    rttvar: u16,
}

/// Mantissa bits of a packed duration; the other 5 are its exponent.
const MANTISSA_BITS: u32 = 11;

/// `d` in microseconds as `m << e` (an 11-bit `m`, a 5-bit `e`), rounded
/// to the nearest: exact up to 2,047 µs, within 1/2048 above, saturating at
/// `u32::MAX` µs (about 71 minutes, far above any RPC timeout).
fn pack(d: Duration) -> u16 {
    let us = u64::from(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    let bits = 64 - us.leading_zeros();
    let mut shift = bits.saturating_sub(MANTISSA_BITS);
    let mut mantissa = (us + ((1u64 << shift) >> 1)) >> shift;
    if mantissa >> MANTISSA_BITS != 0 {
        // Rounding carried into a 12th bit.
        shift += 1;
        mantissa >>= 1;
    }
    // shift <= 22 and mantissa < 2^11: both fit their fields.
    u16::try_from(u64::from(shift << MANTISSA_BITS) | mantissa).unwrap_or(u16::MAX)
}

fn unpack(packed: u16) -> Duration {
    let shift = u32::from(packed >> MANTISSA_BITS);
    let mantissa = u64::from(packed & ((1 << MANTISSA_BITS) - 1));
    Duration::from_micros(mantissa << shift)
}

impl Estimate {
    fn new(srtt: Duration, rttvar: Duration) -> Self {
        Estimate {
            srtt: pack(srtt),
            rttvar: pack(rttvar),
        }
    }

    pub(crate) fn srtt(&self) -> Duration {
        unpack(self.srtt)
    }

    fn rttvar(&self) -> Duration {
        unpack(self.rttvar)
    }

    pub(crate) fn first(sample: Duration) -> Self {
        Estimate::new(sample, sample / 2)
    }

    fn update(&mut self, sample: Duration) {
        let (srtt, rttvar) = (self.srtt(), self.rttvar());
        let delta = srtt.abs_diff(sample);
        *self = Estimate::new((srtt * 7 + sample) / 8, (rttvar * 3 + delta) / 4);
    }

    fn timeout(&self) -> Duration {
        self.srtt() + self.rttvar() * 4
    }
}

/// The node-wide estimate and the bounds of every timeout.
pub struct RttEstimator {
    global: Option<Estimate>,
    floor: Duration,
    ceiling: Duration,
}

impl RttEstimator {
    /// Timeouts stay within `floor..=ceiling` (the hard RPC timeout).
    pub fn new(floor: Duration, ceiling: Duration) -> Self {
        RttEstimator {
            global: None,
            floor: floor.min(ceiling),
            ceiling,
        }
    }

    /// A reply came `sample` after its request, from a peer whose estimate
    /// was `peer` (none before its first reply): the peer's new estimate.
    pub(crate) fn observe(&mut self, peer: Option<Estimate>, sample: Duration) -> Estimate {
        match self.global.as_mut() {
            Some(g) => g.update(sample),
            None => self.global = Some(Estimate::first(sample)),
        }
        match peer {
            Some(mut e) => {
                e.update(sample);
                e
            }
            None => Estimate::first(sample),
        }
    }

    /// A peer's smoothed round trip, and when its answer is later than
    /// usual: its timeout without the floor (the floor guards against
    /// spurious timeouts; asking someone else too, then, costs only
    /// datagrams). From the node-wide estimate for a peer never measured
    /// (`peer` None); None before any answer at all.
    pub(crate) fn late_after(&self, peer: Option<Estimate>) -> Option<(Duration, Duration)> {
        peer.or(self.global)
            .map(|e| (e.srtt(), e.timeout().min(self.ceiling)))
    }

    /// How long to wait for a peer whose estimate is `peer` before trying
    /// someone else.
    pub(crate) fn timeout(&self, peer: Option<Estimate>) -> Duration {
        peer.or(self.global)
            .map_or(self.ceiling, |e| e.timeout())
            .clamp(self.floor, self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn packed_durations_stay_within_a_2048th() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for us in
            (0..5000u64).chain((0..100_000).map(|_| rng.random_range(0..=u64::from(u32::MAX))))
        {
            let d = Duration::from_micros(us);
            let back = unpack(pack(d)).as_micros();
            let error = back.abs_diff(u128::from(us));
            assert!(
                error * 2048 <= u128::from(us),
                "{us} µs came back as {back}"
            );
            if us < 2048 {
                assert_eq!(back, u128::from(us));
            }
        }
        assert_eq!(
            unpack(pack(Duration::from_secs(86_400))).as_micros(),
            unpack(pack(Duration::from_micros(u64::from(u32::MAX)))).as_micros()
        );
        assert_eq!(std::mem::size_of::<Estimate>(), 4);
    }

    #[test]
    fn timeouts_follow_measured_round_trips_within_bounds() {
        let ms = Duration::from_millis;
        let mut r = RttEstimator::new(ms(50), ms(2000));
        let (mut a, mut b) = (None, None);
        assert_eq!(r.timeout(a), ms(2000), "nothing measured: the hard timeout");
        for _ in 0..20 {
            a = Some(r.observe(a, ms(10)));
        }
        assert_eq!(r.timeout(a), ms(50), "a steady fast peer: the floor");
        assert_eq!(
            r.timeout(b),
            ms(50),
            "unmeasured peers use the node-wide estimate"
        );
        for _ in 0..20 {
            b = Some(r.observe(b, ms(300)));
        }
        let slow = r.timeout(b);
        assert!(slow >= ms(300) && slow < ms(600), "{slow:?}");
        assert_eq!(r.timeout(a), ms(50), "each peer keeps its own estimate");
        b = Some(r.observe(b, ms(10_000)));
        assert_eq!(r.timeout(b), ms(2000), "never past the hard timeout");
    }
}
