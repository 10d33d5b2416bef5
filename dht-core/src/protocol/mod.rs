//! A Kademlia node as a sans-IO state machine: the glue between its jobs.
//!
//! The driver feeds it datagrams (`handle_datagram`) and timer expiries
//! (`handle_timeout`), issues commands (`bootstrap`, `get`, `put`, `ping`),
//! and after each call drains `poll_transmit` (datagrams to send) and
//! `poll_event` (finished operations), then sleeps until `poll_timeout`.
//! Nothing here reads a clock, touches a socket or spawns a task: time is the
//! `now` argument, and randomness comes from a seeded RNG. That is what lets
//! the simulator run thousands of nodes deterministically in one thread.
//!
//! Each job lives in its own module; this one only routes between them:
//! [`crate::rpc`] (message ids, pending requests, deadlines, slot budgets),
//! [`crate::responder`] (answering requests), [`crate::contacts`] (routing
//! table and liveness), [`crate::ops`] (one state machine per operation),
//! [`crate::records`] (how long a value lives and when it is re-sent) and
//! [`crate::replication`] (repairing copies when contacts come and go).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::node_rng::NodeRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, trace};

use crate::amplification::AddressValidation;
use crate::config::Config;
use crate::contact::Contact;
use crate::contacts::Contacts;
use crate::directory::Listing;
use crate::error::Result;
use crate::id::{Key, NodeId};
use crate::ops::{Env, Operations};
use crate::public_address::PublicAddress;
use crate::quota::{QuotaLimits, SourceQuota};
use crate::ratelimit::{RateLimiter, RateLimits};
use crate::records::{RecordStore, RefreshIntervals};
use crate::replication::Replication;
use crate::routing::{Insert, IpLimits, RoutingTable};
use crate::rpc::{Class, Outbox, RpcTable};
use crate::storage::{MemoryStorage, Storage, StoredValue};
use crate::value::Value;
use crate::wall_clock::{WallClock, VIRTUAL_EPOCH_UNIX};
use crate::wire;

pub use crate::ops::{Event, Outcome, PutReport, SignedPutReport, SignedValue};
pub use crate::rpc::{OpId, Transmit};
use crate::stats::Counters;
pub use crate::stats::Stats;

mod commands;
mod maintenance;
mod requests;
mod responses;
mod signed;

pub use commands::{Lifetime, PutOptions};
pub use signed::SignedPutOptions;
mod persistence;

/// Largest UDP payload on IPv4; a STORE that does not fit cannot be sent.
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Most background puts (replication, republish) running at once; the rest
/// wait in the records' due queue, so memory stays bounded whatever is held.
const MAX_BACKGROUND_PUTS: usize = 64;
/// Most bucket refreshes started per maintenance tick.
const MAX_REFRESHES_PER_TICK: usize = 16;
/// Keys examined per replication slice, and the pause between slices: a
/// slice is well under a millisecond of work.
const SLICE_KEYS: usize = 512;
const SLICE_PAUSE: Duration = Duration::from_millis(10);
/// Most contact changes waiting for a replication walk.
const MAX_REPLICATION_WALKS: usize = 256;
/// Most contacts that appeared from an unverified address and wait for
/// their verification ping before they get keys handed over.
const MAX_AWAITING_VERIFICATION: usize = 1024;
/// Churn repair re-sends a key at a random moment within this window.
const REPAIR_WITHIN: Duration = Duration::from_secs(120);

/// One Kademlia node's protocol state.
pub struct Protocol {
    id: NodeId,
    /// Shared by the nodes of a simulation (one copy, not 10⁵).
    config: Arc<Config>,
    /// Unix time, for signed records' expiry (the rest of the responder's
    /// [`crate::responder::StorePolicy`] is read from `config` when a
    /// request comes).
    clock: WallClock,
    rng: NodeRng,
    out: Outbox,
    contacts: Contacts,
    records: RecordStore,
    replication: Replication,
    ops: Operations,
    events: VecDeque<Event>,
    validation: AddressValidation,
    quota: SourceQuota,
    /// Contacts that appeared at an address not yet verified: keys are
    /// handed over once they answer our ping there.
    awaiting_verification: HashSet<NodeId>,
    limiter: RateLimiter,
    next_maintenance: Instant,
    next_slice: Option<Instant>,
    counters: Counters,
    /// Our address as the peers answering us see it.
    public_address: PublicAddress,
    /// What changed since the driver last saved; only with a data directory
    /// (boxed: most nodes, and every simulated one, have none).
    journal: Option<Box<crate::journal::Journal>>,
}

