//! The routing table: k-buckets over the 160-bit id space.
//!
//! Buckets partition the id space by prefix and start as one bucket covering
//! everything. A full bucket splits only when it covers our own id (the
//! paper's basic rule), so whatever ids arrive the table holds at most
//! 161 buckets of k contacts (the three furthest hold more, see
//! `FAR_BUCKET_WIDTHS`) and `closest()` reads a bounded amount: made-up
//! ids near our own cannot grow it without bound, as bmuller's relaxed rule
//! allowed. Otherwise the newcomer waits in the bucket's replacement cache
//! and the least-recently-seen contact is pinged: long-lived contacts are kept
//! while they answer, and only `max_failures` consecutive missed replies
//! evict one.
//!
//! IP diversity: at most `per_subnet_per_bucket` contacts of one /24 (IPv4)
//! or /64 (IPv6) in a bucket and `per_ip` contacts of one address in the whole
//! table, so one host cannot fill the table with ids of its choosing.
//! Local addresses are exempt unless `strict_local` is set. A known id keeps
//! its address: a claim of it from another address is reported as a
//! conflict for the caller to check, never applied.
//!
//! Contacts are stored packed (`stored_contact`); a table given a
//! [`ContactDirectory`] (a simulated network) keeps the contacts it lists
//! as numbers, which changes where the table keeps them, never which.

use std::time::Instant;

use std::collections::HashMap;
use std::net::IpAddr;

mod bucket;
mod far;
mod ip_limits;
mod nearest;

use bucket::Bucket;
pub use far::FarTarget;
pub use ip_limits::IpLimits;
pub use nearest::Counting;

use crate::contact::Contact;
use crate::directory::ContactDirectory;
use crate::id::{NodeId, ID_LEN};
use crate::stored_contact::{ContactBook, StoredContact, MAX_FAILURES_COUNTED};

/// Contacts waiting in one bucket's replacement cache, at most (fewer if k
/// is smaller). A waiting contact takes the place of an entry evicted for
/// missing replies; a bucket that lost entries otherwise refills from the
/// contacts it hears from next, and a full bucket (the far ones, which
/// cover most of the network) hears from new contacts all the time. So a
/// few suffice: libp2p-kad and OpenDHT keep one, bmuller's `kademlia` 5k.
/// With k waiting per bucket they were 2.3 KB of a 3·10⁴-node simulated
/// node (heaptrack), more than any part but the table and the peer book.
pub const REPLACEMENTS_PER_BUCKET: usize = 4;

/// How many times k contacts the buckets that part from our id at bit 0,
/// 1 and 2 hold: the far half of the id space, its quarter and its
/// eighth. Further buckets, and ours, hold k.
///
/// A get needs one RPC when our table knows one of the k nodes closest to
/// its key (`ops/get.rs`), and most keys lie in these buckets (7 of 8),
/// which cover most of the network with k contacts each: at 1,000 nodes
/// k = 20 of the far half's 500. Their extra room is filled only by the
/// contacts a node hears from (a joining node still fills k, `far.rs`), so
/// it costs no datagrams and grows with the traffic. Measured against k
/// everywhere (`bench --nodes 1000 --ops 300 --phases seq`): gets answered
/// by the one likely holder asked first 142–154 → 186–193 of 300, RPCs a
/// get 3.0–3.15 → 2.37–2.55; at 256 nodes 194–199 → 264–265, RPCs 1.9 →
/// 1.1;
/// `simulate --nodes 10000 --gets 2000 --seed 42`: RPCs a lookup 5.12 →
/// 4.90, datagrams +0.8%, peak RSS +3%. Widths 8, 4, 2 gained little more
/// (at 10^3 simulated nodes 2.31 RPCs a lookup against 2.32).
const FAR_BUCKET_WIDTHS: [usize; 3] = [4, 2, 2];

/// One routing-table entry, as handed out (the table stores it packed, see
/// the `stored_contact` module; `last_seen` is kept to the second).
#[derive(Clone, Debug)]
pub struct Entry {
    pub contact: Contact,
    /// Consecutive RPCs this contact failed to answer.
    pub failures: u32,
    pub last_seen: Instant,
}

/// What happened to a contact offered to the table.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// A new contact took a free slot.
    Added,
    /// Already known: moved to the most-recently-seen end, failures cleared.
    Refreshed,
    /// The bucket is full; the contact waits in the replacement cache. The
    /// caller should ping `oldest` and report the outcome.
    Full { oldest: Contact },
    /// Our own id, never stored.
    Ignored,
    /// Over an IP diversity limit: not stored, not waiting.
    Refused,
    /// The id is known at another address: nothing changed. The caller
    /// should check that the known address still answers.
    AddressConflict { known: Contact },
}

