//! How long a value lives and who re-sends it: the one place that decides.
//!
//! [`RecordStore`] wraps the storage backend and keeps two due-time queues
//! beside it, and the eviction order (`record_schedule.rs`), so no timer
//! ever scans every key:
//!
//! - **Expiry.** A value is served until its `expires_at` and removed then. A
//!   STORE never moves a held copy's expiry earlier: a stale replica, a cached
//!   copy or a hostile peer re-sending a short remainder cannot shorten it.
//! - **Re-sending.** A *published* value (put by this node's user) is re-put
//!   with its full TTL every [`republish_period`] — always before any copy
//!   can lapse, whatever the TTL — and its local copy is renewed at the same
//!   time, so it stays retrievable for as long as its publisher runs and is
//!   gone at most one TTL after the publisher stops. A remote STORE never
//!   replaces the publisher's own copy. A *held* value (stored here by a peer)
//!   is re-sent to the current k closest nodes every replicate interval with
//!   its remaining lifetime only; receiving a STORE for it postpones that by
//!   an interval (the paper's §2.5 optimisation: one holder re-sends for all).
//!   A *cached* copy gets the distance-decayed expiry its sender chose and is
//!   never re-sent.
//!
//! Churn repair moves a held key's next re-send earlier ([`RecordStore::
//! resend_soon`]); [`crate::replication`] decides when.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::{Error, Result};
use crate::id::{Key, NodeId};
use crate::record_schedule::{EvictionRank, Schedule};
pub use crate::refresh::{republish_period, RefreshIntervals};
use crate::storage::{Origin, Storage, StoredValue};
use crate::value::Value;

/// Values evicted at most to make room for one.
const MAX_EVICTIONS_PER_PUT: usize = 16;

/// A value due to be re-sent to the k closest nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Resend {
    pub key: Key,
    pub value: Value,
    /// The lifetime the STOREs carry: the full TTL when republishing, the
    /// remaining lifetime when replicating.
    pub ttl: Duration,
    pub republish: bool,
}

/// What the STORE rules need of a copy already held: when it lapses and
/// why it is held (not the value, which a backend would have to copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldCopy {
    pub expires_at: Instant,
    pub origin: Origin,
}

impl HeldCopy {
    pub fn of(item: &StoredValue) -> Self {
        HeldCopy {
            expires_at: item.expires_at,
            origin: item.origin,
        }
    }
}

/// What a STORE from a peer asks for.
#[derive(Clone, Copy, Debug)]
pub struct IncomingStore {
    pub ttl: Duration,
    /// A copy cached after a lookup, not a replica.
    pub cached: bool,
}

pub struct RecordStore {
    storage: Box<dyn Storage>,
    intervals: RefreshIntervals,
    /// When each value expires and is due to be sent again, and which goes
    /// first when room must be made. Boxed, and made when the first value
    /// arrives: most nodes of a large simulated network never hold one (it
    /// is 144 bytes; unboxed, its earlier form was 216 of the 2,368 bytes
    /// of every node).
    schedule: Option<Box<Schedule>>,
    /// This node's id, which eviction measures distances from.
    own: NodeId,
    /// Keys removed (expired or evicted) since the last `take_removed`.
    removed: Vec<Key>,
}

impl RecordStore {
    /// Wrap `storage`, which must be empty or hold only values this store
    /// put there before (see [`RecordStore::adopt_existing`]).
    pub fn new(storage: Box<dyn Storage>, intervals: RefreshIntervals) -> Self {
        RecordStore {
            storage,
            intervals,
            schedule: None,
            own: NodeId::default(),
            removed: Vec::new(),
        }
    }

    /// Measure eviction distances from `own` (this node's id).
    pub fn with_owner(mut self, own: NodeId) -> Self {
        self.own = own;
        self
    }