impl Protocol {
    /// A node with the default in-memory storage.
    pub fn new(config: impl Into<Arc<Config>>, now: Instant) -> Result<Self> {
        let config = config.into();
        let storage = MemoryStorage::for_config(&config);
        Self::with_storage(config, Box::new(storage), now)
    }

    pub fn with_storage(
        config: impl Into<Arc<Config>>,
        storage: Box<dyn Storage>,
        now: Instant,
    ) -> Result<Self> {
        let config = config.into();
        let rng_seed = config.rng_seed;
        Self::build(config, rng_seed, storage, now, None)
    }

    /// A node of `config`, which it shares with others (the nodes of a
    /// simulation), its randomness seeded by `rng_seed` whatever `config` says.
    /// With a `listing`, its routing table keeps the contacts the directory
    /// lists as numbers, and its id is the one listed for it (unless
    /// `config` names one).
    pub fn with_shared_config(
        config: Arc<Config>,
        rng_seed: u64,
        listing: Option<Listing>,
        storage: Box<dyn Storage>,
        now: Instant,
    ) -> Result<Self> {
        Self::build(config, Some(rng_seed), storage, now, listing)
    }

    fn build(
        config: Arc<Config>,
        rng_seed: Option<u64>,
        storage: Box<dyn Storage>,
        now: Instant,
        listing: Option<Listing>,
    ) -> Result<Self> {
        config.validate()?;
        let mut rng = match rng_seed {
            Some(seed) => NodeRng::seed_from_u64(seed),
            None => NodeRng::from_rng(&mut rand::rng()),
        };
        let listed_id = listing.as_ref().map(|l| l.directory.contact(l.number).id);
        let id = config
            .node_id
            .or(listed_id)
            .unwrap_or_else(|| NodeId::random(&mut rng));
        let intervals = RefreshIntervals {
            replicate_interval: config.replicate_interval,
            republish_interval: config.republish_interval,
        };
        let mut records = RecordStore::new(storage, intervals).with_owner(id);
        records.adopt_existing(now, config.maintenance_interval, &mut rng);
        let mut routing =
            RoutingTable::new(id, config.k, config.max_failures, now).with_ip_limits(IpLimits {
                per_subnet_per_bucket: config.max_contacts_per_subnet_per_bucket,
                per_ip: config.max_contacts_per_ip,
                strict_local: config.strict_local_limits,
            });
        if let Some(listing) = listing {
            routing = routing.with_directory(listing.directory);
        }
        let limits = RateLimits {
            global_per_sec: config.max_requests_per_sec,
            per_ip_per_sec: config.max_requests_per_ip_per_sec,
            strict_local: config.strict_local_limits,
        };
        // Each node keeps its own maintenance phase, so a network's nodes do
        // not all refresh in the same instant.
        let phase = config.maintenance_interval.mul_f64(rng.random::<f64>());
        Ok(Protocol {
            id,
            clock: WallClock::new(now, config.unix_time_at_start.unwrap_or(VIRTUAL_EPOCH_UNIX)),
            rng,
            out: Outbox::new(
                RpcTable::new(
                    config.max_pending_rpcs,
                    config.rpc_timeout,
                    config.min_rpc_timeout,
                ),
                if config.client_only {
                    wire::FLAG_CLIENT
                } else {
                    0
                },
            ),
            contacts: Contacts::new(routing, config.rpc_timeout),
            records,
            replication: Replication::new(MAX_REPLICATION_WALKS, REPAIR_WITHIN),
            ops: Operations::default(),
            events: VecDeque::new(),
            validation: AddressValidation::new(config.strict_local_limits),
            quota: SourceQuota::new(QuotaLimits {
                per_ip_bytes: config.max_stored_bytes / 32,
                per_subnet_bytes: config.max_stored_bytes / 8,
                strict_local: config.strict_local_limits,
            }),
            awaiting_verification: HashSet::new(),
            limiter: RateLimiter::new(limits, now),
            next_maintenance: now + phase,
            next_slice: None,
            counters: Counters::default(),
            public_address: PublicAddress::default(),
            journal: None,
            config,
        })
    }

