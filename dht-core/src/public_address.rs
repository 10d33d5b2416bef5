//! The node's public address as its peers see it, from the observed-address
//! trailers of their answers ([`crate::wire::decode_response_with_trailers`]).
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
//!
//! Votes are 12 bytes: the reported address is an index into a short list
//! of the distinct addresses reported (nearly always one, so the list
//! grows one at a time), the time a whole second since the first vote, and
//! the voter's IP 32 bits of its `PeerKey` (two voters share a vote one
//! time in 2³² per pair, and the key is secret, so no voter can aim at
//! another's). A node keeps up to 32 votes, and the
//! simulator keeps them for every node: with 56-byte votes (a `SocketAddr`
//! and an `Instant` each) they were a tenth of a simulated node's memory,
//! and 64 of 16 bytes were still 1.2 KB of a node of 18 KB. An attacker
//! needs the same share of the latest voters either way (a plurality);
//! fewer voters only make a changed address take over sooner.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::peer_key::PeerKeys;

/// Distinct peer IPs that must report the same address.
pub const MIN_AGREEING_PEERS: usize = 2;
/// Peers whose votes are kept.
pub const MAX_VOTERS: usize = 32;
/// How long a vote counts after it was cast...
pub const VOTE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// ...unless it is one of this many latest votes.
pub const KEPT_VOTES: usize = 8;

#[derive(Debug)]
struct Vote {
    /// The peer IP: the high 32 bits of its key (see [`crate::peer_key`]).
    reporter: u32,
    /// Whole seconds after the first vote (saturating).
    at: u32,
    /// Index of the reported address in [`PublicAddress::addresses`].
    observed: u16,
}

#[derive(Debug, Default)]
pub struct PublicAddress {
    keys: PeerKeys,
    /// One per peer IP, oldest first: at most [`MAX_VOTERS`], so a short
    /// list beats a hash map.
    votes: Vec<Vote>,
    /// The distinct addresses reported, some perhaps no longer voted for:
    /// unused ones are dropped once there are more than [`MAX_VOTERS`].
    addresses: Vec<SocketAddr>,
    /// Votes per address of `addresses`, kept as votes come and go: a
    /// report comes with every answer, and recounting all votes each time
    /// was 2–3% of a simulation.
    counts: Vec<u16>,
    /// When the first vote came; vote times count from it.
    epoch: Option<Instant>,
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
        let at = self.secs(now);
        self.lapse_old_votes(at);
        let reporter = self.keys.ip(&reporter).high_bits();
        if let Some(i) = self.votes.iter().position(|v| v.reporter == reporter) {
            self.remove_vote(i);
        } else if self.votes.len() >= MAX_VOTERS {
            self.remove_vote(0); // the oldest vote makes room
        }
        if self.addresses.len() > MAX_VOTERS {
            self.drop_unused_addresses();
        }
        let observed = self.intern(observed);
        self.counts[usize::from(observed)] += 1;
        self.votes.push(Vote {
            reporter,
            at,
            observed,
        });
        self.current = self.tally();
    }

    /// The public address, once enough peers agree on it.
    pub fn get(&self) -> Option<SocketAddr> {
        self.current
    }

    fn secs(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        u32::try_from(now.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
    }

    /// The index of `addr` in `addresses`, added if new. At most
    /// `MAX_VOTERS + 1` addresses are listed, so the index fits a `u16`.
    fn intern(&mut self, addr: SocketAddr) -> u16 {
        let index = match self.addresses.iter().position(|a| *a == addr) {
            Some(i) => i,
            None => {
                // One at a time: nearly always one address is reported, and
                // room for four would take 96 bytes more.
                self.addresses.reserve_exact(1);
                self.addresses.push(addr);
                self.counts.push(0);
                self.addresses.len() - 1
            }
        };
        u16::try_from(index).unwrap_or(u16::MAX)
    }

    fn remove_vote(&mut self, i: usize) {
        let vote = self.votes.remove(i);
        uncount(&mut self.counts, &vote);
    }

    /// Keep only the addresses some vote refers to (at most [`MAX_VOTERS`]).
    fn drop_unused_addresses(&mut self) {
        let mut kept: Vec<SocketAddr> = Vec::new();
        for vote in &mut self.votes {
            let addr = self.addresses[usize::from(vote.observed)];
            let index = match kept.iter().position(|a| *a == addr) {
                Some(i) => i,
                None => {
                    kept.push(addr);
                    kept.len() - 1
                }
            };
            vote.observed = u16::try_from(index).unwrap_or(u16::MAX);
        }
        self.counts = vec![0; kept.len()];
        for vote in &self.votes {
            self.counts[usize::from(vote.observed)] += 1;
        }
        self.addresses = kept;
    }

    /// Drop votes past their lifetime, except the [`KEPT_VOTES`] latest.
    fn lapse_old_votes(&mut self, now_secs: u32) {
        let lapsed = self
            .votes
            .iter()
            .take(self.votes.len().saturating_sub(KEPT_VOTES))
            .take_while(|v| u64::from(now_secs.saturating_sub(v.at)) >= VOTE_LIFETIME.as_secs())
            .count();
        for vote in self.votes.drain(..lapsed) {
            uncount(&mut self.counts, &vote);
        }
    }

    /// The most voted address with at least [`MIN_AGREEING_PEERS`] votes;
    /// of several with as many, the one whose latest vote is the latest.
    fn tally(&self) -> Option<SocketAddr> {
        let most = self.counts.iter().copied().max()?;
        if usize::from(most) < MIN_AGREEING_PEERS {
            return None;
        }
        let mut leaders = self.counts.iter().enumerate().filter(|(_, n)| **n == most);
        let first = leaders.next().map(|(i, _)| i)?;
        let winner = if leaders.next().is_none() {
            first
        } else {
            // A tie (rare): votes are oldest first.
            self.votes
                .iter()
                .rev()
                .map(|v| usize::from(v.observed))
                .find(|&i| self.counts[i] == most)?
        };
        self.addresses.get(winner).copied()
    }
}

fn uncount(counts: &mut [u16], vote: &Vote) {
    if let Some(n) = counts.get_mut(usize::from(vote.observed)) {
        *n = n.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    /// The running counts equal a recount of the votes.
    fn assert_counts_match(p: &PublicAddress) {
        let mut recount = vec![0u16; p.addresses.len()];
        for v in &p.votes {
            recount[usize::from(v.observed)] += 1;
        }
        assert_eq!(p.counts, recount);
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
        assert_counts_match(&p);
    }

    #[test]
    fn a_peer_reporting_ever_new_addresses_keeps_the_list_short() {
        let t = Instant::now();
        let me = addr("203.0.113.9:4000");
        let mut p = PublicAddress::default();
        p.report(t, ip(1), me);
        p.report(t, ip(2), me);
        for port in 1..=5000u16 {
            p.report(t, ip(66), SocketAddr::from(([198, 51, 100, 66], port)));
            assert!(p.addresses.len() <= MAX_VOTERS + 1, "{}", p.addresses.len());
        }
        assert_eq!(p.get(), Some(me));
        assert_eq!(std::mem::size_of::<Vote>(), 12);
        assert_counts_match(&p);
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
        assert_counts_match(&p);
    }
}
