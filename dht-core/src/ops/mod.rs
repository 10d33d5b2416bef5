//! Operations: one state machine per command kind, sharing RPC slots.
//!
//! A get is a FIND_VALUE lookup; a put is a FIND_NODE lookup followed by k
//! STOREs; a bootstrap pings its seeds and then looks up the node's own id;
//! a refresh is a lookup for a random id in a stale bucket. Replication and
//! republishing run as puts of their own kind. Every lookup sends as many
//! queries as its α window (one, for a joining node filling its far
//! buckets) and its class's free RPC slots allow; one that
//! finds no free slot waits in a starved queue and is driven again as slots
//! free up, user operations first. So does a put whose STOREs find none
//! (at the front of the queue: it has found its nodes). Only user commands produce [`Event`]s.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::contact::Contact;
use crate::contacts::Contacts;
use crate::error::{Error, Result};
use crate::id::NodeId;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::lookup::{Lookup, LookupKind};
use crate::records::RecordStore;
use crate::routing::FarTarget;
use crate::rpc::{Class, OpId, Outbox, Outgoing, Purpose};
use crate::value::Value;
use crate::wire::{self, Request};

mod bootstrap;
mod get;
mod refresh;
mod replies;
mod signed;
mod store;

pub use signed::{SignedPut, SignedPutReport, SignedValue};
use store::PutState;
pub use store::{PutKind, PutReport};

/// The result of a command.
#[derive(Debug)]
pub enum Outcome {
    Bootstrap(Vec<Contact>),
    Get(Result<Option<Value>>),
    Put(Result<PutReport>),
    Ping(Result<NodeId>),
    /// A signed get: the newest record's value, `None` when there is none
    /// or it was deleted.
    SignedGet(Result<Option<SignedValue>>),
    /// A signed put or delete.
    SignedPut(Result<SignedPutReport>),
    /// An immutable get: the payload, checked against its key.
    ImmutableGet(Result<Option<Vec<u8>>>),
}

/// A finished command.
#[derive(Debug)]
pub struct Event {
    pub op: OpId,
    pub outcome: Outcome,
}

#[derive(Debug)]
enum Operation {
    Bootstrap {
        pings_left: usize,
        lookup: Option<Lookup>,
    },
    Get {
        lookup: Lookup,
        /// Set if it asks one likely holder alone first (see `get.rs`).
        lone_first: Option<get::LoneFirst>,
    },
    Put(Box<PutState>),
    Ping,
    Refresh {
        lookup: Lookup,
        /// A joining node filling its far buckets: stop as soon as the
        /// target's part of its bucket holds its share of k contacts
        /// (see `routing/far.rs`) rather than converging on the target.
        /// With the parts of the same bucket still to refresh, one after
        /// another, popped from the end (`far_bucket_targets` lists them
        /// in order and the list is reversed: part 0 first).
        filling: Option<(FarTarget, Vec<FarTarget>)>,
    },
    /// A signed get, put or delete, or an immutable get.
    Record(Box<signed::RecordOp>),
}

impl Operation {
    fn lookup_mut(&mut self) -> Option<&mut Lookup> {
        match self {
            Operation::Bootstrap { lookup, .. } => lookup.as_mut(),
            Operation::Get { lookup, .. } | Operation::Refresh { lookup, .. } => Some(lookup),
            Operation::Put(put) => put.lookup.as_mut(),
            Operation::Record(record) => Some(&mut record.lookup),
            Operation::Ping => None,
        }
    }

    fn class(&self) -> Class {
        match self {
            Operation::Refresh { .. } => Class::Maintenance,
            Operation::Put(put) => put.class(),
            _ => Class::User,
        }
    }
}

/// Lookup counters, summed into [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct LookupCounters {
    pub started: u64,
    pub completed: u64,
    pub rpcs: u64,
    pub hops: u64,
    /// STOREs sent by signed gets to bring stale holders up to date.
    pub read_repairs: u64,
    /// Gets that asked one likely holder alone first (see `get.rs`), those
    /// of them that found the value with that one query, and those that
    /// widened because its answer was late.
    pub gets_asking_one_first: u64,
    pub gets_answered_by_first: u64,
    pub gets_widened_late: u64,
}

/// The node state operations use, borrowed from the protocol per call.
pub struct Env<'a, R: Rng + ?Sized> {
    pub own: NodeId,
    pub k: usize,
    pub alpha: usize,
    pub default_ttl: Duration,
    /// Overall deadline of a user operation.
    pub op_timeout: Duration,
    /// The node's socket address: contacts it cannot reach are ignored.
    pub bind: SocketAddr,
    /// Unix time, for signed records' expiry.
    pub clock: crate::wall_clock::WallClock,
    pub out: &'a mut Outbox,
    pub contacts: &'a mut Contacts,
    pub records: &'a mut RecordStore,
    pub events: &'a mut VecDeque<Event>,
    pub rng: &'a mut R,
}

impl<R: Rng + ?Sized> Env<'_, R> {
    /// Where a lookup for `target` starts: the k closest contacts, those
    /// that answered their last RPC first (enough of them for α slots).
    pub(super) fn seeds(&self, target: &NodeId) -> Vec<Contact> {
        self.contacts
            .table()
            .closest_responsive(target, self.k, self.alpha, |_| false)
    }
}

