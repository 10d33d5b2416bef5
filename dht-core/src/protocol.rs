//! A Kademlia node as a sans-IO state machine.
//!
//! The driver feeds it datagrams (`handle_datagram`) and timer expiries
//! (`handle_timeout`), issues commands (`bootstrap`, `get`, `put`, `ping`),
//! and after each call drains `poll_transmit` (datagrams to send) and
//! `poll_event` (finished operations), then sleeps until `poll_timeout`.
//! Nothing here reads a clock, touches a socket or spawns a task: time is the
//! `now` argument, and randomness comes from a seeded RNG. That is what lets
//! the simulator run ten thousand nodes deterministically in one thread.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, trace};

use crate::config::Config;
use crate::contact::Contact;
use crate::error::{Error, Result};
use crate::id::{Key, NodeId};
use crate::lookup::{Lookup, LookupKind};
use crate::routing::{Insert, RoutingTable};
use crate::storage::{MemoryStorage, Storage, StoredValue};
use crate::value::Value;
use crate::wire::{self, MsgId, Request, Response, RpcKind};

/// Identifies a command until its [`Event`] comes out.
pub type OpId = u64;

/// Largest UDP payload on IPv4; a STORE that does not fit cannot be sent.
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Most keys examined for hand-over when a new contact appears.
const MAX_TRANSFER_SCAN: usize = 10_000;
/// Most background operations (refresh, replicate, republish) started per
/// maintenance tick, so a node holding many values spreads the load.
const MAX_BACKGROUND_PER_TICK: usize = 64;

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Expiry; `None` means `Config::default_ttl`. Capped at `Config::max_ttl`.
    pub ttl: Option<Duration>,
    /// How many of the closest nodes to store at; `None` or 0 means k; capped at k.
    pub replication: Option<usize>,
}

/// What a put achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutReport {
    /// Nodes that acknowledged the STORE.
    pub stored_remote: usize,
    /// This node is among the closest to the key and keeps a copy for the network.
    pub stored_locally: bool,
    /// Nodes a STORE was sent to.
    pub contacted: usize,
}

/// Counters and gauges of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    /// Malformed, truncated, oversized, unsolicited or misaddressed datagrams.
    pub datagrams_dropped: u64,
    pub requests_received: u64,
    pub responses_received: u64,
    pub rpcs_sent: u64,
    pub rpc_timeouts: u64,
    pub lookups_started: u64,
    pub lookups_completed: u64,
    /// RPCs sent by lookups that completed (for RPCs-per-lookup figures).
    pub lookup_rpcs: u64,
    /// Sum of the hops of completed lookups (see `Lookup::hops`).
    pub lookup_hops: u64,
    pub contacts: u64,
    pub values_stored: u64,
    pub stored_bytes: u64,
    pub pending_rpcs: u64,
}

/// The result of a command.
#[derive(Debug)]
pub enum Outcome {
    Bootstrap(Vec<Contact>),
    Get(Result<Option<Value>>),
    Put(Result<PutReport>),
    Ping(Result<NodeId>),
}

/// A finished command.
#[derive(Debug)]
pub struct Event {
    pub op: OpId,
    pub outcome: Outcome,
}

/// Why an RPC was sent, i.e. who gets its answer.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Lookup(OpId),
    Store(OpId),
    BootstrapPing(OpId),
    UserPing(OpId),
    /// Pinging the least-recently-seen contact of a full bucket.
    EvictionPing,
    /// Caching after a value lookup, hand-over to a new contact: nobody waits.
    FireAndForget,
}

