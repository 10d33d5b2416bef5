//! One iterative lookup (FIND_NODE or FIND_VALUE) as a state machine.
//!
//! Unlike bmuller/kademlia's rounds (send α, wait for all, repeat), a new query
//! goes out as soon as any reply or timeout frees one of the α slots, so a dead
//! peer costs one slot for one timeout, never the whole lookup. The lookup ends
//! when the k closest candidates that have not failed have all answered (or,
//! for FIND_VALUE, as soon as a value arrives; a *gathering* FIND_VALUE, used
//! for signed records, keeps every answer and goes on).

use crate::contact::Contact;
use crate::id::NodeId;
use crate::value::Value;

mod candidates;

use candidates::{Candidate, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    FindNode,
    FindValue,
}

/// A gathering FIND_VALUE lookup ends early once an answer passes this test
/// (its target and the value); `never` gathers from all of the k closest.
pub type Sufficient = fn(&NodeId, &Value) -> bool;

#[derive(Debug)]
pub struct Lookup {
    target: NodeId,
    kind: LookupKind,
    k: usize,
    alpha: usize,
    own: NodeId,
    /// Sorted by distance to `target`, nearest first; one entry per id.
    candidates: Vec<Candidate>,
    /// The first 64 bits of each candidate's distance, in the same order:
    /// the binary searches of every answer's contacts run over these 8-byte
    /// keys instead of 80-byte candidates (one cache line holds 8 of them),
    /// and read a candidate only when two keys tie.
    prefixes: Vec<u64>,
    in_flight: usize,
    /// The value found and the seconds it has left, if the answer said.
    value: Option<(Value, Option<u64>)>,
    /// Hop of the answer that carried the value.
    value_hop: u32,
    queries: usize,
    /// Set for a gathering FIND_VALUE: values do not end the lookup (unless
    /// one is [`Sufficient`]); every answer is kept in `answers`.
    gather: Option<Sufficient>,
    answers: Vec<(Contact, Value)>,
    /// See [`Lookup::converged`].
    converged: bool,
    /// Once converged, ask every candidate left at once (a put's lookup:
    /// see [`Lookup::all_at_once_when_converged`]).
    wide_when_converged: bool,
    /// The candidate asked alone until its query settles (see
    /// [`Lookup::ask_first`]).
    first: Option<NodeId>,
}

impl Lookup {
    pub fn new(
        target: NodeId,
        kind: LookupKind,
        own: NodeId,
        k: usize,
        alpha: usize,
        seeds: impl IntoIterator<Item = Contact>,
    ) -> Self {
        let mut lookup = Lookup {
            target,
            kind,
            k,
            alpha,
            own,
            candidates: Vec::new(),
            prefixes: Vec::new(),
            in_flight: 0,
            value: None,
            value_hop: 0,
            queries: 0,
            gather: None,
            answers: Vec::new(),
            converged: false,
            wide_when_converged: false,
            first: None,
        };
        lookup.add_candidates(seeds, 1);
        lookup
    }

    /// Keep one query in flight at a time, not α.
    pub fn one_at_a_time(mut self) -> Self {
        self.alpha = 1;
        self
    }

    /// Whether this FIND_NODE lookup has converged: an answer from one of
    /// its k closest live candidates named one of them and nobody closer
    /// than the k-th. From then on the candidates it still asks are, as a
    /// rule, among the nodes it will end with, so a put may send them its
    /// STORE as the query (see `ops/store.rs`). It stays set. (Not tracked
    /// for FIND_VALUE, which nothing asks about.)
    pub fn converged(&self) -> bool {
        self.converged
    }

    /// Make this FIND_VALUE lookup gather the values of the k closest nodes
    /// instead of stopping at the first one: a value-holder counts as a node
    /// that answered, and the lookup ends when the k closest have answered,
    /// or as soon as an answer is `sufficient`.
    pub fn gathering(mut self, sufficient: Sufficient) -> Self {
        self.gather = Some(sufficient);
        self
    }

