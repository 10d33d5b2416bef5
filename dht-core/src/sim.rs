//! Many nodes on an in-memory network with virtual time.
//!
//! The same [`Protocol`] that runs on UDP runs here: datagrams go into a
//! queue with a seeded random latency, and time jumps to the next delivery or
//! deadline instead of passing. A run is a function of its seed, so a
//! 10,000-node network is a repeatable unit test.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::error::Result;
use crate::protocol::{Event, OpId, Outcome, Protocol};

struct SimNode {
    protocol: Protocol,
    addr: SocketAddr,
    alive: bool,
    /// Earliest deadline of this node already in the timer heap.
    scheduled: Option<Instant>,
}

struct Delivery {
    from: SocketAddr,
    to: usize,
    payload: Vec<u8>,
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

/// An in-memory network of nodes.
pub struct Simulation {
    now: Instant,
    rng: StdRng,
    latency: (Duration, Duration),
    /// Fraction of datagrams lost in transit.
    loss: f64,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    deliveries: BinaryHeap<Reverse<(Instant, u64)>>,
    in_transit: HashMap<u64, Delivery>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    seq: u64,
    events: HashMap<(usize, OpId), Outcome>,
    delivered: u64,
}

impl Simulation {
    /// A network whose one-way latency is uniform in `latency`.
    pub fn new(seed: u64, latency: (Duration, Duration)) -> Self {
        Simulation {
            now: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            latency,
            loss: 0.0,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            deliveries: BinaryHeap::new(),
            in_transit: HashMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            events: HashMap::new(),
            delivered: 0,
        }
    }

