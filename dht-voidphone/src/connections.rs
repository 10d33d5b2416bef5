//! The table of open API connections and the admission rule for a new one:
//! a per-IP limit and a global limit, and when a limit is reached, room is
//! made by evicting the connection that has been idle longest (no request
//! in flight) instead of refusing the newcomer. So connections that open and
//! stall cannot lock other clients out: they are the first to go. A
//! newcomer is refused only when every connection it could replace is busy.
//!
//! No I/O here: the server asks [`ConnectionTable::admit`], then aborts the
//! evicted connection's task itself.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Whether a connection has requests in flight and, if not, since when it
/// has been idle. Shared between its request tasks (which start and finish
/// requests) and the accept loop (which reads it to pick a victim). Times
/// are nanoseconds since the server's start.
///
/// A request counts as finished when its reply is ready, before the reply
/// is queued: so once a client has read the answer to its last request the
/// connection is already idle, however late its tasks are scheduled again.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicU64,
    idle_since: AtomicU64,
}

impl Activity {
    /// A connection opened at `since_start` and idle since then.
    pub fn idle_from(since_start: u64) -> Arc<Self> {
        Arc::new(Activity {
            in_flight: AtomicU64::new(0),
            idle_since: AtomicU64::new(since_start),
        })
    }

    pub fn start_request(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// A request ended at `since_start`. Call once per
    /// [`Activity::start_request`].
    pub fn finish_request(&self, since_start: u64) {
        // fetch_max: requests finishing at once may store out of order.
        self.idle_since.fetch_max(since_start, Ordering::AcqRel);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Idle since (nanoseconds after the server's start), or `None` while a
    /// request is in flight.
    pub fn idle_since(&self) -> Option<u64> {
        (self.in_flight.load(Ordering::Acquire) == 0)
            .then(|| self.idle_since.load(Ordering::Acquire))
    }
}

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<K> {
    Admit,
    /// Admit it after closing connection `K` (removed from the table already).
    Evict(K),
    /// Refuse it: every connection it could replace has a request in flight.
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its IP address holds `max_connections_per_ip` busy connections.
    PerIpLimit,
    /// The server holds `max_connections` busy connections.
    Full,
}

struct Entry {
    ip: IpAddr,
    activity: Arc<Activity>,
}

/// Open connections by key (the server uses its tasks' ids).
pub struct ConnectionTable<K> {
    entries: HashMap<K, Entry>,
    max_total: usize,
    max_per_ip: usize,
}

impl<K: Copy + Eq + Hash> ConnectionTable<K> {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionTable {
            entries: HashMap::new(),
            max_total,
            max_per_ip,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Decide about a connection from `ip`. An evicted connection is removed
    /// from the table; the caller must then close it. (Linear in the number
    /// of connections, which the limit keeps to about a thousand.)
    pub fn admit(&mut self, ip: IpAddr) -> Admission<K> {
        let from_ip = self.entries.values().filter(|e| e.ip == ip).count();
        let (victim, refusal) = if from_ip >= self.max_per_ip {
            (self.idlest(|e| e.ip == ip), Refusal::PerIpLimit)
        } else if self.entries.len() >= self.max_total {
            (self.idlest(|_| true), Refusal::Full)
        } else {
            return Admission::Admit;
        };
        match victim {
            Some(key) => {
                self.entries.remove(&key);
                Admission::Evict(key)
            }
            None => Admission::Refuse(refusal),
        }
    }

    /// Remove the connection idle longest, if any is idle, for the caller to
    /// close: the process ran out of file descriptors below the limits (a
    /// soft limit of 1,024 is common, under the default 1,024 connections),
    /// and stalled connections must not lock others out that way either.
    pub fn evict_idlest(&mut self) -> Option<K> {
        let key = self.idlest(|_| true)?;
        self.entries.remove(&key);
        Some(key)
    }

    /// Record an admitted connection.
    pub fn insert(&mut self, key: K, ip: IpAddr, activity: Arc<Activity>) {
        self.entries.insert(key, Entry { ip, activity });
    }

    /// Forget a connection that has ended (no-op if it was evicted).
    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// The connection idle longest among those `eligible`, if any is idle.
    fn idlest(&self, eligible: impl Fn(&Entry) -> bool) -> Option<K> {
        self.entries
            .iter()
            .filter(|(_, e)| eligible(e))
            .filter_map(|(k, e)| e.activity.idle_since().map(|t| (t, *k)))
            .min_by_key(|(t, _)| *t)
            .map(|(_, k)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn admits_until_full_then_evicts_the_longest_idle() {
        let mut t = ConnectionTable::new(3, 10);
        let acts: Vec<_> = [30, 10, 20].map(Activity::idle_from).into();
        for (k, a) in acts.iter().enumerate() {
            assert_eq!(t.admit(ip(k as u8)), Admission::Admit);
            t.insert(k, ip(k as u8), a.clone());
        }
        // Connection 1 has been idle since 10, the longest.
        assert_eq!(t.admit(ip(9)), Admission::Evict(1));
        assert_eq!(t.len(), 2);
        t.insert(3, ip(9), Activity::idle_from(40));
        // A busy connection is never the victim, however old.
        acts[2].start_request();
        assert_eq!(t.admit(ip(9)), Admission::Evict(0));
        t.insert(4, ip(9), Activity::idle_from(50));
        assert_eq!(t.admit(ip(9)), Admission::Evict(3));
    }

    #[test]
    fn out_of_descriptors_evicts_the_idlest_of_all() {
        let mut t = ConnectionTable::new(100, 100);
        let busy = Activity::idle_from(1);
        busy.start_request();
        t.insert(0, ip(1), busy);
        t.insert(1, ip(2), Activity::idle_from(20));
        t.insert(2, ip(3), Activity::idle_from(10));
        assert_eq!(t.evict_idlest(), Some(2));
        assert_eq!(t.evict_idlest(), Some(1));
        assert_eq!(t.evict_idlest(), None, "a busy connection is never evicted");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn refuses_when_everything_is_busy() {
        let mut t = ConnectionTable::new(2, 10);
        for k in 0..2u8 {
            let a = Activity::idle_from(0);
            a.start_request();
            t.insert(k, ip(k), a);
        }
        assert_eq!(t.admit(ip(7)), Admission::Refuse(Refusal::Full));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn per_ip_limit_evicts_only_that_ips_connections() {
        let mut t = ConnectionTable::new(100, 2);
        t.insert(0, ip(1), Activity::idle_from(5)); // other IP, idle longest
        t.insert(1, ip(2), Activity::idle_from(10));
        t.insert(2, ip(2), Activity::idle_from(20));
        assert_eq!(t.admit(ip(2)), Admission::Evict(1));
        t.insert(3, ip(2), Activity::idle_from(30));
        assert_eq!(t.admit(ip(3)), Admission::Admit);

        let busy = Activity::idle_from(0);
        busy.start_request();
        let mut t = ConnectionTable::new(100, 1);
        t.insert(0, ip(1), busy.clone());
        assert_eq!(t.admit(ip(1)), Admission::Refuse(Refusal::PerIpLimit));
        busy.start_request();
        busy.finish_request(99);
        // Still one request in flight.
        assert_eq!(t.admit(ip(1)), Admission::Refuse(Refusal::PerIpLimit));
        busy.finish_request(98); // finished earlier, recorded later
        assert_eq!(busy.idle_since(), Some(99));
        assert_eq!(t.admit(ip(1)), Admission::Evict(0));
        assert!(t.is_empty());
    }
}
