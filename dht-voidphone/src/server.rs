//! The API server: a TCP listener task serving the VoidPhone DHT API from a
//! [`dht_core::Node`], its config and counters, and the accept loop (one
//! connection is served by the `session` module).
//!
//! Task layout (owned, so dropping the top one stops everything but PUTs
//! already received, which run to their end on their own):
//!
//! ```text
//! accept task ── JoinSet of connection tasks ── per connection:
//!                                                 reader (the connection task itself)
//!                                                 writer task  <── mpsc of encoded replies
//!                                                 JoinSet of request tasks (one per PUT/GET;
//!                                                   a PUT's only waits for its own task)
//! ```
//!
//! * The reader decodes frames and spawns one task per request, so a slow
//!   lookup never delays another; replies go to the writer in completion
//!   order (the key tells the client which request an answer belongs to).
//! * Each request holds one of `max_in_flight_per_connection` slots until its
//!   reply has been queued; when all are taken the reader stops reading, so
//!   a client that pipelines without limit is slowed by TCP flow control
//!   instead of growing our memory. PUTs take a slot too: they are network
//!   operations as well, though nothing is sent back for them.
//! * Read-your-writes on one connection: a GET (or PUT) waits for earlier
//!   PUTs of the same key on that connection to finish, so `PUT k; GET k`
//!   pipelined in one segment finds the value. Requests for other keys do
//!   not wait.
//! * A protocol error closes that connection only (after a `warn!` saying
//!   why); replies still pending on it are dropped.
//! * Limits against clients that hold connections without using them (see
//!   [`ApiConfig`]): a message must arrive whole within `read_timeout` of its
//!   first byte; a connection with no request in flight for `idle_timeout`
//!   is closed; and when `max_connections` or `max_connections_per_ip` is
//!   reached, a new client takes the place of the connection idle longest
//!   ([`crate::connections`]), so stalled connections cannot lock others out.
//! * Values found under a key that were not stored as bytes (e.g. a `str`
//!   put from Python) are answered with a byte form: `Str` as its UTF-8
//!   bytes, integers as decimal text, floats as Rust's shortest round-trip
//!   text (`1.5`, `1e20`), booleans as `True`/`False` (Python's `str()`),
//!   and `None`, lists and maps as their msgpack encoding.
//!   That way an API client can read anything other interfaces stored,
//!   rather than getting a FAILURE for a key that does have a value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dht_core::Node;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use crate::connections::{Activity, Admission, ConnectionTable, Refusal};
use crate::session::serve_connection;
pub use crate::session::value_bytes;
use crate::warn_limit::WarnLimit;

/// Limits and policies of an [`ApiServer`].
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Connections served at once. A client beyond it takes the place of the
    /// connection that has been idle (no request in flight) longest; only if
    /// every connection is busy is it accepted and closed at once (with a
    /// warning), so it sees a clear EOF rather than hangs. Default 1,024.
    pub max_connections: usize,
    /// Connections served at once from one IP address, evicting that
    /// address's longest-idle connection in the same way. Loopback is not
    /// exempt: VoidPhone modules on one host share it. Default 256.
    pub max_connections_per_ip: usize,
    /// A message whose first byte has arrived must be complete within this
    /// long, or the connection is closed (a client trickling or stalling in
    /// the middle of a message). Default 10 s.
    pub read_timeout: Duration,
    /// A connection with no request in flight and no message arriving is
    /// closed after this long without a request. Default 5 min.
    pub idle_timeout: Duration,
    /// Requests (GETs and PUTs) in progress per connection before the
    /// server stops reading from it. Default 64, at most
    /// [`MAX_IN_FLIGHT_PER_CONNECTION`].
    pub max_in_flight_per_connection: usize,
    /// Upper bound on a PUT's TTL, on top of the node's own `max_ttl`.
    /// `None`: only the node's bound applies.
    pub max_ttl: Option<Duration>,
    /// A GET that has not finished after this long is answered with FAILURE;
    /// a PUT is abandoned. Guarantees every GET is answered.
    pub request_timeout: Duration,
    /// A connection whose client does not take a reply within this long is
    /// closed (it would otherwise hold its slots forever).
    pub write_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_connections: 1024,
            max_connections_per_ip: 256,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_in_flight_per_connection: 64,
            max_ttl: None,
            request_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Largest [`ApiConfig::max_in_flight_per_connection`]. Each connection's