    /// Once converged, let every candidate still to ask be asked at once
    /// rather than α at a time. A put's lookup sends them its STORE (see
    /// `ops/store.rs`), which a peer with a data directory answers only
    /// once the value is on disk: α at a time, the put waited for k / α
    /// commits in a row where its STOREs after the lookup waited for one.
    pub fn all_at_once_when_converged(mut self) -> Self {
        self.wide_when_converged = true;
        self
    }

    /// Ask the candidate `first` alone, and the others α at a time only
    /// once it has answered without the value, failed, gone slow, or the
    /// lookup is told to [`Lookup::widen`]: for a get whose candidate very
    /// likely holds the value (see `ops/get.rs`), one RPC where α would
    /// all come back with it.
    pub fn ask_first(mut self, first: NodeId) -> Self {
        self.first = Some(first);
        self
    }

    /// Stop asking the candidate given to [`Lookup::ask_first`] alone.
    pub fn widen(&mut self) {
        self.first = None;
    }

    /// Whether the lookup still asks one candidate alone.
    pub fn asking_first(&self) -> bool {
        self.first.is_some()
    }

    /// The next query of a lookup asking `first` alone: it, once.
    fn query_first(&mut self, first: NodeId) -> Option<(Contact, usize)> {
        if self.in_flight > 0 || self.is_done() {
            return None;
        }
        let Ok(pos) = self.search(&first.distance(&self.target)) else {
            // Not a candidate (it never is, as the caller chose it from them).
            self.first = None;
            return self.next_query_ranked();
        };
        let candidate = &mut self.candidates[pos];
        if candidate.state != State::NotQueried {
            self.first = None;
            return self.next_query_ranked();
        }
        candidate.state = State::InFlight;
        self.in_flight += 1;
        self.queries += 1;
        let rank = self.candidates[..pos]
            .iter()
            .filter(|c| !c.state.written_off())
            .count();
        Some((self.candidates[pos].contact, rank))
    }

    /// The values gathered so far, with the node that sent each.
    pub fn answers(&self) -> &[(Contact, Value)] {
        &self.answers
    }

    pub fn target(&self) -> NodeId {
        self.target
    }

    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    /// RPCs this lookup has sent so far.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// The next contact to query, if a slot is free and the lookup needs one.
    /// The caller sends the RPC and later reports `on_response`/`on_failure`.
    pub fn next_query(&mut self) -> Option<Contact> {
        self.next_query_ranked().map(|(contact, _)| contact)
    }

    /// [`Lookup::next_query`], with the contact's rank among the candidates
    /// not written off (0 for the closest): the order the lookup's result
    /// will have, slow candidates included.
    pub fn next_query_ranked(&mut self) -> Option<(Contact, usize)> {
        if let Some(first) = self.first {
            return self.query_first(first);
        }
        let window = if self.converged && self.wide_when_converged {
            self.k
        } else {
            self.alpha
        };
        if self.is_done() || self.in_flight >= window {
            return None;
        }
        let (mut rank, mut eligible) = (0, 0);
        for candidate in &mut self.candidates {
            if candidate.state.written_off() {
                continue;
            }
            if !candidate.state.settled_or_waiting() {
                // Only the k closest that take a slot may be asked.
                if eligible == self.k {
                    return None;
                }
                eligible += 1;
                if candidate.state == State::NotQueried {
                    candidate.state = State::InFlight;
                    self.in_flight += 1;
                    self.queries += 1;
                    return Some((candidate.contact, rank));
                }
            }
            rank += 1;
        }
        None
    }

    /// Settle an in-flight query; returns its hop, or None if it was not in flight.
    fn settle(&mut self, id: &NodeId, state: State) -> Option<u32> {
        let pos = self.search(&id.distance(&self.target)).ok()?;
        let c = &mut self.candidates[pos];
        match c.state {
            State::InFlight => self.in_flight -= 1,
            State::Slow | State::Abandoned => {}
            _ => return None,
        }
        c.state = state;
        let hop = c.hop;
        self.first_settled(id);
        Some(hop)
    }

