//! Signed and immutable records under attack: what a storing node refuses
//! ([`store_decision`]) and what a reader ignores ([`pick_newest`]), tried as
//! an attacker would (forgeries, foreign keys, tampering, replays, equal
//! sequence numbers, resurrection after delete, expiry, squatting, random
//! mutations of valid records), plus the size limit against what Python's
//! rpcudp actually sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use dht_core::signed::{
    check_cas, immutable, next_seq, pick_newest, record_key, store_decision,
    store_decision_for_values, verify_immutable, Keypair, RecordError, SignedRecord, StoreDecision,
    MAX_RECORD_LEN, RECORD_HEADER_LEN,
};
use dht_core::wire::{encode_request, Request, MSG_ID_LEN};
use dht_core::{Error, Key, NodeId, Value};
use rand::{Rng, SeedableRng};

const NOW: u64 = 1_700_000_000;
const LATER: u64 = NOW + 3600;

fn owner() -> Keypair {
    Keypair::from_secret([1; 32])
}

fn attacker() -> Keypair {
    Keypair::from_secret([2; 32])
}

fn signed(kp: &Keypair, salt: &[u8], seq: u64, payload: Option<&[u8]>) -> Vec<u8> {
    SignedRecord::sign(kp, salt, seq, LATER, payload)
        .unwrap()
        .encode()
}

fn key_of(kp: &Keypair, salt: &[u8]) -> Key {
    record_key(&kp.public_key(), salt)
}

fn accepted(d: &StoreDecision) -> bool {
    matches!(d, StoreDecision::Accept { .. } | StoreDecision::SameRecord)
}

/// Every attack in `attacks` must be refused by a holder that holds
/// `held` (and by one holding nothing), and ignored by a reader who also
/// sees `held`. Returns how many were refused, for the printed figure.
fn refused_everywhere(key: &Key, held: &[u8], attacks: &[(&str, Vec<u8>)]) -> usize {
    let mut refused = 0;
    for (what, bytes) in attacks {
        for holding in [Some(held), None] {
            let d = store_decision(key, holding, bytes, NOW);
            assert!(
                matches!(d, StoreDecision::Reject(_)),
                "{what}: holder {:?} answered {d:?}",
                holding.map(<[u8]>::len)
            );
        }
        let newest = pick_newest(key, [held, bytes.as_slice()], NOW).unwrap();
        assert_eq!(newest.index, 0, "{what}: reader picked the attack");
        assert_eq!(newest.outdated, vec![1], "{what}");
        assert!(
            pick_newest(key, [bytes.as_slice()], NOW).is_none(),
            "{what}"
        );
        refused += 1;
    }
    refused
}

#[test]
fn forged_signatures_are_refused_and_ignored() {
    let (owner, attacker) = (owner(), attacker());
    let key = key_of(&owner, b"");
    let held = signed(&owner, b"", 1, Some(b"mine"));

    // The attacker signs a newer record with their own key, then puts the
    // owner's public key in it (so that it derives the owner's key).
    let mut stolen_pk = signed(&attacker, b"", 9, Some(b"theirs"));
    stolen_pk[68..100].copy_from_slice(owner.public_key().as_bytes());
    // Random signature bytes on an otherwise genuine newer record.
    let mut random_sig = signed(&owner, b"", 9, Some(b"theirs"));
    rand::rngs::StdRng::seed_from_u64(3).fill(&mut random_sig[4..68]);
    // The owner's signature of seq 1 pasted onto seq 9.
    let mut pasted = signed(&owner, b"", 9, Some(b"mine"));
    pasted[4..68].copy_from_slice(&held[4..68]);
    // A zero signature.
    let mut zero_sig = signed(&owner, b"", 9, Some(b"theirs"));
    zero_sig[4..68].fill(0);
    // Malleability: S + L (the group order) is the same signature to a lax
    // verifier; strict verification refuses the non-canonical S.
    let mut malleated = signed(&owner, b"", 9, Some(b"theirs"));
    add_group_order_to_s(&mut malleated[36..68]);

    let attacks = [
        ("attacker signature, owner key", stolen_pk),
        ("random signature", random_sig),
        ("signature of another record", pasted),
        ("zero signature", zero_sig),
        ("S + L malleated signature", malleated),
    ];
    let n = refused_everywhere(&key, &held, &attacks);
    println!("forged signatures refused by holders and ignored by readers: {n}/{n}");
    assert_eq!(n, attacks.len());
}

