//! Anti-amplification: a node never answers an address that has not proven
//! it receives with more than 3× the bytes it sent (QUIC's rule, RFC 9000
//! §8), so a spoofed source cannot turn the node into a reflector.
//!
//! An address is *verified* once it answered one of our RPCs there. To an
//! unverified address, a list of contacts is cut to what fits the budget (the
//! closest ones; the lookup asking still progresses) and a ping checks the
//! address so that later answers are whole. An answer that cannot be cut (a
//! value) waits for that ping: one extra round trip on first contact only
//! (Python `kademlia` peers answer pings, so mixed networks keep working).
//! Waiting answers are bounded per address and in all, and dropped if the
//! ping goes unanswered.
//!
//! A verified address that answered a ping also proved which node id lives
//! there: later answers from it are credited to that id without another
//! ping, as long as the address stays verified.
//!
//! Loopback and private addresses are exempt unless `strict_local` is set:
//! a reflector needs a spoofed source, and on those ranges the attacker
//! would already share the host or the LAN.

use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::contact::is_local;
use crate::id::NodeId;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::peer_key::{PeerKey, PeerKeys, PeerMap};

/// The most an unverified address gets back, per byte it sent.
pub const AMPLIFICATION_FACTOR: usize = 3;
/// How long an address stays verified after it last answered us.
const VERIFIED_FOR: Duration = Duration::from_secs(3600);
/// Most verified addresses remembered; past that, expired ones are dropped
/// and then the table starts afresh (re-verifying costs one round trip).
const MAX_VERIFIED: usize = 65_536;
/// How long an address whose verification ping went unanswered is left
/// alone before it may be pinged again.
const RETRY_AFTER: Duration = Duration::from_secs(300);
/// Answers waiting for one address, and in all.
const MAX_WAITING_PER_ADDR: usize = 4;
const MAX_WAITING: usize = 1024;

/// What an address proved, and when it last answered us: 8 bytes, as
/// there is one for every peer that answered within [`VERIFIED_FOR`].
#[derive(Clone, Copy)]
struct Verified {
    /// Whole seconds after the table's epoch (see [`AddressValidation::secs`]).
    at: u32,
    /// The id it answered a ping with, if it did: 32 bits of the id's
    /// [`PeerKey`], 4 bytes where the key takes 8 (with padding, a third of
    /// the table). The key is a secret of this node's, so a third party
    /// claiming another id at this address matches it by chance only, one
    /// in 2³², and each try costs a datagram.
    id: Option<NonZeroU32>,
}

/// The 32 bits of `key` kept as a [`Verified::id`].
fn id_tag(key: PeerKey) -> NonZeroU32 {
    NonZeroU32::new(key.low_bits()).unwrap_or(NonZeroU32::MIN)
}

/// Whether an entry is still verified at `secs` after the epoch.
fn fresh_at(v: &Verified, secs: u32) -> bool {
    u64::from(secs.saturating_sub(v.at)) < VERIFIED_FOR.as_secs()
}

/// Addresses are kept as [`PeerKey`]s: these tables hold every peer that
/// answered us, and a `SocketAddr` is 32 bytes.
#[derive(Default)]
pub struct AddressValidation {
    /// Apply the rule to loopback and private addresses too.
    strict_local: bool,
    /// When the first address was verified: entries count seconds from it.
    epoch: Option<Instant>,
    keys: PeerKeys,
    verified: PeerMap<Verified>,
    waiting: PeerMap<Vec<Vec<u8>>>,
    waiting_total: usize,
    /// Addresses with a verification ping in flight.
    pinging: PeerMap<()>,
    /// Addresses whose verification ping went unanswered, and when: they
    /// are not pinged again for a while (a spoofed source would otherwise
    /// draw one ping per request).
    failed_at: PeerMap<Instant>,
    /// Answers dropped because too many were waiting or the address never
    /// answered its ping.
    pub dropped: u64,
}

/// What to do with an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Send(Vec<u8>),
    /// Held until the address answers a ping; `ping` says whether one must
    /// be sent (none is in flight for the address yet).
    Held { ping: bool },
    /// Dropped: too many answers waiting.
    Dropped,
}

impl AddressValidation {
    pub fn new(strict_local: bool) -> Self {
        AddressValidation {
            strict_local,
            ..Default::default()
        }
    }