    /// `from` has not answered within its adaptive timeout: free its slot
    /// for the next candidate (its answer is still awaited and taken).
    pub fn on_slow(&mut self, from: &NodeId) {
        self.demote(from, State::Slow);
    }

    /// `from` has not answered within three adaptive timeouts, or is a
    /// suspect: the lookup may end without it (a later answer is still taken).
    pub fn on_abandoned(&mut self, from: &NodeId) {
        self.demote(from, State::Abandoned);
    }

    fn demote(&mut self, from: &NodeId, to: State) {
        if let Ok(pos) = self.search(&from.distance(&self.target)) {
            let c = &mut self.candidates[pos];
            match c.state {
                State::InFlight => self.in_flight -= 1,
                State::Slow => {}
                _ => return,
            }
            c.state = to;
            self.first_settled(from);
        }
    }

    /// `id`'s query settled (or stopped being waited for): if it was the
    /// lone first one, the others may be asked.
    fn first_settled(&mut self, id: &NodeId) {
        if self.first == Some(*id) {
            self.first = None;
        }
    }

    /// `from` answered with closer contacts (FIND_NODE, or FIND_VALUE without a value).
    pub fn on_nodes(&mut self, from: &NodeId, contacts: Vec<Contact>) {
        let watch = (self.kind == LookupKind::FindNode && !self.converged)
            .then(|| (self.search(&from.distance(&self.target)), self.window_end()));
        if let Some(hop) = self.settle(from, State::Responded) {
            let (nearest_new, nearest_known) = self.add_candidates(contacts, hop + 1);
            if let Some((Ok(pos), window)) = watch {
                // It must confirm the window (name one of its candidates)
                // too: an empty answer, or one whose contacts were all
                // unusable, says nothing of it.
                self.converged = pos < window && nearest_new >= window && nearest_known < window;
            }
        }
    }

    /// `from`, asked with a put's STORE, answered without contacts (a
    /// Python peer, or an older kadmium): ask it again, as a FIND_NODE
    /// (see `ops/store.rs`), so that the lookup still hears its contacts.
    pub fn ask_again(&mut self, from: &NodeId) {
        self.settle(from, State::NotQueried);
    }

    /// `from` answered a FIND_VALUE with the value.
    pub fn on_value(&mut self, from: &NodeId, value: Value, ttl_secs: Option<u64>) {
        if let Some(sufficient) = self.gather {
            return self.gathered(from, value, ttl_secs, sufficient);
        }
        // Marked Failed only so that it is not reported as a node that
        // lacked the value (the cache target); it did answer.
        if let Some(hop) = self.settle(from, State::Failed) {
            if self.value.is_none() {
                self.value = Some((value, ttl_secs));
                self.value_hop = hop;
            }
        }
    }

    fn gathered(&mut self, from: &NodeId, value: Value, ttl: Option<u64>, enough: Sufficient) {
        let Ok(pos) = self.search(&from.distance(&self.target)) else {
            return;
        };
        let contact = self.candidates[pos].contact;
        if let Some(hop) = self.settle(from, State::Responded) {
            if self.value.is_none() && enough(&self.target, &value) {
                self.value = Some((value.clone(), ttl));
                self.value_hop = hop;
            }
            self.answers.push((contact, value));
        }
    }

    /// `from` did not answer in time (or answered garbage).
    pub fn on_failure(&mut self, from: &NodeId) {
        self.settle(from, State::Failed);
    }

    pub fn is_done(&self) -> bool {
        if self.value.is_some() {
            return true;
        }
        let mut window = self
            .candidates
            .iter()
            .filter(|c| !c.state.written_off())
            .take(self.k)
            .peekable();
        if window.peek().is_none() {
            // Nobody left to ask: done, unless abandoned peers may still
            // answer (a late reply beats no reply at all).
            return !self.candidates.iter().any(|c| c.state == State::Abandoned);
        }
        window.all(|c| c.state == State::Responded)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Sequential hops the lookup needed: the hop of the answer carrying the
    /// value, or the deepest hop among the k closest nodes found.
    pub fn hops(&self) -> u32 {
        if self.value.is_some() {
            return self.value_hop;
        }
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(self.k)
            .map(|c| c.hop)
            .max()
            .unwrap_or(0)
    }

    /// The k closest nodes that answered, nearest first.
    pub fn closest_responded(&self) -> Vec<Contact> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .take(self.k)
            .map(|c| c.contact)
            .collect()
    }

