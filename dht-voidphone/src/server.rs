//! The API server: a TCP listener task serving the VoidPhone DHT API from a
//! [`dht_core::Node`].
//!
//! Task layout (all owned, so dropping the top one stops everything):
//!
//! ```text
//! accept task ── JoinSet of connection tasks ── per connection:
//!                                                 reader (the connection task itself)
//!                                                 writer task  <── mpsc of encoded replies
//!                                                 JoinSet of request tasks (one per PUT/GET)
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
//!   text (`1.5`, `1e20`), booleans as `True`/`False` (Python's `str()`).
//!   That way an API client can read anything other interfaces stored,
//!   rather than getting a FAILURE for a key that does have a value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Node, NodeId, PutOptions, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use crate::connections::{Activity, Admission, ConnectionTable, Refusal};
use crate::message::{
    encode_failure, encode_success, type_name, ApiKey, FrameDecoder, KeyDisplay, Message,
    ProtocolError, Put,
};

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
    /// server stops reading from it.
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

impl ApiConfig {
    /// Reject limits of zero, which would make the server useless.
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
struct Counters {
    active: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    evicted: AtomicU64,
    read_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
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
    /// called inside a tokio runtime; the server runs on that runtime.
    pub async fn bind(
        node: Node,
        addr: SocketAddr,
        config: ApiConfig,
    ) -> Result<ApiServer, ApiError> {
        config.validate()?;
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
    /// the runtime's next scheduling point.
    pub fn shutdown(&self) {
        self.task.abort();
    }

    /// Whether the server has stopped (after `shutdown`, or a fatal error).
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
struct Shared {
    node: Node,
    config: Arc<ApiConfig>,
    counters: Arc<Counters>,
    /// Origin of the [`Activity`] timestamps.
    started: Instant,
}

impl Shared {
    fn nanos_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
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
        started: Instant::now(),
    });
    let mut table = ConnectionTable::new(config.max_connections, config.max_connections_per_ip);
    // Owning the connection tasks here means aborting this task aborts them.
    let mut connections = JoinSet::new();
    let mut handles = HashMap::new();
    loop {
        tokio::select! {
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
                    // E.g. out of file descriptors: back off instead of spinning.
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

/// Aborts a task when dropped, so a connection's writer never outlives it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Per-connection state shared by the reader's request handling.
struct Connection {
    node: Node,
    config: Arc<ApiConfig>,
    replies: mpsc::Sender<Vec<u8>>,
    requests: JoinSet<()>,
    /// Latest unfinished PUT per key on this connection; its sender is
    /// dropped when that PUT is done.
    pending_puts: HashMap<ApiKey, watch::Receiver<()>>,
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    activity: Arc<Activity>,
) {
    debug!("API connection opened");
    // Replies are small and latency matters more than packet count.
    if let Err(e) = stream.set_nodelay(true) {
        debug!("set_nodelay failed: {e}");
    }
    let config = shared.config.clone();
    let (mut reader, writer) = stream.into_split();
    let in_flight = config.max_in_flight_per_connection;
    let (replies, queue) = mpsc::channel(in_flight);
    let mut writer = AbortOnDrop(tokio::spawn(
        write_replies(writer, queue, config.write_timeout).in_current_span(),
    ));
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut conn = Connection {
        node: shared.node.clone(),
        config: config.clone(),
        replies,
        requests: JoinSet::new(),
        pending_puts: HashMap::new(),
    };
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    // When the message now arriving started, and when the last request
    // finished (or the connection opened): the read and idle clocks.
    let mut partial_since: Option<Instant> = None;
    let mut idle_since = Instant::now();
    let mut busy = false;

    loop {
        // Everything complete in the buffer first, then read more.
        let mut completed = false;
        loop {
            let message = match decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, "closing API connection: {e}");
                    return;
                }
            };
            completed = true;
            busy = true;
            activity.set_busy();
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return, // never closed; nothing sensible to do
                },
                _ = &mut writer.0 => return,
            };
            if let Err(e) = conn.dispatch(message, slot) {
                warn!(%peer, "closing API connection: {e}");
                return;
            }
        }
        if decoder.buffered() == 0 {
            partial_since = None;
        } else if completed || partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        while conn.requests.try_join_next().is_some() {}
        if busy && conn.requests.is_empty() {
            busy = false;
            idle_since = Instant::now();
            activity.set_idle(shared.nanos_since_start());
        }

