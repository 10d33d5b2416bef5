//! Which known contacts are nearest a target (the answer to every
//! FIND_NODE, the seeds of every lookup), and how many are nearer it than
//! a given distance (the responsibility check of every STORE, the
//! hand-over check of replication).

use std::cmp::Ordering;

use super::{Entry, RoutingTable};
use crate::contact::Contact;
use crate::id::{Distance, NodeId};
use crate::stored_contact::StoredContact;

/// Which contacts [`RoutingTable::count_closer`] counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting<'a> {
    /// Leave out contacts that missed their last reply.
    pub live_only: bool,
    /// Leave out the contact with this id.
    pub except: Option<&'a NodeId>,
}

impl RoutingTable {
    /// The `n` known contacts closest to `target`, nearest first, leaving out
    /// any for which `exclude` is true. Exact, unlike bmuller's bucket walk,
    /// which stops at the first n contacts it meets.
    ///
    /// XOR with `target` maps each bucket (a prefix block of ids) onto a block
    /// of distances, and the blocks do not overlap; so visiting buckets in the
    /// order of their blocks and stopping once n contacts are collected never
    /// misses a closer one. Only a few buckets are read on each call.
    pub fn closest(
        &self,
        target: &NodeId,
        n: usize,
        exclude: impl Fn(&Entry) -> bool,
    ) -> Vec<Contact> {
        if n == 0 {
            return Vec::new();
        }
        // A bucket's entries are ordered as integers: the first 32 bits of
        // their distance above, their place in the bucket below. Selecting
        // and sorting then compare integers, never calling back into the
        // table (a comparator that did was two thirds of an answer's cost).
        // Ids whose distances share those 32 bits (made on purpose: random
        // ones share them once in 2³²) are put in exact order afterwards.
        // Each entry read builds the contact (from the table's directory,
        // for a listed one), and reading stops at the n-th one kept. Since
        // buckets are visited in the order of their blocks, the first n kept
        // are the n nearest.
        let mut chosen = Vec::with_capacity(n);
        let mut order: Vec<u64> = Vec::new();
        for i in self.buckets_by_distance(target) {
            let entries = &self.buckets[i].entries;
            order.clear();
            // A bucket holds far fewer than 2³² entries.
            order.extend(
                entries
                    .iter()
                    .enumerate()
                    .map(|(j, e)| e.distance_head(target) | j as u64),
            );
            // Only the nearest of those still wanted are sorted at first
            // (the rest if some are left out): a far bucket holds up to 4k,
            // and an answer wants k.
            let mut sorted = (n - chosen.len()).min(order.len());
            if sorted < order.len() {
                // The last of the nearest `sorted` in its place, the
                // nearer before it, the rest after.
                order.select_nth_unstable(sorted - 1);
                let cut_head = head(order[sorted - 1]);
                if order[sorted..].iter().any(|&o| head(o) == cut_head) {
                    // A tie straddles the cut: which side is nearer takes
                    // the whole ids. Sort everything (rare).
                    sorted = order.len();
                }
            }
            self.sort_exactly(&mut order[..sorted], entries, target);
            for j in 0..order.len() {
                if j == sorted {
                    self.sort_exactly(&mut order[j..], entries, target);
                    sorted = order.len();
                }
                let entry = self.entry(&entries[place(order[j])]);
                if !exclude(&entry) {
                    chosen.push(entry.contact);
                    if chosen.len() == n {
                        return chosen;
                    }
                }
            }
        }
        chosen
    }