    pub fn value(&self) -> Option<&Value> {
        self.value.as_ref().map(|(v, _)| v)
    }

    pub fn take_value(&mut self) -> Option<(Value, Option<u64>)> {
        self.value.take()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;
    use std::net::SocketAddr;

    fn c(id: NodeId, i: u16) -> Contact {
        Contact::new(id, SocketAddr::from(([127, 0, 0, 1], i)))
    }

    #[test]
    fn a_candidate_stays_small() {
        // A join holds up to 4k of them per far bucket it refreshes.
        assert!(std::mem::size_of::<Candidate>() <= 60);
    }

    /// A static network: each node answers with the k closest of all nodes it
    /// knows (here: everyone), unless it is dead.
    #[test]
    fn finds_exact_k_closest_with_dead_nodes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let nodes: Vec<Contact> = (0..300)
            .map(|i| c(NodeId::random(&mut rng), i + 1))
            .collect();
        let dead: Vec<NodeId> = nodes.iter().step_by(4).map(|c| c.id).collect();
        let own = NodeId::random(&mut rng);
        let target = NodeId::random(&mut rng);
        let k = 8;
        let knows: HashMap<NodeId, Vec<Contact>> = nodes
            .iter()
            .map(|n| {
                // Every node answers with its k closest live contacts plus the
                // dead ones still in its table among them (not yet evicted).
                let mut all: Vec<Contact> =
                    nodes.iter().filter(|o| o.id != n.id).copied().collect();
                all.sort_by_key(|o| o.id.distance(&target));
                let mut known = Vec::new();
                let mut live = 0;
                for o in all {
                    if live == k {
                        break;
                    }
                    live += usize::from(!dead.contains(&o.id));
                    known.push(o);
                }
                (n.id, known)
            })
            .collect();
        let seeds = nodes[..5].to_vec();
        let mut lookup = Lookup::new(target, LookupKind::FindNode, own, k, 3, seeds);
        let mut max_in_flight = 0;
        let mut pending = Vec::new();
        loop {
            while let Some(q) = lookup.next_query() {
                pending.push(q);
            }
            max_in_flight = max_in_flight.max(lookup.in_flight());
            if pending.is_empty() {
                break;
            }
            // Answer one at a time (the oldest), which a round-based lookup could not.
            let q = pending.remove(0);
            if dead.contains(&q.id) {
                lookup.on_failure(&q.id);
            } else {
                lookup.on_nodes(&q.id, knows[&q.id].clone());
            }
        }
        assert!(lookup.is_done());
        assert!(max_in_flight <= 3);
        let mut live: Vec<Contact> = nodes
            .iter()
            .filter(|n| !dead.contains(&n.id))
            .copied()
            .collect();
        live.sort_by_key(|n| n.id.distance(&target));
        live.truncate(k);
        assert_eq!(
            lookup.closest_responded(),
            live,
            "exactly the k closest live nodes"
        );
    }

    #[test]
    fn terminates_when_everyone_fails_and_on_value() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let own = NodeId::random(&mut rng);
        let seeds: Vec<Contact> = (0..5).map(|i| c(NodeId::random(&mut rng), i + 1)).collect();
        let mut l = Lookup::new(
            NodeId::random(&mut rng),
            LookupKind::FindNode,
            own,
            20,
            3,
            seeds.clone(),
        );
        while !l.is_done() {
            let q = l.next_query().expect("a query while not done");
            l.on_failure(&q.id);
        }
        assert!(l.closest_responded().is_empty());

