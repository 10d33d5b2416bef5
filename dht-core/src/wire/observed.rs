//! The observed-address trailer: how a kadmium responder tells a kadmium
//! requester the source address its request came from.
//!
//! rpcudp's wire format has no place for it, so it rides *after* the msgpack
//! body of a response: `OBSERVED_TAG (4) | family (1: 4 or 6) | ip (4 or 16)
//! | port (u16 BE)`. A responder appends it only when the request's id
//! carries kadmium's tag ([`super::is_kadmium_id`]), so Python peers never
//! receive it (their ids are SHA-1 digests of random bytes: one in 2³² would
//! start with the tag, and even then `umsgpack.unpackb` reads the body and
//! ignores what follows it). A kadmium decoder reads exactly one msgpack item
//! as the body; the bytes left must be empty or exactly one trailer, anything
//! else is still "trailing bytes".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{is_kadmium_id, MsgId, WireError};

/// Starts the trailer; distinct from [`super::KADMIUM_TAG`] so that a
/// message id can never be mistaken for one.
pub const OBSERVED_TAG: [u8; 4] = *b"KDMa";
const V4: u8 = 4;
const V6: u8 = 6;

/// Bytes the trailer for `addr` adds to a response.
pub fn observed_len(addr: &SocketAddr) -> usize {
    let ip_len = if addr.is_ipv4() { 4 } else { 16 };
    OBSERVED_TAG.len() + 1 + ip_len + 2
}

/// Append the trailer saying `addr` to an encoded response.
pub fn append_observed(datagram: &mut Vec<u8>, addr: &SocketAddr) {
    datagram.extend_from_slice(&OBSERVED_TAG);
    match addr.ip() {
        IpAddr::V4(ip) => {
            datagram.push(V4);
            datagram.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            datagram.push(V6);
            datagram.extend_from_slice(&ip.octets());
        }
    }
    datagram.extend_from_slice(&addr.port().to_be_bytes());
}

/// The trailer the answer to request `msg_id` from `requester` carries:
/// `Some(requester)` for a kadmium requester, `None` for any other.
pub fn trailer_for(msg_id: &MsgId, requester: SocketAddr) -> Option<SocketAddr> {
    is_kadmium_id(msg_id).then_some(requester)
}

/// The address in `rest`, the bytes left after a response's msgpack body;
/// `None` if nothing is left.
pub(super) fn parse_observed(rest: &[u8]) -> Result<Option<SocketAddr>, WireError> {
    const BAD: WireError = WireError::Malformed("trailing bytes");
    if rest.is_empty() {
        return Ok(None);
    }
    let Some(body) = rest.strip_prefix(&OBSERVED_TAG) else {
        return Err(BAD);
    };
    let ip = match body {
        [V4, a, b, c, d, _, _] => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
        [V6, tail @ ..] if tail.len() == 18 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&tail[..16]);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return Err(BAD),
    };
    let port = u16::from_be_bytes([body[body.len() - 2], body[body.len() - 1]]);
    if port == 0 {
        return Err(WireError::Malformed("observed port 0"));
    }
    Ok(Some(SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Contact;
    use crate::id::{NodeId, ID_LEN};
    use crate::value::Value;
    use crate::wire::{
        decode_response, decode_response_observed, encode_reply, encode_response, kadmium_id,
        split_packet, Response, RpcKind, MSG_ID_LEN,
    };

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
    fn kadmium_requesters_get_the_trailer_and_decode_it() {
        let id = kadmium_id(0, [3; 12]);
        for observed in [addr("203.0.113.7:4000"), addr("[2001:db8::1]:65535")] {
            for (kind, response) in replies() {
                let bytes = encode_reply(&id, &response, observed);
                let plain = encode_response(&id, &response);
                assert_eq!(bytes.len(), plain.len() + observed_len(&observed));
                assert_eq!(&bytes[..plain.len()], &plain[..], "body unchanged");
                assert_eq!(&bytes[plain.len()..plain.len() + 4], &OBSERVED_TAG);
                let body = split_packet(&bytes).expect("split").body;
                assert_eq!(
                    decode_response_observed(kind, body),
                    Ok((response.clone(), Some(observed)))
                );
                // The plain decoder checks the trailer and drops it.
                assert_eq!(decode_response(kind, body), Ok(response));
            }
        }
    }

    #[test]
    fn python_requesters_get_rpcudp_bytes_only() {
        // An rpcudp id (a SHA-1 digest) does not carry kadmium's tag.
        let python_id = [0xa7; MSG_ID_LEN];
        for (_, response) in replies() {
            assert_eq!(
                encode_reply(&python_id, &response, addr("127.0.0.1:9")),
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
            decode_response_observed(RpcKind::Ping, &body),
            Ok((Response::Ping(NodeId([4; ID_LEN])), None))
        );
        // `{"value": "v"}` from kademlia's rpc_find_value.
        let body = [0x81, 0xa5, b'v', b'a', b'l', b'u', b'e', 0xa1, b'v'];
        assert_eq!(
            decode_response_observed(RpcKind::FindValue, &body),
            Ok((
                Response::Value {
                    value: Value::Str("v".into()),
                    ttl_secs: None
                },
                None
            ))
        );
    }

    #[test]
    fn bad_trailers_are_malformed() {
        let id = kadmium_id(0, [3; 12]);
        let good = encode_reply(&id, &Response::Store(true), addr("[::1]:7"));
        let body = &good[1 + MSG_ID_LEN..];
        // Every cut inside the trailer, and every extra byte, is refused.
        for cut in 2..body.len() {
            assert!(
                decode_response_observed(RpcKind::Store, &body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode_response_observed(RpcKind::Store, &longer).is_err());
        // Wrong tag, unknown family, port 0.
        let mut wrong_tag = body.to_vec();
        wrong_tag[1] = b'X';
        assert!(decode_response_observed(RpcKind::Store, &wrong_tag).is_err());
        let mut family = vec![0xc3];
        family.extend(OBSERVED_TAG);
        family.extend([5, 1, 2, 3, 4, 0, 9]);
        assert!(decode_response_observed(RpcKind::Store, &family).is_err());
        let mut port0 = vec![0xc3];
        append_observed(&mut port0, &addr("1.2.3.4:1"));
        let n = port0.len();
        port0[n - 1] = 0;
        assert_eq!(
            decode_response_observed(RpcKind::Store, &port0),
            Err(WireError::Malformed("observed port 0"))
        );
    }
}
