//! The commands a node's user gives: bootstrap, get, put, store_local,
//! ping and cancel. Each checks its arguments, then hands the work to the
//! operation it starts in [`crate::ops`]; refusals happen here, at once,
//! before anything is sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::{Protocol, MAX_UDP_PAYLOAD};
use crate::error::{Error, Result};
use crate::id::Key;
use crate::ops::PutKind;
use crate::rpc::OpId;
use crate::value::{Value, MAX_VALUE_DEPTH};
use crate::wire;

/// Options of a put. Made from `PutOptions::default()` and the `with_`
/// methods: more options may come, and that must not break callers.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// Expiry; `None` means `Config::default_ttl`. Capped at `Config::max_ttl`.
    pub ttl: Option<Duration>,
    /// How many of the closest nodes to store at; `None` or 0 means k; capped at k.
    pub replication: Option<usize>,
    /// Whether the putting node keeps the value alive.
    pub lifetime: Lifetime,
}

impl PutOptions {
    /// These options with the value's TTL set.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// These options storing at the `copies` closest nodes (0 means k).
    pub fn with_replication(mut self, copies: usize) -> Self {
        self.replication = Some(copies);
        self
    }

    /// These options with `lifetime`.
    pub fn with_lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }
}

/// How long a put's value lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lifetime {
    /// As long as the putting node runs, which becomes the value's publisher
    /// and re-puts it before its copies expire; the TTL is how long the
    /// copies outlive it.
    #[default]
    WhilePublished,
    /// The TTL from the put, everywhere (the VoidPhone API's "seconds to
    /// keep it"): nothing renews it. The putting node keeps a copy as any
    /// holder does, and holders still re-send their copies to the nodes
    /// closest to the key, with what is left of the TTL.
    Fixed,
}

impl Protocol {
    /// Ping `addrs`, then look up our own id. The event carries the k closest
    /// contacts found (empty if nobody answered).
    pub fn bootstrap(&mut self, now: Instant, addrs: &[SocketAddr]) -> OpId {
        let (ops, mut env) = self.split();
        ops.bootstrap(&mut env, now, addrs)
    }

    /// Find the value under `key`: the local copy, or an iterative FIND_VALUE.
    pub fn get(&mut self, now: Instant, key: Key) -> OpId {
        let (ops, mut env) = self.split();
        ops.get(&mut env, now, key)
    }

    /// Store `value` under `key` at the closest nodes; this node becomes its
    /// publisher and re-puts it for as long as it runs (with
    /// [`Lifetime::Fixed`], it keeps a holder's copy instead, and nothing
    /// renews the value). Fails at once for a bad value or TTL, or with no
    /// known peers.
    pub fn put(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        options: PutOptions,
    ) -> Result<OpId> {
        let ttl = self.validate_put(&value, &options)?;
        self.check_record_rules(now, &key, &value)?;
        if self.contacts.table().is_empty() {
            return Err(Error::NoPeers);
        }
        if let Err(e) = self.keep_own_copy(now, key, value.clone(), ttl, options.lifetime) {
            debug!(%key, error = %e, "own copy not kept");
        }
        let k = self.config.k;
        let replication = options.replication.filter(|r| *r > 0).unwrap_or(k).min(k);
        let (ops, mut env) = self.split();
        Ok(ops.put(&mut env, now, key, value, ttl, replication, PutKind::User))
    }

    /// The TTL a put of `value` will use, or why it cannot be put.
    pub(super) fn validate_put(&self, value: &Value, options: &PutOptions) -> Result<Duration> {
        let max = self.config.max_value_size;
        if value.size() > max || wire::encoded_store_len(value) > MAX_UDP_PAYLOAD {
            return Err(Error::ValueTooLarge {
                size: value.size(),
                max,
            });
        }
        // What peers' decoders refuse, refused here: a put nobody stores.
        if value.depth() > MAX_VALUE_DEPTH {
            return Err(Error::InvalidArgument(format!(
                "value nested more than {MAX_VALUE_DEPTH} deep"
            )));
        }
        if let Some(why) = value.umsgpack_refusal() {
            return Err(Error::InvalidArgument(format!(
                "{why}: Python peers cannot unpack the value"
            )));
        }
        let ttl = options
            .ttl
            .unwrap_or(self.config.default_ttl)
            .min(self.config.max_ttl);
        if ttl.is_zero() {
            return Err(Error::InvalidArgument("ttl must be positive".into()));
        }
        Ok(ttl)
    }

    /// Keep `value` on this node only, as its publisher (or, with
    /// [`Lifetime::Fixed`], as a holder): nothing is sent now. The value
    /// reaches other nodes as they appear (the key hand-over to new
    /// contacts) and with every republish or re-send. For a node that is
    /// alone so far, where [`Protocol::put`] fails with [`Error::NoPeers`].
    pub fn store_local(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        options: PutOptions,
    ) -> Result<()> {
        let ttl = self.validate_put(&value, &options)?;
        self.check_record_rules(now, &key, &value)?;
        self.keep_own_copy(now, key, value, ttl, options.lifetime)
    }

    /// This node's copy of a value it puts: the publisher's, or, for a
    /// fixed lifetime, a holder's copy that expires with the TTL.
    fn keep_own_copy(
        &mut self,
        now: Instant,
        key: Key,
        value: Value,
        ttl: Duration,
        lifetime: Lifetime,
    ) -> Result<()> {
        match lifetime {
            Lifetime::WhilePublished => self.records.publish(now, key, value, ttl),
            Lifetime::Fixed => self.records.hold_own(now, key, value, ttl, &mut self.rng),
        }
    }

    /// Ping one address; the event carries the id that answered.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> OpId {
        let (ops, mut env) = self.split();
        ops.ping(&mut env, now, addr)
    }

    /// Abandon an operation: no event will come for it. Replies still in
    /// flight are used to update the routing table only.
    pub fn cancel(&mut self, op: OpId) {
        self.ops.cancel(op);
    }
}
