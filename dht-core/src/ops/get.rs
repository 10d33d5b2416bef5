//! A get: a FIND_VALUE lookup that stops at the first value, asking one
//! likely holder alone first.
//!
//! A put stores on the k closest nodes to its key, so a get that knows one
//! of them needs one RPC. The usual first step asks α candidates at once,
//! and α − 1 of the answers are thrown away: in small networks, where the
//! table knows nearly everyone, two thirds of a get's datagrams. So a get
//! asks one *likely holder* alone, and widens to α at a time when it
//! answers without the value, fails, or is *late* — past its usual round
//! trip (`RttEstimator::late_after`, the adaptive timeout without its
//! floor): a dead or slow first choice costs about one round trip, not an
//! RPC timeout. Where no candidate is a likely holder the lookup starts α
//! wide, as before.
//!
//! A likely holder is judged by density: our own k-th closest contact is
//! at some distance r from us (the table knows the region around our id
//! best), so around any id the k closest nodes lie within about r. A
//! candidate nearer the key than 3r / 4 has about 3k / 4 nodes closer to
//! the key, and is among its k closest unless the key's neighbourhood is
//! much denser than ours. Of the likely holders, the one with the shortest
//! smoothed round trip is asked: with α at once the answer came from the
//! fastest of three, and this keeps that.
//!
//! Suspects are never chosen; a peer never measured is judged by the
//! node-wide round-trip estimate, and before any answer at all no get asks
//! one first. A table holding fewer than k contacts gives no radius, and
//! nearly every candidate counts as a likely holder: right in
//! a network of k nodes or fewer, where everyone holds everything, and at
//! worst a round trip for a node still joining.
//!
//! In simulated networks of 10^3 and 10^4 nodes (`examples/simulate
//! --gets 2000 --seed 42`), 41% and 7% of gets asked one first, 98% and
//! 95% of those found the value there, RPCs a get fell by 21% and 3%, and
//! the mean virtual latency stayed that of α at once. The price is paid
//! when many nodes die unnoticed: with a quarter of the nodes killed just
//! before the gets, a dead first choice costs its round trip, and the
//! mean latency at 10^3 nodes rose from 87 to 98 ms.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{Env, Event, LookupCounters, OpId, Operation, Operations, Outcome};
use crate::contact::Contact;
use crate::id::Key;
use crate::lookup::{Lookup, LookupKind};

/// How long a measured reach is used before it is measured again: the
/// table changes over minutes, gets come by the thousand a second.
const REACH_REFRESH: Duration = Duration::from_secs(5);

/// A cached [`crate::routing::RoutingTable::own_reach`].
#[derive(Debug, Default)]
pub(super) struct Reach {
    measured: Option<(Instant, u64)>,
}

impl Reach {
    fn get<R: Rng + ?Sized>(&mut self, env: &Env<'_, R>, now: Instant) -> u64 {
        match self.measured {
            Some((at, reach)) if now.saturating_duration_since(at) < REACH_REFRESH => reach,
            _ => {
                let reach = env.contacts.table().own_reach();
                // Not kept while the table holds fewer than k (a node
                // joining): the next get measures again.
                if reach != u64::MAX {
                    self.measured = Some((now, reach));
                }
                reach
            }
        }
    }
}

/// A get's lone first query (see the module doc).
#[derive(Debug, Clone, Copy)]
pub(super) struct LoneFirst {
    /// How long its answer may take before it is late.
    late_after: Duration,
    /// When it is late: set once it is sent, cleared when the lookup
    /// widens (its entry in `Operations::late_firsts` goes with it).
    late_at: Option<Instant>,
}