/// The k-bucket routing table of one node. Pure data: no I/O, no clock.
#[derive(Debug)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    max_replacements: usize,
    max_failures: u32,
    limits: IpLimits,
    /// When the table was created: stored contacts count seconds from it.
    epoch: Instant,
    /// Contacts (entries and replacements) per IP, where limits apply: made
    /// at the first such contact (none in a simulation on private addresses;
    /// an empty map takes 48 bytes).
    #[allow(clippy::box_collection)] // 8 bytes while absent, not 48
    per_ip: Option<Box<HashMap<IpAddr, usize>>>,
    /// What the stored contacts do not hold themselves (see `stored_contact`).
    book: ContactBook,
    /// Ordered by prefix, so they tile the id space from 0 to 2^160-1.
    buckets: Vec<Bucket>,
    /// The bucket of an id sharing `c` leading bits with ours, at `c` (and
    /// at the last place for all `c` past it): only the bucket covering our
    /// own id ever splits, so the others are one per prefix length. Finding
    /// a bucket is then one lookup instead of a binary search comparing
    /// 20-byte prefixes, and it is done for every datagram received.
    bucket_by_prefix_len: Vec<u8>,
    /// Contacts moved from a replacement cache into a bucket (by a split or
    /// an eviction) since the last [`RoutingTable::take_promoted`]: they are
    /// new to the table's users although `insert` never reported them.
    promoted: Vec<Contact>,
}

impl RoutingTable {
    pub fn new(own: NodeId, k: usize, max_failures: u32, now: Instant) -> Self {
        RoutingTable {
            own,
            k,
            max_replacements: k.min(REPLACEMENTS_PER_BUCKET),
            max_failures,
            limits: IpLimits::NONE,
            epoch: now,
            per_ip: None,
            book: ContactBook::default(),
            buckets: vec![Bucket {
                holds_own: true,
                depth: 0,
                entries: Vec::new(),
                replacements: Vec::new(),
                touched: 0,
            }],
            bucket_by_prefix_len: vec![0],
            promoted: Vec::new(),
        }
    }

    /// Keep the contacts `directory` lists as numbers (see
    /// [`crate::directory`]). Only for a new table (the protocol gives it
    /// when it builds one): the contacts held so far would lose their slots.
    ///
    /// # Panics
    /// If the table holds contacts or replacements already.
    pub(crate) fn with_directory(
        mut self,
        directory: std::sync::Arc<dyn ContactDirectory>,
    ) -> Self {
        let held = self
            .buckets
            .iter()
            .any(|b| !b.entries.is_empty() || !b.replacements.is_empty());
        assert!(!held, "a directory is given to an empty table");
        self.book = ContactBook::with_directory(directory);
        self
    }

    /// A stored contact leaves the table (an entry or a replacement).
    fn forget(&mut self, gone: &StoredContact) {
        self.count_out(self.book.ip(gone));
        self.book.forget(gone);
    }

    /// Contacts promoted from replacement caches since the last call.
    pub fn take_promoted(&mut self) -> Vec<Contact> {
        std::mem::take(&mut self.promoted)
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        let shared = self.own.common_prefix_len(id);
        let last = self.bucket_by_prefix_len.len() - 1;
        let index = usize::from(self.bucket_by_prefix_len[shared.min(last)]);
        // Buckets are sorted by prefix and tile the space: the covering bucket
        // is the last one whose lower bound (prefix) is <= id.
        debug_assert_eq!(
            index,
            self.buckets
                .partition_point(|b| b.prefix(&self.own) <= *id)
                .saturating_sub(1)
        );
        index
    }

