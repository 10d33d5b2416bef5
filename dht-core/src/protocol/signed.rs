//! The commands for signed and immutable records: argument checks, then the
//! operations of [`crate::ops`] do the work (a gathering lookup, then
//! signing and storing, or picking the newest and read repair). The key
//! pair is handed in per command and kept only by that operation.

use std::time::{Duration, Instant};

use super::{Protocol, PutOptions};
use crate::error::{Error, Result};
use crate::id::Key;
use crate::ops::SignedPut;
use crate::rpc::OpId;
use crate::signed::{
    immutable, max_payload_len, record_key, store_decision_for_values, Keypair, PublicKey,
    RecordError, StoreDecision, MAX_SALT_LEN,
};
use crate::value::Value;

/// Options of a signed put.
#[derive(Clone, Debug, Default)]
pub struct SignedPutOptions {
    /// Sequence number of the new record; `None` means one more than the
    /// newest record found.
    pub seq: Option<u64>,
    /// Compare-and-swap: the put fails with [`Error::CasMismatch`] unless
    /// the newest record found (a tombstone counts) has this sequence number.
    pub cas: Option<u64>,
    /// Lifetime of the record, signed into it; `None` means
    /// `Config::default_ttl`. Capped at `Config::max_ttl`.
    pub ttl: Option<Duration>,
}

impl Protocol {
    /// What [`Protocol::put_signed`] refuses whatever this node holds or how
    /// it is set up: a salt over [`MAX_SALT_LEN`] and `seq` 2**64 - 1
    /// ([`Error::InvalidArgument`]), a value over [`max_payload_len`] of the
    /// salt ([`Error::ValueTooLarge`]). Bindings call it before an
    /// asynchronous put returns, so that such a put fails at once there too.
    pub fn check_signed_put(salt: &[u8], value: &[u8], seq: Option<u64>) -> Result<()> {
        // First: the value limit depends on the salt's length (a salt over
        // the limit gave "value too large ... maximum 0").
        check_salt(salt)?;
        let max = max_payload_len(salt.len());
        if value.len() > max {
            return Err(Error::ValueTooLarge {
                size: value.len(),
                max,
            });
        }
        if seq == Some(u64::MAX) {
            // A record there could never be updated or deleted until it expired.
            return Err(Error::InvalidArgument(
                "seq must be below 2**64 - 1 (the last number is kept for a delete)".into(),
            ));
        }
        Ok(())
    }

    /// Store `value` under SHA-1(public key ‖ `salt`), signed with
    /// `keypair`. The event is [`crate::Outcome::SignedPut`] with the
    /// sequence number used.
    pub fn put_signed(
        &mut self,
        now: Instant,
        keypair: &Keypair,
        salt: &[u8],
        value: &[u8],
        options: SignedPutOptions,
    ) -> Result<OpId> {
        Self::check_signed_put(salt, value, options.seq)?;
        let ttl = options
            .ttl
            .unwrap_or(self.config.default_ttl)
            .min(self.config.max_ttl);
        if ttl.as_secs() == 0 {
            return Err(Error::InvalidArgument("ttl must be at least 1 s".into()));
        }
        let put = SignedPut {
            keypair: keypair.clone(),
            salt: salt.to_vec(),
            payload: Some(value.to_vec()),
            seq: options.seq,
            cas: options.cas,
            ttl,
        };
        self.start_signed_put(now, put)
    }

    /// Delete the record under SHA-1(public key ‖ `salt`): store a signed
    /// tombstone with the next sequence number, held at least as long as
    /// the record it replaces. The event is [`crate::Outcome::SignedPut`].
    pub fn delete_signed(&mut self, now: Instant, keypair: &Keypair, salt: &[u8]) -> Result<OpId> {
        let put = SignedPut {
            keypair: keypair.clone(),
            salt: salt.to_vec(),
            payload: None,
            seq: None,
            cas: None,
            ttl: self.config.default_ttl.min(self.config.max_ttl),
        };
        self.start_signed_put(now, put)
    }

    fn start_signed_put(&mut self, now: Instant, put: SignedPut) -> Result<OpId> {
        check_salt(&put.salt)?;
        if self.contacts.table().is_empty() {
            return Err(Error::NoPeers);
        }
        let (ops, mut env) = self.split();
        Ok(ops.put_signed(&mut env, now, put))
    }

    /// The newest record under SHA-1(`public_key` ‖ `salt`). The event is
    /// [`crate::Outcome::SignedGet`]: `None` when there is no valid record
    /// or it was deleted.
    pub fn get_signed(
        &mut self,
        now: Instant,
        public_key: &PublicKey,
        salt: &[u8],
    ) -> Result<OpId> {
        check_salt(salt)?;
        let key = record_key(public_key, salt);
        let (ops, mut env) = self.split();
        Ok(ops.get_signed(&mut env, now, key))
    }

    /// Store `value` under SHA-1 of its record (see
    /// [`crate::signed::immutable`]); returns that key and the put's
    /// operation, whose event is [`crate::Outcome::Put`].
    pub fn put_immutable(
        &mut self,
        now: Instant,
        value: &[u8],
        options: PutOptions,
    ) -> Result<(Key, OpId)> {
        let (key, bytes) = immutable(value)?;
        let op = self.put(now, key, Value::Bytes(bytes), options)?;
        Ok((key, op))
    }

    /// The immutable value under `key`. The event is
    /// [`crate::Outcome::ImmutableGet`]; answers that do not hash to `key`
    /// are skipped.
    pub fn get_immutable(&mut self, now: Instant, key: Key) -> OpId {
        let (ops, mut env) = self.split();
        ops.get_immutable(&mut env, now, key)
    }

    /// STOREs sent by signed gets to holders of outdated copies (read repair).
    pub fn read_repairs_sent(&self) -> u64 {
        self.ops.counters.read_repairs
    }

    /// The unix time at `now`, as this node sees it.
    pub fn unix_time(&self, now: Instant) -> u64 {
        self.clock.unix_at(now)
    }

    /// A local put of `value` must obey the storing node's record rules
    /// too: it cannot replace a held record with a plain value or an older
    /// record.
    pub(super) fn check_record_rules(&self, now: Instant, key: &Key, value: &Value) -> Result<()> {
        let held = self.records.get(key, now).map(|h| h.value);
        let now_unix = self.unix_time(now);
        match store_decision_for_values(key, held.as_ref(), value, now_unix) {
            StoreDecision::Reject(why) => Err(why.into()),
            _ => Ok(()),
        }
    }
}

/// A salt over the limit is the caller's mistake, not a bad record: an
/// invalid argument, as the C ABI's check before it reports it.
fn check_salt(salt: &[u8]) -> Result<()> {
    if salt.len() > MAX_SALT_LEN {
        return Err(Error::InvalidArgument(
            RecordError::SaltTooLong { len: salt.len() }.to_string(),
        ));
    }
    Ok(())
}