impl Operations {
    pub fn get<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant, key: Key) -> OpId {
        let op = self.new_user_op(env, now);
        if let Some(item) = env.records.get(&key, now) {
            let outcome = Outcome::Get(Ok(Some(item.value)));
            env.events.push_back(Event { op, outcome });
            return op;
        }
        let mut lookup = self.new_lookup(env, now, key, LookupKind::FindValue);
        let mut lone_first = None;
        let reach = self.reach.get(env, now);
        if let Some((first, late_after)) = fastest_likely_holder(env, &lookup, reach) {
            lookup = lookup.ask_first(first.id);
            lone_first = Some(LoneFirst {
                late_after,
                late_at: None,
            });
        }
        self.ops.insert(op, Operation::Get { lookup, lone_first });
        self.drive(env, now, op);
        op
    }

    /// After a get's lookup was driven: start the clock of a lone first
    /// query just sent, or stop it once the lookup no longer asks one
    /// alone. (Started at sending, not at the get: a get may wait for a
    /// free RPC slot first.)
    pub(super) fn track_lone_first(&mut self, op: OpId, now: Instant) {
        let Some(Operation::Get {
            lookup,
            lone_first: Some(first),
        }) = self.ops.get_mut(&op)
        else {
            return;
        };
        match first.late_at {
            None if lookup.asking_first() && lookup.in_flight() > 0 => {
                let at = now + first.late_after;
                first.late_at = Some(at);
                self.late_firsts.insert((at, op));
                self.counters.gets_asking_one_first += 1;
            }
            Some(at) if !lookup.asking_first() => {
                first.late_at = None;
                self.late_firsts.remove(&(at, op));
            }
            _ => {}
        }
    }

    /// When [`Operations::widen_late_gets`] has work next.
    pub(super) fn next_late_first(&self) -> Option<Instant> {
        self.late_firsts.first().map(|(at, _)| *at)
    }

    /// Gets whose lone first query is late ask α at a time from now on.
    pub(super) fn widen_late_gets<R: Rng + ?Sized>(&mut self, env: &mut Env<'_, R>, now: Instant) {
        while let Some(&(at, op)) = self.late_firsts.first() {
            if at > now {
                break;
            }
            self.late_firsts.pop_first();
            if let Some(Operation::Get {
                lookup,
                lone_first: Some(first),
            }) = self.ops.get_mut(&op)
            {
                first.late_at = None;
                if lookup.asking_first() {
                    lookup.widen();
                    self.counters.gets_widened_late += 1;
                    self.drive(env, now, op);
                }
            }
        }
    }

    /// A get ended (or was cancelled): its clock, if running, goes.
    pub(super) fn forget_lone_first(&mut self, op: OpId, lone_first: Option<LoneFirst>) {
        if let Some(at) = lone_first.and_then(|first| first.late_at) {
            self.late_firsts.remove(&(at, op));
        }
    }

    /// Gets whose lone first query's answer is awaited.
    pub fn awaiting_lone_first(&self) -> usize {
        self.late_firsts.len()
    }
}

/// Of the candidates likely to hold the value (see the module doc), the
/// one with the shortest smoothed round trip (the node-wide one for those
/// never measured), and when its answer would be late. None if there is
/// none, or if nobody ever answered us.
fn fastest_likely_holder<R: Rng + ?Sized>(
    env: &Env<'_, R>,
    lookup: &Lookup,
    reach: u64,
) -> Option<(Contact, Duration)> {
    lookup
        .candidates_within(reach / 4 * 3)
        .filter(|c| !env.contacts.is_suspect(&c.id))
        .filter_map(|c| {
            let (srtt, late) = env.out.table.round_trip(&c.addr)?;
            Some((srtt, *c, late))
        })
        .min_by_key(|(srtt, ..)| *srtt)
        .map(|(_, contact, late)| (contact, late))
}

impl LookupCounters {
    /// Count a get's lookup that ended: whether its lone first query
    /// found the value.
    pub(super) fn count_get(&mut self, lookup: &Lookup, lone_first: Option<LoneFirst>) {
        if lone_first.is_some() && lookup.value().is_some() && lookup.queries() == 1 {
            self.gets_answered_by_first += 1;
        }
    }
}