/// slots and reply queue are tokio semaphores, which panic above
/// `Semaphore::MAX_PERMITS` (2^61 - 1 on 64-bit, 2^29 - 1 on 32-bit
/// targets): a bound checked at start instead of in every connection task.
/// 65,536 is the same on every target and far above what one client can
/// use (the node's own `max_pending_rpcs` limits what runs at once).
pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 65_536;

impl ApiConfig {
    /// Reject limits of zero, which would make the server useless, and
    /// limits above what the server can represent.
    pub fn validate(&self) -> Result<(), ApiError> {
        let zero = |what: &str| {
            Err(ApiError::InvalidConfig(format!(
                "{what} must be at least 1"
            )))
        };
        if self.max_connections == 0 {
            return zero("max_connections");
        }
        if self.max_connections_per_ip == 0 {
            return zero("max_connections_per_ip");
        }
        if self.read_timeout.is_zero() {
            return zero("read_timeout");
        }
        if self.idle_timeout.is_zero() {
            return zero("idle_timeout");
        }
        if self.max_in_flight_per_connection == 0 {
            return zero("max_in_flight_per_connection");
        }
        if self.max_in_flight_per_connection > MAX_IN_FLIGHT_PER_CONNECTION {
            return Err(ApiError::InvalidConfig(format!(
                "max_in_flight_per_connection is {}; the maximum is {MAX_IN_FLIGHT_PER_CONNECTION}",
                self.max_in_flight_per_connection
            )));
        }
        if self.request_timeout.is_zero() {
            return zero("request_timeout");
        }
        if self.write_timeout.is_zero() {
            return zero("write_timeout");
        }
        if self.max_ttl.is_some_and(|t| t < Duration::from_secs(1)) {
            return zero("max_ttl (seconds)");
        }
        Ok(())
    }
}

/// Why an API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API server config: {0}")]
    InvalidConfig(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The node was shut down: there is nothing left to serve.
    #[error("the node has been shut down")]
    NodeShutDown,
}

/// Connection counters of an [`ApiServer`] (see [`ApiServer::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiStats {
    /// Connections open now.
    pub active: usize,
    /// Connections admitted since the server started.
    pub accepted: u64,
    /// Connections closed at once because every one they could replace was busy.
    pub refused: u64,
    /// Idle connections closed to make room for a new one.
    pub evicted: u64,
    /// Connections closed because a message did not complete in `read_timeout`.
    pub read_timeouts: u64,
    /// Connections closed after `idle_timeout` without a request.
    pub idle_timeouts: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    active: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    pub(crate) read_timeouts: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A running API server. Dropping it (or [`ApiServer::shutdown`]) stops the
