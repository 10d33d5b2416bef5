//! Many nodes on an in-memory network with virtual time.
//!
//! The same [`Protocol`] that runs on UDP runs here: datagrams, timer expiries
//! and scheduled node events (restarts, churn) go into one queue ordered by
//! virtual time, and time jumps to the next entry instead of passing. A run
//! is a function of its seed (given storage that iterates deterministically),
//! so a 10,000-node network, or a network that holds values and churns for a
//! day, is a repeatable unit test.
//!
//! The pieces: [`network`] (per-pair latency, loss, size limit, counters),
//! `queue` (the time-ordered entries), `lifecycle` (leave, restart, join,
//! churn), `probe` (who holds a key, gets with their virtual latency),
//! [`scenario`] (the hourly value-lifecycle check the `simulate` example
//! runs) and this module (nodes, commands, stepping).

mod lifecycle;
pub mod network;
mod probe;
mod queue;
pub mod scenario;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::error::Result;
use crate::id::NodeId;
use crate::protocol::{Event, OpId, Outcome, Protocol};
use crate::storage::{MemoryStorage, Storage};

pub use network::{NetStats, MAX_DATAGRAM};

/// Node addresses are 10.x.y.z:4000 with the index in the low 24 bits.
pub const MAX_NODES: usize = 1 << 24;
pub use probe::GetResult;

use network::Wire;
use queue::{Action, Queue, Sender};

/// Builds the storage of every node created from now on (e.g. a
/// deterministic or persistent backend); the default is the protocol's own.
pub type StorageFactory = Box<dyn Fn(&Config) -> Box<dyn Storage>>;

struct SimNode {
    /// `None` once the node left: a stopped process keeps no state. Boxed so
    /// that the node array stays small and cheap to grow.
    protocol: Option<Box<Protocol>>,
    id: NodeId,
    addr: SocketAddr,
    /// Bumped at every restart so timers of an earlier run are ignored.
    incarnation: u32,
    /// Earliest deadline of this node already in the queue.
    scheduled: Option<Instant>,
    /// Where the node sits in `Simulation::live`, while it runs.
    live_slot: Option<usize>,
    /// Churn never stops it (the publishers of a scenario).
    protected: bool,
    /// The configuration it was created with, for a restart; shared by the
    /// nodes created with the same one.
    config: Arc<Config>,
}

/// Lookup counters summed over a network; see [`Simulation::lookup_totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupTotals {
    pub lookups: u64,
    pub rpcs: u64,
    pub hops: u64,
}

impl LookupTotals {
    /// Mean (RPCs, hops) per lookup completed since `earlier`.
    pub fn per_lookup_since(&self, earlier: &LookupTotals) -> (f64, f64) {
        let n = (self.lookups - earlier.lookups).max(1) as f64;
        (
            (self.rpcs - earlier.rpcs) as f64 / n,
            (self.hops - earlier.hops) as f64 / n,
        )
    }
}

/// Joins, leaves and restarts so far; see [`Simulation::lifecycle_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifecycleStats {
    pub joins: u64,
    /// Joins and restarts whose bootstrap found no contact.
    pub failed_bootstraps: u64,
    pub leaves: u64,
    pub restarts: u64,
}

/// An in-memory network of nodes.
pub struct Simulation {
    now: Instant,
    start: Instant,
    rng: StdRng,
    wire: Wire,
    nodes: Vec<SimNode>,
    /// Indexes of the running nodes, in no particular order.
    live: Vec<usize>,
    queue: Queue,
    events: HashMap<(usize, OpId), (Instant, Outcome)>,
    /// Operations the simulator started itself (bootstraps of joins and
    /// restarts): their outcomes are counted, not kept.
    internal_ops: HashSet<(usize, OpId)>,
    /// Operations `gets` waits for; each leaves the set when its outcome comes.
    watched: HashSet<(usize, OpId)>,
    net: NetStats,
    life: LifecycleStats,
    storage: Option<StorageFactory>,
    churn: lifecycle::Churn,
}

impl Simulation {
    /// A network whose one-way latency between two nodes is a fixed value
    /// uniform in `latency` (per pair), plus a jitter of 5% of that range.
    pub fn new(seed: u64, latency: (Duration, Duration)) -> Self {
        // `Instant` counts from boot: on a machine up for less than an hour,
        // `now.checked_sub(1 h)` fails and a run would depend on the uptime.
        // Starting the virtual clock a year ahead keeps every such
        // subtraction in range, so a run depends on its seed only.
        let now = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Simulation {
            now,
            start: now,
            rng: StdRng::seed_from_u64(seed),
            wire: Wire::new(seed, latency),
            nodes: Vec::new(),
            live: Vec::new(),
            queue: Queue::default(),
            events: HashMap::new(),
            internal_ops: HashSet::new(),
            watched: HashSet::new(),
            net: NetStats::default(),
            life: LifecycleStats::default(),
            storage: None,
            churn: lifecycle::Churn::default(),
        }
    }

