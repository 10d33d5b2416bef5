//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and the
//! stable-Rust randomized test that stands in for them where nightly is
//! missing. Not part of the API: built only with the `fuzzing` feature.
//!
//! * [`datagram`]: any bytes through the rpcudp decoders (every `RpcKind`),
//!   and what decodes must re-encode to a fixed point.
//! * [`protocol`]: a [`Scenario`] (built by `arbitrary` from the fuzzer's
//!   bytes) drives one [`Protocol`] through datagrams from a handful of
//!   addresses, replies to the RPCs it actually sent, time jumps and
//!   commands, checking after every step the invariants listed on
//!   [`check_invariants`]. A violated invariant panics, which is what the
//!   fuzzer reports.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;

mod choices;

use choices::peer_addr;
pub use choices::{Action, AddrChoice, IdChoice, RequestChoice, ResponseChoice, ValueChoice};

use crate::wire::{self, MsgId, RpcKind};
use crate::{Config, NodeId, OpId, Protocol, PutOptions};

const KINDS: [RpcKind; 5] = [
    RpcKind::Ping,
    RpcKind::Store,
    RpcKind::FindNode,
    RpcKind::FindValue,
    RpcKind::Stun,
];

/// Decode `data` as a datagram in every way the node may; whatever decodes
/// must encode back to bytes that decode to the same encoding.
pub fn datagram(data: &[u8]) {
    let Ok(packet) = wire::split_packet(data) else {
        return;
    };
    if let Ok(request) = wire::decode_request(packet.body) {
        let once = wire::encode_request(&packet.id, &request);
        let again = wire::split_packet(&once)
            .and_then(|p| wire::decode_request(p.body))
            .map(|r| wire::encode_request(&packet.id, &r));
        assert_eq!(again.as_ref(), Ok(&once), "request does not round-trip");
    }
    for kind in KINDS {
        if let Ok(response) = wire::decode_response(kind, packet.body) {
            let once = wire::encode_response(&packet.id, &response);
            let again = wire::split_packet(&once)
                .and_then(|p| wire::decode_response(kind, p.body))
                .map(|r| wire::encode_response(&packet.id, &r));
            assert_eq!(
                again.as_ref(),
                Ok(&once),
                "{kind:?} response does not round-trip"
            );
        }
    }
}

/// A well-formed request or response built from `u`: what the stable
/// stand-in for the fuzzer mutates, since random bytes rarely get past the
/// msgpack framing.
pub fn sample_datagram(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => {
            let id: MsgId = u.arbitrary()?;
            wire::encode_request(&id, &RequestChoice::arbitrary(u)?.request())
        }
        1 => {
            let id: MsgId = u.arbitrary()?;
            wire::encode_response(&id, &ResponseChoice::arbitrary(u)?.response())
        }
        _ => {
            // An answer to a kadmium request with any flags: the trailers
            // after the body, a STORE answer's nodes in either form.
            let id = wire::kadmium_id_flagged(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
            let response = ResponseChoice::arbitrary(u)?.response();
            let requester = AddrChoice::arbitrary(u)?.addr();
            wire::encode_reply(&id, &response, requester, &IdChoice::arbitrary(u)?.id())
        }
    })
}

/// A node's small config and what happens to it.
#[derive(Arbitrary, Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    /// k between 1 and 8, so buckets fill and evictions happen.
    pub k: u8,
    /// Between 1 and 32 (at least α).
    pub max_pending_rpcs: u8,
    pub actions: Vec<Action>,
}

/// Whether to check that pending RPCs stay within `max_pending_rpcs`: on,
/// since every RPC class counts against it; `KADMIUM_FUZZ_STRICT_PENDING=0`
/// turns the check off.
pub fn strict_pending_bound() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("KADMIUM_FUZZ_STRICT_PENDING").is_none_or(|v| v != "0"))
}

/// A request the node sent, as the harness saw it leave.
struct SentRpc {
    to: SocketAddr,
    id: MsgId,
}

/// The node under test and what the harness counted from outside.
struct Harness {
    node: Protocol,
    now: Instant,
    sent: Vec<SentRpc>,
    ops: Vec<OpId>,
    datagrams_in: u64,
    datagrams_out: u64,
}

/// Run a scenario; panics if an invariant breaks.
pub fn protocol(scenario: Scenario) {
    let k = usize::from(scenario.k % 8) + 1;
    let alpha = k.min(3);
    let mut config = Config::default()
        .with_k(k)
        .with_alpha(alpha)
        .with_rng_seed(scenario.seed)
        .with_max_value_size(4096);
    config.max_pending_rpcs = usize::from(scenario.max_pending_rpcs % 32).max(alpha);
    config.max_stored_values = 64;
    let now = Instant::now();
    let Ok(node) = Protocol::new(config, now) else {
        return;
    };
    let mut h = Harness {
        node,
        now,
        sent: Vec::new(),
        ops: Vec::new(),
        datagrams_in: 0,
        datagrams_out: 0,
    };
    for action in scenario.actions {
        let ran_timers = matches!(action, Action::Advance { .. } | Action::Jump { .. });
        h.step(action);
        h.drain();
        if !ran_timers {
            h.catch_up();
        }
        h.check_invariants();
    }
}

