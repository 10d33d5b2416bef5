//! When each held value expires, when it is next re-sent, and which value
//! goes first when room must be made: the bookkeeping [`crate::records`]
//! keeps beside the storage backend.
//!
//! One map entry per key holds all three, so a STORE hashes its key (chosen
//! by the peer, hence SipHash) once rather than once per queue. Two
//! timelines (heaps, see [`crate::timeline`]) give the earliest
//! expiry and the earliest re-send, an ordered set the lowest-ranked value,
//! without scanning. Each is touched only where its time or rank changes: a
//! repeated STORE of a held key moves neither its rank nor, as a rule, its
//! expiry.
//!
//! The eviction order is built only when first asked for, which is when
//! the store is full: most nodes never fill theirs, and kept up from the
//! start it cost every new key a third ordered insert (and its memory).
//! Once built it is kept up, so a full node (one being flooded, say) finds
//! its lowest-ranked value as cheaply as before.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::id::{Distance, Key};
use crate::timeline::{Reading, Timeline};

/// Where a value stands when room must be made: lower goes first. Cached
/// copies before replicas, and among each the keys farthest from us first;
/// the node's own published values are never evicted (they have none).
pub type EvictionRank = (u8, Reverse<Distance>);

/// What is scheduled for one key.
#[derive(Clone, Copy, Debug, Default)]
struct Slots {
    expires_at: Option<Instant>,
    resend_at: Option<Instant>,
    rank: Option<EvictionRank>,
}

impl Slots {
    fn is_empty(&self) -> bool {
        self.expires_at.is_none() && self.resend_at.is_none() && self.rank.is_none()
    }
}

#[derive(Default)]
pub struct Schedule {
    slots: HashMap<Key, Slots>,
    expiries: Timeline<Expiries>,
    resends: Timeline<Resends>,
    /// None until [`Schedule::lowest_ranked`] is first called.
    eviction: Option<BTreeSet<(EvictionRank, Key)>>,
}

/// A timeline's view of the slots: their re-send times if `RESEND`, else
/// their expiries.
struct SlotTimes<const RESEND: bool>;

type Expiries = SlotTimes<false>;
type Resends = SlotTimes<true>;

impl<const RESEND: bool> SlotTimes<RESEND> {
    fn of(slots: &Slots) -> Option<Instant> {
        if RESEND {
            slots.resend_at
        } else {
            slots.expires_at
        }
    }
}

impl<const RESEND: bool> Reading for SlotTimes<RESEND> {
    type Table = HashMap<Key, Slots>;
    type Key = Key;
    fn time_of(slots: &Self::Table, key: &Key) -> Option<Instant> {
        slots.get(key).and_then(Self::of)
    }
    fn all(slots: &Self::Table) -> Vec<(Instant, Key)> {
        slots
            .iter()
            .filter_map(|(key, s)| Some((Self::of(s)?, *key)))
            .collect()
    }
    fn len(slots: &Self::Table) -> usize {
        slots.len()
    }
}

/// `key` at `at`, if it has a time.
fn at_key(at: Option<Instant>, key: Key) -> Option<(Instant, Key)> {
    Some((at?, key))
}

/// Move `key` in `order` from `old` to `new` (either may be absent).
fn reorder<T: Ord + Copy>(
    order: &mut BTreeSet<(T, Key)>,
    key: Key,
    old: Option<T>,
    new: Option<T>,
) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        order.remove(&(old, key));
    }
    if let Some(new) = new {
        order.insert((new, key));
    }
}

impl Schedule {
    /// `key` is held until `expires_at` and ranked `rank` for eviction
    /// (`None`: never evicted); with `resend_at`, it is next re-sent then
    /// (`None`: whenever it was due). One call, one hash of the key.
    pub fn kept(
        &mut self,
        key: Key,
        expires_at: Instant,
        rank: Option<EvictionRank>,
        resend_at: Option<Instant>,
    ) {
        let slots = self.slots.entry(key).or_default();
        let (old_expiry, old_rank, old_resend) = (slots.expires_at, slots.rank, slots.resend_at);
        slots.expires_at = Some(expires_at);
        slots.rank = rank;
        if resend_at.is_some() {
            slots.resend_at = resend_at;
            self.resends
                .moved(&self.slots, at_key(old_resend, key), at_key(resend_at, key));
        }
        self.expiries.moved(
            &self.slots,
            at_key(old_expiry, key),
            Some((expires_at, key)),
        );
        if let Some(eviction) = &mut self.eviction {
            reorder(eviction, key, old_rank, rank);
        }
    }

