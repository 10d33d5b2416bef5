//! The sending side of the RPC layer: requests and answers encoded into
//! reused buffers, requests entered in the [`RpcTable`], datagrams queued
//! for the driver.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;

use super::{Class, Purpose, RpcTable};
use crate::contact::usable_addr;
use crate::id::NodeId;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::wire::{self, Request};

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
    use std::time::Duration;

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
}
