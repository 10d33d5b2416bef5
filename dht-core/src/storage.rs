//! Where a node keeps the values it holds: a plain keyed store.
//!
//! A backend only stores and returns [`StoredValue`]s; it decides nothing.
//! How long a value lives, who re-sends it and when is the job of
//! [`crate::records`], which keeps its own due-time queues beside the store
//! and never scans it on a timer. Backends iterate keys in ascending order, so
//! that simulations holding values are repeatable.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::id::Key;
use crate::value::Value;

/// Why this node holds a value; decides how the value is kept and re-sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Stored for the network by a peer's STORE (or a replica hand-over).
    /// Re-sent to the k closest nodes every replicate interval with its
    /// remaining lifetime.
    Held,
    /// A copy cached after a lookup (paper §2.3). Kept for a distance-decayed
    /// time and never re-sent.
    Cached,
    /// Put by this node's user: the node is the publisher. It is re-put with
    /// the full `ttl` before any copy can lapse, for as long as the node runs,
    /// and never replaced by a remote STORE.
    Published { ttl: Duration },
}

/// A value held by a node.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredValue {
    pub value: Value,
    /// After this instant the value is neither served nor re-sent.
    pub expires_at: Instant,
    pub origin: Origin,
}

impl StoredValue {
    pub fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// Storage backend. Implementations hold values; [`crate::records`] decides
/// what goes in and when it leaves.
pub trait Storage: Send {
    /// The value under `key`, expired or not (the caller checks expiry).
    fn get(&self, key: &Key) -> Option<StoredValue>;
    /// Calls `f` once with the value under `key` (expired or not), borrowed
    /// where the backend can lend it. Every STORE looks at what is held
    /// under its key two or three times and keeps none of it, and `get`
    /// copies the value each time. The default copies through `get`.
    fn inspect(&self, key: &Key, f: &mut dyn FnMut(Option<&StoredValue>)) {
        f(self.get(key).as_ref());
    }
    /// Insert or replace. Fails with [`Error::StorageFull`] past the limits;
    /// replacing an existing key never counts against the value limit.
    fn put(&mut self, key: Key, value: StoredValue) -> Result<()>;
    fn remove(&mut self, key: &Key) -> Option<StoredValue>;
    /// Up to `limit` keys from `start` (inclusive), in ascending order: lets a
    /// caller walk every key in bounded slices.
    fn keys_from(&self, start: &Key, limit: usize) -> Vec<Key>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Total value bytes held.
    fn bytes(&self) -> usize;
}

/// The default backend: an ordered map bounded in values and bytes.
pub struct MemoryStorage {
    items: BTreeMap<Key, StoredValue>,
    bytes: usize,
    max_values: usize,
    max_bytes: usize,
}

impl MemoryStorage {
    pub fn new(max_values: usize, max_bytes: usize) -> Self {
        MemoryStorage {
            items: BTreeMap::new(),
            bytes: 0,
            max_values,
            max_bytes,
        }
    }

    /// Bounded by `config`'s `max_stored_values` and `max_stored_bytes`.
    pub fn for_config(config: &crate::config::Config) -> Self {
        Self::new(config.max_stored_values, config.max_stored_bytes)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &Key) -> Option<StoredValue> {
        self.items.get(key).cloned()
    }

    fn inspect(&self, key: &Key, f: &mut dyn FnMut(Option<&StoredValue>)) {
        f(self.items.get(key));
    }

    fn put(&mut self, key: Key, value: StoredValue) -> Result<()> {
        // One search of the map, not two (a STORE's hottest path).
        let (len, added) = (self.items.len(), value.value.size());
        let fits = |len: usize, bytes: usize| len <= self.max_values && bytes <= self.max_bytes;
        match self.items.entry(key) {
            Entry::Occupied(mut held) => {
                let bytes = self.bytes - held.get().value.size() + added;
                if !fits(len, bytes) {
                    return Err(Error::StorageFull);
                }
                self.bytes = bytes;
                held.insert(value);
            }
            Entry::Vacant(slot) => {
                let bytes = self.bytes + added;
                if !fits(len + 1, bytes) {
                    return Err(Error::StorageFull);
                }
                self.bytes = bytes;
                slot.insert(value);
            }
        }
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Option<StoredValue> {
        let v = self.items.remove(key)?;
        self.bytes -= v.value.size();
        Some(v)
    }

    fn keys_from(&self, start: &Key, limit: usize) -> Vec<Key> {
        self.items
            .range(*start..)
            .take(limit)
            .map(|(k, _)| *k)
            .collect()
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn sv(v: &str, now: Instant, ttl: u64) -> StoredValue {
        StoredValue {
            value: Value::Str(v.into()),
            expires_at: now + Duration::from_secs(ttl),
            origin: Origin::Held,
        }
    }

    #[test]
    fn limits_and_accounting() {
        let now = Instant::now();
        let mut s = MemoryStorage::new(2, 10);
        let (a, b, c) = (
            NodeId::digest(b"a"),
            NodeId::digest(b"b"),
            NodeId::digest(b"c"),
        );
        s.put(a, sv("1234", now, 10)).expect("fits");
        s.put(b, sv("1234", now, 1)).expect("fits");
        assert!(matches!(
            s.put(c, sv("1", now, 10)),
            Err(Error::StorageFull)
        ));
        // Replacing does not count as a new value; bytes are recomputed.
        s.put(a, sv("123456", now, 10)).expect("replace fits");
        assert_eq!(s.bytes(), 10);
        assert!(matches!(
            s.put(a, sv("1234567", now, 10)),
            Err(Error::StorageFull)
        ));
        assert!(s.remove(&a).is_some());
        assert_eq!((s.len(), s.bytes()), (1, 4));
    }

    #[test]
    fn keys_walk_in_order_in_slices() {
        let now = Instant::now();
        let mut s = MemoryStorage::new(100, 1000);
        for i in 0..50u8 {
            s.put(NodeId::digest(&[i]), sv("v", now, 10)).expect("fits");
        }
        let mut walked = Vec::new();
        let mut start = NodeId::default();
        loop {
            let slice = s.keys_from(&start, 7);
            let Some(last) = slice.last().copied() else {
                break;
            };
            walked.extend(slice.iter().copied().filter(|k| *k >= start));
            match last.successor() {
                Some(next) => start = next,
                None => break,
            }
        }
        let mut expected: Vec<Key> = (0..50u8).map(|i| NodeId::digest(&[i])).collect();
        expected.sort();
        assert_eq!(walked, expected);
    }
}