    /// How many known contacts are strictly closer to `target` than
    /// `distance`, counting up to `limit` (reached: at least that many).
    /// The question behind "are we among the closest?" on every STORE and
    /// every hand-over check; [`closest`] answers it too, but builds and
    /// sorts every contact it reads, and a node among the k closest reads
    /// its whole table that way, since fewer than the wanted number are
    /// closer. Here each contact costs one comparison of its stored id head
    /// (the whole id only on a tie), nothing is sorted, and reading stops
    /// after the first bucket holding a contact at `distance` or beyond:
    /// every block visited after it lies wholly further out.
    ///
    /// [`closest`]: RoutingTable::closest
    pub fn count_closer(
        &self,
        target: &NodeId,
        distance: &Distance,
        limit: usize,
        counting: Counting<'_>,
    ) -> usize {
        if limit == 0 {
            return 0;
        }
        let distance_head = StoredContact::head_of(distance);
        let mut count = 0;
        for i in self.buckets_by_distance(target) {
            let mut reached_beyond = false;
            for e in &self.buckets[i].entries {
                let closer = match e.distance_head(target).cmp(&distance_head) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => self.book.id(e).distance(target) < *distance,
                };
                if !closer {
                    reached_beyond = true;
                    continue;
                }
                let left_out = (counting.live_only && e.failures() > 0)
                    || counting.except.is_some_and(|id| self.book.is(e, id));
                if !left_out {
                    count += 1;
                    if count == limit {
                        return count;
                    }
                }
            }
            if reached_beyond {
                break;
            }
        }
        count
    }

    /// The first 64 bits of the distance from our id to our k-th closest
    /// contact (all ones if we know fewer than k). The buckets around our
    /// id are the table's fullest, so this is the radius holding k nodes
    /// at the network's density: at a like density any id has its k
    /// closest nodes within about this distance.
    pub fn own_reach(&self) -> u64 {
        let closest = self.closest(&self.own, self.k, |_| false);
        match self.k.checked_sub(1).and_then(|last| closest.get(last)) {
            Some(kth) => kth.id.distance(&self.own).prefix64(),
            None => u64::MAX,
        }
    }

    /// Bucket indexes in the order of their blocks' distance from `target`,
    /// nearest first, derived from the bits of `target` and our id (no
    /// sorting, no allocation: it runs for every FIND_NODE answered).
    ///
    /// The bucket at level `j` holds the ids that part from ours at bit `j`;
    /// ours, at the last level `d`, those that do not before `d`. Let `c` be
    /// where `target` parts from our id. Level `c` holds `target`'s block.
    /// Levels below `c` differ from `target` at their own bit, so a deeper one
    /// is nearer. Levels past `c`, and ours, all differ from `target` at bit
    /// `c` and first among themselves at the shallower level `j` of a pair:
    /// there, level `j` agrees with `target` exactly when our id does not.
    /// So: level `c`; the levels past `c` where our bit differs from
    /// `target`'s, shallow first; ours; those where it agrees, deep first;
    /// then the levels below `c`, deep first.
    pub(super) fn buckets_by_distance(&self, target: &NodeId) -> impl Iterator<Item = usize> + '_ {
        let target = *target;
        let own_level = self.bucket_by_prefix_len.len() - 1;
        let parted = self.own.common_prefix_len(&target).min(own_level);
        let bucket = move |level: usize| usize::from(self.bucket_by_prefix_len[level]);
        let differs = move |level: usize| self.own.bit(level) != target.bit(level);
        let past = (parted + 1)..own_level;
        let first = (parted < own_level).then_some(parted);
        first
            .into_iter()
            .chain(past.clone().filter(move |&j| differs(j)))
            .chain(std::iter::once(own_level))
            .chain(past.rev().filter(move |&j| !differs(j)))
            .chain((0..parted).rev())
            .map(bucket)
    }

    /// Like [`RoutingTable::closest`], preferring contacts that answered their
    /// last RPC: ones that just missed a reply are used only when fewer than
    /// `min` others are known. A node that may have gone is neither handed to
    /// other nodes nor queried first, yet stays until it misses enough replies.
    pub fn closest_responsive(
        &self,
        target: &NodeId,
        n: usize,
        min: usize,
        exclude: impl Fn(&Entry) -> bool,
    ) -> Vec<Contact> {
        let live = self.closest(target, n, |e| e.failures > 0 || exclude(e));
        if live.len() >= min.min(n) {
            return live;
        }
        self.closest(target, n, exclude)
    }
}

/// The distance head of an entry's place in [`RoutingTable::closest`]'s order.
fn head(order: u64) -> u64 {
    order & !u64::from(u32::MAX)
}

/// The entry's index in its bucket.
fn place(order: u64) -> usize {
    (order & u64::from(u32::MAX)) as usize
}

impl RoutingTable {
    /// Sort `order` (a bucket's entries, as [`RoutingTable::closest`] packs
    /// them) by exact distance to `target`: as integers, then each run of
    /// equal heads by the whole ids.
    fn sort_exactly(&self, order: &mut [u64], entries: &[StoredContact], target: &NodeId) {
        order.sort_unstable();
        for run in order.chunk_by_mut(|a, b| head(*a) == head(*b)) {
            if run.len() > 1 {
                run.sort_by_key(|&o| self.book.id(&entries[place(o)]).distance(target));
            }
        }
    }
}
