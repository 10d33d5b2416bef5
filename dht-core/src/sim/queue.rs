//! The simulator's one queue: every datagram in flight, node timer, restart
//! and churn step is an entry ordered by virtual time, ties broken by
//! insertion order so that a run is a function of its seed.
//!
//! The heap holds only 24-byte keys (time, sequence number, slot); the
//! entries themselves (a datagram's payload, a timer's node) stay in a slab
//! of slots reused through a free list. A heap operation moves keys about
//! log₂(n) times, so keeping what it moves small is what makes popping cheap
//! (with whole entries in the heap, `pop` was 7–8% of a 3,000-node run).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::SocketAddr;

/// Who sent a datagram: a node (its index), or any other address (rare: a
/// forged datagram from a test), boxed to keep entries small.
pub(super) enum Sender {
    Node(u32),
    Raw(Box<SocketAddr>),
}

/// Something due at a virtual instant.
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

/// A heap key; `seq` breaks ties in insertion order, which keeps runs
/// deterministic, and makes keys unique (so `slot` never decides).
#[derive(PartialEq, Eq)]
struct Key {
    /// Nanoseconds since the simulation started.
    at: u64,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Entries ordered by (time, insertion order).
#[derive(Default)]
pub(super) struct Queue {
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<Action>>,
    free: Vec<u32>,
    seq: u64,
}

impl Queue {
    /// Add `action`, due `at` nanoseconds after the start.
    pub(super) fn push(&mut self, at: u64, action: Action) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(action);
                slot
            }
            None => {
                self.slots.push(Some(action));
                // More than 2³² entries at once would not fit in memory.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.heap.push(Reverse(Key {
            at,
            seq: self.seq,
            slot,
        }));
    }

    /// When the next entry is due.
    pub(super) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(key)| key.at)
    }

    /// The next entry and when it is due.
    pub(super) fn pop(&mut self) -> Option<(u64, Action)> {
        let Reverse(key) = self.heap.pop()?;
        let action = self.slots.get_mut(key.slot as usize)?.take()?;
        self.free.push(key.slot);
        Some((key.at, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart_node(action: Option<(u64, Action)>) -> Option<(u64, u32)> {
        match action? {
            (at, Action::Restart { node }) => Some((at, node)),
            _ => None,
        }
    }

    #[test]
    fn pops_by_time_then_insertion_order_and_reuses_slots() {
        let mut q = Queue::default();
        q.push(30, Action::Restart { node: 1 });
        q.push(10, Action::Restart { node: 2 });
        q.push(30, Action::Restart { node: 3 });
        q.push(10, Action::Restart { node: 4 });
        assert_eq!(q.next_at(), Some(10));
        assert_eq!(restart_node(q.pop()), Some((10, 2)));
        assert_eq!(restart_node(q.pop()), Some((10, 4)));
        // Freed slots are reused, order still by (time, insertion).
        q.push(20, Action::Restart { node: 5 });
        q.push(30, Action::Restart { node: 6 });
        assert_eq!(q.slots.len(), 4);
        assert_eq!(restart_node(q.pop()), Some((20, 5)));
        assert_eq!(restart_node(q.pop()), Some((30, 1)));
        assert_eq!(restart_node(q.pop()), Some((30, 3)));
        assert_eq!(restart_node(q.pop()), Some((30, 6)));
        assert!(q.pop().is_none());
        assert!(q.heap.is_empty());
    }
}
