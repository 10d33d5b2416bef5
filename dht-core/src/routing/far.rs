//! Where a joining node looks to fill its far buckets.
//!
//! A node that joined refreshes every bucket further away than its closest
//! neighbour, and each refresh stopped once its bucket held k contacts. The
//! contacts it got were the nodes that answered it, and those are the nodes
//! nearest the refresh's target: one random target filled a far bucket
//! with k nodes bunched in one corner of the half (or quarter...) of the id
//! space it covers. A later lookup for a key elsewhere in that bucket found
//! no contact near the key and took an extra hop (at 256 nodes, a third of
//! the gets could not ask a likely holder first for that reason; see
//! `ops/get.rs`).
//!
//! So a bucket expected to hold many more than k nodes is refreshed from
//! 2, 4 or 8 targets spread over its range, one in each of as many equal
//! parts, each refresh stopping once its part of the bucket holds its share
//! of k (k / 8 = 2 contacts of 20 in an eighth). The expectation comes from
//! the density around our own id: our k-th closest contact is at distance r,
//! so a bucket spanning s ids holds about k·s/r.
//!
//! A part's refresh asks one node at a time (`ops::Operations`): every node
//! that answers is added to the table, and α answers at once filled a part
//! with several nodes bunched near its target, and the bucket before its
//! later parts ran. One at a time it stops at the first answerers inside
//! its part. A bucket's parts are refreshed one after another, not at once:
//! four filling lookups at once per bucket (each holding up to 4k
//! candidates) raised a 10^4-node simulation's peak memory by half.
//!
//! Measured with `simulate --nodes 10000 --gets 2000 --seed 42` against the
//! single random target: mean get latency 103.6 → 83.1 ms, p99 210 → 157
//! ms, RPCs a lookup 6.38 → 5.12, datagrams in the run 3,517,982 →
//! 3,516,376, peak RSS 126.4 → 118.6 MB. (Up to 4 parts with α at a time:
//! 90.5 ms for 23% more datagrams; up to 16 parts one at a time: 81.7 ms
//! for 14% more.)

use rand::Rng;

use super::RoutingTable;
use crate::id::{NodeId, ID_LEN};

/// At most 2^this parts a far bucket is refreshed in.
const MAX_SHARE_BITS: u32 = 3;

/// At most this many refreshes a join adds by splitting buckets into parts:
/// 7 for each of the 20 furthest buckets, which an honest network fills
/// only past about k · 2^23 nodes. The expectation of a bucket's
/// population comes from contacts near our id, which anyone can make up:
/// without this bound, k made-up ids next to ours would have every bucket
/// down to the 61st or so (as deep as `own_reach`'s 64 bits can tell)
/// refreshed in 8 parts.
const MAX_EXTRA_PARTS: u32 = 7 * 20;

/// One refresh of a joining node: where it looks, and when it may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FarTarget {
    pub target: NodeId,
    /// The bucket is refreshed in 2^`share_bits` parts; this refresh stops
    /// once the part holding `target` holds k / 2^`share_bits` contacts,
    /// or the whole bucket holds k.
    pub share_bits: u8,
}

