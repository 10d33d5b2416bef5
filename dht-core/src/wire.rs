//! The rpcudp 5.0.1 wire format: one datagram is `kind(1) || msg_id(20) || msgpack(body)`.
//!
//! Requests carry `[name, [args...]]`; responses carry the bare return value, so
//! a response can only be decoded knowing which RPC it answers ([`RpcKind`]).
//! Decoding never trusts a declared length: every length is checked against the
//! bytes actually left before anything is allocated.

use std::net::{IpAddr, SocketAddr};

use rmp::Marker;

use crate::contact::Contact;
use crate::id::{NodeId, ID_LEN};
use crate::value::{Value, MAX_VALUE_DEPTH};

pub const REQUEST: u8 = 0x00;
pub const RESPONSE: u8 = 0x01;
pub const MSG_ID_LEN: usize = 20;
/// Smallest datagram rpcudp accepts (kind, id, one byte of body).
pub const MIN_DATAGRAM: usize = 1 + MSG_ID_LEN + 1;
/// Most contacts decoded from one `find_node` reply; more is hostile.
pub const MAX_CONTACTS_PER_REPLY: usize = 256;
/// Largest request body (`msgpack([name, args])`, without kind and id) that
/// rpcudp 5.0.1 sends: its callers raise `MalformedMessage` above this, so a
/// Python peer cannot store or cache a value whose STORE would exceed it.
pub const RPCUDP_MAX_REQUEST_BODY: usize = 8192;

/// Kadmium's message ids are `KADMIUM_TAG (4) | ttl_secs (u32 BE) | random (12)`.
///
/// rpcudp treats the 20-byte id as opaque and only echoes it, so this is how a
/// STORE carries its expiry to kadmium peers without changing the request
/// that Python peers parse (`store(nodeid, key, value)`, exactly 3 arguments:
/// a 4th would make them drop it). 96 random bits still keep ids unique.
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
            Request::Store { .. } => RpcKind::Store,
            Request::FindNode { .. } => RpcKind::FindNode,
            Request::FindValue { .. } => RpcKind::FindValue,
            Request::Stun => RpcKind::Stun,
        }
    }

    pub fn sender(&self) -> Option<NodeId> {
        match self {
            Request::Ping { sender }
            | Request::Store { sender, .. }
            | Request::FindNode { sender, .. }
            | Request::FindValue { sender, .. } => Some(*sender),
            Request::Stun => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ping(NodeId),
    Store(bool),
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

// ---------------------------------------------------------------- encoding

pub fn encode_request(id: &MsgId, request: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.push(REQUEST);
    out.extend_from_slice(id);
    // Writes to a Vec cannot fail; ignore the Infallible-like io results.
    let w = &mut out;
    let _ = rmp::encode::write_array_len(w, 2);
    let _ = rmp::encode::write_str(w, request.kind().name());
    match request {
        Request::Ping { sender } => {
            let _ = rmp::encode::write_array_len(w, 1);
            write_id(w, sender);
        }
        Request::Store { sender, key, value } => {
            let _ = rmp::encode::write_array_len(w, 3);
            write_id(w, sender);
            write_id(w, key);
            write_value(w, value);
        }
        Request::FindNode {
            sender,
            target: key,
        }
        | Request::FindValue { sender, key } => {
            let _ = rmp::encode::write_array_len(w, 2);
            write_id(w, sender);
            write_id(w, key);
        }
        Request::Stun => {
            let _ = rmp::encode::write_array_len(w, 0);
        }
    }
    out
}

pub fn encode_response(id: &MsgId, response: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(RESPONSE);
    out.extend_from_slice(id);
    let w = &mut out;
    match response {
        Response::Ping(id) => write_id(w, id),
        Response::Store(ok) => {
            let _ = rmp::encode::write_bool(w, *ok);
        }
        Response::Nodes(contacts) => {
            let _ = rmp::encode::write_array_len(w, contacts.len() as u32);
            for c in contacts {
                let _ = rmp::encode::write_array_len(w, 3);
                write_id(w, &c.id);
                let _ = rmp::encode::write_str(w, &c.addr.ip().to_string());
                let _ = rmp::encode::write_uint(w, u64::from(c.addr.port()));
            }
        }
        Response::Value { value, ttl_secs } => {
            let _ = rmp::encode::write_map_len(w, if ttl_secs.is_some() { 2 } else { 1 });
            let _ = rmp::encode::write_str(w, "value");
            write_value(w, value);
            if let Some(ttl) = ttl_secs {
                let _ = rmp::encode::write_str(w, "ttl");
                let _ = rmp::encode::write_uint(w, *ttl);
            }
        }
        Response::Stun(addr) => {
            let _ = rmp::encode::write_array_len(w, 2);
            let _ = rmp::encode::write_str(w, &addr.ip().to_string());
            let _ = rmp::encode::write_uint(w, u64::from(addr.port()));
        }
    }
    out
}

fn write_id(w: &mut Vec<u8>, id: &NodeId) {
    let _ = rmp::encode::write_bin(w, id.as_bytes());
}

/// The msgpack encoding of one value, as it travels inside STORE and
/// `find_value` replies.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.encoded_len());
    write_value(&mut out, value);
    out
}

fn write_value(w: &mut Vec<u8>, v: &Value) {
    // Writing to a Vec cannot fail.
    match v {
        Value::Nil => {
            let _ = rmp::encode::write_nil(w);
        }
        Value::List(items) => {
            let _ = rmp::encode::write_array_len(w, len_u32(items.len()));
            for item in items {
                write_value(w, item);
            }
        }
        Value::Map(entries) => {
            let _ = rmp::encode::write_map_len(w, len_u32(entries.len()));
            for (k, item) in entries {
                write_value(w, k);
                write_value(w, item);
            }
        }
        Value::Int(i) => {
            let _ = rmp::encode::write_sint(w, *i);
        }
        Value::UInt(u) => {
            let _ = rmp::encode::write_uint(w, *u);
        }
        Value::Float(f) => {
            let _ = rmp::encode::write_f64(w, *f);
        }
        Value::Bool(b) => {
            let _ = rmp::encode::write_bool(w, *b);
        }
        Value::Str(s) => {
            let _ = rmp::encode::write_str(w, s);
        }
        Value::Bytes(b) => {
            let _ = rmp::encode::write_bin(w, b);
        }
    }
}

/// msgpack lengths are 32-bit; a longer container cannot be sent anyway (it
/// would not fit a datagram), and `put` refuses it by size first.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Encoded size of `value` inside a STORE, to check it fits a datagram.
pub fn encoded_store_len(value: &Value) -> usize {
    let mut buf = Vec::new();
    write_value(&mut buf, value);
    // kind + id + [name, [sender, key, value, ttl]] framing.
    1 + MSG_ID_LEN + 1 + 6 + 1 + 2 * (2 + ID_LEN) + buf.len() + 9
}

// ---------------------------------------------------------------- decoding

/// A bounds-checked msgpack reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
}

