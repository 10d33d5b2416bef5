//! A contact as the routing table stores it: 32 bytes instead of the 72 of
//! a [`Contact`] with its bookkeeping (`SocketAddr` takes 32 bytes even for
//! IPv4, an `Instant` 16).
//!
//! A node holds a few hundred of them, and a simulation of 10⁵–10⁶ nodes
//! holds that many times over, so the routing table is where a simulated
//! node's memory goes. IPv4 addresses are kept inline; IPv6 ones, rare in
//! practice, in the table's [`V6Book`], by id (a boxed address in every
//! contact would cost 8 bytes each, a quarter of the contact). When the
//! contact was last heard from is kept in whole seconds since the table was
//! created, enough for what it is used for (nothing orders by it: a bucket's
//! order is its order of recency).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use crate::contact::Contact;
use crate::id::NodeId;

/// Neither `Clone` nor `PartialEq`: an IPv6 contact's address is in its
/// table's book, so a copy outliving the contact would lose it, and two
/// contacts could compare equal at different addresses.
#[derive(Debug)]
pub(crate) struct StoredContact {
    pub(crate) id: NodeId,
    /// The IPv4 address and port; unused when `v6` is set.
    ip4: [u8; 4],
    port: u16,
    /// Consecutive RPCs this contact failed to answer (saturating).
    pub(crate) failures: u8,
    /// The address is IPv6, kept in the table's [`V6Book`] under `id`.
    v6: bool,
    /// Seconds after the table's creation it was last heard from (saturating).
    seen: u32,
}

/// The IPv6 addresses of the contacts a table holds (entries and
/// replacements), by id: a table holds an id at most once.
#[derive(Debug, Default)]
pub(crate) struct V6Book(HashMap<NodeId, SocketAddrV6>);

impl V6Book {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Forget the address of a contact leaving the table.
    pub(crate) fn forget(&mut self, stored: &StoredContact) {
        if stored.v6 {
            self.0.remove(&stored.id);
        }
    }
}

impl StoredContact {
    /// `contact`, as stored from now on (its IPv6 address, if it has one,
    /// goes into `book`).
    pub(crate) fn new(
        contact: &Contact,
        seen_at: Instant,
        epoch: Instant,
        book: &mut V6Book,
    ) -> Self {
        let (ip4, port, v6) = match contact.addr {
            SocketAddr::V4(v4) => (v4.ip().octets(), v4.port(), false),
            SocketAddr::V6(v6) => {
                book.0.insert(contact.id, v6);
                ([0; 4], 0, true)
            }
        };
        StoredContact {
            id: contact.id,
            ip4,
            port,
            failures: 0,
            v6,
            seen: seconds_since(epoch, seen_at),
        }
    }

    #[inline]
    pub(crate) fn addr(&self, book: &V6Book) -> SocketAddr {
        if self.v6 {
            return self.v6_addr(book);
        }
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(self.ip4), self.port))
    }

    /// Every IPv6 contact is in the book while the table holds it; an
    /// unspecified address (never sent to) would show a bug, not panic.
    #[cold]
    #[inline(never)]
    fn v6_addr(&self, book: &V6Book) -> SocketAddr {
        let v6 = book.0.get(&self.id).copied();
        debug_assert!(v6.is_some(), "IPv6 contact missing from the book");
        SocketAddr::V6(v6.unwrap_or(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)))
    }

    #[inline]
    pub(crate) fn ip(&self, book: &V6Book) -> IpAddr {
        if self.v6 {
            self.addr(book).ip()
        } else {
            IpAddr::V4(Ipv4Addr::from(self.ip4))
        }
    }

    #[inline]
    pub(crate) fn contact(&self, book: &V6Book) -> Contact {
        Contact::new(self.id, self.addr(book))
    }

    pub(crate) fn last_seen(&self, epoch: Instant) -> Instant {
        epoch + Duration::from_secs(u64::from(self.seen))
    }

    pub(crate) fn heard_from(&mut self, now: Instant, epoch: Instant) {
        self.failures = 0;
        self.seen = seconds_since(epoch, now);
    }

    /// Set the last-seen time, in seconds after the table's epoch.
    pub(crate) fn set_seen_secs(&mut self, secs: u32) {
        self.seen = secs;
    }

    /// Take `other`'s last-seen time.
    pub(crate) fn seen_as(&mut self, other: &StoredContact) {
        self.seen = other.seen;
    }
}

/// Whole seconds from `epoch` to `at`, saturating: compact timestamps.
pub(crate) fn seconds_since(epoch: Instant, at: Instant) -> u32 {
    u32::try_from(at.saturating_duration_since(epoch).as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_both_families_and_stays_small() {
        let epoch = Instant::now();
        let scoped = SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 9, 3);
        let addrs = [
            "10.1.2.3:4000".parse().unwrap(),
            SocketAddr::V6(scoped),
            "[::ffff:1.2.3.4]:1".parse().unwrap(),
        ];
        let mut book = V6Book::default();
        let stored: Vec<(Contact, StoredContact)> = addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let c = Contact::new(NodeId([i as u8; 20]), *addr);
                let s =
                    StoredContact::new(&c, epoch + Duration::from_millis(2500), epoch, &mut book);
                (c, s)
            })
            .collect();
        for (c, s) in &stored {
            assert_eq!(s.contact(&book), *c);
            assert_eq!(s.ip(&book), c.addr.ip());
            assert_eq!(s.last_seen(epoch), epoch + Duration::from_secs(2));
        }
        assert_eq!(book.0.len(), 2, "only IPv6 addresses go into the book");
        for (_, s) in &stored {
            book.forget(s);
        }
        assert!(book.0.is_empty());
        assert_eq!(std::mem::size_of::<StoredContact>(), 32);
    }
}
