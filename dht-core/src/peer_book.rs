//! What a node learned of each peer address from its answers, one 12-byte
//! record per address in one table:
//!
//! - when it last answered one of our RPCs: an address that answered at the
//!   address we sent to receives, so for [`ANSWERED_FOR`] it is *verified*
//!   (the anti-amplification rule, `amplification`);
//! - the id it proved, if it did (by answering a ping with it, or by naming
//!   it in an answer's responder-id trailer): later answers from it are
//!   credited to that id without another ping;
//! - its round-trip estimate (`rtt`).
//!
//! The RPC table updates a record at every reply it matches, before its
//! body is decoded: echoing our random message id from the address we sent
//! to proves the address receives, whatever the body says. These used to
//! be two tables (verified addresses, round-trip estimates) holding the
//! same addresses, a third of a simulated node's memory between them; one
//! key and one lookup per reply now serve both.
//!
//! Addresses are kept as `PeerKey`s: the table holds every peer that
//! answered within the hour, and a `SocketAddr` is 32 bytes. The table is a
//! sorted array (`peer_array`), 16 bytes a record with its key (it keeps 4
//! bytes of the key), where a hash table took ~41 with its empty slots: the
//! largest part of a simulated node
//! (at 10⁴ nodes, 94% of its records are of contacts in its routing table,
//! ~150 a node). At most
//! `MAX_PEERS` are kept: past that, records older than [`ANSWERED_FOR`]
//! are dropped, and if that is not enough the table starts afresh (a peer
//! then proves its address again with one round trip, and its round trips
//! are measured anew).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::id::NodeId;
use crate::peer_array::{Entry, PeerArray};
use crate::peer_key::{PeerKey, PeerKeys};
use crate::rtt::Estimate;

/// How long an address counts as verified after it last answered us.
pub const ANSWERED_FOR: Duration = Duration::from_secs(3600);
/// Most addresses remembered.
const MAX_PEERS: usize = 65_536;

#[derive(Clone, Copy, Debug)]
struct PeerRecord {
    /// Whole seconds after the book's epoch it last answered us.
    answered_at: u32,
    /// The id it proved (a ping's answer, a responder-id trailer), if it did: 32 bits of the id's
    /// [`PeerKey`], 4 bytes where the key takes 8. The key is a secret of
    /// this node's, so a third party claiming another id at this address
    /// matches it by chance only, one in 2³², and each try costs a datagram.
    id: Option<NonZeroU32>,
    rtt: Estimate,
}

#[derive(Default)]
pub struct PeerBook {
    keys: PeerKeys,
    /// When the first answer came: records count seconds from it.
    epoch: Option<Instant>,
    peers: PeerArray<PeerRecord>,
}

impl PeerBook {
    /// `addr` answered one of our RPCs at `now`; `rtt` turns its previous
    /// round-trip estimate (none before its first answer) into the new one.
    pub(crate) fn answered(
        &mut self,
        addr: &SocketAddr,
        now: Instant,
        rtt: impl FnOnce(Option<Estimate>) -> Estimate,
    ) {
        let key = self.keys.addr(addr);
        self.epoch.get_or_insert(now);
        let at = self.secs(now);
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(key) {
            self.peers.retain(|r| fresh_at(r, at));
            if self.peers.len() >= MAX_PEERS {
                self.peers.clear();
            }
        }
        match self.peers.entry(key) {
            Entry::Occupied(r) => {
                r.answered_at = at;
                r.rtt = rtt(Some(r.rtt));
            }
            Entry::Vacant(e) => {
                e.insert(PeerRecord {
                    answered_at: at,
                    id: None,
                    rtt: rtt(None),
                });
            }
        }
    }

    /// Whether `addr` answered us within [`ANSWERED_FOR`].
    pub fn answered_lately(&self, addr: &SocketAddr, now: Instant) -> bool {
        self.record(addr)
            .is_some_and(|r| fresh_at(r, self.secs(now)))
    }

    /// `addr`'s round-trip estimate, if it ever answered (and is still
    /// remembered).
    pub(crate) fn rtt(&self, addr: &SocketAddr) -> Option<Estimate> {
        self.record(addr).map(|r| r.rtt)
    }

    /// `addr`, which just answered, proved `id` (a ping's answer, a
    /// responder-id trailer).
    pub fn proved_id(&mut self, addr: &SocketAddr, id: &NodeId) {
        let tag = id_tag(self.keys.id(id));
        if let Some(r) = self.peers.get_mut(self.keys.addr(addr)) {
            r.id = Some(tag);
        }
    }

