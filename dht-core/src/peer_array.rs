//! A map from [`PeerKey`]s to small records kept as one array sorted by key,
//! for the per-peer tables a node keeps the longest (the peer book).
//!
//! A hash table grows by doubling and keeps at most 7/8 of its slots full,
//! so on average a third of its memory is empty slots: in a simulation of
//! 3·10⁴ nodes the peer book's ~110 records of 24 bytes took ~41 bytes each.
//! An array sorted by key holds them at their size plus an eighth (it grows
//! by an eighth at a time). Keys and records are two arrays side by side:
//! a key beside a 12-byte record would be padded in one array, and the
//! search reads only keys, so more of them share a cache line.
//!
//! The array keeps the high 32 bits of each [`PeerKey`], not all 64: 4
//! bytes of a 16-byte record with its key, and the peer book is the largest
//! part of a simulated node at 10⁶ nodes. Two keys then share a record one
//! time in 2³² per pair: with the book's ~300 records, one node in 10⁵ has
//! such a pair. Keys are a secret of the node's, so a peer cannot pick an
//! address that shares another's record; where two do by chance, each is
//! taken for having answered when the other did (both did answer us), and
//! they share a round-trip estimate.
//!
//! It is searched by interpolation: a key is a keyed hash, uniform over its
//! 32 bits, so its place in the array is close to `key / 2³² × len`, and a
//! lookup reads about as many cache lines as a hash table's (two or three
//! probes). Even so the search falls back to bisection after a few probes
//! (keys a peer cannot choose cannot be made to cluster, but a bound costs
//! nothing), so it never takes more than O(log n).
//!
//! Inserting shifts the records after the new one: O(n), ~100 ns at a few
//! hundred records, and tens of µs only near the peer book's cap of 65,536,
//! where each new record also cost a round trip with a new peer.

use crate::peer_key::PeerKey;

/// Probes by interpolation before bisecting what is left.
const INTERPOLATIONS: usize = 4;

#[derive(Debug)]
pub(crate) struct PeerArray<V> {
    /// Sorted, each key once: the high 32 bits of a [`PeerKey`].
    keys: Vec<u32>,
    /// The record of `keys[i]` at `values[i]`.
    values: Vec<V>,
}

impl<V> Default for PeerArray<V> {
    fn default() -> Self {
        PeerArray {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

/// What [`PeerArray::entry`] found.
pub(crate) enum Entry<'a, V> {
    Occupied(&'a mut V),
    Vacant(Vacant<'a, V>),
}

/// Where a key not in the array goes.
pub(crate) struct Vacant<'a, V> {
    array: &'a mut PeerArray<V>,
    at: usize,
    key: u32,
}

impl<V> Vacant<'_, V> {
    pub(crate) fn insert(self, value: V) {
        let PeerArray { keys, values } = self.array;
        if keys.len() == keys.capacity() {
            keys.reserve_exact((keys.len() / 8).max(4));
        }
        if values.len() == values.capacity() {
            values.reserve_exact((values.len() / 8).max(4));
        }
        keys.insert(self.at, self.key);
        values.insert(self.at, value);
    }
}

impl<V> PeerArray<V> {
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn get(&self, key: PeerKey) -> Option<&V> {
        let at = self.search(key.high_bits()).ok()?;
        self.values.get(at)
    }

    pub(crate) fn get_mut(&mut self, key: PeerKey) -> Option<&mut V> {
        let at = self.search(key.high_bits()).ok()?;
        self.values.get_mut(at)
    }

    pub(crate) fn contains_key(&self, key: PeerKey) -> bool {
        self.search(key.high_bits()).is_ok()
    }

    pub(crate) fn entry(&mut self, key: PeerKey) -> Entry<'_, V> {
        let key = key.high_bits();
        match self.search(key) {
            Ok(at) => Entry::Occupied(&mut self.values[at]),
            Err(at) => Entry::Vacant(Vacant {
                array: self,
                at,
                key,
            }),
        }
    }

    /// Keep the records `keep` is true of, and give back what the rest took.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let mut kept = 0;
        for i in 0..self.values.len() {
            if keep(&self.values[i]) {
                self.keys.swap(kept, i);
                self.values.swap(kept, i);
                kept += 1;
            }
        }
        self.keys.truncate(kept);
        self.values.truncate(kept);
        self.keys.shrink_to(kept + kept / 8);
        self.values.shrink_to(kept + kept / 8);
    }

