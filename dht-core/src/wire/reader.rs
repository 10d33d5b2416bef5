//! A bounds-checked msgpack reader over one datagram (or saved value):
//! the items this protocol uses, values bounded in depth, and the contact
//! triples of FIND_NODE replies with a fast path for the usual shape.
//! Every length is checked against the bytes actually left before anything
//! is allocated. What the items mean is [`super::decode`]'s job; it also
//! uses [`parse_ip`] for the address of a STUN reply.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rmp::Marker;

use super::{RejectedValue, WireError};
use crate::contact::Contact;
use crate::id::{NodeId, ID_LEN};
use crate::umsgpack_rules;
use crate::value::{Value, MAX_VALUE_DEPTH};

/// A bounds-checked msgpack reader over a byte slice.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    /// Refuse maps a Python peer cannot unpack (see `umsgpack_rules`); off
    /// only for values this node saved itself before the rule existed.
    pub(super) python_rules: bool,
}

/// One decoded msgpack item of the shapes this protocol uses. Containers are
/// returned as lengths; the caller reads their items.
pub(super) enum Item<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    /// An extension type: never a [`Value`], but well-formed msgpack that
    /// a peer may send (`umsgpack` packs a `datetime` as extension -1).
    Ext,
}

const MALFORMED: WireError = WireError::Malformed("invalid msgpack");

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            python_rules: true,
        }
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

    pub(super) fn item(&mut self) -> Result<Item<'a>, WireError> {
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
            Marker::FixExt1 => self.ext(1)?,
            Marker::FixExt2 => self.ext(2)?,
            Marker::FixExt4 => self.ext(4)?,
            Marker::FixExt8 => self.ext(8)?,
            Marker::FixExt16 => self.ext(16)?,
            Marker::Ext8 => {
                let n = self.len(1)?;
                self.ext(n)?
            }
            Marker::Ext16 => {
                let n = self.len(2)?;
                self.ext(n)?
            }
            Marker::Ext32 => {
                let n = self.len(4)?;
                self.ext(n)?
            }
            // The reserved marker is not msgpack at all.
            _ => return Err(WireError::Malformed("unsupported msgpack type")),
        })
    }

    /// An extension's type byte and `n` bytes of data, skipped.
    fn ext(&mut self, n: usize) -> Result<Item<'a>, WireError> {
        self.take(1)?;
        self.take(n)?;
        Ok(Item::Ext)
    }

    /// Skip one well-formed msgpack item of any type and depth (extension
    /// types and non-UTF-8 strings included) without recursing or
    /// allocating: a count of the items still to skip stands in for a
    /// stack. Every item consumes input, so this ends within the datagram.
    pub(super) fn skip(&mut self) -> Result<(), WireError> {
        let mut left: usize = 1;
        while left > 0 {
            left -= 1;
            match self.item()? {
                Item::Array(n) => left = left.saturating_add(n),
                Item::Map(n) => left = left.saturating_add(n.saturating_mul(2)),
                _ => {}
            }
        }
        Ok(())
    }

    pub(super) fn array(&mut self) -> Result<usize, WireError> {
        match self.item()? {
            Item::Array(n) => Ok(n),
            _ => Err(WireError::Malformed("expected an array")),
        }
    }

    pub(super) fn id(&mut self) -> Result<NodeId, WireError> {
        match self.item()? {
            Item::Bin(b) => NodeId::from_slice(b).ok_or(WireError::Malformed("id is not 20 bytes")),
            _ => Err(WireError::Malformed("expected a 20-byte id")),
        }
    }

    pub(super) fn str(&mut self) -> Result<&'a str, WireError> {
        let bytes = self.str_bytes()?;
        std::str::from_utf8(bytes).map_err(|_| WireError::Malformed("bad utf-8"))
    }

    /// A string's bytes, not checked to be UTF-8.
    pub(super) fn str_bytes(&mut self) -> Result<&'a [u8], WireError> {
        match self.item()? {
            Item::Str(s) => Ok(s),
            _ => Err(WireError::Malformed("expected a string")),
        }
    }

    pub(super) fn value(&mut self) -> Result<Value, WireError> {
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
                if self.python_rules {
                    if let Some(why) = umsgpack_rules::map_keys_refusal(&entries) {
                        return Err(WireError::Malformed(why));
                    }
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
            Item::Ext => return Err(WireError::Malformed("extension type is not a value")),
        })
    }

    /// A STORE's value. Well-formed msgpack that is not a [`Value`] (an
    /// extension type, a string that is not UTF-8, nesting past
    /// [`MAX_VALUE_DEPTH`], a map Python cannot unpack) is returned as a [`RejectedValue`] rather than
    /// an error, so the request is answered (`False`) instead of dropped:
    /// rpcudp peers evict a node that leaves a STORE unanswered. Anything
    /// that is not msgpack (truncated, a reserved marker) is still an error.
    pub(super) fn store_value(&mut self) -> Result<Result<Value, RejectedValue>, WireError> {
        let start = self.buf;
        let reason = match self.value() {
            Ok(value) => return Ok(Ok(value)),
            Err(WireError::Malformed(reason)) => reason,
            Err(other) => return Err(other),
        };
        self.buf = start;
        self.skip()?;
        let raw = &start[..start.len() - self.buf.len()];
        Ok(Err(RejectedValue {
            reason,
            raw: raw.to_vec(),
        }))
    }

    pub(super) fn uint(&mut self) -> Result<u64, WireError> {
        match self.item()? {
            Item::Int(t) if t >= 0 => Ok(t as u64),
            Item::UInt(t) => Ok(t),
            _ => Err(WireError::Malformed("expected an unsigned integer")),
        }
    }

    pub(super) fn port(&mut self) -> Result<u16, WireError> {
        match self.item()? {
            Item::Int(p) => u16::try_from(p).map_err(|_| WireError::Malformed("bad port")),
            _ => Err(WireError::Malformed("expected a port")),
        }
    }

    /// A contact in the form both implementations write it (a 3-array of a
    /// 20-byte bin 8, a fixstr and a positive fixint, uint 8 or uint 16),
    /// read straight from its bytes; `None`, consuming nothing, for any
    /// other form, which the general path then reads or rejects. Twenty of
    /// these are in every FIND_NODE answer.
    pub(super) fn usual_contact(&mut self) -> Option<(NodeId, &'a [u8], u16)> {
        let buf = self.buf;
        let (&[0x93, 0xc4, 20], rest) = buf.split_first_chunk::<3>()? else {
            return None;
        };
        let (id, rest) = rest.split_first_chunk::<ID_LEN>()?;
        let (&marker, rest) = rest.split_first()?;
        if marker & 0xe0 != 0xa0 {
            return None;
        }
        let (ip, rest) = rest.split_at_checked(usize::from(marker & 0x1f))?;
        let (port, rest) = match rest.split_first()? {
            (&p, rest) if p < 0x80 => (u16::from(p), rest),
            (0xcc, rest) => (u16::from(*rest.first()?), rest.get(1..)?),
            (0xcd, rest) => {
                let (be, rest) = rest.split_first_chunk::<2>()?;
                (u16::from_be_bytes(*be), rest)
            }
            _ => return None,
        };
        self.buf = rest;
        Some((NodeId(*id), ip, port))
    }

    /// A contact in any msgpack form of `[id, ip, port]`.
    pub(super) fn any_contact(&mut self) -> Result<Option<Contact>, WireError> {
        // Python peers send tuples of 3; tolerate nothing else.
        if self.array()? != 3 {
            return Err(WireError::Malformed("contact is not [id, ip, port]"));
        }
        let id = self.id()?;
        let ip = self.str_bytes()?;
        let port = self.port()?;
        Ok(usable_contact(id, ip, port))
    }

    pub(super) fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed("trailing bytes"))
        }
    }
}