/// listener and closes every connection; the node itself is not touched.
pub struct ApiServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl ApiServer {
    /// Listen on `addr` (port 0 picks a free port) and serve `node`. Must be
    /// called inside a tokio runtime; the server runs on that runtime. A node
    /// already shut down is refused ([`ApiError::NodeShutDown`]); when the
    /// node stops later, the server stops with it (see [`ApiServer::is_shut_down`]).
    pub async fn bind(
        node: Node,
        addr: SocketAddr,
        config: ApiConfig,
    ) -> Result<ApiServer, ApiError> {
        config.validate()?;
        if node.is_shut_down() || node.is_closed() {
            return Err(ApiError::NodeShutDown);
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ApiError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ApiError::Bind { addr, source })?;
        let counters = Arc::new(Counters::default());
        info!(%local_addr, node = %node.id(), "VoidPhone DHT API listening");
        let task = tokio::spawn(
            accept_loop(listener, node, Arc::new(config), counters.clone())
                .instrument(tracing::info_span!("voidphone_api", %local_addr)),
        );
        Ok(ApiServer {
            local_addr,
            task,
            counters,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served right now.
    pub fn active_connections(&self) -> usize {
        // The accept loop keeps the count; a stopped server (shut down, or
        // its node stopped) closed them all without a last update.
        if self.task.is_finished() {
            return 0;
        }
        self.counters.active.load(Ordering::Relaxed)
    }

    /// Connection counters since the server started.
    pub fn stats(&self) -> ApiStats {
        let c = &self.counters;
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        ApiStats {
            active: self.active_connections(),
            accepted: get(&c.accepted),
            refused: get(&c.refused),
            evicted: get(&c.evicted),
            read_timeouts: get(&c.read_timeouts),
            idle_timeouts: get(&c.idle_timeouts),
        }
    }

    /// Stop listening and close all connections; idempotent. Takes effect at
    /// the runtime's next scheduling point. PUTs already received still run
    /// to their end (bounded by `request_timeout`).
    pub fn shutdown(&self) {
        self.task.abort();
    }

    /// Stop as [`ApiServer::shutdown`] does and resolve once the listening
    /// socket is closed, so that its port can be bound again at once.
    /// Client connections close as their tasks are cancelled, right after.
    pub async fn stop(mut self) {
        self.task.abort();
        // tokio drops an aborted task's future (the listener with it)
        // before its JoinHandle resolves. Consuming `self` means the handle
        // is awaited once only (a second poll would panic).
        let _ = (&mut self.task).await;
    }

    /// Whether the server has stopped (after `shutdown`, its node's shutdown,
    /// or a fatal error).
    pub fn is_shut_down(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything a connection task shares with the server.
pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) counters: Arc<Counters>,
    /// PUTs under way in all, including those whose connection has gone.
    pub(crate) put_permits: Arc<Semaphore>,
    /// Warnings for connections closed over a malformed message.
    protocol_warnings: WarnLimit,
    /// Origin of the [`Activity`] timestamps.
    started: Instant,
}

/// At most one warning this often for connections closed over a malformed
/// message (the others at debug level, counted in the next warning).
const PROTOCOL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl Shared {
    pub(crate) fn nanos_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Log that the connection from `peer` is closed over `why`, a
    /// malformed message: rate-limited, as any client can cause it.
    pub(crate) fn closing_over(&self, peer: SocketAddr, why: &dyn std::fmt::Display) {
        match self.protocol_warnings.allow(self.nanos_since_start()) {
            Some(0) => warn!(%peer, "closing API connection: {why}"),
            Some(n) => warn!(
                %peer,
                "closing API connection: {why} ({n} more closed so since the last warning)"
            ),
            None => debug!(%peer, "closing API connection: {why}"),
        }
    }
}

/// EMFILE or ENFILE: the process's or the system's file table is full.
fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    // The values of Linux and the BSDs alike (std exposes no kind for them).
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

async fn accept_loop(
    listener: TcpListener,
    node: Node,
    config: Arc<ApiConfig>,
    counters: Arc<Counters>,
) {
    let shared = Arc::new(Shared {
        node,
        config: config.clone(),
        counters: counters.clone(),
        protocol_warnings: WarnLimit::new(
            u64::try_from(PROTOCOL_WARNING_INTERVAL.as_nanos()).unwrap_or(u64::MAX),
        ),
        put_permits: Arc::new(Semaphore::new(
            config
                .max_connections
                .saturating_mul(config.max_in_flight_per_connection)
                .min(Semaphore::MAX_PERMITS),
        )),
        started: Instant::now(),
    });
    let mut table = ConnectionTable::new(config.max_connections, config.max_connections_per_ip);
    // Owning the connection tasks here means aborting this task aborts them.
    let mut connections = JoinSet::new();
    let mut handles = HashMap::new();
    // A stopped node answers every GET with FAILURE and drops every PUT:
    // serving on would pass that off as a working DHT.
    let node = shared.node.clone();
    let node_closed = async move { node.closed().await };
    tokio::pin!(node_closed);
    loop {
        tokio::select! {
            () = &mut node_closed => {
                info!("the node stopped: the VoidPhone API stops listening");
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    match table.admit(peer.ip()) {
                        Admission::Admit => {}
                        Admission::Evict(id) => {
                            if let Some(handle) = handles.remove(&id) {
                                tokio::task::AbortHandle::abort(&handle);
                            }
                            Counters::bump(&counters.evicted);
                            debug!(%peer, "closed the longest-idle API connection to make room");
                        }
                        Admission::Refuse(why) => {
                            Counters::bump(&counters.refused);
                            let limit = match why {
                                Refusal::PerIpLimit => "max_connections_per_ip",
                                Refusal::Full => "max_connections",
                            };
                            warn!(%peer, "refusing API connection: {limit} reached and every connection is busy");
                            drop(stream);
                            continue;
                        }
                    }
                    let activity = Activity::idle_from(shared.nanos_since_start());
                    let span = tracing::debug_span!("api_conn", %peer);
                    let handle = connections.spawn(
                        serve_connection(shared.clone(), stream, peer, activity.clone())
                            .instrument(span),
                    );
                    table.insert(handle.id(), peer.ip(), activity);
                    handles.insert(handle.id(), handle);
                    Counters::bump(&counters.accepted);
                }
                Err(e) => {
                    // Out of file descriptors: make room as a full table
                    // does, by closing the longest-idle connection; the
                    // newcomer waits in the backlog for the next accept.
                    if is_out_of_descriptors(&e) {
                        if let Some(id) = table.evict_idlest() {
                            if let Some(handle) = handles.remove(&id) {
                                tokio::task::AbortHandle::abort(&handle);
                            }
                            Counters::bump(&counters.evicted);
                            debug!("out of file descriptors: closed the longest-idle API connection");
                            // Its socket closes once both its tasks (reader
                            // and writer) have been cancelled: give them a
                            // moment, or the next accept fails again and
                            // evicts another idle client for the same one.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    }
                    // Otherwise back off instead of spinning.
                    warn!("accepting an API connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        if e.is_panic() {
                            warn!("API connection task panicked: {e}");
                        }
                        e.id()
                    }
                };
                table.remove(&id);
                handles.remove(&id);
            }
        }
        counters.active.store(table.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(ApiConfig::default().validate().is_ok());
        let c = ApiConfig {
            max_connections: 0,
            ..ApiConfig::default()
        };
        assert_eq!(
            c.validate().err().map(|e| e.to_string()),
            Some("invalid API server config: max_connections must be at least 1".to_owned())
        );
        let c = ApiConfig {
            max_in_flight_per_connection: 0,
            ..ApiConfig::default()
        };
        assert!(c.validate().is_err());
        let c = ApiConfig {
            max_in_flight_per_connection: MAX_IN_FLIGHT_PER_CONNECTION,
            ..ApiConfig::default()
        };
        assert!(c.validate().is_ok());
        // Above the maximum (usize::MAX used to pass and then panic inside
        // every connection task, in tokio's semaphore).
        for too_many in [MAX_IN_FLIGHT_PER_CONNECTION + 1, usize::MAX] {
            let c = ApiConfig {
                max_in_flight_per_connection: too_many,
                ..ApiConfig::default()
            };
            let e = c
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains("max_in_flight_per_connection") && e.contains("65536"),
                "{e}"
            );
        }
        let c = ApiConfig {
            max_ttl: Some(Duration::from_millis(10)),
            ..ApiConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
