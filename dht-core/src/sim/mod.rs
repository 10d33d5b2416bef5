//! Many nodes on an in-memory network with virtual time.
//!
//! The same [`Protocol`] that runs on UDP runs here: datagrams and timer
//! expiries go into the queues of the nodes' shards, scheduled changes
//! (restarts, churn) into a control queue, all ordered by virtual time, and
//! time jumps to the next entry instead of passing. The shards run windows
//! as long as the shortest latency side by side, on one thread or two, with
//! the same result (see `shard`). A run is a function of its seed (given
//! storage that iterates deterministically), so a 10,000-node network, or a
//! network that holds values and churns for a day, is a repeatable unit test.
//!
//! The pieces: [`network`] (per-pair latency, loss, size limit, counters),
//! `queue` (the time-ordered entries), `shard` (a share of the nodes and
//! their entries), `lifecycle` (leave, restart, join, churn), `probe` (who
//! holds a key, gets with their virtual latency), [`scenario`] (the hourly
//! value-lifecycle check the `simulate` example runs) and this module
//! (commands, windows, hand-over between shards).

mod helper;
mod lifecycle;
pub mod network;
mod numbering;
mod probe;
mod queue;
pub mod scenario;
mod shard;
mod stepping;
mod totals;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::directory::{ContactDirectory, Listing};
use crate::error::Result;
use crate::id::NodeId;
use crate::protocol::{OpId, Outcome, Protocol};
use crate::storage::{MemoryStorage, Storage};

pub use network::{NetStats, MAX_DATAGRAM};

/// Node addresses are 10.x.y.z:4000 with the index in the low 24 bits.
pub const MAX_NODES: usize = 1 << 24;
pub use probe::GetResult;
pub use totals::{LifecycleStats, LookupTotals};

use helper::Helper;
use network::Wire;
use numbering::Numbering;
use queue::{Queue, Tie};
use shard::{addr_of, Shard, SimNode, DEFAULT_SHARDS};

/// Builds the storage of every node created from now on (e.g. a
/// deterministic or persistent backend); the default is the protocol's own.
pub type StorageFactory = Box<dyn Fn(&Config) -> Box<dyn Storage>>;

/// Entries a window should have (judged by the previous one) to be run on
/// two threads. Handing a window over costs well under a microsecond while
/// the helper spins, a few entries' worth; at 10⁴ nodes under churn
/// (R = 0.5, 2 virtual hours) a threshold of 64 took 167–191 s, 16 took
/// 134 s and 6 took 120 s, and the lookups run was no slower at 8 than at 64.
const PARALLEL_WINDOW_ENTRIES: usize = 8;

/// What the simulation itself does at a virtual instant (the nodes' own
/// entries are in their shards).
enum ControlAction {
    Restart {
        node: u32,
    },
    /// Plan the churn of the hour starting now.
    ChurnHour {
        epoch: u64,
    },
    /// Replace one node by a fresh one.
    ChurnReplace {
        epoch: u64,
    },
}

/// An in-memory network of nodes.
pub struct Simulation {
    now: Instant,
    start: Instant,
    /// The harness's own draws (seeds of new nodes, whom a join asks, churn
    /// instants); the network's are hashes (see [`Wire::fate`]).
    rng: StdRng,
    wire: Wire,
    /// Node `i` is in `shards[i % shards.len()]`.
    shards: Vec<Shard>,
    node_count: usize,
    /// Threads that run the shards' windows (1 or 2; never changes a run).
    threads: usize,
    /// The second thread, once a window ran on two.
    helper: Option<Helper>,
    /// Windows run on two threads so far.
    windows_side_by_side: u64,
    /// Indexes of the running nodes, in no particular order.
    live: Vec<usize>,
    control: Queue<ControlAction>,
    /// Entries the simulation scheduled itself (control actions, forged
    /// datagrams): the `seq` of their ties.
    own_count: u64,
    events: HashMap<(usize, OpId), (Instant, Outcome)>,
    /// Operations the simulator started itself (bootstraps of joins and
    /// restarts): their outcomes are counted, not kept.
    internal_ops: HashSet<(usize, OpId)>,
    /// Operations `gets` waits for; each leaves the set when its outcome comes.
    watched: HashSet<(usize, OpId)>,
    life: LifecycleStats,
    storage: Option<StorageFactory>,
    churn: lifecycle::Churn,
    /// Every node's id and address, listed by index for the routing tables.
    numbering: Arc<Numbering>,
}

