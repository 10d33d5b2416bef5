//! What storing nodes and readers do with records: the one decision a
//! storing node makes on a STORE ([`store_decision`]), the reader's choice
//! among the k closest nodes' answers ([`pick_newest`]), and the
//! compare-and-swap and next-sequence rules of a put ([`check_cas`],
//! [`next_seq`]). Pure functions of bytes and a unix time, so the protocol's
//! responder and its get/put operations call them without any I/O here.

use super::immutable::{is_immutable_record, verify_immutable};
use super::record::{is_signed_record, SignedRecord};
use super::RecordError;
use crate::id::Key;
use crate::value::Value;

/// What a storing node does with an incoming STORE for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreDecision {
    /// Neither the held nor the incoming value is a record: the plain value
    /// rules apply unchanged.
    NotARecord,
    /// Store the incoming value in place of whatever is held.
    /// `expires_unix` is the record's own expiry (signed records): keep it
    /// until then, and not past it; tombstones included, so that older
    /// copies cannot come back. `None` (immutable records): the plain TTL
    /// rules apply.
    Accept { expires_unix: Option<u64> },
    /// The incoming record is the one already held: answer success, change
    /// nothing.
    SameRecord,
    /// Refuse the STORE (answer `false`), keep what is held.
    Reject(RecordError),
}

/// The records a key can hold, once verified.
enum Held {
    Signed(SignedRecord),
    Immutable,
}

/// The storing node's rule for a STORE of `incoming` under `key`, given the
/// bytes it holds there (`None`: nothing) and the unix time.
///
/// - A signed record must verify against `key` and not be expired. It is
///   kept only if its sequence number is higher than the held record's
///   (equal: the identical record is [`StoreDecision::SameRecord`], any
///   other is refused); a tombstone is a record like any other, so a newer
///   one replaces a value and an older value never replaces it.
/// - An immutable record must hash to `key`.
/// - Once a valid record is held, nothing but a valid newer record of the
///   same owner replaces it: a node cannot check that a plain value belongs
///   under SHA-1(public key ‖ salt), so plain values are refused there.
/// - Kinds: an immutable record never replaces a signed one, but a valid
///   signed record replaces a held immutable one. Otherwise anyone could
///   squat a public key's record key by storing the immutable record of
///   the (public) bytes public key ‖ salt, whose SHA-1 is that key.
/// - A held record that is expired, or does not verify (a corrupt store),
///   counts as nothing held.
///
/// Bytes carrying a record magic that do not verify are refused, never
/// treated as plain values: the magics are reserved.
pub fn store_decision(
    key: &Key,
    held: Option<&[u8]>,
    incoming: &[u8],
    now_unix: u64,
) -> StoreDecision {
    // The incoming bytes are checked first and the held ones only when the
    // answer depends on them, so junk costs at most one signature check and
    // a republished copy of the held record costs one, not two.
    let held_same = held.is_some_and(|h| h == incoming);
    let held_record = || held.and_then(|h| held_record(key, h, now_unix));
    if is_signed_record(incoming) {
        let record = match SignedRecord::decode(incoming) {
            Ok(r) => r,
            Err(e) => return StoreDecision::Reject(e),
        };
        // Expiry before the signature: an expired record is refused anyway.
        if record.is_expired(now_unix) {
            return StoreDecision::Reject(RecordError::Expired {
                expires_unix: record.expires_unix(),
                now_unix,
            });
        }
        if let Err(e) = record.verify(key) {
            return StoreDecision::Reject(e);
        }
        if held_same {
            return StoreDecision::SameRecord;
        }
        let accept = StoreDecision::Accept {
            expires_unix: Some(record.expires_unix()),
        };
        match held_record() {
            None | Some(Held::Immutable) => accept,
            Some(Held::Signed(h)) if record.seq() > h.seq() => accept,
            Some(Held::Signed(h)) if record.seq() == h.seq() => {
                StoreDecision::Reject(RecordError::ConflictingRecord { seq: h.seq() })
            }
            Some(Held::Signed(h)) => StoreDecision::Reject(RecordError::StaleSequence {
                held: h.seq(),
                offered: record.seq(),
            }),
        }
    } else if is_immutable_record(incoming) {
        if let Err(e) = verify_immutable(key, incoming) {
            return StoreDecision::Reject(e);
        }
        if held_same {
            return StoreDecision::SameRecord;
        }
        match held_record() {
            None => StoreDecision::Accept { expires_unix: None },
            // Held signed record: see the kinds rule above. Held immutable
            // record with other bytes: a SHA-1 collision; keep the first.
            Some(_) => StoreDecision::Reject(RecordError::RecordHeld),
        }
    } else if held_record().is_some() {
        StoreDecision::Reject(RecordError::RecordHeld)
    } else {
        StoreDecision::NotARecord
    }
}

