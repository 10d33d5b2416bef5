//! Signed mutable records on the BEP 44 model, and their byte encoding. A
//! record names its owner's public key, an optional salt, a sequence number,
//! an absolute expiry and a payload (or none: a tombstone), all covered by one
//! ed25519 signature; its DHT key is SHA-1(public key ‖ salt). The encoding is
//! canonical (one byte string per record: no length fields that could
//! disagree, reserved flag bits must be zero), so "the same record" and "the
//! same bytes" mean the same thing, and it starts with a magic so records
//! travel as ordinary `Value::Bytes` through Python `kademlia` peers.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use sha1::{Digest, Sha1};

use super::keys::{Keypair, PublicKey, PUBLIC_KEY_LEN};
use super::{RecordError, MAX_RECORD_LEN, MAX_SALT_LEN};
use crate::id::{Key, NodeId, ID_LEN};

/// First bytes of every encoded signed record (format version 1).
pub const RECORD_MAGIC: [u8; 4] = *b"KSR\x01";

/// Prepended to the signed bytes, so a kadmium record signature can never
/// be replayed as a signature over anything else the same key signs (and
/// the other way round).
const SIGNING_CONTEXT: &[u8] = b"kadmium signed record v1\0";

pub const SIGNATURE_LEN: usize = 64;

// Layout, all integers big-endian:
//   0  magic        4   b"KSR\x01"
//   4  signature   64   over SIGNING_CONTEXT ‖ bytes[68..]
//  68  public key  32
// 100  seq          8
// 108  expires      8   absolute unix seconds
// 116  flags        1   bit 0: has payload (clear: tombstone); others zero
// 117  salt_len     1   0..=64
// 118  salt         salt_len
//  ..  payload      the rest (empty for a tombstone)
const SIGNATURE_AT: usize = RECORD_MAGIC.len();
const SIGNED_AT: usize = SIGNATURE_AT + SIGNATURE_LEN;
const SEQ_AT: usize = SIGNED_AT + PUBLIC_KEY_LEN;
const EXPIRES_AT: usize = SEQ_AT + 8;
const FLAGS_AT: usize = EXPIRES_AT + 8;
const SALT_LEN_AT: usize = FLAGS_AT + 1;
/// Bytes of a record besides its salt and payload.
pub const RECORD_HEADER_LEN: usize = SALT_LEN_AT + 1;

const FLAG_HAS_PAYLOAD: u8 = 0x01;

/// The DHT key of the records of `public_key` under `salt`:
/// SHA-1(public key ‖ salt), as BEP 44.
pub fn record_key(public_key: &PublicKey, salt: &[u8]) -> Key {
    let mut h = Sha1::new();
    h.update(public_key.as_bytes());
    h.update(salt);
    let mut out = [0u8; ID_LEN];
    out.copy_from_slice(&h.finalize());
    NodeId(out)
}

/// Whether `bytes` claim to be a signed record (start with [`RECORD_MAGIC`]);
/// says nothing about validity.
pub fn is_signed_record(bytes: &[u8]) -> bool {
    bytes.starts_with(&RECORD_MAGIC)
}

/// One signed record. Built only by [`SignedRecord::sign`] (valid) or
/// [`SignedRecord::decode`] (well-formed, not yet verified: call
/// [`SignedRecord::verify`] or use [`SignedRecord::decode_verified`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRecord {
    public_key: PublicKey,
    salt: Vec<u8>,
    seq: u64,
    expires_unix: u64,
    payload: Option<Vec<u8>>,
    signature: [u8; SIGNATURE_LEN],
}

