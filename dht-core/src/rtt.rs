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

/// Smoothed RTT and its variance, in whole microseconds (saturating at
/// about 71 minutes, far above any RPC timeout): 8 bytes where two
/// `Duration`s take 32, and a node keeps one per peer it measured. The
/// arithmetic is done on `Duration`s; only storage is compact.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Estimate {
    srtt_us: u32,
    rttvar_us: u32,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Estimate {
    fn new(srtt: Duration, rttvar: Duration) -> Self {
        Estimate {
            srtt_us: micros(srtt),
            rttvar_us: micros(rttvar),
        }
    }

    pub(crate) fn srtt(&self) -> Duration {
        Duration::from_micros(u64::from(self.srtt_us))
    }

    fn rttvar(&self) -> Duration {
        Duration::from_micros(u64::from(self.rttvar_us))
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