#[derive(Debug)]
struct PendingRpc {
    to: SocketAddr,
    peer: Option<NodeId>,
    kind: RpcKind,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PutKind {
    /// A user's put: reported as an event; this node becomes the publisher.
    User,
    /// Hourly re-send of a value this node holds for the network.
    Replicate,
    /// The publisher's periodic re-put.
    Republish,
}

#[derive(Debug)]
struct PutState {
    key: Key,
    value: Value,
    ttl: Duration,
    replication: usize,
    kind: PutKind,
    lookup: Option<Lookup>,
    outstanding: usize,
    report: PutReport,
}

#[derive(Debug)]
enum Operation {
    Bootstrap {
        pings_left: usize,
        lookup: Option<Lookup>,
    },
    Get {
        lookup: Lookup,
    },
    Put(Box<PutState>),
    Ping,
    Refresh {
        lookup: Lookup,
    },
}

impl Operation {
    fn lookup_mut(&mut self) -> Option<&mut Lookup> {
        match self {
            Operation::Bootstrap { lookup, .. } => lookup.as_mut(),
            Operation::Get { lookup } | Operation::Refresh { lookup } => Some(lookup),
            Operation::Put(put) => put.lookup.as_mut(),
            Operation::Ping => None,
        }
    }
}

/// One Kademlia node's protocol state.
pub struct Protocol {
    id: NodeId,
    config: Config,
    rng: StdRng,
    routing: RoutingTable,
    storage: Box<dyn Storage>,
    pending: HashMap<MsgId, PendingRpc>,
    deadlines: BTreeSet<(Instant, MsgId)>,
    ops: HashMap<OpId, Operation>,
    next_op: OpId,
    /// Operations whose lookup waits for a free RPC slot.
    starved: VecDeque<OpId>,
    /// Contacts with an eviction ping in flight.
    evicting: HashSet<NodeId>,
    next_maintenance: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Protocol {
    /// A node with the default in-memory storage.
    pub fn new(config: Config, now: Instant) -> Result<Self> {
        let storage = MemoryStorage::new(config.max_stored_values, config.max_stored_bytes);
        Self::with_storage(config, Box::new(storage), now)
    }

    pub fn with_storage(config: Config, storage: Box<dyn Storage>, now: Instant) -> Result<Self> {
        config.validate()?;
        let mut rng = match config.rng_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let id = config.node_id.unwrap_or_else(|| NodeId::random(&mut rng));
        Ok(Protocol {
            id,
            routing: RoutingTable::new(id, config.k, config.max_failures, now),
            storage,
            rng,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            ops: HashMap::new(),
            next_op: 1,
            starved: VecDeque::new(),
            evicting: HashSet::new(),
            next_maintenance: now + config.maintenance_interval,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            config,
        })
    }

    // ------------------------------------------------------------ getters

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn routing(&self) -> &RoutingTable {
        &self.routing
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.contacts = self.routing.len() as u64;
        s.values_stored = self.storage.len() as u64;
        s.stored_bytes = self.storage.bytes() as u64;
        s.pending_rpcs = self.pending.len() as u64;
        s
    }

    /// The value this node holds for `key`, without asking the network.
    pub fn local_value(&self, key: &Key, now: Instant) -> Option<Value> {
        self.storage.get(key, now).map(|v| v.value)
    }

    /// Contacts nearest to this node's own id (what `bootstrappable_neighbors` returns).
    pub fn closest_contacts(&self, n: usize) -> Vec<Contact> {
        self.routing.closest(&self.id, n, |_| false)
    }

    /// Add saved contacts (e.g. from a previous run). Returns how many were new.
    pub fn import_contacts(&mut self, now: Instant, contacts: &[Contact]) -> usize {
        contacts
            .iter()
            .filter(|c| matches!(self.routing.insert(**c, now), Insert::Added))
            .count()
    }

    // ------------------------------------------------------------ output

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rpc = self.deadlines.first().map(|(t, _)| *t);
        Some(rpc.map_or(self.next_maintenance, |t| t.min(self.next_maintenance)))
    }

    // ------------------------------------------------------------ commands

    /// Ping `addrs`, then look up our own id. The event carries the k closest
    /// contacts found (empty if nobody answered).
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) -> OpId {
        let op = self.new_op();
        self.ops.insert(
            op,
            Operation::Bootstrap {
                pings_left: addrs.len(),
                lookup: None,
            },
        );
        for addr in addrs {
            self.send_rpc(
                now,
                *addr,
                None,
                Request::Ping { sender: self.id },
                Purpose::BootstrapPing(op),
            );
        }
        if addrs.is_empty() {
            self.bootstrap_lookup(now, op);
        }
        op
    }

    /// Find the value under `key`: the local copy, or an iterative FIND_VALUE.
    pub fn get(&mut self, now: Instant, key: Key) -> OpId {
        let op = self.new_op();
        if let Some(v) = self.storage.get(&key, now) {
            self.events.push_back(Event {
                op,
                outcome: Outcome::Get(Ok(Some(v.value))),
            });
            return op;
        }
        let seeds = self.seeds(&key);
        if seeds.is_empty() {
            self.events.push_back(Event {
                op,
                outcome: Outcome::Get(Ok(None)),
            });
            return op;
        }
        let lookup = self.new_lookup(now, key, LookupKind::FindValue, seeds);
        self.ops.insert(op, Operation::Get { lookup });
        self.drive(now, op);
        op
    }

