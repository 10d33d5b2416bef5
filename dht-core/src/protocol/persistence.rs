//! A protocol that survives restarts: built from a data directory's
//! [`Snapshot`] (same id, saved contacts, saved records) and journaling what
//! changes afterwards for its driver to save. Nothing here touches the disk
//! or reads a clock: the driver loads the snapshot, owns the
//! [`ClockAnchor`] that converts between `Instant`s and wall-clock times,
//! and commits what [`Protocol::take_persist_changes`] hands it.

use std::time::Instant;

use tracing::{info, warn};

use super::Protocol;
use crate::config::Config;
use crate::error::Result;
use crate::journal::Journal;
use crate::persist::{Change, ClockAnchor, Snapshot};
use crate::storage::{MemoryStorage, Storage};

impl Protocol {
    /// A node that continues from `snapshot` (an empty one for a new data
    /// directory), keeping values in memory. See [`Protocol::restore_with_storage`].
    pub fn restore(
        config: Config,
        snapshot: &Snapshot,
        anchor: &ClockAnchor,
        now: Instant,
    ) -> Result<Self> {
        let storage = MemoryStorage::for_config(&config);
        Self::restore_with_storage(config, Box::new(storage), snapshot, anchor, now)
    }

    /// A node that continues from `snapshot`: the saved id (unless
    /// `config.node_id` names another one, which then replaces it), the
    /// saved contacts in its routing table, and the saved records in
    /// `storage` (which should be empty), their wall-clock expiries read
    /// through `anchor`. Held and published records are re-sent soon, spread
    /// over one maintenance interval; a published one is republished with its
    /// full TTL, as it would have been had the node kept running. From here
    /// on every change is journaled for [`Protocol::take_persist_changes`].
    pub fn restore_with_storage(
        mut config: Config,
        storage: Box<dyn Storage>,
        snapshot: &Snapshot,
        anchor: &ClockAnchor,
        now: Instant,
    ) -> Result<Self> {
        match (config.node_id, snapshot.node_id) {
            (None, saved) => config.node_id = saved,
            (Some(asked), Some(saved)) if asked != saved => {
                warn!(%saved, %asked, "the configured node id replaces the saved one");
            }
            _ => {}
        }
        let restored = Journal::restore(
            storage,
            &snapshot.records,
            anchor,
            snapshot.node_id,
            snapshot.contacts.clone(),
            config.k,
            now,
        );
        if restored.dropped > 0 {
            warn!(
                dropped = restored.dropped,
                "saved records beyond the storage limits were dropped"
            );
        }
        let mut protocol = Self::with_storage(config, restored.storage, now)?;
        protocol.import_contacts(now, &snapshot.contacts);
        protocol.journal = Some(Box::new(restored.journal));
        info!(
            id = %protocol.id,
            records = protocol.records.len(),
            contacts = protocol.contacts.table().len(),
            expired_while_down = snapshot.expired_dropped,
            "state restored from the data directory"
        );
        Ok(protocol)
    }

    /// Whether this protocol journals its changes (it was built by
    /// [`Protocol::restore`]).
    pub fn is_persistent(&self) -> bool {
        self.journal.is_some()
    }

    /// Moves the changes not handed out yet into `out`, times converted with
    /// `anchor`: the node id the first time, every record put, replaced,
    /// removed or expired (one change per key, the latest), and the routing
    /// contacts when they differ from the saved list (compared at most once a
    /// second, and every 30 s once a bucket's worth is saved). Cheap when
    /// nothing changed; nothing for a protocol that is not persistent.
    pub fn take_persist_changes(
        &mut self,
        now: Instant,
        anchor: &ClockAnchor,
        out: &mut Vec<Change>,
    ) {
        if let Some(journal) = &mut self.journal {
            journal.take(self.id, self.contacts.table(), now, anchor, out);
        }
    }

    /// Have the next [`Protocol::take_persist_changes`] (at `now` or later)
    /// save the contacts if they changed, however recently they were
    /// compared: for the last one, at shutdown.
    pub fn save_contacts_by(&mut self, now: Instant) {
        if let Some(journal) = &mut self.journal {
            journal.check_contacts_by(now);
        }
    }