    /// Re-send `key` at `at` (instead of whenever it was due).
    pub fn resend_at(&mut self, key: Key, at: Instant) {
        let slots = self.slots.entry(key).or_default();
        let old = slots.resend_at.replace(at);
        self.resends
            .moved(&self.slots, at_key(old, key), Some((at, key)));
    }

    /// When `key` is due to be re-sent, if it is.
    pub fn resend_due(&self, key: &Key) -> Option<Instant> {
        self.slots.get(key)?.resend_at
    }

    /// Drop everything about `key`.
    pub fn forget(&mut self, key: &Key) {
        if let Some(slots) = self.slots.remove(key) {
            self.expiries
                .moved(&self.slots, at_key(slots.expires_at, *key), None);
            self.resends
                .moved(&self.slots, at_key(slots.resend_at, *key), None);
            if let Some(eviction) = &mut self.eviction {
                reorder(eviction, *key, slots.rank, None);
            }
        }
    }

    /// When the next value expires.
    pub fn first_expiry(&self) -> Option<Instant> {
        self.expiries.first()
    }

    /// When the next value is due to be re-sent.
    pub fn first_resend(&self) -> Option<Instant> {
        self.resends.first()
    }

    /// Give back the room a burst of keys left in the time orders.
    pub fn release_idle_memory(&mut self) {
        self.expiries.release_idle_memory();
        self.resends.release_idle_memory();
    }

    /// The lowest-ranked key and its rank (the next to evict).
    pub fn lowest_ranked(&mut self) -> Option<(EvictionRank, Key)> {
        let slots = &self.slots;
        let eviction = self.eviction.get_or_insert_with(|| {
            slots
                .iter()
                .filter_map(|(key, slots)| slots.rank.map(|rank| (rank, *key)))
                .collect()
        });
        eviction.first().copied()
    }

