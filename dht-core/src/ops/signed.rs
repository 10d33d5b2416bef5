//! Operations on signed and immutable records. A signed get is a FIND_VALUE
//! lookup that does not stop at the first value: it gathers the answers of
//! the k closest nodes (until they have all answered, or the operation's
//! deadline), returns the newest valid record ([`pick_newest`]) and sends
//! it back to the holders that answered with an older or invalid one and to
//! the closest node that had none (read repair). A signed put or delete runs
//! the same gathering lookup first — it yields both the newest record (for
//! the next sequence number and compare-and-swap) and the k closest nodes
//! (where the STOREs go) — then signs and stores. An immutable get gathers
//! too, but ends at the first answer that hashes to the key: a forged answer
//! is skipped and the lookup goes on.

use std::time::{Duration, Instant};

use rand::Rng;

use super::store::{send_stores, PutKind, PutReport, PutState};
use super::{Env, Event, Operation, Operations, Outcome};
use crate::error::Result;
use crate::id::{Key, NodeId};
use crate::lookup::{Lookup, LookupKind};
use crate::rpc::{Class, OpId, Outgoing, Purpose};
use crate::signed::{
    check_cas, next_seq, pick_newest, value_bytes, verify_immutable, Keypair, Newest, PublicKey,
    RecordError, SignedRecord,
};
use crate::value::Value;
use crate::wire::Request;

/// The current value of a signed record, as a get returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedValue {
    pub value: Vec<u8>,
    pub seq: u64,
    pub public_key: PublicKey,
    pub salt: Vec<u8>,
}

/// What a signed put or delete achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedPutReport {
    /// The sequence number of the record stored.
    pub seq: u64,
    pub report: PutReport,
}

/// A signed put (`payload: Some`) or delete (`payload: None`), as the
/// protocol command hands it over, already checked for size and TTL.
#[derive(Debug)]
pub struct SignedPut {
    pub keypair: Keypair,
    pub salt: Vec<u8>,
    pub payload: Option<Vec<u8>>,
    /// `None`: one more than the newest record found.
    pub seq: Option<u64>,
    /// The newest record found must have this sequence number.
    pub cas: Option<u64>,
    pub ttl: Duration,
}

#[derive(Debug)]
pub(super) enum Job {
    Get,
    Put(Box<SignedPut>),
    /// A compare-and-swap put whose STOREs are done, reading its record back.
    Confirm(Box<Confirm>),
    Immutable,
}

/// What a compare-and-swap put reads back. Holders keep the first record of
/// a sequence number they get and refuse others, and a STORE's answer does
/// not say why a holder refused; so writers racing with the same number
/// (the key pair on several nodes, all having read the same record) cannot
/// tell from their STOREs which of them won. Each reads the key back once
/// its STOREs are answered, as a reader would (`pick_newest` over the
/// holders' answers, its own copy left out): a record of its number or a
/// newer one that is not its own means its update is not what readers see,
/// and it fails with `CasMismatch` instead of being lost silently.
#[derive(Debug)]
pub(super) struct Confirm {
    /// The put's record, as stored.
    ours: Vec<u8>,
    seq: u64,
    cas: u64,
    report: PutReport,
}

#[derive(Debug)]
pub(super) struct RecordOp {
    pub lookup: Lookup,
    pub job: Job,
}

fn never(_: &NodeId, _: &Value) -> bool {
    false
}

fn hashes_to_key(key: &NodeId, value: &Value) -> bool {
    verify_immutable(key, value_bytes(value)).is_ok()
}

