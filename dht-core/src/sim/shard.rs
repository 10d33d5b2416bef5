//! A shard: a share of the simulated nodes (node `i` lives in shard
//! `i % shards`) with its own queue of the datagrams and timers due to them.
//!
//! Shards run side by side in windows no longer than the shortest latency
//! of the network. Within a window a node only hears from itself (its
//! timers): whatever another node sends in the window arrives after it ends.
//! So each shard runs its window alone, collects what its nodes send in
//! outboxes (one per shard of destination), and the simulation hands the
//! outboxes over between windows. A
//! node's entries are ordered by time and by ties its senders assign (see
//! [`super::queue`]), and a datagram's loss and jitter are a hash of its
//! sender and count (see [`super::network::Wire::fate`]): nothing depends on
//! which shard or thread ran what, so the run is the same with one thread
//! or two.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::network::{NetStats, Wire, MAX_DATAGRAM};
use super::queue::{Queue, Tie};
use crate::config::Config;
use crate::id::NodeId;
use crate::protocol::{Event, OpId, Outcome, Protocol};

/// How many shards the nodes are split into by default: one per thread of
/// the machines this runs on. Neither the number of shards nor that of the
/// threads running them (see `Simulation::set_threads`) changes a run.
pub(super) const DEFAULT_SHARDS: usize = 2;

/// Emptied inbox batches a shard keeps for reuse (one per shard sending to
/// it is enough).
const MAX_SPARE_BATCHES: usize = 4;

/// The tie origin of entries not scheduled by a node (forged datagrams).
pub(super) const RAW_ORIGIN: u32 = u32::MAX;

pub(super) struct SimNode {
    /// `None` once the node left: a stopped process keeps no state. Boxed so
    /// that the node array stays small and cheap to grow.
    pub(super) protocol: Option<Box<Protocol>>,
    pub(super) id: NodeId,
    /// Bumped at every restart so timers of an earlier run are ignored.
    pub(super) incarnation: u32,
    /// Earliest deadline of this node already in the queue (ns).
    pub(super) scheduled: Option<u64>,
    /// Entries this node scheduled so far: the `seq` of its ties.
    pub(super) scheduled_count: u64,
    /// Where the node sits in `Simulation::live`, while it runs.
    pub(super) live_slot: Option<usize>,
    /// Churn never stops it (the publishers of a scenario).
    pub(super) protected: bool,
    /// The configuration it was created with, for a restart; shared by the
    /// nodes created with the same one.
    pub(super) config: Arc<Config>,
}

impl SimNode {
    fn next_tie(&mut self, index: usize) -> Tie {
        self.scheduled_count += 1;
        Tie {
            origin: index as u32,
            seq: self.scheduled_count,
        }
    }
}

/// Who sent a datagram: a node (its index), or any other address (rare: a
/// forged datagram from a test), boxed to keep entries small.
pub(super) enum Sender {
    Node(u32),
    Raw(Box<SocketAddr>),
}

/// What a shard's queue holds.
pub(super) enum NodeAction {
    Deliver {
        from: Sender,
        to: u32,
        payload: Vec<u8>,
    },
    Timer {
        node: u32,
        incarnation: u32,
    },
}

/// A datagram on its way, between the window it was sent in and the queue
/// of the shard of its destination.
pub(super) struct InFlight {
    pub(super) at: u64,
    pub(super) tie: Tie,
    pub(super) from: Sender,
    pub(super) to: u32,
    pub(super) payload: Vec<u8>,
}

/// An operation's outcome, as a node gave it out.
pub(super) struct Finished {
    pub(super) at: u64,
    pub(super) node: u32,
    pub(super) op: OpId,
    pub(super) outcome: Outcome,
}

/// The address of node `index`: 10.a.b.c:4000 with index = c·2¹⁶ + a·2⁸ + b,
/// one /24 per node, so the per-subnet limits see distinct hosts when a test
/// turns on `strict_local_limits`.
pub(super) fn addr_of(index: usize) -> SocketAddr {
    let n = index as u32;
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(0x0a00_0000 | ((n & 0xffff) << 8) | ((n >> 16) & 0xff)),
        4000,
    ))
}

/// The node at a virtual address (the inverse of [`addr_of`]), if it is one
/// of the first `nodes`.
pub(super) fn index_of(addr: &SocketAddr, nodes: usize) -> Option<usize> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    let ip = u32::from(*v4.ip());
    let index = (((ip & 0xff) << 16) | ((ip >> 8) & 0xffff)) as usize;
    (ip >> 24 == 10 && v4.port() == 4000 && index < nodes).then_some(index)
}

pub(super) struct Shard {
    /// Node `i` of the simulation at `i / shards`.
    pub(super) nodes: Vec<SimNode>,
    /// Shards in the simulation.
    shards: usize,
    queue: Queue<NodeAction>,
    /// Datagrams sent since the last hand-over, by shard of destination,
    /// with the earliest arrival in each.
    pub(super) outboxes: Vec<(Vec<InFlight>, u64)>,
    /// Datagrams handed over to this shard, not yet in its queue (each
    /// shard queues its own at the start of its window, so that this work
    /// is shared out too), and the earliest arrival among them.
    inbox: Vec<Vec<InFlight>>,
    inbox_first: u64,
    /// Emptied inbox batches, kept for the outboxes to reuse: a window
    /// would otherwise grow every outbox from nothing again.
    spare: Vec<Vec<InFlight>>,
    /// Outcomes given out since the last hand-over.
    pub(super) finished: Vec<Finished>,
    pub(super) net: NetStats,
    pub(super) wire: Wire,
    start: Instant,
    /// Nodes in the whole simulation: datagrams to higher indexes reach nobody.
    pub(super) total_nodes: usize,
    /// When the latest entry this shard ran was due (ns).
    pub(super) last_at: u64,
    /// Entries run in the latest window.
    pub(super) last_window_entries: usize,
}

