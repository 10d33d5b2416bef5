//! The RPC table's hard deadlines: a queue in the order they fall due.
//!
//! Every request gets the same hard timeout, and `now` does not go back, so
//! requests come due in the order they were sent: appending keeps the queue
//! sorted. An ordered set did the same job with a search of 36-byte keys to
//! enter each request and another to take it out when answered, on every
//! RPC. Here an answered request's entry is left where it is and dropped
//! when it reaches the front, or in a sweep once such entries outnumber the
//! live ones (so the queue holds at most about twice the requests pending).
//! The owner says which entries are live (see [`DeadlineQueue::tidy`]).

use std::collections::VecDeque;
use std::time::Instant;

/// Entries no longer live, beyond the live ones, that trigger a sweep.
const SWEEP_SLACK: usize = 64;

#[derive(Debug)]
pub(crate) struct DeadlineQueue<K> {
    queue: VecDeque<(Instant, K)>,
}

impl<K> Default for DeadlineQueue<K> {
    fn default() -> Self {
        DeadlineQueue {
            queue: VecDeque::new(),
        }
    }
}

impl<K: Copy> DeadlineQueue<K> {
    /// Enter `key`, due `at`. An `at` earlier than the last one (a caller
    /// whose clock went back) is put in its place, not at the end.
    pub fn push(&mut self, at: Instant, key: K) {
        match self.queue.back() {
            Some(&(last, _)) if at < last => {
                let place = self.queue.partition_point(|&(due, _)| due <= at);
                self.queue.insert(place, (at, key));
            }
            _ => self.queue.push_back((at, key)),
        }
    }

    /// The earliest deadline entered and not yet dropped.
    pub fn first(&self) -> Option<Instant> {
        self.queue.front().map(|&(at, _)| at)
    }

    /// The earliest entry due by `now`, taken out (live or not: the caller
    /// checks).
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.queue.front() {
            Some(&(at, _)) if at <= now => self.queue.pop_front(),
            _ => None,
        }
    }

    /// Drop the entries at the front that are no longer live, so that
    /// [`DeadlineQueue::first`] is a live deadline; sweep out every entry
    /// no longer live once they outnumber the `live` ones by
    /// [`SWEEP_SLACK`]. Call after each change that can end an entry.
    pub fn tidy(&mut self, live: usize, is_live: impl Fn(Instant, &K) -> bool) {
        while let Some((at, key)) = self.queue.front() {
            if is_live(*at, key) {
                break;
            }
            self.queue.pop_front();
        }
        if self.queue.len() > 2 * live + SWEEP_SLACK {
            self.queue.retain(|(at, key)| is_live(*at, key));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Give back the buffer of a burst once empty (see [`crate::idle_memory`]).
    pub fn release_if_empty(&mut self) {
        if self.queue.is_empty() {
            self.queue.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn entries_come_due_in_deadline_order_even_when_entered_out_of_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut q = DeadlineQueue::default();
        q.push(at(10), 1);
        q.push(at(30), 3);
        q.push(at(20), 2); // a clock that went back
        q.push(at(30), 4);
        assert_eq!(q.first(), Some(at(10)));
        assert_eq!(q.pop_due(at(5)), None);
        let due: Vec<u32> = std::iter::from_fn(|| q.pop_due(at(30)).map(|(_, k)| k)).collect();
        assert_eq!(due, vec![1, 2, 3, 4]);
        assert_eq!(q.first(), None);
    }

    #[test]
    fn ended_entries_leave_the_front_at_once_and_the_rest_in_sweeps() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::default();
        let mut live = std::collections::HashSet::new();
        // Request 0 is never answered; every later one is, at once.
        q.push(t0, 0u32);
        live.insert(0u32);
        let mut longest = 0;
        for key in 1..10_000u32 {
            q.push(t0 + Duration::from_micros(u64::from(key)), key);
            live.insert(key);
            live.remove(&key);
            q.tidy(live.len(), |_, k| live.contains(k));
            longest = longest.max(q.len());
        }
        // The unanswered request holds the front: answered entries behind it
        // go in sweeps, never piling up past the slack.
        assert!(longest <= 2 * live.len() + SWEEP_SLACK + 1, "{longest}");
        assert_eq!(q.first(), Some(t0));
        live.remove(&0);
        q.tidy(live.len(), |_, k| live.contains(k));
        assert_eq!((q.first(), q.len()), (None, 0));
    }
}
