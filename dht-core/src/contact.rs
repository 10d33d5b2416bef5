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
