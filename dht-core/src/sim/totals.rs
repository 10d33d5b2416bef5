//! What a simulation counts: lookups, datagrams, joins and leaves, summed
//! over its nodes and shards.

use super::{NetStats, Simulation};

/// Lookup counters summed over a network; see [`Simulation::lookup_totals`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupTotals {
    pub lookups: u64,
    pub rpcs: u64,
    pub hops: u64,
    /// Gets that asked one likely holder first, those it answered, and
    /// those that widened because it was late (see
    /// `Stats::gets_asking_one_first`).
    pub gets_asking_one_first: u64,
    pub gets_answered_by_first: u64,
    pub gets_widened_late: u64,
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

impl Simulation {
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
                gets_asking_one_first: acc.gets_asking_one_first + s.gets_asking_one_first,
                gets_answered_by_first: acc.gets_answered_by_first + s.gets_answered_by_first,
                gets_widened_late: acc.gets_widened_late + s.gets_widened_late,
            }
        })
    }

    /// Datagrams delivered so far.
    pub fn delivered(&self) -> u64 {
        self.net_stats().delivered
    }

    /// What happened to every datagram so far.
    pub fn net_stats(&self) -> NetStats {
        self.shards
            .iter()
            .fold(NetStats::default(), |a, s| NetStats {
                sent: a.sent + s.net.sent,
                delivered: a.delivered + s.net.delivered,
                dropped_loss: a.dropped_loss + s.net.dropped_loss,
                dropped_oversize: a.dropped_oversize + s.net.dropped_oversize,
                dropped_unreachable: a.dropped_unreachable + s.net.dropped_unreachable,
            })
    }

    pub fn lifecycle_stats(&self) -> LifecycleStats {
        self.life
    }
}