    /// Rebuild [`RoutingTable::bucket_by_prefix_len`] after a split.
    fn index_buckets(&mut self) {
        let own_depth = self.buckets.len() - 1;
        let mut by_len = vec![0u8; own_depth + 1];
        for (i, bucket) in self.buckets.iter().enumerate() {
            // The bucket covering our id has the greatest depth; any other
            // holds the ids that part from ours at its last prefix bit.
            let shared = if bucket.holds_own {
                own_depth
            } else {
                usize::from(bucket.depth) - 1
            };
            // At most 161 buckets (one per prefix length and ours).
            by_len[shared] = u8::try_from(i).unwrap_or(u8::MAX);
        }
        self.bucket_by_prefix_len = by_len;
    }

    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.entries.is_empty())
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn contains(&self, id: &NodeId) -> bool {
        self.buckets[self.bucket_index(id)]
            .position(id, &self.book)
            .is_some()
    }

    /// The entry of `id`, if the table holds it (a copy: the table stores
    /// entries packed).
    pub fn get(&self, id: &NodeId) -> Option<Entry> {
        let b = &self.buckets[self.bucket_index(id)];
        b.position(id, &self.book)
            .map(|p| self.entry(&b.entries[p]))
    }

    fn entry(&self, stored: &StoredContact) -> Entry {
        Entry {
            contact: self.book.contact(stored),
            failures: u32::from(stored.failures()),
            last_seen: stored.last_seen(self.epoch),
        }
    }

    /// Every contact, bucket by bucket.
    pub fn contacts(&self) -> Vec<Contact> {
        self.buckets
            .iter()
            .flat_map(|b| b.entries.iter().map(|e| self.book.contact(e)))
            .collect()
    }

    /// Record that `contact` was heard from (a request from it, or a reply).
    pub fn insert(&mut self, contact: Contact, now: Instant) -> Insert {
        if contact.id == self.own {
            return Insert::Ignored;
        }
        loop {
            let index = self.bucket_index(&contact.id);
            let capacity = self.capacity(&self.buckets[index]);
            let bucket = &mut self.buckets[index];
            if let Some(pos) = bucket.position(&contact.id, &self.book) {
                if self.book.addr(&bucket.entries[pos]) != contact.addr {
                    let known = self.book.contact(&bucket.entries[pos]);
                    return Insert::AddressConflict { known };
                }
                bucket.entries[pos].heard_from(now, self.epoch);
                bucket.entries[pos..].rotate_left(1);
                return Insert::Refreshed;
            }
            let waiting = bucket
                .replacements
                .iter()
                .position(|c| self.book.is(c, &contact.id));
            let epoch = self.epoch;
            if waiting.is_none() && !self.admits(index, &contact.addr.ip()) {
                return Insert::Refused;
            }
            let bucket = &mut self.buckets[index];
            if let Some(pos) = waiting {
                let old = bucket.replacements.remove(pos);
                self.forget(&old);
            }
            let bucket = &mut self.buckets[index];
            if bucket.entries.len() < capacity {
                let entry = self.book.store(&contact, now, epoch);
                bucket.push_entry(entry, capacity);
                self.count_in(contact.addr.ip());
                return Insert::Added;
            }
            if usize::from(bucket.depth) < ID_LEN * 8 && bucket.holds_own {
                self.split(index);
                continue;
            }
            let oldest = self.book.contact(&bucket.entries[0]);
            let waiting = self.book.store(&contact, now, epoch);
            let dropped = bucket.push_replacement(waiting, self.max_replacements);
            self.count_in(contact.addr.ip());
            if let Some(dropped) = dropped {
                self.forget(&dropped);
            }
            return Insert::Full { oldest };
        }
    }

    /// How many contacts `bucket` holds at most: k, or more for the far
    /// buckets (see `FAR_BUCKET_WIDTHS`).
    fn capacity(&self, bucket: &Bucket) -> usize {
        let width = match usize::from(bucket.depth) {
            depth if bucket.holds_own || depth == 0 => 1,
            depth => FAR_BUCKET_WIDTHS.get(depth - 1).copied().unwrap_or(1),
        };
        self.k.saturating_mul(width)
    }

    fn split(&mut self, index: usize) {
        let old = self.buckets.remove(index);
        let depth = old.depth + 1;
        let at = usize::from(old.depth);
        // Only the bucket covering our id splits: our id goes to the half
        // its bit `at` names.
        let own_high = self.own.bit(at);
        let mut low = Bucket {
            depth,
            holds_own: !own_high,
            entries: Vec::new(),
            replacements: Vec::new(),
            touched: old.touched,
        };
        let mut high = Bucket {
            depth,
            holds_own: own_high,
            entries: Vec::new(),
            replacements: Vec::new(),
            touched: old.touched,
        };
        let (high_cap, low_cap) = (self.capacity(&high), self.capacity(&low));
        for e in old.entries {
            if self.book.bit(&e, at) {
                high.push_entry(e, high_cap)
            } else {
                low.push_entry(e, low_cap)
            }
        }
        for c in old.replacements {
            let (side, cap) = if self.book.bit(&c, at) {
                (&mut high, high_cap)
            } else {
                (&mut low, low_cap)
            };
            // A split leaves room: waiting replacements move straight in.
            if side.entries.len() < cap {
                self.promoted.push(self.book.contact(&c));
                let mut entry = c;
                entry.clear_failures();
                entry.set_seen_secs(seconds_since_nanos(old.touched));
                side.push_entry(entry, cap);
            } else {
                // At most max_replacements came from the old cache: none drops.
                // (Never drops one: a side gets at most the old cache.)
                if let Some(dropped) = side.push_replacement(c, self.max_replacements) {
                    self.forget(&dropped);
                }
            }
        }
        // One more bucket, and room for just that: growth by doubling would
        // leave ~15 unused 80-byte slots in a table of ~17 buckets.
        self.buckets.reserve_exact(2);
        self.buckets.insert(index, high);
        self.buckets.insert(index, low);
        self.index_buckets();
    }

    /// Record a missed reply. Returns true if the contact was evicted (after
    /// `max_failures` consecutive misses), in which case the most recently
    /// seen replacement takes its place.
    pub fn record_failure(&mut self, id: &NodeId) -> bool {
        let index = self.bucket_index(id);
        let max = self.max_failures;
        let bucket = &mut self.buckets[index];
        let Some(pos) = bucket.position(id, &self.book) else {
            return false;
        };
        let failures = bucket.entries[pos].add_failure();
        // Counts saturate (see `stored_contact`), and so does the limit.
        if u32::from(failures) < max.min(u32::from(MAX_FAILURES_COUNTED)) {
            return false;
        }
        let gone = bucket.entries.remove(pos);
        let promoted = bucket.replacements.pop();
        self.forget(&gone);
        let bucket = &mut self.buckets[index];
        if let Some(mut c) = promoted {
            self.promoted.push(self.book.contact(&c));
            // Promoted at the least-recently-seen end: it has not answered
            // us yet; it takes over the evicted entry's last-seen time.
            c.clear_failures();
            c.seen_as(&gone);
            bucket.entries.insert(0, c);
        }
        true
    }

    /// Does the bucket holding `id` have contacts waiting for a slot?
    pub fn has_replacements(&self, id: &NodeId) -> bool {
        !self.buckets[self.bucket_index(id)].replacements.is_empty()
    }

    pub fn remove(&mut self, id: &NodeId) -> bool {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        let waiting = bucket.replacements.iter().position(|c| self.book.is(c, id));
        let waiting = waiting.map(|pos| bucket.replacements.remove(pos));
        let entry = bucket
            .position(id, &self.book)
            .map(|pos| bucket.entries.remove(pos));
        if let Some(c) = waiting {
            self.forget(&c);
        }
        match entry {
            Some(e) => {
                self.forget(&e);
                true
            }
            None => false,
        }
    }

    /// Mark the bucket covering `target` as used by a lookup now.
    pub fn touch(&mut self, target: &NodeId, now: Instant) {
        let i = self.bucket_index(target);
        self.buckets[i].touched = nanos_since(self.epoch, now);
    }

    /// A random id in each bucket not touched since `stale_before`, to refresh.
    pub fn stale_bucket_targets<R: rand::Rng + ?Sized>(
        &self,
        stale_before: Instant,
        rng: &mut R,
    ) -> Vec<NodeId> {
        self.buckets
            .iter()
            .filter(|b| b.touched < nanos_since(self.epoch, stale_before))
            .map(|b| {
                b.prefix(&self.own)
                    .random_with_prefix(usize::from(b.depth), rng)
            })
            .collect()
    }
}

