//! What operations do with the answers to their RPCs: a reply, a missing
//! reply, or one that is late (past a soft deadline, so the lookup stops
//! waiting for it). Lookups take the contacts or the value and are driven
//! on; puts count their STOREs and finish when every one is sent and
//! answered.

use std::time::Instant;

use rand::Rng;

use super::Env;
use super::{store::PutState, Event, Operation, Operations, Outcome, PutKind, SignedPutReport};
use crate::contact::reachable_from;
use crate::error::Error;
use crate::id::NodeId;
use crate::lookup::LookupKind;
use crate::rpc::{OpId, Purpose, Stage};
use crate::wire::Response;

impl Operations {
    /// A reply to an RPC sent for `purpose` by `peer` (None if unknown).
    pub fn on_reply<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        purpose: Purpose,
        peer: Option<NodeId>,
        response: Response,
    ) {
        match purpose {
            Purpose::Lookup(op) => {
                let Some(operation) = self.ops.get_mut(&op) else {
                    return;
                };
                // A put's lookup may have asked with its STORE (`store.rs`).
                let mut unlisted = false;
                if let (
                    Operation::Put(put),
                    Response::Store(stored) | Response::StoreWithNodes(stored, _),
                ) = (&mut *operation, &response)
                {
                    if put.lookup.is_none() {
                        // The lookup ended first: waited for as a STORE.
                        return self.store_answered(env, now, op, peer, *stored);
                    }
                    unlisted = put.along_settled(peer, *stored) == Some(true);
                }
                let (Some(lookup), Some(id)) = (operation.lookup_mut(), peer) else {
                    return;
                };
                match response {
                    Response::Nodes(mut contacts) | Response::StoreWithNodes(_, mut contacts) => {
                        let bind = env.bind;
                        contacts.retain(|c| c.is_usable() && reachable_from(&bind, &c.addr));
                        lookup.on_nodes(&id, contacts)
                    }
                    // Asked to store only, and stored: it has answered the
                    // lookup. One that refused (it knows 2k nodes nearer
                    // the key) is asked for them below.
                    Response::Store(true) if unlisted => lookup.on_nodes(&id, Vec::new()),
                    // A Python peer (or an older kadmium) answers a STORE
                    // without contacts: ask it again, with FIND_NODE.
                    Response::Store(_) if lookup.kind() == LookupKind::FindNode => {
                        lookup.ask_again(&id)
                    }
                    Response::Value { value, ttl_secs }
                        if lookup.kind() == LookupKind::FindValue =>
                    {
                        lookup.on_value(&id, value, ttl_secs)
                    }
                    _ => lookup.on_failure(&id),
                }
                self.drive(env, now, op);
            }
            Purpose::Store(op) => {
                let stored = matches!(
                    response,
                    Response::Store(true) | Response::StoreWithNodes(true, _)
                );
                self.store_answered(env, now, op, peer, stored);
            }
            Purpose::BootstrapPing(op) => self.bootstrap_ping_done(env, now, op),
            Purpose::UserPing(op) => {
                let outcome = match (&response, peer) {
                    (Response::Ping(id), _) => Ok(*id),
                    (_, Some(id)) => Ok(id),
                    _ => Err(Error::Timeout),
                };
                self.ping_done(env, op, outcome);
            }
            Purpose::Probe | Purpose::Verify | Purpose::Unawaited => {}
        }
    }

    /// An RPC sent for `purpose` to `peer` got no usable answer.
    pub fn on_failure<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        purpose: Purpose,
        peer: Option<NodeId>,
    ) {
        match purpose {
            Purpose::Lookup(op) => {
                if self.lookup_ended_first(op) {
                    return self.store_answered(env, now, op, peer, false);
                }
                self.along_settled(op, peer, false);
                if let (Some(lookup), Some(id)) =
                    (self.ops.get_mut(&op).and_then(Operation::lookup_mut), peer)
                {
                    lookup.on_failure(&id);
                    self.drive(env, now, op);
                }
            }
            Purpose::Store(op) => self.store_answered(env, now, op, peer, false),
            Purpose::BootstrapPing(op) => self.bootstrap_ping_done(env, now, op),
            Purpose::UserPing(op) => self.ping_done(env, op, Err(Error::Timeout)),
            Purpose::Probe | Purpose::Verify | Purpose::Unawaited => {}
        }
    }

    /// An RPC sent for `purpose` to `peer` is past a soft deadline: wait
    /// less for it (its reply, if it comes, is still used).
    pub fn on_slow<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        purpose: Purpose,
        peer: Option<NodeId>,
        stage: Stage,
    ) {
        match purpose {
            // Past the lookup: one of its STOREs, given up like the others.
            Purpose::Lookup(op) if stage == Stage::GiveUp && self.lookup_ended_first(op) => {
                self.store_answered(env, now, op, peer, false)
            }
            Purpose::Lookup(op) => {
                if stage == Stage::GiveUp {
                    // Not waited for when the lookup ends (a late ack still counts).
                    self.along_settled(op, peer, false);
                }
                if let (Some(lookup), Some(id)) =
                    (self.ops.get_mut(&op).and_then(Operation::lookup_mut), peer)
                {
                    match stage {
                        Stage::Slow => lookup.on_slow(&id),
                        Stage::GiveUp => lookup.on_abandoned(&id),
                    }
                    self.drive(env, now, op);
                }
            }
            Purpose::Store(op) if stage == Stage::GiveUp => {
                self.store_answered(env, now, op, peer, false)
            }
            _ => {}
        }
    }

    /// A STORE that put `op`'s lookup sent as a query to `peer` (if it
    /// sent one) was answered, `stored` or not, or is no longer waited for.
    fn along_settled(&mut self, op: OpId, peer: Option<NodeId>, stored: bool) {
        if let Some(Operation::Put(put)) = self.ops.get_mut(&op) {
            put.along_settled(peer, stored);
        }
    }

    /// Whether `op` is a put past its lookup: a lookup RPC of its that is
    /// still out is one of the STOREs its lookup sent as queries.
    fn lookup_ended_first(&self, op: OpId) -> bool {
        matches!(self.ops.get(&op), Some(Operation::Put(put)) if put.lookup.is_none())
    }

    /// `peer` answered operation `op`'s STORE (or is no longer waited for).
    pub(super) fn store_answered<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
        peer: Option<NodeId>,
        stored: bool,
    ) {
        let Some(Operation::Put(put)) = self.ops.get_mut(&op) else {
            return;
        };
        let Some(pos) = peer.and_then(|id| put.waiting.iter().position(|w| *w == id)) else {
            return;
        };
        put.waiting.swap_remove(pos);
        put.report.stored_remote += usize::from(stored);
        if put.stores_done() {
            if let Some(Operation::Put(put)) = self.ops.remove(&op) {
                self.finish_put(env, now, op, *put);
            }
        }
    }

    pub(super) fn finish_put<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
        put: PutState,
    ) {
        if let (PutKind::User, Some(seq), Some(cas)) = (put.kind, put.signed_seq, put.confirm_cas) {
            // A compare-and-swap is told it succeeded only once a reader
            // would pick its record (`signed.rs`).
            return self.confirm_put(env, now, op, seq, cas, put);
        }
        if put.kind == PutKind::User {
            let outcome = match put.signed_seq {
                Some(seq) => Outcome::SignedPut(Ok(SignedPutReport {
                    seq,
                    report: put.report,
                })),
                None => Outcome::Put(Ok(put.report)),
            };
            env.events.push_back(Event { op, outcome });
        } else {
            self.background -= 1;
        }
    }
}
