//! How the simulation moves forward: window by window, the shards side by
//! side (see `shard`), control actions (restarts, churn) alone at their
//! instant, and between windows the hand-over of datagrams to the shards
//! of their destinations and of outcomes to whoever waits for them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::helper::Helper;
use super::shard::{index_of, Finished, InFlight, Sender, Shard, RAW_ORIGIN};
use super::{ControlAction, Simulation, Tie, MAX_DATAGRAM, PARALLEL_WINDOW_ENTRIES};
use crate::protocol::{OpId, Outcome};

impl Simulation {
    /// Step until `op` on `node` finishes, or until `limit` of virtual time passed.
    pub fn run_until_done(&mut self, node: usize, op: OpId, limit: Duration) -> Option<Outcome> {
        self.run_until_done_timed(node, op, limit)
            .map(|(_, outcome)| outcome)
    }

    /// [`Simulation::run_until_done`], with the virtual time from the call
    /// to the outcome. (Time steps a window at a time, so [`Simulation::now`]
    /// may then be past the outcome by less than the shortest latency.)
    pub fn run_until_done_timed(
        &mut self,
        node: usize,
        op: OpId,
        limit: Duration,
    ) -> Option<(Duration, Outcome)> {
        let start = self.now;
        let end = start + limit;
        loop {
            if let Some((at, outcome)) = self.events.remove(&(node, op)) {
                return Some((at.saturating_duration_since(start), outcome));
            }
            if !self.step_until(end) {
                return None;
            }
        }
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
        if to >= self.node_count {
            return;
        }
        let (sender, from_index) = match index_of(&from, self.node_count) {
            Some(i) => (Sender::Node(i as u32), i as u64),
            None => (Sender::Raw(Box::new(from)), u64::from(RAW_ORIGIN)),
        };
        let tie = self.own_tie();
        let n = self.shards.len();
        let shard = &mut self.shards[to % n];
        shard.net.sent += 1;
        if payload.len() > MAX_DATAGRAM {
            shard.net.dropped_oversize += 1;
            return;
        }
        let Some(delay) = self.wire.fate(from_index, to as u64, tie.seq) else {
            shard.net.dropped_loss += 1;
            return;
        };
        let at = self.nanos(self.now).saturating_add(delay.as_nanos() as u64);
        self.shards[to % n].receive(InFlight {
            at,
            tie,
            from: sender,
            to: to as u32,
            payload,
        });
    }

    fn own_tie(&mut self) -> Tie {
        self.own_count += 1;
        Tie {
            origin: RAW_ORIGIN,
            seq: self.own_count,
        }
    }

    /// Run the next window of entries if it starts no later than `end`:
    /// the next control action alone, or every node entry due from the
    /// earliest one until the shortest latency later (or the next control
    /// action, or `end`). Returns false when nothing is left before `end`.
    pub(super) fn step_until(&mut self, end: Instant) -> bool {
        let end = self.nanos(end);
        let next_node = self.shards.iter().filter_map(Shard::next_at).min();
        let next_control = self.control.next_at();
        let first = match (next_node, next_control) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(at) => at,
                None => return false,
            },
        };
        if first > end {
            return false;
        }
        if next_control == Some(first) {
            if let Some((at, action)) = self.control.pop() {
                self.now = self.now.max(self.instant(at));
                self.run_control(action);
            }
            return true;
        }
        let window = u64::try_from(self.wire.min_latency().as_nanos()).unwrap_or(u64::MAX);
        let limit = first
            .saturating_add(window)
            .min(next_control.unwrap_or(u64::MAX))
            .min(end.saturating_add(1));
        self.run_window(limit);
        let last = self.shards.iter().map(|s| s.last_at).max().unwrap_or(0);
        self.now = self.now.max(self.instant(last));
        self.hand_over();
        true
    }

    /// Every shard runs its entries due before `limit`, side by side when
    /// there are threads for it and the last window was busy enough to pay
    /// for starting one. Shards share nothing within a window, so this
    /// choice never changes the run.
    fn run_window(&mut self, limit: u64) {
        let busy: usize = self.shards.iter().map(|s| s.last_window_entries).sum();
        if self.threads < 2 || busy < PARALLEL_WINDOW_ENTRIES {
            for shard in &mut self.shards {
                shard.run_until(limit);
            }
            return;
        }
        if self.helper.is_none() {
            self.helper = Helper::start();
        }
        let Some(helper) = self.helper.as_mut() else {
            self.threads = 1;
            return self.run_window(limit);
        };
        self.windows_side_by_side += 1;
        // Shard 1 goes to the helper thread; the others run here meanwhile.
        let idle = Shard::new(self.shards.len(), self.wire.clone(), self.start);
        let second = std::mem::replace(&mut self.shards[1], idle);
        let here = &mut self.shards;
        let second = helper.run_beside(second, limit, || {
            for shard in here.iter_mut() {
                shard.run_until(limit);
            }
        });
        self.shards[1] = second;
    }

    fn run_control(&mut self, action: ControlAction) {
        match action {
            ControlAction::Restart { node } => self.start_again(node as usize),
            ControlAction::ChurnHour { epoch } => self.plan_churn_hour(epoch),
            ControlAction::ChurnReplace { epoch } => self.churn_one(epoch),
        }
    }

    /// Schedule a control action.
    pub(super) fn schedule(&mut self, at: Instant, action: ControlAction) {
        let at = self.nanos(at);
        let tie = self.own_tie();
        self.control.push(at, tie, action);
    }

    /// Node `index`'s output and outcomes, handed over at once (outside a
    /// window: after a command).
    pub(super) fn flush(&mut self, index: usize) {
        let now = self.nanos(self.now);
        let n = self.shards.len();
        self.shards[index % n].flush(index, now);
        self.hand_over();
    }

    /// Hand the datagrams the shards sent to the shards of their
    /// destinations (whole outboxes: each shard queues its own), and the
    /// outcomes they gave out to their waiters, in an order that does not
    /// depend on the shards (by time, then node; a node's own outcomes keep
    /// their order).
    fn hand_over(&mut self) {
        let mut finished: Vec<Finished> = Vec::new();
        let shards = self.shards.len();
        for from in 0..shards {
            for to in 0..shards {
                if self.shards[from].outboxes[to].0.is_empty() {
                    continue;
                }
                let empty = (self.shards[to].take_spare(), u64::MAX);
                let (datagrams, first) =
                    std::mem::replace(&mut self.shards[from].outboxes[to], empty);
                self.shards[to].hand_in(datagrams, first);
            }
            finished.append(&mut self.shards[from].finished);
        }
        finished.sort_by_key(|f| (f.at, f.node));
        for Finished {
            at,
            node,
            op,
            outcome,
        } in finished
        {
            let key = (node as usize, op);
            if self.internal_ops.remove(&key) {
                if !matches!(&outcome, Outcome::Bootstrap(found) if !found.is_empty()) {
                    self.life.failed_bootstraps += 1;
                }
            } else {
                self.watched.remove(&key);
                self.events.insert(key, (self.instant(at), outcome));
            }
        }
    }

    /// The instant `ns` nanoseconds after the start.
    pub(super) fn instant(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }

    /// Nanoseconds from the start to `at`.
    pub(super) fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }
}
