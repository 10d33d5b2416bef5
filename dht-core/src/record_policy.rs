//! The storing node's rule for signed and immutable records, between the
//! responder and the record store. A STORE whose value or held value is a
//! record is decided by [`crate::signed::store_decision`] alone: refused
//! (answer `false`, nothing changes), or kept with the record's own expiry
//! — the signer's decision, carried inside the signed part, so no relaying
//! node can extend or shorten it. A value record is still held no longer
//! than the node's `max_ttl` (its owner re-puts it); a tombstone is held to
//! its expiry, however far (up to [`crate::wall_clock::FURTHEST`]), so that
//! the copies it deletes cannot come back. Immutable records follow the
//! plain TTL rules. Plain values never reach this module's decisions.

use std::time::{Duration, Instant};

use rand::Rng;
use tracing::debug;

use crate::id::Key;
use crate::records::{HeldCopy, IncomingStore, RecordStore};
use crate::signed::{
    is_immutable_record, is_signed_record, store_decision_for_values, value_bytes, SignedRecord,
    StoreDecision,
};
use crate::value::Value;
use crate::wall_clock::WallClock;

/// What became of a STORE.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Neither value is a record: the plain value rules apply (to the
    /// value handed back, over the copy held, if any:
    /// [`RecordStore::accept_store_over`]).
    Plain(Value, Option<HeldCopy>),
    /// A record decision; the STORE's answer.
    Record(bool),
}

/// Decide a STORE of `value` under `key` (and keep it if it is a record
/// that may be kept).
#[allow(clippy::too_many_arguments)]
pub fn store_record<R: Rng + ?Sized>(
    records: &mut RecordStore,
    clock: &WallClock,
    max_ttl: Duration,
    now: Instant,
    key: Key,
    value: Value,
    store: IncomingStore,
    rng: &mut R,
) -> Verdict {
    let now_unix = clock.unix_at(now);
    // A plain value over a plain value (or nothing) is decided where the
    // held value lies, copying nothing. Where a record is involved the held
    // value is copied and decided on outside: a backend lends it under its
    // lock (the Python package's, which Python reads), and deciding checks
    // signatures.
    let incoming_plain = !is_record_bytes(value_bytes(&value));
    let held = records.peek(&key, now, |held| {
        let copy = HeldCopy::of(held);
        let plain = incoming_plain && !is_record_bytes(value_bytes(&held.value));
        (copy, (!plain).then(|| held.value.clone()))
    });
    let (held, decision) = match held {
        Some((copy, None)) => (Some(copy), StoreDecision::NotARecord),
        Some((copy, Some(held_value))) => (
            Some(copy),
            store_decision_for_values(&key, Some(&held_value), &value, now_unix),
        ),
        None => (
            None,
            store_decision_for_values(&key, None, &value, now_unix),
        ),
    };
    let expires_at = match decision {
        StoreDecision::NotARecord => return Verdict::Plain(value, held),
        StoreDecision::Reject(why) => {
            debug!(%key, %why, "record refused");
            return Verdict::Record(false);
        }
        StoreDecision::Accept {
            expires_unix: Some(unix),
        } => record_expiry(clock, max_ttl, now, unix, &value),
        StoreDecision::SameRecord => match SignedRecord::decode(value_bytes(&value)) {
            Ok(record) => record_expiry(clock, max_ttl, now, record.expires_unix(), &value),
            // The same immutable record: plain TTL rules, never earlier.
            Err(_) => held.map_or(now, |h| h.expires_at).max(now + store.ttl),
        },
        StoreDecision::Accept { expires_unix: None } => now + store.ttl,
    };
    Verdict::Record(records.keep_record(now, key, value, expires_at, store.cached, rng))
}

/// Whether `bytes` carry a record magic (signed or immutable): such bytes
/// are never a plain value (see [`crate::signed::store_decision`]).
fn is_record_bytes(bytes: &[u8]) -> bool {
    is_signed_record(bytes) || is_immutable_record(bytes)
}

