//! Puts: starting one, its STOREs to the k closest nodes it found (waiting
//! for free RPC slots when there are none), and the cached copy a get
//! leaves behind.
//!
//! A put's lookup must hear from each of the k closest nodes before it ends,
//! and then it STOREs to them: two RPCs to each, 80 datagrams a put in a
//! network of 64. Once the lookup has converged (an answer from one of the k
//! closest named one of them and nobody closer: [`Lookup::converged`]), it
//! asks the rest of them with the STORE itself, and that node gets no second
//! STORE. It asks them all at once, not α at a time: a peer with a data
//! directory answers a STORE only once the value is on disk, and the put
//! must not wait for those commits in a row. The first [`LISTS_ALONG`] of
//! these STOREs (to the nearest nodes not yet asked) are flagged
//! [`wire::FLAG_CLOSER_NODES`]: a kadmium peer stores the value and lists its
//! closest contacts in the answer, which the lookup takes as that node's
//! FIND_NODE answer; a Python peer (or an older kadmium) answers the STORE
//! alone, and is then asked with FIND_NODE too, so the lookup still hears
//! its contacts. The others only store: their acceptance settles the query.
//! A node asked this way that closer nodes later push out of the k closest
//! keeps a copy it would not otherwise have been sent: one near the key,
//! which its own STORE check (`responder::responsible`) accepted.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{Env, Operation, Operations};
use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::lookup::{Lookup, LookupKind};
use crate::rpc::{Class, OpId, Outgoing, Purpose};
use crate::value::Value;
use crate::wire::{self, Request};

/// How many of a put's STOREs along its lookup ask for the node's contacts.
/// Once the lookup has converged, the k closest nodes it asks next know,
/// as a rule, no node it does not: of their lists, 99% named nobody new
/// inside its k closest (a one-off count over the `efficiency` example's
/// puts with 1,000 nodes: 534 of 59,165 answers did), and each list is 20
/// contacts chosen, encoded, decoded and merged for nothing: a sixth of a
/// put's instructions in all. The nearest nodes it asks know the key's
/// neighbourhood best, and they still list; the others only store.
const LISTS_ALONG: usize = 3;

/// What a put achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutReport {
    /// Nodes that acknowledged the STORE.
    pub stored_remote: usize,
    /// This node is among the closest to the key and keeps a copy for the network.
    pub stored_locally: bool,
    /// Nodes a STORE was sent to, of the closest the lookup found (its
    /// STORE may also have reached a node that closer ones then pushed out
    /// of them: see the module docs; that copy is not counted here).
    pub contacted: usize,
}

/// Why a put runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutKind {
    /// A user's put: reported as an event.
    User,
    /// Re-send of a value held for the network (remaining lifetime).
    Replicate,
    /// The publisher's periodic re-put (full TTL).
    Republish,
}

#[derive(Debug)]
pub(super) struct PutState {
    pub key: Key,
    pub value: Value,
    pub ttl: Duration,
    pub replication: usize,
    pub kind: PutKind,
    /// Some while looking up the closest nodes; None while storing.
    pub lookup: Option<Lookup>,
    /// Nodes whose STORE answer the put still waits for (a node past its
    /// soft deadline is no longer waited for; a late ack is not counted).
    pub waiting: Vec<NodeId>,
    /// Nodes to STORE to once an RPC slot of the put's class is free: the
    /// put waits in the starved queue meanwhile, as a lookup does. (They
    /// were skipped: under a burst, with slots held by dead peers' queries
    /// until their timeout, a put could end having STOREd to nobody while
    /// a live peer answered its lookup.)
    pub unsent: Vec<Contact>,
    /// Nodes its lookup asked with the STORE itself (see the module docs),
    /// and what came of it: the STOREs after the lookup skip them; those
    /// among the closest it ends with count in the report, and the put
    /// waits for those of them still unanswered as for its own.
    pub stored_along: Vec<SentAlong>,
    pub report: PutReport,
    /// Set for a signed put or delete: the record's sequence number, and
    /// the event is [`super::Outcome::SignedPut`].
    pub signed_seq: Option<u64>,
    /// Set for a signed put with compare-and-swap (the number it expected):
    /// its record is read back before it is reported (see `signed.rs`).
    pub confirm_cas: Option<u64>,
}