        let mut l = Lookup::new(
            NodeId::random(&mut rng),
            LookupKind::FindValue,
            own,
            20,
            3,
            seeds,
        );
        let a = l.next_query().unwrap();
        let b = l.next_query().unwrap();
        l.on_nodes(&a.id, vec![]);
        l.on_value(&b.id, Value::Int(5), None);
        assert!(l.is_done());
        assert_eq!(l.value(), Some(&Value::Int(5)));
        assert_eq!(l.closest_responded(), vec![a]);
        assert!(l.next_query().is_none());
        // Late or unsolicited answers change nothing.
        assert_eq!(l.in_flight(), 0);
        l.on_nodes(
            &NodeId::random(&mut rng),
            vec![c(NodeId::random(&mut rng), 9)],
        );
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.closest_responded(), vec![a]);
    }

    #[test]
    fn a_lookup_asking_one_first_waits_for_it_alone_then_widens() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let own = NodeId::random(&mut rng);
        let target = NodeId::random(&mut rng);
        let mut seeds: Vec<Contact> = (0..6).map(|i| c(NodeId::random(&mut rng), i + 1)).collect();
        seeds.sort_by_key(|s| s.id.distance(&target));
        let new = || Lookup::new(target, LookupKind::FindValue, own, 20, 3, seeds.clone());

        // The chosen one (not the nearest) alone, with its rank; then the
        // others α at a time once it answers without the value.
        let mut l = new().ask_first(seeds[2].id);
        assert!(l.asking_first());
        assert_eq!(l.next_query_ranked(), Some((seeds[2], 2)));
        assert_eq!(l.next_query(), None, "the first is asked alone");
        l.on_nodes(&seeds[2].id, vec![]);
        assert!(!l.asking_first());
        let next: Vec<NodeId> = std::iter::from_fn(|| l.next_query())
            .map(|c| c.id)
            .collect();
        assert_eq!(next, vec![seeds[0].id, seeds[1].id, seeds[3].id]);

        // Answered with the value: one query in all.
        let mut l = new().ask_first(seeds[0].id);
        let first = l.next_query().unwrap();
        l.on_value(&first.id, Value::Int(1), None);
        assert!(l.is_done());
        assert_eq!(l.queries(), 1);

        // Late (told to widen): two more go out, the first still takes
        // its slot. Slow or failed: three, the first no longer does.
        for end in ["widen", "slow", "failure"] {
            let mut l = new().ask_first(seeds[0].id);
            let first = l.next_query().unwrap();
            match end {
                "widen" => l.widen(),
                "slow" => l.on_slow(&first.id),
                _ => l.on_failure(&first.id),
            }
            let more = std::iter::from_fn(|| l.next_query()).count();
            let expected = if end == "widen" { 2 } else { 3 };
            assert_eq!(more, expected, "{end}");
        }

        // A first choice that is not a candidate: the lookup asks as usual.
        let mut l = new().ask_first(NodeId::random(&mut rng));
        assert_eq!(std::iter::from_fn(|| l.next_query()).count(), 3);
    }

    #[test]
    fn a_gathering_lookup_hears_every_close_node_unless_an_answer_suffices() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let own = NodeId::random(&mut rng);
        let seeds: Vec<Contact> = (0..4).map(|i| c(NodeId::random(&mut rng), i + 1)).collect();
        let target = NodeId::random(&mut rng);
        fn never(_: &NodeId, _: &Value) -> bool {
            false
        }
        fn is_five(_: &NodeId, v: &Value) -> bool {
            *v == Value::Int(5)
        }
        let mut l =
            Lookup::new(target, LookupKind::FindValue, own, 4, 3, seeds.clone()).gathering(never);
        let mut n = 0;
        while let Some(q) = l.next_query() {
            n += 1;
            l.on_value(&q.id, Value::Int(n), None);
        }
        assert!(l.is_done());
        assert_eq!(l.answers().len(), 4, "every one of the k closest answered");
        assert_eq!(
            l.closest_responded().len(),
            4,
            "value holders count as answering"
        );
        assert!(l.value().is_none());

        let mut l = Lookup::new(target, LookupKind::FindValue, own, 4, 3, seeds).gathering(is_five);
        let a = l.next_query().unwrap();
        let b = l.next_query().unwrap();
        l.on_value(&a.id, Value::Int(4), None);
        assert!(!l.is_done(), "an answer that does not suffice: go on");
        l.on_value(&b.id, Value::Int(5), None);
        assert!(l.is_done());
        assert_eq!(l.value(), Some(&Value::Int(5)));
        assert_eq!(l.answers().len(), 2);
    }

    #[test]
    fn converges_when_one_of_the_k_closest_names_nobody_closer() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let own = NodeId::random(&mut rng);
        let target = NodeId::random(&mut rng);
        // Contacts at known distances: the target with bits of its first byte flipped.
        let at = |byte: u8, port: u16| {
            let mut id = target;
            id.0[0] ^= byte;
            c(id, port)
        };
        let (near, mid, far, farther) = (at(0x01, 1), at(0x10, 2), at(0x40, 3), at(0x80, 4));
        let mut l = Lookup::new(
            target,
            LookupKind::FindNode,
            own,
            2,
            3,
            vec![mid, far, farther],
        );
        assert!(!l.converged());
        let asked: Vec<Contact> = std::iter::from_fn(|| l.next_query()).collect();
        assert_eq!(asked, vec![mid, far], "the k = 2 closest");
        // One of the 2 closest naming a closer node: no.
        l.on_nodes(&mid.id, vec![near, farther]);
        assert!(!l.converged(), "mid named a closer node");
        // One that is no longer among the 2 closest naming nobody new: no.
        l.on_nodes(&far.id, vec![mid]);
        assert!(!l.converged(), "near pushed far out of the 2 closest");
        // The closest naming only nodes already known: yes.
        assert_eq!(l.next_query_ranked(), Some((near, 0)));
        l.on_nodes(&near.id, vec![mid, far]);
        assert!(l.converged());
        assert!(l.is_done());
        assert_eq!(l.closest_responded(), vec![near, mid]);

        // An answer that names nobody (or only unusable contacts, filtered
        // before) says nothing of the window: no.
        let mut l = Lookup::new(target, LookupKind::FindNode, own, 2, 3, vec![mid, far]);
        let first = l.next_query().unwrap();
        l.on_nodes(&first.id, vec![]);
        assert!(!l.converged());
        // A STORE answered without contacts: asked again.
        let second = l.next_query().unwrap();
        l.ask_again(&second.id);
        assert_eq!(l.next_query(), Some(second));
        assert_eq!(l.in_flight(), 1);
    }

    #[test]
    fn a_put_lookup_asks_every_candidate_left_at_once_when_converged() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let own = NodeId::random(&mut rng);
        let target = NodeId::random(&mut rng);
        let seeds: Vec<Contact> = (0..6).map(|i| c(NodeId::random(&mut rng), i + 1)).collect();
        let mut by_distance = seeds.clone();
        by_distance.sort_by_key(|s| s.id.distance(&target));
        for wide in [false, true] {
            // k = 4, α = 1.
            let lookup = Lookup::new(target, LookupKind::FindNode, own, 4, 1, seeds.clone());
            let mut l = if wide {
                lookup.all_at_once_when_converged()
            } else {
                lookup
            };
            let first = l.next_query().unwrap();
            assert_eq!(first, by_distance[0]);
            assert_eq!(l.next_query(), None, "α = 1");
            // It names the second closest, already a candidate: converged.
            l.on_nodes(&first.id, vec![by_distance[1]]);
            assert!(l.converged());
            let asked: Vec<Contact> = std::iter::from_fn(|| l.next_query()).collect();
            let expected = if wide {
                &by_distance[1..4]
            } else {
                &by_distance[1..2]
            };
            assert_eq!(asked, expected, "wide: {wide}");
        }
    }

    #[test]
    fn own_id_and_duplicates_are_not_candidates() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let own = NodeId::random(&mut rng);
        let x = c(NodeId::random(&mut rng), 1);
        let mut l = Lookup::new(
            NodeId::random(&mut rng),
            LookupKind::FindNode,
            own,
            20,
            3,
            vec![x, x, c(own, 2)],
        );
        assert_eq!(l.next_query(), Some(x));
        assert_eq!(l.next_query(), None);
    }
}
