//! The simulator's one queue: every datagram in flight, node timer, restart
//! and churn step is an entry ordered by virtual time, ties broken by
//! insertion order so that a run is a function of its seed. Entries move on
//! every heap operation, so they are kept small.

use std::cmp::Ordering;
use std::net::SocketAddr;

/// Who sent a datagram: a node (its index), or any other address (rare: a
/// forged datagram from a test), boxed to keep queue entries small.
pub(super) enum Sender {
    Node(u32),
    Raw(Box<SocketAddr>),
}

/// Something due at a virtual instant. Entries are moved on every heap
/// operation, so they are kept small: node indexes as `u32`, no `SocketAddr`.
pub(super) enum Action {
    Deliver {
        from: Sender,
        to: u32,
        payload: Vec<u8>,
    },
    Timer {
        node: u32,
        incarnation: u32,
    },
    Restart {
        node: u32,
    },
    /// Plan the churn of the hour starting now.
    ChurnHour {
        epoch: u64,
    },
    /// Replace one node by a fresh one.
    ChurnReplace {
        epoch: u64,
    },
}

/// A queue entry; `seq` breaks ties in insertion order, which keeps runs
/// deterministic.
pub(super) struct Due {
    /// Nanoseconds since the simulation started.
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) action: Action,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}