/// The universal forgery of lax ed25519 verifiers: with the identity point
/// as public key and as R, and S = 0, `[S]B = R + [k]A` holds for every
/// message (dalek's lax `verify` accepts this signature; checked by hand).
/// Strict verification refuses such weak keys.
#[test]
fn weak_key_universal_forgery_is_refused() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let pk = dht_core::PublicKey(identity);
    let key = record_key(&pk, b"");
    let mut bytes = signed(&owner(), b"", 1, Some(b"anything"));
    bytes[4..36].copy_from_slice(&identity); // R
    bytes[36..68].fill(0); // S
    bytes[68..100].copy_from_slice(&identity);
    let record = SignedRecord::decode(&bytes).unwrap();
    assert_eq!(record.key(), key);
    let err = record.verify(&key).unwrap_err();
    println!("weak-key forgery: {err}");
    assert!(matches!(
        err,
        RecordError::BadSignature | RecordError::BadPublicKey
    ));
    assert!(matches!(
        store_decision(&key, None, &bytes, NOW),
        StoreDecision::Reject(_)
    ));
}

/// Adds L = 2^252 + 27742317777372353535851937790883648493 to the
/// little-endian scalar `s` (mod 2^256).
fn add_group_order_to_s(s: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
}

#[test]
fn records_of_other_keys_are_refused_and_ignored() {
    let (owner, attacker) = (owner(), attacker());
    let key = key_of(&owner, b"profile");
    let held = signed(&owner, b"profile", 1, Some(b"mine"));
    let attacks = [
        (
            "attacker's own valid record, stored under the owner's key",
            signed(&attacker, b"profile", 50, Some(b"theirs")),
        ),
        (
            "owner's record for another salt",
            signed(&owner, b"other", 50, Some(b"mine too")),
        ),
        (
            "owner's record without salt",
            signed(&owner, b"", 50, Some(b"mine too")),
        ),
    ];
    for (_, bytes) in &attacks {
        assert_eq!(
            SignedRecord::decode_verified(bytes, &key),
            Err(RecordError::WrongKey)
        );
    }
    let n = refused_everywhere(&key, &held, &attacks);
    println!("records of other keys refused and ignored: {n}/{n}");
}

#[test]
fn tampered_fields_are_refused_and_ignored() {
    let owner = owner();
    let key = key_of(&owner, b"s");
    let held = signed(&owner, b"s", 5, Some(b"value"));
    let newer = signed(&owner, b"s", 6, Some(b"value"));
    let tamper = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = newer.clone();
        f(&mut b);
        b
    };
    let salt_at = RECORD_HEADER_LEN;
    let attacks = [
        ("value changed", tamper(&|b| *b.last_mut().unwrap() ^= 1)),
        ("value extended", tamper(&|b| b.push(b'!'))),
        (
            "value truncated",
            tamper(&|b| {
                b.pop();
            }),
        ),
        ("seq raised", tamper(&|b| b[107] = 99)),
        ("seq top byte set", tamper(&|b| b[100] = 1)),
        ("expiry extended", tamper(&|b| b[110] ^= 0x40)),
        ("salt changed", tamper(&|b| b[salt_at] = b't')),
        (
            "value turned into a tombstone",
            tamper(&|b| {
                b[116] = 0;
                b.truncate(salt_at + 1);
            }),
        ),
    ];
    let n = refused_everywhere(&key, &held, &attacks);
    println!("tampered records refused and ignored: {n}/{n}");
}

