//! The rpcudp 5.0.1 wire format: one datagram is `kind(1) || msg_id(20) || msgpack(body)`.
//!
//! Requests carry `[name, [args...]]`; responses carry the bare return value, so
//! a response can only be decoded knowing which RPC it answers ([`RpcKind`]).
//! Decoding never trusts a declared length: every length is checked against the
//! bytes actually left before anything is allocated.

use std::net::SocketAddr;

use crate::contact::Contact;
use crate::id::NodeId;
use crate::value::Value;

mod compact;
mod decode;
mod encode;
mod reader;
pub mod trailers;

pub use decode::{
    decode_request, decode_response, decode_response_with_trailers, decode_saved_value,
    decode_value,
};
pub use encode::{
    encode_reply, encode_reply_into, encode_request, encode_request_into, encode_response,
    encode_value, encoded_store_len,
};
pub use trailers::{
    append_observed, append_responder, observed_for, observed_len, wants_closer_nodes,
    wants_compact_list, wants_compact_nodes, wants_responder, Trailers, COMPACT_NODES_TAG,
    NODES_TAG, OBSERVED_TAG, RESPONDER_TAG, RESPONDER_TRAILER_LEN,
};

pub const REQUEST: u8 = 0x00;
pub const RESPONSE: u8 = 0x01;
pub const MSG_ID_LEN: usize = 20;
/// Smallest datagram rpcudp accepts (kind, id, one byte of body).
pub const MIN_DATAGRAM: usize = 1 + MSG_ID_LEN + 1;

/// Whether `datagram` answers a STORE: a response whose body is one msgpack
/// bool, followed by nothing or (to a kadmium requester) its trailers (the
/// nodes trailer's list is not decoded here). A
/// node with a data directory holds these until the value is on disk, since
/// they acknowledge it.
pub fn is_store_answer(datagram: &[u8]) -> bool {
    let Some((head, rest)) = datagram.split_at_checked(MIN_DATAGRAM) else {
        return false;
    };
    head.first() == Some(&RESPONSE)
        && matches!(head.last(), Some(0xc2 | 0xc3))
        && trailers::parse_trailers(rest).is_ok()
}
/// Most contacts decoded from one contact list: the largest k a node may
/// run with ([`crate::config::MAX_K`]), whose answers list k contacts;
/// more is hostile. (It was 256 while k could be set up to 1,000, and a
/// kadmium node rejected the answers of a peer running with k > 256.)
pub const MAX_CONTACTS_PER_REPLY: usize = crate::config::MAX_K;
/// Largest request body (`msgpack([name, args])`, without kind and id) that
/// rpcudp 5.0.1 sends: its callers raise `MalformedMessage` above this, so a
/// Python peer cannot store or cache a value whose STORE would exceed it.
pub const RPCUDP_MAX_REQUEST_BODY: usize = 8192;

/// Kadmium's message ids are `KADMIUM_TAG (4) | ttl_secs (u32 BE) | flags (1) | random (11)`.
///
/// rpcudp treats the 20-byte id as opaque and only echoes it, so this is how a
/// STORE carries its expiry to kadmium peers without changing the request
/// that Python peers parse (`store(nodeid, key, value)`, exactly 3 arguments:
/// a 4th would make them drop it). 88 random bits still keep ids unique.
pub const KADMIUM_TAG: [u8; 4] = *b"KDM\x01";

pub type MsgId = [u8; MSG_ID_LEN];

pub fn is_kadmium_id(id: &MsgId) -> bool {
    id[..4] == KADMIUM_TAG
}

/// A kadmium message id carrying `ttl_secs` (0: none), no flags and 11 of
/// the 12 random bytes (the flags byte is cleared).
pub fn kadmium_id(ttl_secs: u32, random: [u8; 12]) -> MsgId {
    let mut rest = [0u8; 11];
    rest.copy_from_slice(&random[1..]);
    kadmium_id_flagged(ttl_secs, 0, rest)
}

/// A STORE carrying this flag is a copy cached after a lookup, not a
/// replica: the receiver keeps it as cached (never re-sent).
pub const FLAG_CACHED: u8 = 0x01;

/// A request carrying this flag comes from a client-only node (a short-lived
/// CLI or script): kadmium peers answer it but do not add the sender to
/// their routing tables, so it leaves no dead contact behind (the spirit of
/// BEP 43's read-only flag; Python peers never see it).
pub const FLAG_CLIENT: u8 = 0x02;