/// One decoded msgpack item of the shapes this protocol uses. Containers are
/// returned as lengths; the caller reads their items.
enum Item<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
}

const MALFORMED: WireError = WireError::Malformed("invalid msgpack");

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Malformed("length past end of datagram"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn be(&mut self, n: usize) -> Result<u64, WireError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, WireError> {
        usize::try_from(self.be(n)?).map_err(|_| MALFORMED)
    }

    /// A container may not claim more items than bytes remain (each item takes
    /// at least one byte), which bounds every allocation by the datagram size.
    fn container(&self, n: usize) -> Result<usize, WireError> {
        if n > self.buf.len() {
            return Err(WireError::Malformed("container longer than datagram"));
        }
        Ok(n)
    }

    fn item(&mut self) -> Result<Item<'a>, WireError> {
        let byte = self.take(1)?[0];
        Ok(match Marker::from_u8(byte) {
            Marker::Null => Item::Nil,
            Marker::True => Item::Bool(true),
            Marker::False => Item::Bool(false),
            Marker::FixPos(v) => Item::Int(i64::from(v)),
            Marker::FixNeg(v) => Item::Int(i64::from(v)),
            Marker::U8 => Item::Int(self.be(1)? as i64),
            Marker::U16 => Item::Int(self.be(2)? as i64),
            Marker::U32 => Item::Int(self.be(4)? as i64),
            Marker::U64 => {
                let v = self.be(8)?;
                i64::try_from(v).map(Item::Int).unwrap_or(Item::UInt(v))
            }
            Marker::I8 => Item::Int(i64::from(self.be(1)? as u8 as i8)),
            Marker::I16 => Item::Int(i64::from(self.be(2)? as u16 as i16)),
            Marker::I32 => Item::Int(i64::from(self.be(4)? as u32 as i32)),
            Marker::I64 => Item::Int(self.be(8)? as i64),
            Marker::F32 => Item::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => Item::Float(f64::from_bits(self.be(8)?)),
            Marker::FixStr(n) => Item::Str(self.take(usize::from(n))?),
            Marker::Str8 => {
                let n = self.len(1)?;
                Item::Str(self.take(n)?)
            }
            Marker::Str16 => {
                let n = self.len(2)?;
                Item::Str(self.take(n)?)
            }
            Marker::Str32 => {
                let n = self.len(4)?;
                Item::Str(self.take(n)?)
            }
            Marker::Bin8 => {
                let n = self.len(1)?;
                Item::Bin(self.take(n)?)
            }
            Marker::Bin16 => {
                let n = self.len(2)?;
                Item::Bin(self.take(n)?)
            }
            Marker::Bin32 => {
                let n = self.len(4)?;
                Item::Bin(self.take(n)?)
            }
            Marker::FixArray(n) => Item::Array(self.container(usize::from(n))?),
            Marker::Array16 => {
                let n = self.len(2)?;
                Item::Array(self.container(n)?)
            }
            Marker::Array32 => {
                let n = self.len(4)?;
                Item::Array(self.container(n)?)
            }
            Marker::FixMap(n) => Item::Map(self.container(usize::from(n))?),
            Marker::Map16 => {
                let n = self.len(2)?;
                Item::Map(self.container(n)?)
            }
            Marker::Map32 => {
                let n = self.len(4)?;
                Item::Map(self.container(n)?)
            }
            // Extension types and the reserved marker never appear in this protocol.
            _ => return Err(WireError::Malformed("unsupported msgpack type")),
        })
    }

    fn array(&mut self) -> Result<usize, WireError> {
        match self.item()? {
            Item::Array(n) => Ok(n),
            _ => Err(WireError::Malformed("expected an array")),
        }
    }

    fn id(&mut self) -> Result<NodeId, WireError> {
        match self.item()? {
            Item::Bin(b) => NodeId::from_slice(b).ok_or(WireError::Malformed("id is not 20 bytes")),
            _ => Err(WireError::Malformed("expected a 20-byte id")),
        }
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        match self.item()? {
            Item::Str(s) => std::str::from_utf8(s).map_err(|_| WireError::Malformed("bad utf-8")),
            _ => Err(WireError::Malformed("expected a string")),
        }
    }

    fn value(&mut self) -> Result<Value, WireError> {
        self.value_at(0)
    }

    /// One value nested `depth` containers deep. Containers are filled by
    /// pushing what was actually decoded (never pre-sized from a claimed
    /// count), and each entry consumes input, so memory stays proportional
    /// to the datagram.
    fn value_at(&mut self, depth: usize) -> Result<Value, WireError> {
        Ok(match self.item()? {
            Item::Nil => Value::Nil,
            Item::Array(_) | Item::Map(_) if depth >= MAX_VALUE_DEPTH => {
                return Err(WireError::Malformed("value nested too deeply"));
            }
            Item::Array(n) => {
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.value_at(depth + 1)?);
                }
                Value::List(items)
            }
            Item::Map(n) => {
                // Each entry takes at least two bytes.
                if n > self.buf.len() / 2 {
                    return Err(WireError::Malformed("container longer than datagram"));
                }
                let mut entries = Vec::new();
                for _ in 0..n {
                    let key = self.value_at(depth + 1)?;
                    entries.push((key, self.value_at(depth + 1)?));
                }
                Value::Map(entries)
            }
            Item::Bool(b) => Value::Bool(b),
            Item::Int(i) => Value::Int(i),
            Item::UInt(u) => Value::UInt(u),
            Item::Float(f) => Value::Float(f),
            Item::Str(s) => Value::Str(
                String::from_utf8(s.to_vec()).map_err(|_| WireError::Malformed("bad utf-8"))?,
            ),
            Item::Bin(b) => Value::Bytes(b.to_vec()),
        })
    }

    fn uint(&mut self) -> Result<u64, WireError> {
        match self.item()? {
            Item::Int(t) if t >= 0 => Ok(t as u64),
            Item::UInt(t) => Ok(t),
            _ => Err(WireError::Malformed("expected an unsigned integer")),
        }
    }

    fn port(&mut self) -> Result<u16, WireError> {
        match self.item()? {
            Item::Int(p) => u16::try_from(p).map_err(|_| WireError::Malformed("bad port")),
            _ => Err(WireError::Malformed("expected a port")),
        }
    }

    fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed("trailing bytes"))
        }
    }
}