#[test]
fn replays_of_older_sequence_numbers_are_refused() {
    let owner = owner();
    let key = key_of(&owner, b"");
    let history: Vec<Vec<u8>> = (1..=10)
        .map(|seq| signed(&owner, b"", seq, Some(format!("v{seq}").as_bytes())))
        .collect();
    let newest = history.last().unwrap();
    let mut refused = 0;
    for (i, old) in history[..9].iter().enumerate() {
        let d = store_decision(&key, Some(newest.as_slice()), old, NOW);
        assert_eq!(
            d,
            StoreDecision::Reject(RecordError::StaleSequence {
                held: 10,
                offered: i as u64 + 1
            })
        );
        refused += 1;
    }
    println!("replayed older records refused: {refused}/9");
    // Each newer record replaces the one before it.
    for pair in history.windows(2) {
        assert_eq!(
            store_decision(&key, Some(pair[0].as_slice()), &pair[1], NOW),
            StoreDecision::Accept {
                expires_unix: Some(LATER)
            }
        );
    }
    // A reader given every version, shuffled, picks seq 10 and repairs the rest.
    let mut answers: Vec<&[u8]> = history.iter().map(Vec::as_slice).collect();
    answers.reverse();
    answers.swap(0, 4);
    let pick = pick_newest(&key, answers.iter().copied(), NOW).unwrap();
    assert_eq!(pick.record.seq(), 10);
    assert_eq!(answers[pick.index], newest.as_slice());
    assert_eq!(pick.outdated.len(), 9);
    assert!(!pick.outdated.contains(&pick.index));
}

#[test]
fn equal_sequence_numbers_keep_the_held_record() {
    let owner = owner();
    let key = key_of(&owner, b"");
    let held = signed(&owner, b"", 7, Some(b"first"));
    let same = signed(&owner, b"", 7, Some(b"first"));
    let other = signed(&owner, b"", 7, Some(b"second"));
    let other_expiry = SignedRecord::sign(&owner, b"", 7, LATER + 1, Some(b"first"))
        .unwrap()
        .encode();
    assert_eq!(
        store_decision(&key, Some(held.as_slice()), &same, NOW),
        StoreDecision::SameRecord
    );
    for conflicting in [&other, &other_expiry] {
        assert_eq!(
            store_decision(&key, Some(held.as_slice()), conflicting, NOW),
            StoreDecision::Reject(RecordError::ConflictingRecord { seq: 7 })
        );
    }
    // Readers agree on one of them whatever the order: the one more answers
    // hold, then the later expiry, then the greater bytes; the other is not
    // sent as a repair.
    for order in [[&held, &other_expiry], [&other_expiry, &held]] {
        let pick = pick_newest(&key, order.map(|b| b.as_slice()), NOW).unwrap();
        assert_eq!(pick.record.expires_unix(), LATER + 1);
        assert!(pick.outdated.is_empty());
    }
    for order in [[&held, &other_expiry, &held], [&other_expiry, &held, &held]] {
        let pick = pick_newest(&key, order.map(|b| b.as_slice()), NOW).unwrap();
        assert_eq!(pick.record.expires_unix(), LATER, "two copies outweigh one");
        assert!(pick.outdated.is_empty());
    }
}

