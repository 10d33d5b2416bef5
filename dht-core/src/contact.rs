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
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", &self.id.to_hex()[..8], self.addr)
    }
}
