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
//! the operation frees the request's slot and asks someone else; past the
//! second (three timeouts) it stops waiting for it altogether. The request
//! stays pending until its hard deadline, so a late reply still counts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::contact::usable_addr;
use crate::deadline_queue::DeadlineQueue;
use crate::id::NodeId;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::peer_book::PeerBook;
use crate::peer_key::MsgIdMap;
use crate::rtt::RttEstimator;
use crate::timeline::{Reading, Timeline};
use crate::wire::{self, MsgId, Request, RpcKind};

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
    /// One timeout: free its slot, ask someone else.
    Slow = 0,
    /// Three timeouts: stop waiting for it.
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
    in_use: [usize; CLASSES],
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
            max_pending,
            timeout,
            rtt: RttEstimator::new(floor, timeout),
            peers: PeerBook::default(),
        }
    }

    pub fn len(&self) -> usize {
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

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn budget(&self, class: Class) -> usize {
        match class {
            Class::User => self.max_pending,
            Class::Maintenance => self.max_pending / 2,
            Class::Probe | Class::HandOver => (self.max_pending / 8).max(1),
        }
    }

    /// Requests of `class` that may be sent now.
    pub fn free(&self, class: Class) -> usize {
        let total = self.max_pending.saturating_sub(self.pending.len());
        let own = self
            .budget(class)
            .saturating_sub(self.in_use[class as usize]);
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
        };
        let old = self.pending.insert(msg_id, rpc);
        // 88 random bits: a collision is a bug elsewhere, not a reason to
        // leak a slot. (One move from the old request's entry to the new.)
        let old_soft = old.as_ref().and_then(|old| soft_entry(msg_id, old.soft));
        self.soft_deadlines
            .moved(&self.pending, old_soft, soft_entry(msg_id, soft));
        if let Some(old) = old {
            self.in_use[old.class as usize] -= 1;
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
            self.in_use[rpc.class as usize] -= 1;
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
        self.in_use[rpc.class as usize] -= 1;
        self.tidy_deadlines();
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

/// Sent datagrams' buffers kept for reuse: about one driver batch.
pub const MAX_SPARE_BUFFERS: usize = 64;
/// The largest buffer kept for reuse: a FIND_NODE answer of k contacts fits.
pub const MAX_SPARE_CAPACITY: usize = 2048;
/// Room every encode buffer starts with: a STORE of a 100-byte value, and
/// a FIND answer of k IPv4 contacts in the fixed-width form, fit (k IPv6
/// contacts take 780 bytes: that buffer grows once, and is kept).
const MIN_BUFFER: usize = 640;

/// A datagram to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub payload: Vec<u8>,
}

/// The sending side: encodes requests and responses, enters requests in the
/// [`RpcTable`], queues the datagrams for the driver and counts them.
pub struct Outbox {
    pub table: RpcTable,
    transmits: VecDeque<Transmit>,
    /// Buffers of datagrams already sent, given back by the driver
    /// ([`Outbox::recycle`]) to encode later ones in.
    spare: Vec<Vec<u8>>,
    /// Flags every request carries (client-only mode).
    request_flags: u8,
    pub datagrams_sent: u64,
    pub rpcs_sent: u64,
}

/// A request to send, with what its reply is for.
pub struct Outgoing<'a> {
    pub to: SocketAddr,
    pub peer: Option<NodeId>,
    pub request: &'a Request,
    pub purpose: Purpose,
    pub class: Class,
    /// A STORE's TTL in seconds (0: none) and flags, carried in its id.
    pub ttl_secs: u32,
    pub flags: u8,
}

impl Outbox {
    pub fn new(table: RpcTable, request_flags: u8) -> Self {
        Outbox {
            table,
            transmits: VecDeque::new(),
            spare: Vec::new(),
            request_flags,
            datagrams_sent: 0,
            rpcs_sent: 0,
        }
    }

