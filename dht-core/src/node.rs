//! The tokio side of a node: [`Node`], the handle callers hold. Its task,
//! which moves datagrams between the UDP socket and the sans-IO
//! [`Protocol`] and turns its events into finished futures, is in
//! `node_driver.rs`.

use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use crate::after_unlock::HeldScope;
use crate::config::Config;
use crate::contact::Contact;
use crate::doorbell::Doorbell;
use crate::durable::Durable;
use crate::error::{Error, Result};
use crate::id::{Key, NodeId};
use crate::node_commands::{CommandSender, OutcomeCallback, Start};
use crate::node_driver::drive;
use crate::node_socket::{bind_socket, canonical, dialable};
use crate::protocol::{OpId, Outcome, Protocol, PutOptions, PutReport, Stats};
use crate::storage::{MemoryStorage, Storage};
use crate::value::Value;

/// Rejoin bootstraps through saved contacts before giving up (2 s, 4 s, ...
/// then every 60 s: about 6 minutes in all).
const REJOIN_ATTEMPTS: usize = 10;

/// A running Kademlia node on a UDP socket.
///
/// ```no_run
/// # async fn demo() -> dht_core::Result<()> {
/// use dht_core::{Config, Node, NodeId, PutOptions, Value};
/// let node = Node::bind(Config::default().with_bind("127.0.0.1:0".parse().unwrap())).await?;
/// node.bootstrap(&["127.0.0.1:8468".parse().unwrap()]).await?;
/// let key = NodeId::digest(b"greeting");
/// node.put(key, Value::from("hello"), PutOptions::default()).await?;
/// assert_eq!(node.get(key).await?, Some(Value::from("hello")));
/// node.shutdown();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

/// What a node's handles share with its driver task (`node_driver.rs`).
pub(crate) struct Inner {
    pub(crate) id: NodeId,
    config: Config,
    pub(crate) local_addr: SocketAddr,
    state: Mutex<State>,
    /// Async commands go to the driver this way, never through `state`'s lock.
    commands: CommandSender,
    /// Wakes the driver: for commands, changes made under the lock, and shutdown.
    pub(crate) wake: Arc<Notify>,
    pub(crate) shut_down: AtomicBool,
    /// Becomes true once the driver has exited and the socket is closed.
    pub(crate) closed: watch::Sender<bool>,
}

pub(crate) struct State {
    pub(crate) protocol: Protocol,
    /// Set by the driver, under the lock, as it exits: no waiter inserted
    /// after this could ever be completed, so commands check it under the
    /// same lock (checking `shut_down` alone races with the driver's exit).
    pub(crate) driver_gone: bool,
}

/// The protocol's clock. Read from tokio so a node runs under tokio's paused
/// test clock (`start_paused`) as well as in real time.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Inner {
    pub(crate) fn lock(&self) -> StateGuard<'_> {
        let held = HeldScope::enter();
        // A panic while holding the lock leaves the protocol usable (every
        // method keeps its invariants between statements), so keep going.
        let guard = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StateGuard { guard, _held: held }
    }
}

/// A node's locked state. Log deliveries put off while it is held (see
/// `after_unlock.rs`) run when it is dropped, after the lock is released.
pub(crate) struct StateGuard<'a> {
    // Fields drop in order: the lock is released before `_held` runs what
    // was put off.
    guard: MutexGuard<'a, State>,
    _held: HeldScope,
}

impl Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

impl Node {
    /// Bind the socket and start the node's task on the current tokio runtime,
    /// with the default in-memory storage.
    pub async fn bind(config: Config) -> Result<Node> {
        let storage = MemoryStorage::for_config(&config);
        Self::bind_with_storage(config, Box::new(storage)).await
    }