impl Shard {
    pub(super) fn new(shards: usize, wire: Wire, start: Instant) -> Self {
        Shard {
            nodes: Vec::new(),
            shards,
            queue: Queue::default(),
            outboxes: (0..shards).map(|_| (Vec::new(), u64::MAX)).collect(),
            inbox: Vec::new(),
            inbox_first: u64::MAX,
            spare: Vec::new(),
            finished: Vec::new(),
            net: NetStats::default(),
            wire,
            start,
            total_nodes: 0,
            last_at: 0,
            last_window_entries: 0,
        }
    }

    pub(super) fn node(&self, index: usize) -> &SimNode {
        &self.nodes[index / self.shards]
    }

    pub(super) fn node_mut(&mut self, index: usize) -> &mut SimNode {
        &mut self.nodes[index / self.shards]
    }

    pub(super) fn next_at(&self) -> Option<u64> {
        match self.queue.next_at() {
            Some(at) => Some(at.min(self.inbox_first)),
            None => (self.inbox_first < u64::MAX).then_some(self.inbox_first),
        }
    }

    /// Take datagrams for this shard, whose earliest arrival is `first`.
    pub(super) fn hand_in(&mut self, datagrams: Vec<InFlight>, first: u64) {
        if !datagrams.is_empty() {
            self.inbox.push(datagrams);
            self.inbox_first = self.inbox_first.min(first);
        }
    }

    fn queue_inbox(&mut self) {
        for mut batch in std::mem::take(&mut self.inbox) {
            for datagram in batch.drain(..) {
                self.receive(datagram);
            }
            if self.spare.len() < MAX_SPARE_BATCHES {
                self.spare.push(batch);
            }
        }
        self.inbox_first = u64::MAX;
    }

    /// An empty outbox to replace one handed in here.
    pub(super) fn take_spare(&mut self) -> Vec<InFlight> {
        self.spare.pop().unwrap_or_default()
    }

    /// Queue a datagram that arrives at one of this shard's nodes.
    pub(super) fn receive(&mut self, datagram: InFlight) {
        let InFlight {
            at,
            tie,
            from,
            to,
            payload,
        } = datagram;
        self.queue
            .push(at, tie, NodeAction::Deliver { from, to, payload });
    }

    fn instant(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Run every entry due before `end` (ns, exclusive), in order.
    pub(super) fn run_until(&mut self, end: u64) {
        self.queue_inbox();
        self.last_window_entries = 0;
        while let Some((at, action)) = self.queue.pop_before(end) {
            self.last_window_entries += 1;
            self.last_at = self.last_at.max(at);
            let now = self.instant(at);
            match action {
                NodeAction::Deliver { from, to, payload } => {
                    let from = match from {
                        Sender::Node(i) => addr_of(i as usize),
                        Sender::Raw(addr) => *addr,
                    };
                    let to = to as usize;
                    match self.nodes[to / self.shards].protocol.as_mut() {
                        Some(p) => {
                            self.net.delivered += 1;
                            p.handle_datagram(now, from, &payload);
                            self.flush(to, at);
                        }
                        None => self.net.dropped_unreachable += 1,
                    }
                }
                NodeAction::Timer { node, incarnation } => {
                    let node = node as usize;
                    let n = self.node_mut(node);
                    if n.incarnation == incarnation && n.scheduled == Some(at) {
                        n.scheduled = None;
                        if let Some(p) = n.protocol.as_mut() {
                            p.handle_timeout(now);
                            self.flush(node, at);
                        }
                    }
                }
            }
        }
    }

    /// Move node `index`'s output into the outbox, its outcomes into
    /// `finished` and its next deadline into the queue; `now` is in ns.
    pub(super) fn flush(&mut self, index: usize, now: u64) {
        let total = self.total_nodes;
        while let Some(t) = self
            .node_mut(index)
            .protocol
            .as_mut()
            .and_then(|p| p.poll_transmit())
        {
            self.net.sent += 1;
            let Some(to) = index_of(&t.dest, total) else {
                self.net.dropped_unreachable += 1;
                continue;
            };
            if t.payload.len() > MAX_DATAGRAM {
                self.net.dropped_oversize += 1;
                continue;
            }
            let tie = self.node_mut(index).next_tie(index);
            match self.wire.fate(index as u64, to as u64, tie.seq) {
                Some(delay) => {
                    let at = now.saturating_add(delay.as_nanos() as u64);
                    let (outbox, first) = &mut self.outboxes[to % self.shards];
                    *first = (*first).min(at);
                    outbox.push(InFlight {
                        at,
                        tie,
                        from: Sender::Node(index as u32),
                        to: to as u32,
                        payload: t.payload,
                    });
                }
                None => self.net.dropped_loss += 1,
            }
        }
        while let Some(Event { op, outcome }) = self
            .node_mut(index)
            .protocol
            .as_mut()
            .and_then(|p| p.poll_event())
        {
            self.finished.push(Finished {
                at: now,
                node: index as u32,
                op,
                outcome,
            });
        }
        let Some(deadline) = self
            .node(index)
            .protocol
            .as_ref()
            .and_then(|p| p.poll_timeout())
        else {
            return;
        };
        // An overdue deadline runs now: a node's entries never go back in time.
        let deadline = self.nanos(deadline).max(now);
        let node = self.node_mut(index);
        if node.scheduled.is_none_or(|s| deadline < s) {
            node.scheduled = Some(deadline);
            let incarnation = node.incarnation;
            let tie = node.next_tie(index);
            self.queue.push(
                deadline,
                tie,
                NodeAction::Timer {
                    node: index as u32,
                    incarnation,
                },
            );
        }
    }
}