#[test]
fn tombstones_order_by_sequence_number() {
    let owner = owner();
    let key = key_of(&owner, b"addr");
    let v1 = signed(&owner, b"addr", 1, Some(b"10.0.0.1:4000"));
    let gone2 = signed(&owner, b"addr", 2, None);
    let v3 = signed(&owner, b"addr", 3, Some(b"10.0.0.2:4000"));
    let accept = StoreDecision::Accept {
        expires_unix: Some(LATER),
    };
    assert_eq!(
        store_decision(&key, Some(v1.as_slice()), &gone2, NOW),
        accept
    );
    // The old value, replayed by a node that was offline during the delete.
    assert_eq!(
        store_decision(&key, Some(gone2.as_slice()), &v1, NOW),
        StoreDecision::Reject(RecordError::StaleSequence {
            held: 2,
            offered: 1
        })
    );
    assert_eq!(
        store_decision(&key, Some(gone2.as_slice()), b"plain value", NOW),
        StoreDecision::Reject(RecordError::RecordHeld)
    );
    // The reader sees the tombstone as newest: its get returns nothing.
    let pick = pick_newest(&key, [v1.as_slice(), gone2.as_slice()], NOW).unwrap();
    assert!(pick.record.is_tombstone());
    assert_eq!(pick.outdated, vec![0]);
    // The owner publishes again after the delete.
    assert_eq!(
        store_decision(&key, Some(gone2.as_slice()), &v3, NOW),
        accept
    );
    assert_eq!(
        store_decision(&key, Some(v3.as_slice()), &gone2, NOW),
        StoreDecision::Reject(RecordError::StaleSequence {
            held: 3,
            offered: 2
        })
    );
}

#[test]
fn expired_records_are_refused_and_ignored() {
    let owner = owner();
    let key = key_of(&owner, b"");
    let expired = SignedRecord::sign(&owner, b"", 5, NOW, Some(b"old"))
        .unwrap()
        .encode();
    assert_eq!(
        store_decision(&key, None, &expired, NOW),
        StoreDecision::Reject(RecordError::Expired {
            expires_unix: NOW,
            now_unix: NOW
        })
    );
    assert!(pick_newest(&key, [expired.as_slice()], NOW).is_none());
    assert!(pick_newest(&key, [expired.as_slice()], NOW - 1).is_some());
    // A held record past its expiry counts as nothing held: an older,
    // unexpired record is stored again (a tombstone must therefore outlive
    // the values it deletes; the delete operation sets its expiry so).
    let older = signed(&owner, b"", 4, Some(b"older"));
    assert_eq!(
        store_decision(&key, Some(expired.as_slice()), &older, NOW),
        StoreDecision::Accept {
            expires_unix: Some(LATER)
        }
    );
    assert_eq!(
        store_decision(&key, Some(expired.as_slice()), b"plain", NOW),
        StoreDecision::NotARecord
    );
}

#[test]
fn plain_values_never_replace_records() {
    let owner = owner();
    let key = key_of(&owner, b"");
    let held = signed(&owner, b"", 1, Some(b"mine"));
    assert_eq!(
        store_decision(&key, Some(held.as_slice()), b"overwrite by a stranger", NOW),
        StoreDecision::Reject(RecordError::RecordHeld)
    );
    // Plain values elsewhere keep the plain rules, in both directions.
    assert_eq!(
        store_decision(&key, None, b"plain", NOW),
        StoreDecision::NotARecord
    );
    assert_eq!(
        store_decision(&key, Some(&b"plain"[..]), b"plain 2", NOW),
        StoreDecision::NotARecord
    );
    assert_eq!(
        store_decision(&key, Some(&b"plain"[..]), &held, NOW),
        StoreDecision::Accept {
            expires_unix: Some(LATER)
        }
    );
    // Through the protocol's Value type: no other type is a record, not
    // even a string holding a record's bytes.
    let held_value = Value::Bytes(held.clone());
    for stranger in [
        Value::Int(1),
        Value::Str("x".into()),
        Value::Bool(true),
        Value::Float(1.0),
        Value::Bytes(b"x".to_vec()),
    ] {
        assert_eq!(
            store_decision_for_values(&key, Some(&held_value), &stranger, NOW),
            StoreDecision::Reject(RecordError::RecordHeld)
        );
    }
    let as_string = Value::Str(String::from_utf8_lossy(&held).into_owned());
    assert_eq!(
        store_decision_for_values(&key, Some(&as_string), &Value::Int(2), NOW),
        StoreDecision::NotARecord
    );
    // Bytes carrying the magic but failing verification are refused, not
    // stored as plain values.
    let mut broken = held.clone();
    broken[120] ^= 1;
    assert!(matches!(
        store_decision(&key, None, &broken, NOW),
        StoreDecision::Reject(_)
    ));
}