impl Simulation {
    /// A network whose one-way latency between two nodes is a fixed value
    /// uniform in `latency` (per pair), plus a jitter of 5% of that range.
    /// The shortest latency must be above zero: it is how far shards may run
    /// ahead of one another.
    pub fn new(seed: u64, latency: (Duration, Duration)) -> Self {
        Self::with_shards(seed, latency, DEFAULT_SHARDS)
    }

    /// [`Simulation::new`] with the nodes split into `shards` (at least one):
    /// the same run for any number, which is what this is for (tests of
    /// that claim).
    pub fn with_shards(seed: u64, latency: (Duration, Duration), shards: usize) -> Self {
        let shards = shards.max(1);
        // `Instant` counts from boot: on a machine up for less than an hour,
        // `now.checked_sub(1 h)` fails and a run would depend on the uptime.
        // Starting the virtual clock a year ahead keeps every such
        // subtraction in range, so a run depends on its seed only.
        let now = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        let (lo, hi) = latency;
        let lo = lo.max(Duration::from_nanos(1));
        let wire = Wire::new(seed, (lo, hi.max(lo)));
        Simulation {
            now,
            start: now,
            rng: StdRng::seed_from_u64(seed),
            shards: (0..shards)
                .map(|_| Shard::new(shards, wire.clone(), now))
                .collect(),
            wire,
            node_count: 0,
            threads: 1,
            helper: None,
            windows_side_by_side: 0,
            live: Vec::new(),
            control: Queue::default(),
            own_count: 0,
            events: HashMap::new(),
            internal_ops: HashSet::new(),
            watched: HashSet::new(),
            life: LifecycleStats::default(),
            storage: None,
            churn: lifecycle::Churn::default(),
            numbering: Arc::new(Numbering::new(seed)),
        }
    }

    /// Fraction of datagrams lost in transit (0 by default).
    pub fn set_loss(&mut self, loss: f64) {
        self.wire.set_loss(loss);
        self.share_wire();
    }

    /// Largest random delay added to each datagram on top of its pair's latency.
    pub fn set_jitter(&mut self, jitter: Duration) {
        self.wire.set_jitter(jitter);
        self.share_wire();
    }

    fn share_wire(&mut self) {
        for shard in &mut self.shards {
            shard.wire = self.wire.clone();
        }
    }

