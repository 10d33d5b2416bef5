//! Bootstrap and ping: the operations that start from addresses rather than
//! ids. A bootstrap pings its seeds, then looks up the node's own id and
//! refreshes every bucket farther away than its closest neighbour.

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;

use super::{send, Env, Event, Operation, Operations, Outcome};
use crate::error::{Error, Result};
use crate::id::NodeId;
use crate::lookup::LookupKind;
use crate::rpc::{Class, OpId, Purpose};
use crate::wire::Request;

impl Operations {
    pub fn bootstrap<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        addrs: &[SocketAddr],
    ) -> OpId {
        let op = self.new_user_op(env, now);
        self.ops.insert(
            op,
            Operation::Bootstrap {
                pings_left: addrs.len(),
                lookup: None,
            },
        );
        let ping = Request::Ping { sender: env.own };
        for addr in addrs {
            let purpose = Purpose::BootstrapPing(op);
            if !send(env, now, *addr, None, &ping, purpose, Class::User) {
                self.bootstrap_ping_done(env, now, op);
            }
        }
        if addrs.is_empty() {
            self.bootstrap_lookup(env, now, op);
        }
        op
    }

    pub fn ping<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        addr: SocketAddr,
    ) -> OpId {
        let op = self.new_user_op(env, now);
        self.ops.insert(op, Operation::Ping);
        let ping = Request::Ping { sender: env.own };
        if !send(
            env,
            now,
            addr,
            None,
            &ping,
            Purpose::UserPing(op),
            Class::User,
        ) {
            let why = if crate::contact::usable_addr(&addr) {
                Error::Busy
            } else {
                Error::BadAddress(addr.to_string())
            };
            self.ping_done(env, op, Err(why));
        }
        op
    }

    pub(super) fn bootstrap_ping_done<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
    ) {
        let Some(Operation::Bootstrap {
            pings_left,
            lookup: None,
        }) = self.ops.get_mut(&op)
        else {
            return;
        };
        *pings_left = pings_left.saturating_sub(1);
        if *pings_left == 0 {
            self.bootstrap_lookup(env, now, op);
        }
    }

    pub(super) fn bootstrap_lookup<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        now: Instant,
        op: OpId,
    ) {
        if env.seeds(&env.own).is_empty() {
            self.ops.remove(&op);
            let outcome = Outcome::Bootstrap(Vec::new());
            env.events.push_back(Event { op, outcome });
            return;
        }
        let lookup = self.new_lookup(env, now, env.own, LookupKind::FindNode);
        if let Some(Operation::Bootstrap { lookup: slot, .. }) = self.ops.get_mut(&op) {
            *slot = Some(lookup);
        }
        self.drive(env, now, op);
    }

    pub(super) fn ping_done<R: Rng + ?Sized>(
        &mut self,
        env: &mut Env<'_, R>,
        op: OpId,
        outcome: Result<NodeId>,
    ) {
        if self.ops.remove(&op).is_some() {
            let outcome = Outcome::Ping(outcome);
            env.events.push_back(Event { op, outcome });
        }
    }
}