    /// Keys removed (expired or evicted) since the last call.
    pub fn take_removed(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.removed)
    }

    fn rank(&self, key: &Key, origin: Origin) -> Option<EvictionRank> {
        let class = match origin {
            Origin::Cached => 0,
            Origin::Held => 1,
            Origin::Published { .. } => return None,
        };
        Some((class, Reverse(self.own.distance(key))))
    }

    /// Give back the room a burst of keys left in the schedule's time
    /// orders (see `idle_memory.rs`).
    pub fn release_idle_memory(&mut self) {
        if let Some(schedule) = self.schedule.as_deref_mut() {
            schedule.release_idle_memory();
        }
    }

    /// The schedule, made if there is none yet (a value is arriving).
    fn schedule(&mut self) -> &mut Schedule {
        self.schedule.get_or_insert_with(Box::default)
    }

    /// Drop everything about `key` (its value already left the backend).
    fn forget(&mut self, key: &Key) {
        if let Some(schedule) = self.schedule.as_deref_mut() {
            schedule.forget(key);
        }
        self.removed.push(*key);
    }

    /// Evict the value ranked lowest, if it ranks below `incoming` (None:
    /// the node's own value, which outranks everything). Returns whether a
    /// value went.
    fn evict_below(&mut self, key: &Key, incoming: Option<EvictionRank>) -> bool {
        let first = self.schedule.as_deref_mut().and_then(|s| s.lowest_ranked());
        let Some((rank, victim)) = first else {
            return false;
        };
        if victim == *key || incoming.is_some_and(|r| rank >= r) {
            return false;
        }
        self.storage.remove(&victim);
        self.forget(&victim);
        true
    }

    /// Schedule expiry and re-sending of everything already in the backend
    /// (a backend that kept values from an earlier run). Republishing and
    /// replication start soon, spread over `spread`.
    pub fn adopt_existing<R: Rng + ?Sized>(&mut self, now: Instant, spread: Duration, rng: &mut R) {
        let mut start = Key::default();
        loop {
            let keys = self.storage.keys_from(&start, 1024);
            let Some(last) = keys.last().copied() else {
                return;
            };
            for key in keys {
                if let Some(item) = self.storage.get(&key) {
                    let rank = self.rank(&key, item.origin);
                    let resend = (item.origin != Origin::Cached)
                        .then(|| now + spread.mul_f64(rng.random::<f64>()));
                    self.schedule().kept(key, item.expires_at, rank, resend);
                }
            }
            match last.successor() {
                Some(next) => start = next,
                None => return,
            }
        }
    }

    pub fn len(&self) -> usize {
        self.storage.len()
    }

    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.storage.bytes()
    }

    /// The live value under `key`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<StoredValue> {
        self.storage.get(key).filter(|v| v.is_live(now))
    }

    /// `f` of the live value under `key`, without copying the value (see
    /// [`Storage::inspect`]); None when nothing live is held.
    pub fn peek<T>(&self, key: &Key, now: Instant, f: impl FnOnce(&StoredValue) -> T) -> Option<T> {
        let (mut f, mut out) = (Some(f), None);
        self.storage.inspect(key, &mut |held| {
            if let (Some(held), Some(f)) = (held.filter(|v| v.is_live(now)), f.take()) {
                out = Some(f(held));
            }
        });
        out
    }

    /// Whether a live value is held under `key`.
    pub fn holds(&self, key: &Key, now: Instant) -> bool {
        self.peek(key, now, |_| ()).is_some()
    }

    /// What the STORE rules need of the live copy held under `key`.
    pub fn held_copy(&self, key: &Key, now: Instant) -> Option<HeldCopy> {
        self.peek(key, now, HeldCopy::of)
    }

    /// Up to `limit` held keys from `start` on, ascending (for bounded walks).
    pub fn keys_from(&self, start: &Key, limit: usize) -> Vec<Key> {
        self.storage.keys_from(start, limit)
    }

    /// This node's user puts `value`: keep it as the publisher's copy and
    /// schedule its republishing.
    pub fn publish(&mut self, now: Instant, key: Key, value: Value, ttl: Duration) -> Result<()> {
        let item = StoredValue {
            value,
            expires_at: now + ttl,
            origin: Origin::Published { ttl },
        };
        let period = republish_period(ttl, &self.intervals);
        self.put(key, item, Some(now + period))
    }

    /// This node's own put of `value` with a fixed lifetime
    /// ([`crate::protocol::Lifetime::Fixed`]): kept as a holder keeps a
    /// replica, expiring `ttl` from now. It replaces a publisher's copy of
    /// the key, which a peer's STORE never does: the user's new value is
    /// meant, and its lifetime is now fixed, no longer renewed. Over a
    /// replica the later expiry stays, as for any STORE (remote holders keep
    /// theirs so too).
    pub fn hold_own<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        ttl: Duration,
        rng: &mut R,
    ) -> Result<()> {
        let offered = now + ttl;
        let expires_at = match self.held_copy(&key, now) {
            Some(HeldCopy {
                expires_at,
                origin: Origin::Held | Origin::Cached,
            }) => expires_at.max(offered),
            _ => offered,
        };
        let item = StoredValue {
            value,
            expires_at,
            origin: Origin::Held,
        };
        let resend = self.replica_resend(now, rng);
        self.put(key, item, Some(resend))
    }

    /// A peer's STORE. Returns whether the node now holds the key.
    pub fn accept_store<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        store: IncomingStore,
        rng: &mut R,
    ) -> bool {
        let held = self.held_copy(&key, now);
        self.accept_store_over(now, key, value, store, held, rng)
    }

    /// [`RecordStore::accept_store`] where the caller has already looked
    /// up what is `held` (the record rules do, for every STORE): one search
    /// of the backend fewer.
    pub fn accept_store_over<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        store: IncomingStore,
        held: Option<HeldCopy>,
        rng: &mut R,
    ) -> bool {
        let offered_expiry = now + store.ttl;
        let item = match held.map(|h| (h.expires_at, h.origin)) {
            // The publisher's copy is its user's: a peer cannot replace it.
            // It is written again as it is, as before `accept_store_over`
            // (a Python storage object sees the write: a ForgetfulStorage
            // counts its age from it). Rare: a copy is read only here.
            Some((_, Origin::Published { .. })) => {
                return self
                    .get(&key, now)
                    .is_some_and(|own| self.put(key, own, None).is_ok());
            }
            Some((old_expiry, old_origin)) => StoredValue {
                // Plain values are last-writer-wins, as in the Python package.
                value,
                // ...but no STORE makes a held copy expire earlier.
                expires_at: old_expiry.max(offered_expiry),
                origin: if store.cached {
                    old_origin
                } else {
                    Origin::Held
                },
            },
            None => StoredValue {
                value,
                expires_at: offered_expiry,
                origin: if store.cached {
                    Origin::Cached
                } else {
                    Origin::Held
                },
            },
        };
        // Somebody just replicated it to us: re-sending it this interval
        // would only repeat them. Spread the holders' next turns. (Drawn
        // before the put, which then schedules it in the same update: a
        // STORE a full store refuses also draws it.)
        let resend =
            (item.origin == Origin::Held && !store.cached).then(|| self.replica_resend(now, rng));
        self.put(key, item, resend).is_ok()
    }

    /// When a replica just received is next re-sent: one replicate
    /// interval on, less up to a tenth, so the holders take turns.
    fn replica_resend<R: Rng + ?Sized>(&self, now: Instant, rng: &mut R) -> Instant {
        let jitter = rng.random_range(0.9..=1.0);
        now + self.intervals.replicate_interval.mul_f64(jitter)
    }

    /// A verified signed or immutable record (see
    /// [`crate::signed::store_decision`], which has already checked that it
    /// is the held record or newer), kept until `expires_at`: the record's
    /// own expiry, which no STORE extends or shortens. It replaces whatever
    /// is held, the publisher's copy included: an outdated record is not
    /// worth republishing. Returns whether the node now holds it.
    pub fn keep_record<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        expires_at: Instant,
        cached: bool,
        rng: &mut R,
    ) -> bool {
        let held = self.peek(&key, now, |old| (old.value == value, old.origin));
        let origin = match held {
            // The same record again: a replica upgrades a cached copy.
            Some((true, old_origin)) => match old_origin {
                Origin::Cached if !cached => Origin::Held,
                other => other,
            },
            Some((false, Origin::Cached)) if cached => Origin::Cached,
            None if cached => Origin::Cached,
            _ => Origin::Held,
        };
        let item = StoredValue {
            value,
            expires_at,
            origin,
        };
        let resend = (origin == Origin::Held && !cached).then(|| self.replica_resend(now, rng));
        self.put(key, item, resend).is_ok()
    }

    /// Re-send the held key `key` within `within` (churn repair), unless it
    /// is due sooner anyway. Returns whether anything changed.
    pub fn resend_soon<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        key: Key,
        within: Duration,
        rng: &mut R,
    ) -> bool {
        let at = now + within.mul_f64(rng.random::<f64>());
        let due = self.schedule.as_ref().and_then(|s| s.resend_due(&key));
        match due {
            Some(due) if due > at => {
                self.schedule().resend_at(key, at);
                true
            }
            _ => false,
        }
    }

    /// When [`RecordStore::expire`] has work next.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.schedule.as_ref()?.first_expiry()
    }

    /// When [`RecordStore::pop_due`] has work next.
    pub fn next_resend(&self) -> Option<Instant> {
        self.schedule.as_ref()?.first_resend()
    }

    /// Remove what expired by `now`; returns how many values went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some(key) = self
            .schedule
            .as_deref_mut()
            .and_then(|s| s.pop_expired(now))
        {
            if self.storage.remove(&key).is_some() {
                self.forget(&key);
                removed += 1;
            }
        }
        removed
    }

    /// The next value due to be re-sent by `now`, already rescheduled for
    /// its next turn.
    pub fn pop_due(&mut self, now: Instant) -> Option<Resend> {
        loop {
            let key = self.schedule.as_deref_mut()?.pop_resend(now)?;
            let Some(mut item) = self.get(&key, now) else {
                continue;
            };
            let resend = match item.origin {
                Origin::Cached => continue,
                Origin::Held => {
                    let next = now + self.intervals.replicate_interval;
                    self.schedule().resend_at(key, next);
                    Resend {
                        key,
                        ttl: item.expires_at.saturating_duration_since(now),
                        value: item.value,
                        republish: false,
                    }
                }
                Origin::Published { ttl } => {
                    // The publisher's copy lives as long as the publisher.
                    item.expires_at = now + ttl;
                    let value = item.value.clone();
                    let period = republish_period(ttl, &self.intervals);
                    // Re-inserting an existing key cannot exceed the limits.
                    let _ = self.put(key, item, Some(now + period));
                    Resend {
                        key,
                        value,
                        ttl,
                        republish: true,
                    }
                }
            };
            if !resend.ttl.is_zero() {
                return Some(resend);
            }
        }
    }

    /// Store `item`, making room when full by evicting values ranked below
    /// it (at most a few: one value never clears out the store).
    /// `resend_at`, if given, moves the key's next re-send there (in the
    /// same schedule update).
    fn put(&mut self, key: Key, item: StoredValue, resend_at: Option<Instant>) -> Result<()> {
        let expires_at = item.expires_at;
        let rank = self.rank(&key, item.origin);
        let mut evicted = 0;
        loop {
            match self.storage.put(key, item.clone()) {
                Ok(()) => break,
                Err(Error::StorageFull) if evicted < MAX_EVICTIONS_PER_PUT => {
                    if !self.evict_below(&key, rank) {
                        return Err(Error::StorageFull);
                    }
                    evicted += 1;
                }
                Err(e) => return Err(e),
            }
        }
        self.schedule().kept(key, expires_at, rank, resend_at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::id::NodeId;
    use crate::storage::MemoryStorage;
    use rand::SeedableRng;

    const HOUR: Duration = Duration::from_secs(3600);

    fn store() -> (RecordStore, rand::rngs::StdRng, Instant) {
        let intervals = RefreshIntervals {
            replicate_interval: HOUR,
            republish_interval: 24 * HOUR,
        };
        let storage = Box::new(MemoryStorage::new(200_000, 1 << 30));
        let rng = rand::rngs::StdRng::seed_from_u64(1);
        (RecordStore::new(storage, intervals), rng, Instant::now())
    }

    fn replica(ttl: Duration) -> IncomingStore {
        IncomingStore { ttl, cached: false }
    }

    #[test]
    fn no_store_shortens_a_held_copy() {
        let (mut s, mut rng, now) = store();
        let key = NodeId::digest(b"k");
        assert!(s.accept_store(now, key, Value::from("v1"), replica(10 * HOUR), &mut rng));
        let held_until = s.get(&key, now).unwrap().expires_at;
        // A stale replica, a cached copy and a hostile STORE, all short.
        let later = now + HOUR;
        s.accept_store(
            later,
            key,
            Value::from("v1"),
            replica(Duration::from_secs(5)),
            &mut rng,
        );
        let cached = IncomingStore {
            ttl: Duration::from_secs(1),
            cached: true,
        };
        s.accept_store(later, key, Value::from("v1"), cached, &mut rng);
        s.accept_store(
            later,
            key,
            Value::from("evil"),
            replica(Duration::from_secs(1)),
            &mut rng,
        );
        let item = s.get(&key, later + Duration::from_secs(10)).unwrap();
        assert_eq!(item.expires_at, held_until);
        assert_eq!(
            item.origin,
            Origin::Held,
            "a cached copy does not demote a replica"
        );
        assert_eq!(s.expire(held_until - Duration::from_secs(1)), 0);
        assert_eq!(s.expire(held_until), 1);
    }

    #[test]
    fn the_publishers_copy_is_its_own_and_lives_with_it() {
        let (mut s, mut rng, now) = store();
        let key = NodeId::digest(b"k");
        let ttl = HOUR;
        s.publish(now, key, Value::from("mine"), ttl).unwrap();
        assert!(s.accept_store(
            now,
            key,
            Value::from("theirs"),
            replica(7 * 24 * HOUR),
            &mut rng
        ));
        assert_eq!(s.get(&key, now).unwrap().value, Value::from("mine"));
        // For three days the value is re-put before it could lapse, and the
        // local copy never expires in between.
        let mut t = now;
        let mut republished = 0;
        while t < now + 72 * HOUR {
            t += Duration::from_secs(60);
            assert_eq!(s.expire(t), 0);
            assert!(s.get(&key, t).is_some(), "gone at {:?}", t - now);
            while let Some(resend) = s.pop_due(t) {
                assert!(resend.republish);
                assert_eq!(
                    (resend.ttl, resend.value.clone()),
                    (ttl, Value::from("mine"))
                );
                republished += 1;
            }
        }
        assert_eq!(republished, 72 * 60 / 45, "every 45 minutes for a 1 h TTL");
    }

    #[test]
    fn cached_copies_are_never_resent_and_replicas_resend_remaining_lifetime() {
        let (mut s, mut rng, now) = store();
        let (cached_key, held_key) = (NodeId::digest(b"c"), NodeId::digest(b"h"));
        let cached = IncomingStore {
            ttl: 5 * HOUR,
            cached: true,
        };
        s.accept_store(now, cached_key, Value::from(1i64), cached, &mut rng);
        s.accept_store(
            now,
            held_key,
            Value::from(2i64),
            replica(5 * HOUR),
            &mut rng,
        );
        let mut resent = Vec::new();
        let mut t = now;
        while t < now + 6 * HOUR {
            t += Duration::from_secs(60);
            s.expire(t);
            while let Some(r) = s.pop_due(t) {
                assert!(!r.republish);
                assert!(r.ttl <= now + 5 * HOUR - t + Duration::from_secs(1));
                resent.push(r.key);
            }
        }
        assert!(!resent.contains(&cached_key));
        assert!(
            (4..=5).contains(&resent.len()),
            "held key re-sent hourly: {}",
            resent.len()
        );
        assert!(s.is_empty(), "both expired at their TTL");
    }

    #[test]
    fn a_received_store_postpones_the_holders_own_resend() {
        let (mut s, mut rng, now) = store();
        let key = NodeId::digest(b"k");
        s.accept_store(now, key, Value::from(1i64), replica(10 * HOUR), &mut rng);
        let first = s.next_resend().unwrap();
        let later = now + HOUR / 2;
        s.accept_store(later, key, Value::from(1i64), replica(10 * HOUR), &mut rng);
        assert!(s.next_resend().unwrap() > first);
        // Churn repair pulls it in again, within the window asked for.
        assert!(s.resend_soon(later, key, Duration::from_secs(120), &mut rng));
        assert!(s.next_resend().unwrap() <= later + Duration::from_secs(120));
    }

    #[test]
    fn a_hundred_thousand_values_are_all_due_within_one_interval() {
        let (mut s, mut rng, now) = store();
        for i in 0..100_000u32 {
            let key = NodeId::digest(&i.to_be_bytes());
            s.accept_store(
                now,
                key,
                Value::from(i64::from(i)),
                replica(24 * HOUR),
                &mut rng,
            );
        }
        let mut due = 0;
        let mut t = now;
        while t <= now + HOUR {
            t += Duration::from_secs(60);
            while s.pop_due(t).is_some() {
                due += 1;
            }
        }
        println!("100,000 held values: {due} due within one replicate interval");
        assert_eq!(due, 100_000);
    }

    /// A full store makes room for a STORE by evicting what ranks lowest:
    /// cached copies first, then the replicas farthest from this node; the
    /// node's own published values never; and nothing for a value that
    /// ranks below all it holds. (The eviction order is first built here,
    /// when the store fills: see `record_schedule`.)
    #[test]
    fn a_full_store_evicts_cached_copies_then_the_farthest_replicas() {
        let intervals = RefreshIntervals {
            replicate_interval: HOUR,
            republish_interval: 24 * HOUR,
        };
        let own = NodeId([0; 20]);
        let storage = Box::new(MemoryStorage::new(4, 1 << 20));
        let mut s = RecordStore::new(storage, intervals).with_owner(own);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let now = Instant::now();
        // Distance from our all-zero id is the key itself.
        let key = |first: u8| {
            let mut k = [0u8; 20];
            k[0] = first;
            NodeId(k)
        };
        let cached = IncomingStore {
            ttl: HOUR,
            cached: true,
        };
        s.publish(now, key(0xff), Value::from("mine"), HOUR)
            .unwrap();
        assert!(s.accept_store(now, key(0x10), Value::from("a"), replica(HOUR), &mut rng));
        assert!(s.accept_store(now, key(0x90), Value::from("b"), replica(HOUR), &mut rng));
        assert!(s.accept_store(now, key(0x01), Value::from("c"), cached, &mut rng));
        let held = |s: &RecordStore| -> Vec<u8> {
            let mut keys: Vec<u8> = s
                .keys_from(&Key::default(), 10)
                .iter()
                .map(|k| k.0[0])
                .collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(held(&s), vec![0x01, 0x10, 0x90, 0xff]);
        // Full: the cached copy goes first, though it is the nearest.
        assert!(s.accept_store(now, key(0x20), Value::from("d"), replica(HOUR), &mut rng));
        assert_eq!(held(&s), vec![0x10, 0x20, 0x90, 0xff]);
        // Then the farthest replica (our own value, farther still, stays).
        assert!(s.accept_store(now, key(0x30), Value::from("e"), replica(HOUR), &mut rng));
        assert_eq!(held(&s), vec![0x10, 0x20, 0x30, 0xff]);
        // A replica farther than every one held is refused; a cached copy too.
        assert!(!s.accept_store(now, key(0x80), Value::from("f"), replica(HOUR), &mut rng));
        assert!(!s.accept_store(now, key(0x02), Value::from("g"), cached, &mut rng));
        assert_eq!(held(&s), vec![0x10, 0x20, 0x30, 0xff]);
        assert_eq!(
            s.take_removed().iter().map(|k| k.0[0]).collect::<Vec<_>>(),
            vec![0x01, 0x90]
        );
    }
}
