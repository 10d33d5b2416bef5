//! One API connection: its reader (the connection task), its writer task
//! and one task per request, with the read and idle timeouts; see
//! [`crate::server`] for the task layout and the rules it keeps (in-flight
//! slots, read-your-writes per key, the byte form of non-bytes values).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Lifetime, Node, NodeId, PutOptions, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::{debug, warn, Instrument};

use crate::connections::Activity;
use crate::message::{
    encode_failure, encode_success, type_name, ApiKey, FrameDecoder, KeyDisplay, Message,
    ProtocolError, Put,
};
use crate::server::{ApiConfig, Counters, Shared};

/// Aborts a task when dropped, so a connection's writer never outlives it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request in flight on a connection, for [`Activity`]: started when
/// created, finished when dropped (also when its task is aborted).
struct InFlight {
    activity: Arc<Activity>,
    shared: Arc<Shared>,
}

impl InFlight {
    fn start(activity: &Arc<Activity>, shared: &Arc<Shared>) -> Self {
        activity.start_request();
        InFlight {
            activity: activity.clone(),
            shared: shared.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity
            .finish_request(self.shared.nanos_since_start());
    }
}

/// Per-connection state shared by the reader's request handling.
struct Connection {
    shared: Arc<Shared>,
    activity: Arc<Activity>,
    node: Node,
    config: Arc<ApiConfig>,
    replies: mpsc::Sender<Vec<u8>>,
    requests: JoinSet<()>,
    /// Latest unfinished PUT per key on this connection; its sender is
    /// dropped when that PUT is done.
    pending_puts: HashMap<ApiKey, watch::Receiver<()>>,
}

pub(crate) async fn serve_connection(
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
        shared: shared.clone(),
        activity,
        node: shared.node.clone(),
        config: config.clone(),
        replies,
        requests: JoinSet::new(),
        pending_puts: HashMap::new(),
    };
    // A PUT over the node's value limit is refused from its header (a PUT
    // has no reply: closing the connection is how the client learns).
    let mut decoder = FrameDecoder::with_max_put_value(shared.node.config().max_value_size);
    let mut buf = vec![0u8; 16 * 1024];
    // When the message now arriving started, and when the last request
    // finished (or the connection opened): the read and idle clocks.
    let mut partial_since: Option<Instant> = None;
    let mut idle_since = Instant::now();
    let mut busy = false;
    let mut bad_input = false;

    'reading: loop {
        // Everything complete in the buffer first, then read more.
        let mut completed = false;
        loop {
            let message = match decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    shared.closing_over(peer, &e);
                    bad_input = true;
                    break 'reading;
                }
            };
            completed = true;
            busy = true;
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return, // never closed; nothing sensible to do
                },
                _ = &mut writer.0 => return,
            };
            // A PUT outlives its connection (see `Connection::spawn_put`),
            // so each also takes one of the server's PUT permits: however
            // often a client reconnects, no more PUTs are under way than
            // the server's connections could hold at once.
            let put_permit = if matches!(message, Message::Put(_)) {
                tokio::select! {
                    permit = shared.put_permits.clone().acquire_owned() => match permit {
                        Ok(permit) => Some(permit),
                        Err(_) => return, // never closed
                    },
                    _ = &mut writer.0 => return,
                }
            } else {
                None
            };
            if let Err(e) = conn.dispatch(message, slot, put_permit) {
                shared.closing_over(peer, &e);
                bad_input = true;
                break 'reading;
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

    // The client closed its sending side, or sent a bad message: answer the
    // requests it made before (each bounded by request_timeout), then close.
    if decoder.buffered() > 0 && !bad_input {
        debug!(
            bytes = decoder.buffered(),
            "API client closed in the middle of a message"
        );
    }
    // After a bad message, what the client goes on sending is read and
    // dropped until it closes too (for read_timeout at most after our last
    // reply): closing with its bytes unread would make the kernel reset the
    // connection and discard replies it has not read yet.
    let mut discarding = bad_input;
    loop {
        tokio::select! {
            done = conn.requests.join_next() => if done.is_none() {
                break;
            },
            more = discard(&mut reader, &mut buf), if discarding => discarding = more,
        }
    }
    drop(conn);
    loop {
        tokio::select! {
            _ = &mut writer.0 => break,
            more = discard(&mut reader, &mut buf), if discarding => discarding = more,
        }
    }
    if discarding {
        let _ = tokio::time::timeout(config.read_timeout, async {
            while discard(&mut reader, &mut buf).await {}
        })
        .await;
    }
    debug!("API connection closed");
}

/// Reads and drops what the client sent; false once it closed (or failed).
async fn discard(reader: &mut OwnedReadHalf, buf: &mut [u8]) -> bool {
    matches!(reader.read(buf).await, Ok(n) if n > 0)
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
        put_permit: Option<OwnedSemaphorePermit>,
    ) -> Result<(), ProtocolError> {
        match message {
            // The decoder refused values over the node's limit already.
            Message::Put(put) => self.spawn_put(put, (slot, put_permit)),
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

    /// `permits`: the connection's slot and the server's PUT permit.
    fn spawn_put(
        &mut self,
        put: Put,
        permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    ) {
        let in_flight = InFlight::start(&self.activity, &self.shared);
        let before = self.earlier_put(&put.key);
        let (done, done_rx) = watch::channel(());
        // Drop entries of PUTs that have finished (their sender is gone).
        self.pending_puts.retain(|_, rx| rx.has_changed().is_ok());
        self.pending_puts.insert(put.key, done_rx);

        let node = self.node.clone();
        let options = self.put_options(&put);
        let timeout = self.config.request_timeout;
        // A PUT has no reply, and a client that sent it whole counts it as
        // done: it is carried out even if the connection then goes (a
        // malformed message after it, a timeout). So it runs as a task of its
        // own; the connection's set, which aborts its tasks as it goes, only
        // waits for it. (request_timeout still bounds it.)
        let put_task = tokio::spawn(
            async move {
                let _permits = permits;
                let _in_flight = in_flight;
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
                    // A node stopping fails every request still queued: one
                    // line each would flood the log of a node stopped under load.
                    Ok(Err(dht_core::Error::Shutdown)) => debug!(key, "API PUT: node stopped"),
                    Ok(Err(e)) => warn!(key, "API PUT failed: {e}"),
                    Err(_) => warn!(key, "API PUT abandoned after {timeout:?}"),
                }
            }
            .in_current_span(),
        );
        self.requests.spawn(async move {
            let _ = put_task.await;
        });
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
        // The spec's TTL is "seconds to keep it". Renewed by this node for
        // as long as it runs, a value would outlive it by hours, and a client
        // putting values with a TTL of a few seconds would make the node
        // re-put them every few seconds, forever. A replication of 0 is k
        // and dht-core caps larger ones at k.
        PutOptions::default()
            .with_ttl(ttl)
            .with_replication(usize::from(put.replication))
            .with_lifetime(Lifetime::Fixed)
    }

    fn spawn_get(&mut self, key: ApiKey, slot: OwnedSemaphorePermit) {
        let in_flight = InFlight::start(&self.activity, &self.shared);
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
                    Ok(Err(dht_core::Error::Shutdown)) => {
                        debug!(key = %KeyDisplay(&key), "API GET: node stopped");
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
                // Idle before the client can read the reply (see Activity).
                drop(in_flight);
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
        v @ (Value::Nil | Value::List(_) | Value::Map(_)) => dht_core::wire::encode_value(&v),
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
        assert_eq!(value_bytes(Value::List(vec![Value::Nil])), [0x91, 0xc0]);
    }
}
