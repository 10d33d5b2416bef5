//! The value-lifecycle scenario: a network joins, publishers put values,
//! the network churns for hours, and every virtual hour the scenario counts
//! the live copies of each value and gets it from a random node. The
//! `simulate` example prints its report; tests run it small.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::Simulation;
use crate::config::Config;
use crate::error::Result;
use crate::id::{Key, NodeId};
use crate::protocol::{OpId, Outcome, PutOptions};
use crate::storage::Storage;
use crate::value::Value;

const HOUR: Duration = Duration::from_secs(3600);
/// Longest a put or get may take before it counts as failed.
const OP_LIMIT: Duration = Duration::from_secs(60);
/// Gets tried per value at the final check before it counts as lost.
const FINAL_ATTEMPTS: usize = 3;

/// Makes one node's storage from its configuration.
pub type MakeStorage = fn(&Config) -> Box<dyn Storage>;

/// What to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub nodes: usize,
    pub values: usize,
    pub hours: u32,
    /// Fraction of the running nodes replaced per hour by fresh nodes.
    pub churn_per_hour: f64,
    pub seed: u64,
    /// Nodes that put the values (round robin); churn spares them.
    pub publishers: usize,
    /// Virtual hour (after the puts) at which every publisher stops.
    pub publishers_leave_at: Option<f64>,
    /// TTL of the values; the node's default TTL when `None`.
    pub ttl: Option<Duration>,
    /// Values got per hourly check (a random sample); every value when `None`.
    pub gets_per_hour: Option<usize>,
    /// One-way latency range between two nodes.
    pub latency: (Duration, Duration),
    /// Configuration of every node, initial and joining.
    pub node_config: Config,
    /// Storage of every node; the protocol's default when `None`.
    pub storage: Option<MakeStorage>,
    /// Threads that run the simulation (see [`Simulation::set_threads`]):
    /// the same report whatever the number.
    pub threads: usize,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 300,
            values: 100,
            hours: 24,
            churn_per_hour: 0.0,
            seed: 1,
            publishers: 10,
            publishers_leave_at: None,
            ttl: None,
            gets_per_hour: None,
            latency: (Duration::from_millis(5), Duration::from_millis(50)),
            node_config: Config::default().with_rpc_timeout(Duration::from_secs(1)),
            storage: None,
            threads: 1,
        }
    }
}

/// One hourly check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HourReport {
    pub hour: u32,
    pub live_nodes: usize,
    /// Values whose publisher still runs.
    pub published: usize,
    /// Fewest copies of any such value on running nodes other than its
    /// publisher; `None` when no publisher runs.
    pub min_copies: Option<usize>,
    pub gets: usize,
    pub gets_found: usize,
    /// Values whose publisher still runs that this hour's gets did not find.
    pub lost: usize,
    /// Gets of values whose publisher stopped that still found them.
    pub orphans_found: usize,
    pub datagrams: u64,
}

/// The result of a scenario.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScenarioReport {
    pub failed_joins: usize,
    pub puts_ok: usize,
    /// Values whose publisher still runs that no get found at the final
    /// check (each tried from up to three random nodes).
    pub values_lost: usize,
    /// Fewest copies (publisher excluded) of any value whose publisher runs,
    /// over every hourly check; `None` when no such check happened.
    pub min_copies: Option<usize>,
    pub gets: usize,
    pub gets_found: usize,
    pub hours: Vec<HourReport>,
}

struct Published {
    key: Key,
    value: Value,
    publisher: usize,
}

impl Scenario {
    /// Run it; `progress` sees each hourly check as it completes. Returns the
    /// report and the network as it ended, for inspection.
    pub fn run(
        &self,
        mut progress: impl FnMut(&HourReport),
    ) -> Result<(ScenarioReport, Simulation)> {
        let mut sim = Simulation::new(self.seed, self.latency);
        sim.set_threads(self.threads);
        if let Some(make) = self.storage {
            sim.set_storage_factory(Box::new(make));
        }
        for _ in 0..self.nodes {
            sim.add_node(self.node_config.clone())?;
        }
        let mut report = ScenarioReport {
            failed_joins: sim.join_network(100, Duration::from_secs(120)),
            ..ScenarioReport::default()
        };
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5ce7_a410);
        let mut publishers: Vec<usize> = (0..self.nodes).collect();
        publishers.shuffle(&mut rng);
        publishers.truncate(self.publishers.clamp(1, self.nodes.max(1)));
        for &p in &publishers {
            sim.protect(p, true);
        }
        let values: Vec<Published> = (0..self.values)
            .map(|i| Published {
                key: NodeId::digest(format!("scenario-value-{i}").as_bytes()),
                value: Value::from(format!("value {i}").as_str()),
                publisher: publishers[i % publishers.len()],
            })
            .collect();
        report.puts_ok = self.put_all(&mut sim, &values);