    /// Free the tables a burst left empty (see [`crate::idle_memory`]).
    pub fn release_idle_memory(&mut self) {
        self.waiting.release_if_empty();
        self.pinging.release_if_empty();
        self.failed_at.release_if_empty();
    }

    pub fn is_verified(&self, addr: &SocketAddr, now: Instant) -> bool {
        (!self.strict_local && is_local(&addr.ip()))
            || self
                .verified
                .get(&self.keys.addr(addr))
                .is_some_and(|v| self.is_fresh(v, now))
    }

    /// Seconds from the epoch to `now` (0 before it is set).
    fn secs(&self, now: Instant) -> u32 {
        self.epoch
            .map_or(0, |epoch| crate::stored_contact::seconds_since(epoch, now))
    }

    fn is_fresh(&self, v: &Verified, now: Instant) -> bool {
        fresh_at(v, self.secs(now))
    }

    /// Whether `addr` answered a ping with `id` and has answered us within
    /// the verified period (loopback included: this is about ids, not
    /// amplification).
    pub fn proves(&self, addr: &SocketAddr, id: &NodeId, now: Instant) -> bool {
        let id = id_tag(self.keys.id(id));
        self.verified
            .get(&self.keys.addr(addr))
            .is_some_and(|v| v.id == Some(id) && self.is_fresh(v, now))
    }

    /// `addr`, which just answered (see [`AddressValidation::verified`]),
    /// answered a ping with `id`.
    pub fn proved_id(&mut self, addr: &SocketAddr, id: NodeId) {
        let id = id_tag(self.keys.id(&id));
        if let Some(v) = self.verified.get_mut(&self.keys.addr(addr)) {
            v.id = Some(id);
        }
    }

    /// The most bytes an answer to a request of `request_len` bytes from
    /// `to` may have now.
    pub fn budget(&self, to: &SocketAddr, request_len: usize, now: Instant) -> usize {
        if self.is_verified(to, now) {
            usize::MAX
        } else {
            request_len.saturating_mul(AMPLIFICATION_FACTOR)
        }
    }

    /// Whether a verification ping should go to `addr` now (none in flight,
    /// none failed lately); records that one goes.
    pub fn start_ping(&mut self, addr: SocketAddr, now: Instant) -> bool {
        let key = self.keys.addr(&addr);
        if self.pinging.len() >= MAX_WAITING && !self.pinging.contains_key(&key) {
            return false;
        }
        if let Some(at) = self.failed_at.get(&key) {
            if now.saturating_duration_since(*at) < RETRY_AFTER {
                return false;
            }
            self.failed_at.remove(&key);
        }
        self.pinging.insert(key, ()).is_none()
    }

