//! The node's public address as its peers see it, from the observed-address
//! trailers of their answers ([`crate::wire::decode_response_observed`]).
//!
//! Each answering peer IP has one vote: the last address it reported, so a
//! peer repeating itself (or a host answering from many ports) still counts
//! once. The public address is the address with the most votes, and only
//! if at least [`MIN_AGREEING_PEERS`] distinct IPs gave it: one lying peer
//! cannot set it, nor can a NAT whose mapping differs per peer (whose
//! address would be of no use to anyone). Ties go to the most recently
//! reported address. A vote lapses after [`VOTE_LIFETIME`], unless it is one
//! of the [`KEPT_VOTES`] latest (a quiet node that asks nobody for an hour
//! keeps its address, rather than lose it to the first answer after), and
//! at most [`MAX_VOTERS`] peers vote (the oldest vote makes room): memory is
//! bounded, and a changed address (a NAT rebinding) takes over as peers
//! answer again.
//! Loopback and private addresses count like any other: a node on a LAN or
//! in a test learns its LAN or loopback address; an unspecified or multicast
//! address, from which no datagram can come, is no vote.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::peer_key::{PeerKey, PeerKeys};

/// Distinct peer IPs that must report the same address.
pub const MIN_AGREEING_PEERS: usize = 2;
/// Peers whose votes are kept.
pub const MAX_VOTERS: usize = 64;
/// How long a vote counts after it was cast...
pub const VOTE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// ...unless it is one of this many latest votes.
pub const KEPT_VOTES: usize = 8;

#[derive(Debug)]
struct Vote {
    /// The peer IP, as a key (see [`crate::peer_key`]).
    reporter: PeerKey,
    observed: SocketAddr,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct PublicAddress {
    keys: PeerKeys,
    /// One per peer IP, oldest first: at most [`MAX_VOTERS`], so a short
    /// list beats a hash map (a node keeps one of these per process, and
    /// the simulator one per node).
    votes: Vec<Vote>,
    /// The answer, recomputed on each vote.
    current: Option<SocketAddr>,
}

impl PublicAddress {
    /// Peer `reporter` answered us and saw our requests come from `observed`.
    pub fn report(&mut self, now: Instant, reporter: IpAddr, observed: SocketAddr) {
        // No datagram comes from these: the reporter is lying or broken.
        if observed.ip().is_unspecified() || observed.ip().is_multicast() {
            return;
        }
        self.lapse_old_votes(now);
        let reporter = self.keys.ip(&reporter);
        if let Some(i) = self.votes.iter().position(|v| v.reporter == reporter) {
            self.votes.remove(i);
        } else if self.votes.len() >= MAX_VOTERS {
            self.votes.remove(0); // the oldest vote makes room
        }
        if self.votes.capacity() == 0 {
            self.votes.reserve_exact(MAX_VOTERS); // never grown past it
        }
        self.votes.push(Vote {
            reporter,
            observed,
            at: now,
        });
        self.current = self.tally();
    }

