//! Encoding: requests, responses and values into rpcudp datagrams and
//! msgpack, byte-identical to what `umsgpack` writes.

use std::net::SocketAddr;

use super::{MsgId, Request, Response, MSG_ID_LEN, REQUEST, RESPONSE};
use crate::contact::Contact;
use crate::id::{NodeId, ID_LEN};
use crate::value::Value;

pub fn encode_request(id: &MsgId, request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request_into(&mut out, id, request);
    out
}

/// [`encode_request`] into `out`, replacing what it held: a buffer of an
/// earlier datagram is reused instead of a fresh one allocated.
pub fn encode_request_into(out: &mut Vec<u8>, id: &MsgId, request: &Request) {
    out.clear();
    // Most requests fit: one allocation for a fresh buffer, not a doubling
    // from 8 bytes up.
    out.reserve(96);
    out.push(REQUEST);
    out.extend_from_slice(id);
    // Writes to a Vec cannot fail; ignore the Infallible-like io results.
    let w = out;
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
        Request::StoreRejected { sender, key, value } => {
            let _ = rmp::encode::write_array_len(w, 3);
            write_id(w, sender);
            write_id(w, key);
            w.extend_from_slice(&value.raw);
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
}

pub fn encode_response(id: &MsgId, response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response_into(&mut out, id, response);
    out
}

/// [`encode_response`] into `out`, replacing what it held.
fn encode_response_into(out: &mut Vec<u8>, id: &MsgId, response: &Response) {
    out.clear();
    // A list of k contacts takes ~40 bytes each: sized once, not grown by
    // doubling in the loop.
    out.reserve(match response {
        Response::Nodes(contacts) | Response::StoreWithNodes(_, contacts) => {
            64 + 48 * contacts.len()
        }
        _ => 64,
    });
    out.push(RESPONSE);
    out.extend_from_slice(id);
    let w = out;
    match response {
        Response::Ping(id) => write_id(w, id),
        Response::Store(ok) | Response::StoreWithNodes(ok, _) => {
            let _ = rmp::encode::write_bool(w, *ok);
        }
        Response::Nodes(contacts) => write_contacts(w, contacts),
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
            write_ip(w, &addr.ip());
            let _ = rmp::encode::write_uint(w, u64::from(addr.port()));
        }
    }
}

/// An address as the text Python's `kademlia` sends ("10.0.0.1", "::1").
/// IPv4, the common case, is written octet by octet from a table:
/// `to_string()` goes through the formatting machinery and a fresh `String`
/// per contact (11% of a 3,000-node simulation's CPU), and dividing each
/// octet into digits was still 3.6% of its instructions.
fn write_ip(w: &mut Vec<u8>, ip: &std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            // A fixstr marker and at most 15 characters, built on the stack
            // and appended as 16 bytes then cut: a copy of known length
            // compiles to two moves, where one of the text's length went
            // through `memcpy`.
            let mut text = [0u8; 16];
            let mut len = 1;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let (digits, n) = OCTET_TEXT[usize::from(octet)];
                text[len..len + 3].copy_from_slice(&digits);
                len += usize::from(n);
            }
            text[0] = 0xa0 | (len - 1) as u8; // fixstr: fewer than 32 bytes
            let start = w.len();
            w.extend_from_slice(&text);
            w.truncate(start + len);
        }
        std::net::IpAddr::V6(_) => {
            let _ = rmp::encode::write_str(w, &ip.to_string());
        }
    }
}

/// Every octet's decimal digits (padded to 3 with zeros the next write
/// overwrites or `len` leaves out) and how many there are.
const OCTET_TEXT: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let n = i as u8;
        table[i] = if n >= 100 {
            ([b'0' + n / 100, b'0' + n / 10 % 10, b'0' + n % 10], 3)
        } else if n >= 10 {
            ([b'0' + n / 10, b'0' + n % 10, 0], 2)
        } else {
            ([b'0' + n, 0, 0], 1)
        };
        i += 1;
    }
    table
};