/// A STORE a put's lookup sent as its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SentAlong {
    pub id: NodeId,
    pub state: Along,
    /// Whether it asked for the node's contacts (see [`LISTS_ALONG`]).
    pub listed: bool,
}

/// What came of a STORE a put's lookup sent as its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Along {
    Pending,
    Stored,
    /// Refused, failed, or no longer waited for (a late ack upgrades it).
    Settled,
}

impl PutState {
    /// A plain put of `value` (not signed), looking up its nodes with
    /// `lookup` (None: they are known, and its STOREs come next).
    pub fn new(
        key: Key,
        value: Value,
        ttl: Duration,
        replication: usize,
        kind: PutKind,
        lookup: Option<Lookup>,
    ) -> Self {
        PutState {
            key,
            value,
            ttl,
            replication,
            kind,
            lookup,
            waiting: Vec::new(),
            unsent: Vec::new(),
            stored_along: Vec::new(),
            report: PutReport::default(),
            signed_seq: None,
            confirm_cas: None,
        }
    }

    /// The STORE the lookup sent `peer` was answered (`stored`: accepted)
    /// or settled otherwise. Returns whether that STORE asked for no
    /// contacts (`None`: the lookup sent `peer` no STORE).
    pub fn along_settled(&mut self, peer: Option<NodeId>, stored: bool) -> Option<bool> {
        let sent = self
            .stored_along
            .iter_mut()
            .find(|sent| Some(sent.id) == peer)?;
        // A late ack still counts (the RPC ends once: never twice).
        sent.state = match (sent.state, stored) {
            (Along::Pending | Along::Settled, true) => Along::Stored,
            (Along::Pending, false) => Along::Settled,
            (state, _) => state,
        };
        Some(!sent.listed)
    }

    pub fn class(&self) -> Class {
        if self.kind == PutKind::User {
            Class::User
        } else {
            Class::Maintenance
        }
    }

    /// The lifetime its STOREs carry.
    fn ttl_secs(&self) -> u32 {
        u32::try_from(self.ttl.as_secs().max(1)).unwrap_or(u32::MAX)
    }

    /// Its lookup, and what that lookup needs to send STOREs as queries;
    /// `None` once the lookup is done.
    pub fn lookup_storing(&mut self) -> Option<(&mut Lookup, StoreAlong<'_>)> {
        let ttl_secs = self.ttl_secs();
        let PutState {
            key,
            value,
            replication,
            lookup,
            stored_along,
            signed_seq,
            ..
        } = self;
        let along = StoreAlong {
            key: *key,
            value,
            ttl_secs,
            replication: if signed_seq.is_some() {
                0
            } else {
                *replication
            },
            stored_along,
            store: None,
        };
        Some((lookup.as_mut()?, along))
    }
}

/// What a put's lookup needs to send its STORE as the query (see the
/// module docs).
pub(super) struct StoreAlong<'a> {
    key: Key,
    value: &'a Value,
    /// The lifetime the STORE carries.
    ttl_secs: u32,
    /// How many of the closest get the value (0: none this way).
    replication: usize,
    stored_along: &'a mut Vec<SentAlong>,
    /// The STORE, built once for all the queries of one drive of the lookup
    /// (a converged lookup sends them all at once).
    store: Option<Request>,
}