impl SignedRecord {
    /// Sign a record of `keypair` under `salt`: `payload` `Some` for a value,
    /// `None` for a tombstone (a delete). `expires_unix` is absolute unix
    /// seconds: holders drop the record then, and not before.
    pub fn sign(
        keypair: &Keypair,
        salt: &[u8],
        seq: u64,
        expires_unix: u64,
        payload: Option<&[u8]>,
    ) -> Result<SignedRecord, RecordError> {
        if salt.len() > MAX_SALT_LEN {
            return Err(RecordError::SaltTooLong { len: salt.len() });
        }
        let size = RECORD_HEADER_LEN + salt.len() + payload.map_or(0, <[u8]>::len);
        if size > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge {
                size,
                max: MAX_RECORD_LEN,
            });
        }
        let mut record = SignedRecord {
            public_key: keypair.public_key(),
            salt: salt.to_vec(),
            seq,
            expires_unix,
            payload: payload.map(<[u8]>::to_vec),
            signature: [0; SIGNATURE_LEN],
        };
        let unsigned = record.encode();
        record.signature = keypair.sign_message(&signing_message(&unsigned[SIGNED_AT..]));
        Ok(record)
    }

    /// Parse an encoded record, checking its shape only (no signature, no
    /// key). Never panics; allocates only copies of bytes actually present.
    pub fn decode(bytes: &[u8]) -> Result<SignedRecord, RecordError> {
        if !is_signed_record(bytes) {
            return Err(RecordError::Malformed("no signed-record magic"));
        }
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(RecordError::Malformed("shorter than a record header"));
        }
        if bytes.len() > MAX_RECORD_LEN {
            return Err(RecordError::TooLarge {
                size: bytes.len(),
                max: MAX_RECORD_LEN,
            });
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&bytes[SIGNATURE_AT..SIGNED_AT]);
        let mut public_key = [0u8; PUBLIC_KEY_LEN];
        public_key.copy_from_slice(&bytes[SIGNED_AT..SEQ_AT]);
        let seq = read_u64(&bytes[SEQ_AT..EXPIRES_AT]);
        let expires_unix = read_u64(&bytes[EXPIRES_AT..FLAGS_AT]);
        let flags = bytes[FLAGS_AT];
        if flags & !FLAG_HAS_PAYLOAD != 0 {
            return Err(RecordError::Malformed("reserved flag bits set"));
        }
        let salt_len = usize::from(bytes[SALT_LEN_AT]);
        if salt_len > MAX_SALT_LEN {
            return Err(RecordError::SaltTooLong { len: salt_len });
        }
        let rest = &bytes[RECORD_HEADER_LEN..];
        if rest.len() < salt_len {
            return Err(RecordError::Malformed("salt runs past the end"));
        }
        let (salt, payload) = rest.split_at(salt_len);
        let payload = if flags & FLAG_HAS_PAYLOAD != 0 {
            Some(payload.to_vec())
        } else if payload.is_empty() {
            None
        } else {
            return Err(RecordError::Malformed("tombstone with a payload"));
        };
        Ok(SignedRecord {
            public_key: PublicKey(public_key),
            salt: salt.to_vec(),
            seq,
            expires_unix,
            payload,
            signature,
        })
    }

    /// [`decode`](Self::decode) then [`verify`](Self::verify) against `key`.
    pub fn decode_verified(bytes: &[u8], key: &Key) -> Result<SignedRecord, RecordError> {
        let record = SignedRecord::decode(bytes)?;
        record.verify(key)?;
        Ok(record)
    }

    /// Check that this record belongs under `key` and that its owner signed
    /// it: salt length, key = SHA-1(public key ‖ salt), a usable public key,
    /// and the signature (strict verification: no malleable signatures, no
    /// small-order keys). Expiry is not checked here: it needs a clock (see
    /// [`is_expired`](Self::is_expired)).
    pub fn verify(&self, key: &Key) -> Result<(), RecordError> {
        if self.salt.len() > MAX_SALT_LEN {
            return Err(RecordError::SaltTooLong {
                len: self.salt.len(),
            });
        }
        // Cheap checks first: a wrong key costs a SHA-1, not a signature check.
        if self.key() != *key {
            return Err(RecordError::WrongKey);
        }
        let verifying = VerifyingKey::from_bytes(self.public_key.as_bytes())
            .map_err(|_| RecordError::BadPublicKey)?;
        let encoded = self.encode();
        let message = signing_message(&encoded[SIGNED_AT..]);
        verifying
            .verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| RecordError::BadSignature)
    }

    /// The canonical encoding (what travels inside a `Value::Bytes`).
    pub fn encode(&self) -> Vec<u8> {
        let payload = self.payload.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&RECORD_MAGIC);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(self.public_key.as_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.expires_unix.to_be_bytes());
        out.push(if self.payload.is_some() {
            FLAG_HAS_PAYLOAD
        } else {
            0
        });
        // The salt length fits a byte: sign and decode both bound it by 64.
        out.push(self.salt.len() as u8);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(payload);
        out
    }

    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_LEN + self.salt.len() + self.payload.as_ref().map_or(0, Vec::len)
    }

    /// SHA-1(public key ‖ salt).
    pub fn key(&self) -> Key {
        record_key(&self.public_key, &self.salt)
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Absolute unix seconds after which nobody keeps or returns the record.
    pub fn expires_unix(&self) -> u64 {
        self.expires_unix
    }

    pub fn is_expired(&self, now_unix: u64) -> bool {
        self.expires_unix <= now_unix
    }

    /// The value, or `None` for a tombstone.
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }

    pub fn is_tombstone(&self) -> bool {
        self.payload.is_none()
    }

    pub fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }
}

impl fmt::Debug for SignedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SignedRecord");
        d.field("public_key", &self.public_key.to_hex())
            .field("salt_len", &self.salt.len())
            .field("seq", &self.seq)
            .field("expires_unix", &self.expires_unix);
        match &self.payload {
            Some(p) => d.field("payload_len", &p.len()),
            None => d.field("tombstone", &true),
        };
        d.finish()
    }
}

fn signing_message(signed_part: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + signed_part.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(signed_part);
    message
}