#[derive(Default)]
pub struct Operations {
    ops: HashMap<OpId, Operation>,
    next: OpId,
    /// Operations whose lookup, or put whose STOREs, wait for free RPC
    /// slots, by class.
    starved_user: VecDeque<OpId>,
    starved_background: VecDeque<OpId>,
    background: usize,
    /// Overall deadlines of user operations.
    deadlines: BTreeSet<(Instant, OpId)>,
    /// See `get.rs`.
    reach: get::Reach,
    /// When gets asking one candidate first widen to α, by deadline.
    late_firsts: BTreeSet<(Instant, OpId)>,
    pub counters: LookupCounters,
}

impl Operations {
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Operations the table has room for without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.ops.capacity()
    }

    /// Free the tables a burst left empty (see `idle_memory.rs`).
    pub fn release_idle_memory(&mut self) {
        self.ops.release_if_empty();
        self.starved_user.release_if_empty();
        self.starved_background.release_if_empty();
        self.deadlines.release_if_empty();
        self.late_firsts.release_if_empty();
    }

    /// Background puts (replication, republish) in progress.
    pub fn background(&self) -> usize {
        self.background
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub(super) fn new_op(&mut self) -> OpId {
        self.next += 1;
        self.next
    }

    /// A new user operation, which fails with [`Error::Timeout`] if it has
    /// not finished within the environment's `op_timeout`.
    pub(super) fn new_user_op<R: Rng + ?Sized>(&mut self, env: &Env<'_, R>, now: Instant) -> OpId {
        let op = self.new_op();
        self.deadlines.insert((now + env.op_timeout, op));
        op
    }

    /// When [`Operations::expire`] has work next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let deadline = self.deadlines.first().map(|(t, _)| *t);
        match (deadline, self.next_late_first()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// End the user operations whose deadline passed: gets, puts and pings
    /// fail with [`Error::Timeout`]; a bootstrap reports what it found.
    /// Then widen the gets whose lone first query is late (see `get.rs`):
    /// after, so that lateness never widens a get past its deadline.
    pub fn expire<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant) {
        while let Some(&(at, op)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let outcome = match self.ops.remove(&op) {
                None => continue,
                Some(Operation::Bootstrap { lookup, .. }) => {
                    Outcome::Bootstrap(lookup.map(|l| l.closest_responded()).unwrap_or_default())
                }
                Some(Operation::Get { lone_first, .. }) => {
                    self.forget_lone_first(op, lone_first);
                    Outcome::Get(Err(Error::Timeout))
                }
                // Past its lookup, with copies acknowledged, a put reports
                // them (its last STOREs may have waited for a slot); a
                // compare-and-swap had no read-back yet, and times out.
                Some(Operation::Put(put))
                    if put.lookup.is_none()
                        && put.report.stored_remote > 0
                        && put.confirm_cas.is_none() =>
                {
                    match put.signed_seq {
                        Some(seq) => Outcome::SignedPut(Ok(SignedPutReport {
                            seq,
                            report: put.report,
                        })),
                        None => Outcome::Put(Ok(put.report)),
                    }
                }
                Some(Operation::Put(put)) if put.signed_seq.is_some() => {
                    Outcome::SignedPut(Err(Error::Timeout))
                }
                Some(Operation::Put(_)) => Outcome::Put(Err(Error::Timeout)),
                Some(Operation::Ping) => Outcome::Ping(Err(Error::Timeout)),
                Some(Operation::Record(record)) => self.record_deadline(env, now, *record),
                Some(refresh @ Operation::Refresh { .. }) => {
                    self.ops.insert(op, refresh);
                    continue;
                }
            };
            env.events.push_back(Event { op, outcome });
        }
        self.widen_late_gets(env, now);
    }

    pub(super) fn new_lookup<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        target: NodeId,
        kind: LookupKind,
    ) -> Lookup {
        self.counters.started += 1;
        env.contacts.table_mut().touch(&target, now);
        let seeds = env.seeds(&target);
        Lookup::new(target, kind, env.own, env.k, env.alpha, seeds)
    }

    /// Abandon an operation: no event will come for it.
    pub fn cancel(&mut self, op: OpId) {
        match self.ops.remove(&op) {
            Some(Operation::Put(put)) if put.kind != PutKind::User => self.background -= 1,
            Some(Operation::Get { lone_first, .. }) => self.forget_lone_first(op, lone_first),
            _ => {}
        }
    }

    // ------------------------------------------------------- starved queues

    /// Drive starved operations while slots are free, user ones first.
    pub fn pump_starved<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant) {
        for class in [Class::User, Class::Maintenance] {
            loop {
                if env.out.table.free(class) == 0 {
                    break;
                }
                let queue = match class {
                    Class::User => &mut self.starved_user,
                    _ => &mut self.starved_background,
                };
                let Some(op) = queue.pop_front() else {
                    break;
                };
                self.drive(env, now, op);
            }
        }
    }

    // -------------------------------------------------------------- internals

    /// Send what a lookup wants to send; finish the operation when it is done.
    pub(super) fn drive<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant, op: OpId) {
        let Some(operation) = self.ops.get_mut(&op) else {
            return;
        };
        let class = operation.class();
        let is_get = matches!(operation, Operation::Get { .. });
        if let Operation::Refresh {
            filling: Some((far, _)),
            ..
        } = operation
        {
            if env.contacts.table().far_share_is_full(far) {
                return self.lookup_done(env, now, op);
            }
        }
        let (lookup, mut along) = match operation {
            Operation::Put(put) => match put.lookup_storing() {
                Some((lookup, along)) => (lookup, Some(along)),
                // Past its lookup: STOREs that waited for a slot.
                None => {
                    if let Some(Operation::Put(mut put)) = self.ops.remove(&op) {
                        put.send_unsent(env, now, op);
                        self.storing(env, now, op, put);
                    }
                    return;
                }
            },
            other => match other.lookup_mut() {
                Some(lookup) => (lookup, None),
                None => return,
            },
        };
        let mut failed = Vec::new();
        let mut starved = false;
        loop {
            if env.out.table.free(class) == 0 {
                starved = !lookup.is_done();
                break;
            }
            let Some((contact, rank)) = lookup.next_query_ranked() else {
                break;
            };
            let purpose = Purpose::Lookup(op);
            let along_sent = along
                .as_mut()
                .and_then(|along| along.try_send(env, now, lookup, contact, rank, purpose, class));
            let sent = along_sent.unwrap_or_else(|| {
                let request = match lookup.kind() {
                    LookupKind::FindNode => Request::FindNode {
                        sender: env.own,
                        target: lookup.target(),
                    },
                    LookupKind::FindValue => Request::FindValue {
                        sender: env.own,
                        key: lookup.target(),
                    },
                };
                send(
                    env,
                    now,
                    contact.addr,
                    Some(contact.id),
                    &request,
                    purpose,
                    class,
                )
            });
            if !sent {
                failed.push(contact.id);
            } else if env.contacts.is_suspect(&contact.id) {
                // It already missed a reply: ask, but do not wait for it.
                lookup.on_abandoned(&contact.id);
            }
        }
        for id in &failed {
            lookup.on_failure(id);
        }
        let done = lookup.is_done();
        if is_get {
            self.track_lone_first(op, now);
        }
        if starved {
            match class {
                Class::User => self.starved_user.push_back(op),
                _ => self.starved_background.push_back(op),
            }
        }
        if !failed.is_empty() {
            return self.drive(env, now, op);
        }
        if done {
            self.lookup_done(env, now, op);
        }
    }

    fn lookup_done<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant, op: OpId) {
        let Some(mut operation) = self.ops.remove(&op) else {
            return;
        };
        self.counters.completed += 1;
        if let Some(lookup) = operation.lookup_mut() {
            self.counters.rpcs += lookup.queries() as u64;
            self.counters.hops += u64::from(lookup.hops());
        }
        match operation {
            Operation::Bootstrap {
                lookup: Some(lookup),
                ..
            } => {
                let outcome = Outcome::Bootstrap(lookup.closest_responded());
                env.events.push_back(Event { op, outcome });
                self.fill_far_buckets(env, now);
            }
            Operation::Get {
                mut lookup,
                lone_first,
            } => {
                self.counters.count_get(&lookup, lone_first);
                self.forget_lone_first(op, lone_first);
                let found = lookup.take_value();
                if let Some((value, ttl_secs)) = &found {
                    store::cache_copy(env, now, &lookup, value, *ttl_secs);
                }
                let outcome = Outcome::Get(Ok(found.map(|(v, _)| v)));
                env.events.push_back(Event { op, outcome });
            }
            Operation::Put(mut put) => {
                let Some(lookup) = put.lookup.take() else {
                    return;
                };
                store::send_stores(env, now, op, &mut put, &lookup);
                self.storing(env, now, op, put);
            }
            Operation::Record(record) => self.record_lookup_done(env, now, op, *record),
            Operation::Refresh {
                filling: Some((_, rest)),
                ..
            } => self.refresh_next_part(env, now, rest),
            Operation::Refresh { .. }
            | Operation::Bootstrap { lookup: None, .. }
            | Operation::Ping => {}
        }
    }
}

pub(super) fn send<R: Rng + ?Sized>(
    env: &mut Env<'_, R>,
    now: Instant,
    to: SocketAddr,
    peer: Option<NodeId>,
    request: &Request,
    purpose: Purpose,
    class: Class,
) -> bool {
    // A lookup asks contacts it was told of by others: their answers name
    // them, which spares a verification ping each (see `wire::trailers`),
    // and list contacts in the compact form.
    let flags = match purpose {
        Purpose::Lookup(_) => wire::FLAG_RESPONDER_ID | wire::FLAG_COMPACT_NODES,
        _ => 0,
    };
    let out = Outgoing {
        to,
        peer,
        request,
        purpose,
        class,
        ttl_secs: 0,
        flags,
    };
    env.out.request(now, env.rng, out)
}
