//! Records only their owner can change, and records that cannot change at
//! all: the protocol-independent core of signed (BEP 44 style) and immutable
//! values. [`SignedRecord`] is an ed25519-signed, sequenced, expiring value
//! or tombstone under key SHA-1(public key ‖ salt); [`immutable`] stores a
//! value under SHA-1 of itself. Both encode to ordinary bytes (a
//! `Value::Bytes`) with a magic prefix, so Python `kademlia` peers carry them
//! as opaque values, and both fit one rpcudp STORE ([`MAX_RECORD_LEN`]). The
//! protocol calls [`store_decision`] when a STORE arrives and
//! [`pick_newest`] on a get's answers; nothing here does I/O or reads a
//! clock: times are unix seconds passed in.
//!
//! ```
//! use dht_core::signed::{pick_newest, store_decision, Keypair, SignedRecord, StoreDecision};
//! let owner = Keypair::generate(&mut rand::rng());
//! let now = 1_700_000_000;
//! let v1 = SignedRecord::sign(&owner, b"addr", 1, now + 3600, Some(b"10.0.0.1:4000"))?;
//! let key = v1.key(); // SHA-1(public key ‖ salt)
//! let gone = SignedRecord::sign(&owner, b"addr", 2, now + 7200, None)?.encode();
//! // A storing node holding v1 takes the newer tombstone, and refuses v1 back.
//! let v1 = v1.encode();
//! assert!(matches!(store_decision(&key, Some(&v1), &gone, now), StoreDecision::Accept { .. }));
//! assert!(matches!(store_decision(&key, Some(&gone), &v1, now), StoreDecision::Reject(_)));
//! // A reader given both answers picks the tombstone: the value is deleted.
//! let newest = pick_newest(&key, [&v1[..], &gone[..]], now).unwrap();
//! assert!(newest.record.is_tombstone() && newest.outdated == [0]);
//! # Ok::<(), dht_core::signed::RecordError>(())
//! ```

mod immutable;
mod keys;
mod policy;
mod record;

pub use immutable::{
    immutable, is_immutable_record, verify_immutable, IMMUTABLE_MAGIC, MAX_IMMUTABLE_PAYLOAD_LEN,
};
pub use keys::{Keypair, PublicKey, PUBLIC_KEY_LEN, SECRET_KEY_LEN};
pub use policy::{
    check_cas, next_seq, pick_newest, store_decision, store_decision_for_values, value_bytes,
    Newest, StoreDecision,
};
pub use record::{
    is_signed_record, record_key, SignedRecord, RECORD_HEADER_LEN, RECORD_MAGIC, SIGNATURE_LEN,
};

use crate::wire::MSG_ID_LEN;

/// Longest salt, as BEP 44.
pub const MAX_SALT_LEN: usize = 64;

/// rpcudp 5.0.1 refuses to send a request whose msgpack body
/// (`[name, [args...]]`, after the kind byte and message id) exceeds this.
/// A Python peer re-publishes what it holds with such requests, so a record
/// that does not fit would stop at the first Python holder.
pub const RPCUDP_MAX_REQUEST_BODY: usize = 8192;

/// `wire::encoded_store_len(&Value::Bytes(b))` minus `b.len()`, for
/// 256 ≤ `b.len()` < 65 536: kind + id (21), `["store", [sender, key,
/// value]]` framing with two 20-byte bin ids (52), the bin16 header of the
/// value (3), and the 9 spare bytes `encoded_store_len` keeps (so we are 9
/// bytes on the safe side of the real encoding). Checked against both
/// `encoded_store_len` and the real `encode_request` in the tests below.
const STORE_OVERHEAD: usize = 1 + MSG_ID_LEN + 52 + 3 + 9;

/// Longest encoded record (signed or immutable): its STORE request fits
/// what a Python `kademlia` peer can send.
pub const MAX_RECORD_LEN: usize = RPCUDP_MAX_REQUEST_BODY + 1 + MSG_ID_LEN - STORE_OVERHEAD;

/// Longest payload of a signed record with an empty salt; a salt of `n`
/// bytes takes `n` from it ([`max_payload_len`]).
pub const MAX_PAYLOAD_LEN: usize = max_payload_len(0);

/// Longest payload of a signed record whose salt is `salt_len` bytes.
pub const fn max_payload_len(salt_len: usize) -> usize {
    MAX_RECORD_LEN.saturating_sub(RECORD_HEADER_LEN + salt_len)
}

