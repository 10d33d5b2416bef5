//! The trailers of a kadmium answer: what a kadmium responder tells a
//! kadmium requester beyond what rpcudp's format has room for.
//!
//! They ride *after* the msgpack body of a response, in this order, each
//! present or not:
//! - the observed address, `OBSERVED_TAG (4) | family (1: 4 or 6) | ip (4 or
//!   16) | port (u16 BE)`: the source address the request came from
//!   (appended to every answer to a kadmium request; see
//!   [`crate::public_address`]);
//! - the responder's id, `RESPONDER_TAG (4) | id (20)`: appended when the
//!   request's id carries [`super::FLAG_RESPONDER_ID`]. rpcudp's answers do
//!   not say who answered, except a ping's; a lookup learns its contacts from
//!   third parties, so without this it pings each one that answers to learn
//!   whether that address holds the id it was told (see
//!   `protocol/responses.rs`). The trailer answers that in the same datagram,
//!   with the same proof as the ping's answer: only whoever received the
//!   request (and its random id) can answer it.
//!
//! Between the two, on the answer to a STORE whose id carries
//! [`super::FLAG_CLOSER_NODES`] (and the responder-id flag), the nodes
//! trailer: the list a FIND_NODE for the key would get, so that the STORE
//! also serves as a lookup query. It is `COMPACT_NODES_TAG (4) | compact
//! contact list` (see `compact.rs`) where the id also carries
//! [`super::FLAG_COMPACT_NODES`], else `NODES_TAG (4) | msgpack contact
//! list`, in a FIND_NODE answer's encoding (what kadmium requesters older
//! than the compact form asked for, and responders older than it send).
//! A FIND_NODE or FIND_VALUE answer that lists contacts carries them in the
//! compact nodes trailer too, and an empty list as its body, where the
//! request's id carries [`super::FLAG_COMPACT_NODES`] and the responder-id
//! flag ([`wants_compact_list`]).
//!
//! A responder appends them only when the request's id carries kadmium's tag
//! ([`super::is_kadmium_id`]), so Python peers never receive them (their ids
//! are SHA-1 digests of random bytes: one in 2³² would start with the tag,
//! and even then `umsgpack.unpackb` reads the body and ignores what follows
//! it). Kadmium nodes older than the responder-id trailer never set the flag,
//! so they never receive a trailer they would not parse. A kadmium decoder
//! reads exactly one msgpack item as the body; the bytes left must be empty
//! or the trailers in order, anything else is still "trailing bytes".

use std::net::SocketAddr;

use super::{
    compact, flags_from_id, is_kadmium_id, MsgId, WireError, FLAG_CLOSER_NODES, FLAG_COMPACT_NODES,
    FLAG_RESPONDER_ID,
};
use crate::id::{NodeId, ID_LEN};

/// Starts the observed-address trailer; distinct from [`super::KADMIUM_TAG`]
/// so that a message id can never be mistaken for one.
pub const OBSERVED_TAG: [u8; 4] = *b"KDMa";

/// Starts the responder-id trailer; distinct from [`super::KADMIUM_TAG`] and
/// [`OBSERVED_TAG`].
pub const RESPONDER_TAG: [u8; 4] = *b"KDMi";
/// Starts the nodes trailer of a STORE answer (msgpack form); distinct from
/// the other tags.
pub const NODES_TAG: [u8; 4] = *b"KDMn";
/// Starts the nodes trailer in its compact form, on a STORE answer or a
/// FIND answer (see [`wants_compact_list`]); distinct from the other tags.
pub const COMPACT_NODES_TAG: [u8; 4] = *b"KDMc";

/// Bytes the responder-id trailer adds to a response.
pub const RESPONDER_TRAILER_LEN: usize = RESPONDER_TAG.len() + ID_LEN;

/// What the trailers of a response said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trailers {
    /// The requester's address as the responder saw it.
    pub observed: Option<SocketAddr>,
    /// The responder's own id.
    pub responder: Option<NodeId>,
}

/// Bytes the trailer for `addr` adds to a response.
pub fn observed_len(addr: &SocketAddr) -> usize {
    let ip_len = if addr.is_ipv4() { 4 } else { 16 };
    OBSERVED_TAG.len() + 1 + ip_len + 2
}

