//! One k-bucket: the contacts of one block of the id space, least recently
//! seen first, and the replacement cache of those waiting for a slot.

use std::time::Instant;

use crate::id::NodeId;
use crate::stored_contact::StoredContact;

#[derive(Debug)]
pub(super) struct Bucket {
    /// The bucket covers ids whose first `depth` bits equal `prefix`'s.
    pub(super) prefix: NodeId,
    pub(super) depth: usize,
    /// Least recently seen first.
    pub(super) entries: Vec<StoredContact>,
    /// Most recently seen last (their `failures` and `seen` are unused).
    pub(super) replacements: Vec<StoredContact>,
    /// Last time a lookup targeted this bucket's range (drives refresh).
    pub(super) touched: Instant,
}

impl Bucket {
    pub(super) fn covers(&self, id: &NodeId) -> bool {
        self.prefix.common_prefix_len(id) >= self.depth
    }

    /// Where `id` is among the entries. Searched from the most recently
    /// seen end: a contact is mostly looked up because it just wrote to us,
    /// and the peers a node talks with keep talking.
    pub(super) fn position(&self, id: &NodeId) -> Option<usize> {
        self.entries.iter().rposition(|e| e.id == *id)
    }

    /// Append an entry (the caller keeps `entries.len() < k`). The first one
    /// reserves exactly k slots: growth by doubling would leave 32 slots for
    /// 20 entries in every bucket of every node (a third of a simulated
    /// node's table), and a bucket that never gets an entry costs nothing.
    pub(super) fn push_entry(&mut self, entry: StoredContact, k: usize) {
        if self.entries.capacity() == 0 {
            self.entries.reserve_exact(k);
        }
        self.entries.push(entry);
    }

    /// Append a waiting contact, dropping the oldest one past `max`; returns
    /// the dropped one. Allocated on first use, at its final size.
    pub(super) fn push_replacement(
        &mut self,
        contact: StoredContact,
        max: usize,
    ) -> Option<StoredContact> {
        if max == 0 {
            return Some(contact);
        }
        let dropped = (self.replacements.len() >= max).then(|| self.replacements.remove(0));
        if self.replacements.capacity() == 0 {
            self.replacements.reserve_exact(max);
        }
        self.replacements.push(contact);
        dropped
    }
}