/// Why a record was refused or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a record of a known format, or cut short.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    #[error("record too large: {size} bytes (maximum {max})")]
    TooLarge { size: usize, max: usize },
    #[error("salt too long: {len} bytes (maximum {MAX_SALT_LEN})")]
    SaltTooLong { len: usize },
    /// The 32 bytes are not a usable ed25519 public key.
    #[error("invalid public key")]
    BadPublicKey,
    /// The owner did not sign these bytes (forged or tampered).
    #[error("invalid signature")]
    BadSignature,
    /// The record does not belong under the key it was stored or found at
    /// (SHA-1(public key ‖ salt), or SHA-1(payload) for immutable records).
    #[error("record does not match its key")]
    WrongKey,
    #[error("record expired at {expires_unix} (now {now_unix}, unix seconds)")]
    Expired { expires_unix: u64, now_unix: u64 },
    /// An older record than the one held (a replay, or a late copy).
    #[error("stale record: sequence {offered}, holding {held}")]
    StaleSequence { held: u64, offered: u64 },
    /// Another record with the same sequence number is held.
    #[error("conflicting record: another record with sequence {seq} is held")]
    ConflictingRecord { seq: u64 },
    #[error("compare-and-swap failed: expected sequence {expected}, found {}", seq_text(.found))]
    CasMismatch { expected: u64, found: Option<u64> },
    /// A valid record is held and the incoming value is not a newer record
    /// of the same owner.
    #[error("a record is held under this key; only a newer record of its owner replaces it")]
    RecordHeld,
    #[error("sequence number exhausted (u64::MAX reached)")]
    SequenceExhausted,
}

fn seq_text(seq: &Option<u64>) -> String {
    seq.map_or_else(|| "no record".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;
    use crate::value::Value;
    use crate::wire::{encode_request, encoded_store_len, Request};

    /// Body of the real STORE request carrying `value`, as rpcudp measures it.
    fn real_store_body_len(value: Value) -> usize {
        let request = Request::Store {
            sender: NodeId([0xee; 20]),
            key: NodeId([0xdd; 20]),
            value,
        };
        encode_request(&[0x11; MSG_ID_LEN], &request).len() - 1 - MSG_ID_LEN
    }

    #[test]
    fn max_record_fits_a_python_store_and_one_more_byte_does_not() {
        let max = Value::Bytes(vec![0; MAX_RECORD_LEN]);
        let over = Value::Bytes(vec![0; MAX_RECORD_LEN + 1]);
        let header = 1 + MSG_ID_LEN;
        assert_eq!(encoded_store_len(&max) - header, RPCUDP_MAX_REQUEST_BODY);
        assert!(encoded_store_len(&over) - header > RPCUDP_MAX_REQUEST_BODY);
        let real = real_store_body_len(max);
        println!(
            "MAX_RECORD_LEN {MAX_RECORD_LEN}: real STORE body {real} bytes \
             (rpcudp limit {RPCUDP_MAX_REQUEST_BODY}); MAX_PAYLOAD_LEN {MAX_PAYLOAD_LEN}"
        );
        assert!(real <= RPCUDP_MAX_REQUEST_BODY);
        assert_eq!(real, RPCUDP_MAX_REQUEST_BODY - 9);
    }

    #[test]
    fn largest_signed_and_immutable_records_fit_the_real_encoding() {
        let kp = Keypair::from_secret([3; 32]);
        for salt_len in [0, 1, MAX_SALT_LEN] {
            let salt = vec![b's'; salt_len];
            let payload = vec![0xaa; max_payload_len(salt_len)];
            let record = SignedRecord::sign(&kp, &salt, 1, 10, Some(&payload)).unwrap();
            let bytes = record.encode();
            assert_eq!(bytes.len(), MAX_RECORD_LEN);
            assert!(real_store_body_len(Value::Bytes(bytes)) <= RPCUDP_MAX_REQUEST_BODY);
            let too_big = vec![0xaa; max_payload_len(salt_len) + 1];
            assert_eq!(
                SignedRecord::sign(&kp, &salt, 1, 10, Some(&too_big)),
                Err(RecordError::TooLarge {
                    size: MAX_RECORD_LEN + 1,
                    max: MAX_RECORD_LEN
                })
            );
        }
        let (_, bytes) = immutable(&vec![1; MAX_IMMUTABLE_PAYLOAD_LEN]).unwrap();
        assert!(real_store_body_len(Value::Bytes(bytes)) <= RPCUDP_MAX_REQUEST_BODY);
    }

    #[test]
    fn cas_error_reads_well() {
        let e = RecordError::CasMismatch {
            expected: 4,
            found: None,
        };
        assert_eq!(
            e.to_string(),
            "compare-and-swap failed: expected sequence 4, found no record"
        );
    }
}
