//! RPC bookkeeping: message ids, the table of requests awaiting a reply,
//! their deadlines (timers as data), and per-class slot budgets.
//!
//! Every request the node sends is entered here with the [`Purpose`] its
//! reply serves and a [`Class`] that decides which budget it spends. User
//! operations may use every free slot; background classes are capped at a
//! share of `max_pending_rpcs`, so maintenance, liveness probes and key
//! hand-over can never starve a user's get or put. A reply is matched on its
//! message id *and* the address the request went to, so an off-path host
//! cannot answer for a peer.
//!
//! Lookup queries and STOREs also get two *soft* deadlines from the peer's
//! measured round-trip time ([`crate::rtt`]): past the first (one timeout),
//! the operation stops counting the request among the α it keeps in flight
//! and asks someone else; past the second (three timeouts) it stops waiting
//! for it altogether, and the request gives its slot back. It stays in the
//! table until its hard deadline, so a late reply still counts, and a
//! timeout still marks the peer as having missed one; but a dead peer's
//! requests no longer hold slots for the whole RPC timeout (2 s by
//! default), with or without an operation waiting for them — one cancelled
//! by its caller included. Given-up requests are bounded too, per class as
//! slots are (background work keeps at most its share of them) and at most
//! `max_pending_rpcs` in all, so the table never holds more than twice that;
//! past those bounds a request keeps its slot.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::deadline_queue::DeadlineQueue;
use crate::id::NodeId;
use crate::peer_book::PeerBook;
use crate::peer_key::MsgIdMap;
use crate::rtt::RttEstimator;
use crate::timeline::{Reading, Timeline};
use crate::wire::{self, MsgId, RpcKind};

mod outbox;

pub use outbox::{Outbox, Outgoing, Transmit, MAX_SPARE_BUFFERS, MAX_SPARE_CAPACITY};

/// Identifies a command until its [`crate::Event`] comes out.
pub type OpId = u64;

/// Who gets a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A query of operation `OpId`'s lookup.
    Lookup(OpId),
    /// One of operation `OpId`'s STOREs.
    Store(OpId),
    BootstrapPing(OpId),
    UserPing(OpId),
    /// A liveness check of a contact (eviction candidate or suspect).
    Probe,
    /// A ping checking that an address receives (anti-amplification) and,
    /// for a contact learned from a third party, that it holds its id.
    Verify,
    /// A STORE nobody waits for (key hand-over, caching after a get).
    Unawaited,
}

/// Which slot budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Work a user waits for: every free slot.
    User = 0,
    /// Refresh, replication, republish: at most half the slots.
    Maintenance = 1,
    /// Liveness probes: an eighth.
    Probe = 2,
    /// Key hand-over and cache STOREs: an eighth.
    HandOver = 3,
}

const CLASSES: usize = 4;

#[derive(Debug, Clone)]
pub struct PendingRpc {
    pub to: SocketAddr,
    /// The id we expect to answer, when we know it.
    pub peer: Option<NodeId>,
    pub kind: RpcKind,
    pub purpose: Purpose,
    pub class: Class,
    pub sent_at: Instant,
    deadline: Instant,
    /// The soft deadlines still ahead, by stage (inline: one per request
    /// sent, no allocation).
    soft: [Option<Instant>; 2],
    /// Whether it still counts against its class's budget (false once
    /// given up: see the module doc).
    holds_slot: bool,
}

/// The slots (and the given-up requests) a class may hold of `max_pending`.
fn budget(max_pending: usize, class: Class) -> usize {
    match class {
        Class::User => max_pending,
        Class::Maintenance => max_pending / 2,
        Class::Probe | Class::HandOver => (max_pending / 8).max(1),
    }
}

/// The next soft deadline still set in `soft`, with its stage. Only that
/// one is entered in the table's `soft_deadlines`; the next stage is entered
/// when it passes. Most requests are answered before their first stage, so
/// each costs one entry, not two.
fn next_soft(soft: [Option<Instant>; 2]) -> Option<(Instant, Stage)> {
    soft.into_iter()
        .zip([Stage::Slow, Stage::GiveUp])
        .find_map(|(at, stage)| at.map(|at| (at, stage)))
}

