//! A contact: a node id and the UDP address it answers on.

use std::fmt;
use std::net::SocketAddr;

use crate::id::NodeId;

/// Another node of the network, as stored in routing tables and exchanged in
/// `find_node` replies (`[id, ip, port]` on the wire).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Contact {
    pub id: NodeId,
    pub addr: SocketAddr,
}

impl Contact {
    pub fn new(id: NodeId, addr: SocketAddr) -> Self {
        Contact { id, addr }
    }

    /// Whether datagrams can ever reach this address: not port 0, not an
    /// unspecified, broadcast or multicast address. Contacts that fail this
    /// are never stored, handed out or queried.
    pub fn is_usable(&self) -> bool {
        usable_addr(&self.addr)
    }
}

/// See [`Contact::is_usable`].
pub fn usable_addr(addr: &SocketAddr) -> bool {
    let ip = addr.ip();
    let broadcast = match ip {
        std::net::IpAddr::V4(v4) => v4.is_broadcast(),
        std::net::IpAddr::V6(_) => false,
    };
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", &self.id.to_hex()[..8], self.addr)
    }
}

/// Loopback, private, link-local or unique-local: addresses of a local test
/// network, exempt from per-IP limits unless `strict_local_limits` is set.
pub fn is_local(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The network an address belongs to for diversity limits: its /24 (IPv4)
/// or /64 (IPv6).
pub fn subnet(ip: &std::net::IpAddr) -> [u8; 9] {
    let mut net = [0u8; 9];
    match ip {
        std::net::IpAddr::V4(v4) => {
            net[0] = 4;
            net[1..4].copy_from_slice(&v4.octets()[..3]);
        }
        std::net::IpAddr::V6(v6) => {
            net[0] = 6;
            net[1..9].copy_from_slice(&v6.octets()[..8]);
        }
    }
    net
}

/// Whether a socket bound to `bind` can send to `to`: an IPv4 socket reaches
/// IPv4 only; an IPv6 socket bound to `::` reaches both (IPv4 through mapped
/// addresses); one bound to a specific IPv6 address reaches IPv6 only.
pub fn reachable_from(bind: &SocketAddr, to: &SocketAddr) -> bool {
    match (bind.ip(), to.ip()) {
        (std::net::IpAddr::V4(_), std::net::IpAddr::V4(_)) => true,
        (std::net::IpAddr::V6(_), std::net::IpAddr::V6(_)) => true,
        (std::net::IpAddr::V6(b), std::net::IpAddr::V4(_)) => b.is_unspecified(),
        (std::net::IpAddr::V4(_), std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().is_some(),
    }
}
