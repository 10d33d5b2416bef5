//! Where a node keeps the values it holds for the network.

use std::collections::HashMap;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::id::Key;
use crate::value::Value;

/// A value held by a node, with the times that drive expiry and replication.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredValue {
    pub value: Value,
    pub expires_at: Instant,
    /// When this node last re-sent the value to the k closest nodes (or
    /// received it from another node, which makes re-sending unnecessary).
    pub replicated_at: Instant,
    /// On the node that put the value: when it last (re)published it, and the
    /// TTL it asked for. That node re-puts the value every republish interval.
    pub published: Option<(Instant, std::time::Duration)>,
}

/// Storage backend. Implementations hold values; the protocol decides what
/// goes in and when it expires (it calls [`Storage::expire`] on its timer).
pub trait Storage: Send {
    /// The value under `key`, if held and not yet expired at `now`.
    fn get(&self, key: &Key, now: Instant) -> Option<StoredValue>;
    /// Insert or replace. Fails with [`Error::StorageFull`] past the limits;
    /// replacing an existing key never counts against the value limit.
    fn put(&mut self, key: Key, value: StoredValue) -> Result<()>;
    fn remove(&mut self, key: &Key) -> Option<StoredValue>;
    /// Drop everything expired at `now`; returns how many values went.
    fn expire(&mut self, now: Instant) -> usize;
    /// Every key held (expired ones may still be listed until `expire` runs).
    fn keys(&self) -> Vec<Key>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Total value bytes held.
    fn bytes(&self) -> usize;
}

/// The default backend: a hash map bounded in values and bytes.
pub struct MemoryStorage {
    items: HashMap<Key, StoredValue>,
    bytes: usize,
    max_values: usize,
    max_bytes: usize,
}

impl MemoryStorage {
    pub fn new(max_values: usize, max_bytes: usize) -> Self {
        MemoryStorage {
            items: HashMap::new(),
            bytes: 0,
            max_values,
            max_bytes,
        }
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &Key, now: Instant) -> Option<StoredValue> {
        self.items.get(key).filter(|v| v.expires_at > now).cloned()
    }

    fn put(&mut self, key: Key, value: StoredValue) -> Result<()> {
        let old = self.items.get(&key).map(|v| v.value.size()).unwrap_or(0);
        let new_bytes = self.bytes - old + value.value.size();
        let new_len = self.items.len() + usize::from(old == 0 && !self.items.contains_key(&key));
        if new_len > self.max_values || new_bytes > self.max_bytes {
            return Err(Error::StorageFull);
        }
        self.bytes = new_bytes;
        self.items.insert(key, value);
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Option<StoredValue> {
        let v = self.items.remove(key)?;
        self.bytes -= v.value.size();
        Some(v)
    }

    fn expire(&mut self, now: Instant) -> usize {
        let before = self.items.len();
        let mut freed = 0;
        self.items.retain(|_, v| {
            let keep = v.expires_at > now;
            if !keep {
                freed += v.value.size();
            }
            keep
        });
        self.bytes -= freed;
        before - self.items.len()
    }

    fn keys(&self) -> Vec<Key> {
        self.items.keys().copied().collect()
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
    use std::time::Duration;

    fn sv(v: &str, now: Instant, ttl: u64) -> StoredValue {
        StoredValue {
            value: Value::Str(v.into()),
            expires_at: now + Duration::from_secs(ttl),
            replicated_at: now,
            published: None,
        }
    }

    #[test]
    fn limits_expiry_and_accounting() {
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
        let later = now + Duration::from_secs(2);
        assert!(s.get(&b, later).is_none(), "expired values are not served");
        assert_eq!(s.expire(later), 1);
        assert_eq!((s.len(), s.bytes()), (1, 6));
        assert!(s.remove(&a).is_some());
        assert_eq!((s.len(), s.bytes()), (0, 0));
    }
}
