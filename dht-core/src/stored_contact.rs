//! A contact as the routing table stores it: 12 bytes instead of the 72 of
//! a [`Contact`] with its bookkeeping (`SocketAddr` takes 32 bytes even for
//! IPv4, an `Instant` 16).
//!
//! A node holds a few hundred of them, and a simulation of 10⁵–10⁶ nodes
//! holds that many times over, so the routing table is where a simulated
//! node's memory goes. A stored contact keeps the first 4 bytes of its id,
//! which order contacts by distance and tell them apart (the rest is read
//! only on a tie: two ids of a table share their first 32 bits one pair in
//! 2³² unless one was chosen to match another, and even the contacts of the
//! bucket nearest our id, which share its first ~20 bits at 10⁶ nodes, tie
//! one pair in ~4,000), and a number saying where the rest of the id and
//! the address are:
//!
//! - in the table's [`ContactDirectory`], if it has one and the contact is
//!   in it: a simulated network numbers its nodes, so the id and address of
//!   each are kept once for the whole network (or computed) instead of once
//!   in every table that holds it, and the contact takes no slot;
//! - otherwise in a slot of the table's own [`ContactBook`] (24 bytes, and
//!   an IPv6 address, rare in practice, in a map beside it by slot): a UDP
//!   node, which has no directory, keeps 36 bytes a contact (the 3 bytes of
//!   id the shorter head gave up moved to the slot, so it saves nothing).
//!
//! When the contact was last heard from is kept in whole seconds since the
//! table was created, enough for what it is used for (nothing orders by it:
//! a bucket's order is its order of recency), in 28 bits (8.5 years; a
//! node up longer takes every contact for one last heard from then, so the
//! maintenance tick checks each quiet one again), and
//! its missed replies in the 4 bits beside them (counts saturate at 15, and
//! so does `max_failures`). With a byte of failures and 4 bytes of time the
//! contact took 16 bytes: the 4 saved are a quarter of every contact a
//! simulated node holds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contact::Contact;
use crate::directory::ContactDirectory;
use crate::id::{Distance, NodeId, ID_LEN};

/// Bytes of the id kept in the contact itself (with the fields beside it,
/// 12 bytes in all).
const HEAD: usize = 4;
/// Set in [`StoredContact::at`] for a slot of the book's own; clear for a
/// directory number.
const LOCAL: u32 = 1 << 31;

/// Neither `Clone` nor `PartialEq`: the rest of a contact is in its table's
/// book, in a slot freed when the contact leaves, so a copy outliving it
/// would read another contact's.
#[derive(Debug)]
pub(crate) struct StoredContact {
    /// The first bytes of the id.
    head: [u8; HEAD],
    /// A directory number, or `LOCAL` and a slot of the book.
    at: u32,
    /// Seconds after the table's creation it was last heard from, in the
    /// high 28 bits, and the consecutive RPCs it failed to answer in the low
    /// 4 (both saturating).
    seen_and_failures: u32,
}

/// Bits of [`StoredContact::seen_and_failures`] counting failures.
const FAILURE_BITS: u32 = 4;
/// The most failures counted: more count as this many.
pub(crate) const MAX_FAILURES_COUNTED: u8 = (1 << FAILURE_BITS) - 1;
/// The latest last-seen time kept, in seconds after the table's epoch.
const MAX_SEEN_SECS: u32 = u32::MAX >> FAILURE_BITS;

/// What a slot holds: the rest of the id, and the IPv4 address and port
/// (unused when `v6` is set: the address is in [`ContactBook::v6`]).
#[derive(Clone, Copy, Debug)]
struct Slot {
    tail: [u8; ID_LEN - HEAD],
    ip4: [u8; 4],
    port: u16,
    v6: bool,
}

/// Where a table's stored contacts keep what they do not hold themselves.
#[derive(Debug, Default)]
pub(crate) struct ContactBook {
    directory: Option<Arc<dyn ContactDirectory>>,
    slots: Vec<Slot>,
    /// Slots of contacts that left, reused first.
    free: Vec<u32>,
    /// The IPv6 addresses of the contacts held, by slot: made at the first
    /// (a node rarely holds one; an empty map would take 48 bytes).
    #[allow(clippy::box_collection)] // 8 bytes while absent, not 48
    v6: Option<Box<HashMap<u32, SocketAddrV6>>>,
}