    /// The public address, once enough peers agree on it.
    pub fn get(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Drop votes past their lifetime, except the [`KEPT_VOTES`] latest.
    fn lapse_old_votes(&mut self, now: Instant) {
        let lapsed = self
            .votes
            .iter()
            .take(self.votes.len().saturating_sub(KEPT_VOTES))
            .take_while(|v| now.saturating_duration_since(v.at) >= VOTE_LIFETIME)
            .count();
        self.votes.drain(..lapsed);
    }

    fn tally(&self) -> Option<SocketAddr> {
        // Per address: votes and latest report (few distinct addresses).
        let mut counts: Vec<(SocketAddr, usize, Instant)> = Vec::new();
        for vote in &self.votes {
            match counts.iter_mut().find(|(addr, ..)| *addr == vote.observed) {
                Some((_, n, latest)) => {
                    *n += 1;
                    *latest = (*latest).max(vote.at);
                }
                None => counts.push((vote.observed, 1, vote.at)),
            }
        }
        counts
            .into_iter()
            .filter(|(_, n, _)| *n >= MIN_AGREEING_PEERS)
            .max_by_key(|(_, n, latest)| (*n, *latest))
            .map(|(addr, ..)| addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn two_peers_must_agree_and_one_peer_counts_once() {
        let t = Instant::now();
        let me = addr("203.0.113.9:4000");
        let mut p = PublicAddress::default();
        p.report(t, ip(1), me);
        assert_eq!(p.get(), None, "one peer is not enough");
        for _ in 0..100 {
            p.report(t, ip(1), me);
        }
        assert_eq!(p.get(), None, "repeating does not add votes");
        p.report(t, ip(2), me);
        assert_eq!(p.get(), Some(me));
    }

    #[test]
    fn impossible_addresses_are_no_votes() {
        let t = Instant::now();
        let mut p = PublicAddress::default();
        for (i, bogus) in [
            "0.0.0.0:4000",
            "[::]:4000",
            "224.0.0.1:4000",
            "[ff02::1]:4000",
        ]
        .into_iter()
        .enumerate()
        {
            p.report(t, ip(i as u8), addr(bogus));
            p.report(t, ip(100 + i as u8), addr(bogus));
        }
        assert!(p.votes.is_empty());
        assert_eq!(p.get(), None);
    }

    #[test]
    fn a_lying_peer_is_outvoted_or_ignored() {
        let t = Instant::now();
        let (me, lie) = (addr("203.0.113.9:4000"), addr("198.51.100.66:6666"));
        let mut p = PublicAddress::default();
        p.report(t, ip(66), lie);
        p.report(t, ip(1), me);
        assert_eq!(p.get(), None, "no two peers agree yet");
        p.report(t, ip(2), me);
        for i in 0..1000 {
            p.report(t + Duration::from_millis(i), ip(66), lie);
        }
        assert_eq!(p.get(), Some(me));
    }

    #[test]
    fn the_most_reported_address_wins_then_ties_go_to_the_latest() {
        let t = Instant::now();
        let (a, b) = (addr("203.0.113.9:4000"), addr("203.0.113.9:5000"));
        let mut p = PublicAddress::default();
        for i in 1..=3 {
            p.report(t, ip(i), a);
        }
        p.report(t, ip(10), b);
        p.report(t, ip(11), b);
        assert_eq!(p.get(), Some(a), "3 votes beat 2");
        // The NAT rebinds: peers answering again move their votes.
        p.report(t + Duration::from_secs(1), ip(1), b);
        assert_eq!(p.get(), Some(b), "3 votes beat 2 the other way");
        p.report(t + Duration::from_secs(2), ip(12), a);
        assert_eq!(p.get(), Some(a), "3 against 3: the latest report wins");
    }

    #[test]
    fn a_quiet_node_keeps_its_address() {
        let t = Instant::now();
        let me = addr("203.0.113.9:4000");
        let mut p = PublicAddress::default();
        for i in 1..=20 {
            p.report(t + Duration::from_millis(u64::from(i)), ip(i), me);
        }
        let later = t + 3 * VOTE_LIFETIME;
        p.report(later, ip(100), addr("203.0.113.9:1"));
        assert_eq!(p.get(), Some(me), "the latest votes outlive their lifetime");
        assert_eq!(p.votes.len(), KEPT_VOTES + 1);
    }

    #[test]
    fn old_votes_lapse_and_voters_stay_bounded() {
        let t = Instant::now();
        let (old, new) = (addr("203.0.113.9:4000"), addr("203.0.113.9:5000"));
        let mut p = PublicAddress::default();
        for i in 1..=40 {
            p.report(t + Duration::from_millis(u64::from(i)), ip(i), old);
        }
        // After a rebinding, KEPT_VOTES new votes outweigh what is left.
        let later = t + VOTE_LIFETIME + Duration::from_secs(1);
        for i in 0..KEPT_VOTES as u8 {
            p.report(later, IpAddr::from([10, 0, 0, i]), new);
        }
        assert_eq!(p.get(), Some(new));
        for i in 0..=255u8 {
            p.report(later, IpAddr::from([10, 0, 1, i]), new);
        }
        assert_eq!(p.votes.len(), MAX_VOTERS);
        assert_eq!(p.get(), Some(new));
    }
}