/// `bytes` is exactly 8 long at every call site (fixed header offsets).
fn read_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn keypair() -> Keypair {
        Keypair::from_secret([7; 32])
    }

    /// Known answers for the v1 layout. The same bytes were produced
    /// independently from the layout comment above with Python's
    /// `cryptography` (OpenSSL ed25519), so a change to field order, widths,
    /// the context string or the key derivation fails here.
    #[test]
    fn known_answer_encoding() {
        let kp = keypair();
        let value = SignedRecord::sign(&kp, b"salt", 5, 1_700_000_000, Some(b"hi")).unwrap();
        let expected = unhex(
            "4b53520143f8637e144b74df7eb1d5a2cb09db5268c60744e934690f9063d257959c029f60e1a8fb0ddd22b2248003916bf3\
             9bced43133f4540934c964cbaf7df6403e05ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c\
             0000000000000005000000006553f100010473616c746869",
        );
        assert_eq!(value.encode(), expected);
        assert_eq!(
            value.key().to_hex(),
            "8c6fd9973fa0d1bec036c48b67b7c1c80aeea701"
        );
        let tombstone = SignedRecord::sign(&kp, b"", 6, 1_700_000_000, None).unwrap();
        let expected = unhex(
            "4b5352011c320a16def6ca8fa4f9f26ba16894122d89238c15062ff94061ee10fdc5f55fa22525d8154220455209e46aeeb9\
             82e14c1f8ebc1cb16b88c5db0cfc6dc1c00cea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c\
             0000000000000006000000006553f1000000",
        );
        assert_eq!(tombstone.encode(), expected);
        // The fixed offsets, read back by hand.
        let bytes = value.encode();
        assert_eq!(&bytes[..4], b"KSR\x01");
        assert_eq!(&bytes[68..100], kp.public_key().as_bytes());
        assert_eq!(&bytes[100..108], &5u64.to_be_bytes());
        assert_eq!(&bytes[108..116], &1_700_000_000u64.to_be_bytes());
        assert_eq!(&bytes[116..], b"\x01\x04salthi");
    }

    #[test]
    fn round_trips_and_verifies() {
        let kp = keypair();
        for payload in [Some(&b""[..]), Some(&b"value"[..]), None] {
            for salt in [&b""[..], b"s", &[9u8; MAX_SALT_LEN]] {
                let r = SignedRecord::sign(&kp, salt, 9, 100, payload).unwrap();
                let bytes = r.encode();
                assert_eq!(bytes.len(), r.encoded_len());
                let back =
                    SignedRecord::decode_verified(&bytes, &record_key(&kp.public_key(), salt))
                        .unwrap();
                assert_eq!(back, r);
                assert_eq!(back.payload(), payload);
                assert_eq!(back.is_tombstone(), payload.is_none());
            }
        }
    }

    #[test]
    fn empty_value_and_tombstone_differ() {
        let kp = keypair();
        let empty = SignedRecord::sign(&kp, b"", 1, 100, Some(b"")).unwrap();
        let gone = SignedRecord::sign(&kp, b"", 1, 100, None).unwrap();
        assert_ne!(empty.encode(), gone.encode());
        assert_ne!(empty.signature(), gone.signature());
    }

    #[test]
    fn decode_rejects_bad_shapes() {
        let kp = keypair();
        let good = SignedRecord::sign(&kp, b"ab", 1, 100, Some(b"xyz"))
            .unwrap()
            .encode();
        let malformed =
            |b: &[u8]| matches!(SignedRecord::decode(b), Err(RecordError::Malformed(_)));
        assert!(malformed(b""));
        assert!(malformed(b"KSR"));
        assert!(malformed(b"KSR\x02rest-of-a-future-version"));
        assert!(malformed(&good[..RECORD_HEADER_LEN - 1]));
        let mut flags = good.clone();
        flags[FLAGS_AT] = 0x03;
        assert!(malformed(&flags));
        let mut tomb_with_payload = good.clone();
        tomb_with_payload[FLAGS_AT] = 0;
        assert!(malformed(&tomb_with_payload));
        let mut salt_past_end = good[..RECORD_HEADER_LEN + 1].to_vec();
        salt_past_end[SALT_LEN_AT] = 2;
        assert!(malformed(&salt_past_end));
        let mut long_salt = good.clone();
        long_salt[SALT_LEN_AT] = 65;
        long_salt.resize(RECORD_HEADER_LEN + 70, 0);
        assert_eq!(
            SignedRecord::decode(&long_salt),
            Err(RecordError::SaltTooLong { len: 65 })
        );
        let mut huge = good.clone();
        huge.resize(MAX_RECORD_LEN + 1, 0);
        assert!(matches!(
            SignedRecord::decode(&huge),
            Err(RecordError::TooLarge { .. })
        ));
    }

    #[test]
    fn sign_refuses_long_salt() {
        assert_eq!(
            SignedRecord::sign(&keypair(), &[0; MAX_SALT_LEN + 1], 1, 1, None),
            Err(RecordError::SaltTooLong {
                len: MAX_SALT_LEN + 1
            })
        );
    }
}