impl ContactBook {
    pub(crate) fn with_directory(directory: Arc<dyn ContactDirectory>) -> Self {
        ContactBook {
            directory: Some(directory),
            ..ContactBook::default()
        }
    }

    /// `contact`, as stored from now on, last heard from at `seen_at`.
    pub(crate) fn store(
        &mut self,
        contact: &Contact,
        seen_at: Instant,
        epoch: Instant,
    ) -> StoredContact {
        let mut head = [0; HEAD];
        head.copy_from_slice(&contact.id.0[..HEAD]);
        let listed = self
            .directory
            .as_ref()
            .and_then(|d| d.number_of(contact))
            .filter(|n| n & LOCAL == 0);
        let at = match listed {
            Some(number) => number,
            None => LOCAL | self.take_slot(contact),
        };
        StoredContact {
            head,
            at,
            seen_and_failures: pack(seconds_since(epoch, seen_at), 0),
        }
    }

    fn take_slot(&mut self, contact: &Contact) -> u32 {
        let mut tail = [0; ID_LEN - HEAD];
        tail.copy_from_slice(&contact.id.0[HEAD..]);
        let (ip4, port, v6) = match contact.addr {
            SocketAddr::V4(v4) => (v4.ip().octets(), v4.port(), false),
            SocketAddr::V6(_) => ([0; 4], 0, true),
        };
        let slot = Slot {
            tail,
            ip4,
            port,
            v6,
        };
        let index = match self.free.pop() {
            Some(free) => {
                self.slots[free as usize] = slot;
                free
            }
            None => {
                // A table holds at most 4k entries and a few replacements in
                // a bucket, 161 buckets: far below LOCAL slots.
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        if let SocketAddr::V6(v6) = contact.addr {
            self.v6.get_or_insert_with(Box::default).insert(index, v6);
        }
        index
    }

    /// Free what `stored`, leaving the table, kept here.
    pub(crate) fn forget(&mut self, stored: &StoredContact) {
        if let Some(slot) = stored.slot() {
            if let Some(map) = self.v6.as_deref_mut() {
                map.remove(&slot);
            }
            self.free.push(slot);
        }
    }

    #[inline]
    pub(crate) fn contact(&self, stored: &StoredContact) -> Contact {
        match stored.slot() {
            None => self.listed(stored.at),
            Some(slot) => {
                let s = &self.slots[slot as usize];
                Contact::new(self.id_in(stored, s), self.slot_addr(slot, s))
            }
        }
    }

    #[inline]
    pub(crate) fn id(&self, stored: &StoredContact) -> NodeId {
        match stored.slot() {
            None => self.listed(stored.at).id,
            Some(slot) => self.id_in(stored, &self.slots[slot as usize]),
        }
    }

    #[inline]
    pub(crate) fn addr(&self, stored: &StoredContact) -> SocketAddr {
        match stored.slot() {
            None => match &self.directory {
                Some(d) => d.addr(stored.at),
                None => self.listed(stored.at).addr,
            },
            Some(slot) => self.slot_addr(slot, &self.slots[slot as usize]),
        }
    }

    pub(crate) fn ip(&self, stored: &StoredContact) -> IpAddr {
        self.addr(stored).ip()
    }

    /// Whether `stored` is `id`: the head decides, unless it matches.
    #[inline]
    pub(crate) fn is(&self, stored: &StoredContact, id: &NodeId) -> bool {
        stored.head == id.0[..HEAD] && self.id(stored) == *id
    }

    /// Bit `i` of the id (0 is the most significant).
    #[inline]
    pub(crate) fn bit(&self, stored: &StoredContact, i: usize) -> bool {
        if i < HEAD * 8 {
            (stored.head[i / 8] >> (7 - (i % 8))) & 1 == 1
        } else {
            self.id(stored).bit(i)
        }
    }

    fn id_in(&self, stored: &StoredContact, slot: &Slot) -> NodeId {
        let mut id = [0; ID_LEN];
        id[..HEAD].copy_from_slice(&stored.head);
        id[HEAD..].copy_from_slice(&slot.tail);
        NodeId(id)
    }

    fn slot_addr(&self, index: u32, slot: &Slot) -> SocketAddr {
        if slot.v6 {
            return self.v6_addr(index);
        }
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(slot.ip4), slot.port))
    }