    /// When [`Protocol::take_persist_changes`] next has a contact check to
    /// make (a driver that is otherwise idle wakes for it).
    pub fn persist_deadline(&self) -> Option<Instant> {
        self.journal.as_ref().map(|j| j.next_check())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::id::NodeId;
    use crate::persist::{PersistedRecord, RecordKind};
    use crate::protocol::PutOptions;
    use crate::storage::Origin;
    use crate::value::Value;

    const T0_MS: u64 = 1_700_000_000_000;

    fn anchor_at(now: Instant, unix_ms: u64) -> ClockAnchor {
        ClockAnchor::new(now, UNIX_EPOCH + Duration::from_millis(unix_ms))
    }

    fn fresh(now: Instant, anchor: &ClockAnchor) -> Protocol {
        let config = Config::default().with_rng_seed(7);
        Protocol::restore(config, &Snapshot::default(), anchor, now).unwrap()
    }

    fn apply(snapshot: &mut Snapshot, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::SetNodeId(id) => snapshot.node_id = Some(id),
                Change::SetContacts(c) => snapshot.contacts = c,
                Change::PutRecord { key, record } => {
                    snapshot.records.retain(|(k, _)| *k != key);
                    snapshot.records.push((key, record));
                }
                Change::RemoveRecord { key } => snapshot.records.retain(|(k, _)| *k != key),
            }
        }
    }

    #[test]
    fn a_plain_protocol_journals_nothing() {
        let now = Instant::now();
        let mut p = Protocol::new(Config::default().with_rng_seed(1), now).unwrap();
        let key = NodeId::digest(b"k");
        p.store_local(now, key, Value::from(1i64), PutOptions::default())
            .unwrap();
        let mut out = Vec::new();
        p.take_persist_changes(now, &ClockAnchor::now(), &mut out);
        assert!(out.is_empty());
        assert!(!p.is_persistent());
    }

    #[test]
    fn id_records_and_removals_are_journaled_once_per_key() {
        let now = Instant::now();
        let anchor = anchor_at(now, T0_MS);
        let mut p = fresh(now, &anchor);
        let mut out = Vec::new();
        p.take_persist_changes(now, &anchor, &mut out);
        assert_eq!(out, vec![Change::SetNodeId(p.id())]);

        let (a, b) = (NodeId::digest(b"a"), NodeId::digest(b"b"));
        let ttl = Duration::from_secs(60);
        let opts = PutOptions {
            ttl: Some(ttl),
            replication: None,
            ..PutOptions::default()
        };
        p.store_local(now, a, Value::from("one"), opts.clone())
            .unwrap();
        p.store_local(now, a, Value::from("two"), opts.clone())
            .unwrap();
        p.store_local(now, b, Value::from("b"), opts).unwrap();
        let mut out = Vec::new();
        p.take_persist_changes(now, &anchor, &mut out);
        out.sort_by_key(|c| match c {
            Change::PutRecord { key, .. } => *key,
            _ => NodeId::default(),
        });
        let expected_a = PersistedRecord {
            value: Value::from("two"),
            expires_at_unix_ms: T0_MS + 60_000,
            kind: RecordKind::Published {
                ttl,
                last_published_unix_ms: T0_MS,
            },
        };
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.contains(&Change::PutRecord {
            key: a,
            record: expected_a
        }));

        // Expiry is a removal.
        p.handle_timeout(now + Duration::from_secs(61));
        let mut out = Vec::new();
        p.take_persist_changes(now + Duration::from_secs(61), &anchor, &mut out);
        assert!(out.contains(&Change::RemoveRecord { key: a }));
        assert!(out.contains(&Change::RemoveRecord { key: b }));
        let mut out = Vec::new();
        p.take_persist_changes(now + Duration::from_secs(62), &anchor, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_restored_node_keeps_its_id_records_and_contacts() {
        let now = Instant::now();
        let anchor = anchor_at(now, T0_MS);
        let mut p = fresh(now, &anchor);
        let key = NodeId::digest(b"k");
        let opts = PutOptions {
            ttl: Some(Duration::from_secs(3600)),
            replication: None,
            ..PutOptions::default()
        };
        p.store_local(now, key, Value::from("v"), opts).unwrap();
        let peer = crate::contact::Contact::new(
            NodeId::digest(b"peer"),
            "127.0.0.1:4000".parse().unwrap(),
        );
        p.import_contacts(now, &[peer]);
        let mut snapshot = Snapshot::default();
        let mut out = Vec::new();
        p.take_persist_changes(now, &anchor, &mut out);
        apply(&mut snapshot, out);
        assert_eq!(snapshot.contacts, vec![peer]);

        // Ten minutes later, in a new process with an unrelated Instant base.
        let now2 = now + Duration::from_secs(5);
        let anchor2 = anchor_at(now2, T0_MS + 600_000);
        let mut q = Protocol::restore(Config::default(), &snapshot, &anchor2, now2).unwrap();
        assert_eq!(q.id(), p.id());
        assert_eq!(q.routing().contacts(), vec![peer]);
        let item = q.local_record(&key, now2).unwrap();
        assert_eq!(item.value, Value::from("v"));
        assert_eq!(item.expires_at, now2 + Duration::from_secs(3000));
        assert!(matches!(item.origin, Origin::Published { .. }));
        // Nothing to save: all of it came from disk.
        let mut out = Vec::new();
        q.take_persist_changes(now2, &anchor2, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_value_expires_while_the_node_is_down() {
        // TTL 60 s, put at T0, node down for 90 s: the data directory drops it
        // at load, and a record that slipped through expires at once.
        let now = Instant::now();
        let anchor = anchor_at(now, T0_MS);
        let mut p = fresh(now, &anchor);
        let key = NodeId::digest(b"k");
        let opts = PutOptions {
            ttl: Some(Duration::from_secs(60)),
            replication: None,
            ..PutOptions::default()
        };
        p.store_local(now, key, Value::from("v"), opts).unwrap();
        let mut snapshot = Snapshot::default();
        let mut out = Vec::new();
        p.take_persist_changes(now, &anchor, &mut out);
        apply(&mut snapshot, out);
        let anchor2 = anchor_at(now, T0_MS + 90_000);
        let mut q = Protocol::restore(Config::default(), &snapshot, &anchor2, now).unwrap();
        assert_eq!(q.local_value(&key, now), None);
        q.handle_timeout(now);
        let mut out = Vec::new();
        q.take_persist_changes(now, &anchor2, &mut out);
        assert!(out.contains(&Change::RemoveRecord { key }), "{out:?}");
    }
}