    /// Whether `addr` proved `id` and has answered us within
    /// [`ANSWERED_FOR`].
    pub fn proves(&self, addr: &SocketAddr, id: &NodeId, now: Instant) -> bool {
        let tag = id_tag(self.keys.id(id));
        self.record(addr)
            .is_some_and(|r| r.id == Some(tag) && fresh_at(r, self.secs(now)))
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn record(&self, addr: &SocketAddr) -> Option<&PeerRecord> {
        if self.peers.is_empty() {
            return None; // skip hashing: a node that never sent anything
        }
        self.peers.get(self.keys.addr(addr))
    }

    /// Seconds from the epoch to `now` (0 before it is set).
    fn secs(&self, now: Instant) -> u32 {
        self.epoch
            .map_or(0, |epoch| crate::stored_contact::seconds_since(epoch, now))
    }
}

/// The 32 bits of an id's key kept in a record.
fn id_tag(key: PeerKey) -> NonZeroU32 {
    NonZeroU32::new(key.low_bits()).unwrap_or(NonZeroU32::MIN)
}

/// Whether a record is still fresh at `secs` after the epoch.
fn fresh_at(r: &PeerRecord, secs: u32) -> bool {
    u64::from(secs.saturating_sub(r.answered_at)) < ANSWERED_FOR.as_secs()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answered(book: &mut PeerBook, addr: &SocketAddr, now: Instant) {
        book.answered(addr, now, |_| Estimate::first(Duration::from_millis(10)));
    }

    #[test]
    fn an_address_proves_only_the_id_it_answered_a_ping_with() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let addr: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        let (x, y) = (NodeId([1; 20]), NodeId([2; 20]));
        // Not before it answered at all, nor for an id before a ping said it.
        book.proved_id(&addr, &x);
        assert!(!book.proves(&addr, &x, now));
        answered(&mut book, &addr, now);
        assert!(!book.proves(&addr, &x, now));
        book.proved_id(&addr, &x);
        assert!(book.proves(&addr, &x, now));
        assert!(
            !book.proves(&addr, &y, now),
            "a third party's claim is not credited"
        );
        // Any answer keeps it fresh; a later ping with another id replaces it.
        answered(&mut book, &addr, now + ANSWERED_FOR / 2);
        assert!(book.proves(&addr, &x, now + ANSWERED_FOR));
        assert!(!book.proves(&addr, &x, now + ANSWERED_FOR / 2 + ANSWERED_FOR));
        book.proved_id(&addr, &y);
        assert!(!book.proves(&addr, &x, now + ANSWERED_FOR / 2));
        assert!(book.proves(&addr, &y, now + ANSWERED_FOR / 2));
    }

    #[test]
    fn answers_verify_for_an_hour_and_carry_the_round_trip_estimate() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let addr: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        assert!(!book.answered_lately(&addr, now));
        assert!(book.rtt(&addr).is_none());
        let mut seen = Vec::new();
        for i in 0..3u64 {
            book.answered(&addr, now, |previous| {
                seen.push(previous.is_some());
                Estimate::first(Duration::from_millis(10 * (i + 1)))
            });
        }
        assert_eq!(
            seen,
            [false, true, true],
            "each update sees the last estimate"
        );
        assert_eq!(book.rtt(&addr).unwrap().srtt(), Duration::from_millis(30));
        assert!(book.answered_lately(&addr, now + ANSWERED_FOR - Duration::from_secs(1)));
        assert!(!book.answered_lately(&addr, now + ANSWERED_FOR));
        assert_eq!(std::mem::size_of::<PeerRecord>(), 12);
    }

    /// The first of `addr(next..)` the book holds no record for: with
    /// 4-byte keys (see `peer_array`), two of 65,536 addresses share one
    /// about half the time.
    fn unknown(book: &PeerBook, next: &mut usize) -> SocketAddr {
        loop {
            let i = *next;
            *next += 1;
            let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1));
            if book.record(&addr).is_none() {
                return addr;
            }
        }
    }

    #[test]
    fn the_book_stays_bounded_and_keeps_fresh_records_first() {
        let now = Instant::now();
        let mut book = PeerBook::default();
        let mut next = 0;
        while book.len() < MAX_PEERS - 1 {
            let addr = unknown(&book, &mut next);
            answered(&mut book, &addr, now);
        }
        let later = now + ANSWERED_FOR + Duration::from_secs(1);
        let fresh = unknown(&book, &mut next);
        answered(&mut book, &fresh, later);
        assert_eq!(book.len(), MAX_PEERS);
        // Full: the stale ones go, the fresh one stays.
        let newcomer = unknown(&book, &mut next);
        answered(&mut book, &newcomer, later);
        assert_eq!(book.len(), 2);
        assert!(book.answered_lately(&fresh, later));
        assert!(book.answered_lately(&newcomer, later));
        // Full of fresh records: it starts afresh.
        for _ in 0..MAX_PEERS {
            let addr = unknown(&book, &mut next);
            answered(&mut book, &addr, later);
        }
        assert!(book.len() <= MAX_PEERS, "{}", book.len());
        assert!(!book.is_empty());
    }
}
