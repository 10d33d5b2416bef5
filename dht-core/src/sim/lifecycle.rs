//! Nodes coming and going: `leave` (stop without notice), `restart` (the
//! same id and address come back later with empty storage, like a process
//! restarted without persistence), `join` (a fresh node arriving after values
//! exist) and a churn model that replaces a fraction of the nodes every hour
//! at random (seeded) instants. Every change is an entry on the one virtual
//! clock, so churn interleaves with datagrams and timers deterministically.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::{ControlAction, Simulation};
use crate::config::Config;
use crate::error::Result;

const HOUR: Duration = Duration::from_secs(3600);

/// The churn model in force: `rate` of the running nodes replaced per hour.
#[derive(Default)]
pub(super) struct Churn {
    rate: f64,
    /// Bumped by every `churn` call so plans of an earlier rate are dropped.
    epoch: u64,
    /// Replacements owed from rounding earlier hours down.
    carry: f64,
    template: Option<Config>,
}

impl Simulation {
    /// Stop a node without warning: it neither sends nor receives again, and
    /// its state (storage included) is gone.
    pub fn leave(&mut self, node: usize) {
        if node >= self.len() {
            return;
        }
        let n = self.node_mut(node);
        if n.protocol.take().is_some() {
            n.scheduled = None;
            self.life.leaves += 1;
            self.mark_gone(node);
        }
    }

    /// Same as [`Simulation::leave`].
    pub fn kill(&mut self, node: usize) {
        self.leave(node);
    }

    /// Churn never stops this node (the publishers of a scenario).
    pub fn protect(&mut self, node: usize, protected: bool) {
        if node < self.len() {
            self.node_mut(node).protected = protected;
        }
    }

    /// Stop `node` now (if it runs) and start it again `after` from now with
    /// the same id and address and empty storage, bootstrapping from a
    /// random running node.
    pub fn restart(&mut self, node: usize, after: Duration) {
        if node >= self.len() {
            return;
        }
        self.leave(node);
        let node = node as u32;
        self.schedule(self.now + after, ControlAction::Restart { node });
    }

    /// The scheduled part of a restart.
    pub(super) fn start_again(&mut self, node: usize) {
        if self.is_alive(node) {
            return;
        }
        let n = self.node(node);
        let config = Arc::new((*n.config).clone().with_node_id(n.id));
        let seed = self.rng.random();
        let Ok(protocol) = self.new_protocol(&config, seed, node) else {
            return;
        };
        let n = self.node_mut(node);
        n.incarnation = n.incarnation.wrapping_add(1);
        n.scheduled = None;
        n.protocol = Some(Box::new(protocol));
        self.life.restarts += 1;
        self.mark_live(node);
        self.bootstrap_from_random(node);
    }

    /// Add a node and bootstrap it from a random running node (if any); the
    /// bootstrap runs as the simulation steps. Returns its index.
    pub fn join(&mut self, config: Config) -> Result<usize> {
        let node = self.add_node(config)?;
        self.life.joins += 1;
        self.bootstrap_from_random(node);
        Ok(node)
    }

    fn bootstrap_from_random(&mut self, node: usize) {
        let Some(seed) = self.random_live(Some(node)) else {
            return;
        };
        let addr = self.addr(seed);
        if let Some(op) = self.try_command(node, |p, now| p.bootstrap(now, &[addr])) {
            self.internal_ops.insert((node, op));
            // Outcomes that came out within the command are already flushed.
            if let Some((_, outcome)) = self.events.remove(&(node, op)) {
                self.internal_ops.remove(&(node, op));
                if !matches!(outcome, crate::protocol::Outcome::Bootstrap(ref c) if !c.is_empty()) {
                    self.life.failed_bootstraps += 1;
                }
            }
        }
    }

    /// From now on, replace `rate_per_hour` of the running nodes every hour
    /// (0.5: half of them; 5.1: each node about five times) by fresh nodes
    /// made from `template`, at random instants spread over each hour. The
    /// node that leaves is a random running node that is not protected; the
    /// new one bootstraps from a random running node. A rate of 0 stops churn.
    pub fn churn(&mut self, rate_per_hour: f64, template: Config) {
        self.churn.epoch += 1;
        self.churn.rate = if rate_per_hour.is_finite() {
            rate_per_hour.max(0.0)
        } else {
            0.0
        };
        self.churn.carry = 0.0;
        self.churn.template = Some(template);
        if self.churn.rate > 0.0 {
            let epoch = self.churn.epoch;
            self.schedule(self.now, ControlAction::ChurnHour { epoch });
        }
    }

    pub(super) fn plan_churn_hour(&mut self, epoch: u64) {
        if epoch != self.churn.epoch {
            return;
        }
        let owed = self.churn.rate * self.live.len() as f64 + self.churn.carry;
        let count = owed.floor();
        self.churn.carry = owed - count;
        for _ in 0..count as u64 {
            let offset = Duration::from_nanos(self.rng.random_range(0..HOUR.as_nanos() as u64));
            self.schedule(self.now + offset, ControlAction::ChurnReplace { epoch });
        }
        self.schedule(self.now + HOUR, ControlAction::ChurnHour { epoch });
    }

    pub(super) fn churn_one(&mut self, epoch: u64) {
        if epoch != self.churn.epoch {
            return;
        }
        // Protected nodes are few: a bounded number of draws finds another.
        let victim = (0..64).find_map(|_| {
            let pick = self.random_live(None)?;
            (!self.node(pick).protected).then_some(pick)
        });
        let Some(victim) = victim else {
            return;
        };
        self.leave(victim);
        if let Some(mut config) = self.churn.template.clone() {
            config.node_id = None;
            config.rng_seed = None;
            let _ = self.join(config);
        }
    }
}