impl Operations {
    /// The newest signed record under `key`; the event is
    /// [`Outcome::SignedGet`].
    pub fn get_signed<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        key: Key,
    ) -> OpId {
        self.start_record_op(env, now, key, Job::Get, never)
    }

    /// Find the newest record under the put's key, then sign and store the
    /// new one; the event is [`Outcome::SignedPut`].
    pub fn put_signed<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        put: SignedPut,
    ) -> OpId {
        let key = crate::signed::record_key(&put.keypair.public_key(), &put.salt);
        self.start_record_op(env, now, key, Job::Put(Box::new(put)), never)
    }

    /// The immutable record under `key`, checked by hashing; the event is
    /// [`Outcome::ImmutableGet`].
    pub fn get_immutable<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        key: Key,
    ) -> OpId {
        if let Some(item) = env.records.get(&key, now) {
            if let Ok(payload) = verify_immutable(&key, value_bytes(&item.value)) {
                let op = self.new_user_op(env, now);
                let outcome = Outcome::ImmutableGet(Ok(Some(payload.to_vec())));
                env.events.push_back(Event { op, outcome });
                return op;
            }
        }
        self.start_record_op(env, now, key, Job::Immutable, hashes_to_key)
    }

    fn start_record_op<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        key: Key,
        job: Job,
        sufficient: crate::lookup::Sufficient,
    ) -> OpId {
        let op = self.new_user_op(env, now);
        let lookup = self
            .new_lookup(env, now, key, LookupKind::FindValue)
            .gathering(sufficient);
        self.ops
            .insert(op, Operation::Record(Box::new(RecordOp { lookup, job })));
        self.drive(env, now, op);
        op
    }

    /// A compare-and-swap put's STOREs are answered: read its key back
    /// under the same operation (and deadline) before reporting it.
    pub(super) fn confirm_put<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
        seq: u64,
        cas: u64,
        put: PutState,
    ) {
        let Value::Bytes(ours) = put.value else {
            // A signed put's value is always its record's bytes.
            let outcome = Outcome::SignedPut(Ok(SignedPutReport {
                seq,
                report: put.report,
            }));
            return env.events.push_back(Event { op, outcome });
        };
        let confirm = Confirm {
            ours,
            seq,
            cas,
            report: put.report,
        };
        let lookup = self
            .new_lookup(env, now, put.key, LookupKind::FindValue)
            .gathering(never);
        let job = Job::Confirm(Box::new(confirm));
        self.ops
            .insert(op, Operation::Record(Box::new(RecordOp { lookup, job })));
        self.drive(env, now, op);
    }

    /// The gathering lookup of `record` is done.
    pub(super) fn record_lookup_done<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
        record: RecordOp,
    ) {
        let RecordOp { mut lookup, job } = record;
        let outcome = match job {
            Job::Get => {
                let found = finish_get(env, now, &lookup, &mut self.counters.read_repairs);
                Outcome::SignedGet(Ok(found))
            }
            Job::Immutable => {
                let found = lookup.take_value().and_then(|(value, _)| {
                    verify_immutable(&lookup.target(), value_bytes(&value))
                        .ok()
                        .map(<[u8]>::to_vec)
                });
                Outcome::ImmutableGet(Ok(found))
            }
            Job::Confirm(confirm) => confirm_outcome(env, now, &lookup, *confirm),
            Job::Put(put) => match sign_after_lookup(env, now, &lookup, &put) {
                Err(e) => Outcome::SignedPut(Err(e)),
                Ok((seq, value, ttl)) => {
                    let mut state =
                        PutState::new(lookup.target(), value, ttl, env.k, PutKind::User, None);
                    state.signed_seq = Some(seq);
                    state.confirm_cas = put.cas;
                    send_stores(env, now, op, &mut state, &lookup);
                    return self.storing(env, now, op, Box::new(state));
                }
            },
        };
        env.events.push_back(Event { op, outcome });
    }

    /// The operation's deadline passed during its lookup: a get answers
    /// with what it gathered so far, a put fails.
    pub(super) fn record_deadline<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        record: RecordOp,
    ) -> Outcome {
        let RecordOp { mut lookup, job } = record;
        match job {
            Job::Get => {
                let found = finish_get(env, now, &lookup, &mut self.counters.read_repairs);
                Outcome::SignedGet(Ok(found))
            }
            Job::Immutable => {
                Outcome::ImmutableGet(Ok(lookup.take_value().and_then(|(value, _)| {
                    verify_immutable(&lookup.target(), value_bytes(&value))
                        .ok()
                        .map(<[u8]>::to_vec)
                })))
            }
            Job::Put(_) | Job::Confirm(_) => Outcome::SignedPut(Err(crate::Error::Timeout)),
        }
    }
}

/// A compare-and-swap put's outcome from its read-back (see [`Confirm`]):
/// it failed if a holder answers with another valid record of its number,
/// whichever sorts higher: a writer whose lookup read the old record after
/// a rival's read-back had confirmed the rival must fail too. A newer
/// record says nothing either way (a later writer may have built on ours or
/// on a rival's), so it does not fail the put. Failing, the put keeps the
/// rival in place of its own copy (unless something else has replaced that
/// meanwhile), so a reader reaching this node does not find the record
/// that lost.
fn confirm_outcome<R: Rng + ?Sized>(
    env: &mut Env<'_, R>,
    now: Instant,
    lookup: &Lookup,
    confirm: Confirm,
) -> Outcome {
    let key = lookup.target();
    let now_unix = env.clock.unix_at(now);
    let rival = lookup
        .answers()
        .iter()
        .map(|(_, v)| value_bytes(v))
        .filter(|bytes| *bytes != confirm.ours.as_slice())
        .find_map(|bytes| {
            SignedRecord::decode(bytes)
                .ok()
                .filter(|r| {
                    r.seq() == confirm.seq && !r.is_expired(now_unix) && r.verify(&key).is_ok()
                })
                .map(|r| (bytes.to_vec(), r.expires_unix()))
        });
    let Some((rival, expires_unix)) = rival else {
        // Its record, or nothing of its number but it (no holder may have
        // taken it: the report says so).
        return Outcome::SignedPut(Ok(SignedPutReport {
            seq: confirm.seq,
            report: confirm.report,
        }));
    };
    let still_ours = env
        .records
        .get(&key, now)
        .is_some_and(|item| value_bytes(&item.value) == confirm.ours.as_slice());
    if still_ours {
        let expires_at = env.clock.instant_of(now, expires_unix);
        env.records
            .keep_record(now, key, Value::Bytes(rival), expires_at, false, env.rng);
    }
    Outcome::SignedPut(Err(crate::Error::CasMismatch {
        expected: confirm.cas,
        found: Some(confirm.seq),
    }))
}