        // A message under way must finish in read_timeout; with nothing in
        // flight the idle clock runs; a busy connection waits unbounded
        // (request_timeout bounds its requests).
        let deadline = match partial_since {
            Some(t) => Some((t + config.read_timeout, &shared.counters.read_timeouts)),
            None if conn.requests.is_empty() => Some((
                idle_since + config.idle_timeout,
                &shared.counters.idle_timeouts,
            )),
            None => None,
        };
        let expired = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            _ = &mut writer.0 => {
                debug!("API connection closed by the writer");
                return;
            }
            // Wake when a request finishes: the idle clock may start.
            Some(_) = conn.requests.join_next(), if !conn.requests.is_empty() => continue,
            () = expired => {
                if let Some((_, counter)) = deadline {
                    Counters::bump(counter);
                }
                let why = if partial_since.is_some() {
                    format!("message not complete after {:?}", config.read_timeout)
                } else {
                    format!("no request for {:?}", config.idle_timeout)
                };
                debug!(%peer, "closing API connection: {why}");
                return;
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => decoder.extend(&buf[..n]),
            Err(e) => {
                debug!("API connection read error: {e}");
                return;
            }
        }
    }

    // The client closed its sending side: answer what it asked, then close.
    if decoder.buffered() > 0 {
        debug!(
            bytes = decoder.buffered(),
            "API client closed in the middle of a message"
        );
    }
    while conn.requests.join_next().await.is_some() {}
    drop(conn);
    let _ = (&mut writer.0).await;
    debug!("API connection closed");
}

async fn write_replies(
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Vec<u8>>,
    timeout: Duration,
) {
    while let Some(bytes) = queue.recv().await {
        match tokio::time::timeout(timeout, writer.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!("API connection write error: {e}");
                return;
            }
            Err(_) => {
                warn!("closing API connection: client took no reply for {timeout:?}");
                return;
            }
        }
    }
    let _ = writer.shutdown().await;
}

impl Connection {
    /// Start the task for one request. `slot` is held until it is done.
    fn dispatch(
        &mut self,
        message: Message,
        slot: OwnedSemaphorePermit,
    ) -> Result<(), ProtocolError> {
        match message {
            Message::Put(put) => self.spawn_put(put, slot),
            Message::Get { key } => self.spawn_get(key, slot),
            other => {
                let msg_type = other.msg_type();
                return Err(ProtocolError::UnexpectedDirection {
                    name: type_name(msg_type),
                    msg_type,
                });
            }
        }
        Ok(())
    }

    fn earlier_put(&self, key: &ApiKey) -> Option<watch::Receiver<()>> {
        self.pending_puts.get(key).cloned()
    }

    fn spawn_put(&mut self, put: Put, slot: OwnedSemaphorePermit) {
        let before = self.earlier_put(&put.key);
        let (done, done_rx) = watch::channel(());
        // Drop entries of PUTs that have finished (their sender is gone).
        self.pending_puts.retain(|_, rx| rx.has_changed().is_ok());
        self.pending_puts.insert(put.key, done_rx);

        let node = self.node.clone();
        let options = self.put_options(&put);
        let timeout = self.config.request_timeout;
        self.requests.spawn(
            async move {
                let _slot = slot;
                let _done = done; // dropped when this PUT is over, waking waiters
                let key = KeyDisplay(&put.key).to_string();
                let work = async {
                    wait_for(before).await;
                    let key = NodeId::digest(&put.key);
                    let value = Value::Bytes(put.value);
                    match node.put(key, value.clone(), options.clone()).await {
                        // Alone so far: keep it here; it reaches nodes as they join.
                        Err(dht_core::Error::NoPeers) => {
                            node.store_local(key, value, options)
                                .map(|()| dht_core::PutReport {
                                    stored_locally: true,
                                    ..Default::default()
                                })
                        }
                        other => other,
                    }
                };
                match tokio::time::timeout(timeout, work).await {
                    Ok(Ok(report)) => debug!(
                        key,
                        stored_remote = report.stored_remote,
                        stored_locally = report.stored_locally,
                        "API PUT stored"
                    ),
                    Ok(Err(e)) => warn!(key, "API PUT failed: {e}"),
                    Err(_) => warn!(key, "API PUT abandoned after {timeout:?}"),
                }
            }
            .in_current_span(),
        );
    }

