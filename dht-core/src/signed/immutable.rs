//! Immutable records: a value stored under the SHA-1 of its own bytes, which
//! any reader checks by hashing; no key pair involved.
//!
//! Encoding: [`IMMUTABLE_MAGIC`] ‖ payload, with key = SHA-1(payload) (the
//! issue's "key = SHA-1(value)": a user can compute it with `sha1sum`). The
//! magic is there for storing nodes. Without it, an immutable value looks
//! like any plain value, whose key is the hash of some user key string that
//! the node never sees, so a node could not tell a mismatch from a normal
//! put and would have to accept whatever an attacker stores under the
//! digest. With it, a node refuses marked bytes that do not hash to the
//! key, and once it holds a valid immutable record it refuses to replace it
//! with anything else (see [`super::policy::store_decision`]). Readers still
//! verify by hashing, since Python `kademlia` peers store the bytes
//! unchecked. The prefix `b"KIR\x01"` is reserved: a plain bytes value
//! starting with it is refused unless it is a valid immutable record.

use super::{RecordError, MAX_RECORD_LEN};
use crate::id::{Key, NodeId};

/// First bytes of every encoded immutable record (format version 1).
pub const IMMUTABLE_MAGIC: [u8; 4] = *b"KIR\x01";

/// Largest payload of an immutable record (it must fit a Python peer's STORE).
pub const MAX_IMMUTABLE_PAYLOAD_LEN: usize = MAX_RECORD_LEN - IMMUTABLE_MAGIC.len();

/// Whether `bytes` claim to be an immutable record; says nothing about
/// validity.
pub fn is_immutable_record(bytes: &[u8]) -> bool {
    bytes.starts_with(&IMMUTABLE_MAGIC)
}

/// The key SHA-1(`payload`) and the bytes to store under it.
pub fn immutable(payload: &[u8]) -> Result<(Key, Vec<u8>), RecordError> {
    if payload.len() > MAX_IMMUTABLE_PAYLOAD_LEN {
        // The caller's value and its limit, not the encoded record's (a
        // 70,000-byte value read "70004 bytes (maximum 8128)").
        return Err(RecordError::TooLarge {
            size: payload.len(),
            max: MAX_IMMUTABLE_PAYLOAD_LEN,
        });
    }
    let mut bytes = Vec::with_capacity(IMMUTABLE_MAGIC.len() + payload.len());
    bytes.extend_from_slice(&IMMUTABLE_MAGIC);
    bytes.extend_from_slice(payload);
    Ok((NodeId::digest(payload), bytes))
}

/// The payload of `bytes` if they are an immutable record stored under
/// `key`, that is if SHA-1(payload) = `key`.
pub fn verify_immutable<'a>(key: &Key, bytes: &'a [u8]) -> Result<&'a [u8], RecordError> {
    let Some(payload) = bytes.strip_prefix(&IMMUTABLE_MAGIC) else {
        return Err(RecordError::Malformed("no immutable-record magic"));
    };
    if bytes.len() > MAX_RECORD_LEN {
        return Err(RecordError::TooLarge {
            size: bytes.len(),
            max: MAX_RECORD_LEN,
        });
    }
    if NodeId::digest(payload) != *key {
        return Err(RecordError::WrongKey);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_is_sha1_of_payload() {
        let (key, bytes) = immutable(b"hello").unwrap();
        assert_eq!(key.to_hex(), "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(bytes, b"KIR\x01hello");
        assert_eq!(verify_immutable(&key, &bytes).unwrap(), b"hello");
        let (empty_key, empty) = immutable(b"").unwrap();
        assert_eq!(verify_immutable(&empty_key, &empty).unwrap(), b"");
    }

    #[test]
    fn tampered_wrong_key_and_unmarked_are_refused() {
        let (key, mut bytes) = immutable(b"hello").unwrap();
        let other = NodeId::digest(b"other");
        assert_eq!(verify_immutable(&other, &bytes), Err(RecordError::WrongKey));
        // The bare payload (no magic) is not an immutable record.
        assert!(matches!(
            verify_immutable(&key, b"hello"),
            Err(RecordError::Malformed(_))
        ));
        bytes[5] ^= 1;
        assert_eq!(verify_immutable(&key, &bytes), Err(RecordError::WrongKey));
    }

    #[test]
    fn size_limit() {
        assert!(immutable(&vec![0; MAX_IMMUTABLE_PAYLOAD_LEN]).is_ok());
        assert_eq!(
            immutable(&vec![0; MAX_IMMUTABLE_PAYLOAD_LEN + 1]),
            Err(RecordError::TooLarge {
                size: MAX_IMMUTABLE_PAYLOAD_LEN + 1,
                max: MAX_IMMUTABLE_PAYLOAD_LEN
            })
        );
    }
}