    /// Fraction of datagrams lost in transit (0 by default).
    pub fn set_loss(&mut self, loss: f64) {
        self.wire.set_loss(loss);
    }

    /// Largest random delay added to each datagram on top of its pair's latency.
    pub fn set_jitter(&mut self, jitter: Duration) {
        self.wire.set_jitter(jitter);
    }

    /// Storage for the nodes created (or restarted) from now on.
    pub fn set_storage_factory(&mut self, factory: StorageFactory) {
        self.storage = Some(factory);
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the simulation was created.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Nodes ever created, running or not (node indexes are `0..len`).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indexes of the running nodes, in no particular order.
    pub fn live_nodes(&self) -> &[usize] {
        &self.live
    }

    /// Lookups completed, the RPCs they sent and their hops, summed over
    /// every running node: the difference between two calls is the cost of
    /// the lookups in between (if no node left in between).
    pub fn lookup_totals(&self) -> LookupTotals {
        self.running().fold(LookupTotals::default(), |acc, (_, p)| {
            let s = p.stats();
            LookupTotals {
                lookups: acc.lookups + s.lookups_completed,
                rpcs: acc.rpcs + s.lookup_rpcs,
                hops: acc.hops + s.lookup_hops,
            }
        })
    }

    /// Datagrams delivered so far.
    pub fn delivered(&self) -> u64 {
        self.net.delivered
    }

    /// What happened to every datagram so far.
    pub fn net_stats(&self) -> NetStats {
        self.net
    }

    pub fn lifecycle_stats(&self) -> LifecycleStats {
        self.life
    }

    /// Add a node without bootstrapping it; its address is virtual (nothing
    /// is sent on a real network).
    pub fn add_node(&mut self, config: Config) -> Result<usize> {
        let index = self.nodes.len();
        if index >= MAX_NODES {
            return Err(crate::Error::InvalidArgument(format!(
                "a simulation holds at most {MAX_NODES} nodes"
            )));
        }
        // Kept as given (a restart draws a fresh seed anyway), so that nodes
        // of one configuration share it.
        let config = self.shared_config(config);
        let seed = match config.rng_seed {
            Some(seed) => seed,
            None => self.rng.random(),
        };
        let protocol = Box::new(self.new_protocol(&config, seed)?);
        let n = u32::try_from(index).unwrap_or(u32::MAX);
        let addr = SocketAddr::V4(SocketAddrV4::new(
            // One /24 per node (10.a.b.c, node = c·2¹⁶ + a·2⁸ + b), so the
            // per-subnet limits see distinct hosts when a test turns on
            // `strict_local_limits`.
            Ipv4Addr::from(0x0a00_0000 | ((n & 0xffff) << 8) | ((n >> 16) & 0xff)),
            4000,
        ));
        self.nodes.push(SimNode {
            id: protocol.id(),
            protocol: Some(protocol),
            addr,
            incarnation: 0,
            scheduled: None,
            live_slot: None,
            protected: false,
            config,
        });
        self.mark_live(index);
        self.flush(index);
        Ok(index)
    }

    fn new_protocol(&self, config: &Arc<Config>, seed: u64) -> Result<Protocol> {
        let storage = match &self.storage {
            Some(make) => make(config),
            None => Box::new(MemoryStorage::for_config(config)),
        };
        Protocol::with_shared_config(Arc::clone(config), seed, storage, self.now)
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        self.nodes[node].addr
    }

    /// The id of `node`, also after it left.
    pub fn id(&self, node: usize) -> NodeId {
        self.nodes[node].id
    }

    /// The state of a running node; `None` once it left.
    /// The state of running node `node`.
    ///
    /// # Panics
    /// If the node has left: a test harness asking for a node it stopped.
    /// [`Simulation::try_protocol`] returns an `Option` instead.
    #[allow(clippy::expect_used)]
    pub fn protocol(&self, node: usize) -> &Protocol {
        self.try_protocol(node)
            .expect("the node has left the simulation")
    }

    /// Run a command on running node `node` (see [`Simulation::try_command`]).
    ///
    /// # Panics
    /// If the node has left.
    #[allow(clippy::expect_used)]
    pub fn command<T>(&mut self, node: usize, f: impl FnOnce(&mut Protocol, Instant) -> T) -> T {
        self.try_command(node, f)
            .expect("the node has left the simulation")
    }

    /// The state of `node`, or `None` if it has left.
    pub fn try_protocol(&self, node: usize) -> Option<&Protocol> {
        self.nodes.get(node).and_then(|n| n.protocol.as_deref())
    }

    pub fn is_alive(&self, node: usize) -> bool {
        self.nodes.get(node).is_some_and(|n| n.protocol.is_some())
    }

    /// Every running node with its state.
    pub fn running(&self) -> impl Iterator<Item = (usize, &Protocol)> + '_ {
        self.live
            .iter()
            .filter_map(|&i| self.nodes[i].protocol.as_deref().map(|p| (i, p)))
    }