    fn put_options(&self, put: &Put) -> PutOptions {
        // ttl 0: the node's default, still subject to our cap.
        let asked = match put.ttl {
            0 => self.node.config().default_ttl,
            s => Duration::from_secs(u64::from(s)),
        };
        let ttl = match self.config.max_ttl {
            Some(cap) => asked.min(cap),
            None => asked,
        };
        PutOptions {
            ttl: Some(ttl),
            // dht-core caps this at k.
            replication: (put.replication != 0).then_some(usize::from(put.replication)),
        }
    }

    fn spawn_get(&mut self, key: ApiKey, slot: OwnedSemaphorePermit) {
        let before = self.earlier_put(&key);
        let node = self.node.clone();
        let replies = self.replies.clone();
        let timeout = self.config.request_timeout;
        self.requests.spawn(
            async move {
                let _slot = slot;
                let work = async {
                    wait_for(before).await;
                    node.get(NodeId::digest(&key)).await
                };
                let reply = match tokio::time::timeout(timeout, work).await {
                    Ok(Ok(Some(value))) => success_or_failure(&key, value),
                    Ok(Ok(None)) => {
                        debug!(key = %KeyDisplay(&key), "API GET: not found");
                        encode_failure(&key)
                    }
                    Ok(Err(e)) => {
                        warn!(key = %KeyDisplay(&key), "API GET failed: {e}");
                        encode_failure(&key)
                    }
                    Err(_) => {
                        warn!(key = %KeyDisplay(&key), "API GET timed out after {timeout:?}");
                        encode_failure(&key)
                    }
                };
                // Err only when the writer is gone, i.e. the connection is closing.
                let _ = replies.send(reply).await;
            }
            .in_current_span(),
        );
    }
}

async fn wait_for(put: Option<watch::Receiver<()>>) {
    if let Some(mut rx) = put {
        // Returns (with Err) once the PUT task drops its sender.
        while rx.changed().await.is_ok() {}
    }
}

fn success_or_failure(key: &ApiKey, value: Value) -> Vec<u8> {
    let bytes = value_bytes(value);
    match encode_success(key, &bytes) {
        Ok(reply) => {
            debug!(key = %KeyDisplay(key), len = bytes.len(), "API GET: found");
            reply
        }
        Err(e) => {
            warn!(key = %KeyDisplay(key), "API GET: found a value but cannot send it: {e}");
            encode_failure(key)
        }
    }
}

/// The byte form of a stored value (see the module docs for the choice).
pub fn value_bytes(value: Value) -> Vec<u8> {
    match value {
        Value::Bytes(b) => b,
        Value::Str(s) => s.into_bytes(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::UInt(u) => u.to_string().into_bytes(),
        Value::Float(f) => format!("{f:?}").into_bytes(),
        Value::Bool(true) => b"True".to_vec(),
        Value::Bool(false) => b"False".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_bytes_forms() {
        assert_eq!(value_bytes(Value::Bytes(vec![0, 255])), vec![0, 255]);
        assert_eq!(value_bytes(Value::Str("héllo".into())), "héllo".as_bytes());
        assert_eq!(value_bytes(Value::Int(-42)), b"-42");
        assert_eq!(
            value_bytes(Value::UInt(u64::MAX)),
            u64::MAX.to_string().as_bytes()
        );
        assert_eq!(value_bytes(Value::Float(1.0)), b"1.0");
        assert_eq!(value_bytes(Value::Float(2.5)), b"2.5");
        assert_eq!(value_bytes(Value::Bool(true)), b"True");
        assert_eq!(value_bytes(Value::Bool(false)), b"False");
    }

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
            max_ttl: Some(Duration::from_millis(10)),
            ..ApiConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