    /// Like [`Node::bind`], keeping values in `storage`. With
    /// [`Config::data_dir`] set, the directory is locked and loaded first
    /// (failing with [`Error::Persistence`] when it is in use, damaged or
    /// unwritable), and a node that saved contacts rejoins through them.
    pub async fn bind_with_storage(mut config: Config, storage: Box<dyn Storage>) -> Result<Node> {
        config.validate()?;
        let wall_clock_set = config.unix_time_at_start;
        config.unix_time_at_start = config
            .unix_time_at_start
            .or_else(crate::node_records::system_unix_time);
        let (durable, protocol) = match &config.data_dir {
            Some(dir) => {
                let (durable, protocol) =
                    Durable::open(config.clone(), storage, dir, now(), wall_clock_set).await?;
                (Some(durable), protocol)
            }
            None => (
                None,
                Protocol::with_storage(config.clone(), storage, now())?,
            ),
        };
        let saved_peers: Vec<SocketAddr> = match durable {
            Some(_) => protocol
                .routing()
                .contacts()
                .iter()
                .map(|c| c.addr)
                .collect(),
            None => Vec::new(),
        };
        let socket = bind_socket(config.bind)?;
        let local_addr = socket.local_addr()?;
        let wake = Arc::new(Notify::new());
        let (commands, command_rx) = CommandSender::new(wake.clone());
        let inner = Arc::new(Inner {
            id: protocol.id(),
            config,
            local_addr,
            state: Mutex::new(State {
                protocol,
                driver_gone: false,
            }),
            commands,
            wake,
            shut_down: AtomicBool::new(false),
            closed: watch::Sender::new(false),
        });
        tokio::spawn(drive(inner.clone(), socket, durable, command_rx));
        debug!(id = %inner.id, addr = %local_addr, "node started");
        let node = Node { inner };
        if !saved_peers.is_empty() {
            tokio::spawn(rejoin(node.clone(), saved_peers));
        }
        Ok(node)
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// [`Error::BadAddress`] for a peer address this node can never reach:
    /// port 0, or another IP family than the socket's (an IPv6 socket bound
    /// to `::` reaches IPv4 peers too, through mapped addresses). A wildcard
    /// IP (0.0.0.0, ::) means this host's loopback, as with the Python
    /// package. Checked by `ping` and `bootstrap` so they fail at once
    /// instead of after an RPC timeout.
    pub fn check_peer_addr(&self, addr: SocketAddr) -> Result<()> {
        // A wildcard address means this host, as for the Python package.
        let addr = dialable(canonical(addr));
        let local = self.inner.local_addr;
        let reachable = match (local.ip(), addr.ip()) {
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
            (IpAddr::V6(l), IpAddr::V4(_)) => l.is_unspecified(),
            _ => true,
        };
        let why = if addr.port() == 0 {
            "port 0 cannot be reached"
        } else if !reachable {
            "another IP family than this node's socket"
        } else {
            return Ok(());
        };
        Err(Error::BadAddress(format!(
            "{addr}: {why} (node bound to {local})"
        )))
    }

    /// Ping `addrs`, then look up our own id; returns the k closest contacts
    /// found, or an empty list when nobody answered. Addresses this node can
    /// never reach ([`Node::check_peer_addr`]) are skipped, as an unanswered
    /// ping would be; if every given address is such, [`Error::BadAddress`]
    /// at once instead of waiting for timeouts.
    pub async fn bootstrap(&self, addrs: &[SocketAddr]) -> Result<Vec<Contact>> {
        let addrs: Vec<SocketAddr> = addrs.iter().map(|a| dialable(canonical(*a))).collect();
        let reachable: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.check_peer_addr(*a).is_ok())
            .collect();
        if reachable.is_empty() {
            if let Some(first) = addrs.first() {
                self.check_peer_addr(*first)?;
            }
        }
        let addrs = reachable;
        match self.run(move |p, now| Ok(p.bootstrap(now, &addrs))).await? {
            Outcome::Bootstrap(contacts) => Ok(contacts),
            other => Err(unexpected(other)),
        }
    }

    /// Store `value` under `key` at the k closest nodes.
    pub async fn put(&self, key: Key, value: Value, options: PutOptions) -> Result<PutReport> {
        match self
            .run(move |p, now| p.put(now, key, value, options))
            .await?
        {
            Outcome::Put(result) => result,
            other => Err(unexpected(other)),
        }
    }

    /// Have calls made outside any tokio runtime (a Python or C caller's
    /// thread) wake this node's driver through `doorbell`, whose task runs
    /// on the node's runtime: cheaper than tokio's own wake-up from outside
    /// (see [`Doorbell`]). Calls made on a runtime's threads wake it as
    /// before. The first doorbell given stays.
    pub fn ring_through(&self, doorbell: &Doorbell) {
        self.inner.commands.ring_through(doorbell);
    }