    /// Run a command on a running node, e.g.
    /// `sim.try_command(3, |p, now| p.get(now, key))`; `None` if it is not running.
    /// Run a command on `node`, or `None` if it has left.
    pub fn try_command<T>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Protocol, Instant) -> T,
    ) -> Option<T> {
        let now = self.now;
        let out = f(self.nodes.get_mut(node)?.protocol.as_mut()?, now);
        self.flush(node);
        Some(out)
    }

    /// The outcome of `op` on `node`, once it came out.
    pub fn take_outcome(&mut self, node: usize, op: OpId) -> Option<Outcome> {
        self.events.remove(&(node, op)).map(|(_, o)| o)
    }

    /// Step until `op` on `node` finishes, or until `limit` of virtual time passed.
    pub fn run_until_done(&mut self, node: usize, op: OpId, limit: Duration) -> Option<Outcome> {
        let end = self.now + limit;
        loop {
            if let Some(outcome) = self.take_outcome(node, op) {
                return Some(outcome);
            }
            if !self.step_until(end) {
                return self.take_outcome(node, op);
            }
        }
    }

    /// Join nodes `1..len` to the network, each bootstrapping from a random
    /// node that already joined, `batch` joins at a time. Returns the number
    /// of nodes whose bootstrap found no contact (0 in a healthy network).
    pub fn join_network(&mut self, batch: usize, limit: Duration) -> usize {
        let mut failed = 0;
        let mut joined = 1;
        while joined < self.nodes.len() {
            let end = (joined + batch.max(1)).min(self.nodes.len());
            let mut ops = Vec::new();
            for node in joined..end {
                let pick = self.rng.random_range(0..joined);
                let seed = self.addr(pick);
                if let Some(op) = self.try_command(node, |p, now| p.bootstrap(now, &[seed])) {
                    ops.push((node, op));
                }
            }
            for (node, op) in ops {
                match self.run_until_done(node, op, limit) {
                    Some(Outcome::Bootstrap(found)) if !found.is_empty() => {}
                    _ => failed += 1,
                }
            }
            joined = end;
        }
        failed
    }

    /// Run every event up to `self.now + d`.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.step_until(end) {}
        self.now = self.now.max(end);
    }

    /// Send a datagram from any address (a node or not) to `to`, through the
    /// network like any other: e.g. a forged request from an attacker.
    /// Answers to an address that is not a node are counted as unreachable.
    pub fn send_raw(&mut self, from: SocketAddr, to: usize, payload: Vec<u8>) {
        let sender = match self.index_of(&from) {
            Some(i) => Sender::Node(i as u32),
            None => Sender::Raw(Box::new(from)),
        };
        if to < self.nodes.len() {
            self.enqueue_datagram(sender, to, payload);
        }
    }

    /// Process the next queue entry if it is not after `end`.
    /// Returns false when nothing is left before `end`.
    fn step_until(&mut self, end: Instant) -> bool {
        match self.queue.next_at() {
            Some(at) if self.instant(at) <= end => {}
            _ => return false,
        }
        let Some((at, action)) = self.queue.pop() else {
            return false;
        };
        let at = self.instant(at);
        self.now = self.now.max(at);
        let now = self.now;
        match action {
            Action::Deliver { from, to, payload } => {
                let from = match from {
                    Sender::Node(i) => self.nodes[i as usize].addr,
                    Sender::Raw(addr) => *addr,
                };
                let to = to as usize;
                match self.nodes[to].protocol.as_mut() {
                    Some(p) => {
                        self.net.delivered += 1;
                        p.handle_datagram(now, from, &payload);
                        self.flush(to);
                    }
                    None => self.net.dropped_unreachable += 1,
                }
            }
            Action::Timer { node, incarnation } => {
                let node = node as usize;
                let n = &mut self.nodes[node];
                if n.incarnation == incarnation && n.scheduled == Some(at) {
                    n.scheduled = None;
                    if let Some(p) = n.protocol.as_mut() {
                        p.handle_timeout(now);
                        self.flush(node);
                    }
                }
            }
            Action::Restart { node } => self.start_again(node as usize),
            Action::ChurnHour { epoch } => self.plan_churn_hour(epoch),
            Action::ChurnReplace { epoch } => self.churn_one(epoch),
        }
        true
    }

    fn schedule(&mut self, at: Instant, action: Action) {
        let at = at.saturating_duration_since(self.start).as_nanos();
        self.queue
            .push(u64::try_from(at).unwrap_or(u64::MAX), action);
    }

    /// `config` behind an `Arc`, shared with the previous node if it is the
    /// same: a network of one configuration keeps one copy, not one per node.
    fn shared_config(&self, config: Config) -> Arc<Config> {
        // Only the last node's is compared: nodes are added in runs of one
        // configuration, and a full search would cost O(n) per node.
        match self.nodes.last() {
            Some(last) if *last.config == config => Arc::clone(&last.config),
            _ => Arc::new(config),
        }
    }

    /// The instant `ns` nanoseconds after the start.
    fn instant(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }

    /// The node at a virtual address: the address encodes the index.
    fn index_of(&self, addr: &SocketAddr) -> Option<usize> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        // The inverse of `add_node`'s 10.a.b.c with index = c·2¹⁶ + a·2⁸ + b.
        let ip = u32::from(*v4.ip());
        let index = (((ip & 0xff) << 16) | ((ip >> 8) & 0xffff)) as usize;
        (ip >> 24 == 10 && v4.port() == 4000 && index < self.nodes.len()).then_some(index)
    }

    fn enqueue_datagram(&mut self, from: Sender, to: usize, payload: Vec<u8>) {
        self.net.sent += 1;
        if payload.len() > MAX_DATAGRAM {
            self.net.dropped_oversize += 1;
            return;
        }
        if self.wire.lost(&mut self.rng) {
            self.net.dropped_loss += 1;
            return;
        }
        let from_index = match &from {
            Sender::Node(i) => u64::from(*i),
            Sender::Raw(_) => u64::MAX,
        };
        let delay = self.wire.latency(from_index, to as u64, &mut self.rng);
        let to = to as u32;
        self.schedule(self.now + delay, Action::Deliver { from, to, payload });
    }

    /// Move a node's output into the network and its events into the outbox.
    fn flush(&mut self, index: usize) {
        while let Some(t) = self.nodes[index]
            .protocol
            .as_mut()
            .and_then(|p| p.poll_transmit())
        {
            match self.index_of(&t.dest) {
                Some(to) => self.enqueue_datagram(Sender::Node(index as u32), to, t.payload),
                None => {
                    self.net.sent += 1;
                    self.net.dropped_unreachable += 1;
                }
            }
        }
        while let Some(Event { op, outcome }) = self.nodes[index]
            .protocol
            .as_mut()
            .and_then(|p| p.poll_event())
        {
            if self.internal_ops.remove(&(index, op)) {
                if !matches!(&outcome, Outcome::Bootstrap(found) if !found.is_empty()) {
                    self.life.failed_bootstraps += 1;
                }
            } else {
                self.watched.remove(&(index, op));
                self.events.insert((index, op), (self.now, outcome));
            }
        }
        let node = &mut self.nodes[index];
        if let Some(deadline) = node.protocol.as_ref().and_then(|p| p.poll_timeout()) {
            if node.scheduled.is_none_or(|s| deadline < s) {
                node.scheduled = Some(deadline);
                let incarnation = node.incarnation;
                self.schedule(
                    deadline,
                    Action::Timer {
                        node: index as u32,
                        incarnation,
                    },
                );
            }
        }
    }

    fn mark_live(&mut self, index: usize) {
        if self.nodes[index].live_slot.is_none() {
            self.nodes[index].live_slot = Some(self.live.len());
            self.live.push(index);
        }
    }

    fn mark_gone(&mut self, index: usize) {
        if let Some(slot) = self.nodes[index].live_slot.take() {
            self.live.swap_remove(slot);
            if let Some(&moved) = self.live.get(slot) {
                self.nodes[moved].live_slot = Some(slot);
            }
        }
    }

    /// A random running node other than `except`, if there is one.
    fn random_live(&mut self, except: Option<usize>) -> Option<usize> {
        let candidates = self.live.len() - usize::from(except.is_some_and(|e| self.is_alive(e)));
        if candidates == 0 {
            return None;
        }
        loop {
            let pick = self.live[self.rng.random_range(0..self.live.len())];
            if Some(pick) != except {
                return Some(pick);
            }
        }
    }
}

#[cfg(test)]
mod tests;