/// The answer of `responder` to request `id` from `requester`: the
/// response, followed by the trailers when the requester is a kadmium node
/// (its id carries kadmium's tag): the observed address, and our id where
/// the request asked for it. What other peers receive is unchanged.
pub fn encode_reply(
    id: &MsgId,
    response: &Response,
    requester: SocketAddr,
    responder: &NodeId,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_reply_into(&mut out, id, response, requester, responder);
    out
}

/// [`encode_reply`] into `out`, replacing what it held.
pub fn encode_reply_into(
    out: &mut Vec<u8>,
    id: &MsgId,
    response: &Response,
    requester: SocketAddr,
    responder: &NodeId,
) {
    let observed = super::observed_for(id, requester);
    // A kadmium requester's FIND answer may take its contacts compact, in
    // the nodes trailer (which only follows the observed address), with an
    // empty list for the body.
    let compact_list = match response {
        Response::Nodes(contacts) if observed.is_some() && super::wants_compact_list(id) => {
            Some(contacts)
        }
        _ => None,
    };
    if compact_list.is_some() {
        encode_response_into(out, id, &Response::Nodes(Vec::new()));
    } else {
        encode_response_into(out, id, response);
    }
    if let Some(observed) = observed {
        super::append_observed(out, &observed);
        // Only with the responder id after it (`wants_closer_nodes`).
        if let (Response::StoreWithNodes(_, contacts), true) =
            (response, super::wants_responder(id))
        {
            if super::wants_compact_nodes(id) {
                out.extend_from_slice(&super::COMPACT_NODES_TAG);
                super::compact::write_contacts(out, contacts);
            } else {
                out.extend_from_slice(&super::NODES_TAG);
                write_contacts(out, contacts);
            }
        }
        if let Some(contacts) = compact_list {
            out.extend_from_slice(&super::COMPACT_NODES_TAG);
            super::compact::write_contacts(out, contacts);
        }
        if super::wants_responder(id) {
            super::append_responder(out, responder);
        }
    }
}

/// A contact list as rpcudp's `find_node` answers carry it: `[[id, ip, port], ...]`.
fn write_contacts(w: &mut Vec<u8>, contacts: &[Contact]) {
    let _ = rmp::encode::write_array_len(w, contacts.len() as u32);
    for c in contacts {
        let _ = rmp::encode::write_array_len(w, 3);
        write_id(w, &c.id);
        write_ip(w, &c.addr.ip());
        let _ = rmp::encode::write_uint(w, u64::from(c.addr.port()));
    }
}

/// A 20-byte bin 8, as `rmp::encode::write_bin` writes it, appended as one
/// copy of known length: every contact of every answer carries one, and
/// through `write_bin` it took a call and a `memcpy` each time.
fn write_id(w: &mut Vec<u8>, id: &NodeId) {
    let mut bin = [0u8; 2 + ID_LEN];
    bin[0] = 0xc4;
    bin[1] = ID_LEN as u8;
    bin[2..].copy_from_slice(id.as_bytes());
    w.extend_from_slice(&bin);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_written_as_rmp_writes_them() {
        let id = NodeId([0xab; ID_LEN]);
        let (mut ours, mut theirs) = (vec![7], vec![7]);
        write_id(&mut ours, &id);
        rmp::encode::write_bin(&mut theirs, id.as_bytes()).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn ip_text_matches_display() {
        let mut ips: Vec<std::net::IpAddr> = (0..=255u8)
            .map(|n| [n, 255 - n, n / 2, n.wrapping_mul(7)])
            .chain([
                [0, 0, 0, 0],
                [255, 255, 255, 255],
                [10, 0, 9, 10],
                [99, 100, 101, 199],
                [200, 1, 20, 250],
            ])
            .map(std::net::IpAddr::from)
            .collect();
        ips.push("2001:db8::1".parse().unwrap());
        for ip in ips {
            let mut w = Vec::new();
            write_ip(&mut w, &ip);
            let mut expected = Vec::new();
            rmp::encode::write_str(&mut expected, &ip.to_string()).unwrap();
            assert_eq!(w, expected, "{ip}");
        }
    }
}