/// An IP address in its text form, as Python peers send them; `None` for
/// anything else (a hostname, not UTF-8).
pub(super) fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    match parse_dotted_quad(text) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => std::str::from_utf8(text).ok()?.parse().ok(),
    }
}

/// The common case of [`parse_ip`] without the UTF-8 check and the general
/// parser (every contact of every FIND_NODE answer carries one): exactly
/// four decimal octets of at most 255, without leading zeros. It accepts a
/// subset of what `Ipv4Addr::from_str` accepts, with the same result, and
/// leaves the rest to it.
fn parse_dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    // One pass over the bytes (a split into parts cost twice as much).
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut filled = 0;
    let (mut value, mut digits) = (0u16, 0u8);
    for &byte in text {
        if byte == b'.' {
            let octet = octets.get_mut(filled)?;
            if digits == 0 || filled == 3 {
                return None;
            }
            *octet = u8::try_from(value).ok()?;
            filled += 1;
            (value, digits) = (0, 0);
            continue;
        }
        let digit = byte.wrapping_sub(b'0');
        // Not a digit, a fourth digit, or a digit after a leading zero.
        if digit > 9 || digits == 3 || (digits == 1 && value == 0) {
            return None;
        }
        value = value * 10 + u16::from(digit);
        digits += 1;
    }
    if filled != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// Hostnames (a Python node bootstrapped from "localhost") cannot be
