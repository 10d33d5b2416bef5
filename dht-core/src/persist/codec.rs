//! The byte layouts of what the store keeps: records (a value with its
//! wall-clock expiry and why this node holds it) and contacts (an id and a
//! socket address). Each record starts with its own encoding version, so a
//! later kadmium can read old records next to new ones; decoding checks every
//! length and returns an error, never panics, on bytes it did not write.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use crate::contact::Contact;
use crate::id::{NodeId, ID_LEN};
use crate::value::Value;
use crate::wire;

/// Why this node keeps a record; it decides what the node does with it
/// after a restart.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordKind {
    /// Stored on behalf of the network (a STORE from a peer).
    Held,
    /// Put by this node: it republishes the value until `ttl` has passed
    /// since the put, every republish interval counted from `last_published`.
    Published {
        /// The lifetime the user asked for, kept to millisecond precision.
        ttl: Duration,
        last_published_unix_ms: u64,
    },
    /// A copy cached along a lookup path.
    Cached,
}

/// A record as the store keeps it: times are wall-clock unix milliseconds,
/// because a restarted process must honour them and `Instant`s do not
/// survive a restart (see [`super::ClockAnchor`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PersistedRecord {
    pub value: Value,
    pub expires_at_unix_ms: u64,
    pub kind: RecordKind,
}

/// Version byte of the record layout below.
pub const RECORD_ENCODING: u8 = 1;

const KIND_HELD: u8 = 0;
const KIND_PUBLISHED: u8 = 1;
const KIND_CACHED: u8 = 2;

/// `version(1) kind(1) expires_at_ms(8, BE)` then, for published records,
/// `ttl_ms(8) last_published_ms(8)`, then the value in msgpack as a STORE
/// carries it ([`wire::encode_value`]).
pub fn encode_record(record: &PersistedRecord) -> Vec<u8> {
    let value = wire::encode_value(&record.value);
    let mut out = Vec::with_capacity(2 + 8 + 16 + value.len());
    out.push(RECORD_ENCODING);
    match &record.kind {
        RecordKind::Held => out.push(KIND_HELD),
        RecordKind::Published { .. } => out.push(KIND_PUBLISHED),
        RecordKind::Cached => out.push(KIND_CACHED),
    }
    out.extend_from_slice(&record.expires_at_unix_ms.to_be_bytes());
    if let RecordKind::Published {
        ttl,
        last_published_unix_ms,
    } = &record.kind
    {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        out.extend_from_slice(&ttl_ms.to_be_bytes());
        out.extend_from_slice(&last_published_unix_ms.to_be_bytes());
    }
    out.extend_from_slice(&value);
    out
}

pub fn decode_record(bytes: &[u8]) -> Result<PersistedRecord, String> {
    let mut r = ByteReader(bytes);
    let version = r.u8()?;
    if version != RECORD_ENCODING {
        return Err(format!("unknown record encoding {version}"));
    }
    let kind_byte = r.u8()?;
    let expires_at_unix_ms = r.u64()?;
    let kind = match kind_byte {
        KIND_HELD => RecordKind::Held,
        KIND_CACHED => RecordKind::Cached,
        KIND_PUBLISHED => RecordKind::Published {
            ttl: Duration::from_millis(r.u64()?),
            last_published_unix_ms: r.u64()?,
        },
        other => return Err(format!("unknown record kind {other}")),
    };
    let value = wire::decode_saved_value(r.0).map_err(|e| format!("bad value: {e:?}"))?;
    Ok(PersistedRecord {
        value,
        expires_at_unix_ms,
        kind,
    })
}

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// `id(20) family(1)` then `ip(4) port(2)` for IPv4, or
/// `ip(16) port(2) scope_id(4)` for IPv6 (the scope keeps link-local
/// addresses usable; the flow label is not kept).
pub fn encode_contact(contact: &Contact) -> Vec<u8> {
    let mut out = Vec::with_capacity(ID_LEN + 1 + 16 + 2 + 4);
    out.extend_from_slice(contact.id.as_bytes());
    match contact.addr {
        SocketAddr::V4(a) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&a.scope_id().to_be_bytes());
        }
    }
    out
}