/// Nanoseconds from `epoch` to `at`, saturating (a bucket's refresh time).
fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Whole seconds in `nanos`, saturating (a contact's last-seen time).
fn seconds_since_nanos(nanos: u64) -> u32 {
    u32::try_from(nanos / 1_000_000_000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use std::net::SocketAddr;

    fn contact(id: NodeId, port: u16) -> Contact {
        Contact::new(id, SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn id_with_first_byte(b: u8, rest: u8) -> NodeId {
        let mut id = [rest; ID_LEN];
        id[0] = b;
        NodeId(id)
    }

    /// Misses are counted up to 15 (4 bits of a stored contact), and a
    /// larger `max_failures` counts as 15: the contact still goes.
    #[test]
    fn a_limit_past_the_counted_failures_evicts_at_the_count() {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; ID_LEN]), 4, 200, now);
        let a = contact(id_with_first_byte(0x80, 1), 1);
        t.insert(a, now);
        for miss in 1..u32::from(MAX_FAILURES_COUNTED) {
            assert!(!t.record_failure(&a.id), "evicted after {miss}");
            assert_eq!(t.get(&a.id).unwrap().failures, miss);
        }
        assert!(t.record_failure(&a.id));
        assert!(!t.contains(&a.id));
    }

    #[test]
    fn own_reach_is_the_distance_to_our_kth_closest_contact() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let mut t = RoutingTable::new(own, 3, 3, now);
        assert_eq!(t.own_reach(), u64::MAX, "nobody known");
        for (i, first) in [0x40u8, 0x10, 0x80, 0x20].into_iter().enumerate() {
            t.insert(contact(id_with_first_byte(first, 1), 10 + i as u16), now);
        }
        // The third closest of 0x10.., 0x20.., 0x40.., 0x80..
        let third = id_with_first_byte(0x40, 1).distance(&own).prefix64();
        assert_eq!(t.own_reach(), third);
    }

    #[test]
    fn own_id_never_stored_and_refresh_moves_to_tail() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let mut t = RoutingTable::new(own, 4, 3, now);
        assert_eq!(t.insert(contact(own, 1), now), Insert::Ignored);
        let a = contact(id_with_first_byte(0x80, 1), 1);
        let b = contact(id_with_first_byte(0x80, 2), 2);
        assert_eq!(t.insert(a, now), Insert::Added);
        assert_eq!(t.insert(b, now), Insert::Added);
        assert_eq!(t.insert(a, now), Insert::Refreshed);
        assert_eq!(
            t.contacts(),
            vec![b, a],
            "heard-from contact moves to the tail"
        );
    }

    #[test]
    fn bucket_with_own_id_splits_far_bucket_does_not() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let k = 4;
        let mut t = RoutingTable::new(own, k, 3, now);
        // Fill with far ids (first bit 1) and one near id: the root bucket covers
        // our id, so it splits into [0..] and [1..].
        for i in 0..k as u8 {
            assert_eq!(
                t.insert(
                    contact(id_with_first_byte(0x80 | i, i), 10 + u16::from(i)),
                    now
                ),
                Insert::Added
            );
        }
        assert_eq!(t.bucket_count(), 1);
        assert_eq!(
            t.insert(contact(id_with_first_byte(0x01, 9), 99), now),
            Insert::Added
        );
        assert_eq!(t.bucket_count(), 2);
        // The far half ([1...]) holds FAR_BUCKET_WIDTHS[0] times k.
        for i in k as u8..(FAR_BUCKET_WIDTHS[0] * k) as u8 {
            let far = contact(id_with_first_byte(0x80 | i, i), 10 + u16::from(i));
            assert_eq!(t.insert(far, now), Insert::Added);
        }
        // Full, and it does not cover our id: it never splits, the
        // newcomer waits and the oldest contact is to be pinged.
        let r = t.insert(contact(id_with_first_byte(0xC0, 99), 50), now);
        assert!(matches!(r, Insert::Full { .. }), "{r:?}");
        assert_eq!(t.bucket_count(), 2);
    }

    /// The three furthest buckets fill to their widths, the others to k.
    #[test]
    fn the_far_buckets_hold_their_widths_of_k() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let own = NodeId::random(&mut rng);
        let k = 4;
        let mut t = RoutingTable::new(own, k, 3, now);
        for i in 0..5000u16 {
            t.insert(contact(NodeId::random(&mut rng), i + 1), now);
        }
        let held: Vec<(u8, bool, usize)> = t
            .buckets
            .iter()
            .map(|b| (b.depth, b.holds_own, b.entries.len()))
            .collect();
        for &(depth, holds_own, len) in &held {
            let expected = match depth {
                1..=3 if !holds_own => FAR_BUCKET_WIDTHS[usize::from(depth) - 1] * k,
                _ => k,
            };
            // 5,000 random ids fill every bucket but the few nearest ours.
            if depth <= 8 {
                assert_eq!(len, expected, "{held:?}");
            }
            assert!(len <= expected, "{held:?}");
        }
    }

    #[test]
    fn crafted_ids_cannot_grow_the_table_without_bound() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let own = NodeId::random(&mut rng);
        let k = 20;
        let mut t = RoutingTable::new(own, k, 3, now);
        // 100,000 ids sharing ever longer prefixes with our own, plus random ones.
        for i in 0..100_000u32 {
            let depth = (i % 160) as usize;
            let id = if i % 2 == 0 {
                own.random_with_prefix(depth, &mut rng)
            } else {
                NodeId::random(&mut rng)
            };
            t.insert(contact(id, (i % 60_000) as u16 + 1), now);
        }
        println!(
            "100,000 crafted ids: {} contacts in {} buckets",
            t.len(),
            t.bucket_count()
        );
        assert!(t.bucket_count() <= ID_LEN * 8 + 1);
        let widths: usize = FAR_BUCKET_WIDTHS.iter().sum();
        let at_most = (ID_LEN * 8 + 1 - FAR_BUCKET_WIDTHS.len() + widths) * k;
        assert!(t.len() <= at_most, "{} contacts, over {at_most}", t.len());
    }

    #[test]
    fn one_address_cannot_fill_the_table_and_known_ids_keep_their_address() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let own = NodeId::random(&mut rng);
        let limits = IpLimits {
            per_subnet_per_bucket: 2,
            per_ip: 2,
            strict_local: false,
        };
        let mut t = RoutingTable::new(own, 8, 3, now).with_ip_limits(limits);
        let attacker = |port| SocketAddr::from(([203, 0, 113, 5], port));
        let admitted = (0..2000u16)
            .filter(|p| {
                t.insert(Contact::new(NodeId::random(&mut rng), attacker(p + 1)), now)
                    == Insert::Added
            })
            .count();
        assert_eq!(admitted, 2);
        // A neighbour in the same /24 gets at most two places per bucket.
        let neighbour = |i: u8, port| SocketAddr::from(([203, 0, 113, i], port));
        for i in 10..60u8 {
            t.insert(Contact::new(NodeId::random(&mut rng), neighbour(i, 1)), now);
        }
        for b in &t.buckets {
            let same = b
                .entries
                .iter()
                .filter(|e| matches!(t.book.ip(e), std::net::IpAddr::V4(v4) if v4.octets()[..3] == [203, 0, 113]))
                .count();
            assert!(same <= 2, "{same} contacts of one /24 in a bucket");
        }
        // Loopback is exempt unless strict.
        let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let local = (0..100u16)
            .filter(|p| {
                t.insert(Contact::new(NodeId::random(&mut rng), lo(p + 1)), now) == Insert::Added
            })
            .count();
        assert!(local > 2);
        // A known id claimed from another address changes nothing.
        let known = t.contacts()[0];
        let claim = Contact::new(known.id, SocketAddr::from(([198, 51, 100, 1], 9)));
        assert_eq!(t.insert(claim, now), Insert::AddressConflict { known });
        assert_eq!(t.get(&known.id).map(|e| e.contact.addr), Some(known.addr));
    }

    #[test]
    fn full_far_bucket_keeps_old_contacts_and_evicts_after_max_failures() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let k = 2;
        let mut t = RoutingTable::new(own, k, 3, now);
        // Ids parting from ours at bit 3 (0001...), past the wider far
        // buckets: their bucket holds k.
        let x = contact(id_with_first_byte(0b0001_1000, 1), 1);
        let y = contact(id_with_first_byte(0b0001_1100, 2), 2);
        let z = contact(id_with_first_byte(0b0001_1010, 3), 3);
        t.insert(x, now);
        t.insert(y, now);
        // Inserting a near contact splits the root and the buckets covering
        // our id (own-id rule) until x and y part from it.
        t.insert(contact(id_with_first_byte(0x00, 5), 5), now);
        assert_eq!(t.bucket_count(), 5);
        let r = t.insert(z, now);
        assert_eq!(r, Insert::Full { oldest: x });
        assert!(t.contains(&x.id) && !t.contains(&z.id));
        assert!(t.has_replacements(&x.id));
        // One or two missed replies do not evict.
        assert!(!t.record_failure(&x.id));
        assert!(!t.record_failure(&x.id));
        assert!(t.contains(&x.id));
        // An answer clears the failures.
        assert_eq!(t.insert(x, now), Insert::Refreshed);
        assert!(!t.record_failure(&x.id));
        assert!(!t.record_failure(&x.id));
        assert!(t.record_failure(&x.id));
        assert!(!t.contains(&x.id));
        assert!(t.contains(&z.id), "replacement promoted");
    }

    #[test]
    fn a_full_bucket_keeps_the_latest_few_waiting_and_promotes_the_newest() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let k = 20;
        let mut t = RoutingTable::new(own, k, 1, now);
        // Ids with a first bit of 1: the far half, which never splits once
        // a near contact has split the root.
        t.insert(contact(id_with_first_byte(0x01, 0), 1), now);
        let far = |i: u8| contact(id_with_first_byte(0x80 | i, i), 100 + u16::from(i));
        let capacity = (FAR_BUCKET_WIDTHS[0] * k) as u8;
        for i in 0..capacity {
            assert_eq!(t.insert(far(i), now), Insert::Added);
        }
        for i in capacity..capacity + 10 {
            assert!(matches!(t.insert(far(i), now), Insert::Full { .. }));
        }
        let bucket = &t.buckets[t.bucket_index(&far(0).id)];
        let waiting: Vec<NodeId> = bucket
            .replacements
            .iter()
            .map(|c| t.book.contact(c).id)
            .collect();
        let latest: Vec<NodeId> = (capacity + 6..capacity + 10).map(|i| far(i).id).collect();
        assert_eq!(
            waiting, latest,
            "the {REPLACEMENTS_PER_BUCKET} latest wait, oldest first"
        );
        // An evicted entry's place goes to the newest waiting contact.
        assert!(t.record_failure(&far(0).id));
        assert!(t.contains(&far(capacity + 9).id));
        assert_eq!(t.len(), usize::from(capacity) + 1);
    }

    #[test]
    fn closest_is_exact() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let own = NodeId::random(&mut rng);
        let mut t = RoutingTable::new(own, 8, 3, now);
        let mut all: Vec<Contact> = Vec::new();
        for i in 0..400u16 {
            let c = contact(NodeId::random(&mut rng), i + 1);
            if t.insert(c, now) == Insert::Added {
                all.push(c);
            }
        }
        assert_eq!(t.len(), all.len());
        for round in 0..300 {
            // Targets both random and equal to known ids (distance 0 included).
            let target = match round % 4 {
                0 => all[round % all.len()].id,
                // Near our id: inside our bucket, or parting from it deep.
                1 => own.random_with_prefix(round % 12, &mut rng),
                _ => NodeId::random(&mut rng),
            };
            let blocks: Vec<_> = t
                .buckets_by_distance(&target)
                .map(|i| {
                    let b = &t.buckets[i];
                    b.prefix(&own)
                        .distance(&target)
                        .truncated(usize::from(b.depth))
                })
                .collect();
            assert_eq!(blocks.len(), t.buckets.len());
            assert!(blocks.windows(2).all(|w| w[0] < w[1]), "{round}");
            let mut expected = all.clone();
            expected.sort_by_key(|c| c.id.distance(&target));
            expected.truncate(8);
            assert_eq!(t.closest(&target, 8, |_| false), expected);
            expected.truncate(3);
            assert_eq!(t.closest(&target, 3, |_| false), expected);
            // Leaving out half the contacts reads past a bucket's nearest.
            let odd_port = |c: &Contact| c.addr.port() % 2 == 1;
            let mut expected: Vec<Contact> = all.iter().filter(|c| !odd_port(c)).copied().collect();
            expected.sort_by_key(|c| c.id.distance(&target));
            expected.truncate(8);
            assert_eq!(t.closest(&target, 8, |e| odd_port(&e.contact)), expected);
        }
        let ex = all[0];
        assert!(!t
            .closest(&ex.id, 8, |e| e.contact.id == ex.id)
            .contains(&ex));
        // A contact that missed a reply is left out while enough others answer.
        let target = NodeId::random(&mut rng);
        let nearest = t.closest(&target, 8, |_| false);
        t.record_failure(&nearest[0].id);
        assert!(!t
            .closest_responsive(&target, 8, 3, |_| false)
            .contains(&nearest[0]));
        // With too few answering contacts (here: only two candidates at all,
        // one of them failing) the failing one is used after all.
        let only_two = |e: &Entry| e.contact.id != nearest[0].id && e.contact.id != nearest[1].id;
        assert_eq!(
            t.closest_responsive(&target, 8, 1, only_two),
            vec![nearest[1]]
        );
        assert_eq!(
            t.closest_responsive(&target, 8, 2, only_two),
            vec![nearest[0], nearest[1]]
        );
    }

    /// A table (k = 8) of up to 600 contacts, every fourth of which shares
    /// its first 40 bits with an earlier one: ids whose 32-bit heads, the
    /// table's first ordering, tie. Returns the table and its contacts.
    fn table_with_tied_heads(rng: &mut rand::rngs::StdRng) -> (RoutingTable, Vec<Contact>) {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId::random(rng), 8, 3, now);
        let mut all: Vec<Contact> = Vec::new();
        for i in 0..600u16 {
            let id = match all.get(usize::from(i) / 2) {
                Some(c) if i % 4 == 0 => c.id.random_with_prefix(40, rng),
                _ => NodeId::random(rng),
            };
            if t.insert(contact(id, i + 1), now) == Insert::Added {
                all.push(contact(id, i + 1));
            }
        }
        (t, all)
    }

    /// A target for round `round` of a test over `all`: one of their ids,
    /// an id sharing 36 bits with one, or any id, in turn.
    fn target_for_round(round: usize, all: &[Contact], rng: &mut rand::rngs::StdRng) -> NodeId {
        let near = all[round % all.len()].id;
        match round % 3 {
            0 => near,
            1 => near.random_with_prefix(36, rng),
            _ => NodeId::random(rng),
        }
    }

    /// `closest` against a full sort, where many ids share their first 40
    /// bits: the 32-bit heads it orders by first then tie, inside the
    /// nearest few and across the cut between those and the rest.
    #[test]
    fn closest_is_exact_where_id_heads_tie() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let (t, all) = table_with_tied_heads(&mut rng);
        let mut ties_among_nearest = 0;
        for round in 0..400 {
            let target = target_for_round(round, &all, &mut rng);
            let left_out = |c: &Contact| c.addr.port() % 3 == 0;
            for n in [1, 2, 3, 8, 20] {
                let mut expected = all.clone();
                expected.sort_by_key(|c| c.id.distance(&target));
                let mut kept: Vec<Contact> =
                    expected.iter().filter(|c| !left_out(c)).copied().collect();
                expected.truncate(n);
                kept.truncate(n);
                let heads = |cs: &[Contact]| {
                    cs.windows(2)
                        .filter(|w| {
                            w[0].id.distance(&target).0[..4] == w[1].id.distance(&target).0[..4]
                        })
                        .count()
                };
                ties_among_nearest += heads(&expected);
                assert_eq!(
                    t.closest(&target, n, |_| false),
                    expected,
                    "round {round}, n {n}"
                );
                assert_eq!(
                    t.closest(&target, n, |e| left_out(&e.contact)),
                    kept,
                    "round {round}, n {n}"
                );
            }
        }
        // The ties the test is about do occur among the answers.
        assert!(ties_among_nearest > 100, "{ties_among_nearest}");
    }

    /// `count_closer` against a count over every contact, on targets and
    /// distances that tie the 32-bit id heads the table orders by.
    #[test]
    fn count_closer_counts_what_a_full_scan_counts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let (mut t, all) = table_with_tied_heads(&mut rng);
        let own = t.own;
        let suspects: Vec<NodeId> = all.iter().step_by(5).map(|c| c.id).collect();
        for id in &suspects {
            t.record_failure(id);
        }
        let (mut counted, mut stopped_at_limit) = (0, 0);
        for round in 0..400 {
            let target = target_for_round(round, &all, &mut rng);
            let from = match round % 4 {
                0 => own,
                1 => all[(round * 7) % all.len()].id,
                2 => target.random_with_prefix(34, &mut rng),
                _ => NodeId::random(&mut rng),
            };
            let distance = from.distance(&target);
            let except = all[(round * 13) % all.len()].id;
            for live_only in [false, true] {
                for except in [None, Some(&except)] {
                    let full = all
                        .iter()
                        .filter(|c| c.id.distance(&target) < distance)
                        .filter(|c| !(live_only && suspects.contains(&c.id)))
                        .filter(|c| except != Some(&c.id))
                        .count();
                    let counting = Counting { live_only, except };
                    for limit in [1, 8, 40, usize::MAX] {
                        let got = t.count_closer(&target, &distance, limit, counting);
                        assert_eq!(got, full.min(limit), "round {round}, limit {limit}");
                        counted += got;
                        stopped_at_limit += usize::from(full > limit);
                    }
                }
            }
        }
        // The cases are not all trivial: some counts run into their limit,
        // and most find something to count.
        assert!(
            stopped_at_limit > 500 && counted > 20_000,
            "{stopped_at_limit} {counted}"
        );
        assert_eq!(
            t.count_closer(&own, &own.distance(&own), 8, Counting::default()),
            0
        );
    }

    #[test]
    fn buckets_tile_the_space() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let own = NodeId::random(&mut rng);
        let mut t = RoutingTable::new(own, 3, 3, now);
        for i in 0..2000u16 {
            t.insert(contact(NodeId::random(&mut rng), i + 1), now);
        }
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        for w in t.buckets.windows(2) {
            assert!(w[0].prefix(&own) < w[1].prefix(&own));
        }
        for _ in 0..200 {
            let id = NodeId::random(&mut rng);
            let b = &t.buckets[t.bucket_index(&id)];
            assert!(b.covers(&id, &own));
            // The derived prefix says the same, and no other bucket covers it.
            assert!(b.prefix(&own).common_prefix_len(&id) >= usize::from(b.depth));
            assert_eq!(t.buckets.iter().filter(|b| b.covers(&id, &own)).count(), 1);
        }
        for far in t.far_bucket_targets(&mut rng).into_iter().flatten() {
            assert!(!t.buckets[t.bucket_index(&far.target)].covers(&own, &own));
        }
    }

    /// Lists a fixed set of random contacts (IPv4, like a simulation's).
    #[derive(Debug)]
    struct Listed(Vec<Contact>);

    impl ContactDirectory for Listed {
        fn number_of(&self, contact: &Contact) -> Option<u32> {
            let n = self.0.iter().position(|c| c == contact)?;
            u32::try_from(n).ok()
        }

        fn contact(&self, number: u32) -> Contact {
            self.0[number as usize]
        }
    }

    #[test]
    fn contacts_keep_their_ids_and_addresses_through_splits_evictions_and_removals() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        let listed: Vec<Contact> = (0..500u16)
            .map(|i| {
                let addr = std::net::SocketAddr::from(([10, 200, (i >> 8) as u8, i as u8], 4000));
                Contact::new(NodeId::random(&mut rng), addr)
            })
            .collect();
        let own = NodeId::random(&mut rng);
        // One contact in four is listed; the rest IPv4 or IPv6, some near
        // our id (so the table splits).
        let inserts: Vec<Contact> = (0..3000u16)
            .map(|i| {
                let pick = rand::Rng::random_range(&mut rng, 0..4u8);
                if pick == 0 {
                    return listed[usize::from(i) % listed.len()];
                }
                let id = match i % 3 {
                    0 => own.random_with_prefix(usize::from(i % 12), &mut rng),
                    _ => NodeId::random(&mut rng),
                };
                let addr: std::net::SocketAddr = if pick % 2 == 1 {
                    std::net::SocketAddrV6::new(
                        std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, i, 1),
                        7000 + i,
                        0,
                        u32::from(i),
                    )
                    .into()
                } else {
                    std::net::SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 7000 + i))
                };
                Contact::new(id, addr)
            })
            .collect();
        let directory = std::sync::Arc::new(Listed(listed));
        let unlisted = check_contacts_through_churn(own, &inserts, None);
        let with_directory = check_contacts_through_churn(own, &inserts, Some(directory));
        // The same operations, with or without a directory, keep the same
        // contacts; only where they are kept differs.
        assert_eq!(unlisted.0, with_directory.0);
        assert!(
            with_directory.1 < unlisted.1,
            "listed contacts take no slot: {} slots with a directory, {} without",
            with_directory.1,
            unlisted.1
        );
    }

    /// Drives `inserts` (IPv4 and IPv6, listed in `directory` or not), with
    /// evictions and removals, through a small table, checking after each
    /// that every contact held keeps its id and address and that the book
    /// holds exactly what the stored contacts need. Returns the contacts
    /// held at the end and the book's slots in use.
    fn check_contacts_through_churn(
        own: NodeId,
        inserts: &[Contact],
        directory: Option<std::sync::Arc<Listed>>,
    ) -> (Vec<Contact>, usize) {
        let now = Instant::now();
        let mut t = RoutingTable::new(own, 4, 2, now);
        if let Some(d) = &directory {
            t = t.with_directory(d.clone());
        }
        let mut inserted: HashMap<NodeId, std::net::SocketAddr> = HashMap::new();
        for (i, &contact) in inserts.iter().enumerate() {
            t.insert(contact, now);
            inserted.entry(contact.id).or_insert(contact.addr);
            // Evict, and remove, some of what is held.
            let held = t.contacts();
            if i % 5 == 0 {
                if let Some(c) = held.get(i % held.len().max(1)) {
                    t.record_failure(&c.id);
                    t.record_failure(&c.id);
                }
            }
            if i % 7 == 0 {
                if let Some(c) = held.last() {
                    t.remove(&c.id);
                }
            }
            let waiting: Vec<Contact> = t
                .buckets
                .iter()
                .flat_map(|b| &b.replacements)
                .map(|w| t.book.contact(w))
                .collect();
            for c in t.contacts() {
                assert_eq!(Some(&c.addr), inserted.get(&c.id), "entry {c:?}");
            }
            for w in &waiting {
                assert_eq!(Some(&w.addr), inserted.get(&w.id), "replacement {w:?}");
            }
            let held: Vec<Contact> = t.contacts().into_iter().chain(waiting).collect();
            let is_listed =
                |c: &Contact| directory.as_ref().is_some_and(|d| d.number_of(c).is_some());
            assert_eq!(
                t.book.v6_held(),
                held.iter().filter(|c| c.addr.is_ipv6()).count(),
                "the book holds exactly the IPv6 addresses held"
            );
            assert_eq!(
                t.book.slots_held(),
                held.iter().filter(|c| !is_listed(c)).count(),
                "a slot for each contact held that the directory does not list"
            );
        }
        let waiting: usize = t.buckets.iter().map(|b| b.replacements.len()).sum();
        println!(
            "{} entries and {} replacements held, {} IPv6 addresses and {} slots in the book",
            t.len(),
            waiting,
            t.book.v6_held(),
            t.book.slots_held()
        );
        assert!(t.book.v6_held() > 0);
        (t.contacts(), t.book.slots_held())
    }
}