#[test]
fn immutable_records_are_checked_by_hash() {
    let (key, bytes) = immutable(b"a chat log").unwrap();
    assert_eq!(key, NodeId::digest(b"a chat log"));
    let accept = StoreDecision::Accept { expires_unix: None };
    assert_eq!(store_decision(&key, None, &bytes, NOW), accept);
    assert_eq!(
        store_decision(&key, Some(&b"junk"[..]), &bytes, NOW),
        accept,
        "a valid record replaces junk"
    );
    assert_eq!(
        store_decision(&key, Some(bytes.as_slice()), &bytes, NOW),
        StoreDecision::SameRecord
    );
    // Mismatches: another value under this key, this value under another key.
    let (_, other) = immutable(b"another log").unwrap();
    assert_eq!(
        store_decision(&key, None, &other, NOW),
        StoreDecision::Reject(RecordError::WrongKey)
    );
    assert_eq!(
        store_decision(&NodeId::digest(b"x"), None, &bytes, NOW),
        StoreDecision::Reject(RecordError::WrongKey)
    );
    assert_eq!(
        store_decision(&key, Some(bytes.as_slice()), b"overwrite", NOW),
        StoreDecision::Reject(RecordError::RecordHeld)
    );
    assert_eq!(verify_immutable(&key, &bytes).unwrap(), b"a chat log");
    assert!(verify_immutable(&key, &other).is_err());
}

/// SHA-1(public key ‖ salt) is also the immutable key of the (public) bytes
/// public key ‖ salt. A squatter storing that immutable record first must
/// not lock the owner out, and cannot replace the owner's record.
#[test]
fn immutable_squatting_on_a_record_key_fails() {
    let owner = owner();
    let key = key_of(&owner, b"s");
    let mut squat_payload = owner.public_key().as_bytes().to_vec();
    squat_payload.extend_from_slice(b"s");
    let (squat_key, squat) = immutable(&squat_payload).unwrap();
    assert_eq!(squat_key, key);
    let record = signed(&owner, b"s", 1, Some(b"mine"));
    assert_eq!(
        store_decision(&key, Some(squat.as_slice()), &record, NOW),
        StoreDecision::Accept {
            expires_unix: Some(LATER)
        }
    );
    assert_eq!(
        store_decision(&key, Some(record.as_slice()), &squat, NOW),
        StoreDecision::Reject(RecordError::RecordHeld)
    );
    let pick = pick_newest(&key, [squat.as_slice(), record.as_slice()], NOW).unwrap();
    assert_eq!(pick.index, 1);
}

#[test]
fn reader_picks_the_newest_valid_record_among_hostile_answers() {
    let (owner, attacker) = (owner(), attacker());
    let key = key_of(&owner, b"");
    let v2 = signed(&owner, b"", 2, Some(b"v2"));
    let v4 = signed(&owner, b"", 4, Some(b"v4"));
    let mut forged_v9 = signed(&owner, b"", 9, Some(b"forged"));
    forged_v9[10] ^= 0x80;
    let foreign_v9 = signed(&attacker, b"", 9, Some(b"foreign"));
    let expired_v8 = SignedRecord::sign(&owner, b"", 8, NOW - 1, Some(b"expired"))
        .unwrap()
        .encode();
    let answers: Vec<&[u8]> = vec![
        &v2[..],
        &forged_v9[..],
        &v4[..],
        &b"plain junk"[..],
        &foreign_v9[..],
        &v4[..],
        &expired_v8[..],
        &b"KSR\x01"[..],
        &b""[..],
    ];
    let pick = pick_newest(&key, answers.iter().copied(), NOW).unwrap();
    assert_eq!(pick.record.seq(), 4);
    assert_eq!(pick.record.payload(), Some(&b"v4"[..]));
    assert_eq!(pick.index, 2);
    // Everyone but the two holders of v4 gets the repair.
    assert_eq!(pick.outdated, vec![0, 1, 3, 4, 6, 7, 8]);
    assert!(pick_newest(&key, [forged_v9.as_slice(), foreign_v9.as_slice()], NOW).is_none());
    assert!(pick_newest(&key, std::iter::empty(), NOW).is_none());
}

