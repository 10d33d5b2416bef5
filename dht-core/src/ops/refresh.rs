//! Refreshes: a lookup for a random id in a stale bucket keeps it
//! populated; after a bootstrap, the buckets further away than the node's
//! closest neighbour are filled part by part (see `routing/far.rs`), so a
//! joining node's table spans the whole id space.

use std::time::Instant;

use rand::Rng;

use super::{Env, Operation, Operations};
use crate::id::NodeId;
use crate::lookup::LookupKind;
use crate::routing::FarTarget;

impl Operations {
    /// Look up a random id in a stale bucket, to keep it populated.
    pub fn refresh<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant, target: NodeId) {
        self.start_refresh(env, now, target, None);
    }

    pub(super) fn start_refresh<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        target: NodeId,
        filling: Option<(FarTarget, Vec<FarTarget>)>,
    ) {
        if env.seeds(&target).is_empty() {
            return;
        }
        let op = self.new_op();
        let mut lookup = self.new_lookup(env, now, target, LookupKind::FindNode);
        if filling.is_some() {
            // Every answerer joins the table: one at a time, the part stops
            // at its first answerers instead of α bunched near the target
            // (see `routing/far.rs`). Buckets refreshed whole too: at 10^4
            // nodes α at a time there measured the same datagrams and get
            // latency (±0.5%); one at a time, filling one takes up to k
            // round trips, in the background of a join.
            lookup = lookup.one_at_a_time();
        }
        let refresh = Operation::Refresh { lookup, filling };
        self.ops.insert(op, refresh);
        self.drive(env, now, op);
    }

    /// Refresh the next of a far bucket's parts (the last of `parts`) whose
    /// share is not yet full: one at a time, so that a joining node holds
    /// one filling lookup per bucket, not one per part.
    pub(super) fn refresh_next_part<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        mut parts: Vec<FarTarget>,
    ) {
        while let Some(far) = parts.pop() {
            if !env.contacts.table().far_share_is_full(&far) {
                return self.start_refresh(env, now, far.target, Some((far, parts)));
            }
        }
    }

    /// After a bootstrap: refresh the buckets further away than the closest
    /// neighbour. Filling them is the point, not finding each random
    /// target's k closest: a refresh stops once its part of the bucket holds
    /// its share (or the bucket is full), and a part already holding it is
    /// not refreshed (3% fewer datagrams in a 10^4-node join, for whole
    /// buckets). The nodes it skips learn of us when we next query them.
    pub(super) fn fill_far_buckets<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant) {
        let buckets = env.contacts.table().far_bucket_targets(env.rng);
        for mut parts in buckets {
            parts.reverse();
            self.refresh_next_part(env, now, parts);
        }
    }
}
