//! What changed since the driver last saved: the protocol's side of
//! persistence. The protocol stays clock-free and disk-free; it only notes
//! which records were put, replaced, removed or expired (by wrapping the
//! storage backend in a [`JournalingStorage`], so every path into the store
//! is seen, whichever module takes it), whether its id is saved yet, and
//! what its routing contacts are. The driver drains that as
//! [`persist::Change`]s, converting `Instant`s to wall-clock times with its
//! [`ClockAnchor`], and commits them to its data directory. Changes to one
//! key between two drains collapse into the last one, so a batch holds at
//! most one change per key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::contact::Contact;
use crate::error::Result;
use crate::id::{Key, NodeId};
use crate::persist::{Change, ClockAnchor, PersistedRecord, RecordKind};
use crate::routing::RoutingTable;
use crate::storage::{Origin, Storage, StoredValue};

/// How often the routing contacts are compared with the saved list while
/// the saved list is short (a node that just joined: save them quickly, so
/// a node killed soon after joining can still rejoin) and once it is not.
/// Rewriting the list costs one small transaction; comparing costs nothing
/// worth counting.
const CONTACTS_CHECK_SHORT: Duration = Duration::from_secs(1);
const CONTACTS_CHECK: Duration = Duration::from_secs(30);

/// Record changes since the last drain: the latest state per key (`None`:
/// removed). Shared by the storage wrapper and the protocol's [`Journal`].
#[derive(Default)]
struct RecordChanges {
    latest: HashMap<Key, Option<StoredValue>>,
}

type Shared = Arc<Mutex<RecordChanges>>;

fn lock(shared: &Shared) -> MutexGuard<'_, RecordChanges> {
    // Only ever locked by the thread that holds the protocol; a poisoned
    // lock still holds a consistent map (inserts are single calls).
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// A storage backend that notes every successful put and remove.
pub struct JournalingStorage {
    inner: Box<dyn Storage>,
    changes: Shared,
}

impl Storage for JournalingStorage {
    fn get(&self, key: &Key) -> Option<StoredValue> {
        self.inner.get(key)
    }

    fn inspect(&self, key: &Key, f: &mut dyn FnMut(Option<&StoredValue>)) {
        self.inner.inspect(key, f);
    }

