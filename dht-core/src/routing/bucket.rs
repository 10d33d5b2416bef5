//! One k-bucket: the contacts of one block of the id space, least recently
//! seen first, and the replacement cache of those waiting for a slot.

use crate::id::NodeId;
use crate::stored_contact::{ContactBook, StoredContact};

#[derive(Debug)]
pub(super) struct Bucket {
    /// The bucket covers the ids whose first `depth` bits are its prefix.
    pub(super) depth: u8,
    /// Whether the bucket covers our own id. Its prefix then is our id's
    /// first `depth` bits; otherwise it holds the ids that part from ours at
    /// bit `depth - 1` (only the bucket covering our id ever splits). So the
    /// 20-byte prefix is not stored: a bucket takes 64 bytes instead of 80,
    /// and a node has 10–20 of them.
    pub(super) holds_own: bool,
    /// Least recently seen first.
    pub(super) entries: Vec<StoredContact>,
    /// Most recently seen last (their failures and last-seen time are
    /// unused).
    pub(super) replacements: Vec<StoredContact>,
    /// Last time a lookup targeted this bucket's range (drives refresh), in
    /// nanoseconds after the table's epoch: 8 bytes where an `Instant`
    /// takes 16, so that with `depth` and `holds_own` a bucket takes 64
    /// bytes, not 72. Whole seconds would fit in 4 but save nothing here
    /// (the bucket is 8-aligned), and would move some refreshes to a later
    /// maintenance tick.
    pub(super) touched: u64,
}

impl Bucket {
    /// The first `depth` bits of the ids the bucket covers, the rest zero
    /// (`own` is the table's own id).
    pub(super) fn prefix(&self, own: &NodeId) -> NodeId {
        let depth = usize::from(self.depth);
        let mut prefix = *own;
        if !self.holds_own && depth > 0 {
            let at = depth - 1;
            prefix.0[at / 8] ^= 0x80 >> (at % 8);
        }
        for (i, byte) in prefix.0.iter_mut().enumerate() {
            let kept = depth.saturating_sub(i * 8).min(8);
            // The first `kept` bits of this byte (0xFF << 8 overflows a u8).
            *byte &= !(0xFFu16 >> kept) as u8;
        }
        prefix
    }

    /// Whether `id` is in the bucket's block (`own` is the table's own id).
    /// The table finds a bucket by `bucket_by_prefix_len` instead; the tests
    /// check the two agree.
    #[cfg(test)]
    pub(super) fn covers(&self, id: &NodeId, own: &NodeId) -> bool {
        let shared = own.common_prefix_len(id);
        let depth = usize::from(self.depth);
        if self.holds_own {
            shared >= depth
        } else {
            shared + 1 == depth
        }
    }

    /// Where `id` is among the entries. Searched from the most recently
    /// seen end: a contact is mostly looked up because it just wrote to us,
    /// and the peers a node talks with keep talking.
    pub(super) fn position(&self, id: &NodeId, book: &ContactBook) -> Option<usize> {
        self.entries.iter().rposition(|e| book.is(e, id))
    }

    /// Append an entry (the caller keeps `entries.len()` below the
    /// bucket's capacity, `max`).
    pub(super) fn push_entry(&mut self, entry: StoredContact, max: usize) {
        grow_towards(&mut self.entries, max);
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
/// growing by half from 4 (4, 6, 9, 13, 19, 20 for k = 20), never past
/// `max`. Growth by doubling alone would leave 32 slots for k = 20
/// contacts; room for `max` from the first one would leave most of it empty
/// in the buckets near our own id, which hold a few contacts each (at 10⁴
/// simulated nodes, 206 slots held 125 entries and 68 held 39 replacements
/// when capacities doubled up to `max`). A bucket fills once, so the two
/// extra copies of a growing bucket cost nothing that lasts.
fn grow_towards(list: &mut Vec<StoredContact>, max: usize) {
    let capacity = list.capacity();
    if list.len() < capacity {
        return;
    }
    let target = (capacity + capacity / 2)
        .max(4)
        .min(max.max(list.len() + 1));
    list.reserve_exact(target - list.len());
}