impl Harness {
    fn step(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Raw { from, bytes } => self.deliver(peer_addr(from), &bytes),
            Action::Request { from, id, request } => {
                let bytes = wire::encode_request(&id, &request.request());
                self.deliver(peer_addr(from), &bytes);
            }
            Action::Reply {
                rpc,
                spoof,
                response,
                trailers,
            } => {
                if self.sent.is_empty() {
                    return;
                }
                let sent = &self.sent[usize::from(rpc) % self.sent.len()];
                let from = spoof.map_or(sent.to, peer_addr);
                let response = response.response();
                let bytes = if trailers {
                    // Our requests carry kadmium ids: the observed address,
                    // a STORE answer's nodes, and a responder id where
                    // asked (here not the id the request went to).
                    let responder = NodeId::digest(&rpc.to_be_bytes());
                    wire::encode_reply(&sent.id, &response, peer_addr(2), &responder)
                } else {
                    wire::encode_response(&sent.id, &response)
                };
                // The response's kind is chosen freely: mismatches are tried too.
                self.deliver(from, &bytes);
            }
            Action::Advance { millis } => {
                self.now += Duration::from_millis(u64::from(millis));
                self.node.handle_timeout(self.now);
            }
            Action::Jump { minutes } => {
                self.now += Duration::from_secs(60 * u64::from(minutes));
                self.node.handle_timeout(self.now);
            }
            Action::Bootstrap { peers } => {
                let addrs: Vec<SocketAddr> = peers.into_iter().take(16).map(peer_addr).collect();
                let op = self.node.bootstrap(now, &addrs);
                self.ops.push(op);
            }
            Action::Get { key } => {
                let op = self.node.get(now, key.id());
                self.ops.push(op);
            }
            Action::Put {
                key,
                value,
                ttl_secs,
                replication,
            } => {
                let options = PutOptions {
                    ttl: ttl_secs.map(|s| Duration::from_secs(u64::from(s))),
                    replication: replication.map(usize::from),
                    ..PutOptions::default()
                };
                if let Ok(op) = self.node.put(now, key.id(), value.value(), options) {
                    self.ops.push(op);
                }
            }
            Action::StoreLocal {
                key,
                value,
                ttl_secs,
            } => {
                let options = PutOptions {
                    ttl: ttl_secs.map(|s| Duration::from_secs(u64::from(s))),
                    replication: None,
                    ..PutOptions::default()
                };
                let _ = self.node.store_local(now, key.id(), value.value(), options);
            }
            Action::Ping { to } => {
                let op = self.node.ping(now, to.addr());
                self.ops.push(op);
            }
            Action::Cancel { op } => {
                if !self.ops.is_empty() {
                    let op = self.ops[usize::from(op) % self.ops.len()];
                    self.node.cancel(op);
                }
            }
        }
    }

    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.datagrams_in += 1;
        self.node.handle_datagram(self.now, from, bytes);
    }

    /// Run the node's timers now if its next deadline has passed, as every
    /// driver does (`node.rs` sleeps until it, which returns at once; the
    /// simulator never moves its clock back). A deadline can be in the past
    /// after a datagram or a command: work deferred for want of an RPC slot
    /// (a suspect's re-probe waiting for a probe slot) is due as soon as a
    /// reply frees one. Never after `handle_timeout` itself: that would be a
    /// timer the node does not run.
    fn catch_up(&mut self) {
        if self.node.poll_timeout().is_some_and(|t| t < self.now) {
            self.node.handle_timeout(self.now);
            self.drain();
        }
    }

    /// Take everything the node wants to send; remember its requests so
    /// later actions can answer them. Events are dropped.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.datagrams_out += 1;
            let Ok(packet) = wire::split_packet(&t.payload) else {
                panic!("node sent an undecodable datagram: {:?}", t.payload);
            };
            if packet.kind == wire::REQUEST {
                if wire::decode_request(packet.body).is_err() {
                    panic!("node sent an undecodable request: {:?}", t.payload);
                }
                // Keep the most recent ones: old ids are long answered.
                if self.sent.len() >= 256 {
                    self.sent.remove(0);
                }
                self.sent.push(SentRpc {
                    to: t.dest,
                    id: packet.id,
                });
            }
        }
        while self.node.poll_event().is_some() {}
    }

    /// The invariants checked after every step:
    /// * every datagram in is counted once: as a request, a response or a drop;
    /// * the node's send counters match what left it; RPCs, timeouts and
    ///   completed lookups never exceed what they count out of;
    /// * RPCs holding a slot stay within `max_pending_rpcs`, and the RPC
    ///   table, given-up requests included, within twice that (only with
    ///   [`strict_pending_bound`]);
    /// * the next deadline exists and is not in the past (after
    ///   [`Harness::catch_up`] for steps that did not run the timers).
    fn check_invariants(&self) {
        let s = self.node.stats();
        assert_eq!(s.datagrams_received, self.datagrams_in, "{s:?}");
        assert_eq!(
            s.requests_received + s.responses_received + s.datagrams_dropped,
            s.datagrams_received,
            "datagrams not each counted once: {s:?}"
        );
        assert_eq!(s.datagrams_sent, self.datagrams_out, "{s:?}");
        assert!(s.rpcs_sent <= s.datagrams_sent, "{s:?}");
        assert!(s.rpc_timeouts + s.pending_rpcs <= s.rpcs_sent, "{s:?}");
        assert!(s.lookups_completed <= s.lookups_started, "{s:?}");
        let max_pending = self.node.config().max_pending_rpcs as u64;
        assert!(
            !strict_pending_bound() || s.pending_rpcs <= max_pending,
            "{} RPCs pending, max_pending_rpcs is {max_pending}",
            s.pending_rpcs
        );
        let entries = self.node.rpc_table_entries() as u64;
        assert!(
            !strict_pending_bound() || entries <= 2 * max_pending,
            "{entries} requests in the RPC table, max_pending_rpcs is {max_pending}"
        );
        match self.node.poll_timeout() {
            Some(t) => assert!(
                t >= self.now,
                "next deadline {t:?} is before now {:?}",
                self.now
            ),
            None => panic!("no next deadline"),
        }
    }
}
