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
/// unique). 24 bytes: the tie's fields are laid out apart so that no padding
/// is heap traffic.
#[derive(PartialEq, Eq)]
struct Key {
    /// Nanoseconds since the simulation started.
    at: u64,
    seq: u64,
    origin: u32,
    slot: u32,
}

impl Key {
    fn order(&self) -> (u64, u32, u64) {
        (self.at, self.origin, self.seq)
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Entries due further than this after the last one popped wait in the far
/// heap: mostly node timers minutes ahead. The near heap then holds little
/// more than the datagrams in flight, so its pops stay in cache.
const HORIZON_NS: u64 = 1_000_000_000;

/// Entries ordered by (time, tie).
pub(super) struct Queue<A> {
    near: BinaryHeap<Reverse<Key>>,
    far: BinaryHeap<Reverse<Key>>,
    /// When the last entry popped was due.
    now: u64,
    slots: Vec<Option<A>>,
    free: Vec<u32>,
}

impl<A> Default for Queue<A> {
    fn default() -> Self {
        Queue {
            near: BinaryHeap::new(),
            far: BinaryHeap::new(),
            now: 0,
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
        let key = Reverse(Key {
            at,
            seq: tie.seq,
            origin: tie.origin,
            slot,
        });
        // Which heap only decides speed: a pop takes the earlier of both.
        if at <= self.now.saturating_add(HORIZON_NS) {
            self.near.push(key);
        } else {
            self.far.push(key);
        }
    }

    /// The heap whose first entry is the next one.
    fn first(&mut self) -> Option<&mut BinaryHeap<Reverse<Key>>> {
        match (self.near.peek(), self.far.peek()) {
            (None, None) => None,
            (Some(_), None) => Some(&mut self.near),
            (None, Some(_)) => Some(&mut self.far),
            (Some(near), Some(far)) => Some(if near >= far {
                &mut self.near // `Reverse`: the greater is the earlier
            } else {
                &mut self.far
            }),
        }
    }

    /// When the next entry is due.
    pub(super) fn next_at(&self) -> Option<u64> {
        let at = |heap: &BinaryHeap<Reverse<Key>>| heap.peek().map(|Reverse(key)| key.at);
        match (at(&self.near), at(&self.far)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next entry and when it is due.
    pub(super) fn pop(&mut self) -> Option<(u64, A)> {
        let Reverse(key) = self.first()?.pop()?;
        let action = self.slots.get_mut(key.slot as usize)?.take()?;
        self.free.push(key.slot);
        self.now = key.at;
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
        assert!(q.near.is_empty() && q.far.is_empty());
    }

    /// Entries beyond the horizon wait in the far heap, and the order is
    /// the same as with one heap.
    #[test]
    fn near_and_far_entries_come_out_in_one_order() {
        let mut q = Queue::default();
        let mut expected = Vec::new();
        let mut state = 12345u64;
        for i in 0..2000u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Due from now to ten horizons ahead, many at the same instant.
            let at = (state >> 33) % (10 * HORIZON_NS) / 1_000_000 * 1_000_000;
            let t = tie(i % 7, u64::from(i));
            q.push(at, t, i);
            expected.push((at, t, i));
        }
        assert!(!q.near.is_empty() && !q.far.is_empty());
        expected.sort();
        let mut got = Vec::new();
        while let Some((at, i)) = q.pop() {
            got.push((at, i));
            // Pushed while popping: lands in the near heap now.
            if i < 10_000 && i % 100 == 0 {
                let t = tie(9, u64::from(i));
                q.push(at + 5, t, 10_000 + i);
                expected.push((at + 5, t, 10_000 + i));
                expected.sort();
            }
        }
        let want: Vec<(u64, u32)> = expected.iter().map(|&(at, _, i)| (at, i)).collect();
        assert_eq!(got, want);
    }
}
