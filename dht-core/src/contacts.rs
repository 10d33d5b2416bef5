//! The contact manager: the routing table plus the liveness checks that keep
//! it honest.
//!
//! Contacts enter the table when they contact us or answer us. A full
//! bucket keeps its long-lived contacts and pings the least recently seen one
//! (paper §2.2) unless it was heard from within `Config::contact_fresh_for`
//! (BEP 5's 15 minutes; the glue decides, `protocol/responses.rs`); a contact that misses a reply becomes *suspect*: it is
//! neither handed to other nodes nor used as a lookup seed, and it is probed
//! again in the background until it answers or has missed `max_failures`
//! replies and is evicted. So dead contacts leave within a few RPC timeouts
//! of being noticed, and the table's size reflects live peers.
//!
//! The manager reports membership changes — contacts that *appeared* (new,
//! or promoted from a replacement cache by a split or an eviction) and
//! contacts that *left* — for [`crate::replication`] to repair copies.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::contact::Contact;
use crate::id::NodeId;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::routing::{Insert, RoutingTable};

pub struct Contacts {
    routing: RoutingTable,
    /// Contacts with a probe in flight.
    probing: HashMap<NodeId, Contact>,
    /// Suspects to probe, by due time.
    recheck: BTreeSet<(Instant, NodeId)>,
    recheck_addr: HashMap<NodeId, Contact>,
    appeared: Vec<Contact>,
    left: Vec<Contact>,
    recheck_delay: Duration,
}

impl Contacts {
    pub fn new(routing: RoutingTable, recheck_delay: Duration) -> Self {
        Contacts {
            routing,
            probing: HashMap::new(),
            recheck: BTreeSet::new(),
            recheck_addr: HashMap::new(),
            appeared: Vec::new(),
            left: Vec::new(),
            recheck_delay,
        }
    }

    /// Free the lists a burst left empty (see `idle_memory.rs`).
    pub fn release_idle_memory(&mut self) {
        self.appeared.release_if_empty();
        self.left.release_if_empty();
        self.recheck.release_if_empty();
    }

    pub fn table(&self) -> &RoutingTable {
        &self.routing
    }

    pub fn table_mut(&mut self) -> &mut RoutingTable {
        &mut self.routing
    }

    /// `contact` sent us a request or answered one of ours. Returns a
    /// contact to probe (the oldest of a full bucket), if any.
    pub fn heard_from(&mut self, now: Instant, contact: Contact) -> Option<Contact> {
        if contact.id == self.routing.own_id() {
            return None;
        }
        self.forget_suspicion(&contact.id);
        let to_probe = match self.routing.insert(contact, now) {
            Insert::Added => {
                self.appeared.push(contact);
                None
            }
            Insert::Full { oldest } if !self.probing.contains_key(&oldest.id) => Some(oldest),
            // Someone claims a known id from another address: the known
            // address keeps it unless it stops answering.
            Insert::AddressConflict { known } if !self.probing.contains_key(&known.id) => {
                Some(known)
            }
            _ => None,
        };
        let promoted = self.routing.take_promoted();
        self.appeared.extend(promoted);
        to_probe
    }

    /// A probe of `contact` was sent.
    pub fn probe_sent(&mut self, contact: Contact) {
        self.probing.insert(contact.id, contact);
    }

    /// A contact in the table that missed its last reply.
    pub fn is_suspect(&self, id: &NodeId) -> bool {
        self.routing.get(id).is_some_and(|e| e.failures > 0)
    }

    /// The contact we hold for `id` is at `contact.addr`.
    pub fn holds(&self, contact: &Contact) -> bool {
        self.routing
            .get(&contact.id)
            .is_some_and(|e| e.contact.addr == contact.addr)
    }

    pub fn is_probing(&self, id: &NodeId) -> bool {
        self.probing.contains_key(id)
    }

    /// `contact` did not answer an RPC in time.
    pub fn missed_reply(&mut self, now: Instant, contact: Contact) {
        release(&mut self.probing, &contact.id);
        if !self.routing.contains(&contact.id) {
            return;
        }
        if self.routing.record_failure(&contact.id) {
            self.forget_suspicion(&contact.id);
            self.left.push(contact);
            let promoted = self.routing.take_promoted();
            self.appeared.extend(promoted);
        } else if self.recheck_addr.insert(contact.id, contact).is_none() {
            self.recheck.insert((now + self.recheck_delay, contact.id));
        }
    }

    /// Suspects due for a probe by `now`, at most `max`.
    pub fn due_probes(&mut self, now: Instant, max: usize) -> Vec<Contact> {
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&(at, id)) = self.recheck.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.recheck.pop_first();
            if let Some(contact) = release(&mut self.recheck_addr, &id) {
                if self.routing.contains(&id) && !self.probing.contains_key(&id) {
                    due.push(contact);
                }
            }
        }
        due
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.recheck.first().map(|(t, _)| *t)
    }

    /// Contacts that entered the table since the last call.
    pub fn take_appeared(&mut self) -> Vec<Contact> {
        std::mem::take(&mut self.appeared)
    }

    /// Contacts evicted since the last call.
    pub fn take_left(&mut self) -> Vec<Contact> {
        std::mem::take(&mut self.left)
    }

    fn forget_suspicion(&mut self, id: &NodeId) {
        release(&mut self.probing, id);
        release(&mut self.recheck_addr, id);
        // The stale `recheck` entry is skipped when it comes due.
    }
}

/// Remove `id`; a map left empty gives its memory back. Probes come in a
/// burst while a node joins and rarely after, and a map keeps its largest
/// size for good: ~1.7 KB per node of a simulated network.
fn release<V>(map: &mut HashMap<NodeId, V>, id: &NodeId) -> Option<V> {
    // Nearly always empty: skip hashing the id (called per datagram).
    if map.is_empty() {
        return None;
    }
    let removed = map.remove(id);
    if map.is_empty() {
        map.shrink_to(0);
    }
    removed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::id::ID_LEN;
    use std::net::SocketAddr;

    fn contact(first: u8, port: u16) -> Contact {
        let mut id = [first; ID_LEN];
        id[0] = first;
        Contact::new(NodeId(id), SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn suspects_are_probed_until_evicted_and_reported_as_left() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let delay = Duration::from_secs(1);
        let mut c = Contacts::new(RoutingTable::new(own, 4, 3, now), delay);
        let a = contact(0x80, 1);
        assert!(c.heard_from(now, a).is_none());
        assert_eq!(c.take_appeared(), vec![a]);
        c.missed_reply(now, a);
        assert!(c.due_probes(now, 10).is_empty(), "not before the delay");
        let later = now + delay;
        assert_eq!(c.due_probes(later, 10), vec![a]);
        c.probe_sent(a);
        c.missed_reply(later, a);
        assert_eq!(c.due_probes(later + delay, 10), vec![a]);
        c.missed_reply(later + delay, a);
        assert!(!c.table().contains(&a.id), "evicted after 3 misses");
        assert_eq!(c.take_left(), vec![a]);
        assert!(c.due_probes(later + delay * 10, 10).is_empty());
    }

    #[test]
    fn an_answer_clears_suspicion() {
        let now = Instant::now();
        let own = NodeId([0; ID_LEN]);
        let mut c = Contacts::new(RoutingTable::new(own, 4, 3, now), Duration::ZERO);
        let a = contact(0x80, 1);
        c.heard_from(now, a);
        c.missed_reply(now, a);
        c.heard_from(now, a);
        assert!(c.due_probes(now, 10).is_empty());
        assert_eq!(c.table().get(&a.id).unwrap().failures, 0);
    }
}
