//! A contact as the routing table stores it: 40 bytes instead of the 72 of
//! a [`Contact`] with its bookkeeping (`SocketAddr` takes 32 bytes even for
//! IPv4, an `Instant` 16).
//!
//! A node holds a few hundred of them, and a simulation of 10⁵–10⁶ nodes
//! holds that many times over, so the routing table is where a simulated
//! node's memory goes. IPv4 addresses are kept inline; IPv6 ones, rare in
//! practice, in a box. When the contact was last heard from is kept in whole
//! seconds since the table was created, enough for what it is used for
//! (nothing orders by it: a bucket's order is its order of recency).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use crate::contact::Contact;
use crate::id::NodeId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredContact {
    pub(crate) id: NodeId,
    ip4: [u8; 4],
    port: u16,
    /// Consecutive RPCs this contact failed to answer (saturating).
    pub(crate) failures: u16,
    /// Seconds after the table's creation it was last heard from (saturating).
    seen: u32,
    /// The address when it is IPv6 (`ip4` and `port` are then unused).
    v6: Option<Box<SocketAddrV6>>,
}

impl StoredContact {
    pub(crate) fn new(contact: &Contact, seen_at: Instant, epoch: Instant) -> Self {
        let (ip4, port, v6) = match contact.addr {
            SocketAddr::V4(v4) => (v4.ip().octets(), v4.port(), None),
            SocketAddr::V6(v6) => ([0; 4], 0, Some(Box::new(v6))),
        };
        StoredContact {
            id: contact.id,
            ip4,
            port,
            failures: 0,
            seen: seconds_since(epoch, seen_at),
            v6,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        match &self.v6 {
            Some(v6) => SocketAddr::V6(**v6),
            None => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(self.ip4), self.port)),
        }
    }

    pub(crate) fn ip(&self) -> IpAddr {
        match &self.v6 {
            Some(v6) => IpAddr::V6(*v6.ip()),
            None => IpAddr::V4(Ipv4Addr::from(self.ip4)),
        }
    }

    pub(crate) fn contact(&self) -> Contact {
        Contact::new(self.id, self.addr())
    }

    pub(crate) fn last_seen(&self, epoch: Instant) -> Instant {
        epoch + Duration::from_secs(u64::from(self.seen))
    }

    pub(crate) fn heard_from(&mut self, now: Instant, epoch: Instant) {
        self.failures = 0;
        self.seen = seconds_since(epoch, now);
    }

    pub(crate) fn set_seen(&mut self, at: Instant, epoch: Instant) {
        self.seen = seconds_since(epoch, at);
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
        let id = NodeId([7; 20]);
        let scoped = SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 9, 3);
        let addrs = [
            "10.1.2.3:4000".parse().unwrap(),
            SocketAddr::V6(scoped),
            "[::ffff:1.2.3.4]:1".parse().unwrap(),
        ];
        for addr in addrs {
            let c = Contact::new(id, addr);
            let s = StoredContact::new(&c, epoch + Duration::from_millis(2500), epoch);
            assert_eq!(s.contact(), c);
            assert_eq!(s.ip(), addr.ip());
            assert_eq!(s.last_seen(epoch), epoch + Duration::from_secs(2));
        }
        assert_eq!(std::mem::size_of::<StoredContact>(), 40);
    }
}