/// The newest record among this node's copy and the gathered answers.
/// Index 0 of the candidates is the local copy (empty bytes if none).
fn newest_known<R: Rng + ?Sized>(
    env: &Env<'_, R>,
    now: Instant,
    lookup: &Lookup,
) -> (Vec<u8>, Option<Newest>) {
    let key = lookup.target();
    let local = env
        .records
        .get(&key, now)
        .map(|item| value_bytes(&item.value).to_vec())
        .unwrap_or_default();
    let answers = lookup.answers().iter().map(|(_, v)| value_bytes(v));
    let candidates = std::iter::once(&local[..]).chain(answers);
    let newest = pick_newest(&key, candidates, env.clock.unix_at(now));
    (local, newest)
}

/// Pick the newest record, repair the holders, keep it locally if this
/// node held an older one, and return its value (none for a tombstone).
fn finish_get<R: Rng + ?Sized>(
    env: &mut Env<'_, R>,
    now: Instant,
    lookup: &Lookup,
    repairs_sent: &mut u64,
) -> Option<SignedValue> {
    let (local, newest) = newest_known(env, now, lookup);
    let newest = newest?;
    let record = &newest.record;
    let bytes = record.encode();
    let key = lookup.target();
    let answers = lookup.answers();
    if !local.is_empty() && newest.outdated.contains(&0) {
        let expires_at = env.clock.instant_of(now, record.expires_unix());
        env.records.keep_record(
            now,
            key,
            Value::Bytes(bytes.clone()),
            expires_at,
            false,
            env.rng,
        );
    }
    let mut repair: Vec<_> = newest
        .outdated
        .iter()
        .filter_map(|i| i.checked_sub(1).and_then(|i| answers.get(i)))
        .map(|(contact, _)| *contact)
        .collect();
    let without = lookup
        .closest_responded()
        .into_iter()
        .find(|c| answers.iter().all(|(holder, _)| holder.id != c.id));
    repair.extend(without);
    let ttl = record.expires_unix().saturating_sub(env.clock.unix_at(now));
    let store = Request::Store {
        sender: env.own,
        key,
        value: Value::Bytes(bytes),
    };
    for contact in repair {
        let out = Outgoing {
            to: contact.addr,
            peer: Some(contact.id),
            request: &store,
            purpose: Purpose::Unawaited,
            class: Class::User,
            ttl_secs: u32::try_from(ttl.max(1)).unwrap_or(u32::MAX),
            flags: 0,
        };
        if env.out.request(now, env.rng, out) {
            *repairs_sent += 1;
        }
    }
    let value = record.payload()?.to_vec();
    Some(SignedValue {
        value,
        seq: record.seq(),
        public_key: *record.public_key(),
        salt: record.salt().to_vec(),
    })
}

/// The record a put stores, given what its lookup found: sequence number,
/// compare-and-swap, expiry (a tombstone outlives what it deletes), the
/// signature; kept locally too. Returns its sequence number, bytes and the
/// lifetime its STOREs announce.
fn sign_after_lookup<R: Rng + ?Sized>(
    env: &mut Env<'_, R>,
    now: Instant,
    lookup: &Lookup,
    put: &SignedPut,
) -> Result<(u64, Value, Duration)> {
    let (_, newest) = newest_known(env, now, lookup);
    let current = newest.as_ref().map(|n| &n.record);
    check_cas(put.cas, current)?;
    let seq = match (put.seq, current) {
        (None, current) => next_seq(current)?,
        (Some(seq), Some(held)) if held.seq() == seq => {
            return Err(RecordError::ConflictingRecord { seq }.into())
        }
        (Some(seq), Some(held)) if held.seq() > seq => {
            return Err(RecordError::StaleSequence {
                held: held.seq(),
                offered: seq,
            }
            .into())
        }
        (Some(seq), _) => seq,
    };
    if put.payload.is_some() && seq == u64::MAX {
        // The last number is kept for a delete (see `Protocol::put_signed`).
        return Err(RecordError::SequenceExhausted.into());
    }
    let now_unix = env.clock.unix_at(now);
    let mut expires = now_unix.saturating_add(put.ttl.as_secs().max(1));
    if put.payload.is_none() {
        // A tombstone must be held at least as long as the record it
        // deletes could be, or an older copy could come back after it.
        expires = expires.max(current.map_or(0, SignedRecord::expires_unix));
    }
    let record = SignedRecord::sign(
        &put.keypair,
        &put.salt,
        seq,
        expires,
        put.payload.as_deref(),
    )?;
    let value = Value::Bytes(record.encode());
    let expires_at = env.clock.instant_of(now, expires);
    env.records.keep_record(
        now,
        lookup.target(),
        value.clone(),
        expires_at,
        false,
        env.rng,
    );
    Ok((seq, value, Duration::from_secs(expires - now_unix)))
}
