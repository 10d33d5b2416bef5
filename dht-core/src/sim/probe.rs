//! What tests and the scenario runner measure: which running nodes hold a
//! key, and gets from chosen nodes with whether they found the value and how
//! long they took in virtual time.

use std::time::Duration;

use super::Simulation;
use crate::id::Key;
use crate::protocol::{OpId, Outcome};
use crate::value::Value;

/// One get: the value found (`None`: not found, failed or timed out) and
/// the virtual time it took.
#[derive(Clone, Debug, PartialEq)]
pub struct GetResult {
    pub value: Option<Value>,
    pub latency: Duration,
}

impl GetResult {
    pub fn found(&self) -> bool {
        self.value.is_some()
    }
}

impl Simulation {
    /// Running nodes holding an unexpired copy of `key`, in index order.
    pub fn holders(&self, key: &Key) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .running()
            .filter(|(_, p)| p.local_value(key, self.now).is_some())
            .map(|(i, _)| i)
            .collect();
        out.sort_unstable();
        out
    }

    /// How many running nodes hold an unexpired copy of `key`.
    pub fn live_copies(&self, key: &Key) -> usize {
        self.running()
            .filter(|(_, p)| p.local_value(key, self.now).is_some())
            .count()
    }

    /// How many running nodes other than `node` (e.g. the publisher) hold
    /// an unexpired copy of `key`.
    pub fn copies_except(&self, key: &Key, node: usize) -> usize {
        self.running()
            .filter(|(i, p)| *i != node && p.local_value(key, self.now).is_some())
            .count()
    }

    /// A get of `key` from `node`, run to completion (or `limit`).
    pub fn get_from(&mut self, node: usize, key: Key, limit: Duration) -> GetResult {
        self.gets(&[(node, key)], limit).pop().unwrap_or(GetResult {
            value: None,
            latency: Duration::ZERO,
        })
    }

    /// Step until every `(node, op)` finished or `limit` passed; outcomes in
    /// the order asked (`None`: not finished in time, now cancelled).
    pub fn run_until_all_done(
        &mut self,
        ops: &[(usize, OpId)],
        limit: Duration,
    ) -> Vec<Option<Outcome>> {
        self.wait_for(ops, self.now + limit);
        ops.iter()
            .map(|&(node, op)| {
                let outcome = self.take_outcome(node, op);
                if outcome.is_none() {
                    self.try_command(node, |p, _| p.cancel(op));
                }
                outcome
            })
            .collect()
    }

    fn wait_for(&mut self, ops: &[(usize, OpId)], end: std::time::Instant) {
        for op in ops {
            if !self.events.contains_key(op) {
                self.watched.insert(*op);
            }
        }
        while !self.watched.is_empty() && self.step_until(end) {}
        self.watched.clear();
    }

    /// Gets started at the same instant, each `(node, key)`, run until all
    /// finished or `limit` passed; results in the order asked. A node that is
    /// not running finds nothing.
    pub fn gets(&mut self, requests: &[(usize, Key)], limit: Duration) -> Vec<GetResult> {
        let start = self.now;
        let ops: Vec<Option<(usize, OpId)>> = requests
            .iter()
            .map(|&(node, key)| {
                self.try_command(node, |p, now| p.get(now, key))
                    .map(|op| (node, op))
            })
            .collect();
        let end = start + limit;
        let started: Vec<(usize, OpId)> = ops.iter().flatten().copied().collect();
        self.wait_for(&started, end);
        ops.into_iter()
            .map(|op| {
                let Some((node, op)) = op else {
                    return GetResult {
                        value: None,
                        latency: Duration::ZERO,
                    };
                };
                match self.events.remove(&(node, op)) {
                    Some((at, Outcome::Get(Ok(value)))) => GetResult {
                        value,
                        latency: at - start,
                    },
                    Some((at, _)) => GetResult {
                        value: None,
                        latency: at - start,
                    },
                    None => {
                        // Timed out here: its outcome, if any, is not wanted.
                        self.try_command(node, |p, _| p.cancel(op));
                        GetResult {
                            value: None,
                            latency: self.now.max(end) - start,
                        }
                    }
                }
            })
            .collect()
    }
}