/// The inverse of [`encode_value`]: exactly one value, no trailing bytes.
pub fn decode_value(bytes: &[u8]) -> Result<Value, WireError> {
    let mut r = Reader::new(bytes);
    let value = r.value()?;
    r.end()?;
    Ok(value)
}

pub fn decode_request(body: &[u8]) -> Result<Request, WireError> {
    let mut r = Reader::new(body);
    if r.array()? != 2 {
        return Err(WireError::Malformed("request is not [name, args]"));
    }
    let name = r.str()?;
    let argc = r.array()?;
    let request = match (name, argc) {
        ("ping", 1) => Request::Ping { sender: r.id()? },
        ("store", 3) => Request::Store {
            sender: r.id()?,
            key: r.id()?,
            value: r.value()?,
        },
        ("find_node", 2) => Request::FindNode {
            sender: r.id()?,
            target: r.id()?,
        },
        ("find_value", 2) => Request::FindValue {
            sender: r.id()?,
            key: r.id()?,
        },
        ("stun", 0) => Request::Stun,
        ("ping" | "store" | "find_node" | "find_value" | "stun", _) => {
            return Err(WireError::Malformed("wrong number of arguments"))
        }
        (other, _) => return Err(WireError::UnknownRpc(other.chars().take(32).collect())),
    };
    r.end()?;
    Ok(request)
}