/// The request's entry in the table's `soft_deadlines`, if it has one.
fn soft_entry(msg_id: MsgId, soft: [Option<Instant>; 2]) -> Option<(Instant, (MsgId, Stage))> {
    let (at, stage) = next_soft(soft)?;
    Some((at, (msg_id, stage)))
}

/// The soft-deadline timeline's view of the pending requests.
struct SoftDeadlines;

impl Reading for SoftDeadlines {
    type Table = MsgIdMap<PendingRpc>;
    type Key = (MsgId, Stage);
    fn time_of(pending: &Self::Table, (msg_id, stage): &Self::Key) -> Option<Instant> {
        pending.get(msg_id)?.soft[*stage as usize]
    }
    fn all(pending: &Self::Table) -> Vec<(Instant, Self::Key)> {
        pending
            .iter()
            .filter_map(|(msg_id, rpc)| soft_entry(*msg_id, rpc.soft))
            .collect()
    }
    fn len(pending: &Self::Table) -> usize {
        pending.len()
    }
}

/// How far past its adaptive timeout a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// One timeout: the operation asks someone else in its place.
    Slow = 0,
    /// Three timeouts: stop waiting for it; it gives its RPC slot back.
    GiveUp = 1,
}

/// The give-up deadline, in adaptive timeouts.
const GIVE_UP_AFTER: u32 = 3;

/// Why a response datagram was not matched to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    Unsolicited,
    WrongAddress,
}

pub struct RpcTable {
    pending: MsgIdMap<PendingRpc>,
    /// Hard deadlines, in the order they fall due (see [`DeadlineQueue`]).
    deadlines: DeadlineQueue<MsgId>,
    /// Each pending request's next soft deadline (see [`Timeline`]: an
    /// answered request's entry is dropped when it reaches the top).
    soft_deadlines: Timeline<SoftDeadlines>,
    /// Requests holding a slot, by class.
    in_use: [usize; CLASSES],
    /// Requests still in the table that gave their slot back, by class.
    given_up: [usize; CLASSES],
    max_pending: usize,
    timeout: Duration,
    rtt: RttEstimator,
    /// Every address that answered: updated at each reply matched here.
    peers: PeerBook,
}

impl RpcTable {
    /// `timeout` is the hard deadline; soft ones are never below `floor`.
    pub fn new(max_pending: usize, timeout: Duration, floor: Duration) -> Self {
        RpcTable {
            pending: MsgIdMap::default(),
            deadlines: DeadlineQueue::default(),
            soft_deadlines: Timeline::default(),
            in_use: [0; CLASSES],
            given_up: [0; CLASSES],
            max_pending,
            timeout,
            rtt: RttEstimator::new(floor, timeout),
            peers: PeerBook::default(),
        }
    }

    /// Requests holding a slot: sent, and neither answered, timed out nor
    /// given up.
    pub fn slots_in_use(&self) -> usize {
        self.in_use.iter().sum()
    }

    /// Requests in the table, given up or not: at most twice
    /// `max_pending_rpcs`.
    pub fn entries(&self) -> usize {
        self.pending.len()
    }

    /// What the addresses that answered us proved (see [`PeerBook`]).
    pub fn peers(&self) -> &PeerBook {
        &self.peers
    }

    /// `addr`'s smoothed round trip, and when an answer from it is later
    /// than usual (see `RttEstimator::late_after`).
    pub fn round_trip(&self, addr: &SocketAddr) -> Option<(Duration, Duration)> {
        self.rtt.late_after(self.peers.rtt(addr))
    }

    pub fn peers_mut(&mut self) -> &mut PeerBook {
        &mut self.peers
    }