#[test]
fn compare_and_swap_and_next_sequence() {
    let owner = owner();
    let r3 = SignedRecord::sign(&owner, b"", 3, LATER, Some(b"x")).unwrap();
    assert_eq!(check_cas(None, Some(&r3)), Ok(()));
    assert_eq!(check_cas(None, None), Ok(()));
    assert_eq!(check_cas(Some(3), Some(&r3)), Ok(()));
    assert_eq!(
        check_cas(Some(2), Some(&r3)),
        Err(RecordError::CasMismatch {
            expected: 2,
            found: Some(3)
        })
    );
    let err = check_cas(Some(0), None).unwrap_err();
    assert_eq!(
        err,
        RecordError::CasMismatch {
            expected: 0,
            found: None
        }
    );
    // The typed error callers match on.
    assert!(matches!(
        Error::from(err),
        Error::CasMismatch {
            expected: 0,
            found: None
        }
    ));
    assert!(matches!(
        Error::from(RecordError::BadSignature),
        Error::InvalidRecord(RecordError::BadSignature)
    ));
    assert_eq!(next_seq(None), Ok(1));
    assert_eq!(next_seq(Some(&r3)), Ok(4));
    let last = SignedRecord::sign(&owner, b"", u64::MAX, LATER, None).unwrap();
    assert_eq!(next_seq(Some(&last)), Err(RecordError::SequenceExhausted));
}

/// A seeded loop of random mutations of valid records (bit flips, byte
/// writes, truncation, extension, insertion, deletion, splices from another
/// record): every mutant is refused by verification and by holders, and
/// none panics. Prints the counts.
#[test]
fn random_mutations_of_valid_records_are_all_refused() {
    const MUTANTS: usize = 20_000;
    let owner = owner();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let bases: Vec<(Key, Vec<u8>)> = vec![
        (key_of(&owner, b""), signed(&owner, b"", 1, Some(b"hello"))),
        (key_of(&owner, b"salt"), signed(&owner, b"salt", 2, None)),
        (
            key_of(&owner, &[7; 64]),
            signed(&owner, &[7; 64], u64::MAX, Some(&[0xab; 300])),
        ),
        (key_of(&owner, b"e"), signed(&owner, b"e", 3, Some(b""))),
    ];
    let mut by_error: BTreeMap<String, usize> = BTreeMap::new();
    let (mut tried, mut refused, mut plain, mut decoded) = (0, 0, 0, 0);
    while tried < MUTANTS {
        let (key, base) = &bases[rng.random_range(0..bases.len())];
        let donor = &bases[rng.random_range(0..bases.len())].1;
        let mutant = mutate(&mut rng, base, donor);
        if mutant == *base {
            continue;
        }
        tried += 1;
        match SignedRecord::decode(&mutant) {
            Ok(r) => {
                decoded += 1;
                // The encoding is canonical: whatever decodes re-encodes
                // to the same bytes.
                assert_eq!(r.encode(), mutant);
            }
            Err(e) => *by_error.entry(error_kind(&e)).or_default() += 1,
        }
        match SignedRecord::decode_verified(&mutant, key) {
            Ok(_) => panic!("mutant accepted: {mutant:02x?}"),
            Err(e) => {
                refused += 1;
                if SignedRecord::decode(&mutant).is_ok() {
                    *by_error.entry(error_kind(&e)).or_default() += 1;
                }
            }
        }
        for holding in [Some(base.as_slice()), None] {
            let d = store_decision(key, holding, &mutant, NOW);
            assert!(!accepted(&d), "holder accepted a mutant: {d:?}");
            if holding.is_none() && d == StoreDecision::NotARecord {
                // The magic itself was hit: now a plain value, which no
                // reader takes for a record.
                plain += 1;
            }
        }
        let pick = pick_newest(key, [mutant.as_slice(), base.as_slice()], NOW).unwrap();
        assert_eq!(pick.index, 1);
    }
    println!(
        "random mutations: {tried} tried, {refused} refused ({:.1}%), {decoded} well-formed \
         but unverifiable, {plain} no longer carried the magic (plain values); by reason: \
         {by_error:?}",
        100.0 * refused as f64 / tried as f64
    );
    assert_eq!(refused, tried);
}