/// When a signed record's copy here lapses: at its own expiry, a value
/// record at most `max_ttl` from now.
fn record_expiry(
    clock: &WallClock,
    max_ttl: Duration,
    now: Instant,
    expires_unix: u64,
    value: &Value,
) -> Instant {
    let at = clock.instant_of(now, expires_unix);
    let tombstone = SignedRecord::decode(value_bytes(value)).is_ok_and(|r| r.is_tombstone());
    if tombstone {
        at
    } else {
        at.min(now + max_ttl)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::records::RefreshIntervals;
    use crate::signed::{record_key, Keypair};
    use crate::storage::{MemoryStorage, Origin};
    use rand::SeedableRng;

    const HOUR: Duration = Duration::from_secs(3600);
    const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
    const UNIX: u64 = 1_700_000_000;

    struct Holder {
        records: RecordStore,
        clock: WallClock,
        rng: rand::rngs::StdRng,
        now: Instant,
    }

    impl Holder {
        fn new() -> Self {
            let now = Instant::now();
            let intervals = RefreshIntervals {
                replicate_interval: HOUR,
                republish_interval: 24 * HOUR,
            };
            let storage = Box::new(MemoryStorage::new(1000, 1 << 20));
            Holder {
                records: RecordStore::new(storage, intervals),
                clock: WallClock::new(now, UNIX),
                rng: rand::rngs::StdRng::seed_from_u64(1),
                now,
            }
        }

        fn store(&mut self, key: Key, value: Vec<u8>, cached: bool) -> Verdict {
            let store = IncomingStore { ttl: HOUR, cached };
            store_record(
                &mut self.records,
                &self.clock,
                MAX_TTL,
                self.now,
                key,
                Value::Bytes(value),
                store,
                &mut self.rng,
            )
        }
    }

    fn record(seq: u64, expires_in: u64, payload: Option<&[u8]>) -> (Key, Vec<u8>) {
        let kp = Keypair::from_secret([1; 32]);
        let r = SignedRecord::sign(&kp, b"", seq, UNIX + expires_in, payload).unwrap();
        (record_key(&kp.public_key(), b""), r.encode())
    }

    #[test]
    fn the_record_owns_its_expiry_and_tombstones_outlive_max_ttl() {
        let mut h = Holder::new();
        let year = 365 * 24 * 3600;
        let (key, value) = record(1, year, Some(b"v"));
        assert_eq!(h.store(key, value, false), Verdict::Record(true));
        let held = h.records.get(&key, h.now).unwrap();
        assert_eq!(
            held.expires_at,
            h.now + MAX_TTL,
            "a value record: max_ttl at most"
        );
        let (_, tombstone) = record(2, year, None);
        assert_eq!(
            h.store(key, tombstone.clone(), false),
            Verdict::Record(true)
        );
        let held = h.records.get(&key, h.now).unwrap();
        assert_eq!(held.value, Value::Bytes(tombstone));
        assert_eq!(
            held.expires_at,
            h.now + Duration::from_secs(year),
            "its own expiry"
        );
        // The STORE's TTL (1 h here) moves neither.
        let (_, short) = record(3, 60, Some(b"short"));
        assert_eq!(h.store(key, short, false), Verdict::Record(true));
        let held = h.records.get(&key, h.now).unwrap();
        assert_eq!(held.expires_at, h.now + Duration::from_secs(60));
    }

    #[test]
    fn plain_values_and_older_records_never_replace_a_record() {
        let mut h = Holder::new();
        let (key, v2) = record(2, 3600, Some(b"v2"));
        let (_, v1) = record(1, 3600, Some(b"v1"));
        assert_eq!(h.store(key, v2.clone(), false), Verdict::Record(true));
        assert_eq!(h.store(key, v1, false), Verdict::Record(false));
        let plain = b"plain".to_vec();
        let store = IncomingStore {
            ttl: HOUR,
            cached: false,
        };
        let verdict = store_record(
            &mut h.records,
            &h.clock,
            MAX_TTL,
            h.now,
            key,
            Value::Bytes(plain),
            store,
            &mut h.rng,
        );
        assert_eq!(verdict, Verdict::Record(false));
        assert_eq!(h.records.get(&key, h.now).unwrap().value, Value::Bytes(v2));
        // Where nothing is held, a plain value goes to the plain rules.
        let other = crate::id::NodeId::digest(b"elsewhere");
        let verdict = store_record(
            &mut h.records,
            &h.clock,
            MAX_TTL,
            h.now,
            other,
            Value::from("x"),
            store,
            &mut h.rng,
        );
        assert!(
            matches!(&verdict, Verdict::Plain(v, _) if *v == Value::from("x")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_cached_record_is_upgraded_by_a_replica_and_replaces_the_publishers_copy() {
        let mut h = Holder::new();
        let (key, v1) = record(1, 3600, Some(b"v1"));
        assert_eq!(h.store(key, v1.clone(), true), Verdict::Record(true));
        assert_eq!(h.records.get(&key, h.now).unwrap().origin, Origin::Cached);
        assert_eq!(h.store(key, v1, false), Verdict::Record(true));
        assert_eq!(h.records.get(&key, h.now).unwrap().origin, Origin::Held);
        // A publisher's copy of an older record gives way to a newer one.
        let (_, v2) = record(2, 3600, Some(b"v2"));
        let published = Value::Bytes(record(1, 3600, Some(b"mine")).1);
        h.records.publish(h.now, key, published, HOUR).unwrap();
        assert_eq!(h.store(key, v2.clone(), false), Verdict::Record(true));
        let held = h.records.get(&key, h.now).unwrap();
        assert_eq!((held.value, held.origin), (Value::Bytes(v2), Origin::Held));
    }
}
