//! Anti-amplification: a node never answers an address that has not proven
//! it receives with more than 3× the bytes it sent (QUIC's rule, RFC 9000
//! §8), so a spoofed source cannot turn the node into a reflector.
//!
//! An address is *verified* once it answered one of our RPCs there, within
//! the hour (the [`PeerBook`] keeps when each address last answered). To an
//! unverified address, a list of contacts is cut to what fits the budget (the
//! closest ones; the lookup asking still progresses) and a ping checks the
//! address so that later answers are whole. An answer that cannot be cut (a
//! value) waits for that ping: one extra round trip on first contact only
//! (Python `kademlia` peers answer pings, so mixed networks keep working).
//! Waiting answers are bounded per address and in all, and dropped if the
//! ping goes unanswered.
//!
//! Loopback and private addresses are exempt unless `strict_local` is set:
//! a reflector needs a spoofed source, and on those ranges the attacker
//! would already share the host or the LAN.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::contact::is_local;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::peer_book::PeerBook;
use crate::peer_key::{PeerKey, PeerKeys, PeerMap};

/// The most an unverified address gets back, per byte it sent.
pub const AMPLIFICATION_FACTOR: usize = 3;
/// Most addresses remembered as having failed a verification ping.
const MAX_FAILED: usize = 65_536;
/// How long an address whose verification ping went unanswered is left
/// alone before it may be pinged again.
const RETRY_AFTER: Duration = Duration::from_secs(300);
/// Answers waiting for one address, and in all.
const MAX_WAITING_PER_ADDR: usize = 4;
const MAX_WAITING: usize = 1024;

/// The answers held back and the pings checking addresses. Addresses are
/// kept as `PeerKey`s (a `SocketAddr` is 32 bytes).
#[derive(Default)]
pub struct AddressValidation {
    /// Apply the rule to loopback and private addresses too.
    strict_local: bool,
    keys: PeerKeys,
    /// Made when an answer first waits, dropped when the checks are over:
    /// most nodes of a simulated network hear only from peers that answered
    /// them, and three empty tables took 96 bytes of each.
    checks: Option<Box<Checks>>,
    /// Answers dropped because too many were waiting or the address never
    /// answered its ping.
    pub dropped: u64,
}

/// The addresses being checked, and what waits for them.
#[derive(Default)]
struct Checks {
    waiting: PeerMap<Vec<Vec<u8>>>,
    waiting_total: usize,
    /// Addresses with a verification ping in flight.
    pinging: PeerMap<()>,
    /// Addresses whose verification ping went unanswered, and when: they
    /// are not pinged again for a while (a spoofed source would otherwise
    /// draw one ping per request).
    failed_at: PeerMap<Instant>,
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

    /// Free the tables a burst left empty (see `idle_memory.rs`).
    pub fn release_idle_memory(&mut self) {
        if let Some(c) = self.checks.as_deref_mut() {
            if c.waiting.is_empty() && c.pinging.is_empty() && c.failed_at.is_empty() {
                self.checks = None;
            } else {
                c.waiting.release_if_empty();
                c.pinging.release_if_empty();
                c.failed_at.release_if_empty();
            }
        }
    }

    /// Whether `addr` may get answers of any size: it answered us lately
    /// (`peers`), or the rule does not apply to it.
    pub fn is_verified(&self, peers: &PeerBook, addr: &SocketAddr, now: Instant) -> bool {
        (!self.strict_local && is_local(&addr.ip())) || peers.answered_lately(addr, now)
    }

    /// The most bytes an answer to a request of `request_len` bytes from
    /// `to` may have now.
    pub fn budget(
        &self,
        peers: &PeerBook,
        to: &SocketAddr,
        request_len: usize,
        now: Instant,
    ) -> usize {
        if self.is_verified(peers, to, now) {
            usize::MAX
        } else {
            request_len.saturating_mul(AMPLIFICATION_FACTOR)
        }
    }

    /// Whether a verification ping should go to `addr` now (none in flight,
    /// none failed lately); records that one goes.
    pub fn start_ping(&mut self, addr: SocketAddr, now: Instant) -> bool {
        let key = self.keys.addr(&addr);
        let c = self.checks.get_or_insert_with(Box::default);
        if c.pinging.len() >= MAX_WAITING && !c.pinging.contains_key(&key) {
            return false;
        }
        if let Some(at) = c.failed_at.get(&key) {
            if now.saturating_duration_since(*at) < RETRY_AFTER {
                return false;
            }
            c.failed_at.remove(&key);
        }
        c.pinging.insert(key, ()).is_none()
    }