/// [`store_decision`] for the protocol's [`Value`]s: only `Value::Bytes` can
/// be records; every other type is a plain value.
pub fn store_decision_for_values(
    key: &Key,
    held: Option<&Value>,
    incoming: &Value,
    now_unix: u64,
) -> StoreDecision {
    store_decision(key, held.map(value_bytes), value_bytes(incoming), now_unix)
}

/// The bytes of a `Value::Bytes`; empty (a plain value) for other types.
pub fn value_bytes(value: &Value) -> &[u8] {
    match value {
        Value::Bytes(b) => b,
        _ => &[],
    }
}

fn held_record(key: &Key, bytes: &[u8], now_unix: u64) -> Option<Held> {
    if is_signed_record(bytes) {
        SignedRecord::decode(bytes)
            .ok()
            .filter(|r| !r.is_expired(now_unix) && r.verify(key).is_ok())
            .map(Held::Signed)
    } else if is_immutable_record(bytes) {
        verify_immutable(key, bytes).ok().map(|_| Held::Immutable)
    } else {
        None
    }
}

/// A reader's pick among the answers of the nodes it asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Newest {
    /// The valid, unexpired record with the highest sequence number (it may
    /// be a tombstone: the get then returns nothing).
    pub record: SignedRecord,
    /// Its position among the candidates (the first with these bytes).
    pub index: usize,
    /// Candidates that should be sent `record` (read repair): valid older
    /// records, and answers that are no valid record for the key at all.
    /// Candidates with the same sequence number but other bytes (the owner
    /// signed two records with one number) are left out: holders would
    /// refuse the repair.
    pub outdated: Vec<usize>,
}

/// The newest valid signed record for `key` among `candidates` (the values
/// the nodes answered, in any order), ignoring forged, tampered, foreign,
/// malformed and expired ones. Ties between different records with one
/// sequence number (the owner's writers raced; holders keep the first they
/// get) go to the one more candidates hold: a compare-and-swap that was
/// told it succeeded saw no rival on its read-back (`ops/signed.rs`), so
/// its record is on most holders, while a rival's copies are on holders it
/// reached first. Then to the later expiry, then to the greater bytes, so
/// every reader of the same answers picks the same. (Counting copies lets
/// whoever answers from many node ids choose between two records the owner
/// signed with one number; it cannot bring in any other record.) Each
/// distinct byte string is verified once.
pub fn pick_newest<'a, I>(key: &Key, candidates: I, now_unix: u64) -> Option<Newest>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let candidates: Vec<&[u8]> = candidates.into_iter().collect();
    // Distinct byte strings seen so far and their verified record, if valid.
    let mut seen: Vec<(&[u8], Option<SignedRecord>)> = Vec::new();
    let mut verdicts: Vec<usize> = Vec::with_capacity(candidates.len());
    for bytes in &candidates {
        let slot = match seen.iter().position(|(b, _)| b == bytes) {
            Some(slot) => slot,
            None => {
                let record = SignedRecord::decode(bytes)
                    .ok()
                    .filter(|r| !r.is_expired(now_unix) && r.verify(key).is_ok());
                seen.push((bytes, record));
                seen.len() - 1
            }
        };
        verdicts.push(slot);
    }
    let copies = |slot: usize| verdicts.iter().filter(|s| **s == slot).count();
    let best_slot = seen
        .iter()
        .enumerate()
        .filter_map(|(slot, (bytes, r))| r.as_ref().map(|r| (slot, bytes, r)))
        .max_by_key(|(slot, bytes, r)| (r.seq(), copies(*slot), r.expires_unix(), *bytes))
        .map(|(slot, _, _)| slot)?;
    let record = seen[best_slot].1.clone()?;
    let index = verdicts.iter().position(|s| *s == best_slot)?;
    let outdated = verdicts
        .iter()
        .enumerate()
        .filter(|(_, slot)| match &seen[**slot].1 {
            Some(r) => r.seq() < record.seq(),
            None => true,
        })
        .map(|(i, _)| i)
        .collect();
    Some(Newest {
        record,
        index,
        outdated,
    })
}

/// A put's compare-and-swap: with `cas = Some(n)`, the newest record found
/// (`current`; a tombstone counts) must have sequence number `n`.
pub fn check_cas(cas: Option<u64>, current: Option<&SignedRecord>) -> Result<(), RecordError> {
    match cas {
        None => Ok(()),
        Some(expected) => {
            let found = current.map(SignedRecord::seq);
            if found == Some(expected) {
                Ok(())
            } else {
                Err(RecordError::CasMismatch { expected, found })
            }
        }
    }
}

/// The sequence number a put uses when the caller gives none: one more than
/// the newest record found (a tombstone counts), 1 when none is found.
pub fn next_seq(current: Option<&SignedRecord>) -> Result<u64, RecordError> {
    match current {
        None => Ok(1),
        Some(r) => r.seq().checked_add(1).ok_or(RecordError::SequenceExhausted),
    }
}