pub fn decode_contact(bytes: &[u8]) -> Result<Contact, String> {
    let mut r = ByteReader(bytes);
    let id = NodeId(r.array::<ID_LEN>()?);
    let addr = match r.u8()? {
        FAMILY_V4 => {
            let ip = Ipv4Addr::from(r.array::<4>()?);
            SocketAddr::V4(SocketAddrV4::new(ip, r.u16()?))
        }
        FAMILY_V6 => {
            let ip = Ipv6Addr::from(r.array::<16>()?);
            let port = r.u16()?;
            SocketAddr::V6(SocketAddrV6::new(ip, port, 0, r.u32()?))
        }
        other => return Err(format!("unknown address family {other}")),
    };
    if !r.0.is_empty() {
        return Err("trailing bytes after a contact".into());
    }
    Ok(Contact::new(id, addr))
}

/// Big-endian fields off the front of a slice, each checked for length.
struct ByteReader<'a>(&'a [u8]);

impl ByteReader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let head = self.0.get(..N).ok_or("entry ends early")?;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        self.0 = &self.0[N..];
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_value() -> Vec<Value> {
        vec![
            Value::Int(i64::MIN),
            Value::Int(42),
            Value::UInt(u64::MAX),
            Value::Float(f64::MAX),
            Value::Bool(false),
            Value::Str("naïve".into()),
            Value::Str(String::new()),
            Value::Bytes(vec![]),
            Value::Bytes((0..=255).collect()),
        ]
    }

    #[test]
    fn records_round_trip_every_kind_and_value() {
        let kinds = [
            RecordKind::Held,
            RecordKind::Cached,
            RecordKind::Published {
                ttl: Duration::from_millis(86_400_123),
                last_published_unix_ms: 1_700_000_000_000,
            },
        ];
        for kind in kinds {
            for value in every_value() {
                let record = PersistedRecord {
                    value,
                    expires_at_unix_ms: u64::MAX - 1,
                    kind: kind.clone(),
                };
                assert_eq!(decode_record(&encode_record(&record)), Ok(record));
            }
        }
    }

    #[test]
    fn contacts_round_trip_both_families() {
        for addr in ["10.0.0.1:8468", "[2001:db8::1]:1", "[fe80::1%7]:65535"] {
            let c = Contact::new(NodeId([9; ID_LEN]), addr.parse().unwrap());
            assert_eq!(decode_contact(&encode_contact(&c)), Ok(c));
        }
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let record = PersistedRecord {
            value: Value::Str("abc".into()),
            expires_at_unix_ms: 5,
            kind: RecordKind::Published {
                ttl: Duration::from_secs(1),
                last_published_unix_ms: 1,
            },
        };
        let good = encode_record(&record);
        for cut in 0..good.len() {
            assert!(decode_record(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_version = good.clone();
        bad_version[0] = 99;
        assert!(decode_record(&bad_version).is_err());
        let mut bad_kind = good;
        bad_kind[1] = 7;
        assert!(decode_record(&bad_kind).is_err());
        let c = encode_contact(&Contact::new(NodeId([1; 20]), "[::1]:5".parse().unwrap()));
        for cut in 0..c.len() {
            assert!(decode_contact(&c[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = c;
        longer.push(0);
        assert!(decode_contact(&longer).is_err());
        // Cheap deterministic fuzz over arbitrary bytes.
        let mut state = 0x9e37_79b9_u64;
        for len in 0..64 {
            for _ in 0..200 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (state >> 56) as u8
                    })
                    .collect();
                let _ = decode_record(&data);
                let _ = decode_contact(&data);
            }
        }
    }
}