    /// Send a request. Returns false, sending nothing, when the address can
    /// never be reached or the request's class has no free slot: the caller
    /// treats that as an immediate failure.
    pub fn request<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
        out: Outgoing<'_>,
    ) -> bool {
        // Every RPC counts against `max_pending_rpcs`, through its class.
        if !usable_addr(&out.to) || self.table.free(out.class) == 0 {
            return false;
        }
        let msg_id = RpcTable::new_msg_id(rng, out.ttl_secs, out.flags | self.request_flags);
        let mut payload = self.buffer();
        wire::encode_request_into(&mut payload, &msg_id, out.request);
        let kind = out.request.kind();
        self.table
            .insert(now, msg_id, out.to, out.peer, kind, out.purpose, out.class);
        self.rpcs_sent += 1;
        self.push(out.to, payload);
        true
    }

    /// Queue an already encoded datagram (an answer that waited).
    pub fn send_encoded(&mut self, to: SocketAddr, payload: Vec<u8>) {
        self.push(to, payload);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// A buffer to encode a datagram in: a recycled one if there is one,
    /// with room for `MIN_BUFFER` bytes either way. (Grown byte by byte
    /// from empty, a fresh buffer was reallocated five times on its way to
    /// a STORE's size; a recycled STORE answer's, twice more for a
    /// FIND answer.)
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut buffer = self.spare.pop().unwrap_or_default();
        // (A recycled buffer still holds its datagram: room counts from empty.)
        buffer.clear();
        buffer.reserve(MIN_BUFFER);
        buffer
    }

    /// Free the tables a burst left empty (see `idle_memory.rs`).
    pub fn release_idle_memory(&mut self) {
        self.transmits.release_if_empty();
        self.spare.release_if_empty();
        self.table.shrink_if_sparse();
        self.table.deadlines.release_if_empty();
        self.table.soft_deadlines.release_idle_memory();
    }

    /// Take back a sent datagram's buffer for a later datagram. At most
    /// [`MAX_SPARE_BUFFERS`] are kept, and none larger than
    /// [`MAX_SPARE_CAPACITY`] (a rare large value would otherwise stay
    /// allocated); the others are freed.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < MAX_SPARE_BUFFERS && buffer.capacity() <= MAX_SPARE_CAPACITY {
            self.spare.push(buffer);
        }
    }

    fn push(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.datagrams_sent += 1;
        self.transmits.push_back(Transmit { dest, payload });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    /// A recycled buffer carries the next datagram, byte for byte what a
    /// fresh one would; oversized buffers and those past the cap are freed.
    #[test]
    fn recycled_buffers_carry_later_datagrams() {
        let now = Instant::now();
        let to: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let request = Request::FindNode {
            sender: NodeId([1; 20]),
            target: NodeId([2; 20]),
        };
        let send = |outbox: &mut Outbox| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(3);
            let out = Outgoing {
                to,
                peer: None,
                request: &request,
                purpose: Purpose::Lookup(1),
                class: Class::User,
                ttl_secs: 0,
                flags: 0,
            };
            assert!(outbox.request(now, &mut rng, out));
            outbox.poll_transmit().unwrap().payload
        };
        let table = || RpcTable::new(16, Duration::from_secs(2), Duration::from_millis(50));
        let fresh = send(&mut Outbox::new(table(), 0));

        let mut outbox = Outbox::new(table(), 0);
        // (At least MIN_BUFFER long: a smaller one is grown first.)
        let dirty = vec![0xee; MIN_BUFFER];
        let reused = dirty.as_ptr();
        outbox.recycle(dirty);
        let payload = send(&mut outbox);
        assert_eq!(payload, fresh, "nothing of the buffer's old bytes is left");
        assert_eq!(payload.as_ptr(), reused, "the recycled allocation was used");

        outbox.recycle(Vec::with_capacity(MAX_SPARE_CAPACITY + 1));
        assert!(outbox.spare.is_empty(), "a large buffer is not kept");
        for _ in 0..MAX_SPARE_BUFFERS + 5 {
            outbox.recycle(Vec::with_capacity(64));
        }
        assert_eq!(outbox.spare.len(), MAX_SPARE_BUFFERS);
    }

    #[test]
    fn background_classes_cannot_take_user_slots() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut t = RpcTable::new(16, Duration::from_secs(2), Duration::from_millis(50));
        let to: SocketAddr = "127.0.0.1:1".parse().unwrap();
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
        assert_eq!(t.len(), 8, "maintenance stops at half the slots");
        assert_eq!(t.free(Class::User), 8, "users keep the rest");
        assert_eq!(t.free(Class::Probe), 2);
    }

    #[test]
    fn replies_match_id_and_address_and_deadlines_fire_once() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut t = RpcTable::new(16, Duration::from_secs(2), Duration::from_millis(50));
        let to: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let a = RpcTable::new_msg_id(&mut rng, 0, 0);
        let b = RpcTable::new_msg_id(&mut rng, 0, 0);
        t.insert(
            now,
            a,
            to,
            None,
            RpcKind::Ping,
            Purpose::Probe,
            Class::Probe,
        );
        t.insert(
            now,
            b,
            to,
            None,
            RpcKind::Ping,
            Purpose::Probe,
            Class::Probe,
        );
        assert_eq!(
            t.complete(now, &a, other).unwrap_err(),
            Unmatched::WrongAddress
        );
        assert!(t.complete(now, &a, to).is_ok());
        assert_eq!(t.complete(now, &a, to).unwrap_err(), Unmatched::Unsolicited);
        assert!(t.pop_expired(now + Duration::from_secs(1)).is_none());
        assert!(t.pop_expired(now + Duration::from_secs(2)).is_some());
        assert!(t.pop_expired(now + Duration::from_secs(3)).is_none());
        assert_eq!((t.len(), t.free(Class::Probe)), (0, 2));
    }
}
