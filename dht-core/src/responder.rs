//! Answering requests: a pure `request -> response` under a store policy.
//!
//! Every well-formed request gets an answer — a STORE that is refused gets
//! `false`, never silence, because rpcudp peers evict a node that does not
//! answer. The responder reads the routing table and the record store; what
//! a STORE may change is decided by [`crate::records`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::contact::Contact;
use crate::id::NodeId;
use crate::quota::SourceQuota;
use crate::record_policy::{self, Verdict};
use crate::records::{IncomingStore, RecordStore};
use crate::routing::{Counting, RoutingTable};
use crate::value::Value;
use crate::wall_clock::WallClock;
use crate::wire::{self, MsgId, Request, Response};

/// What the responder needs of [`crate::Config`].
#[derive(Clone, Copy, Debug)]
pub struct StorePolicy {
    pub k: usize,
    pub max_value_size: usize,
    /// TTL of a STORE that does not say (Python peers).
    pub default_ttl: Duration,
    /// Longest TTL accepted from a peer.
    pub max_ttl: Duration,
    /// Unix time, for signed records' expiry.
    pub clock: WallClock,
}

/// What the node's state the responder reads and writes.
pub struct Context<'a, R: Rng + ?Sized> {
    pub own: NodeId,
    pub routing: &'a RoutingTable,
    pub records: &'a mut RecordStore,
    pub quota: &'a mut SourceQuota,
    pub policy: &'a StorePolicy,
    pub rng: &'a mut R,
}

/// The answer to `request`, received from `from` with id `msg_id`.
pub fn answer<R: Rng + ?Sized>(
    ctx: &mut Context<'_, R>,
    now: Instant,
    from: SocketAddr,
    msg_id: &MsgId,
    request: Request,
) -> Response {
    match request {
        Request::Ping { .. } => Response::Ping(ctx.own),
        Request::Store { sender, key, value } => {
            let stored = accept_store(ctx, now, from, msg_id, key, value);
            if wire::wants_closer_nodes(msg_id) {
                let closer = neighbours(ctx.routing, ctx.policy.k, &key, from, sender);
                Response::StoreWithNodes(stored, closer)
            } else {
                Response::Store(stored)
            }
        }
        // A value we cannot hold: answered, never stored.
        Request::StoreRejected { sender, key, .. } => {
            if wire::wants_closer_nodes(msg_id) {
                let closer = neighbours(ctx.routing, ctx.policy.k, &key, from, sender);
                Response::StoreWithNodes(false, closer)
            } else {
                Response::Store(false)
            }
        }
        Request::FindNode { sender, target } => {
            Response::Nodes(neighbours(ctx.routing, ctx.policy.k, &target, from, sender))
        }
        Request::FindValue { sender, key } => match ctx.records.get(&key, now) {
            Some(item) => Response::Value {
                value: item.value,
                ttl_secs: Some(
                    item.expires_at
                        .saturating_duration_since(now)
                        .as_secs()
                        .max(1),
                ),
            },
            None => Response::Nodes(neighbours(ctx.routing, ctx.policy.k, &key, from, sender)),
        },
        Request::Stun => Response::Stun(from),
    }
}

fn accept_store<R: Rng + ?Sized>(
    ctx: &mut Context<'_, R>,
    now: Instant,
    from: SocketAddr,
    msg_id: &MsgId,
    key: NodeId,
    value: Value,
) -> bool {
    let policy = ctx.policy;
    let size = value.size();
    if size > policy.max_value_size {
        return false;
    }
    let cached = wire::flags_from_id(msg_id) & wire::FLAG_CACHED != 0;
    // A node already holding the key takes updates to it (it is a holder,
    // whatever its table says); others must plausibly be among the closest.
    // (Checked in this order: most STOREs reach nodes that are, and the
    // count costs less than a search of the store.)
    if !cached
        && !responsible(ctx.routing, ctx.own, policy.k, &key)
        && !ctx.records.holds(&key, now)
    {
        return false;
    }
    if !ctx.quota.admits(from.ip(), &key, size) {
        return false;
    }
    let stored = store(ctx, now, msg_id, key, value, cached);
    if stored {
        ctx.quota.charge(from.ip(), key, size);
    }
    stored
}

/// Whether we are plausibly among the k closest nodes to `key`: fewer than
/// 2k of the contacts we know of are closer (the slack covers what the
/// sender knows and we do not). A node that knows fewer than 2k contacts
/// takes everything. The closer contacts are only counted (suspects left
/// out), so the check stays cheap on every STORE.
fn responsible(routing: &RoutingTable, own: NodeId, k: usize, key: &NodeId) -> bool {
    let slack = 2 * k;
    let live = Counting {
        live_only: true,
        except: None,
    };
    routing.count_closer(key, &own.distance(key), slack, live) < slack
}

fn store<R: Rng + ?Sized>(
    ctx: &mut Context<'_, R>,
    now: Instant,
    msg_id: &MsgId,
    key: NodeId,
    value: Value,
    cached: bool,
) -> bool {
    let policy = ctx.policy;
    let ttl = wire::ttl_from_id(msg_id)
        .map(Duration::from_secs)
        .unwrap_or(policy.default_ttl)
        .min(policy.max_ttl);
    if ttl.is_zero() {
        return false;
    }
    let store = IncomingStore { ttl, cached };
    // Records first: a held record is never replaced by a plain value.
    let (value, held) = match record_policy::store_record(
        ctx.records,
        &policy.clock,
        policy.max_ttl,
        now,
        key,
        value,
        store,
        ctx.rng,
    ) {
        Verdict::Record(stored) => return stored,
        Verdict::Plain(value, held) => (value, held),
    };
    ctx.records
        .accept_store_over(now, key, value, store, held, ctx.rng)
}

/// The k closest contacts to `target`, without the requester itself (as
/// Python's `find_neighbors(exclude=source)` does), suspects left out.
pub fn neighbours(
    routing: &RoutingTable,
    k: usize,
    target: &NodeId,
    from: SocketAddr,
    sender: NodeId,
) -> Vec<Contact> {
    routing.closest(target, k, |e| {
        e.failures > 0 || e.contact.addr == from || e.contact.id == sender
    })
}