    #[cold]
    #[inline(never)]
    fn v6_addr(&self, slot: u32) -> SocketAddr {
        let v6 = self.v6.as_deref().and_then(|map| map.get(&slot)).copied();
        debug_assert!(v6.is_some(), "IPv6 contact missing from the book");
        SocketAddr::V6(v6.unwrap_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)))
    }

    /// The contact the directory lists as `number` (only numbers it gave).
    #[inline]
    fn listed(&self, number: u32) -> Contact {
        match &self.directory {
            Some(d) => d.contact(number),
            // Unreachable: numbers come only from a directory.
            None => Contact::new(NodeId([0; ID_LEN]), SocketAddr::from(([0, 0, 0, 0], 0))),
        }
    }

    /// Slots in use (entries and replacements not in the directory).
    #[cfg(test)]
    pub(crate) fn slots_held(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    #[cfg(test)]
    pub(crate) fn v6_held(&self) -> usize {
        self.v6.as_deref().map_or(0, HashMap::len)
    }
}

impl StoredContact {
    fn slot(&self) -> Option<u32> {
        (self.at & LOCAL != 0).then_some(self.at & !LOCAL)
    }

    /// The first 32 bits of the id's distance to `target`, as the high bits
    /// of a `u64` (equal heads tell nothing: compare the whole distances).
    #[inline]
    pub(crate) fn distance_head(&self, target: &NodeId) -> u64 {
        let (mut ours, mut theirs) = ([0; 8], [0; 8]);
        ours[..HEAD].copy_from_slice(&self.head);
        theirs[..HEAD].copy_from_slice(&target.0[..HEAD]);
        u64::from_be_bytes(ours) ^ u64::from_be_bytes(theirs)
    }

    /// `distance` cut to what [`StoredContact::distance_head`] gives, to
    /// compare the two.
    pub(crate) fn head_of(distance: &Distance) -> u64 {
        let mut head = [0; 8];
        head[..HEAD].copy_from_slice(&distance.0[..HEAD]);
        u64::from_be_bytes(head)
    }

    pub(crate) fn last_seen(&self, epoch: Instant) -> Instant {
        epoch + Duration::from_secs(u64::from(self.seen_secs()))
    }

    fn seen_secs(&self) -> u32 {
        self.seen_and_failures >> FAILURE_BITS
    }

    /// Consecutive RPCs this contact failed to answer (at most
    /// [`MAX_FAILURES_COUNTED`]).
    pub(crate) fn failures(&self) -> u8 {
        (self.seen_and_failures & u32::from(MAX_FAILURES_COUNTED)) as u8
    }

    /// One more missed reply; returns the count.
    pub(crate) fn add_failure(&mut self) -> u8 {
        let failures = (self.failures() + 1).min(MAX_FAILURES_COUNTED);
        self.seen_and_failures = pack(self.seen_secs(), failures);
        failures
    }

    pub(crate) fn clear_failures(&mut self) {
        self.seen_and_failures = pack(self.seen_secs(), 0);
    }

    pub(crate) fn heard_from(&mut self, now: Instant, epoch: Instant) {
        self.seen_and_failures = pack(seconds_since(epoch, now), 0);
    }

    /// Set the last-seen time, in seconds after the table's epoch.
    pub(crate) fn set_seen_secs(&mut self, secs: u32) {
        self.seen_and_failures = pack(secs, self.failures());
    }

    /// Take `other`'s last-seen time.
    pub(crate) fn seen_as(&mut self, other: &StoredContact) {
        self.set_seen_secs(other.seen_secs());
    }
}

/// A last-seen time and a failure count in one word, each saturating.
fn pack(seen_secs: u32, failures: u8) -> u32 {
    seen_secs.min(MAX_SEEN_SECS) << FAILURE_BITS | u32::from(failures.min(MAX_FAILURES_COUNTED))
}

