//! Decoding: datagram bodies and values back into requests, responses and
//! `Value`s, read with [`Reader`] (which checks every length and bounds
//! nesting).

use std::net::SocketAddr;

use super::compact;
use super::reader::{parse_ip, usable_contact, Item, Reader};
use super::trailers::{parse_trailers, NodesList, Trailers};
use super::{Request, Response, RpcKind, WireError, MAX_CONTACTS_PER_REPLY};
use crate::contact::Contact;
use crate::value::Value;

/// The inverse of [`encode_value`](super::encode_value): exactly one value, no trailing bytes.
pub fn decode_value(bytes: &[u8]) -> Result<Value, WireError> {
    let mut r = Reader::new(bytes);
    let value = r.value()?;
    r.end()?;
    Ok(value)
}

/// [`decode_value`] that also takes what a Python peer cannot unpack: for values a
/// data directory kept from builds that stored them (the store drops them
/// as it loads, rather than refuse to open).
pub fn decode_saved_value(bytes: &[u8]) -> Result<Value, WireError> {
    let mut r = Reader::new(bytes);
    r.python_rules = false;
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
        ("store", 3) => {
            let (sender, key) = (r.id()?, r.id()?);
            match r.store_value()? {
                Ok(value) => Request::Store { sender, key, value },
                Err(value) => Request::StoreRejected { sender, key, value },
            }
        }
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

/// A response body, with or without trailers (which are checked, then
/// dropped; see [`decode_response_with_trailers`]).
pub fn decode_response(kind: RpcKind, body: &[u8]) -> Result<Response, WireError> {
    decode_response_with_trailers(kind, body).map(|(response, _)| response)
}

/// A response body and what its trailers say, where a kadmium responder
/// appended them (see [`super::trailers`]). Bytes after the body that are
/// not the trailers in order make the response malformed.
pub fn decode_response_with_trailers(
    kind: RpcKind,
    body: &[u8],
) -> Result<(Response, Trailers), WireError> {
    let mut r = Reader::new(body);
    let response = match kind {
        RpcKind::Ping => Response::Ping(r.id()?),
        RpcKind::Store => match r.item()? {
            Item::Bool(b) => Response::Store(b),
            // Anything but False/None counts as stored, as Python's truthiness would.
            Item::Nil => Response::Store(false),
            Item::Ext => return Err(WireError::Malformed("bad store reply")),
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
                        _ => r.skip()?, // a field of a later version: skip it
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
            let ip = parse_ip(r.str_bytes()?).ok_or(WireError::Malformed("bad stun ip"))?;
            Response::Stun(SocketAddr::new(ip, r.port()?))
        }
    };
    let (trailers, nodes) = parse_trailers(r.buf)?;
    let response = match (nodes, response) {
        (None, response) => response,
        (Some(NodesList::Msgpack(list)), Response::Store(stored)) => {
            let mut r = Reader::new(list);
            let contacts = read_contacts(&mut r, None)?;
            if !r.buf.is_empty() {
                return Err(WireError::Malformed("trailing bytes after nodes trailer"));
            }
            Response::StoreWithNodes(stored, contacts)
        }
        (Some(NodesList::Compact(list)), Response::Store(stored)) => {
            Response::StoreWithNodes(stored, compact::read_contacts(list)?)
        }
        // A FIND answer in the compact form (`trailers::wants_compact_list`).
        (Some(NodesList::Compact(list)), Response::Nodes(body)) if body.is_empty() => {
            Response::Nodes(compact::read_contacts(list)?)
        }
        (Some(_), _) => return Err(WireError::Malformed("nodes trailer on this answer")),
    };
    Ok((response, trailers))
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
        let contact = match r.usual_contact() {
            Some((id, ip, port)) => usable_contact(id, ip, port),
            None => r.any_contact()?,
        };
        out.extend(contact);
    }
    Ok(out)
}
