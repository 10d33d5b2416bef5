//! The compact contact list of the nodes trailer ([`super::trailers`]),
//! sent where the request's id carries [`super::FLAG_COMPACT_NODES`]: an
//! address as the observed-address trailer writes it, `family (1: 4 or 6) |
//! ip (4 or 16) | port (u16 BE)`, then `id (20)`, per contact, back to back,
//! as many as the bytes before the responder-id trailer hold.
//!
//! rpcudp's list (`[[id, "ip", port], ...]` in msgpack) writes each IP
//! address as text, which the writer has to format and the reader to parse:
//! a put's STOREs carry about 17 such lists of k contacts, and their text
//! addresses took about a tenth of a put's instructions in user space.
//! Here a contact is copied in and out at fixed offsets; an IPv4 one takes
//! 27 bytes, where msgpack takes 32 to 42 (36 for `127.0.0.1:8468`). Only
//! kadmium peers that asked for it get this form; Python peers never get a
//! list at all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{WireError, MAX_CONTACTS_PER_REPLY};
use crate::contact::Contact;
use crate::id::{NodeId, ID_LEN};

const V4: u8 = 4;
const V6: u8 = 6;

/// Append `addr` as `family | ip | port`.
pub(super) fn write_addr(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The `family | ip | port` at the start of `bytes` and the bytes after it;
/// `None` if they are too short or the family is neither 4 nor 6.
pub(super) fn read_addr(bytes: &[u8]) -> Option<(SocketAddr, &[u8])> {
    let (&family, rest) = bytes.split_first()?;
    let (ip, rest) = match family {
        V4 => {
            let (octets, rest) = rest.split_first_chunk::<4>()?;
            (IpAddr::V4(Ipv4Addr::from(*octets)), rest)
        }
        V6 => {
            let (octets, rest) = rest.split_first_chunk::<16>()?;
            (IpAddr::V6(Ipv6Addr::from(*octets)), rest)
        }
        _ => return None,
    };
    let (port, rest) = rest.split_first_chunk::<2>()?;
    Some((SocketAddr::new(ip, u16::from_be_bytes(*port)), rest))
}

/// Append `contacts` in the compact form (at most
/// [`MAX_CONTACTS_PER_REPLY`], the most a reader takes).
pub(super) fn write_contacts(out: &mut Vec<u8>, contacts: &[Contact]) {
    for c in contacts.iter().take(MAX_CONTACTS_PER_REPLY) {
        write_addr(out, &c.addr);
        out.extend_from_slice(&c.id.0);
    }
}

/// The contacts of a compact list that is exactly `bytes`. Contacts on port
/// 0 are skipped, as in rpcudp's lists; a truncated contact, an unknown
/// family or more than [`MAX_CONTACTS_PER_REPLY`] contacts make the answer
/// malformed.
pub(super) fn read_contacts(mut bytes: &[u8]) -> Result<Vec<Contact>, WireError> {
    const BAD: WireError = WireError::Malformed("bad compact contact");
    let most = bytes.len() / (1 + 4 + 2 + ID_LEN);
    let mut out = Vec::with_capacity(most.min(MAX_CONTACTS_PER_REPLY));
    let mut read = 0;
    while !bytes.is_empty() {
        read += 1;
        if read > MAX_CONTACTS_PER_REPLY {
            return Err(WireError::Malformed("too many contacts"));
        }
        let (addr, rest) = read_addr(bytes).ok_or(BAD)?;
        let (id, rest) = rest.split_first_chunk::<ID_LEN>().ok_or(BAD)?;
        if addr.port() != 0 {
            out.push(Contact::new(NodeId(*id), addr));
        }
        bytes = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: u8, addr: &str) -> Contact {
        Contact::new(NodeId([id; ID_LEN]), addr.parse().expect("addr"))
    }

    #[test]
    fn contacts_come_back_as_written() {
        let contacts = vec![
            contact(1, "10.0.0.1:4000"),
            contact(2, "[2001:db8::2]:65535"),
            contact(3, "[::ffff:192.0.2.3]:1"),
            contact(4, "255.255.255.255:443"),
        ];
        let mut bytes = Vec::new();
        write_contacts(&mut bytes, &contacts);
        assert_eq!(
            bytes.len(),
            2 * (1 + 4 + 2 + ID_LEN) + 2 * (1 + 16 + 2 + ID_LEN)
        );
        assert_eq!(read_contacts(&bytes), Ok(contacts));
        assert_eq!(read_contacts(&[]), Ok(vec![]));
    }

    #[test]
    fn bad_lists_are_malformed_and_port_zero_is_skipped() {
        let mut bytes = Vec::new();
        write_contacts(
            &mut bytes,
            &[contact(1, "10.0.0.1:4000"), contact(2, "[2001:db8::2]:9")],
        );
        let first_len = 1 + 4 + 2 + ID_LEN;
        // Every cut inside a contact is malformed; at its end it is a shorter list.
        for cut in 1..bytes.len() {
            assert_eq!(
                read_contacts(&bytes[..cut]).is_ok(),
                cut == first_len,
                "cut at {cut}"
            );
        }
        let mut family = bytes.clone();
        family[first_len] = 5;
        assert!(read_contacts(&family).is_err());
        let mut port_zero = bytes.clone();
        port_zero[1 + 4..1 + 4 + 2].copy_from_slice(&[0, 0]);
        assert_eq!(
            read_contacts(&port_zero),
            Ok(vec![contact(2, "[2001:db8::2]:9")])
        );
        // A writer never sends more than a reader takes.
        let many = vec![contact(7, "10.0.0.7:7"); MAX_CONTACTS_PER_REPLY + 1];
        let mut bytes = Vec::new();
        write_contacts(&mut bytes, &many);
        assert_eq!(
            read_contacts(&bytes).map(|c| c.len()),
            Ok(MAX_CONTACTS_PER_REPLY)
        );
        bytes.extend_from_within(..first_len);
        assert!(read_contacts(&bytes).is_err());
    }
}