    /// The operations and the state they work on, borrowed apart.
    fn split(&mut self) -> (&mut Operations, Env<'_, NodeRng>) {
        let env = Env {
            own: self.id,
            k: self.config.k,
            alpha: self.config.alpha,
            default_ttl: self.config.default_ttl,
            op_timeout: self.config.operation_timeout,
            bind: self.config.bind,
            clock: self.clock,
            out: &mut self.out,
            contacts: &mut self.contacts,
            records: &mut self.records,
            events: &mut self.events,
            rng: &mut self.rng,
        };
        (&mut self.ops, env)
    }

    // ------------------------------------------------------------ getters

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn routing(&self) -> &RoutingTable {
        self.contacts.table()
    }

    /// Requests in the RPC table, given up or not (`Stats::pending_rpcs`
    /// counts those holding a slot): the fuzz harness checks its bound.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn rpc_table_entries(&self) -> usize {
        self.out.table.entries()
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let l = &self.ops.counters;
        Stats {
            datagrams_received: c.datagrams_received,
            datagrams_sent: self.out.datagrams_sent,
            datagrams_dropped: c.datagrams_dropped,
            requests_refused: self.limiter.refused,
            answers_withheld: self.validation.dropped,
            stores_over_quota: self.quota.refused,
            stores_undecodable: c.stores_undecodable,
            requests_received: c.requests_received,
            responses_received: c.responses_received,
            rpcs_sent: self.out.rpcs_sent,
            rpc_timeouts: c.rpc_timeouts,
            lookups_started: l.started,
            lookups_completed: l.completed,
            lookup_rpcs: l.rpcs,
            lookup_hops: l.hops,
            gets_asking_one_first: l.gets_asking_one_first,
            gets_answered_by_first: l.gets_answered_by_first,
            gets_widened_late: l.gets_widened_late,
            gets_awaiting_lone_first: self.ops.awaiting_lone_first() as u64,
            resends_started: c.resends_started,
            handovers_sent: c.handovers_sent,
            neighbour_checks: c.neighbour_checks,
            contacts: self.contacts.table().len() as u64,
            values_stored: self.records.len() as u64,
            stored_bytes: self.records.bytes() as u64,
            pending_rpcs: self.out.table.slots_in_use() as u64,
            public_address: self.public_address.get(),
        }
    }

    /// The value this node holds for `key`, without asking the network.
    pub fn local_value(&self, key: &Key, now: Instant) -> Option<Value> {
        self.records.get(key, now).map(|v| v.value)
    }

    /// The value this node holds for `key` with its expiry and origin.
    pub fn local_record(&self, key: &Key, now: Instant) -> Option<StoredValue> {
        self.records.get(key, now)
    }

    /// Contacts nearest to this node's own id (what `bootstrappable_neighbors` returns).
    pub fn closest_contacts(&self, n: usize) -> Vec<Contact> {
        self.contacts.table().closest(&self.id, n, |_| false)
    }

    /// Add saved contacts (e.g. from a previous run). Returns how many were new.
    pub fn import_contacts(&mut self, now: Instant, contacts: &[Contact]) -> usize {
        let table = self.contacts.table_mut();
        let added = contacts
            .iter()
            .filter(|c| c.is_usable() && matches!(table.insert(**c, now), Insert::Added))
            .count();
        table.take_promoted();
        added
    }

    // ------------------------------------------------------------ output

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.poll_transmit()
    }

    /// Give back the payload of a [`Transmit`] once it is sent: later
    /// datagrams are encoded into it instead of a fresh allocation. Optional
    /// (the simulator does not, to keep idle nodes small).
    pub fn recycle(&mut self, payload: Vec<u8>) {
        self.out.recycle(payload);
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.next_maintenance;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = next.min(t);
            }
        };
        consider(self.out.table.next_deadline());
        consider(self.ops.next_deadline());
        consider(self.records.next_expiry());
        if self.ops.background() < MAX_BACKGROUND_PUTS {
            consider(self.records.next_resend());
        }
        if self.out.table.free(Class::Probe) > 0 {
            consider(self.contacts.next_deadline());
        }
        consider(self.next_slice);
        Some(next)
    }

    // ------------------------------------------------------------ input

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.counters.datagrams_received += 1;
        let packet = match wire::split_packet(data) {
            Ok(p) => p,
            Err(e) => return self.drop_datagram(from, &e),
        };
        if packet.kind == wire::REQUEST {
            if !self.limiter.allow(now, from.ip()) {
                return self.drop_datagram(from, &"request over the rate limit");
            }
            self.handle_request(now, from, packet.id, packet.body, data.len());
        } else {
            self.handle_response(now, from, packet.id, packet.body);
        }
        self.after_input(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(rpc) = self.out.table.pop_expired(now) {
            self.counters.rpc_timeouts += 1;
            trace!(to = %rpc.to, kind = rpc.kind.name(), "rpc timed out");
            self.rpc_failed(now, rpc);
        }
        while let Some((purpose, peer, stage)) = self.out.table.pop_slow(now) {
            let (ops, mut env) = self.split();
            ops.on_slow(&mut env, now, purpose, peer, stage);
        }
        let (ops, mut env) = self.split();
        ops.expire(&mut env, now);
        let expired = self.records.expire(now);
        if expired > 0 {
            debug!(expired, "values expired");
        }
        if now >= self.next_maintenance {
            self.release_idle_memory();
            self.refresh_stale_buckets(now);
            self.check_neighbourhood(now);
            self.next_maintenance = now + self.config.maintenance_interval;
        }
        self.send_probes(now);
        if self.next_slice.is_some_and(|t| t <= now) {
            self.replication_slice(now);
        }
        self.after_input(now);
    }

    fn drop_datagram(&mut self, from: SocketAddr, why: &dyn std::fmt::Debug) {
        self.counters.datagrams_dropped += 1;
        debug!(%from, ?why, "dropped datagram");
    }

    /// Work every input may have made possible: replication walks for
    /// contacts that came or went, starved lookups, due re-sends.
    fn after_input(&mut self, now: Instant) {
        for key in self.records.take_removed() {
            self.quota.release(&key);
        }
        for contact in self.contacts.take_appeared() {
            if self.records.is_empty() {
                continue;
            }
            // Keys go only to an address that proved it receives.
            if self
                .validation
                .is_verified(self.out.table.peers(), &contact.addr, now)
            {
                self.replication
                    .contact_appeared(now, contact, self.records.len());
            } else if self.awaiting_verification.len() < MAX_AWAITING_VERIFICATION
                && self.awaiting_verification.insert(contact.id)
                && self.validation.start_ping(contact.addr, now)
            {
                // (No second ping where one is in flight or failed lately.)
                self.verify(now, contact.addr, Some(contact.id));
            }
        }
        for contact in self.contacts.take_left() {
            self.awaiting_verification.remove(&contact.id);
            // A contact that never answered at its address holds no copy we
            // know of, so its leaving needs no repair walk (each walk costs
            // a `closest()` per stored key: an attacker's throwaway ids
            // would otherwise buy a full walk apiece).
            if !self.records.is_empty()
                && self
                    .validation
                    .is_verified(self.out.table.peers(), &contact.addr, now)
            {
                self.replication
                    .contact_left(now, contact, self.records.len());
            }
        }
        if self.replication.has_work() && self.next_slice.is_none() {
            self.next_slice = Some(now);
        }
        let (ops, mut env) = self.split();
        ops.pump_starved(&mut env, now);
        self.start_due_resends(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_VALUE_SIZE;
    use crate::error::Error;

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
            ..PutOptions::default()
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
            ..PutOptions::default()
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

    #[test]
    fn tables_a_burst_left_empty_are_freed_at_the_next_maintenance_tick() {
        let (mut p, now) = lone_node();
        for port in 1..=50u16 {
            p.ping(now, SocketAddr::from(([10, 0, 0, 1], port)));
        }
        while p.poll_transmit().is_some() {}
        assert!(p.ops.capacity() >= 50);
        // Nobody answers: once the pings time out the tables of operations
        // and of RPCs are empty, but keep their room until the next
        // maintenance tick.
        let later = now + p.config.rpc_timeout + Duration::from_secs(1);
        p.next_maintenance = later + Duration::from_secs(1);
        p.handle_timeout(later);
        while p.poll_event().is_some() {}
        assert_eq!((p.out.table.entries(), p.ops.len()), (0, 0));
        // (An emptied hash map may count fewer free slots than it has.)
        assert!(p.ops.capacity() > 0 && p.out.table.capacity() > 0);
        p.handle_timeout(p.next_maintenance);
        assert_eq!((p.out.table.capacity(), p.ops.capacity()), (0, 0));
    }
}