    /// `addr` answered one of our RPCs (the [`PeerBook`] has recorded it).
    /// Returns the answers that were waiting for it, to send now.
    pub fn answered(&mut self, addr: &SocketAddr) -> Vec<Vec<u8>> {
        let Some(c) = self.checks.as_deref_mut() else {
            return Vec::new(); // the common case: nothing was checking it
        };
        if c.pinging.is_empty() && c.waiting.is_empty() {
            return Vec::new();
        }
        let key = self.keys.addr(addr);
        c.pinging.remove(&key);
        c.take_waiting(key)
    }

    /// The ping checking `addr` went unanswered: its answers are dropped.
    pub fn failed(&mut self, addr: &SocketAddr, now: Instant) {
        let key = self.keys.addr(addr);
        let c = self.checks.get_or_insert_with(Box::default);
        c.pinging.remove(&key);
        if c.failed_at.len() >= MAX_FAILED {
            c.failed_at.clear();
        }
        c.failed_at.insert(key, now);
        let dropped = c.take_waiting(key).len();
        self.dropped += dropped as u64;
    }

    /// Decide on `answer` to a request of `request_len` bytes from `to`.
    pub fn admit(
        &mut self,
        peers: &PeerBook,
        to: SocketAddr,
        request_len: usize,
        answer: Vec<u8>,
        now: Instant,
    ) -> Admit {
        if answer.len() <= request_len.saturating_mul(AMPLIFICATION_FACTOR)
            || self.is_verified(peers, &to, now)
        {
            return Admit::Send(answer);
        }
        let key = self.keys.addr(&to);
        let c = self.checks.get_or_insert_with(Box::default);
        let queue = c.waiting.entry(key).or_default();
        if queue.len() >= MAX_WAITING_PER_ADDR || c.waiting_total >= MAX_WAITING {
            if queue.is_empty() {
                c.waiting.remove(&key);
            }
            self.dropped += 1;
            return Admit::Dropped;
        }
        queue.push(answer);
        c.waiting_total += 1;
        let ping = self.start_ping(to, now);
        Admit::Held { ping }
    }
}

impl Checks {
    fn take_waiting(&mut self, key: PeerKey) -> Vec<Vec<u8>> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let answers = self.waiting.remove(&key).unwrap_or_default();
        self.waiting_total -= answers.len();
        answers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::peer_book::ANSWERED_FOR;
    use crate::rtt::Estimate;

    #[test]
    fn large_answers_wait_for_a_verified_address() {
        let now = Instant::now();
        let mut v = AddressValidation::new(false);
        let mut book = PeerBook::default();
        let spoofed: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        assert_eq!(
            v.admit(&book, spoofed, 50, vec![0; 150], now),
            Admit::Send(vec![0; 150])
        );
        assert_eq!(
            v.admit(&book, spoofed, 50, vec![1; 151], now),
            Admit::Held { ping: true }
        );
        assert_eq!(
            v.admit(&book, spoofed, 50, vec![2; 500], now),
            Admit::Held { ping: false }
        );
        // The ping is never answered (the source was spoofed): nothing goes out.
        v.failed(&spoofed, now);
        assert_eq!(v.dropped, 2);
        // Loopback is exempt unless strict.
        let lo: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert!(matches!(
            v.admit(&book, lo, 50, vec![0; 900], now),
            Admit::Send(_)
        ));
        let mut strict = AddressValidation::new(true);
        assert!(matches!(
            strict.admit(&book, lo, 50, vec![0; 900], now),
            Admit::Held { .. }
        ));
        // A real peer answers: what waited goes out, and later answers at once.
        let real: SocketAddr = "198.51.100.2:4000".parse().unwrap();
        assert_eq!(
            v.admit(&book, real, 50, vec![3; 900], now),
            Admit::Held { ping: true }
        );
        book.answered(&real, now, |_| Estimate::first(Duration::from_millis(1)));
        assert_eq!(v.answered(&real), vec![vec![3; 900]]);
        assert_eq!(
            v.admit(&book, real, 50, vec![4; 900], now),
            Admit::Send(vec![4; 900])
        );
        assert!(!v.is_verified(&book, &real, now + ANSWERED_FOR));
    }

    #[test]
    fn waiting_answers_are_bounded() {
        let now = Instant::now();
        let mut v = AddressValidation::new(false);
        let book = PeerBook::default();
        let to: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let held = (0..100)
            .filter(|_| {
                matches!(
                    v.admit(&book, to, 10, vec![0; 100], now),
                    Admit::Held { .. }
                )
            })
            .count();
        assert_eq!(held, MAX_WAITING_PER_ADDR);
        let mut total = held;
        for port in 1..2000u16 {
            let a = SocketAddr::from(([203, 0, 113, 9], port));
            total += usize::from(matches!(
                v.admit(&book, a, 10, vec![0; 100], now),
                Admit::Held { .. }
            ));
        }
        assert_eq!(total, MAX_WAITING);
    }
}