    /// Run the shards on up to `threads` threads (1 by default; at most 2,
    /// the second running one shard). The run is the same whatever the
    /// number: only its wall-clock time changes.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.clamp(1, self.shards.len().min(2));
        if self.threads == 1 {
            self.helper = None;
        }
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
        self.node_count
    }

    pub fn is_empty(&self) -> bool {
        self.node_count == 0
    }

    /// Indexes of the running nodes, in no particular order.
    pub fn live_nodes(&self) -> &[usize] {
        &self.live
    }

    fn node(&self, index: usize) -> &SimNode {
        self.shards[index % self.shards.len()].node(index)
    }

    fn node_mut(&mut self, index: usize) -> &mut SimNode {
        let n = self.shards.len();
        self.shards[index % n].node_mut(index)
    }

    /// Add a node without bootstrapping it; its address is virtual (nothing
    /// is sent on a real network).
    pub fn add_node(&mut self, config: Config) -> Result<usize> {
        let index = self.node_count;
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
        let protocol = Box::new(self.new_protocol(&config, seed, index)?);
        let n = self.shards.len();
        self.shards[index % n].nodes.push(SimNode {
            id: protocol.id(),
            protocol: Some(protocol),
            incarnation: 0,
            scheduled: None,
            scheduled_count: 0,
            live_slot: None,
            protected: false,
            config,
        });
        self.node_count += 1;
        for shard in &mut self.shards {
            shard.total_nodes = self.node_count;
        }
        self.mark_live(index);
        self.flush(index);
        Ok(index)
    }

    /// Node `index`'s protocol: its id is the one listed for it unless
    /// `config` names one.
    fn new_protocol(&self, config: &Arc<Config>, seed: u64, index: usize) -> Result<Protocol> {
        let storage = match &self.storage {
            Some(make) => make(config),
            None => Box::new(MemoryStorage::for_config(config)),
        };
        let listing = Listing {
            directory: Arc::clone(&self.numbering) as Arc<dyn ContactDirectory>,
            // Below MAX_NODES, so below 2²⁴.
            number: index as u32,
        };
        Protocol::with_shared_config(Arc::clone(config), seed, Some(listing), storage, self.now)
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        addr_of(node)
    }

    /// The id of `node`, also after it left.
    pub fn id(&self, node: usize) -> NodeId {
        self.node(node).id
    }

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
        if node >= self.node_count {
            return None;
        }
        self.node(node).protocol.as_deref()
    }

    pub fn is_alive(&self, node: usize) -> bool {
        self.try_protocol(node).is_some()
    }

    /// Every running node with its state.
    pub fn running(&self) -> impl Iterator<Item = (usize, &Protocol)> + '_ {
        self.live
            .iter()
            .filter_map(|&i| self.node(i).protocol.as_deref().map(|p| (i, p)))
    }

    /// Run a command on a running node, e.g.
    /// `sim.try_command(3, |p, now| p.get(now, key))`; `None` if it is not running.
    pub fn try_command<T>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Protocol, Instant) -> T,
    ) -> Option<T> {
        if node >= self.node_count {
            return None;
        }
        let now = self.now;
        let out = f(self.node_mut(node).protocol.as_mut()?, now);
        self.flush(node);
        Some(out)
    }

    /// The outcome of `op` on `node`, once it came out.
    pub fn take_outcome(&mut self, node: usize, op: OpId) -> Option<Outcome> {
        self.events.remove(&(node, op)).map(|(_, o)| o)
    }

    /// Join nodes `1..len` to the network, each bootstrapping from a random
    /// node that already joined, `batch` joins at a time, or one for every
    /// hundred nodes in when that is more, up to ten batches at a time.
    /// Returns the number of nodes whose bootstrap found no contact (0 in a
    /// healthy network).
    ///
    /// Why the steps grow with the network: a step lasts as long as its
    /// slowest join (most of a virtual second), so steps of 100 would take
    /// 10⁶ nodes ~2 virtual hours to join, long enough for every node's
    /// hourly bucket refresh to run during the join; and each step ends in a
    /// tail of a few late joins during which the simulator's threads have
    /// little to do. A step's newcomers stay a 1% minority of the nodes
    /// they join, and up to 10⁴ nodes the steps are the same as before. The
    /// cap bounds the memory of the joins in flight (each holds a lookup per
    /// far bucket it refreshes, ~340 KB while they run).
    pub fn join_network(&mut self, batch: usize, limit: Duration) -> usize {
        let mut failed = 0;
        let mut joined = 1;
        while joined < self.node_count {
            let batch = batch.max(1);
            let step = (joined / 100).clamp(batch, batch.saturating_mul(10));
            let end = (joined + step).min(self.node_count);
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

    /// `config` behind an `Arc`, shared with the previous node if it is the
    /// same: a network of one configuration keeps one copy, not one per node.
    fn shared_config(&self, config: Config) -> Arc<Config> {
        // Only the last node's is compared: nodes are added in runs of one
        // configuration, and a full search would cost O(n) per node.
        match self.node_count.checked_sub(1).map(|last| self.node(last)) {
            Some(last) if *last.config == config => Arc::clone(&last.config),
            _ => Arc::new(config),
        }
    }

    fn mark_live(&mut self, index: usize) {
        if self.node(index).live_slot.is_none() {
            let slot = self.live.len();
            self.node_mut(index).live_slot = Some(slot);
            self.live.push(index);
        }
    }

    fn mark_gone(&mut self, index: usize) {
        if let Some(slot) = self.node_mut(index).live_slot.take() {
            self.live.swap_remove(slot);
            if let Some(&moved) = self.live.get(slot) {
                self.node_mut(moved).live_slot = Some(slot);
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
