//! One k-bucket: the contacts of one block of the id space, least recently
//! seen first, and the replacement cache of those waiting for a slot.

use crate::id::NodeId;
use crate::stored_contact::{ContactBook, StoredContact};

#[derive(Debug)]
pub(super) struct Bucket {
    /// The bucket covers ids whose first `depth` bits equal `prefix`'s.
    pub(super) prefix: NodeId,
    pub(super) depth: u8,
    /// Least recently seen first.
    pub(super) entries: Vec<StoredContact>,
    /// Most recently seen last (their `failures` and `seen` are unused).
    pub(super) replacements: Vec<StoredContact>,
    /// Last time a lookup targeted this bucket's range (drives refresh), in
    /// nanoseconds after the table's epoch: 8 bytes where an `Instant`
    /// takes 16, so that with `depth` a byte a bucket takes 80 bytes, not
    /// 96 (a node has 10–17 of them). Whole seconds would fit in 4 but
    /// save nothing here (the bucket is 8-aligned), and would move some
    /// refreshes to a later maintenance tick.
    pub(super) touched: u64,
}

impl Bucket {
    pub(super) fn covers(&self, id: &NodeId) -> bool {
        self.prefix.common_prefix_len(id) >= usize::from(self.depth)
    }

    /// Where `id` is among the entries. Searched from the most recently
    /// seen end: a contact is mostly looked up because it just wrote to us,
    /// and the peers a node talks with keep talking.
    pub(super) fn position(&self, id: &NodeId, book: &ContactBook) -> Option<usize> {
        self.entries.iter().rposition(|e| book.is(e, id))
    }

    /// Append an entry (the caller keeps `entries.len() < k`).
    pub(super) fn push_entry(&mut self, entry: StoredContact, k: usize) {
        grow_towards(&mut self.entries, k);
        self.entries.push(entry);
    }

    /// Append a waiting contact, dropping the oldest one past `max`; returns
    /// the dropped one.
    pub(super) fn push_replacement(
        &mut self,
        contact: StoredContact,
        max: usize,
    ) -> Option<StoredContact> {
        if max == 0 {
            return Some(contact);
        }
        let dropped = (self.replacements.len() >= max).then(|| self.replacements.remove(0));
        grow_towards(&mut self.replacements, max);
        self.replacements.push(contact);
        dropped
    }
}

/// Make room for one more in `list`, which never holds more than `max`:
/// doubling from 4, but never past `max`. Growth by doubling alone would
/// leave 32 slots for k = 20 contacts; room for `max` from the first one
/// would leave most of it empty in the buckets near our own id, which hold
/// a few contacts each (at 10⁴ simulated nodes, 206 slots held 125 entries
/// and 68 held 39 replacements).
fn grow_towards(list: &mut Vec<StoredContact>, max: usize) {
    let capacity = list.capacity();
    if list.len() < capacity {
        return;
    }
    let target = (capacity * 2).max(4).min(max.max(list.len() + 1));
    list.reserve_exact(target - list.len());
}
