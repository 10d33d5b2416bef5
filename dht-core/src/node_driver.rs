//! The node's task (spawned by [`Node::bind`](crate::node::Node::bind)):
//! moves datagrams between the UDP socket and the sans-IO protocol, starts
//! the commands callers send, completes what finished and saves what changed.
//! The handle callers hold, and the lock it shares with this task, are in
//! [`crate::node`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::durable::{Durable, Held};
use crate::node::{now, Inner};
use crate::node_commands::{Command, Waiters};
use crate::node_socket::canonical;
use crate::udp::{self, NodeSocket};

/// Datagrams read in one go (in batches) before the driver sends what they
/// caused.
const RECV_MAX: usize = 4 * udp::BATCH;

/// The node's task: until shutdown, send what the protocol wants sent,
/// complete finished operations, then wait for a datagram, a command, the
/// protocol's next deadline or the end of a commit.
///
/// With a data directory, changes are committed while the loop goes on
/// (group commit: one transaction for everything collected while the
/// previous one ran). STORE answers and completed puts are held until the
/// changes collected before them are on disk; everything else goes out at
/// once.
pub(crate) async fn drive(
    inner: Arc<Inner>,
    socket: NodeSocket,
    durable: Option<Durable>,
    commands: mpsc::UnboundedReceiver<Command>,
) {
    // Runs however the task ends, also when the runtime drops it mid-await;
    // declared before `socket` and `durable` so the socket is closed and the
    // data directory unlocked first.
    let _exit = DriverExit(inner.clone());
    let socket = socket;
    let mut durable = durable;
    // Dropped before `_exit` (parameters would be dropped after it): a
    // caller still waiting, or whose command is still queued, gets
    // Error::Shutdown before the node reports itself closed.
    let mut commands = commands;
    let mut waiters = Waiters::default();
    let mut outgoing = Vec::new();
    // Payloads of the datagrams sent, handed back to the protocol to encode
    // later ones in (under the lock it takes anyway).
    let mut sent = Vec::new();
    // Receive slots per call, following the traffic: udp::MIN_SLOTS when
    // datagrams come one at a time, up to udp::BATCH under load. Each slot is a 64 KiB
    // buffer the call offers the kernel (and valgrind checks it all).
    let mut recv_slots = udp::MIN_SLOTS;
    let mut finished = Vec::new();
    // Commands the protocol refused to start, answered outside the lock.
    let mut refused = Vec::new();
    let mut held = Held::default();
    while !inner.shut_down.load(Ordering::SeqCst) {
        let mut deadline = {
            let mut state = inner.lock();
            let protocol = &mut state.protocol;
            for payload in sent.drain(..) {
                protocol.recycle(payload);
            }
            while let Ok(command) = commands.try_recv() {
                refused.extend(waiters.handle(command, protocol, now()));
            }
            while let Some(t) = protocol.poll_transmit() {
                outgoing.push(t);
            }
            while let Some(event) = protocol.poll_event() {
                if let Some(waiter) = waiters.take(event.op) {
                    finished.push((waiter, event.outcome));
                }
            }
            if let Some(d) = &mut durable {
                d.collect(protocol, now());
            }
            earliest(protocol.poll_timeout(), protocol.persist_deadline())
        };
        if let Some(d) = &mut durable {
            // Save before acknowledging: what the protocol changed up to
            // now is collected; this iteration's acknowledgements wait for
            // it (outside the lock, while the loop goes on).
            d.start(now());
            held.hold(d, &mut outgoing, &mut finished);
            outgoing.extend(held.release(d));
            deadline = earliest(deadline, d.retry_at());
        }
        for (waiter, error) in refused.drain(..) {
            waiter.send(Err(error));
        }
        for (waiter, outcome) in finished.drain(..) {
            waiter.send(Ok(outcome));
        }
        udp::send_batch(&socket, inner.local_addr, &mut outgoing, &mut sent).await;
        let sleep = match deadline {
            Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)),
            None => tokio::time::sleep(std::time::Duration::from_secs(3600)),
        };
        let committing = durable.as_ref().is_some_and(|d| d.is_committing());
        tokio::select! {
            readable = socket.readable() => {
                if let Err(e) = readable {
                    warn!(error = %e, "socket unusable for receiving");
                }
                // The lock is taken per datagram, not per batch, so a
                // command from another thread waits for one datagram's
                // handling at most.
                let now = now();
                let mut read = 0;
                while read < RECV_MAX {
                    let handle = |from, bytes: &[u8]| {
                        inner.lock().protocol.handle_datagram(now, canonical(from), bytes);
                    };
                    match udp::recv_batch(&socket, recv_slots, handle) {
                        Ok(n) if n == recv_slots => {
                            // A full batch: more is likely queued.
                            read += n;
                            recv_slots = (recv_slots * 2).min(udp::BATCH);
                        }
                        Ok(n) => {
                            if n < recv_slots / 2 {
                                recv_slots = (recv_slots / 2).max(udp::MIN_SLOTS);
                            }
                            break;
                        }
                        Err(e) => {
                            warn!(error = %e, "recv failed");
                            break;
                        }
                    }
                }
                // Under constant traffic the sleep branch may lose every race;
                // deadlines must still fire.
                if deadline.is_some_and(|d| d <= now) {
                    inner.lock().protocol.handle_timeout(now);
                }
            }
            _ = sleep => inner.lock().protocol.handle_timeout(now()),
            // Commands (each one wakes it; they are taken at the top of the
            // loop), changes made under the lock, shutdown.
            _ = inner.wake.notified() => {}
            _ = finish_commit(&mut durable), if committing => {}
        }
    }
    // Every command still queued, or being queued by a sender that got past
    // the closed check, fails with Error::Shutdown as `waiters` goes (`recv`
    // only ends once no send is in flight); a queued cancel still silences
    // its call.
    commands.close();
    while let Some(command) = commands.recv().await {
        waiters.abandon(command);
    }
    for (waiter, error) in refused.drain(..) {
        waiter.send(Err(error));
    }
    if let Some(d) = &mut durable {
        // Save what the last commands changed (a store_local just before
        // shutdown, say) and the contacts as they are, then complete what
        // waited for it.
        let at = now();
        {
            let mut guard = inner.lock();
            guard.protocol.save_contacts_by(at);
            d.collect(&mut guard.protocol, at);
        }
        d.flush().await;
        let mut answers = held.release(d);
        for (waiter, outcome) in finished.drain(..) {
            waiter.send(Ok(outcome));
        }
        udp::send_batch(&socket, inner.local_addr, &mut answers, &mut Vec::new()).await;
    }
    // "node stopped" is logged by `DriverExit`, once the node is closed.
}

async fn finish_commit(durable: &mut Option<Durable>) {
    if let Some(d) = durable {
        d.finish().await;
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Marks the driver gone when its task ends: pending operations fail with
/// [`Error::Shutdown`], later ones are refused, and [`Node::closed`] resolves.
struct DriverExit(Arc<Inner>);

impl Drop for DriverExit {
    fn drop(&mut self) {
        {
            // The driver's waiters are gone with its task: every waiting
            // operation has failed with Error::Shutdown.
            self.0.lock().driver_gone = true;
        }
        self.0.closed.send_replace(true);
        // After the node is closed: a log handler may be slow, or wait for
        // the very thread that is waiting for the node to close (a Python
        // handler that stops a node holds the handler's lock meanwhile).
        debug!(id = %self.0.id, "node stopped");
    }
}
