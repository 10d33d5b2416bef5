//! Churn repair: keeping k copies when the set of closest nodes changes.
//!
//! The hourly re-send in [`crate::records`] alone lets copies decay for up to
//! an hour under churn. This module reacts within minutes to the two events
//! that change who should hold a key:
//!
//! - a contact **appeared** (new, or promoted from a replacement cache by a
//!   split or an eviction): it gets the keys it is now among the k closest
//!   for, from the node closest to each key (the paper's §2.5 hand-over rule,
//!   so one node sends, not all k);
//! - a contact **left** (evicted after missed replies; a node holding values
//!   pings its close neighbours gone quiet for `neighbour_check_interval`,
//!   so a holder that left is noticed within minutes): every key it was
//!   among the k closest for, and that we also hold as one of the k closest,
//!   is re-sent soon, at a random moment within `repair_within` so that the
//!   first holder to act suppresses the others (their STORE postpones the
//!   rest's turn).
//!
//! Each event is a walk over the held keys, run in bounded slices (so no
//! slice holds the node for long), from a bounded queue of events.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::contact::Contact;
use crate::id::{Key, NodeId};
use crate::idle_memory::ReleaseWhenEmpty;
use crate::records::RecordStore;
use crate::routing::{Counting, RoutingTable};
use crate::storage::Origin;

/// Walks are budgeted in held keys examined, not in walks: under heavy
/// churn (85% of the nodes replaced every 10 minutes) contacts come and go
/// every few seconds, which a node holding a few hundred keys can afford to
/// walk for each; one holding 100,000 cannot, and fresh ids that answer
/// pings (and then go silent) would otherwise buy a full walk apiece.
/// Hand-over: about 4 full walks of 100,000 keys at once, then one per
/// 20 s; repair (a contact left): 5 at once, then one per 10 s.
const HANDOVER_KEYS_BURST: f64 = 400_000.0;
const HANDOVER_KEYS_PER_SEC: f64 = 5_000.0;
const REPAIR_KEYS_BURST: f64 = 500_000.0;
const REPAIR_KEYS_PER_SEC: f64 = 10_000.0;

/// Work a node may start: a burst, then a steady rate.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    at: Option<Instant>,
}

impl TokenBucket {
    fn new(burst: f64, per_sec: f64) -> Self {
        TokenBucket {
            tokens: burst,
            burst,
            per_sec,
            at: None,
        }
    }

    /// Takes `cost` tokens if there are that many (a cost above the burst
    /// needs a full bucket).
    fn take(&mut self, now: Instant, cost: f64) -> bool {
        let elapsed = self
            .at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.at = Some(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_sec).min(self.burst);
        let cost = cost.min(self.burst);
        if self.tokens < cost {
            return false;
        }
        self.tokens -= cost;
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Appeared,
    Left,
}

#[derive(Debug)]
struct Walk {
    contact: Contact,
    change: Change,
    /// The next key to examine.
    next: Key,
}

/// Everything the walks need to read, borrowed from the protocol per slice.
pub struct View<'a> {
    pub own: NodeId,
    pub k: usize,
    pub routing: &'a RoutingTable,
}

pub struct Replication {
    walks: VecDeque<Walk>,
    max_walks: usize,
    repair_within: Duration,
    /// Walks this node may still start, so a stream of fresh (even
    /// verified) ids cannot make it walk its keys nonstop.
    handover_tokens: TokenBucket,
    repair_tokens: TokenBucket,
    /// Events dropped because the queue was full (the hourly re-send still
    /// covers their keys).
    pub dropped: u64,
}

impl Replication {
    /// Free the queue once empty (see `idle_memory.rs`).
    pub fn release_idle_memory(&mut self) {
        self.walks.release_if_empty();
    }

    pub fn new(max_walks: usize, repair_within: Duration) -> Self {
        Replication {
            walks: VecDeque::new(),
            max_walks,
            repair_within,
            handover_tokens: TokenBucket::new(HANDOVER_KEYS_BURST, HANDOVER_KEYS_PER_SEC),
            repair_tokens: TokenBucket::new(REPAIR_KEYS_BURST, REPAIR_KEYS_PER_SEC),
            dropped: 0,
        }
    }

