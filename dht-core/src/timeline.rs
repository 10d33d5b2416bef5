//! Entries in the order of a time that may move, earliest first: the held
//! keys' expiries and re-sends ([`crate::record_schedule`]) and the pending
//! requests' soft deadlines ([`crate::rpc`]).
//!
//! A binary heap with lazy deletion. When an entry's time moves (or it
//! goes), the new time is pushed and the old entry stays in the heap until
//! it reaches the top, where it is recognised as stale (the owner's table
//! holds each entry's current time, read through [`Reading`]) and dropped.
//! An ordered set did the same job with a search of 36-byte keys to take
//! the old time out and another to put the new one in: for the record
//! schedule, on every STORE of a new key, 4% of a put simulation's
//! instructions; in a real node's profile the set's inserts were the
//! costliest function in user space (tree nodes scattered over the heap
//! miss the cache).
//!
//! The top is always current, so [`Timeline::first`] is exact: the only
//! entry an update can make stale is the moved one's old entry, which is
//! dropped at once when it is the top, and [`Timeline::pop_due`] drops
//! stale entries before it looks. Stale entries below the top are bounded:
//! at each move, once they outnumber both the current entries and the
//! owner's table by [`REBUILD_SLACK`], the heap is rebuilt from the table
//! (a scan of it, paid for by at least as many moves). A peer that makes a
//! node take and drop entries over and over therefore cannot grow the heap
//! beyond about twice the table.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::marker::PhantomData;
use std::time::Instant;

/// Stale entries, beyond the current ones, that trigger a rebuild.
const REBUILD_SLACK: usize = 64;

/// How a timeline reads its owner's table.
pub(crate) trait Reading {
    type Table;
    type Key: Ord + Copy;
    /// The entry's current time, if it has one.
    fn time_of(table: &Self::Table, key: &Self::Key) -> Option<Instant>;
    /// Every entry that has a time, with it (to rebuild the heap).
    fn all(table: &Self::Table) -> Vec<(Instant, Self::Key)>;
    /// The table's size: what reading it all costs.
    fn len(table: &Self::Table) -> usize;
}

pub(crate) struct Timeline<R: Reading> {
    heap: BinaryHeap<Reverse<(Instant, R::Key)>>,
    /// Entries with a time: the heap's current entries.
    current: usize,
    reading: PhantomData<R>,
}

impl<R: Reading> Default for Timeline<R> {
    fn default() -> Self {
        Timeline {
            heap: BinaryHeap::new(),
            current: 0,
            reading: PhantomData,
        }
    }
}