    /// Store `value` under `key` at the closest nodes. Fails at once for a bad
    /// value or TTL, or with no known peers.
    pub fn put(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        options: PutOptions,
    ) -> Result<OpId> {
        let ttl = self.validate_put(&value, &options)?;
        if self.routing.is_empty() {
            return Err(Error::NoPeers);
        }
        let k = self.config.k;
        let replication = options.replication.filter(|r| *r > 0).unwrap_or(k).min(k);
        Ok(self.start_put(now, key, value, ttl, replication, PutKind::User))
    }

    /// The TTL a put of `value` will use, or why it cannot be put.
    fn validate_put(&self, value: &Value, options: &PutOptions) -> Result<Duration> {
        let max = self.config.max_value_size;
        if value.size() > max || wire::encoded_store_len(value) > MAX_UDP_PAYLOAD {
            return Err(Error::ValueTooLarge {
                size: value.size(),
                max,
            });
        }
        let ttl = options
            .ttl
            .unwrap_or(self.config.default_ttl)
            .min(self.config.max_ttl);
        if ttl.is_zero() {
            return Err(Error::InvalidArgument("ttl must be positive".into()));
        }
        Ok(ttl)
    }

    /// Keep `value` on this node only, as its publisher: nothing is sent now.
    /// The value reaches other nodes as they appear (the key hand-over to
    /// new contacts) and with every republish. For a node that is alone so
    /// far, where [`Protocol::put`] fails with [`Error::NoPeers`].
    pub fn store_local(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        options: PutOptions,
    ) -> Result<()> {
        let ttl = self.validate_put(&value, &options)?;
        let item = StoredValue {
            value,
            expires_at: now + ttl,
            replicated_at: now,
            published: Some((now, ttl)),
        };
        self.storage.put(key, item)
    }