    pub fn set_loss(&mut self, loss: f64) {
        self.loss = loss.clamp(0.0, 1.0);
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Lookups completed, the RPCs they sent and their hops, summed over
    /// every node: the difference between two calls is the cost of the
    /// lookups in between.
    pub fn lookup_totals(&self) -> LookupTotals {
        self.nodes.iter().fold(LookupTotals::default(), |acc, n| {
            let s = n.protocol.stats();
            LookupTotals {
                lookups: acc.lookups + s.lookups_completed,
                rpcs: acc.rpcs + s.lookup_rpcs,
                hops: acc.hops + s.lookup_hops,
            }
        })
    }

    /// Datagrams delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Add a node; its address is virtual (nothing is sent on a real network).
    pub fn add_node(&mut self, mut config: Config) -> Result<usize> {
        let index = self.nodes.len();
        if config.rng_seed.is_none() {
            config.rng_seed = Some(self.rng.random());
        }
        let n = u32::try_from(index).unwrap_or(u32::MAX);
        let addr = SocketAddr::V4(SocketAddrV4::new(
            // One /24 per node (10.a.b.c, node = c·2¹⁶ + a·2⁸ + b), so the
            // per-subnet limits see distinct hosts when a test turns on
            // `strict_local_limits`.
            Ipv4Addr::from(0x0a00_0000 | ((n & 0xffff) << 8) | ((n >> 16) & 0xff)),
            4000,
        ));
        let protocol = Protocol::new(config, self.now)?;
        self.nodes.push(SimNode {
            protocol,
            addr,
            alive: true,
            scheduled: None,
        });
        self.by_addr.insert(addr, index);
        self.flush(index);
        Ok(index)
    }

    pub fn addr(&self, node: usize) -> SocketAddr {
        self.nodes[node].addr
    }

    pub fn protocol(&self, node: usize) -> &Protocol {
        &self.nodes[node].protocol
    }

    pub fn is_alive(&self, node: usize) -> bool {
        self.nodes[node].alive
    }

    /// Stop a node without warning: it neither sends nor receives again.
    pub fn kill(&mut self, node: usize) {
        self.nodes[node].alive = false;
    }

    /// Run a command on a node, e.g. `sim.command(3, |p, now| p.get(now, key))`.
    pub fn command<T>(&mut self, node: usize, f: impl FnOnce(&mut Protocol, Instant) -> T) -> T {
        let now = self.now;
        let out = f(&mut self.nodes[node].protocol, now);
        self.flush(node);
        out
    }

    /// The outcome of `op` on `node`, once it came out.
    pub fn take_outcome(&mut self, node: usize, op: OpId) -> Option<Outcome> {
        self.events.remove(&(node, op))
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
                ops.push((node, self.command(node, |p, now| p.bootstrap(now, &[seed]))));
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

    /// Process the next delivery or deadline if it is not after `end`.
    /// Returns false when nothing is left before `end`.
    fn step_until(&mut self, end: Instant) -> bool {
        let next_delivery = self.deliveries.peek().map(|Reverse((t, _))| *t);
        let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
        match (next_delivery, next_timer) {
            (Some(d), t) if t.is_none_or(|t| d <= t) => {
                if d > end {
                    return false;
                }
                let Some(Reverse((at, seq))) = self.deliveries.pop() else {
                    return false;
                };
                self.now = self.now.max(at);
                if let Some(delivery) = self.in_transit.remove(&seq) {
                    if self.nodes[delivery.to].alive {
                        self.delivered += 1;
                        let now = self.now;
                        self.nodes[delivery.to].protocol.handle_datagram(
                            now,
                            delivery.from,
                            &delivery.payload,
                        );
                        self.flush(delivery.to);
                    }
                }
                true
            }
            (_, Some(t)) => {
                if t > end {
                    return false;
                }
                let Some(Reverse((at, node))) = self.timers.pop() else {
                    return false;
                };
                self.now = self.now.max(at);
                if self.nodes[node].scheduled == Some(at) {
                    self.nodes[node].scheduled = None;
                    if self.nodes[node].alive {
                        let now = self.now;
                        self.nodes[node].protocol.handle_timeout(now);
                        self.flush(node);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Move a node's output into the network and its events into the outbox.
    fn flush(&mut self, index: usize) {
        while let Some(t) = self.nodes[index].protocol.poll_transmit() {
            let Some(&to) = self.by_addr.get(&t.dest) else {
                continue;
            };
            if self.loss > 0.0 && self.rng.random::<f64>() < self.loss {
                continue;
            }
            let (lo, hi) = self.latency;
            let delay = if hi > lo {
                self.rng.random_range(lo..=hi)
            } else {
                lo
            };
            self.seq += 1;
            let from = self.nodes[index].addr;
            self.in_transit.insert(
                self.seq,
                Delivery {
                    from,
                    to,
                    payload: t.payload,
                },
            );
            self.deliveries.push(Reverse((self.now + delay, self.seq)));
        }
        while let Some(Event { op, outcome }) = self.nodes[index].protocol.poll_event() {
            self.events.insert((index, op), outcome);
        }
        if let Some(deadline) = self.nodes[index].protocol.poll_timeout() {
            let node = &mut self.nodes[index];
            if node.scheduled.is_none_or(|s| deadline < s) {
                node.scheduled = Some(deadline);
                self.timers.push(Reverse((deadline, index)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::id::NodeId;
    use crate::protocol::PutOptions;
    use crate::value::Value;

    fn small_network(n: usize, seed: u64) -> Simulation {
        let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(40)));
        let config = Config::default()
            .with_k(8)
            .with_rpc_timeout(Duration::from_millis(500));
        for i in 0..n {
            sim.add_node(config.clone()).unwrap();
            if i > 0 {
                let seed_addr = sim.addr(0);
                let op = sim.command(i, |p, now| p.bootstrap(now, &[seed_addr]));
                let out = sim.run_until_done(i, op, Duration::from_secs(60)).unwrap();
                assert!(matches!(out, Outcome::Bootstrap(c) if !c.is_empty()));
            }
        }
        sim
    }

    #[test]
    fn put_and_get_across_a_small_network() {
        let mut sim = small_network(60, 1);
        let key = NodeId::digest(b"k");
        let op = sim
            .command(5, |p, now| {
                p.put(now, key, Value::from("v"), PutOptions::default())
            })
            .unwrap();
        match sim.run_until_done(5, op, Duration::from_secs(30)).unwrap() {
            Outcome::Put(Ok(report)) => assert_eq!(report.stored_remote, 8),
            other => panic!("{other:?}"),
        }
        for reader in [0, 17, 42, 59] {
            let op = sim.command(reader, |p, now| p.get(now, key));
            match sim
                .run_until_done(reader, op, Duration::from_secs(30))
                .unwrap()
            {
                Outcome::Get(Ok(Some(v))) => assert_eq!(v, Value::from("v")),
                other => panic!("reader {reader}: {other:?}"),
            }
        }
        let missing = NodeId::digest(b"missing");
        let op = sim.command(3, |p, now| p.get(now, missing));
        assert!(matches!(
            sim.run_until_done(3, op, Duration::from_secs(30)),
            Some(Outcome::Get(Ok(None)))
        ));
    }

    #[test]
    fn same_seed_same_run() {
        let a = small_network(30, 7);
        let b = small_network(30, 7);
        assert_eq!(a.delivered(), b.delivered());
        assert_eq!(a.protocol(29).id(), b.protocol(29).id());
        assert_eq!(a.protocol(29).stats(), b.protocol(29).stats());
    }

    #[test]
    fn values_expire_and_replicas_take_over_dead_nodes() {
        let mut sim = small_network(40, 3);
        let key = NodeId::digest(b"short");
        let opts = PutOptions {
            ttl: Some(Duration::from_secs(90)),
            replication: None,
        };
        let op = sim
            .command(1, |p, now| p.put(now, key, Value::from(1i64), opts))
            .unwrap();
        assert!(matches!(
            sim.run_until_done(1, op, Duration::from_secs(30)),
            Some(Outcome::Put(Ok(_)))
        ));
        // Kill the first holders; the rest still serve it.
        let holders: Vec<usize> = (0..40)
            .filter(|i| *i != 1 && sim.protocol(*i).local_value(&key, sim.now()).is_some())
            .collect();
        assert!(holders.len() >= 8);
        for h in holders.iter().take(4) {
            sim.kill(*h);
        }
        let reader = (0..40)
            .find(|i| sim.is_alive(*i) && !holders.contains(i) && *i != 1)
            .unwrap();
        let op = sim.command(reader, |p, now| p.get(now, key));
        assert!(matches!(
            sim.run_until_done(reader, op, Duration::from_secs(30)),
            Some(Outcome::Get(Ok(Some(_))))
        ));
        // The publisher keeps it alive (it re-puts before any copy lapses)...
        sim.run_for(Duration::from_secs(200));
        let op = sim.command(reader, |p, now| p.get(now, key));
        assert!(matches!(
            sim.run_until_done(reader, op, Duration::from_secs(30)),
            Some(Outcome::Get(Ok(Some(_))))
        ));
        // ...and once it stops, every copy is gone within the TTL.
        sim.kill(1);
        sim.run_for(Duration::from_secs(90 + 60));
        let left = (0..40)
            .filter(|i| sim.protocol(*i).local_value(&key, sim.now()).is_some())
            .count();
        assert_eq!(left, 0);
    }
}