/// A request carrying this flag asks a kadmium responder to name itself in
/// its answer (the responder-id trailer, [`trailers`]), which proves the
/// answering address holds that id without a ping of its own. Older kadmium
/// responders ignore the flag, Python peers never see it.
pub const FLAG_RESPONDER_ID: u8 = 0x04;

/// A STORE carrying this flag and [`FLAG_RESPONDER_ID`] asks a kadmium
/// responder to append the contacts it knows closest to the key (the nodes
/// trailer, [`trailers`]),
/// as its answer to a FIND_NODE for the key would list them: one RPC both
/// stores the value and serves as a lookup query (see `ops/store.rs`).
/// Python peers never see it, and answer the STORE alone.
pub const FLAG_CLOSER_NODES: u8 = 0x08;

/// With [`FLAG_RESPONDER_ID`]: send contacts in the compact form
/// (fixed-width binary, `compact.rs`) instead of rpcudp's msgpack list,
/// whose text IP addresses cost a formatting and a parse per contact: the
/// nodes trailer of a STORE answer (with [`FLAG_CLOSER_NODES`]), and the
/// list of a FIND_NODE or FIND_VALUE answer, which then has an empty list
/// for its body and the contacts in the nodes trailer (see [`trailers`]).
/// Kadmium responders older than this flag ignore it and send msgpack
/// lists; those older than its use on FIND requests do so there. Both are
/// still read.
pub const FLAG_COMPACT_NODES: u8 = 0x10;

/// `KADMIUM_TAG (4) | ttl_secs (u32 BE) | flags (1) | random (11)`.
pub fn kadmium_id_flagged(ttl_secs: u32, flags: u8, random: [u8; 11]) -> MsgId {
    let mut id = [0u8; MSG_ID_LEN];
    id[..4].copy_from_slice(&KADMIUM_TAG);
    id[4..8].copy_from_slice(&ttl_secs.to_be_bytes());
    id[8] = flags;
    id[9..].copy_from_slice(&random);
    id
}

/// The flags a kadmium sender put in a request's id (0 for other senders).
pub fn flags_from_id(id: &MsgId) -> u8 {
    if is_kadmium_id(id) {
        id[8]
    } else {
        0
    }
}

/// The TTL a kadmium sender put in a request's id, if any.
pub fn ttl_from_id(id: &MsgId) -> Option<u64> {
    if !is_kadmium_id(id) {
        return None;
    }
    let ttl = u32::from_be_bytes([id[4], id[5], id[6], id[7]]);
    (ttl > 0).then_some(u64::from(ttl))
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    TooShort,
    UnknownKind(u8),
    Malformed(&'static str),
    UnknownRpc(String),
}

/// The RPCs of the Kademlia protocol, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcKind {
    Ping,
    Store,
    FindNode,
    FindValue,
    Stun,
}

impl RpcKind {
    pub fn name(self) -> &'static str {
        match self {
            RpcKind::Ping => "ping",
            RpcKind::Store => "store",
            RpcKind::FindNode => "find_node",
            RpcKind::FindValue => "find_value",
            RpcKind::Stun => "stun",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Ping {
        sender: NodeId,
    },
    /// The expiry travels in the message id (see [`kadmium_id`]).
    Store {
        sender: NodeId,
        key: NodeId,
        value: Value,
    },
    /// A STORE whose value is well-formed msgpack but not a [`Value`]: it
    /// is answered `false` (never silence) and never stored.
    StoreRejected {
        sender: NodeId,
        key: NodeId,
        value: RejectedValue,
    },
    FindNode {
        sender: NodeId,
        target: NodeId,
    },
    FindValue {
        sender: NodeId,
        key: NodeId,
    },
    Stun,
}

impl Request {
    pub fn kind(&self) -> RpcKind {
        match self {
            Request::Ping { .. } => RpcKind::Ping,
            Request::Store { .. } | Request::StoreRejected { .. } => RpcKind::Store,
            Request::FindNode { .. } => RpcKind::FindNode,
            Request::FindValue { .. } => RpcKind::FindValue,
            Request::Stun => RpcKind::Stun,
        }
    }