/// Append the trailer saying `addr` to an encoded response.
pub fn append_observed(datagram: &mut Vec<u8>, addr: &SocketAddr) {
    datagram.extend_from_slice(&OBSERVED_TAG);
    compact::write_addr(datagram, addr);
}

/// The observed address the answer to request `msg_id` from `requester` carries:
/// `Some(requester)` for a kadmium requester, `None` for any other.
pub fn observed_for(msg_id: &MsgId, requester: SocketAddr) -> Option<SocketAddr> {
    is_kadmium_id(msg_id).then_some(requester)
}

/// Whether the answer to request `msg_id` names its responder: the requester
/// asked for it (a kadmium requester that reads the trailer).
pub fn wants_responder(msg_id: &MsgId) -> bool {
    flags_from_id(msg_id) & FLAG_RESPONDER_ID != 0
}

/// Whether the answer to request `msg_id` (a STORE) lists the responder's
/// contacts closest to the key in the nodes trailer: it asks for that and
/// for the responder's id, which then ends the answer, so that the decoder
/// finds the end of the list by its tag rather than by the list's bytes.
pub fn wants_closer_nodes(msg_id: &MsgId) -> bool {
    let both = FLAG_CLOSER_NODES | FLAG_RESPONDER_ID;
    flags_from_id(msg_id) & both == both
}

/// Whether the nodes trailer of the answer to `msg_id` takes the compact
/// form: the requester asked for the trailer and for that form.
pub fn wants_compact_nodes(msg_id: &MsgId) -> bool {
    wants_closer_nodes(msg_id) && flags_from_id(msg_id) & FLAG_COMPACT_NODES != 0
}

/// Whether a FIND_NODE or FIND_VALUE answer to `msg_id` that lists contacts
/// sends them in the compact nodes trailer (its body an empty list): the
/// requester asked for the compact form and for the responder's id, which
/// ends the answer (see [`wants_closer_nodes`]).
pub fn wants_compact_list(msg_id: &MsgId) -> bool {
    let both = FLAG_COMPACT_NODES | FLAG_RESPONDER_ID;
    flags_from_id(msg_id) & both == both
}

/// Append the trailer naming `responder` to an encoded response (after the
/// observed-address trailer, if any).
pub fn append_responder(datagram: &mut Vec<u8>, responder: &NodeId) {
    datagram.extend_from_slice(&RESPONDER_TAG);
    datagram.extend_from_slice(&responder.0);
}