    /// Ping one address; the event carries the id that answered.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> OpId {
        let op = self.new_op();
        self.ops.insert(op, Operation::Ping);
        self.send_rpc(
            now,
            addr,
            None,
            Request::Ping { sender: self.id },
            Purpose::UserPing(op),
        );
        op
    }

    /// Abandon an operation: no event will come for it. Replies still in
    /// flight are used to update the routing table only.
    pub fn cancel(&mut self, op: OpId) {
        self.ops.remove(&op);
    }

    // ------------------------------------------------------------ input

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams_received += 1;
        let packet = match wire::split_packet(data) {
            Ok(p) => p,
            Err(e) => return self.drop_datagram(from, &e),
        };
        if packet.kind == wire::REQUEST {
            self.handle_request(now, from, packet.id, packet.body);
        } else {
            self.handle_response(now, from, packet.id, packet.body);
        }
        self.pump_starved(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, msg_id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(rpc) = self.pending.remove(&msg_id) {
                self.stats.rpc_timeouts += 1;
                trace!(to = %rpc.to, kind = rpc.kind.name(), "rpc timed out");
                self.rpc_failed(now, rpc);
            }
        }
        if now >= self.next_maintenance {
            self.maintenance(now);
            self.next_maintenance = now + self.config.maintenance_interval;
        }
        self.pump_starved(now);
    }

    fn drop_datagram(&mut self, from: SocketAddr, why: &dyn std::fmt::Debug) {
        self.stats.datagrams_dropped += 1;
        debug!(%from, ?why, "dropped datagram");
    }

    fn handle_request(&mut self, now: Instant, from: SocketAddr, msg_id: MsgId, body: &[u8]) {
        let request = match wire::decode_request(body) {
            Ok(r) => r,
            Err(e) => return self.drop_datagram(from, &e),
        };
        self.stats.requests_received += 1;
        if let Some(sender) = request.sender() {
            self.heard_from(now, Contact::new(sender, from));
        }
        let response = match request {
            Request::Ping { .. } => Response::Ping(self.id),
            Request::Store { key, value, .. } => {
                Response::Store(self.accept_store(now, key, value, wire::ttl_from_id(&msg_id)))
            }
            Request::FindNode { sender, target } => {
                Response::Nodes(self.neighbours_for(&target, from, sender))
            }
            Request::FindValue { sender, key } => match self.storage.get(&key, now) {
                Some(item) => Response::Value {
                    value: item.value,
                    ttl_secs: Some(
                        item.expires_at
                            .saturating_duration_since(now)
                            .as_secs()
                            .max(1),
                    ),
                },
                None => Response::Nodes(self.neighbours_for(&key, from, sender)),
            },
            Request::Stun => Response::Stun(from),
        };
        self.transmit(from, wire::encode_response(&msg_id, &response));
    }

    /// The k closest contacts to `target`, without the requester itself (as
    /// Python's `find_neighbors(exclude=source)` does).
    fn neighbours_for(&self, target: &NodeId, from: SocketAddr, sender: NodeId) -> Vec<Contact> {
        self.routing
            .closest_responsive(target, self.config.k, self.config.k, |e| {
                e.contact.addr == from || e.contact.id == sender
            })
    }

    fn accept_store(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        ttl_secs: Option<u64>,
    ) -> bool {
        if value.size() > self.config.max_value_size {
            return false;
        }
        let ttl = ttl_secs
            .map(Duration::from_secs)
            .unwrap_or(self.config.default_ttl)
            .min(self.config.max_ttl);
        if ttl.is_zero() {
            return false;
        }
        let existing = self.storage.get(&key, now);
        let expires_at = match &existing {
            // The publisher's own copy keeps its own expiry if that is later.
            Some(old) if old.published.is_some() => old.expires_at.max(now + ttl),
            _ => now + ttl,
        };
        let item = StoredValue {
            value,
            expires_at,
            // Somebody just replicated it to us: no need to re-send it this hour.
            replicated_at: now,
            published: existing.and_then(|old| old.published),
        };
        self.storage.put(key, item).is_ok()
    }

    fn handle_response(&mut self, now: Instant, from: SocketAddr, msg_id: MsgId, body: &[u8]) {
        match self.pending.get(&msg_id) {
            None => return self.drop_datagram(from, &"unsolicited response"),
            Some(rpc) if rpc.to != from => {
                return self.drop_datagram(from, &"response from wrong address")
            }
            Some(_) => {}
        }
        let Some(rpc) = self.pending.remove(&msg_id) else {
            return;
        };
        self.deadlines.remove(&(rpc.deadline, msg_id));
        let response = match wire::decode_response(rpc.kind, body) {
            Ok(r) => r,
            Err(e) => {
                self.drop_datagram(from, &e);
                return self.rpc_failed(now, rpc);
            }
        };
        self.stats.responses_received += 1;
        let peer = match &response {
            Response::Ping(id) => Some(*id),
            _ => rpc.peer,
        };
        if let Some(id) = peer {
            self.heard_from(now, Contact::new(id, from));
        }
        if let Some(id) = rpc.peer {
            self.evicting.remove(&id);
        }
        match rpc.purpose {
            Purpose::Lookup(op) => {
                let (Some(lookup), Some(id)) = (
                    self.ops.get_mut(&op).and_then(Operation::lookup_mut),
                    rpc.peer,
                ) else {
                    return;
                };
                match response {
                    Response::Nodes(contacts) => lookup.on_nodes(&id, contacts),
                    Response::Value { value, ttl_secs }
                        if lookup.kind() == LookupKind::FindValue =>
                    {
                        lookup.on_value(&id, value, ttl_secs)
                    }
                    _ => lookup.on_failure(&id),
                }
                self.drive(now, op);
            }
            Purpose::Store(op) => {
                let stored = matches!(response, Response::Store(true));
                self.store_answered(now, op, stored);
            }
            Purpose::BootstrapPing(op) => self.bootstrap_ping_answered(now, op),
            Purpose::UserPing(op) => {
                if self.ops.remove(&op).is_some() {
                    let outcome = match peer {
                        Some(id) => Ok(id),
                        None => Err(Error::Timeout),
                    };
                    self.events.push_back(Event {
                        op,
                        outcome: Outcome::Ping(outcome),
                    });
                }
            }
            Purpose::EvictionPing | Purpose::FireAndForget => {}
        }
    }

    /// A request got no (usable) answer.
    fn rpc_failed(&mut self, now: Instant, rpc: PendingRpc) {
        if let Some(id) = rpc.peer {
            let evicted = self.routing.record_failure(&id);
            self.evicting.remove(&id);
            if evicted {
                debug!(peer = %id, "contact evicted after repeated missed replies");
            } else if matches!(rpc.purpose, Purpose::EvictionPing)
                && self.routing.contains(&id)
                && self.routing.has_replacements(&id)
            {
                // A newcomer waits for this slot: keep asking until the
                // contact answers or has missed enough replies to go.
                self.ping_for_eviction(now, Contact::new(id, rpc.to));
            }
        }
        match rpc.purpose {
            Purpose::Lookup(op) => {
                if let (Some(lookup), Some(id)) = (
                    self.ops.get_mut(&op).and_then(Operation::lookup_mut),
                    rpc.peer,
                ) {
                    lookup.on_failure(&id);
                    self.drive(now, op);
                }
            }
            Purpose::Store(op) => self.store_answered(now, op, false),
            Purpose::BootstrapPing(op) => self.bootstrap_ping_answered(now, op),
            Purpose::UserPing(op) => {
                if self.ops.remove(&op).is_some() {
                    self.events.push_back(Event {
                        op,
                        outcome: Outcome::Ping(Err(Error::Timeout)),
                    });
                }
            }
            Purpose::EvictionPing | Purpose::FireAndForget => {}
        }
    }

    // ------------------------------------------------------------ contacts

    /// `contact` sent us a request or answered one of ours.
    fn heard_from(&mut self, now: Instant, contact: Contact) {
        if contact.id == self.id {
            return;
        }
        let known = self.routing.contains(&contact.id);
        match self.routing.insert(contact, now) {
            Insert::Added if !known => self.hand_over_keys(now, contact),
            Insert::Full { oldest } => self.ping_for_eviction(now, oldest),
            _ => {}
        }
    }

    fn ping_for_eviction(&mut self, now: Instant, oldest: Contact) {
        if self.evicting.insert(oldest.id) {
            let ping = Request::Ping { sender: self.id };
            self.send_rpc(
                now,
                oldest.addr,
                Some(oldest.id),
                ping,
                Purpose::EvictionPing,
            );
        }
    }

    /// Give a newly seen node the values it is now responsible for (paper
    /// §2.5): a key goes to the newcomer if it is among the k closest to the
    /// key and we are closer to the key than any other node we know. The key
    /// is already a digest; bmuller hashes it a second time here by mistake.
    fn hand_over_keys(&mut self, now: Instant, newcomer: Contact) {
        if self.storage.is_empty() {
            return;
        }
        let k = self.config.k;
        let mut keys = self.storage.keys();
        keys.truncate(MAX_TRANSFER_SCAN);
        for key in keys {
            let closest = self
                .routing
                .closest(&key, k, |e| e.contact.id == newcomer.id);
            let newcomer_close = closest.len() < k
                || closest
                    .last()
                    .is_some_and(|far| newcomer.id.distance(&key) < far.id.distance(&key));
            let we_are_closest = closest
                .first()
                .is_none_or(|near| self.id.distance(&key) < near.id.distance(&key));
            if !(newcomer_close && we_are_closest) {
                continue;
            }
            // Read (and clone) the value only for keys that are handed over.
            if let Some(item) = self.storage.get(&key, now) {
                let ttl = item.expires_at.saturating_duration_since(now);
                self.send_store(now, newcomer, key, item.value, ttl, Purpose::FireAndForget);
            }
        }
    }

    // ------------------------------------------------------------ operations

    /// Where a lookup for `target` starts: the k closest contacts, those that
    /// answered their last RPC first (enough of them to fill the α slots).
    fn seeds(&self, target: &NodeId) -> Vec<Contact> {
        self.routing
            .closest_responsive(target, self.config.k, self.config.alpha, |_| false)
    }

    fn new_op(&mut self) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        op
    }

    fn new_lookup(
        &mut self,
        now: Instant,
        target: NodeId,
        kind: LookupKind,
        seeds: Vec<Contact>,
    ) -> Lookup {
        self.stats.lookups_started += 1;
        self.routing.touch(&target, now);
        Lookup::new(
            target,
            kind,
            self.id,
            self.config.k,
            self.config.alpha,
            seeds,
        )
    }

    /// Send what a lookup wants to send; finish the operation when it is done.
    fn drive(&mut self, now: Instant, op: OpId) {
        let free = self
            .config
            .max_pending_rpcs
            .saturating_sub(self.pending.len());
        let Some(lookup) = self.ops.get_mut(&op).and_then(Operation::lookup_mut) else {
            return;
        };
        let mut queries = Vec::new();
        while queries.len() < free {
            match lookup.next_query() {
                Some(c) => queries.push(c),
                None => break,
            }
        }
        let (target, kind, done) = (lookup.target(), lookup.kind(), lookup.is_done());
        if free == 0 && !done {
            self.starved.push_back(op);
        }
        for contact in queries {
            let request = match kind {
                LookupKind::FindNode => Request::FindNode {
                    sender: self.id,
                    target,
                },
                LookupKind::FindValue => Request::FindValue {
                    sender: self.id,
                    key: target,
                },
            };
            self.send_rpc(
                now,
                contact.addr,
                Some(contact.id),
                request,
                Purpose::Lookup(op),
            );
        }
        if done {
            self.lookup_done(now, op);
        }
    }

    fn pump_starved(&mut self, now: Instant) {
        while self.pending.len() < self.config.max_pending_rpcs {
            let Some(op) = self.starved.pop_front() else {
                break;
            };
            self.drive(now, op);
        }
    }

    fn lookup_done(&mut self, now: Instant, op: OpId) {
        let Some(mut operation) = self.ops.remove(&op) else {
            return;
        };
        self.stats.lookups_completed += 1;
        if let Some(lookup) = operation.lookup_mut() {
            self.stats.lookup_rpcs += lookup.queries() as u64;
            self.stats.lookup_hops += u64::from(lookup.hops());
        }
        match operation {
            Operation::Bootstrap {
                lookup: Some(lookup),
                ..
            } => {
                let found = lookup.closest_responded();
                self.events.push_back(Event {
                    op,
                    outcome: Outcome::Bootstrap(found),
                });
                // A joining node refreshes the buckets further away than its
                // closest neighbour, so its table spans the whole id space.
                let targets = self.routing.far_bucket_targets(&mut self.rng);
                for target in targets {
                    self.start_refresh(now, target);
                }
            }
            Operation::Get { mut lookup } => {
                let found = lookup.take_value();
                if let Some((value, ttl_secs)) = &found {
                    // Cache at the closest node that answered without the value.
                    if let Some(cache) = lookup.closest_responded().first().copied() {
                        let ttl = ttl_secs.map_or(self.config.default_ttl, Duration::from_secs);
                        self.send_store(
                            now,
                            cache,
                            lookup.target(),
                            value.clone(),
                            ttl,
                            Purpose::FireAndForget,
                        );
                    }
                }
                let outcome = Outcome::Get(Ok(found.map(|(v, _)| v)));
                self.events.push_back(Event { op, outcome });
            }
            Operation::Put(mut put) => {
                let Some(lookup) = put.lookup.take() else {
                    return;
                };
                let mut targets = lookup.closest_responded();
                targets.truncate(put.replication);
                let own_distance = self.id.distance(&put.key);
                put.report.stored_locally = targets.len() < put.replication
                    || targets
                        .last()
                        .is_some_and(|far| own_distance < far.id.distance(&put.key));
                if put.kind != PutKind::Replicate {
                    let kept = self.keep_local_copy(now, &put);
                    put.report.stored_locally &= kept;
                }
                put.report.contacted = targets.len();
                put.outstanding = targets.len();
                for contact in targets {
                    self.send_store(
                        now,
                        contact,
                        put.key,
                        put.value.clone(),
                        put.ttl,
                        Purpose::Store(op),
                    );
                }
                if put.outstanding == 0 {
                    self.finish_put(op, *put);
                } else {
                    self.ops.insert(op, Operation::Put(put));
                }
            }
            Operation::Refresh { .. } => {}
            Operation::Bootstrap { lookup: None, .. } | Operation::Ping => {}
        }
    }

    /// The publisher keeps its value (to republish it) whether or not it is
    /// among the closest nodes.
    fn keep_local_copy(&mut self, now: Instant, put: &PutState) -> bool {
        let item = StoredValue {
            value: put.value.clone(),
            expires_at: now + put.ttl,
            replicated_at: now,
            published: Some((now, put.ttl)),
        };
        let kept = self.storage.put(put.key, item).is_ok();
        if !kept {
            debug!(key = %put.key, "local storage full: publisher copy not kept");
        }
        kept
    }

    fn store_answered(&mut self, _now: Instant, op: OpId, stored: bool) {
        let Some(Operation::Put(put)) = self.ops.get_mut(&op) else {
            return;
        };
        if put.lookup.is_some() {
            return;
        }
        put.outstanding = put.outstanding.saturating_sub(1);
        put.report.stored_remote += usize::from(stored);
        if put.outstanding == 0 {
            if let Some(Operation::Put(put)) = self.ops.remove(&op) {
                self.finish_put(op, *put);
            }
        }
    }

    fn finish_put(&mut self, op: OpId, put: PutState) {
        if put.kind == PutKind::User {
            self.events.push_back(Event {
                op,
                outcome: Outcome::Put(Ok(put.report)),
            });
        }
    }

    fn start_put(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        ttl: Duration,
        replication: usize,
        kind: PutKind,
    ) -> OpId {
        let op = self.new_op();
        let seeds = self.seeds(&key);
        let lookup = self.new_lookup(now, key, LookupKind::FindNode, seeds);
        let put = PutState {
            key,
            value,
            ttl,
            replication,
            kind,
            lookup: Some(lookup),
            outstanding: 0,
            report: PutReport::default(),
        };
        self.ops.insert(op, Operation::Put(Box::new(put)));
        self.drive(now, op);
        op
    }

    fn start_refresh(&mut self, now: Instant, target: NodeId) {
        let seeds = self.seeds(&target);
        if seeds.is_empty() {
            return;
        }
        let op = self.new_op();
        let lookup = self.new_lookup(now, target, LookupKind::FindNode, seeds);
        self.ops.insert(op, Operation::Refresh { lookup });
        self.drive(now, op);
    }

    fn bootstrap_ping_answered(&mut self, now: Instant, op: OpId) {
        let Some(Operation::Bootstrap {
            pings_left,
            lookup: None,
        }) = self.ops.get_mut(&op)
        else {
            return;
        };
        *pings_left = pings_left.saturating_sub(1);
        if *pings_left == 0 {
            self.bootstrap_lookup(now, op);
        }
    }

    fn bootstrap_lookup(&mut self, now: Instant, op: OpId) {
        let seeds = self.seeds(&self.id);
        if seeds.is_empty() {
            self.ops.remove(&op);
            self.events.push_back(Event {
                op,
                outcome: Outcome::Bootstrap(Vec::new()),
            });
            return;
        }
        let lookup = self.new_lookup(now, self.id, LookupKind::FindNode, seeds);
        if let Some(Operation::Bootstrap { lookup: slot, .. }) = self.ops.get_mut(&op) {
            *slot = Some(lookup);
        }
        self.drive(now, op);
    }

    // ------------------------------------------------------------ maintenance

    /// Expire values, refresh idle buckets, replicate held values hourly and
    /// republish our own values daily.
    fn maintenance(&mut self, now: Instant) {
        let expired = self.storage.expire(now);
        if expired > 0 {
            debug!(expired, "values expired");
        }
        if self.routing.is_empty() {
            return;
        }
        let mut budget = MAX_BACKGROUND_PER_TICK;
        if let Some(stale_before) = now.checked_sub(self.config.refresh_interval) {
            for target in self
                .routing
                .stale_bucket_targets(stale_before, &mut self.rng)
            {
                if budget == 0 {
                    break;
                }
                budget -= 1;
                self.start_refresh(now, target);
            }
        }
        for key in self.storage.keys() {
            if budget == 0 {
                break;
            }
            let Some(mut item) = self.storage.get(&key, now) else {
                continue;
            };
            let (ttl, kind) = match item.published {
                Some((at, ttl)) if now >= at + self.config.republish_interval => {
                    (ttl, PutKind::Republish)
                }
                _ if now >= item.replicated_at + self.config.replicate_interval => (
                    item.expires_at.saturating_duration_since(now),
                    PutKind::Replicate,
                ),
                _ => continue,
            };
            if ttl.is_zero() {
                continue;
            }
            budget -= 1;
            item.replicated_at = now;
            let value = item.value.clone();
            // Re-inserting an existing key cannot exceed the limits.
            let _ = self.storage.put(key, item);
            self.start_put(now, key, value, ttl, self.config.k, kind);
        }
    }

    // ------------------------------------------------------------ sending

    fn new_msg_id(&mut self, ttl_secs: u32) -> MsgId {
        let mut random = [0u8; 12];
        self.rng.fill(&mut random[..]);
        wire::kadmium_id(ttl_secs, random)
    }

    fn send_store(
        &mut self,
        now: Instant,
        to: Contact,
        key: Key,
        value: Value,
        ttl: Duration,
        purpose: Purpose,
    ) {
        if matches!(purpose, Purpose::FireAndForget)
            && self.pending.len() >= self.config.max_pending_rpcs
        {
            return; // best effort only
        }
        let ttl_secs = u32::try_from(ttl.as_secs().max(1)).unwrap_or(u32::MAX);
        let request = Request::Store {
            sender: self.id,
            key,
            value,
        };
        self.send_rpc_with_id(now, to.addr, Some(to.id), request, purpose, ttl_secs);
    }

    fn send_rpc(
        &mut self,
        now: Instant,
        to: SocketAddr,
        peer: Option<NodeId>,
        request: Request,
        purpose: Purpose,
    ) {
        self.send_rpc_with_id(now, to, peer, request, purpose, 0);
    }

    fn send_rpc_with_id(
        &mut self,
        now: Instant,
        to: SocketAddr,
        peer: Option<NodeId>,
        request: Request,
        purpose: Purpose,
        ttl_secs: u32,
    ) {
        let msg_id = self.new_msg_id(ttl_secs);
        let deadline = now + self.config.rpc_timeout;
        let payload = wire::encode_request(&msg_id, &request);
        self.pending.insert(
            msg_id,
            PendingRpc {
                to,
                peer,
                kind: request.kind(),
                deadline,
                purpose,
            },
        );
        self.deadlines.insert((deadline, msg_id));
        self.stats.rpcs_sent += 1;
        self.transmit(to, payload);
    }

    fn transmit(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.stats.datagrams_sent += 1;
        self.transmits.push_back(Transmit { dest, payload });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_VALUE_SIZE;

    fn lone_node() -> (Protocol, Instant) {
        let now = Instant::now();
        (
            Protocol::new(Config::default().with_rng_seed(1), now).unwrap(),
            now,
        )
    }

    #[test]
    fn put_is_checked_before_anything_is_sent() {
        let (mut p, now) = lone_node();
        let key = NodeId::digest(b"k");
        let big = Value::Bytes(vec![0; DEFAULT_MAX_VALUE_SIZE + 1]);
        assert!(matches!(
            p.put(now, key, big.clone(), PutOptions::default()),
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(matches!(
            p.store_local(now, key, big, PutOptions::default()),
            Err(Error::ValueTooLarge { .. })
        ));
        let zero = PutOptions {
            ttl: Some(Duration::ZERO),
            replication: None,
        };
        assert!(matches!(
            p.put(now, key, Value::from(1i64), zero),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            p.put(now, key, Value::from(1i64), PutOptions::default()),
            Err(Error::NoPeers)
        ));
        assert!(p.poll_transmit().is_none(), "a refused put sends nothing");
    }

    #[test]
    fn store_local_is_served_and_expires() {
        let (mut p, now) = lone_node();
        let key = NodeId::digest(b"k");
        let opts = PutOptions {
            ttl: Some(Duration::from_secs(10)),
            replication: None,
        };
        p.store_local(now, key, Value::from("v"), opts).unwrap();
        let op = p.get(now, key);
        match p.poll_event() {
            Some(Event {
                op: done,
                outcome: Outcome::Get(Ok(Some(v))),
            }) => {
                assert_eq!((done, v), (op, Value::from("v")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.local_value(&key, now + Duration::from_secs(11)), None);
    }

    #[test]
    fn garbage_is_counted_and_answered_with_nothing() {
        let (mut p, now) = lone_node();
        let from = "127.0.0.1:9".parse().unwrap();
        p.handle_datagram(now, from, &[0x00; 30]);
        p.handle_datagram(now, from, &[0x01; 30]);
        assert_eq!(p.stats().datagrams_dropped, 2);
        assert!(p.poll_transmit().is_none());
    }
}
