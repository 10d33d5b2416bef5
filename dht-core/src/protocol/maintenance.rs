//! Background work of the node: bucket refresh, re-sending due values,
//! replication walks and liveness probes. Each step is bounded (refreshes
//! per tick, background puts at once, keys per slice, probe slots), so a
//! node holding many values or meeting many contacts spreads the work out.

use std::time::Instant;

use super::{Protocol, MAX_BACKGROUND_PUTS, MAX_REFRESHES_PER_TICK, SLICE_KEYS, SLICE_PAUSE};
use crate::contact::Contact;
use crate::idle_memory::ReleaseWhenEmpty;
use crate::ops::PutKind;
use crate::replication;
use crate::rpc::{Class, Outgoing, Purpose};
use crate::wire::Request;

impl Protocol {
    pub(super) fn probe(&mut self, now: Instant, contact: Contact) {
        let ping = Request::Ping { sender: self.id };
        let out = Outgoing {
            to: contact.addr,
            peer: Some(contact.id),
            request: &ping,
            purpose: Purpose::Probe,
            class: Class::Probe,
            ttl_secs: 0,
            flags: 0,
        };
        if self.out.request(now, &mut self.rng, out) {
            self.contacts.probe_sent(contact);
        } else {
            self.contacts.missed_reply(now, contact);
        }
    }

    /// Re-check suspects (contacts that missed a reply) in the background.
    pub(super) fn send_probes(&mut self, now: Instant) {
        let room = self.out.table.free(Class::Probe);
        for contact in self.contacts.due_probes(now, room) {
            self.probe(now, contact);
        }
    }

    /// Ping the k contacts closest to our own id that we have not heard from
    /// for `neighbour_check_interval`. They are the other holders of the keys we
    /// hold, so one of them leaving is noticed within minutes (a
    /// missed ping makes it a suspect, probed until evicted), and the keys
    /// it held are re-sent by [`crate::replication`] — not at the hourly
    /// bucket refresh, which under heavy churn is too late: at 85% of the
    /// nodes replaced every 10 minutes, a key's k holders are all gone well
    /// within the hour. A node that holds nothing skips it.
    pub(super) fn check_neighbourhood(&mut self, now: Instant) {
        if self.records.is_empty() {
            return;
        }
        let Some(quiet_since) = now.checked_sub(self.config.neighbour_check_interval) else {
            return;
        };
        let table = self.contacts.table();
        let quiet: Vec<Contact> = table
            .closest(&self.id, self.config.k, |_| false)
            .into_iter()
            .filter(|c| {
                table
                    .get(&c.id)
                    .is_some_and(|e| e.failures == 0 && e.last_seen < quiet_since)
            })
            .collect();
        for contact in quiet {
            if self.out.table.free(Class::Probe) == 0 {
                break;
            }
            if !self.contacts.is_probing(&contact.id) {
                self.counters.neighbour_checks += 1;
                self.probe(now, contact);
            }
        }
    }

    /// Free the tables of work in flight that a burst (a join, a busy
    /// minute) left empty: they keep their largest size otherwise (see
    /// [`crate::idle_memory`]). Once per maintenance tick, so a busy node
    /// does not reallocate them over and over.
    pub(super) fn release_idle_memory(&mut self) {
        self.out.release_idle_memory();
        self.ops.release_idle_memory();
        self.contacts.release_idle_memory();
        self.validation.release_idle_memory();
        self.replication.release_idle_memory();
        self.records.release_idle_memory();
        self.events.release_if_empty();
        self.awaiting_verification.release_if_empty();
    }

    pub(super) fn refresh_stale_buckets(&mut self, now: Instant) {
        let Some(stale_before) = now.checked_sub(self.config.refresh_interval) else {
            return;
        };
        let targets = self
            .contacts
            .table()
            .stale_bucket_targets(stale_before, &mut self.rng);
        let (ops, mut env) = self.split();
        for target in targets.into_iter().take(MAX_REFRESHES_PER_TICK) {
            ops.refresh(&mut env, now, target);
        }
    }

    /// Start the re-sends that are due, as many as the background limit allows.
    pub(super) fn start_due_resends(&mut self, now: Instant) {
        while self.ops.background() < MAX_BACKGROUND_PUTS {
            let Some(resend) = self.records.pop_due(now) else {
                return;
            };
            if self.contacts.table().is_empty() {
                continue; // nobody to send to; the next turn is scheduled
            }
            self.counters.resends_started += 1;
            let kind = if resend.republish {
                PutKind::Republish
            } else {
                PutKind::Replicate
            };
            let k = self.config.k;
            let (ops, mut env) = self.split();
            ops.put(&mut env, now, resend.key, resend.value, resend.ttl, k, kind);
        }
    }

    /// One bounded slice of the replication walks (hand-over and repair).
    pub(super) fn replication_slice(&mut self, now: Instant) {
        let view = replication::View {
            own: self.id,
            k: self.config.k,
            routing: self.contacts.table(),
        };
        let room = self.out.table.free(Class::HandOver);
        let sends = self.replication.run_slice(
            now,
            &view,
            &mut self.records,
            SLICE_KEYS,
            room,
            &mut self.rng,
        );
        for (contact, key) in sends {
            let Some(item) = self.records.get(&key, now) else {
                continue;
            };
            let ttl = item.expires_at.saturating_duration_since(now).as_secs();
            let store = Request::Store {
                sender: self.id,
                key,
                value: item.value,
            };
            let out = Outgoing {
                to: contact.addr,
                peer: Some(contact.id),
                request: &store,
                purpose: Purpose::Unawaited,
                class: Class::HandOver,
                ttl_secs: u32::try_from(ttl.max(1)).unwrap_or(u32::MAX),
                flags: 0,
            };
            if self.out.request(now, &mut self.rng, out) {
                self.counters.handovers_sent += 1;
            }
        }
        self.next_slice = self.replication.has_work().then_some(now + SLICE_PAUSE);
    }
}
