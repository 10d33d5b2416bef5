//! A time-ordered queue of the simulator's entries (datagrams in flight and
//! node timers in each shard; restarts and churn steps in the control queue).
//!
//! Ties are broken by a [`Tie`] that the entry's *origin* assigns: the node
//! that sent the datagram or set the timer, and that node's own running
//! count. Nothing global decides the order, so a node's entries come out in
//! the same order however the nodes are split into shards and whichever
//! thread runs them: a run stays a function of its seed.
//!
//! The heap holds only small keys (time, tie, slot); the entries themselves
//! (a datagram's payload, a timer's node) stay in a slab of slots reused
//! through a free list. A heap operation moves keys about log₂(n) times, so
//! keeping what it moves small is what makes popping cheap (with whole
//! entries in the heap, `pop` was 7–8% of a 3,000-node run).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Who scheduled an entry and its count of entries scheduled so far: unique
/// per entry, and the same in every run of one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Tie {
    pub(super) origin: u32,
    pub(super) seq: u64,
}

/// A heap key, ordered by time then tie (`slot` never decides: ties are
/// unique).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// Nanoseconds since the simulation started.
    at: u64,
    tie: Tie,
    slot: u32,
}

/// Entries ordered by (time, tie).
pub(super) struct Queue<A> {
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<A>>,
    free: Vec<u32>,
}

impl<A> Default for Queue<A> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<A> Queue<A> {
    /// Add `action`, due `at` nanoseconds after the start.
    pub(super) fn push(&mut self, at: u64, tie: Tie, action: A) {
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
        self.heap.push(Reverse(Key { at, tie, slot }));
    }

    /// When the next entry is due.
    pub(super) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(key)| key.at)
    }

    /// The next entry and when it is due.
    pub(super) fn pop(&mut self) -> Option<(u64, A)> {
        let Reverse(key) = self.heap.pop()?;
        let action = self.slots.get_mut(key.slot as usize)?.take()?;
        self.free.push(key.slot);
        Some((key.at, action))
    }

    /// The next entry if it is due before `end` (exclusive).
    pub(super) fn pop_before(&mut self, end: u64) -> Option<(u64, A)> {
        match self.next_at() {
            Some(at) if at < end => self.pop(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tie(origin: u32, seq: u64) -> Tie {
        Tie { origin, seq }
    }

    #[test]
    fn pops_by_time_then_tie_and_reuses_slots() {
        let mut q = Queue::default();
        q.push(30, tie(2, 1), 'a');
        q.push(10, tie(1, 9), 'b');
        q.push(30, tie(1, 5), 'c');
        q.push(10, tie(1, 2), 'd');
        assert_eq!(q.next_at(), Some(10));
        assert_eq!(q.pop(), Some((10, 'd')));
        assert_eq!(q.pop(), Some((10, 'b')));
        // Freed slots are reused; order is still by (time, tie), whatever
        // the order of insertion.
        q.push(20, tie(7, 0), 'e');
        q.push(30, tie(0, 0), 'f');
        assert_eq!(q.slots.len(), 4);
        assert_eq!(q.pop_before(20), None);
        assert_eq!(q.pop_before(21), Some((20, 'e')));
        assert_eq!(q.pop(), Some((30, 'f')));
        assert_eq!(q.pop(), Some((30, 'c')));
        assert_eq!(q.pop(), Some((30, 'a')));
        assert!(q.pop().is_none());
        assert!(q.heap.is_empty());
    }
}