pub fn decode_response(kind: RpcKind, body: &[u8]) -> Result<Response, WireError> {
    let mut r = Reader::new(body);
    let response = match kind {
        RpcKind::Ping => Response::Ping(r.id()?),
        RpcKind::Store => match r.item()? {
            Item::Bool(b) => Response::Store(b),
            // Anything but False/None counts as stored, as Python's truthiness would.
            Item::Nil => Response::Store(false),
            _ => Response::Store(true),
        },
        RpcKind::FindNode => Response::Nodes(read_contacts(&mut r, None)?),
        RpcKind::FindValue => match r.item()? {
            Item::Map(n @ 1..=4) => {
                let (mut value, mut ttl_secs) = (None, None);
                for _ in 0..n {
                    match r.str()? {
                        "value" => value = Some(r.value()?),
                        "ttl" => ttl_secs = r.uint().ok(),
                        _ => {
                            r.value()?; // unknown extension: skip it
                        }
                    }
                }
                let value = value.ok_or(WireError::Malformed("find_value map without 'value'"))?;
                Response::Value { value, ttl_secs }
            }
            Item::Array(n) => Response::Nodes(read_contacts(&mut r, Some(n))?),
            _ => return Err(WireError::Malformed("bad find_value reply")),
        },
        RpcKind::Stun => {
            if r.array()? != 2 {
                return Err(WireError::Malformed("bad stun reply"));
            }
            let ip = parse_ip(r.str()?).ok_or(WireError::Malformed("bad stun ip"))?;
            Response::Stun(SocketAddr::new(ip, r.port()?))
        }
    };
    r.end()?;
    Ok(response)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

fn read_contacts(r: &mut Reader<'_>, len: Option<usize>) -> Result<Vec<Contact>, WireError> {
    let n = match len {
        Some(n) => n,
        None => r.array()?,
    };
    if n > MAX_CONTACTS_PER_REPLY {
        return Err(WireError::Malformed("too many contacts"));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // Python peers send tuples of 3; tolerate nothing else.
        if r.array()? != 3 {
            return Err(WireError::Malformed("contact is not [id, ip, port]"));
        }
        let id = r.id()?;
        let ip = r.str()?;
        let port = r.port()?;
        // Hostnames (a Python node bootstrapped from "localhost") cannot be
        // resolved in a sans-IO core: skip them rather than reject the reply.
        if let (Some(ip), true) = (parse_ip(ip), port != 0) {
            out.push(Contact::new(id, SocketAddr::new(ip, port)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; ID_LEN])
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

    /// Decode a bare value the way a STORE body carries it.
    fn decode_value(bytes: &[u8]) -> Result<Value, WireError> {
        let mut r = Reader::new(bytes);
        let v = r.value()?;
        r.end()?;
        Ok(v)
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