    /// `contact` entered the table; a hand-over walk reads `held_keys` keys.
    pub fn contact_appeared(&mut self, now: Instant, contact: Contact, held_keys: usize) {
        if !self.handover_tokens.take(now, held_keys as f64) {
            // The hourly re-send reaches it anyway.
            self.dropped += 1;
            return;
        }
        self.push(contact, Change::Appeared);
    }

    /// `contact` left the table; a repair walk reads `held_keys` keys.
    pub fn contact_left(&mut self, now: Instant, contact: Contact, held_keys: usize) {
        if !self.repair_tokens.take(now, held_keys as f64) {
            // The hourly re-send, and the next departure's walk, cover it.
            self.dropped += 1;
            return;
        }
        self.push(contact, Change::Left);
    }

    fn push(&mut self, contact: Contact, change: Change) {
        if self.walks.len() >= self.max_walks {
            self.dropped += 1;
            return;
        }
        self.walks.push_back(Walk {
            contact,
            change,
            next: Key::default(),
        });
    }

    pub fn has_work(&self) -> bool {
        !self.walks.is_empty()
    }

    /// Examine up to `max_keys` keys. Returns the hand-overs to send now, at
    /// most `max_sends` (a walk stops early when that is reached and resumes
    /// at the same key next time).
    pub fn run_slice<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        view: &View<'_>,
        records: &mut RecordStore,
        max_keys: usize,
        max_sends: usize,
        rng: &mut R,
    ) -> Vec<(Contact, Key)> {
        let mut sends = Vec::new();
        let mut budget = max_keys;
        while budget > 0 && sends.len() < max_sends {
            let Some(walk) = self.walks.front_mut() else {
                break;
            };
            let keys = records.keys_from(&walk.next, budget.min(256));
            let mut finished = keys.is_empty();
            for key in &keys {
                if sends.len() >= max_sends {
                    break;
                }
                budget -= 1;
                match key.successor() {
                    Some(next) => walk.next = next,
                    None => finished = true,
                }
                // Only live copies we hold for the network are handed on
                // or repaired (not cached ones). Reading one clones its
                // value, so the hand-over rule, which rules out most keys
                // from the table alone, is asked first.
                let held = |records: &RecordStore| {
                    records
                        .get(key, now)
                        .is_some_and(|item| item.origin != Origin::Cached)
                };
                match walk.change {
                    Change::Appeared => {
                        if hand_over_to(view, key, &walk.contact) && held(records) {
                            sends.push((walk.contact, *key));
                        }
                    }
                    Change::Left => {
                        if held(records) && repair_needed(view, key, &walk.contact) {
                            records.resend_soon(now, *key, self.repair_within, rng);
                        }
                    }
                }
            }
            if finished {
                self.walks.pop_front();
            }
        }
        sends
    }
}

/// The paper's hand-over rule: `newcomer` is among the k closest to `key`
/// and we are closer to it than any other node we know.
fn hand_over_to(view: &View<'_>, key: &Key, newcomer: &Contact) -> bool {
    let others = Counting {
        live_only: false,
        except: Some(&newcomer.id),
    };
    let closer_than = |id: &NodeId, limit| {
        view.routing
            .count_closer(key, &id.distance(key), limit, others)
    };
    // None closer than us (most keys: the first contact read in the bucket
    // covering the key says so), fewer than k closer than the newcomer.
    closer_than(&view.own, 1) == 0 && closer_than(&newcomer.id, view.k) < view.k
}

/// `gone` was among the k closest to `key`, and so are we: one copy fewer
/// than there should be.
fn repair_needed(view: &View<'_>, key: &Key, gone: &Contact) -> bool {
    let closest = view.routing.closest(key, view.k, |_| false);
    let Some(far) = closest.last() else {
        return false;
    };
    let radius = far.id.distance(key);
    let within = |id: &NodeId| closest.len() < view.k || id.distance(key) < radius;
    within(&gone.id) && within(&view.own)
}