impl StoreAlong<'_> {
    /// Send `to`, the candidate of `rank` (0 for the closest), the put's
    /// STORE as its lookup query, if it goes to it: the lookup has
    /// converged, the candidate is among those the value goes to, and it
    /// was not sent one already (one that was asked for contacts and
    /// answered without them is asked again with FIND_NODE). It asks for
    /// contacts while fewer than [`LISTS_ALONG`] of the STOREs that did are
    /// waited for or answered. `None` if not; else whether it went out.
    #[allow(clippy::too_many_arguments)]
    pub fn try_send<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        lookup: &Lookup,
        to: Contact,
        rank: usize,
        purpose: Purpose,
        class: Class,
    ) -> Option<bool> {
        let ask = lookup.converged()
            && rank < self.replication
            && !self.stored_along.iter().any(|sent| sent.id == to.id);
        if !ask {
            return None;
        }
        let store = self.store.get_or_insert_with(|| Request::Store {
            sender: env.own,
            key: self.key,
            value: self.value.clone(),
        });
        // A listing STORE that failed, went unanswered or was refused no
        // longer counts: another asks (at worst one list more than needed).
        let listing = self
            .stored_along
            .iter()
            .filter(|sent| sent.listed && sent.state != Along::Settled)
            .count();
        let listed = listing < LISTS_ALONG;
        let flags = if listed {
            wire::FLAG_RESPONDER_ID | wire::FLAG_CLOSER_NODES | wire::FLAG_COMPACT_NODES
        } else {
            wire::FLAG_RESPONDER_ID
        };
        let out = Outgoing {
            to: to.addr,
            peer: Some(to.id),
            request: store,
            purpose,
            class,
            ttl_secs: self.ttl_secs,
            flags,
        };
        let sent = env.out.request(now, env.rng, out);
        if sent {
            self.stored_along.push(SentAlong {
                id: to.id,
                state: Along::Pending,
                listed,
            });
        }
        Some(sent)
    }
}

impl Operations {
    #[allow(clippy::too_many_arguments)]
    pub fn put<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        key: Key,
        value: Value,
        ttl: Duration,
        replication: usize,
        kind: PutKind,
    ) -> OpId {
        let op = if kind == PutKind::User {
            self.new_user_op(env, now)
        } else {
            self.background += 1;
            self.new_op()
        };
        let lookup = self
            .new_lookup(env, now, key, LookupKind::FindNode)
            .all_at_once_when_converged();
        let put = PutState::new(key, value, ttl, replication, kind, Some(lookup));
        self.ops.insert(op, Operation::Put(Box::new(put)));
        self.drive(env, now, op);
        op
    }

    /// A put that sent what STOREs it could: finished once nothing is left
    /// to send or wait for; queued for a free slot while STOREs are unsent.
    pub(super) fn storing<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
        put: Box<PutState>,
    ) {
        if put.stores_done() {
            return self.finish_put(env, now, op, *put);
        }
        if !put.unsent.is_empty() {
            // At the front: a put that found its nodes finishes before later
            // lookups take the slots (behind them, in a burst, it waited
            // past its deadline). Queued only with no free slot, so the
            // pump that popped it stops there.
            match put.class() {
                Class::User => self.starved_user.push_front(op),
                _ => self.starved_background.push_front(op),
            }
        }
        self.ops.insert(op, Operation::Put(put));
    }
}

/// The lookup of `put` is done: send its STOREs to the closest nodes found.
pub(super) fn send_stores<R: Rng + ?Sized>(
    env: &mut Env<'_, R>,
    now: Instant,
    op: OpId,
    put: &mut PutState,
    lookup: &Lookup,
) {
    let mut targets = lookup.closest_responded();
    targets.truncate(put.replication);
    let own_distance = env.own.distance(&put.key);
    put.report.stored_locally = put.kind != PutKind::Replicate
        && env.records.get(&put.key, now).is_some()
        && (targets.len() < put.replication
            || targets
                .last()
                .is_some_and(|far| own_distance < far.id.distance(&put.key)));
    put.report.contacted = targets.len();
    // The lookup's own STOREs to these count (or are waited for) like the
    // rest; those to nodes pushed out of them left a copy, not counted.
    for sent in &put.stored_along {
        if targets.iter().any(|t| t.id == sent.id) {
            match sent.state {
                Along::Stored => put.report.stored_remote += 1,
                Along::Pending => put.waiting.push(sent.id),
                Along::Settled => {}
            }
        }
    }
    targets.retain(|t| !put.stored_along.iter().any(|sent| sent.id == t.id));
    // Nearest last: `send_unsent` pops them, nearest first.
    targets.reverse();
    put.unsent = targets;
    put.send_unsent(env, now, op);
}