    fn put(&mut self, key: Key, value: StoredValue) -> Result<()> {
        self.inner.put(key, value.clone())?;
        lock(&self.changes).latest.insert(key, Some(value));
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Option<StoredValue> {
        let removed = self.inner.remove(key)?;
        lock(&self.changes).latest.insert(*key, None);
        Some(removed)
    }

    fn keys_from(&self, start: &Key, limit: usize) -> Vec<Key> {
        self.inner.keys_from(start, limit)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn bytes(&self) -> usize {
        self.inner.bytes()
    }
}

/// The protocol's record of what is not saved yet.
pub struct Journal {
    records: Shared,
    saved_node_id: Option<NodeId>,
    /// The contact list on disk, sorted by distance from our id.
    saved_contacts: Vec<Contact>,
    next_contacts_check: Instant,
    /// Fewer saved contacts than one bucket's worth counts as short.
    k: usize,
}

/// What [`Journal::restore`] rebuilt from a snapshot.
pub struct Restored {
    pub journal: Journal,
    /// The backend, holding the snapshot's records, to give the protocol.
    pub storage: Box<dyn Storage>,
    /// Records of the snapshot that did not fit the storage limits.
    pub dropped: usize,
}

impl Journal {
    /// Wraps `storage`, filling it first with `records` (as loaded from
    /// disk: they are not journaled again). Records that do not fit the
    /// backend's limits are journaled as removed, so the disk matches.
    pub fn restore(
        mut storage: Box<dyn Storage>,
        records: &[(Key, PersistedRecord)],
        anchor: &ClockAnchor,
        saved_node_id: Option<NodeId>,
        saved_contacts: Vec<Contact>,
        k: usize,
        now: Instant,
    ) -> Restored {
        let mut changes = RecordChanges::default();
        let mut dropped = 0;
        for (key, record) in records {
            if storage.put(*key, from_persisted(record, anchor)).is_err() {
                changes.latest.insert(*key, None);
                dropped += 1;
            }
        }
        let records = Arc::new(Mutex::new(changes));
        let storage = Box::new(JournalingStorage {
            inner: storage,
            changes: records.clone(),
        });
        let journal = Journal {
            records,
            saved_node_id,
            saved_contacts,
            next_contacts_check: now,
            k,
        };
        Restored {
            journal,
            storage,
            dropped,
        }
    }

    /// Moves everything not saved yet into `out`: the node id if it was
    /// never saved, the record changes, and the contact list if it was due
    /// for a check and differs from the saved one.
    pub fn take(
        &mut self,
        own: NodeId,
        routing: &RoutingTable,
        now: Instant,
        anchor: &ClockAnchor,
        out: &mut Vec<Change>,
    ) {
        if self.saved_node_id != Some(own) {
            out.push(Change::SetNodeId(own));
            self.saved_node_id = Some(own);
        }
        {
            let mut records = lock(&self.records);
            if !records.latest.is_empty() {
                out.extend(records.latest.drain().map(|(key, latest)| match latest {
                    Some(item) => Change::PutRecord {
                        key,
                        record: to_persisted(&item, anchor),
                    },
                    None => Change::RemoveRecord { key },
                }));
            }
        }
        if now >= self.next_contacts_check {
            self.check_contacts(own, routing, now, out);
        }
    }

    /// When [`Journal::take`] next compares the contacts.
    pub fn next_check(&self) -> Instant {
        self.next_contacts_check
    }

    /// Have the next [`Journal::take`] at `now` or later compare the
    /// contacts whenever it was due (at shutdown: the contacts of a node
    /// that ran less than a check interval are all it has to come back with).
    pub fn check_contacts_by(&mut self, now: Instant) {
        self.next_contacts_check = self.next_contacts_check.min(now);
    }

    fn check_contacts(
        &mut self,
        own: NodeId,
        routing: &RoutingTable,
        now: Instant,
        out: &mut Vec<Change>,
    ) {
        let mut contacts = routing.contacts();
        // A node that lost every contact (its network went down) keeps the
        // old list: it is its only way back in at the next start.
        if !contacts.is_empty() {
            contacts.sort_by_key(|c| own.distance(&c.id));
            if contacts != self.saved_contacts {
                out.push(Change::SetContacts(contacts.clone()));
                self.saved_contacts = contacts;
            }
        }
        let gap = if self.saved_contacts.len() < self.k {
            CONTACTS_CHECK_SHORT
        } else {
            CONTACTS_CHECK
        };
        self.next_contacts_check = now + gap;
    }
}

/// A stored value as the data directory keeps it.
pub fn to_persisted(item: &StoredValue, anchor: &ClockAnchor) -> PersistedRecord {
    let kind = match item.origin {
        Origin::Held => RecordKind::Held,
        Origin::Cached => RecordKind::Cached,
        // The publisher's copy always expires one TTL after its last
        // (re)publication: records.rs sets both together.
        Origin::Published { ttl } => RecordKind::Published {
            ttl,
            last_published_unix_ms: anchor
                .to_unix_ms(item.expires_at)
                .saturating_sub(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        },
    };
    PersistedRecord {
        value: item.value.clone(),
        expires_at_unix_ms: anchor.to_unix_ms(item.expires_at),
        kind,
    }
}

/// A record read from the data directory, in this run's `Instant`s.
pub fn from_persisted(record: &PersistedRecord, anchor: &ClockAnchor) -> StoredValue {
    let origin = match record.kind {
        RecordKind::Held => Origin::Held,
        RecordKind::Cached => Origin::Cached,
        RecordKind::Published { ttl, .. } => Origin::Published { ttl },
    };
    StoredValue {
        value: record.value.clone(),
        expires_at: anchor.to_instant(record.expires_at_unix_ms),
        origin,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::storage::MemoryStorage;
    use crate::value::Value;

    fn held(now: Instant, v: &str) -> StoredValue {
        StoredValue {
            value: Value::from(v),
            expires_at: now + Duration::from_secs(60),
            origin: Origin::Held,
        }
    }

    fn setup(
        max_values: usize,
    ) -> (
        Journal,
        Box<dyn Storage>,
        RoutingTable,
        Instant,
        ClockAnchor,
    ) {
        let now = Instant::now();
        let anchor = ClockAnchor::new(now, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let restored = Journal::restore(
            Box::new(MemoryStorage::new(max_values, 1 << 20)),
            &[],
            &anchor,
            Some(NodeId::default()),
            Vec::new(),
            20,
            now,
        );
        let table = RoutingTable::new(NodeId::default(), 20, 3, now);
        (restored.journal, restored.storage, table, now, anchor)
    }

    #[test]
    fn refused_puts_and_missing_removals_are_not_journaled() {
        let (mut journal, mut storage, table, now, anchor) = setup(1);
        let (a, b) = (NodeId::digest(b"a"), NodeId::digest(b"b"));
        storage.put(a, held(now, "a")).unwrap();
        assert!(storage.put(b, held(now, "b")).is_err(), "over the limit");
        assert!(storage.remove(&b).is_none());
        let mut out = Vec::new();
        journal.take(NodeId::default(), &table, now, &anchor, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(&out[0], Change::PutRecord { key, .. } if *key == a));
    }

    #[test]
    fn contacts_are_saved_when_they_change_and_never_emptied() {
        let (mut journal, _, mut table, now, anchor) = setup(10);
        let peer = Contact::new(NodeId::digest(b"p"), "127.0.0.1:1".parse().unwrap());
        table.insert(peer, now);
        let mut out = Vec::new();
        journal.take(NodeId::default(), &table, now, &anchor, &mut out);
        assert_eq!(out, vec![Change::SetContacts(vec![peer])]);
        // Unchanged: nothing, even when due.
        let mut out = Vec::new();
        let later = now + Duration::from_secs(2);
        journal.take(NodeId::default(), &table, later, &anchor, &mut out);
        assert!(out.is_empty());
        // Not due yet: not compared.
        table.remove(&peer.id);
        journal.take(NodeId::default(), &table, later, &anchor, &mut out);
        assert!(out.is_empty());
        // Due, table empty: the saved list stays.
        let much_later = later + Duration::from_secs(2);
        journal.take(NodeId::default(), &table, much_later, &anchor, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