    /// Keep `value` on this node only (see [`Protocol::store_local`]): for a
    /// node with no peers yet, whose values should reach the nodes that join.
    pub fn store_local(&self, key: Key, value: Value, options: PutOptions) -> Result<()> {
        let mut state = self.inner.lock();
        if state.driver_gone || self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        state.protocol.store_local(now(), key, value, options)?;
        // With a data directory, the driver saves it in its next iteration.
        self.inner.wake.notify_one();
        Ok(())
    }

    /// The value under `key`, or `None` when the network does not have it.
    pub async fn get(&self, key: Key) -> Result<Option<Value>> {
        match self.run(move |p, now| Ok(p.get(now, key))).await? {
            Outcome::Get(result) => result,
            other => Err(unexpected(other)),
        }
    }

    /// The id of the node answering at `addr`.
    pub async fn ping(&self, addr: SocketAddr) -> Result<NodeId> {
        let addr = dialable(canonical(addr));
        self.check_peer_addr(addr)?;
        match self.run(move |p, now| Ok(p.ping(now, addr))).await? {
            Outcome::Ping(result) => result,
            other => Err(unexpected(other)),
        }
    }

    /// Every contact in the routing table.
    pub fn contacts(&self) -> Vec<Contact> {
        self.inner.lock().protocol.routing().contacts()
    }

    /// The `n` contacts nearest to our own id.
    pub fn closest_contacts(&self, n: usize) -> Vec<Contact> {
        self.inner.lock().protocol.closest_contacts(n)
    }

    /// Add saved contacts to the routing table; returns how many were new.
    /// Contacts this node cannot send to (another IP family than its
    /// socket's, port 0) are skipped.
    pub fn import_contacts(&self, contacts: &[Contact]) -> usize {
        // A contact this socket cannot send to (the other IP family, port 0)
        // would only take a slot until its pings time out.
        let contacts: Vec<Contact> = contacts
            .iter()
            .map(|c| Contact::new(c.id, canonical(c.addr)))
            .filter(|c| self.check_peer_addr(c.addr).is_ok())
            .collect();
        let added = self.inner.lock().protocol.import_contacts(now(), &contacts);
        self.inner.wake.notify_one();
        added
    }

    /// The value held by this node for `key`, without network traffic.
    pub fn local_value(&self, key: &Key) -> Option<Value> {
        self.inner.lock().protocol.local_value(key, now())
    }

    pub fn stats(&self) -> Stats {
        self.inner.lock().protocol.stats()
    }

    /// This node's address as its peers see it (its NAT's public address,
    /// say), once at least two peer IPs agree; see [`Stats::public_address`].
    pub fn public_address(&self) -> Option<SocketAddr> {
        self.stats().public_address
    }

    /// Ask the node to stop: the task ends, the socket closes, pending and
    /// later operations fail with [`Error::Shutdown`]. Returns at once; await
    /// [`Node::closed`] (or use [`Node::shutdown_and_wait`]) to know the
    /// socket is released. Idempotent.
    pub fn shutdown(&self) {
        if !self.inner.shut_down.swap(true, Ordering::SeqCst) {
            self.inner.wake.notify_one();
        }
    }

    /// Stop the node and wait until its socket is closed and every pending
    /// operation has failed with [`Error::Shutdown`]: the port can be bound
    /// again as soon as this returns.
    pub async fn shutdown_and_wait(&self) {
        self.shutdown();
        self.closed().await;
    }

    /// Resolves once the node's task has exited and its socket is closed
    /// (after [`Node::shutdown`], or when the runtime running it shut down).
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.subscribe();
        // An error means the sender is gone, i.e. the node itself is gone.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// True once the socket is closed.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    pub fn is_shut_down(&self) -> bool {
        self.inner.shut_down.load(Ordering::SeqCst)
    }

    /// Start a command whose outcome goes to `done` (see
    /// [`crate::node_callbacks`]); the ticket cancels it.
    pub(crate) fn start_then(
        &self,
        start: impl FnOnce(&mut Protocol, Instant) -> Result<OpId> + Send + 'static,
        done: OutcomeCallback,
    ) -> u64 {
        self.inner
            .commands
            .send_then(Box::new(start) as Start, done)
    }

    /// Stop the command `ticket` (started by [`Node::start_then`]).
    pub(crate) fn cancel_ticket(&self, ticket: u64) {
        self.inner.commands.cancel(ticket);
    }

    /// Start a command and wait for its outcome. The command goes to the
    /// driver through a channel (see [`crate::node_commands`]), so the
    /// caller never waits for the node's lock. Dropping the returned future
    /// cancels the command in the protocol.
    pub(crate) async fn run(
        &self,
        start: impl FnOnce(&mut Protocol, Instant) -> Result<OpId> + Send + 'static,
    ) -> Result<Outcome> {
        if self.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let sent = self.inner.commands.send(Box::new(start) as Start)?;
        let mut guard = CancelOnDrop {
            inner: &self.inner,
            ticket: Some(sent.ticket),
        };
        // A dropped waiter means the driver exited before answering. A start
        // sent while the driver exits can also stay in the channel with its
        // waiter (tokio drains the channel as the receiver goes, and a send
        // racing that is kept): the driver's exit answers that one.
        let mut closed = self.inner.closed.subscribe();
        let outcome = tokio::select! {
            biased;
            outcome = sent.outcome => outcome.map_err(|_| Error::Shutdown),
            _ = closed.wait_for(|closed| *closed) => Err(Error::Shutdown),
        };
        guard.ticket = None;
        outcome?
    }
}