/// resolved in a sans-IO core: such contacts are skipped rather than the
/// reply rejected. So are those on port 0.
pub(super) fn usable_contact(id: NodeId, ip: &[u8], port: u16) -> Option<Contact> {
    match (parse_ip(ip), port != 0) {
        (Some(ip), true) => Some(Contact::new(id, SocketAddr::new(ip, port))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Wherever the contact fast path accepts bytes, the general reader
    /// gives the same contact and consumes the same bytes.
    #[test]
    fn the_contact_fast_path_agrees_with_the_general_reader() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for port in [0u16, 1, 127, 128, 255, 256, 4000, 65535] {
            for ip in ["10.0.0.1", "255.255.255.255", "::1", "localhost", ""] {
                let mut w = Vec::new();
                rmp::encode::write_array_len(&mut w, 3).unwrap();
                rmp::encode::write_bin(&mut w, &[port as u8; ID_LEN]).unwrap();
                rmp::encode::write_str(&mut w, ip).unwrap();
                rmp::encode::write_uint(&mut w, u64::from(port)).unwrap();
                w.extend_from_slice(&[0xc0, 0x01]); // what follows the contact
                cases.push(w);
            }
        }
        let valid = cases.len();
        for i in 0..100_000 {
            let mut case = cases[i % valid].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..case.len());
                case[at] = rng.random();
            }
            case.truncate(rng.random_range(0..=case.len()));
            cases.push(case);
        }
        let mut fast_hits = 0;
        for (i, case) in cases.iter().enumerate() {
            let mut fast = Reader::new(case);
            let Some((id, ip, port)) = fast.usual_contact() else {
                assert!(i >= valid, "a contact as we write it takes the fast path");
                assert_eq!(fast.buf.len(), case.len(), "nothing consumed");
                continue;
            };
            fast_hits += 1;
            let mut general = Reader::new(case);
            let expected = general
                .any_contact()
                .expect("the general reader accepts it");
            assert_eq!(usable_contact(id, ip, port), expected, "{case:?}");
            assert_eq!(fast.buf, general.buf, "{case:?}");
        }
        assert!(fast_hits > valid, "{fast_hits}");
    }

    fn std_parse(text: &[u8]) -> Option<IpAddr> {
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    #[test]
    fn the_fast_ip_parser_agrees_with_std() {
        let mut cases: Vec<Vec<u8>> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.00",
            "1..3.4",
            ".1.2.3",
            "1.2.3.4.",
            "1.2.3.-4",
            "+1.2.3.4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1.2.3.1000",
            "::1",
            "::ffff:1.2.3.4",
            "fe80::1%2",
            "localhost",
            "",
            "9.99.199.249",
            "10.0.1.2",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        cases.push(vec![b'1', 0xff, b'.', b'2', b'.', b'3', b'.', b'4']);
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let alphabet = b"0123456789.....:ax";
        for _ in 0..200_000 {
            let len = rng.random_range(0..17);
            cases.push(
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect(),
            );
        }
        for a in 0..=300u32 {
            for text in [
                format!("{a}.{a}.0.1"),
                format!("0{a}.1.1.1"),
                format!("1.1.1.{a}"),
            ] {
                cases.push(text.into_bytes());
            }
        }
        let mut fast_hits = 0;
        for case in &cases {
            assert_eq!(
                parse_ip(case),
                std_parse(case),
                "{:?}",
                String::from_utf8_lossy(case)
            );
            if let Some(v4) = parse_dotted_quad(case) {
                fast_hits += 1;
                assert_eq!(Some(IpAddr::V4(v4)), std_parse(case));
            }
        }
        // The fast path is the common case, not a corner.
        assert!(fast_hits > 600, "{fast_hits}");
    }
}