    pub fn sender(&self) -> Option<NodeId> {
        match self {
            Request::Ping { sender }
            | Request::Store { sender, .. }
            | Request::StoreRejected { sender, .. }
            | Request::FindNode { sender, .. }
            | Request::FindValue { sender, .. } => Some(*sender),
            Request::Stun => None,
        }
    }
}

/// The value of a STORE that kadmium cannot hold: an extension type (what
/// `umsgpack` makes of a `datetime`, say), a string that is not UTF-8, or
/// nesting past [`crate::value::MAX_VALUE_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedValue {
    /// Why it is not a [`Value`].
    pub reason: &'static str,
    /// Its msgpack encoding as received, a slice of the datagram (so the
    /// request re-encodes to the bytes it came from).
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ping(NodeId),
    Store(bool),
    /// A kadmium peer's answer to a STORE flagged [`FLAG_CLOSER_NODES`]: its
    /// rpcudp body is the bool of [`Response::Store`], and the contacts
    /// closest to the key ride in the nodes trailer.
    StoreWithNodes(bool, Vec<Contact>),
    /// A `find_node` reply, or a `find_value` reply without the value. Entries
    /// whose address is not an IP literal (Python peers may hold hostnames)
    /// are skipped.
    Nodes(Vec<Contact>),
    /// A `find_value` hit: `{"value": v}`. Kadmium adds `"ttl"` (seconds left)
    /// so cached copies expire with the original; Python peers read only
    /// `["value"]` and ignore it.
    Value {
        value: Value,
        ttl_secs: Option<u64>,
    },
    Stun(SocketAddr),
}

/// The first split of a datagram: its kind, id and still-encoded body.
#[derive(Debug)]
pub struct Packet<'a> {
    pub kind: u8,
    pub id: MsgId,
    pub body: &'a [u8],
}