struct CancelOnDrop<'a> {
    inner: &'a Inner,
    ticket: Option<u64>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.inner.commands.cancel(ticket);
        }
    }
}

pub(crate) fn unexpected(outcome: Outcome) -> Error {
    Error::InvalidArgument(format!("internal: unexpected outcome {outcome:?}"))
}

/// Rejoin the network through the contacts saved by an earlier run: a
/// bootstrap through their addresses, tried again with growing pauses while
/// nobody answers (a whole network restarting comes back one node at a time).
async fn rejoin(node: Node, peers: Vec<SocketAddr>) {
    let mut pause = Duration::from_secs(2);
    for _ in 0..REJOIN_ATTEMPTS {
        match node.bootstrap(&peers).await {
            Ok(found) if !found.is_empty() => {
                debug!(found = found.len(), "rejoined through saved contacts");
                return;
            }
            Ok(_) => {}
            Err(_) => return, // shut down
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(60));
    }
    warn!("none of the saved contacts answered: bootstrap the node explicitly");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::mpsc as std_mpsc;
    use std::task::{Context, Waker};

    /// Work put off while the node's lock is held (a log record for a
    /// handler that calls the node) runs once the lock is free: it can
    /// take the lock again, as `Node::stats` does.
    #[tokio::test]
    async fn work_put_off_under_the_lock_runs_with_the_lock_free() {
        let config = Config::default().with_bind("127.0.0.1:0".parse().unwrap());
        let node = Node::bind(config).await.unwrap();
        let free_then = std::rc::Rc::new(std::cell::Cell::new(None));
        {
            let _guard = node.inner.lock();
            let (inner, free) = (node.inner.clone(), free_then.clone());
            crate::after_unlock::run_unlocked(move || {
                free.set(Some(inner.state.try_lock().is_ok()));
            });
            assert_eq!(free_then.get(), None, "ran while the lock was held");
        }
        assert_eq!(free_then.get(), Some(true));
        node.shutdown();
    }

    /// While another thread holds the node's lock (as the driver does while
    /// it handles a datagram), starting a get returns at once: the command
    /// waits in the channel, not on the mutex, so no tokio worker blocks.
    /// With the mutex path this test would wait for the holder to give up
    /// (after 30 s, reported as a failure), not pass.
    #[tokio::test]
    async fn an_async_command_never_waits_for_the_nodes_lock() {
        let config = Config::default().with_bind("127.0.0.1:0".parse().unwrap());
        let node = Node::bind(config).await.unwrap();
        let (locked_tx, locked_rx) = std_mpsc::channel();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let holder = {
            let node = node.clone();
            std::thread::spawn(move || {
                let _guard = node.inner.lock();
                locked_tx.send(()).unwrap();
                // Released by the test; the timeout only ends a deadlock.
                release_rx.recv_timeout(Duration::from_secs(30)).is_err()
            })
        };
        locked_rx.recv().unwrap();
        let mut get = std::pin::pin!(node.get(NodeId::digest(b"k")));
        let first_poll = get.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        let _ = release_tx.send(());
        let gave_up_waiting = holder.join().unwrap();
        assert!(!gave_up_waiting, "starting the get waited for the lock");
        assert!(first_poll.is_pending());
        // The driver then runs the command: with no peers, nothing found.
        assert_eq!(get.await.unwrap(), None);
        node.shutdown_and_wait().await;
    }
}