/// Whole seconds from `epoch` to `at`, saturating: compact timestamps.
pub(crate) fn seconds_since(epoch: Instant, at: Instant) -> u32 {
    u32::try_from(at.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Lists node `n` as id `[n + 1; 20]` at 10.0.0.n:4000.
    #[derive(Debug)]
    struct Numbered;

    impl ContactDirectory for Numbered {
        fn number_of(&self, contact: &Contact) -> Option<u32> {
            let SocketAddr::V4(v4) = contact.addr else {
                return None;
            };
            let n = v4.ip().octets()[3];
            (contact == &self.contact(u32::from(n))).then_some(u32::from(n))
        }

        fn contact(&self, number: u32) -> Contact {
            let n = number as u8;
            Contact::new(NodeId([n + 1; 20]), SocketAddr::from(([10, 0, 0, n], 4000)))
        }
    }

    #[test]
    fn round_trips_both_families_and_stays_small() {
        let epoch = Instant::now();
        let scoped = SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 9, 3);
        let addrs = [
            "10.1.2.3:4000".parse().unwrap(),
            SocketAddr::V6(scoped),
            "[::ffff:1.2.3.4]:1".parse().unwrap(),
        ];
        let mut book = ContactBook::default();
        let stored: Vec<(Contact, StoredContact)> = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let mut id = [i as u8; 20];
                id[19] = 0xee; // a tail that differs from the head
                let c = Contact::new(NodeId(id), *addr);
                let s = book.store(&c, epoch + Duration::from_millis(2500), epoch);
                (c, s)
            })
            .collect();
        for (c, s) in &stored {
            assert_eq!(book.contact(s), *c);
            assert_eq!(book.id(s), c.id);
            assert!(book.is(s, &c.id));
            assert_eq!(book.ip(s), c.addr.ip());
            assert_eq!(s.last_seen(epoch), epoch + Duration::from_secs(2));
            for bit in 0..160 {
                assert_eq!(book.bit(s, bit), c.id.bit(bit));
            }
        }
        assert_eq!(book.v6_held(), 2, "only IPv6 addresses go into the map");
        for (_, s) in &stored {
            book.forget(s);
        }
        assert_eq!((book.slots_held(), book.v6_held()), (0, 0));
        assert_eq!(std::mem::size_of::<StoredContact>(), 12);
    }

    #[test]
    fn failures_and_last_seen_share_a_word_and_saturate_apart() {
        let epoch = Instant::now();
        let mut book = ContactBook::default();
        let c = Contact::new(NodeId([3; 20]), "192.0.2.1:1".parse().unwrap());
        let mut s = book.store(&c, epoch + Duration::from_secs(77), epoch);
        for n in 1..=20u8 {
            assert_eq!(s.add_failure(), n.min(MAX_FAILURES_COUNTED));
        }
        assert_eq!(s.last_seen(epoch), epoch + Duration::from_secs(77));
        s.clear_failures();
        assert_eq!(s.failures(), 0);
        s.add_failure();
        s.set_seen_secs(u32::MAX);
        let latest = epoch + Duration::from_secs(u64::from(MAX_SEEN_SECS));
        assert_eq!((s.failures(), s.last_seen(epoch)), (1, latest));
        const { assert!(MAX_SEEN_SECS > 8 * 365 * 24 * 3600, "years of uptime fit") };
        s.heard_from(epoch + Duration::from_secs(5), epoch);
        assert_eq!(
            (s.failures(), s.last_seen(epoch)),
            (0, epoch + Duration::from_secs(5))
        );
    }

    #[test]
    fn a_listed_contact_takes_no_slot_and_anything_else_does() {
        let epoch = Instant::now();
        let mut book = ContactBook::with_directory(std::sync::Arc::new(Numbered));
        let listed = Numbered.contact(7);
        // The listed id elsewhere, and another id at the listed address.
        let moved = Contact::new(listed.id, "10.0.0.8:4000".parse().unwrap());
        let mut other_id = listed.id;
        other_id.0[19] ^= 1;
        let impostor = Contact::new(other_id, listed.addr);
        let s = book.store(&listed, epoch, epoch);
        assert_eq!(book.slots_held(), 0);
        let (m, i) = (
            book.store(&moved, epoch, epoch),
            book.store(&impostor, epoch, epoch),
        );
        assert_eq!(book.slots_held(), 2);
        for (c, s) in [(listed, &s), (moved, &m), (impostor, &i)] {
            assert_eq!(book.contact(s), c);
        }
        // Same head, different tail: told apart.
        assert!(book.is(&i, &other_id) && !book.is(&s, &other_id));
        // A freed slot is reused, and the survivor still reads right.
        book.forget(&m);
        let again = Contact::new(NodeId([0x42; 20]), "192.0.2.1:9".parse().unwrap());
        let a = book.store(&again, epoch, epoch);
        assert_eq!(book.slots_held(), 2);
        assert_eq!((book.contact(&a), book.contact(&i)), (again, impostor));
        book.forget(&s);
        assert_eq!(book.slots_held(), 2, "a listed contact frees nothing");
    }
}