    /// The earliest key expired by `now`, its expiry taken off.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Key> {
        let (_, key) = self.expiries.pop_due(&self.slots, now)?;
        self.clear(&key, |slots| slots.expires_at = None);
        self.expiries.drop_stale_top(&self.slots);
        Some(key)
    }

    /// The earliest key due to be re-sent by `now`, its re-send taken off.
    pub fn pop_resend(&mut self, now: Instant) -> Option<Key> {
        let (_, key) = self.resends.pop_due(&self.slots, now)?;
        self.clear(&key, |slots| slots.resend_at = None);
        self.resends.drop_stale_top(&self.slots);
        Some(key)
    }

    /// Apply `clear` to `key`'s slots, and drop them once nothing is left.
    fn clear(&mut self, key: &Key, clear: impl FnOnce(&mut Slots)) {
        if let Some(slots) = self.slots.get_mut(key) {
            clear(slots);
            if slots.is_empty() {
                self.slots.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(b: u8) -> Key {
        crate::id::NodeId([b; 20])
    }

    fn rank(b: u8) -> Option<EvictionRank> {
        Some((1, Reverse(Distance([b; 20]))))
    }

    #[test]
    fn each_order_follows_the_latest_time_or_rank() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        s.kept(key(1), at(30), rank(1), None);
        s.kept(key(2), at(20), rank(9), None);
        s.kept(key(1), at(10), rank(5), None); // moved earlier, ranked higher
        s.resend_at(key(2), at(5));
        s.resend_at(key(1), at(7));
        s.resend_at(key(2), at(8)); // moved later
        assert_eq!(s.first_expiry(), Some(at(10)));
        assert_eq!(s.first_resend(), Some(at(7)));
        // The farther key goes first.
        assert_eq!(s.lowest_ranked(), Some((rank(9).unwrap(), key(2))));
        assert_eq!(s.resend_due(&key(2)), Some(at(8)));

        assert_eq!(s.pop_resend(at(6)), None);
        assert_eq!(s.pop_resend(at(9)), Some(key(1)));
        assert_eq!(s.pop_resend(at(9)), Some(key(2)));
        assert_eq!(s.resend_due(&key(1)), None);
        assert_eq!(s.pop_expired(at(15)), Some(key(1)));
        assert_eq!(s.pop_expired(at(15)), None);
        s.forget(&key(2));
        // Key 1 is still ranked: only forgetting it removes that.
        assert_eq!(s.lowest_ranked(), Some((rank(5).unwrap(), key(1))));
        s.forget(&key(1));
        assert_eq!(
            (s.first_expiry(), s.first_resend(), s.lowest_ranked()),
            (None, None, None)
        );
        assert!(s.slots.is_empty());
    }

    #[test]
    fn forgetting_or_unranking_a_key_takes_it_out_of_every_order() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        s.kept(key(1), t0, rank(1), None);
        s.resend_at(key(1), t0);
        s.kept(key(2), t0, rank(2), None);
        // Held for a peer, then published by this node's user: no rank.
        s.kept(key(2), t0, None, None);
        assert_eq!(s.lowest_ranked(), Some((rank(1).unwrap(), key(1))));
        // Forgotten with its re-send and expiry still pending.
        s.forget(&key(1));
        assert_eq!(s.lowest_ranked(), None);
        assert_eq!(s.pop_resend(t0), None);
        assert_eq!(s.pop_expired(t0), Some(key(2)));
        assert_eq!(s.pop_expired(t0), None);
        assert!(s.slots.is_empty());
    }

    #[test]
    fn a_key_with_nothing_left_scheduled_leaves_no_entry() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        s.kept(key(3), t0, None, None); // the publisher's own value: no rank
        s.resend_at(key(3), t0);
        assert_eq!(s.pop_expired(t0), Some(key(3)));
        assert_eq!(s.slots.len(), 1);
        assert_eq!(s.pop_resend(t0), Some(key(3)));
        assert!(s.slots.is_empty());
    }

    #[test]
    fn keeping_a_key_moves_its_resend_only_when_given_one() {
        let mut s = Schedule::default();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        s.kept(key(1), at(100), rank(1), Some(at(50)));
        assert_eq!(s.resend_due(&key(1)), Some(at(50)));
        // Kept again (a repeated STORE) without a re-send time: unchanged.
        s.kept(key(1), at(200), rank(1), None);
        assert_eq!(s.resend_due(&key(1)), Some(at(50)));
        // With one: moved, and only the new time is queued.
        s.kept(key(1), at(200), rank(1), Some(at(70)));
        assert_eq!(s.pop_resend(at(60)), None);
        assert_eq!(s.pop_resend(at(70)), Some(key(1)));
        assert_eq!(s.pop_resend(at(1000)), None);
        assert_eq!(s.first_expiry(), Some(at(200)));
    }

    /// The eviction order is built at the first question and kept up after:
    /// either way it is the order of the latest ranks.
    #[test]
    fn the_eviction_order_built_late_is_the_one_kept_up() {
        let t0 = Instant::now();
        let mut late = Schedule::default();
        let mut early = Schedule::default();
        let _ = early.lowest_ranked(); // built now, kept up from here
        for s in [&mut late, &mut early] {
            for b in 1..=20u8 {
                s.kept(key(b), t0, rank(b.wrapping_mul(37)), None);
            }
            s.kept(key(3), t0, rank(1), None); // re-ranked
            s.kept(key(4), t0, None, None); // published here: never evicted
            s.forget(&key(5));
        }
        assert!(late.eviction.is_none());
        assert_eq!(late.lowest_ranked(), early.lowest_ranked());
        assert_eq!(late.eviction, early.eviction);
        // Kept up once built.
        late.kept(key(30), t0, rank(255), None); // the farthest yet
        assert_eq!(late.lowest_ranked(), Some((rank(255).unwrap(), key(30))));
        let order = late.eviction.as_ref().unwrap();
        assert_eq!(order.len(), 19);
        assert!(!order.iter().any(|(_, k)| *k == key(4) || *k == key(5)));
    }
}