fn mutate(rng: &mut rand::rngs::StdRng, base: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    let rounds = rng.random_range(1..=3);
    for _ in 0..rounds {
        let at = rng.random_range(0..=b.len());
        match rng.random_range(0..7) {
            0 if at < b.len() => b[at] ^= 1 << rng.random_range(0..8),
            1 if at < b.len() => b[at] = rng.random(),
            2 => b.truncate(at),
            3 => {
                let n = rng.random_range(1..64);
                b.extend((0..n).map(|_| rng.random::<u8>()));
            }
            4 => b.insert(at, rng.random()),
            5 if at < b.len() => {
                b.remove(at);
            }
            6 if !donor.is_empty() => {
                let from = rng.random_range(0..donor.len());
                let to = rng.random_range(from..=donor.len());
                let end = (at + (to - from)).min(b.len());
                let _replaced: Vec<u8> =
                    b.splice(at..end, donor[from..to].iter().copied()).collect();
            }
            _ => b.push(rng.random()),
        }
    }
    b
}

fn error_kind(e: &RecordError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Random bytes behind a valid magic: all refused, none panics.
#[test]
fn garbage_behind_the_magic_is_refused() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let key = key_of(&owner(), b"");
    let mut refused = 0;
    const N: usize = 10_000;
    for _ in 0..N {
        let len = rng.random_range(0..400);
        let mut b = b"KSR\x01".to_vec();
        b.extend((0..len).map(|_| rng.random::<u8>()));
        assert!(SignedRecord::decode_verified(&b, &key).is_err());
        assert!(matches!(
            store_decision(&key, None, &b, NOW),
            StoreDecision::Reject(_)
        ));
        let mut i = b"KIR\x01".to_vec();
        i.extend_from_slice(&b[4..]);
        assert!(verify_immutable(&key, &i).is_err());
        refused += 1;
    }
    println!("garbage behind the magic: {refused}/{N} refused");
}

/// The largest record, sent by Python's own rpcudp 5.0.1 code (the STORE a
/// Python `kademlia` peer makes when it republishes or hands the record
/// over): it goes out, byte for byte what our encoder makes; 10 bytes more
/// (past our 9 spare bytes) and rpcudp refuses to send it.
#[test]
fn largest_record_is_sent_by_python_rpcudp() {
    let owner = owner();
    let payload = vec![0x5a; dht_core::signed::max_payload_len(3)];
    let max = SignedRecord::sign(&owner, b"abc", 1, LATER, Some(&payload))
        .unwrap()
        .encode();
    assert_eq!(max.len(), MAX_RECORD_LEN);
    let mut over = max.clone();
    over.extend_from_slice(&[0; 10]);
    let sent = python_rpcudp_store(&[&max, &over]);
    assert_eq!(
        sent[1], "refused",
        "rpcudp sent a record 10 bytes past the limit"
    );
    let datagram = unhex(&sent[0]);
    let ours = encode_request(
        &[0; MSG_ID_LEN],
        &Request::Store {
            sender: NodeId([0xee; 20]),
            key: NodeId([0xdd; 20]),
            value: Value::Bytes(max),
        },
    );
    assert_eq!(datagram[0], ours[0]);
    assert_eq!(datagram[1 + MSG_ID_LEN..], ours[1 + MSG_ID_LEN..]);
    println!(
        "largest record: {MAX_RECORD_LEN} bytes, Python rpcudp STORE body {} bytes (limit 8192)",
        datagram.len() - 1 - MSG_ID_LEN
    );
}

