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
use crate::records::{IncomingStore, RecordStore};
use crate::signed::{store_decision_for_values, value_bytes, SignedRecord, StoreDecision};
use crate::value::Value;
use crate::wall_clock::WallClock;

/// What became of a STORE.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Neither value is a record: the plain value rules apply (to the
    /// value handed back).
    Plain(Value),
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
    let held = records.get(&key, now);
    let now_unix = clock.unix_at(now);
    let decision =
        store_decision_for_values(&key, held.as_ref().map(|h| &h.value), &value, now_unix);
    let expires_at = match decision {
        StoreDecision::NotARecord => return Verdict::Plain(value),
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