        sim.churn(self.churn_per_hour, self.node_config.clone());
        let leave_at = self
            .publishers_leave_at
            .map(|h| sim.elapsed() + HOUR.mul_f64(h.max(0.0)));
        let start = sim.elapsed();
        let mut min_copies: Option<usize> = None;
        for hour in 1..=self.hours {
            let check_at = start + HOUR * hour;
            if let Some(at) = leave_at.filter(|at| *at <= check_at && *at > sim.elapsed()) {
                sim.run_for(at - sim.elapsed());
                for &p in &publishers {
                    sim.leave(p);
                }
            }
            sim.run_for(check_at.saturating_sub(sim.elapsed()));
            let last = hour == self.hours;
            let check = self.check(&mut sim, &values, hour, last, &mut rng);
            if let Some(c) = check.min_copies {
                min_copies = Some(min_copies.map_or(c, |m| m.min(c)));
            }
            report.gets += check.gets;
            report.gets_found += check.gets_found;
            if last {
                report.values_lost = check.lost;
            }
            progress(&check);
            report.hours.push(check);
        }
        report.min_copies = min_copies;
        Ok((report, sim))
    }

    fn put_all(&self, sim: &mut Simulation, values: &[Published]) -> usize {
        let ops: Vec<(usize, OpId)> = values
            .iter()
            .filter_map(|v| {
                let value = v.value.clone();
                let options = PutOptions {
                    ttl: self.ttl,
                    replication: None,
                    ..PutOptions::default()
                };
                let op =
                    sim.try_command(v.publisher, |p, now| p.put(now, v.key, value, options))?;
                op.ok().map(|op| (v.publisher, op))
            })
            .collect();
        sim.run_until_all_done(&ops, OP_LIMIT)
            .into_iter()
            .filter(|o| matches!(o, Some(Outcome::Put(Ok(r))) if r.stored_remote > 0))
            .count()
    }

    /// Count copies and get values (from random running nodes other than the
    /// publisher); at the last check, retry a missed value before calling it lost.
    fn check(
        &self,
        sim: &mut Simulation,
        values: &[Published],
        hour: u32,
        last: bool,
        rng: &mut StdRng,
    ) -> HourReport {
        let mut out = HourReport {
            hour,
            live_nodes: sim.live_nodes().len(),
            ..HourReport::default()
        };
        let mut sample: Vec<usize> = (0..values.len()).collect();
        if let Some(n) = self.gets_per_hour.filter(|n| *n < values.len() && !last) {
            sample.shuffle(rng);
            sample.truncate(n);
            sample.sort_unstable();
        }
        for v in values.iter().filter(|v| sim.is_alive(v.publisher)) {
            out.published += 1;
            let copies = sim.copies_except(&v.key, v.publisher);
            out.min_copies = Some(out.min_copies.map_or(copies, |m| m.min(copies)));
        }
        let mut missing = sample;
        let attempts = if last { FINAL_ATTEMPTS } else { 1 };
        for _ in 0..attempts {
            let requests: Vec<(usize, Key)> = missing
                .iter()
                .filter_map(|&i| {
                    let getter = random_getter(sim, values[i].publisher, rng)?;
                    Some((getter, values[i].key))
                })
                .collect();
            let results = sim.gets(&requests, OP_LIMIT);
            out.gets += results.len();
            let mut still = Vec::new();
            for (&i, got) in missing.iter().zip(&results) {
                let found = got.value.as_ref() == Some(&values[i].value);
                out.gets_found += usize::from(found);
                if !found {
                    still.push(i);
                } else if !sim.is_alive(values[i].publisher) {
                    out.orphans_found += 1;
                }
            }
            missing = still;
        }
        out.lost = missing
            .iter()
            .filter(|&&i| sim.is_alive(values[i].publisher))
            .count();
        out.datagrams = sim.net_stats().delivered;
        out
    }
}

fn random_getter(sim: &Simulation, publisher: usize, rng: &mut StdRng) -> Option<usize> {
    let live = sim.live_nodes();
    if live.len() < 2 {
        return None;
    }
    loop {
        let pick = live[rng.random_range(0..live.len())];
        if pick != publisher {
            return Some(pick);
        }
    }
}