impl RoutingTable {
    /// The refreshes a newly joined node does "for all buckets further away
    /// than its closest neighbour": every bucket but our own, each spread
    /// over its range as its expected population allows (see the module
    /// doc).
    pub fn far_bucket_targets<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<Vec<FarTarget>> {
        // Ids per node around us, as 2^64 · (the first 64 bits of the
        // distance to our k-th closest contact) / k.
        let ids_per_node = self.own_reach().max(1) as f64 / self.k as f64;
        // How many parts for the bucket at each depth, the furthest first
        // while MAX_EXTRA_PARTS lasts (the other buckets are one per depth).
        let mut bits_at_depth = vec![0u32; ID_LEN * 8 + 1];
        let mut extra_parts_left = MAX_EXTRA_PARTS;
        for (depth, bits_here) in bits_at_depth.iter_mut().enumerate().skip(1) {
            // The bucket at `depth` spans 2^-depth of the id space:
            // 2^(64 - depth) in the units of `ids_per_node`.
            let expected = 2f64.powi(64 - depth as i32) / ids_per_node;
            // Each part's share, k >> bits, must stay at least one contact
            // (a small k splits less).
            let mut bits = 0;
            while bits < MAX_SHARE_BITS
                && self.k >> (bits + 1) >= 1
                && expected >= (self.k << (bits + 1)) as f64
                && (2 << bits) - 1 <= extra_parts_left
            {
                bits += 1;
            }
            extra_parts_left -= (1 << bits) - 1;
            *bits_here = bits;
        }
        let mut targets = Vec::new();
        for bucket in self.buckets.iter().filter(|b| !b.holds_own) {
            let depth = usize::from(bucket.depth);
            let bits = bits_at_depth.get(depth).copied().unwrap_or(0);
            let prefix = bucket.prefix(&self.own);
            let mut parts = Vec::new();
            for part in 0..1u32 << bits {
                let mut target = prefix.random_with_prefix(depth, rng);
                for b in 0..bits {
                    let bit = (part >> (bits - 1 - b)) & 1 == 1;
                    set_bit(&mut target, depth + b as usize, bit);
                }
                parts.push(FarTarget {
                    target,
                    share_bits: bits as u8,
                });
            }
            targets.push(parts);
        }
        targets
    }

    /// Whether a joining node's refresh of `far` may stop: the part of
    /// its bucket holding its target holds k / 2^`share_bits` contacts,
    /// or the bucket is full.
    pub fn far_share_is_full(&self, far: &FarTarget) -> bool {
        let Some(bucket) = self.buckets.get(self.bucket_index(&far.target)) else {
            return false;
        };
        if bucket.entries.len() >= self.k {
            return true;
        }
        let (from, bits) = (usize::from(bucket.depth), usize::from(far.share_bits));
        let in_part = |id: &NodeId| (from..from + bits).all(|i| id.bit(i) == far.target.bit(i));
        let held = bucket
            .entries
            .iter()
            .filter(|e| in_part(&self.book.id(e)))
            .count();
        held >= (self.k >> bits).max(1)
    }
}

