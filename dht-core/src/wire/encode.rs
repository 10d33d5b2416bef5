//! Encoding: requests, responses and values into rpcudp datagrams and
//! msgpack, byte-identical to what `umsgpack` writes.

use super::{MsgId, Request, Response, MSG_ID_LEN, REQUEST, RESPONSE};
use crate::id::{NodeId, ID_LEN};
use crate::value::Value;

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