pub fn split_packet(data: &[u8]) -> Result<Packet<'_>, WireError> {
    if data.len() < MIN_DATAGRAM {
        return Err(WireError::TooShort);
    }
    let kind = data[0];
    if kind != REQUEST && kind != RESPONSE {
        return Err(WireError::UnknownKind(kind));
    }
    let mut id = [0u8; MSG_ID_LEN];
    id.copy_from_slice(&data[1..1 + MSG_ID_LEN]);
    Ok(Packet {
        kind,
        id,
        body: &data[1 + MSG_ID_LEN..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ID_LEN;
    use crate::value::MAX_VALUE_DEPTH;

    fn id(b: u8) -> NodeId {
        NodeId([b; ID_LEN])
    }

    /// What a data directory's driver holds until saved must be recognised
    /// with and without the trailers (a STORE answer with the observed-address
    /// trailer once went out before its value was on disk).
    #[test]
    fn store_answers_are_recognised_with_and_without_the_trailers() {
        let requester: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let python_id = [7; MSG_ID_LEN];
        let kadmium = kadmium_id(60, [9; 12]);
        let named = kadmium_id_flagged(60, FLAG_RESPONDER_ID, [9; 11]);
        for stored in [true, false] {
            let plain = encode_reply(&python_id, &Response::Store(stored), requester, &id(2));
            let trailed = encode_reply(&kadmium, &Response::Store(stored), requester, &id(2));
            let named = encode_reply(&named, &Response::Store(stored), requester, &id(2));
            assert!(
                named.len() > trailed.len() && trailed.len() > plain.len(),
                "the kadmium answers carry their trailers"
            );
            assert!(
                is_store_answer(&plain) && is_store_answer(&trailed) && is_store_answer(&named)
            );
        }
        let ping = encode_reply(&kadmium, &Response::Ping(id(1)), requester, &id(2));
        let nodes = encode_reply(&kadmium, &Response::Nodes(Vec::new()), requester, &id(2));
        let request = encode_request(&kadmium, &Request::Ping { sender: id(1) });
        let mut junk = encode_reply(&kadmium, &Response::Store(true), requester, &id(2));
        junk.push(0);
        for other in [ping, nodes, request, junk] {
            assert!(!is_store_answer(&other), "{other:?}");
        }
    }

    fn round_trip_request(req: Request) {
        let bytes = encode_request(&[7; MSG_ID_LEN], &req);
        let p = split_packet(&bytes).expect("split");
        assert_eq!(p.kind, REQUEST);
        assert_eq!(p.id, [7; MSG_ID_LEN]);
        assert_eq!(decode_request(p.body).expect("decode"), req);
    }

    #[test]
    fn requests_round_trip() {
        round_trip_request(Request::Ping { sender: id(1) });
        round_trip_request(Request::FindNode {
            sender: id(1),
            target: id(2),
        });
        round_trip_request(Request::FindValue {
            sender: id(1),
            key: id(2),
        });
        round_trip_request(Request::Stun);
        for value in [
            Value::Int(-5),
            Value::Int(1 << 40),
            Value::UInt(u64::MAX),
            Value::Float(1.5),
            Value::Bool(true),
            Value::Str("héllo".into()),
            Value::Bytes(vec![0, 1, 2]),
            Value::Bytes(vec![9; 70_000]),
        ] {
            round_trip_request(Request::Store {
                sender: id(1),
                key: id(2),
                value: value.clone(),
            });
        }
    }

    #[test]
    fn ping_matches_rpcudp_capture() {
        // `00 <id> 92 a4 "ping" 91 c4 14 <nodeid>` as captured from rpcudp.
        let bytes = encode_request(&[0xaa; MSG_ID_LEN], &Request::Ping { sender: id(3) });
        let mut expected = vec![0x00];
        expected.extend([0xaa; 20]);
        expected.extend([0x92, 0xa4, b'p', b'i', b'n', b'g', 0x91, 0xc4, 0x14]);
        expected.extend([3; 20]);
        assert_eq!(bytes, expected);
        let reply = encode_response(&[0xaa; MSG_ID_LEN], &Response::Ping(id(4)));
        assert_eq!(&reply[21..23], &[0xc4, 0x14]);
    }

    #[test]
    fn find_node_reply_matches_python_layout() {
        let c = Contact::new(id(5), "127.0.0.1:18469".parse().expect("addr"));
        let bytes = encode_response(&[0; MSG_ID_LEN], &Response::Nodes(vec![c]));
        let mut expected = vec![0x91, 0x93, 0xc4, 0x14];
        expected.extend([5; 20]);
        expected.push(0xa9);
        expected.extend(b"127.0.0.1");
        expected.extend([0xcd, 0x48, 0x25]);
        assert_eq!(&bytes[21..], &expected[..]);
        let decoded = decode_response(RpcKind::FindNode, &bytes[21..]).expect("decode");
        assert_eq!(decoded, Response::Nodes(vec![c]));
    }

    #[test]
    fn responses_round_trip() {
        let c = Contact::new(id(5), "[::1]:9".parse().expect("addr"));
        for (kind, resp) in [
            (RpcKind::Ping, Response::Ping(id(9))),
            (RpcKind::Store, Response::Store(true)),
            (RpcKind::FindNode, Response::Nodes(vec![c, c])),
            (RpcKind::FindValue, Response::Nodes(vec![])),
            (
                RpcKind::FindValue,
                Response::Value {
                    value: Value::Str("v".into()),
                    ttl_secs: None,
                },
            ),
            (
                RpcKind::FindValue,
                Response::Value {
                    value: Value::Int(-1),
                    ttl_secs: Some(60),
                },
            ),
            (
                RpcKind::Stun,
                Response::Stun("10.1.2.3:4".parse().expect("addr")),
            ),
        ] {
            let bytes = encode_response(&[1; MSG_ID_LEN], &resp);
            assert_eq!(decode_response(kind, &bytes[21..]).expect("decode"), resp);
        }
    }

    #[test]
    fn hostname_contacts_are_skipped() {
        // [[id, "localhost", 1234]]
        let mut body = vec![0x91, 0x93, 0xc4, 0x14];
        body.extend([5; 20]);
        body.push(0xa9);
        body.extend(b"localhost");
        body.extend([0xcd, 0x04, 0xd2]);
        assert_eq!(
            decode_response(RpcKind::FindNode, &body),
            Ok(Response::Nodes(vec![]))
        );
    }

    /// A peer running with the largest k answers with k contacts, in
    /// either list form; one more is refused.
    #[test]
    fn answers_at_the_largest_k_decode() {
        let id = kadmium_id_flagged(
            0,
            FLAG_RESPONDER_ID | FLAG_CLOSER_NODES | FLAG_COMPACT_NODES,
            [1; 11],
        );
        let max_k = crate::config::MAX_K;
        let contacts: Vec<Contact> = (0..=max_k as u32)
            .map(|i| {
                let mut raw = [0u8; ID_LEN];
                raw[..4].copy_from_slice(&i.to_be_bytes());
                Contact::new(NodeId(raw), SocketAddr::from(([10, 0, 0, 1], 4000)))
            })
            .collect();
        let (most, one_more) = (&contacts[..max_k], &contacts[..]);
        let find_node = |list: &[Contact]| {
            let bytes = encode_response(&id, &Response::Nodes(list.to_vec()));
            decode_response(RpcKind::FindNode, split_packet(&bytes).expect("split").body)
        };
        assert_eq!(find_node(most), Ok(Response::Nodes(most.to_vec())));
        assert!(find_node(one_more).is_err());
        let answer = Response::StoreWithNodes(true, most.to_vec());
        let bytes = encode_reply(
            &id,
            &answer,
            "10.0.0.2:9".parse().expect("addr"),
            &NodeId([2; ID_LEN]),
        );
        // It fits one UDP datagram (65,507 bytes over IPv4).
        assert!(bytes.len() <= 65_507, "{}", bytes.len());
        let body = split_packet(&bytes).expect("split").body;
        assert_eq!(decode_response(RpcKind::Store, body), Ok(answer));
    }

    #[test]
    fn hostile_input_is_rejected() {
        assert_eq!(split_packet(&[0; 5]).err(), Some(WireError::TooShort));
        assert_eq!(
            split_packet(&[9; 30]).err(),
            Some(WireError::UnknownKind(9))
        );
        // An array claiming 2^32-1 items in a few bytes.
        let huge_array = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(decode_request(&huge_array).is_err());
        assert!(decode_response(RpcKind::FindNode, &huge_array).is_err());
        // A bin32 claiming 4 GiB.
        let huge_bin = [
            0x92, 0xa4, b'p', b'i', b'n', b'g', 0x91, 0xc6, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(decode_request(&huge_bin).is_err());
        // Wrong types, wrong arity, unknown rpc, truncation, trailing bytes.
        assert!(decode_request(&[0x92, 0xa4, b'p', b'i', b'n', b'g', 0x91, 0x01]).is_err());
        assert!(decode_request(&[0x92, 0xa4, b'p', b'i', b'n', b'g', 0x90]).is_err());
        assert!(matches!(
            decode_request(&[0x92, 0xa3, b'f', b'o', b'o', 0x90]),
            Err(WireError::UnknownRpc(_))
        ));
        let good = encode_request(&[0; 20], &Request::Ping { sender: id(1) });
        for cut in 21..good.len() {
            assert!(
                decode_request(&good[21..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let mut trailing = good[21..].to_vec();
        trailing.push(0);
        assert!(decode_request(&trailing).is_err());
        assert!(decode_response(RpcKind::Ping, &[0xc4, 0x03, 1, 2, 3]).is_err());
        assert!(decode_response(RpcKind::FindValue, &[0x81, 0xa1, b'x', 0x01]).is_err());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn containers_match_umsgpack_captures() {
        // Each hex string is `umsgpack.packb(x)` from u-msgpack-python 2.8.0
        // (what kademlia 2.2.3 uses), for the Python value in the comment.
        let cases = [
            // [1, "two", b"3", None, 2.5, True, -7, 300]
            (
                "9801a374776fc40133c0cb4004000000000000c3f9cd012c",
                Value::List(vec![
                    Value::Int(1),
                    s("two"),
                    Value::Bytes(b"3".to_vec()),
                    Value::Nil,
                    Value::Float(2.5),
                    Value::Bool(true),
                    Value::Int(-7),
                    Value::Int(300),
                ]),
            ),
            // {"name": "alice", "tags": ["a", "b"], "n": None, "nested": {"x": {}}}
            (
                "84a46e616d65a5616c696365a47461677392a161a162a16ec0a66e657374656481a17880",
                Value::Map(vec![
                    (s("name"), s("alice")),
                    (s("tags"), Value::List(vec![s("a"), s("b")])),
                    (s("n"), Value::Nil),
                    (s("nested"), Value::Map(vec![(s("x"), Value::Map(vec![]))])),
                ]),
            ),
            // None
            ("c0", Value::Nil),
            // {1: "int key", (1, 2): "tuple key"}
            (
                "8201a7696e74206b6579920102a97475706c65206b6579",
                Value::Map(vec![
                    (Value::Int(1), s("int key")),
                    (
                        Value::List(vec![Value::Int(1), Value::Int(2)]),
                        s("tuple key"),
                    ),
                ]),
            ),
        ];
        for (bytes, value) in cases {
            let bytes = hex(bytes);
            assert_eq!(decode_value(&bytes).as_ref(), Ok(&value));
            // Same bytes back: key order kept, smallest encodings as umsgpack's.
            assert_eq!(encode_value(&value), bytes);
            assert_eq!(value.encoded_len(), bytes.len());
        }
        // rpcudp's STORE body for store(b"\x01"*20, b"\x02"*20, {"k": [1, 2]}).
        let body = hex(concat!(
            "92a573746f726593c4140101010101010101010101010101010101010101",
            "c414020202020202020202020202020202020202020281a16b920102"
        ));
        let store = Request::Store {
            sender: id(1),
            key: id(2),
            value: Value::Map(vec![(
                s("k"),
                Value::List(vec![Value::Int(1), Value::Int(2)]),
            )]),
        };
        assert_eq!(decode_request(&body), Ok(store.clone()));
        assert_eq!(&encode_request(&[0; MSG_ID_LEN], &store)[21..], &body[..]);
    }

    #[test]
    fn containers_round_trip_in_store_and_find_value() {
        let long_list = Value::List((0..70_000).map(Value::Int).collect());
        let wide_map = Value::Map((0..20).map(|i| (Value::Int(i), s("v"))).collect());
        let mut deep = Value::Nil;
        for _ in 0..MAX_VALUE_DEPTH {
            deep = Value::List(vec![deep]);
        }
        assert_eq!(deep.depth(), MAX_VALUE_DEPTH);
        for value in [Value::Nil, long_list, wide_map, deep, Value::List(vec![])] {
            assert_eq!(encode_value(&value).len(), value.encoded_len());
            round_trip_request(Request::Store {
                sender: id(1),
                key: id(2),
                value: value.clone(),
            });
            let reply = Response::Value {
                value,
                ttl_secs: Some(5),
            };
            let bytes = encode_response(&[1; MSG_ID_LEN], &reply);
            assert_eq!(decode_response(RpcKind::FindValue, &bytes[21..]), Ok(reply));
        }
    }

    #[test]
    fn encoded_len_matches_the_encoder_at_every_boundary() {
        let ints = [
            0i64,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            4_294_967_295,
            4_294_967_296,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            -2_147_483_648,
            -2_147_483_649,
            i64::MIN,
            i64::MAX,
        ];
        let mut values: Vec<Value> = ints.iter().map(|i| Value::Int(*i)).collect();
        values.push(Value::UInt(u64::MAX));
        for n in [0, 31, 32, 255, 256, 65_535, 65_536] {
            values.push(Value::Str("x".repeat(n)));
            values.push(Value::Bytes(vec![0; n]));
            values.push(Value::List(vec![Value::Nil; n]));
            values.push(Value::Map(vec![(Value::Nil, Value::Nil); n]));
        }
        for v in values {
            assert_eq!(encode_value(&v).len(), v.encoded_len(), "{:?}", v.depth());
        }
    }

    #[test]
    fn hostile_containers_are_rejected() {
        // Nesting one level past the limit.
        let mut too_deep = vec![0x91; MAX_VALUE_DEPTH + 1];
        too_deep.push(0xc0);
        assert_eq!(
            decode_value(&too_deep),
            Err(WireError::Malformed("value nested too deeply"))
        );
        assert!(decode_value(&too_deep[1..]).is_ok());
        // A datagram of nothing but array headers: refused at the depth
        // limit, not by exhausting the stack.
        assert!(decode_value(&[0x91; 60_000]).is_err());
        // Arrays and maps claiming 2^32-1 entries, with a few bytes behind.
        for header in [
            [0xdd, 0xff, 0xff, 0xff, 0xff],
            [0xdf, 0xff, 0xff, 0xff, 0xff],
        ] {
            let mut data = header.to_vec();
            data.extend([0xc0; 8]);
            assert!(decode_value(&data).is_err());
        }
        // A map claiming more entries than pairs of bytes left.
        assert!(decode_value(&[0x83, 0xc0, 0xc0, 0xc0, 0xc0]).is_err());
        // A claimed count that fits the bytes left but whose items do not.
        assert!(decode_value(&[0x9f, 0xc4, 0x10, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Every truncation of a valid nested value fails cleanly.
        let good = hex("84a46e616d65a5616c696365a47461677392a161a162a16ec0a66e657374656481a17880");
        for cut in 0..good.len() {
            assert!(decode_value(&good[..cut]).is_err(), "truncated at {cut}");
        }
        // Extension types are still not values.
        assert!(decode_value(&[0xd4, 0x01, 0x00]).is_err());
        // A map used as a map key: refused, but taken back from a data
        // directory that saved it; a list as a key is fine (a tuple in Python).
        let map_key = hex("8181a1610102");
        let refused = WireError::Malformed("a map used as a map key");
        assert_eq!(decode_value(&map_key), Err(refused.clone()));
        let saved = decode_saved_value(&map_key).unwrap();
        assert!(saved.umsgpack_refusal().is_some());
        let list_key = decode_value(&hex("8192010201")).unwrap();
        assert_eq!(list_key.umsgpack_refusal(), None);
        // ... and a find_value reply carrying one is dropped, not handed on.
        let mut reply = vec![0x81, 0xa5];
        reply.extend(b"value");
        reply.extend(&map_key);
        assert_eq!(decode_response(RpcKind::FindValue, &reply), Err(refused));
        // A find_value reply whose unknown field holds a container is skipped whole.
        let mut reply = vec![0x82, 0xa5];
        reply.extend(b"value");
        reply.push(0x01);
        reply.extend([0xa5]);
        reply.extend(b"extra");
        reply.extend([0x92, 0x01, 0x02]);
        assert_eq!(
            decode_response(RpcKind::FindValue, &reply),
            Ok(Response::Value {
                value: Value::Int(1),
                ttl_secs: None
            })
        );
    }

    /// A STORE body `[ "store", [id(1), id(2), <raw>] ]` around `raw`.
    fn store_body(raw: &[u8]) -> Vec<u8> {
        let mut body = hex("92a573746f726593c414");
        body.extend([1; ID_LEN]);
        body.extend([0xc4, 0x14]);
        body.extend([2; ID_LEN]);
        body.extend(raw);
        body
    }

    #[test]
    fn stores_of_values_kadmium_cannot_hold_still_decode() {
        let mut too_deep = vec![0x91; MAX_VALUE_DEPTH + 1];
        too_deep.push(0xc0);
        // Far deeper than any stack: skipped by counting, not recursion.
        let mut very_deep = vec![0x91; 60_000];
        very_deep.push(0xc0);
        let ext = "extension type is not a value";
        let map_key = "a map used as a map key";
        let repeated = "a map key repeated (as Python compares keys)";
        let cases: [(&str, Vec<u8>, &str); 14] = [
            // umsgpack 2.8.0's packb(datetime(2026, 1, 1, tzinfo=utc)):
            // the timestamp extension (-1), 32-bit form.
            ("timestamp", hex("d6ff6955b900"), ext),
            ("fixext1", vec![0xd4, 0x05, 0x00], ext),
            ("fixext16", [&[0xd8, 0x05][..], &[9; 16]].concat(), ext),
            ("ext8", vec![0xc7, 0x03, 0x01, 1, 2, 3], ext),
            ("ext32, empty", vec![0xc9, 0, 0, 0, 0, 0x01], ext),
            (
                "ext in a map in a list",
                hex("9201" /* [1, {"k": ext}] */)
                    .into_iter()
                    .chain(hex("81a16bd50100ff"))
                    .collect(),
                ext,
            ),
            ("str, not utf-8", vec![0xa2, 0xff, 0xfe], "bad utf-8"),
            ("too deep", too_deep, "value nested too deeply"),
            ("very deep", very_deep, "value nested too deeply"),
            // {{"a": 1}: 2}, {[{"a": 1}]: 2} and [{{}: 1}]: Python cannot
            // hash a dict, so neither umsgpack nor a Python caller can take them.
            ("map as a map key", hex("8181a1610102"), map_key),
            ("map in a list as a map key", hex("819181a1610102"), map_key),
            ("deeper down", hex("91818001"), map_key),
            // {1: 1, 1: 2} and {1: 1, True: 2}: umsgpack's DuplicateKeyException.
            ("repeated key", hex("8201010102"), repeated),
            ("1 and True", hex("820101c302"), repeated),
        ];
        for (name, raw, reason) in cases {
            let body = store_body(&raw);
            let expected = Request::StoreRejected {
                sender: id(1),
                key: id(2),
                value: RejectedValue {
                    reason,
                    raw: raw.clone(),
                },
            };
            let request = decode_request(&body);
            assert_eq!(request.as_ref(), Ok(&expected), "{name}");
            assert_eq!(expected.kind(), RpcKind::Store);
            assert_eq!(expected.sender(), Some(id(1)));
            // Re-encodes to the bytes it came from.
            assert_eq!(
                &encode_request(&[0; MSG_ID_LEN], &expected)[21..],
                &body[..]
            );
        }
    }

    #[test]
    fn stores_that_are_not_msgpack_are_still_dropped() {
        let mut deep_and_cut = vec![0x91; 60_000];
        deep_and_cut.push(0x92);
        for (name, raw) in [
            ("ext cut short", vec![0xd4, 0x05]),
            (
                "ext32 claiming 4 GiB",
                vec![0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                "ext8 claiming more than is left",
                vec![0xc7, 0x09, 0x01, 1, 2],
            ),
            ("reserved marker", vec![0xc1]),
            (
                "array claiming 2^32-1 items",
                vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
            ),
            (
                "map claiming more than is left",
                vec![0x83, 0xd4, 1, 0, 0xc0],
            ),
            ("bad utf-8, then cut", vec![0xa3, 0xff, 0xfe]),
            ("deep, then cut", deep_and_cut),
            ("nothing", vec![]),
        ] {
            assert!(decode_request(&store_body(&raw)).is_err(), "{name}");
        }
        // Trailing bytes after a rejected value.
        assert!(decode_request(&store_body(&[0xd4, 0x05, 0x00, 0xc0])).is_err());
        // Every truncation of a rejected STORE is an error, not a rejection.
        let body = store_body(&hex("9201d50100ff"));
        for cut in 0..body.len() {
            assert!(decode_request(&body[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn default_value_limit_fills_an_rpcudp_request_exactly() {
        use crate::config::DEFAULT_MAX_VALUE_SIZE;
        // The largest value a Python peer can still store or cache is the one
        // whose STORE body is exactly rpcudp's limit; one byte more and it
        // raises MalformedMessage instead of sending.
        let body_len = |value: Value| {
            encode_request(
                &[0; MSG_ID_LEN],
                &Request::Store {
                    sender: id(1),
                    key: id(2),
                    value,
                },
            )
            .len()
                - 1
                - MSG_ID_LEN
        };
        for make in [
            |n: usize| Value::Bytes(vec![7; n]),
            |n: usize| Value::Str("s".repeat(n)),
        ] {
            let at_limit = make(DEFAULT_MAX_VALUE_SIZE);
            assert_eq!(at_limit.size(), DEFAULT_MAX_VALUE_SIZE);
            assert_eq!(body_len(at_limit), RPCUDP_MAX_REQUEST_BODY);
            assert_eq!(
                body_len(make(DEFAULT_MAX_VALUE_SIZE + 1)),
                RPCUDP_MAX_REQUEST_BODY + 1
            );
        }
        // Any value within the limit fits, whatever its shape: sizes of
        // containers are their encoded length, scalars encode in at most
        // 3 header bytes more than their size.
        for v in [
            Value::Int(i64::MIN),
            Value::Float(1.0),
            Value::Nil,
            Value::List(vec![Value::Nil; DEFAULT_MAX_VALUE_SIZE - 3]),
            Value::Map(vec![(s("k"), Value::Bytes(vec![0; 8000]))]),
        ] {
            assert!(v.size() <= DEFAULT_MAX_VALUE_SIZE);
            assert!(body_len(v) <= RPCUDP_MAX_REQUEST_BODY);
        }
    }

    #[test]
    fn every_byte_string_decodes_or_errors() {
        // Cheap deterministic fuzz: no input may panic.
        let mut state = 0x1234_5678_u64;
        for len in 0..200 {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (state >> 56) as u8
                    })
                    .collect();
                let _ = decode_request(&data);
                for kind in [
                    RpcKind::Ping,
                    RpcKind::Store,
                    RpcKind::FindNode,
                    RpcKind::FindValue,
                    RpcKind::Stun,
                ] {
                    let _ = decode_response(kind, &data);
                }
            }
        }
    }

    #[test]
    fn values_round_trip_alone() {
        for value in [
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(0),
            Value::UInt(u64::MAX),
            Value::Float(-0.5),
            Value::Bool(true),
            Value::Str("héllo".into()),
            Value::Bytes(vec![0; 70_000]),
        ] {
            assert_eq!(decode_value(&encode_value(&value)), Ok(value));
        }
        let mut trailing = encode_value(&Value::Int(1));
        trailing.push(0);
        assert!(decode_value(&trailing).is_err());
        assert!(decode_value(&[]).is_err());
        assert_eq!(
            decode_value(&[0x91, 0x01]),
            Ok(Value::List(vec![Value::Int(1)])),
            "lists are values too"
        );
    }

    #[test]
    fn ttl_travels_in_kadmium_ids_only() {
        assert!(!is_kadmium_id(&[0u8; 20]));
        assert_eq!(ttl_from_id(&[0u8; 20]), None);
        let id = kadmium_id(3600, [7; 12]);
        assert!(is_kadmium_id(&id));
        assert_eq!(ttl_from_id(&id), Some(3600));
        assert_eq!(ttl_from_id(&kadmium_id(0, [7; 12])), None);
        assert_eq!(flags_from_id(&id), 0, "kadmium_id sets no flags");
        assert_eq!(&id[9..], &[7; 11]);
        let cached = kadmium_id_flagged(60, FLAG_CACHED, [1; 11]);
        assert_eq!(
            (ttl_from_id(&cached), flags_from_id(&cached)),
            (Some(60), FLAG_CACHED)
        );
        let mut foreign = cached;
        foreign[0] = b'X';
        assert_eq!(flags_from_id(&foreign), 0, "only kadmium ids carry flags");
    }
}