fn set_bit(id: &mut NodeId, i: usize, value: bool) {
    if i >= ID_LEN * 8 {
        return;
    }
    let (byte, mask) = (i / 8, 0x80u8 >> (i % 8));
    if value {
        id.0[byte] |= mask;
    } else {
        id.0[byte] &= !mask;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::contact::Contact;
    use rand::SeedableRng;
    use std::net::SocketAddr;
    use std::time::Instant;

    fn id(first: u8, second: u8) -> NodeId {
        let mut id = [0x11; ID_LEN];
        (id[0], id[1]) = (first, second);
        NodeId(id)
    }

    /// A k = 4 table of node 0 whose 4 closest contacts are very close (a
    /// dense network, where the far half holds far more than 4k nodes),
    /// and one contact in the far half's last quarter (bits 111).
    fn dense_table() -> RoutingTable {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId([0; ID_LEN]), 4, 3, now);
        for (i, second) in [1u8, 2, 3, 4].into_iter().enumerate() {
            let addr = SocketAddr::from(([10, 0, 0, 1 + i as u8], 4000));
            t.insert(Contact::new(id(0, second), addr), now);
        }
        t.insert(
            Contact::new(id(0xe0, 0), SocketAddr::from(([10, 0, 0, 9], 4000))),
            now,
        );
        assert!(t.bucket_count() > 1);
        t
    }

    #[test]
    fn a_crowded_far_bucket_is_refreshed_in_quarters_a_sparse_one_whole() {
        let t = dense_table();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let targets: Vec<FarTarget> = t
            .far_bucket_targets(&mut rng)
            .into_iter()
            .flatten()
            .collect();
        // The half starting with bit 1: four targets, one in each quarter
        // (not eight: with k = 4 an eighth's share would be no contact).
        let far_half: Vec<&FarTarget> = targets.iter().filter(|f| f.target.bit(0)).collect();
        assert_eq!(far_half.len(), 4);
        let mut quarters: Vec<(bool, bool)> = far_half
            .iter()
            .map(|f| (f.target.bit(1), f.target.bit(2)))
            .collect();
        quarters.sort_unstable();
        quarters.dedup();
        assert_eq!(quarters.len(), 4, "{quarters:?}");
        assert!(far_half.iter().all(|f| f.share_bits == 2));
        // A table that knows fewer than k: nothing says the network is
        // large, so each bucket is refreshed whole.
        let mut sparse = RoutingTable::new(NodeId([0; ID_LEN]), 4, 3, Instant::now());
        let addr = SocketAddr::from(([10, 0, 0, 9], 4000));
        sparse.insert(Contact::new(id(0x80, 0), addr), Instant::now());
        let targets: Vec<FarTarget> = sparse
            .far_bucket_targets(&mut rng)
            .into_iter()
            .flatten()
            .collect();
        assert!(targets.iter().all(|f| f.share_bits == 0), "{targets:?}");
    }

    /// The attack: made-up ids right next to ours (2k of them, to split the
    /// table deep) make the network look dense beyond measure, and every
    /// bucket look crowded.
    #[test]
    fn made_up_neighbours_add_a_bounded_number_of_refreshes() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let own = NodeId([0; ID_LEN]);
        let k = 20;
        let mut t = RoutingTable::new(own, k, 3, now);
        for i in 0..2000u16 {
            let addr = SocketAddr::from(([10, 2, (i >> 8) as u8, i as u8], 4000));
            t.insert(Contact::new(NodeId::random(&mut rng), addr), now);
        }
        for i in 0..2 * k as u8 {
            // Ids sharing 150 bits with ours: the table splits 150 deep.
            let mut near = own.random_with_prefix(150, &mut rng);
            near.0[ID_LEN - 1] = i;
            t.insert(
                Contact::new(near, SocketAddr::from(([10, 1, 0, i], 4000))),
                now,
            );
        }
        let buckets = t.far_bucket_targets(&mut rng);
        let parts: usize = buckets.iter().map(Vec::len).sum();
        println!("{} far buckets, {parts} join refreshes", buckets.len());
        assert!(
            buckets.len() > 100,
            "the table split {} deep",
            buckets.len()
        );
        assert_eq!(parts, buckets.len() + MAX_EXTRA_PARTS as usize);
        // The 20 furthest buckets got the parts.
        let mut by_depth = buckets;
        by_depth.sort_by_key(|parts| parts[0].target.common_prefix_len(&own));
        assert!(by_depth[..20].iter().all(|parts| parts.len() == 8));
    }

    #[test]
    fn a_refresh_of_a_quarter_stops_once_its_quarter_holds_its_share() {
        let mut t = dense_table();
        let now = Instant::now();
        let far = |first: u8| FarTarget {
            target: id(first, 0x55),
            share_bits: 2,
        };
        // k = 4: one contact fills a quarter's share.
        assert!(!t.far_share_is_full(&far(0x80)));
        t.insert(
            Contact::new(id(0x81, 7), SocketAddr::from(([10, 0, 1, 1], 4000))),
            now,
        );
        assert!(t.far_share_is_full(&far(0x80)), "quarter 100 holds one");
        assert!(!t.far_share_is_full(&far(0xa0)), "quarter 101 holds none");
        // A full bucket ends every refresh in it.
        for (i, first) in [0x82u8, 0x83].into_iter().enumerate() {
            let addr = SocketAddr::from(([10, 0, 2, 1 + i as u8], 4000));
            t.insert(Contact::new(id(first, 7), addr), now);
        }
        assert!(t.far_share_is_full(&far(0xa0)));
        assert!(t.far_share_is_full(&far(0xe0)));
    }
}