impl<R: Reading> Timeline<R> {
    /// The earliest current time.
    pub fn first(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// An entry went from `old` to `new` (either absent); `table` already
    /// holds `new`.
    pub fn moved(
        &mut self,
        table: &R::Table,
        old: Option<(Instant, R::Key)>,
        new: Option<(Instant, R::Key)>,
    ) {
        if old == new {
            return;
        }
        // (Saturating: the count only times rebuilds, and must not panic.)
        self.current =
            (self.current + usize::from(new.is_some())).saturating_sub(usize::from(old.is_some()));
        if let Some(new) = new {
            self.heap.push(Reverse(new));
        }
        if let (Some(old), Some(&Reverse(top))) = (old, self.heap.peek()) {
            if top == old {
                self.heap.pop();
                self.drop_stale_top(table);
            }
        }
        let stale = self.heap.len().saturating_sub(self.current);
        if stale > self.current.max(R::len(table)) + REBUILD_SLACK {
            self.heap = R::all(table).into_iter().map(Reverse).collect();
            self.current = self.heap.len();
        }
    }

    /// Take out the earliest current entry if its time is due by `now`.
    /// The caller then clears or moves that time in its table and calls
    /// [`Timeline::drop_stale_top`], so that [`Timeline::first`] is exact.
    pub fn pop_due(&mut self, table: &R::Table, now: Instant) -> Option<(Instant, R::Key)> {
        // Callers ask at every timer; the table is read only when
        // something is due.
        if self.first()? > now {
            return None;
        }
        self.drop_stale_top(table);
        let &Reverse((at, key)) = self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.current = self.current.saturating_sub(1);
        Some((at, key))
    }

    /// Drop stale entries from the top until a current one is there.
    pub fn drop_stale_top(&mut self, table: &R::Table) {
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if R::time_of(table, &key) == Some(at) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Entries in the heap, current and stale.
    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.heap.len()
    }

    /// Give back the room a burst left once the heap is mostly empty (see
    /// [`crate::idle_memory`]).
    pub fn release_idle_memory(&mut self) {
        if self.heap.len() * 4 < self.heap.capacity() {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    use std::collections::HashMap;

    type Key = u8;

    fn key(b: u8) -> Key {
        b
    }

    /// A stand-in for an owner: each key's one time.
    struct Times;

    impl Reading for Times {
        type Table = HashMap<Key, Instant>;
        type Key = Key;
        fn time_of(slots: &Self::Table, k: &Key) -> Option<Instant> {
            slots.get(k).copied()
        }
        fn all(slots: &Self::Table) -> Vec<(Instant, Key)> {
            slots.iter().map(|(k, at)| (*at, *k)).collect()
        }
        fn len(slots: &Self::Table) -> usize {
            slots.len()
        }
    }

    struct Model {
        slots: HashMap<Key, Instant>,
        timeline: Timeline<Times>,
    }

    impl Model {
        fn new() -> Self {
            Model {
                slots: HashMap::new(),
                timeline: Timeline::default(),
            }
        }

        fn set(&mut self, k: Key, new: Option<Instant>) {
            let old = match new {
                Some(at) => self.slots.insert(k, at),
                None => self.slots.remove(&k),
            };
            self.timeline
                .moved(&self.slots, old.map(|at| (at, k)), new.map(|at| (at, k)));
        }

        fn pop(&mut self, now: Instant) -> Option<Key> {
            let (_, k) = self.timeline.pop_due(&self.slots, now)?;
            self.slots.remove(&k);
            self.timeline.drop_stale_top(&self.slots);
            Some(k)
        }
    }

    #[test]
    fn keys_come_due_at_their_latest_times() {
        let t0 = Instant::now();
        let at = |s| Some(t0 + Duration::from_secs(s));
        let mut m = Model::new();
        m.set(key(1), at(10));
        m.set(key(2), at(20));
        m.set(key(3), at(30));
        m.set(key(1), at(25)); // the top moves later: its old entry goes at once
        assert_eq!(m.timeline.first(), at(20));
        m.set(key(3), at(5)); // moved earlier
        m.set(key(2), None); // the top taken out
        assert_eq!(m.timeline.first(), at(5));
        m.set(key(3), at(40)); // back later again: stale entries below the top
        m.set(key(3), at(5)); // and back to a time it had
        assert_eq!(m.pop(at(4).unwrap()), None);
        assert_eq!(m.pop(at(100).unwrap()), Some(key(3)));
        // key 3's older entries (5 and 40) are stale now; key 1 is next.
        assert_eq!(m.timeline.first(), at(25));
        assert_eq!(m.pop(at(100).unwrap()), Some(key(1)));
        assert_eq!(m.pop(at(100).unwrap()), None);
        assert_eq!(m.timeline.first(), None);
    }

    /// Stale entries never outnumber the current ones by more than the
    /// slack, however often times move or keys come and go.
    #[test]
    fn a_key_moved_or_dropped_over_and_over_leaves_a_bounded_heap() {
        let t0 = Instant::now();
        let mut m = Model::new();
        m.set(key(0), Some(t0)); // the top, never moved
        for round in 0..10_000u64 {
            let k = key((round % 7 + 1) as u8);
            let at = t0 + Duration::from_secs(1 + round % 1000);
            m.set(k, if round % 3 == 0 { None } else { Some(at) });
            let current = m.slots.len();
            assert!(
                m.timeline.entries() <= 2 * current + REBUILD_SLACK,
                "{} entries for {current} keys",
                m.timeline.entries()
            );
        }
        println!(
            "after 10,000 moves of 7 keys: {} heap entries for {} keys",
            m.timeline.entries(),
            m.slots.len()
        );
        // Everything still comes due, each key once, the unmoved top first.
        let held = m.slots.len();
        let mut due = Vec::new();
        while let Some(k) = m.pop(t0 + Duration::from_secs(2000)) {
            due.push(k);
        }
        assert_eq!(due.len(), held);
        assert!(m.slots.is_empty());
        assert_eq!(due[0], key(0));
    }

    /// Against an ordered set, under random moves: the same first time, and
    /// the same keys coming due in the same order.
    #[test]
    fn it_orders_keys_as_an_ordered_set_does() {
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeSet;
        let t0 = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut m = Model::new();
        let mut set: BTreeSet<(Instant, Key)> = BTreeSet::new();
        for step in 0..20_000u32 {
            let k = key(rng.random_range(0..40));
            let new = (rng.random_range(0..4) != 0)
                .then(|| t0 + Duration::from_millis(rng.random_range(0..500)));
            if let Some(&old) = m.slots.get(&k) {
                set.remove(&(old, k));
            }
            if let Some(new) = new {
                set.insert((new, k));
            }
            m.set(k, new);
            assert_eq!(m.timeline.first(), set.first().map(|(at, _)| *at));
            if step % 50 == 0 {
                let now = t0 + Duration::from_millis(rng.random_range(0..500));
                while let Some(k) = m.pop(now) {
                    let (at, expected) = set.pop_first().unwrap();
                    assert!(at <= now);
                    assert_eq!(k, expected);
                }
                assert!(set.first().is_none_or(|(at, _)| *at > now));
            }
        }
    }
}
