//! Answering requests: the responder's answer, admitted under the
//! anti-amplification budget (contact lists cut, values held for a
//! verification ping), and the verification pings themselves.

use std::net::SocketAddr;
use std::time::Instant;

use super::Protocol;
use crate::amplification::Admit;
use crate::contact::Contact;
use crate::id::NodeId;
use crate::responder::{self, StorePolicy};
use crate::rpc::{Class, Outgoing, Purpose};
use crate::wire::{self, MsgId, Request, Response};

impl Protocol {
    pub(super) fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg_id: MsgId,
        body: &[u8],
        request_len: usize,
    ) {
        let request = match wire::decode_request(body) {
            Ok(r) => r,
            Err(e) => return self.drop_datagram(from, &e),
        };
        self.counters.requests_received += 1;
        if let Request::StoreRejected { .. } = request {
            self.counters.stores_undecodable += 1;
        }
        let client_only = wire::flags_from_id(&msg_id) & wire::FLAG_CLIENT != 0;
        if let Some(sender) = request.sender().filter(|_| !client_only) {
            self.heard_from(now, Contact::new(sender, from));
        }
        let mut ctx = responder::Context {
            own: self.id,
            routing: self.contacts.table(),
            records: &mut self.records,
            quota: &mut self.quota,
            policy: &StorePolicy {
                k: self.config.k,
                max_value_size: self.config.max_value_size,
                default_ttl: self.config.default_ttl,
                max_ttl: self.config.max_ttl,
                clock: self.clock,
            },
            rng: &mut self.rng,
        };
        let mut response = responder::answer(&mut ctx, now, from, &msg_id, request);
        let budget = self
            .validation
            .budget(self.out.table.peers(), &from, request_len, now);
        let mut answer = self.out.buffer();
        wire::encode_reply_into(&mut answer, &msg_id, &response, from, &self.id);
        if answer.len() > budget && contact_list(&mut response).is_some() {
            // Cut a contact list to the budget rather than make it wait: the
            // asker still progresses; a ping (counted in the budget) makes
            // the next answers whole. A cut answer always leaves room for
            // the ping, sent or not, so answers and pings together stay
            // within the budget. (Encoded once when it fits: the common case,
            // and always on loopback and private addresses.)
            if self.validation.start_ping(from, now) {
                self.verify(now, from, None);
            }
            let room = budget.saturating_sub(self.verification_ping_len());
            while answer.len() > room {
                let Some(contacts) = contact_list(&mut response) else {
                    break;
                };
                if contacts.pop().is_none() {
                    break;
                }
                wire::encode_reply_into(&mut answer, &msg_id, &response, from, &self.id);
            }
        }
        let peers = self.out.table.peers();
        match self.validation.admit(peers, from, request_len, answer, now) {
            Admit::Send(answer) => self.out.send_encoded(from, answer),
            Admit::Held { ping: true } => self.verify(now, from, None),
            Admit::Held { ping: false } | Admit::Dropped => {}
        }
    }

    /// Bytes of a verification ping.
    fn verification_ping_len(&self) -> usize {
        wire::encode_request(&[0; wire::MSG_ID_LEN], &Request::Ping { sender: self.id }).len()
    }

    /// Ping `addr` to check that it receives (and, with `peer`, that it
    /// answers with that id).
    pub(super) fn verify(&mut self, now: Instant, addr: SocketAddr, peer: Option<NodeId>) {
        let ping = Request::Ping { sender: self.id };
        let out = Outgoing {
            to: addr,
            peer,
            request: &ping,
            purpose: Purpose::Verify,
            class: Class::Probe,
            ttl_secs: 0,
            flags: 0,
        };
        if !self.out.request(now, &mut self.rng, out) {
            self.validation.failed(&addr, now);
        }
    }
}

/// The contact list an answer carries, if any: the one the anti-amplification
/// budget may cut.
fn contact_list(response: &mut Response) -> Option<&mut Vec<Contact>> {
    match response {
        Response::Nodes(contacts) | Response::StoreWithNodes(_, contacts) => Some(contacts),
        _ => None,
    }
}
