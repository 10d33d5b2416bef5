//! A lookup's candidates: the nodes it knows of, nearest the target first,
//! each with the state of its query, kept sorted as answers name more.

use super::Lookup;
use crate::contact::Contact;
use crate::id::{Distance, NodeId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    NotQueried,
    InFlight,
    /// Queried, past one adaptive timeout: its α slot is free for the next
    /// candidate, but the lookup still waits for its answer to end.
    Slow,
    /// Queried, past three adaptive timeouts (or a suspect): the lookup no
    /// longer waits for it to end; a late answer still counts.
    Abandoned,
    Responded,
    Failed,
}

impl State {
    /// Not (or no longer) expected to answer in time.
    pub(super) fn written_off(self) -> bool {
        matches!(self, State::Failed | State::Abandoned)
    }

    /// Takes no α slot and is not to be queried.
    pub(super) fn settled_or_waiting(self) -> bool {
        matches!(self, State::Failed | State::Abandoned | State::Slow)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// Its distance to the target is not kept: `prefixes` holds its first
    /// 64 bits, which order nearly every pair, and the rest is one XOR
    /// away. 20 bytes less a candidate (60 instead of 80), and a join holds
    /// a lookup of up to 4k candidates for each far bucket it refreshes.
    pub(super) contact: Contact,
    pub(super) state: State,
    /// 1 for seeds, h + 1 for a contact learned from a hop-h answer.
    pub(super) hop: u32,
}

impl Lookup {
    /// The candidates whose distance to the target starts with at most
    /// `prefix` (see [`Distance::prefix64`]), nearest first.
    pub fn candidates_within(&self, prefix: u64) -> impl Iterator<Item = &Contact> {
        let end = self.prefixes.partition_point(|&p| p <= prefix);
        self.candidates[..end].iter().map(|c| &c.contact)
    }

    /// Index just past the k-th candidate not written off (or the end).
    pub(super) fn window_end(&self) -> usize {
        let mut live = 0;
        for (i, c) in self.candidates.iter().enumerate() {
            if !c.state.written_off() {
                live += 1;
                if live == self.k {
                    return i + 1;
                }
            }
        }
        self.candidates.len()
    }

    /// Where a candidate at `distance` is (`Ok`) or would go (`Err`).
    pub(super) fn search(&self, distance: &Distance) -> Result<usize, usize> {
        let prefix = distance.prefix64();
        let mut pos = self.prefixes.partition_point(|&p| p < prefix);
        // Candidates sharing the 64 bits (an id can be chosen to share them
        // with another) are told apart in full; a separate step, so that the
        // search above never reads a candidate.
        while self.prefixes.get(pos) == Some(&prefix) {
            let candidate = self.candidates[pos].contact.id.distance(&self.target);
            match candidate.cmp(distance) {
                std::cmp::Ordering::Less => pos += 1,
                std::cmp::Ordering::Equal => return Ok(pos),
                std::cmp::Ordering::Greater => break,
            }
        }
        Err(pos)
    }

    /// Add `contacts` learned at `hop`. Returns the nearest positions at
    /// which one was inserted and at which one was already a candidate
    /// (`usize::MAX` where none was).
    pub(super) fn add_candidates(
        &mut self,
        contacts: impl IntoIterator<Item = Contact>,
        hop: u32,
    ) -> (usize, usize) {
        // Candidates beyond the closest few k can never matter.
        let limit = self.k * 4;
        let contacts = contacts.into_iter();
        // Room for the whole answer (or the seeds) at once: grown a slot at
        // a time, the two lists were reallocated four times on the way to k,
        // at the start of every lookup.
        let room = contacts
            .size_hint()
            .0
            .min(limit.saturating_sub(self.candidates.len()));
        self.candidates.reserve(room);
        self.prefixes.reserve(room);
        let (mut nearest, mut nearest_known) = (usize::MAX, usize::MAX);
        for contact in contacts {
            let distance = contact.id.distance(&self.target);
            // Beyond a full list's last candidate: could only be dropped below.
            if self.prefixes.len() >= limit
                && self
                    .prefixes
                    .get(limit - 1)
                    .is_some_and(|&last| distance.prefix64() > last)
            {
                continue;
            }
            if contact.id == self.own {
                continue;
            }
            match self.search(&distance) {
                Ok(pos) => nearest_known = nearest_known.min(pos), // same id
                Err(pos) if pos >= limit => {}
                Err(pos) => {
                    nearest = nearest.min(pos);
                    self.prefixes.insert(pos, distance.prefix64());
                    self.candidates.insert(
                        pos,
                        Candidate {
                            contact,
                            state: State::NotQueried,
                            hop,
                        },
                    );
                }
            }
        }
        // Keep the list bounded: drop far candidates nobody is waiting on.
        if self.candidates.len() > limit {
            let mut i = self.candidates.len();
            while self.candidates.len() > limit && i > 0 {
                i -= 1;
                if self.candidates[i].state == State::NotQueried {
                    self.candidates.remove(i);
                    self.prefixes.remove(i);
                }
            }
        }
        (nearest, nearest_known)
    }

    /// How many candidates are closer to the target than `id`.
    pub fn closer_than(&self, id: &NodeId) -> usize {
        match self.search(&id.distance(&self.target)) {
            Ok(pos) | Err(pos) => pos,
        }
    }
}