    /// Pending RPCs the table has room for without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.pending.capacity()
    }

    /// Requests of `class` that may be sent now.
    pub fn free(&self, class: Class) -> usize {
        let total = self.max_pending.saturating_sub(self.slots_in_use());
        let own = budget(self.max_pending, class).saturating_sub(self.in_use[class as usize]);
        total.min(own)
    }

    /// A fresh message id. Kadmium ids carry a STORE's TTL and flags (see
    /// [`wire::kadmium_id_flagged`]); rpcudp peers only echo them.
    pub fn new_msg_id<R: Rng + ?Sized>(rng: &mut R, ttl_secs: u32, flags: u8) -> MsgId {
        let mut random = [0u8; 11];
        rng.fill(&mut random[..]);
        wire::kadmium_id_flagged(ttl_secs, flags, random)
    }

    /// Enter a request just sent.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &mut self,
        now: Instant,
        msg_id: MsgId,
        to: SocketAddr,
        peer: Option<NodeId>,
        kind: RpcKind,
        purpose: Purpose,
        class: Class,
    ) {
        let deadline = now + self.timeout;
        let soft = if matches!(purpose, Purpose::Lookup(_) | Purpose::Store(_)) {
            let rto = self.rtt.timeout(self.peers.rtt(&to));
            [Some(now + rto), Some(now + rto * GIVE_UP_AFTER)]
        } else {
            [None, None]
        };
        let rpc = PendingRpc {
            to,
            peer,
            kind,
            purpose,
            class,
            sent_at: now,
            deadline,
            soft,
            holds_slot: true,
        };
        let old = self.pending.insert(msg_id, rpc);
        // 88 random bits: a collision is a bug elsewhere, not a reason to
        // leak a slot. (One move from the old request's entry to the new.)
        let old_soft = old.as_ref().and_then(|old| soft_entry(msg_id, old.soft));
        self.soft_deadlines
            .moved(&self.pending, old_soft, soft_entry(msg_id, soft));
        if let Some(old) = old {
            self.free_slot(&old);
        }
        self.deadlines.push(deadline, msg_id);
        self.in_use[class as usize] += 1;
    }

    /// The request a response from `from`, received at `now`, answers.
    pub fn complete(
        &mut self,
        now: Instant,
        msg_id: &MsgId,
        from: SocketAddr,
    ) -> Result<PendingRpc, Unmatched> {
        match self.pending.get(msg_id) {
            None => return Err(Unmatched::Unsolicited),
            Some(rpc) if rpc.to != from => return Err(Unmatched::WrongAddress),
            Some(_) => {}
        }
        let rpc = self.pending.remove(msg_id).ok_or(Unmatched::Unsolicited)?;
        self.forget(*msg_id, &rpc);
        let sample = now.saturating_duration_since(rpc.sent_at);
        let rtt = &mut self.rtt;
        self.peers
            .answered(&from, now, |previous| rtt.observe(previous, sample));
        Ok(rpc)
    }

    /// A request whose soft deadline passed by `now`, and which one: the
    /// caller waits less for it, though a reply is still accepted until the
    /// hard deadline.
    pub fn pop_slow(&mut self, now: Instant) -> Option<(Purpose, Option<NodeId>, Stage)> {
        // A current entry: its request is pending.
        let (_, (msg_id, stage)) = self.soft_deadlines.pop_due(&self.pending, now)?;
        let rpc = self.pending.get_mut(&msg_id)?;
        rpc.soft[stage as usize] = None;
        let class = rpc.class as usize;
        let given_up_total: usize = self.given_up.iter().sum();
        if stage == Stage::GiveUp
            && rpc.holds_slot
            && given_up_total < self.max_pending
            && self.given_up[class] < budget(self.max_pending, rpc.class)
        {
            rpc.holds_slot = false;
            self.in_use[class] -= 1;
            self.given_up[class] += 1;
        }
        let (next, slow) = (soft_entry(msg_id, rpc.soft), (rpc.purpose, rpc.peer, stage));
        self.soft_deadlines.moved(&self.pending, None, next);
        self.soft_deadlines.drop_stale_top(&self.pending);
        Some(slow)
    }

    /// A request whose deadline passed by `now`, taken out of the table.
    pub fn pop_expired(&mut self, now: Instant) -> Option<PendingRpc> {
        loop {
            let (deadline, msg_id) = self.deadlines.pop_due(now)?;
            // An entry of an answered request (or of an earlier use of the id).
            if self
                .pending
                .get(&msg_id)
                .is_none_or(|rpc| rpc.deadline != deadline)
            {
                continue;
            }
            let rpc = self.pending.remove(&msg_id)?;
            self.free_slot(&rpc);
            self.soft_deadlines
                .moved(&self.pending, soft_entry(msg_id, rpc.soft), None);
            self.tidy_deadlines();
            return Some(rpc);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let hard = self.deadlines.first();
        let soft = self.soft_deadlines.first();
        match (hard, soft) {
            (Some(h), Some(s)) => Some(h.min(s)),
            (h, s) => h.or(s),
        }
    }

    /// Give back the memory of a burst (a join refreshes every bucket at
    /// once) when few requests remain: the table is never iterated, so its
    /// capacity is all it keeps of the burst, 3–7 KB per node of a simulated
    /// network that would otherwise stay allocated for good. An emptied
    /// table frees all of it: a quiet node sends a request now and then.
    /// Called at maintenance ticks, not as requests end: a put takes a
    /// node's table from empty to 20-odd requests and back, and shrinking
    /// each time it emptied rehashed it as often as it grew again (a
    /// rehash for two of every three datagrams of a put simulation).
    fn shrink_if_sparse(&mut self) {
        let capacity = self.pending.capacity();
        if capacity > 0 && self.pending.len() * 4 < capacity {
            self.pending.shrink_to(self.pending.len() * 2);
        }
    }

    /// `msg_id`, already out of `pending`, leaves the other tables.
    fn forget(&mut self, msg_id: MsgId, rpc: &PendingRpc) {
        self.soft_deadlines
            .moved(&self.pending, soft_entry(msg_id, rpc.soft), None);
        self.free_slot(rpc);
        self.tidy_deadlines();
    }

    /// `rpc` left the table: its slot (or its place among the given-up
    /// requests) is free.
    fn free_slot(&mut self, rpc: &PendingRpc) {
        if rpc.holds_slot {
            self.in_use[rpc.class as usize] -= 1;
        } else {
            self.given_up[rpc.class as usize] -= 1;
        }
    }

    /// Drop hard deadlines of requests no longer pending (see
    /// [`DeadlineQueue::tidy`]): a pending request with that id and deadline
    /// makes an entry live.
    fn tidy_deadlines(&mut self) {
        let pending = &self.pending;
        self.deadlines.tidy(pending.len(), |at, msg_id| {
            pending.get(msg_id).is_some_and(|rpc| rpc.deadline == at)
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    /// A table of `max_pending` slots (2 s timeout, 50 ms floor), a seeded
    /// generator for message ids, and one peer address.
    fn setup(max_pending: usize, seed: u64) -> (Instant, rand::rngs::StdRng, RpcTable, SocketAddr) {
        let table = RpcTable::new(
            max_pending,
            Duration::from_secs(2),
            Duration::from_millis(50),
        );
        let to = "127.0.0.1:1".parse().unwrap();
        (
            Instant::now(),
            rand::rngs::StdRng::seed_from_u64(seed),
            table,
            to,
        )
    }

    #[test]
    fn background_classes_cannot_take_user_slots() {
        let (now, mut rng, mut t, to) = setup(16, 1);
        while t.free(Class::Maintenance) > 0 {
            let id = RpcTable::new_msg_id(&mut rng, 0, 0);
            let purpose = Purpose::Lookup(1);
            t.insert(
                now,
                id,
                to,
                None,
                RpcKind::Ping,
                purpose,
                Class::Maintenance,
            );
        }
        assert_eq!(t.slots_in_use(), 8, "maintenance stops at half the slots");
        assert_eq!(t.free(Class::User), 8, "users keep the rest");
        assert_eq!(t.free(Class::Probe), 2);
    }

    #[test]
    fn replies_match_id_and_address_and_deadlines_fire_once() {
        let (now, mut rng, mut t, to) = setup(16, 2);
        let other: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let a = RpcTable::new_msg_id(&mut rng, 0, 0);
        let b = RpcTable::new_msg_id(&mut rng, 0, 0);
        for id in [a, b] {
            t.insert(
                now,
                id,
                to,
                None,
                RpcKind::Ping,
                Purpose::Probe,
                Class::Probe,
            );
        }
        assert_eq!(
            t.complete(now, &a, other).unwrap_err(),
            Unmatched::WrongAddress
        );
        assert!(t.complete(now, &a, to).is_ok());
        assert_eq!(t.complete(now, &a, to).unwrap_err(), Unmatched::Unsolicited);
        assert!(t.pop_expired(now + Duration::from_secs(1)).is_none());
        assert!(t.pop_expired(now + Duration::from_secs(2)).is_some());
        assert!(t.pop_expired(now + Duration::from_secs(3)).is_none());
        assert_eq!((t.slots_in_use(), t.free(Class::Probe)), (0, 2));
    }

    /// Past its give-up deadline a request gives its slot back, yet its
    /// reply is still matched and its timeout still reported; given-up
    /// requests are capped at `max_pending` (the table's memory bound).
    #[test]
    fn given_up_requests_free_their_slots_but_still_match() {
        let (now, mut rng, mut t, to) = setup(4, 4);
        let mut send = |t: &mut RpcTable, at: Instant| {
            let id = RpcTable::new_msg_id(&mut rng, 0, 0);
            let purpose = Purpose::Lookup(1);
            t.insert(at, id, to, None, RpcKind::FindNode, purpose, Class::User);
            id
        };
        // A measured round trip: soft deadlines of 50 and 150 ms (the floor).
        let measured = send(&mut t, now);
        assert!(t
            .complete(now + Duration::from_millis(10), &measured, to)
            .is_ok());
        let first: Vec<MsgId> = (0..4).map(|_| send(&mut t, now)).collect();
        assert_eq!(t.free(Class::User), 0);
        let mut stages = Vec::new();
        let later = now + Duration::from_secs(1);
        while let Some((_, _, stage)) = t.pop_slow(later) {
            stages.push(stage);
        }
        assert_eq!(stages.iter().filter(|s| **s == Stage::GiveUp).count(), 4);
        assert_eq!(
            (t.slots_in_use(), t.free(Class::User)),
            (0, 4),
            "every slot is back"
        );

        // Four more fill the slots again. Four given-up requests are out,
        // the cap: these keep their slots past their give-up deadline.
        for _ in 0..4 {
            send(&mut t, later);
        }
        let last = later + Duration::from_millis(900);
        while t.pop_slow(last).is_some() {}
        assert_eq!((t.slots_in_use(), t.given_up[0]), (4, 4));
        assert!(
            t.complete(last, &first[0], to).is_ok(),
            "a late reply still counts"
        );
        assert_eq!((t.slots_in_use(), t.given_up[0]), (4, 3));
        let mut expired = 0;
        while t.pop_expired(now + Duration::from_secs(5)).is_some() {
            expired += 1;
        }
        assert_eq!(expired, 7, "given up or not, each times out once");
        assert_eq!(
            (t.slots_in_use(), t.given_up[0], t.free(Class::User)),
            (0, 0, 4)
        );
    }

    /// Background work gives up at most its share: maintenance's half of
    /// the slots, so user requests keep room to give theirs back.
    #[test]
    fn background_classes_give_up_at_most_their_share() {
        let (now, mut rng, mut t, to) = setup(4, 5);
        let mut send = |t: &mut RpcTable, at: Instant, class: Class| {
            let id = RpcTable::new_msg_id(&mut rng, 0, 0);
            t.insert(
                at,
                id,
                to,
                None,
                RpcKind::FindNode,
                Purpose::Lookup(1),
                class,
            );
            id
        };
        let measured = send(&mut t, now, Class::User);
        assert!(t
            .complete(now + Duration::from_millis(10), &measured, to)
            .is_ok());
        let mut round = |t: &mut RpcTable, at: Instant, class: Class| {
            while t.free(class) > 0 {
                send(t, at, class);
            }
            while t.pop_slow(at + Duration::from_millis(500)).is_some() {}
        };
        round(&mut t, now, Class::Maintenance);
        assert_eq!((t.slots_in_use(), t.given_up), (0, [0, 2, 0, 0]));
        let later = now + Duration::from_secs(1);
        round(&mut t, later, Class::Maintenance);
        assert_eq!(
            (t.slots_in_use(), t.given_up),
            (2, [0, 2, 0, 0]),
            "maintenance's share is 2"
        );
        round(&mut t, later, Class::User);
        assert_eq!(
            (t.slots_in_use(), t.given_up),
            (2, [2, 2, 0, 0]),
            "4 given up in all"
        );
        assert_eq!(t.entries(), 6);
    }
}
