//! What a fuzzing [`Scenario`](super::Scenario) is made of, each built by
//! `arbitrary` from the fuzzer's bytes: the peers' ids and addresses (a
//! small recurring set, so that ids, replies and lookups keep meeting), the
//! values, requests and replies they send, and the [`Action`]s of a run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;

use crate::wire::{Request, Response};
use crate::{Contact, NodeId, Value};

/// The peers of a scenario: a few fixed addresses (IPv4, IPv6, and ones a
/// node must not use), so that ids, replies and lookups keep meeting.
pub(super) fn peer_addr(i: u8) -> SocketAddr {
    let ip = match i % 8 {
        0..=3 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i % 8)),
        4 => IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)),
        5 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5)),
        6 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    let port = if i % 8 == 6 {
        0
    } else {
        4000 + u16::from(i % 8)
    };
    SocketAddr::new(ip, port)
}

/// An id from a small set (so the same ids recur at different addresses),
/// or any id.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum IdChoice {
    Known(u8),
    Any([u8; 20]),
}

impl IdChoice {
    pub(super) fn id(self) -> NodeId {
        match self {
            IdChoice::Known(i) => NodeId::digest(&[i % 16]),
            IdChoice::Any(bytes) => NodeId(bytes),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum AddrChoice {
    Known(u8),
    V4([u8; 4], u16),
    V6([u8; 16], u16),
}

impl AddrChoice {
    pub(super) fn addr(self) -> SocketAddr {
        match self {
            AddrChoice::Known(i) => peer_addr(i),
            AddrChoice::V4(ip, port) => SocketAddr::new(IpAddr::from(ip), port),
            AddrChoice::V6(ip, port) => SocketAddr::new(IpAddr::from(ip), port),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum ValueChoice {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
}

impl ValueChoice {
    pub(super) fn value(self) -> Value {
        match self {
            ValueChoice::Int(v) => Value::Int(v),
            ValueChoice::UInt(v) => Value::UInt(v),
            ValueChoice::Float(v) => Value::Float(v),
            ValueChoice::Bool(v) => Value::Bool(v),
            ValueChoice::Str(v) => Value::Str(v),
            ValueChoice::Bytes(v) => Value::Bytes(v),
        }
    }
}

/// A well-formed request from a peer.
#[derive(Arbitrary, Debug, Clone)]
pub enum RequestChoice {
    Ping(IdChoice),
    Store(IdChoice, IdChoice, ValueChoice),
    FindNode(IdChoice, IdChoice),
    FindValue(IdChoice, IdChoice),
    Stun,
}

impl RequestChoice {
    pub(super) fn request(self) -> Request {
        match self {
            RequestChoice::Ping(s) => Request::Ping { sender: s.id() },
            RequestChoice::Store(s, key, value) => Request::Store {
                sender: s.id(),
                key: key.id(),
                value: value.value(),
            },
            RequestChoice::FindNode(s, target) => Request::FindNode {
                sender: s.id(),
                target: target.id(),
            },
            RequestChoice::FindValue(s, key) => Request::FindValue {
                sender: s.id(),
                key: key.id(),
            },
            RequestChoice::Stun => Request::Stun,
        }
    }
}

/// A well-formed response (of any kind, so a mismatched kind is tried too).
#[derive(Arbitrary, Debug, Clone)]
pub enum ResponseChoice {
    Ping(IdChoice),
    Store(bool),
    /// A STORE answer with the nodes trailer (to a STORE that asked).
    StoreWithNodes(bool, Vec<(IdChoice, AddrChoice)>),
    Nodes(Vec<(IdChoice, AddrChoice)>),
    Value(ValueChoice, Option<u64>),
    Stun(AddrChoice),
}

fn contacts(nodes: Vec<(IdChoice, AddrChoice)>) -> Vec<Contact> {
    nodes
        .into_iter()
        .map(|(id, addr)| Contact::new(id.id(), addr.addr()))
        .collect()
}

impl ResponseChoice {
    pub(super) fn response(self) -> Response {
        match self {
            ResponseChoice::Ping(id) => Response::Ping(id.id()),
            ResponseChoice::Store(ok) => Response::Store(ok),
            ResponseChoice::StoreWithNodes(ok, nodes) => {
                Response::StoreWithNodes(ok, contacts(nodes))
            }
            ResponseChoice::Nodes(nodes) => Response::Nodes(contacts(nodes)),
            ResponseChoice::Value(value, ttl_secs) => Response::Value {
                value: value.value(),
                ttl_secs,
            },
            ResponseChoice::Stun(addr) => Response::Stun(addr.addr()),
        }
    }
}

/// One step of a scenario.
#[derive(Arbitrary, Debug, Clone)]
pub enum Action {
    /// Any bytes from peer `from`.
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    /// A well-formed request from peer `from`.
    Request {
        from: u8,
        id: [u8; 20],
        request: RequestChoice,
    },
    /// A reply to the `rpc`-th request the node sent (modulo how many it
    /// sent), from the address it went to or, with `spoof`, from peer `spoof`.
    Reply {
        rpc: u16,
        spoof: Option<u8>,
        response: ResponseChoice,
        /// With the trailers a kadmium responder appends, or bare (rpcudp's).
        trailers: bool,
    },
    /// Time passes (up to ~65 s), then the node's timers run.
    Advance {
        millis: u16,
    },
    /// Time jumps far ahead (up to ~3 days), then the node's timers run.
    Jump {
        minutes: u16,
    },
    Bootstrap {
        peers: Vec<u8>,
    },
    Get {
        key: IdChoice,
    },
    Put {
        key: IdChoice,
        value: ValueChoice,
        ttl_secs: Option<u32>,
        replication: Option<u8>,
    },
    StoreLocal {
        key: IdChoice,
        value: ValueChoice,
        ttl_secs: Option<u32>,
    },
    Ping {
        to: AddrChoice,
    },
    /// Cancel the `op`-th operation started (modulo how many were).
    Cancel {
        op: u8,
    },
}
