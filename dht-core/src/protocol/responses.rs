//! Replies to our own RPCs, and their absence: a reply is matched to its
//! request, credits the contact that proved itself (a ping answer proves an
//! id, and so does an answer naming the id we expected in its responder-id
//! trailer, where our request asked for one; any other answer only
//! refreshes a contact we already hold at that address, else it is checked
//! with a ping first), and goes to the operation that asked; a missing reply
//! counts against the contact.

use std::net::SocketAddr;
use std::time::Instant;

use super::Protocol;
use crate::contact::Contact;
use crate::rpc::{PendingRpc, Purpose};
use crate::wire::{self, MsgId, Response};

impl Protocol {
    pub(super) fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg_id: MsgId,
        body: &[u8],
    ) {
        let rpc = match self.out.table.complete(now, &msg_id, from) {
            Ok(rpc) => rpc,
            Err(why) => return self.drop_datagram(from, &why),
        };
        let (response, responder) = match wire::decode_response_with_trailers(rpc.kind, body) {
            Ok((r, trailers)) => {
                if let Some(observed) = trailers.observed {
                    self.public_address.report(now, from.ip(), observed);
                }
                // Only where our request asked for it (a lookup's).
                let named = trailers
                    .responder
                    .filter(|_| wire::wants_responder(&msg_id));
                (r, named)
            }
            Err(e) => {
                self.drop_datagram(from, &e);
                return self.rpc_failed(now, rpc);
            }
        };
        self.counters.responses_received += 1;
        // The address answered at the address we sent to: it receives.
        for answer in self.validation.answered(&from) {
            self.out.send_encoded(from, answer);
        }
        let peer = match &response {
            // A ping that only checked the address (of a client, perhaps)
            // adds nobody to the table.
            Response::Ping(id) if rpc.purpose == Purpose::Verify && rpc.peer.is_none() => {
                self.out.table.peers_mut().proved_id(&from, id);
                let contact = Contact::new(*id, from);
                if self.awaiting_verification.remove(id) && self.contacts.holds(&contact) {
                    self.replication
                        .contact_appeared(now, contact, self.records.len());
                }
                Some(*id)
            }
            Response::Ping(id) => {
                // A ping answer proves the id: the contact may enter the table.
                self.out.table.peers_mut().proved_id(&from, id);
                let contact = Contact::new(*id, from);
                self.heard_from(now, contact);
                if self.awaiting_verification.remove(id) {
                    self.replication
                        .contact_appeared(now, contact, self.records.len());
                }
                Some(*id)
            }
            _ => {
                // Any other answer is credited to the id we expected, which a
                // third party told us: refresh it only if we hold that id at
                // that address already, or the address proved that id (to a
                // ping lately, or by naming it in this answer's trailer),
                // else check it with a ping first.
                if let Some(id) = rpc.peer {
                    let contact = Contact::new(id, from);
                    if self.contacts.holds(&contact)
                        || self.out.table.peers().proves(&from, &id, now)
                    {
                        self.heard_from(now, contact);
                    } else if responder == Some(id) {
                        // Recorded only when new: most lookup answers come
                        // from contacts we hold.
                        self.out.table.peers_mut().proved_id(&from, &id);
                        self.heard_from(now, contact);
                    } else if !self.contacts.is_probing(&id) {
                        // One check per contact: a lookup hears from it often.
                        self.verify(now, from, Some(id));
                        self.contacts.probe_sent(contact);
                    }
                }
                rpc.peer
            }
        };
        let (ops, mut env) = self.split();
        ops.on_reply(&mut env, now, rpc.purpose, peer, response);
    }

    /// A request got no (usable) answer.
    pub(super) fn rpc_failed(&mut self, now: Instant, rpc: PendingRpc) {
        if rpc.purpose == Purpose::Verify {
            self.validation.failed(&rpc.to, now);
        }
        if let Some(id) = rpc.peer {
            self.contacts.missed_reply(now, Contact::new(id, rpc.to));
        }
        let (ops, mut env) = self.split();
        ops.on_failure(&mut env, now, rpc.purpose, rpc.peer);
    }

    /// `contact` sent us a request or answered one of ours.
    pub(super) fn heard_from(&mut self, now: Instant, contact: Contact) {
        if !contact.is_usable() {
            return;
        }
        if let Some(oldest) = self.contacts.heard_from(now, contact) {
            // A contact heard from lately is presumed alive (see
            // `Config::contact_fresh_for`); a probe's answer could not prove
            // more than one RPC timeout back anyway.
            let fresh_for = self.config.contact_fresh_for.max(self.config.rpc_timeout);
            let fresh = self
                .contacts
                .table()
                .get(&oldest.id)
                .is_some_and(|e| now.saturating_duration_since(e.last_seen) < fresh_for);
            if !fresh {
                self.probe(now, oldest);
            }
        }
    }
}