    pub(crate) fn clear(&mut self) {
        self.keys = Vec::new();
        self.values = Vec::new();
    }

    /// Where `key` is, or where it would go.
    fn search(&self, key: u32) -> Result<usize, usize> {
        let entries = &self.keys;
        // Every key in entries[lo..hi] lies in lo_key..=hi_key, and so does `key`.
        let (mut lo, mut hi) = (0, entries.len());
        let (mut lo_key, mut hi_key) = (0u32, u32::MAX);
        for _ in 0..INTERPOLATIONS {
            if lo >= hi {
                return Err(lo);
            }
            let span = u128::from(hi_key - lo_key) + 1;
            let offset = u128::from(key - lo_key) * (hi - lo) as u128 / span;
            // offset < hi - lo, since key - lo_key < span.
            let probe = lo + offset as usize;
            let found = entries[probe];
            match found.cmp(&key) {
                std::cmp::Ordering::Equal => return Ok(probe),
                std::cmp::Ordering::Less => (lo, lo_key) = (probe + 1, found + 1),
                std::cmp::Ordering::Greater => (hi, hi_key) = (probe, found - 1),
            }
        }
        entries[lo..hi]
            .binary_search(&key)
            .map(|i| lo + i)
            .map_err(|i| lo + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// A key the array keeps as `bits` (its low half is dropped).
    fn key(bits: u32) -> PeerKey {
        PeerKey::from_bits(u64::from(bits) << 32 | 0x5eed)
    }

    /// Random inserts, updates, lookups of absent keys and retains, checked
    /// against a `BTreeMap` after every step; keys uniform, then clustered
    /// (as a peer could not make them, to check the bisection fallback).
    #[test]
    fn behaves_as_a_map_for_uniform_and_clustered_keys() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for clustered in [false, true] {
            let mut array = PeerArray::default();
            let mut model = BTreeMap::new();
            for step in 0..5000u32 {
                let raw: u32 = rng.random();
                let bits = if clustered { 1 + (raw >> 20) } else { raw };
                match array.entry(key(bits)) {
                    Entry::Occupied(v) => *v += 1,
                    Entry::Vacant(slot) => slot.insert(step),
                }
                model.entry(bits).and_modify(|v| *v += 1).or_insert(step);
                let absent = if clustered {
                    1 << 20
                } else {
                    rng.random::<u32>()
                };
                assert_eq!(array.get(key(absent)), model.get(&absent));
                if step % 1000 == 999 {
                    array.retain(|v| v % 3 != 0);
                    model.retain(|_, v| *v % 3 != 0);
                }
                assert_eq!(array.len(), model.len());
            }
            for (bits, v) in &model {
                assert_eq!(array.get(key(*bits)), Some(v), "{bits:x}");
            }
            assert!(array.keys.windows(2).all(|w| w[0] < w[1]));
            for slack in [
                array.keys.capacity() - array.len(),
                array.values.capacity() - array.len(),
            ] {
                assert!(
                    slack <= array.len() / 8 + 4,
                    "{slack} spare of {}",
                    array.len()
                );
            }
        }
    }

    #[test]
    fn finds_the_extreme_keys() {
        let mut array = PeerArray::default();
        for bits in [0, 1, 2, u32::MAX - 1, u32::MAX, 1 << 31] {
            if let Entry::Vacant(slot) = array.entry(key(bits)) {
                slot.insert(bits);
            }
        }
        for bits in [0, 1, 2, u32::MAX - 1, u32::MAX, 1 << 31] {
            assert_eq!(array.get(key(bits)), Some(&bits));
        }
        assert!(!array.contains_key(key(3)));
        array.clear();
        assert!(array.is_empty());
    }

    /// The documented price of 4-byte keys: keys equal in their high half
    /// share a record; keys that differ there do not.
    #[test]
    fn keys_share_a_record_only_when_their_high_halves_match() {
        let mut array = PeerArray::default();
        let a = PeerKey::from_bits(0x1234_5678_0000_0001);
        let same_high = PeerKey::from_bits(0x1234_5678_ffff_ffff);
        let other_high = PeerKey::from_bits(0x1234_5679_0000_0001);
        if let Entry::Vacant(slot) = array.entry(a) {
            slot.insert("a");
        }
        assert_eq!(array.get(same_high), Some(&"a"));
        assert_eq!(array.get(other_high), None);
    }
}