    /// `addr` answered one of our RPCs at `now`. Returns the answers that
    /// were waiting for it, to send now.
    pub fn verified(&mut self, addr: SocketAddr, now: Instant) -> Vec<Vec<u8>> {
        let key = self.keys.addr(&addr);
        self.pinging.remove(&key);
        self.epoch.get_or_insert(now);
        let at = self.secs(now);
        if self.verified.len() >= MAX_VERIFIED && !self.verified.contains_key(&key) {
            self.verified.retain(|_, v| fresh_at(v, at));
            if self.verified.len() >= MAX_VERIFIED {
                self.verified.clear();
            }
        }
        match self.verified.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().at = at,
            Entry::Vacant(e) => {
                e.insert(Verified { at, id: None });
            }
        }
        if self.waiting.is_empty() {
            return Vec::new(); // the common case: no answer was held
        }
        self.take_waiting(key)
    }

    /// The ping checking `addr` went unanswered: its answers are dropped.
    pub fn failed(&mut self, addr: &SocketAddr, now: Instant) {
        let key = self.keys.addr(addr);
        self.pinging.remove(&key);
        if self.failed_at.len() >= MAX_VERIFIED {
            self.failed_at.clear();
        }
        self.failed_at.insert(key, now);
        let dropped = self.take_waiting(key).len();
        self.dropped += dropped as u64;
    }

    /// Decide on `answer` to a request of `request_len` bytes from `to`.
    pub fn admit(
        &mut self,
        to: SocketAddr,
        request_len: usize,
        answer: Vec<u8>,
        now: Instant,
    ) -> Admit {
        if answer.len() <= request_len.saturating_mul(AMPLIFICATION_FACTOR)
            || self.is_verified(&to, now)
        {
            return Admit::Send(answer);
        }
        let key = self.keys.addr(&to);
        let queue = self.waiting.entry(key).or_default();
        if queue.len() >= MAX_WAITING_PER_ADDR || self.waiting_total >= MAX_WAITING {
            if queue.is_empty() {
                self.waiting.remove(&key);
            }
            self.dropped += 1;
            return Admit::Dropped;
        }
        queue.push(answer);
        self.waiting_total += 1;
        let ping = self.start_ping(to, now);
        Admit::Held { ping }
    }

    fn take_waiting(&mut self, key: PeerKey) -> Vec<Vec<u8>> {
        let answers = self.waiting.remove(&key).unwrap_or_default();
        self.waiting_total -= answers.len();
        answers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn large_answers_wait_for_a_verified_address() {
        let now = Instant::now();
        let mut v = AddressValidation::new(false);
        let spoofed: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        assert_eq!(
            v.admit(spoofed, 50, vec![0; 150], now),
            Admit::Send(vec![0; 150])
        );
        assert_eq!(
            v.admit(spoofed, 50, vec![1; 151], now),
            Admit::Held { ping: true }
        );
        assert_eq!(
            v.admit(spoofed, 50, vec![2; 500], now),
            Admit::Held { ping: false }
        );
        // The ping is never answered (the source was spoofed): nothing goes out.
        v.failed(&spoofed, now);
        assert_eq!(v.dropped, 2);
        // Loopback is exempt unless strict.
        let lo: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert!(matches!(v.admit(lo, 50, vec![0; 900], now), Admit::Send(_)));
        let mut strict = AddressValidation::new(true);
        assert!(matches!(
            strict.admit(lo, 50, vec![0; 900], now),
            Admit::Held { .. }
        ));
        // A real peer answers: what waited goes out, and later answers at once.
        let real: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        assert_eq!(
            v.admit(real, 50, vec![3; 900], now),
            Admit::Held { ping: true }
        );
        assert_eq!(v.verified(real, now), vec![vec![3; 900]]);
        assert_eq!(
            v.admit(real, 50, vec![4; 900], now),
            Admit::Send(vec![4; 900])
        );
        assert!(!v.is_verified(&real, now + VERIFIED_FOR));
    }

    #[test]
    fn an_address_proves_only_the_id_it_answered_a_ping_with() {
        let now = Instant::now();
        let mut v = AddressValidation::new(false);
        let addr: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        let (x, y) = (NodeId([1; 20]), NodeId([2; 20]));
        // Not before it answered at all, nor for an id before a ping said it.
        v.proved_id(&addr, x);
        assert!(!v.proves(&addr, &x, now));
        v.verified(addr, now);
        assert!(!v.proves(&addr, &x, now));
        v.proved_id(&addr, x);
        assert!(v.proves(&addr, &x, now));
        assert!(
            !v.proves(&addr, &y, now),
            "a third party's claim is not credited"
        );
        // Any answer keeps it fresh; a later ping with another id replaces it.
        v.verified(addr, now + VERIFIED_FOR / 2);
        assert!(v.proves(&addr, &x, now + VERIFIED_FOR));
        assert!(!v.proves(&addr, &x, now + VERIFIED_FOR / 2 + VERIFIED_FOR));
        v.proved_id(&addr, y);
        assert!(!v.proves(&addr, &x, now + VERIFIED_FOR / 2));
        assert!(v.proves(&addr, &y, now + VERIFIED_FOR / 2));
    }

    #[test]
    fn waiting_answers_are_bounded() {
        let now = Instant::now();
        let mut v = AddressValidation::new(false);
        let to: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let held = (0..100)
            .filter(|_| matches!(v.admit(to, 10, vec![0; 100], now), Admit::Held { .. }))
            .count();
        assert_eq!(held, MAX_WAITING_PER_ADDR);
        let mut total = held;
        for port in 1..2000u16 {
            let a = SocketAddr::from(([203, 0, 113, 9], port));
            total += usize::from(matches!(
                v.admit(a, 10, vec![0; 100], now),
                Admit::Held { .. }
            ));
        }
        assert_eq!(total, MAX_WAITING);
    }
}