/// A nodes trailer's contact list, still encoded, in one of its two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NodesList<'a> {
    Msgpack(&'a [u8]),
    Compact(&'a [u8]),
}

/// The trailers in `rest`, the bytes left after a response's msgpack body,
/// and the nodes trailer's contact list, if there is one.
pub(super) fn parse_trailers(rest: &[u8]) -> Result<(Trailers, Option<NodesList<'_>>), WireError> {
    let (rest, responder) = match rest.len().checked_sub(RESPONDER_TRAILER_LEN) {
        Some(at) if rest[at..].starts_with(&RESPONDER_TAG) => {
            let mut id = [0u8; ID_LEN];
            id.copy_from_slice(&rest[at + RESPONDER_TAG.len()..]);
            (&rest[..at], Some(NodeId(id)))
        }
        _ => (rest, None),
    };
    let (observed, rest) = parse_observed(rest)?;
    if responder.is_some() && observed.is_none() {
        // No encoder writes one without the other.
        return Err(WireError::Malformed("responder trailer alone"));
    }
    let nodes = if rest.is_empty() {
        None
    } else if let Some(list) = rest.strip_prefix(&NODES_TAG) {
        Some(NodesList::Msgpack(list))
    } else if let Some(list) = rest.strip_prefix(&COMPACT_NODES_TAG) {
        Some(NodesList::Compact(list))
    } else {
        return Err(WireError::Malformed("trailing bytes"));
    };
    if nodes.is_some() && responder.is_none() {
        // See `wants_closer_nodes`.
        return Err(WireError::Malformed("nodes trailer without responder"));
    }
    let trailers = Trailers {
        observed,
        responder,
    };
    Ok((trailers, nodes))
}

/// The address at the start of `rest`, the bytes left after a response's
/// msgpack body (`None` if nothing is left), and the bytes after it.
fn parse_observed(rest: &[u8]) -> Result<(Option<SocketAddr>, &[u8]), WireError> {
    const BAD: WireError = WireError::Malformed("trailing bytes");
    if rest.is_empty() {
        return Ok((None, rest));
    }
    let Some(body) = rest.strip_prefix(&OBSERVED_TAG) else {
        return Err(BAD);
    };
    let (addr, after) = compact::read_addr(body).ok_or(BAD)?;
    if addr.port() == 0 {
        return Err(WireError::Malformed("observed port 0"));
    }
    Ok((Some(addr), after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::id::{NodeId, ID_LEN};
    use crate::value::Value;
    use crate::wire::{
        decode_response, decode_response_with_trailers, encode_reply, encode_response,
        is_store_answer, kadmium_id_flagged, split_packet, Response, RpcKind, FLAG_CLOSER_NODES,
        FLAG_COMPACT_NODES, FLAG_RESPONDER_ID, MSG_ID_LEN,
    };

    /// The responder's id in these tests.
    const ME: NodeId = NodeId([0x4d; ID_LEN]);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn replies() -> Vec<(RpcKind, Response)> {
        let c = Contact::new(NodeId([5; ID_LEN]), addr("10.0.0.5:4000"));
        vec![
            (RpcKind::Ping, Response::Ping(NodeId([9; ID_LEN]))),
            (RpcKind::Store, Response::Store(true)),
            (RpcKind::FindNode, Response::Nodes(vec![c, c])),
            (RpcKind::FindValue, Response::Nodes(vec![])),
            (
                RpcKind::FindValue,
                Response::Value {
                    value: Value::Bytes(vec![1; 300]),
                    ttl_secs: Some(60),
                },
            ),
            (RpcKind::Stun, Response::Stun(addr("10.1.2.3:4"))),
        ]
    }

    #[test]
    fn kadmium_requesters_get_the_trailers_and_decode_them() {
        for flags in [0, FLAG_RESPONDER_ID] {
            let id = kadmium_id_flagged(0, flags, [3; 11]);
            let named = flags != 0;
            for observed in [addr("203.0.113.7:4000"), addr("[2001:db8::1]:65535")] {
                for (kind, response) in replies() {
                    let bytes = encode_reply(&id, &response, observed, &ME);
                    let plain = encode_response(&id, &response);
                    let trailers_len =
                        observed_len(&observed) + if named { RESPONDER_TRAILER_LEN } else { 0 };
                    assert_eq!(bytes.len(), plain.len() + trailers_len);
                    assert_eq!(&bytes[..plain.len()], &plain[..], "body unchanged");
                    assert_eq!(&bytes[plain.len()..plain.len() + 4], &OBSERVED_TAG);
                    let body = split_packet(&bytes).expect("split").body;
                    let expected = Trailers {
                        observed: Some(observed),
                        responder: named.then_some(ME),
                    };
                    assert_eq!(
                        decode_response_with_trailers(kind, body),
                        Ok((response.clone(), expected))
                    );
                    // The plain decoder checks the trailers and drops them.
                    assert_eq!(decode_response(kind, body), Ok(response));
                }
            }
        }
    }

    #[test]
    fn a_store_asking_for_nodes_gets_them_after_the_rpcudp_body() {
        let c = Contact::new(NodeId([5; ID_LEN]), addr("10.0.0.5:4000"));
        let d = Contact::new(NodeId([6; ID_LEN]), addr("[2001:db8::6]:4001"));
        // Msgpack (older kadmium requesters) and compact: read back alike.
        for (compact, tag) in [(0, NODES_TAG), (FLAG_COMPACT_NODES, COMPACT_NODES_TAG)] {
            let id =
                kadmium_id_flagged(60, FLAG_CLOSER_NODES | FLAG_RESPONDER_ID | compact, [3; 11]);
            for observed in [addr("203.0.113.7:4000"), addr("[2001:db8::1]:65535")] {
                for (stored, nodes) in [(true, vec![c, d]), (false, vec![d]), (true, vec![])] {
                    let response = Response::StoreWithNodes(stored, nodes);
                    let bytes = encode_reply(&id, &response, observed, &ME);
                    // The rpcudp body is the bool a STORE answer carries.
                    let plain = encode_response(&id, &Response::Store(stored));
                    assert_eq!(&bytes[..plain.len()], &plain[..]);
                    let nodes_at = plain.len() + observed_len(&observed);
                    assert_eq!(&bytes[nodes_at..nodes_at + 4], &tag);
                    assert!(is_store_answer(&bytes));
                    let body = split_packet(&bytes).expect("split").body;
                    let expected = Trailers {
                        observed: Some(observed),
                        responder: Some(ME),
                    };
                    assert_eq!(
                        decode_response_with_trailers(RpcKind::Store, body),
                        Ok((response.clone(), expected))
                    );
                }
            }
        }
        // A requester without kadmium's tag gets the bool alone.
        let python_id = [0xa7; MSG_ID_LEN];
        let answer = Response::StoreWithNodes(true, vec![c]);
        assert_eq!(
            encode_reply(&python_id, &answer, addr("127.0.0.1:9"), &ME),
            encode_response(&python_id, &Response::Store(true))
        );
        // Without the responder-id flag, nor does a kadmium requester.
        let unnamed = kadmium_id_flagged(60, FLAG_CLOSER_NODES | FLAG_COMPACT_NODES, [3; 11]);
        assert!(!wants_closer_nodes(&unnamed));
        assert!(!wants_compact_nodes(&unnamed));
        let bytes = encode_reply(&unnamed, &answer, addr("127.0.0.1:9"), &ME);
        let body = split_packet(&bytes).expect("split").body;
        assert_eq!(
            decode_response(RpcKind::Store, body),
            Ok(Response::Store(true))
        );
    }

    #[test]
    fn bad_nodes_trailers_are_malformed() {
        let c = Contact::new(NodeId([5; ID_LEN]), addr("10.0.0.5:4000"));
        let flags = FLAG_CLOSER_NODES | FLAG_RESPONDER_ID;
        let id = kadmium_id_flagged(60, flags, [3; 11]);
        let observed = addr("203.0.113.7:4000");
        let good = encode_reply(
            &id,
            &Response::StoreWithNodes(true, vec![c, c]),
            observed,
            &ME,
        );
        let body = &good[1 + MSG_ID_LEN..];
        // Whole trailers only: the observed address alone, or all three
        // (the nodes never without the responder id).
        let observed_end = 1 + observed_len(&observed);
        let nodes_end = body.len() - RESPONDER_TRAILER_LEN;
        for cut in 2..body.len() {
            assert_eq!(
                decode_response_with_trailers(RpcKind::Store, &body[..cut]).is_ok(),
                cut == observed_end,
                "cut at {cut}"
            );
        }
        // Junk between the list and the responder, a list that is not one.
        let mut junk = body[..nodes_end].to_vec();
        junk.push(0xc0);
        append_responder(&mut junk, &ME);
        let mut not_a_list = body[..observed_end].to_vec();
        not_a_list.extend(NODES_TAG);
        not_a_list.push(0xc3);
        // On an answer that is not a STORE's.
        let mut on_find_node =
            encode_response(&id, &Response::Nodes(vec![c]))[1 + MSG_ID_LEN..].to_vec();
        append_observed(&mut on_find_node, &observed);
        on_find_node.extend(NODES_TAG);
        on_find_node.push(0x90);
        for (kind, bad) in [
            (RpcKind::Store, junk),
            (RpcKind::Store, not_a_list),
            (RpcKind::FindNode, on_find_node),
        ] {
            assert!(
                decode_response_with_trailers(kind, &bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_compact_nodes_trailers_are_malformed() {
        let c = Contact::new(NodeId([5; ID_LEN]), addr("10.0.0.5:4000"));
        let flags = FLAG_CLOSER_NODES | FLAG_RESPONDER_ID | FLAG_COMPACT_NODES;
        let id = kadmium_id_flagged(60, flags, [3; 11]);
        let observed = addr("203.0.113.7:4000");
        let answer = Response::StoreWithNodes(true, vec![c, c]);
        let good = encode_reply(&id, &answer, observed, &ME);
        let body = &good[1 + MSG_ID_LEN..];
        assert_eq!(
            decode_response(RpcKind::Store, body),
            Ok(answer),
            "the whole answer reads"
        );
        let observed_end = 1 + observed_len(&observed);
        for cut in 2..body.len() {
            assert_eq!(
                decode_response_with_trailers(RpcKind::Store, &body[..cut]).is_ok(),
                cut == observed_end,
                "cut at {cut}"
            );
        }
        // The list cut anywhere, the responder trailer after it: only
        // whole contacts read.
        let nodes_end = body.len() - RESPONDER_TRAILER_LEN;
        let list_start = observed_end + COMPACT_NODES_TAG.len();
        let contact_len = 1 + 4 + 2 + ID_LEN;
        for cut in list_start..nodes_end {
            let mut cut_list = body[..cut].to_vec();
            append_responder(&mut cut_list, &ME);
            let contacts = (cut - list_start) / contact_len;
            let expected = if (cut - list_start) % contact_len == 0 {
                Ok(Response::StoreWithNodes(true, vec![c; contacts]))
            } else {
                Err(WireError::Malformed("bad compact contact"))
            };
            assert_eq!(
                decode_response(RpcKind::Store, &cut_list),
                expected,
                "cut at {cut}"
            );
        }
        // A stray byte after the list (read as a contact of family 0xc0).
        let mut junk = body[..nodes_end].to_vec();
        junk.push(0xc0);
        append_responder(&mut junk, &ME);
        // On a FIND_NODE answer whose body lists contacts too, and on a
        // ping's answer.
        let with_trailer = |response: &Response| {
            let mut bad = encode_response(&id, response)[1 + MSG_ID_LEN..].to_vec();
            append_observed(&mut bad, &observed);
            bad.extend(COMPACT_NODES_TAG);
            append_responder(&mut bad, &ME);
            bad
        };
        let on_listing_find_node = with_trailer(&Response::Nodes(vec![c]));
        let on_ping = with_trailer(&Response::Ping(ME));
        for (kind, bad, why) in [
            (RpcKind::Store, junk, "bad compact contact"),
            (
                RpcKind::FindNode,
                on_listing_find_node,
                "nodes trailer on this answer",
            ),
            (RpcKind::Ping, on_ping, "nodes trailer on this answer"),
        ] {
            assert_eq!(
                decode_response_with_trailers(kind, &bad),
                Err(WireError::Malformed(why))
            );
        }
    }

    /// A FIND_NODE or FIND_VALUE answer listing contacts takes the compact
    /// form where the request asked for it and for the responder's id: an
    /// empty list for the body, the contacts in the nodes trailer. Asked
    /// otherwise, it is rpcudp's list, as older responders always send.
    #[test]
    fn find_answers_list_compact_contacts_when_asked() {
        let observed = addr("203.0.113.5:4000");
        let contacts: Vec<Contact> = (0..20u8)
            .map(|i| Contact::new(NodeId([i; ID_LEN]), addr("198.51.100.7:4001")))
            .collect();
        let answer = Response::Nodes(contacts.clone());
        let compact = kadmium_id_flagged(0, FLAG_RESPONDER_ID | FLAG_COMPACT_NODES, [3; 11]);
        let older = kadmium_id_flagged(0, FLAG_RESPONDER_ID, [3; 11]);
        for kind in [RpcKind::FindNode, RpcKind::FindValue] {
            let new_form = encode_reply(&compact, &answer, observed, &ME);
            let old_form = encode_reply(&older, &answer, observed, &ME);
            for datagram in [&new_form, &old_form] {
                let body = &datagram[1 + MSG_ID_LEN..];
                assert_eq!(
                    decode_response_with_trailers(kind, body),
                    Ok((
                        answer.clone(),
                        Trailers {
                            observed: Some(observed),
                            responder: Some(ME),
                        }
                    ))
                );
            }
            // The body is an empty list (0x90), then the observed trailer.
            assert_eq!(new_form[1 + MSG_ID_LEN], 0x90);
            assert!(new_form[1 + MSG_ID_LEN + 1..].starts_with(&OBSERVED_TAG));
            assert!(
                new_form.len() < old_form.len() * 4 / 5,
                "{} {}",
                new_form.len(),
                old_form.len()
            );
            // An empty answer stays empty either way.
            let none = encode_reply(&compact, &Response::Nodes(Vec::new()), observed, &ME);
            assert_eq!(
                decode_response(kind, &none[1 + MSG_ID_LEN..]),
                Ok(Response::Nodes(Vec::new()))
            );
        }
        // Only the compact trailer stands in for a FIND answer's list.
        let mut msgpack_trailer =
            encode_response(&compact, &Response::Nodes(Vec::new()))[1 + MSG_ID_LEN..].to_vec();
        append_observed(&mut msgpack_trailer, &observed);
        msgpack_trailer.extend(NODES_TAG);
        msgpack_trailer.push(0x90);
        append_responder(&mut msgpack_trailer, &ME);
        assert_eq!(
            decode_response(RpcKind::FindNode, &msgpack_trailer),
            Err(WireError::Malformed("nodes trailer on this answer"))
        );
    }

    #[test]
    fn python_requesters_get_rpcudp_bytes_only() {
        // An rpcudp id (a SHA-1 digest) does not carry kadmium's tag.
        let python_id = [0xa7; MSG_ID_LEN];
        for (_, response) in replies() {
            assert_eq!(
                encode_reply(&python_id, &response, addr("127.0.0.1:9"), &ME),
                encode_response(&python_id, &response)
            );
        }
    }

    #[test]
    fn python_replies_without_trailer_still_decode() {
        // A Python node's ping reply, as rpcudp writes it: `bin8(20) <id>`.
        let mut body = vec![0xc4, 0x14];
        body.extend([4; ID_LEN]);
        assert_eq!(
            decode_response_with_trailers(RpcKind::Ping, &body),
            Ok((Response::Ping(NodeId([4; ID_LEN])), Trailers::default()))
        );
        // `{"value": "v"}` from kademlia's rpc_find_value.
        let body = [0x81, 0xa5, b'v', b'a', b'l', b'u', b'e', 0xa1, b'v'];
        assert_eq!(
            decode_response_with_trailers(RpcKind::FindValue, &body),
            Ok((
                Response::Value {
                    value: Value::Str("v".into()),
                    ttl_secs: None
                },
                Trailers::default()
            ))
        );
    }

    #[test]
    fn bad_trailers_are_malformed() {
        let named = kadmium_id_flagged(0, FLAG_RESPONDER_ID, [3; 11]);
        let good = encode_reply(&named, &Response::Store(true), addr("[::1]:7"), &ME);
        let body = &good[1 + MSG_ID_LEN..];
        // Every cut inside the trailers is refused, but where it leaves the
        // observed-address trailer whole; every extra byte is refused.
        let observed_only = 1 + observed_len(&addr("[::1]:7"));
        for cut in 2..body.len() {
            assert_eq!(
                decode_response_with_trailers(RpcKind::Store, &body[..cut]).is_ok(),
                cut == observed_only,
                "cut at {cut}"
            );
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode_response_with_trailers(RpcKind::Store, &longer).is_err());
        // The trailers out of order, twice the responder, a wrong tag.
        let mut swapped = vec![0xc3];
        append_responder(&mut swapped, &ME);
        append_observed(&mut swapped, &addr("1.2.3.4:1"));
        let mut twice = vec![0xc3];
        append_observed(&mut twice, &addr("1.2.3.4:1"));
        append_responder(&mut twice, &ME);
        append_responder(&mut twice, &ME);
        let mut alone = vec![0xc3];
        append_responder(&mut alone, &ME);
        let mut wrong_tag = body.to_vec();
        wrong_tag[1] = b'X';
        let mut wrong_responder_tag = body.to_vec();
        let at = wrong_responder_tag.len() - RESPONDER_TRAILER_LEN;
        wrong_responder_tag[at + 3] = b'X';
        for bad in [swapped, twice, alone, wrong_tag, wrong_responder_tag] {
            assert!(
                decode_response_with_trailers(RpcKind::Store, &bad).is_err(),
                "{bad:?}"
            );
        }
        // An unknown family, port 0.
        let mut family = vec![0xc3];
        family.extend(OBSERVED_TAG);
        family.extend([5, 1, 2, 3, 4, 0, 9]);
        assert!(decode_response_with_trailers(RpcKind::Store, &family).is_err());
        let mut port0 = vec![0xc3];
        append_observed(&mut port0, &addr("1.2.3.4:1"));
        let n = port0.len();
        port0[n - 1] = 0;
        assert_eq!(
            decode_response_with_trailers(RpcKind::Store, &port0),
            Err(WireError::Malformed("observed port 0"))
        );
    }
}