impl PutState {
    /// STORE to the nodes in `unsent` while the put's class has free RPC
    /// slots. Those left wait for the next (the caller queues the put).
    pub fn send_unsent<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant, op: OpId) {
        let (class, ttl_secs) = (self.class(), self.ttl_secs());
        if self.unsent.is_empty() || env.out.table.free(class) == 0 {
            return;
        }
        // The value is lent to the request, not copied: each STORE is
        // encoded as it is sent.
        let store = Request::Store {
            sender: env.own,
            key: self.key,
            value: std::mem::replace(&mut self.value, Value::Nil),
        };
        while env.out.table.free(class) > 0 {
            let Some(contact) = self.unsent.pop() else {
                break;
            };
            let out = Outgoing {
                to: contact.addr,
                peer: Some(contact.id),
                request: &store,
                purpose: Purpose::Store(op),
                class,
                ttl_secs,
                flags: 0,
            };
            // With a free slot, only an address no datagram can reach fails.
            if env.out.request(now, env.rng, out) {
                self.waiting.push(contact.id);
            }
        }
        if let Request::Store { value, .. } = store {
            self.value = value;
        }
        if self.unsent.is_empty() {
            // A burst holds thousands of puts: their emptied lists go.
            self.unsent = Vec::new();
        }
    }

    /// Whether the put has nothing left to send or wait for.
    pub fn stores_done(&self) -> bool {
        self.waiting.is_empty() && self.unsent.is_empty()
    }
}

/// Cache a found value at the closest node that answered without it (paper
/// §2.3), for a time that halves with each node known to lie between it and
/// the key: copies far from the key's neighbourhood fade fast, so an
/// over-cached key cannot outlive its publisher by much.
pub(super) fn cache_copy<R: Rng + ?Sized>(
    env: &mut Env<'_, R>,
    now: Instant,
    lookup: &Lookup,
    value: &Value,
    ttl_secs: Option<u64>,
) {
    let Some(cache) = lookup.closest_responded().first().copied() else {
        return;
    };
    if env.out.table.free(Class::HandOver) == 0 {
        return; // best effort only
    }
    let remaining = ttl_secs.map_or(env.default_ttl, Duration::from_secs);
    let between = lookup.closer_than(&cache.id).min(31) as u32;
    let ttl = remaining / (1u32 << between);
    let ttl_secs = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
    if ttl_secs == 0 {
        return;
    }
    let store = Request::Store {
        sender: env.own,
        key: lookup.target(),
        value: value.clone(),
    };
    let out = Outgoing {
        to: cache.addr,
        peer: Some(cache.id),
        request: &store,
        purpose: Purpose::Unawaited,
        class: Class::HandOver,
        ttl_secs,
        flags: wire::FLAG_CACHED,
    };
    env.out.request(now, env.rng, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_ack_of_a_lookup_store_still_counts_and_nothing_undoes_one() {
        let mut put = PutState::new(
            Key::digest(b"k"),
            Value::Int(1),
            Duration::from_secs(60),
            20,
            PutKind::User,
            None,
        );
        let (late, kept, refused) = (
            NodeId::digest(b"a"),
            NodeId::digest(b"b"),
            NodeId::digest(b"c"),
        );
        for id in [late, kept, refused] {
            put.stored_along.push(SentAlong {
                id,
                state: Along::Pending,
                // The refused one was asked to store only.
                listed: id != refused,
            });
        }
        // Given up on, then its ack comes: stored.
        put.along_settled(Some(late), false);
        put.along_settled(Some(late), true);
        // Acked, then its later FIND_NODE (a Python peer) fails: still stored.
        put.along_settled(Some(kept), true);
        put.along_settled(Some(kept), false);
        // Whether the STORE asked for no contacts.
        assert_eq!(put.along_settled(Some(refused), false), Some(true));
        assert_eq!(put.along_settled(Some(kept), true), Some(false));
        assert_eq!(put.along_settled(None, true), None);
        let states: Vec<_> = put.stored_along.iter().map(|s| (s.id, s.state)).collect();
        assert_eq!(
            states,
            vec![
                (late, Along::Stored),
                (kept, Along::Stored),
                (refused, Along::Settled)
            ]
        );
    }
}