const RPCUDP_STORE: &str = r#"
import asyncio, sys
from rpcudp.protocol import RPCProtocol
from rpcudp.exceptions import MalformedMessage

class Transport:
    def __init__(self):
        self.sent = []
    def sendto(self, data, addr):
        self.sent.append(data)

async def main():
    proto = RPCProtocol(wait_timeout=0.01)
    proto.transport = Transport()
    for line in sys.stdin.read().split():
        try:
            proto.store(("127.0.0.1", 9), b"\xee" * 20, b"\xdd" * 20, bytes.fromhex(line))
            print(proto.transport.sent[-1].hex())
        except MalformedMessage:
            print("refused")

asyncio.run(main())
"#;

/// Each record through rpcudp's own request encoder: the datagram in hex,
/// or "refused". Python comes from `$KADMIUM_PYTHON` as in the interop
/// tests (the Makefile exports the venv's); without rpcudp this fails with
/// a message saying so.
fn python_rpcudp_store(records: &[&[u8]]) -> Vec<String> {
    let python = std::env::var("KADMIUM_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let mut child = Command::new(&python)
        .args(["-c", RPCUDP_STORE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python:?} ({e}): run `make setup`"));
    let input: String = records.iter().map(|r| hex(r) + "\n").collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{python} with rpcudp==5.0.1 is needed (run `make setup`, or set KADMIUM_PYTHON): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Whatever order a holder receives an owner's records in (values and
/// tombstones, some more than once, mixed with forgeries, foreign records
/// and plain overwrites), it ends holding the newest: no interleaving of
/// STOREs rolls a key back or brings a deleted value back.
#[test]
fn any_order_of_stores_ends_at_the_newest_record() {
    const TRIALS: usize = 500;
    let (owner, attacker) = (owner(), attacker());
    let key = key_of(&owner, b"k");
    let genuine: Vec<Vec<u8>> = (1..=6u64)
        .map(|seq| {
            let payload = format!("v{seq}");
            let payload = (seq % 3 != 0).then_some(payload.as_bytes());
            signed(&owner, b"k", seq, payload)
        })
        .collect();
    let mut forged = signed(&owner, b"k", 99, Some(b"forged"));
    forged[20] ^= 4;
    let hostile = [
        forged,
        signed(&attacker, b"k", 100, Some(b"foreign")),
        b"plain overwrite".to_vec(),
        SignedRecord::sign(&owner, b"k", 98, NOW - 1, Some(b"expired"))
            .unwrap()
            .encode(),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(77);
    let mut stores = 0;
    for _ in 0..TRIALS {
        let mut arrivals: Vec<&Vec<u8>> = genuine.iter().chain(hostile.iter()).collect();
        // Replays: a few records arrive twice.
        for _ in 0..3 {
            arrivals.push(&genuine[rng.random_range(0..genuine.len())]);
        }
        rand::seq::SliceRandom::shuffle(arrivals.as_mut_slice(), &mut rng);
        let mut held: Option<Vec<u8>> = None;
        for incoming in arrivals {
            stores += 1;
            match store_decision(&key, held.as_deref(), incoming, NOW) {
                StoreDecision::Accept { .. } => held = Some(incoming.clone()),
                StoreDecision::NotARecord => {
                    // Plain value rules: stored when no record is held.
                    assert!(held.as_deref().is_none_or(|h| !h.starts_with(b"KSR")));
                    held = Some(incoming.clone());
                }
                StoreDecision::SameRecord | StoreDecision::Reject(_) => {}
            }
        }
        assert_eq!(held.as_ref(), genuine.last(), "ended on another record");
    }
    println!("{TRIALS} random store orders ({stores} STOREs): all ended at seq 6 (the delete)");
}
