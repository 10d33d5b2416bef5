//! The path of a [`crate::Node`]'s async commands (get, put, bootstrap,
//! ping, signed records) into its driver task: a channel, not the lock.
//!
//! An async call hands its command to the driver and awaits the outcome. It
//! never takes the node's mutex, which the driver holds while it handles a
//! datagram: a tokio worker blocked on a mutex stalls every task queued on
//! it, and with hundreds of nodes and thousands of concurrent calls in one
//! process those stalls add up. The driver starts each command on the
//! protocol in its own loop, keeps the waiter until the operation's outcome
//! comes out, and cancels the operation when the caller drops its future.
//!
//! Commands from one caller arrive in the order sent, so a cancellation
//! never overtakes the start it cancels.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::protocol::{OpId, Outcome, Protocol};

/// Starts an operation on the protocol, at the driver's `now`.
pub(crate) type Start = Box<dyn FnOnce(&mut Protocol, Instant) -> Result<OpId> + Send>;

/// Where an operation's outcome goes, or the error that kept it from
/// starting. Dropped unanswered when the node stops ([`Error::Shutdown`]).
pub(crate) type Waiter = oneshot::Sender<Result<Outcome>>;

pub(crate) enum Command {
    Start {
        ticket: u64,
        start: Start,
        waiter: Waiter,
    },
    /// The caller dropped its future: stop the operation.
    Cancel { ticket: u64 },
}

/// The API's end of the channel.
pub(crate) struct CommandSender {
    tx: mpsc::UnboundedSender<Command>,
    tickets: AtomicU64,
}

/// A command handed to the driver: cancel it with its ticket, await its
/// outcome on the receiver.
pub(crate) struct Sent {
    pub ticket: u64,
    pub outcome: oneshot::Receiver<Result<Outcome>>,
}

impl CommandSender {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sender = CommandSender {
            tx,
            tickets: AtomicU64::new(0),
        };
        (sender, rx)
    }

    /// Hand `start` to the driver; [`Error::Shutdown`] if it has exited.
    pub(crate) fn send(&self, start: Start) -> Result<Sent> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (waiter, outcome) = oneshot::channel();
        self.tx
            .send(Command::Start {
                ticket,
                start,
                waiter,
            })
            .map_err(|_| Error::Shutdown)?;
        Ok(Sent { ticket, outcome })
    }

    /// Stop the command `ticket` if it still runs (a stopped driver has
    /// nothing left to stop).
    pub(crate) fn cancel(&self, ticket: u64) {
        let _ = self.tx.send(Command::Cancel { ticket });
    }
}

/// The driver's end: the operations it started for callers.
#[derive(Default)]
pub(crate) struct Waiters {
    by_op: HashMap<OpId, (u64, Waiter)>,
    by_ticket: HashMap<u64, OpId>,
}

impl Waiters {
    /// Carry out `command` on `protocol`.
    pub(crate) fn handle(&mut self, command: Command, protocol: &mut Protocol, now: Instant) {
        match command {
            Command::Start {
                ticket,
                start,
                waiter,
            } => match start(protocol, now) {
                Ok(op) => {
                    self.by_op.insert(op, (ticket, waiter));
                    self.by_ticket.insert(ticket, op);
                }
                Err(e) => {
                    let _ = waiter.send(Err(e));
                }
            },
            Command::Cancel { ticket } => {
                if let Some(op) = self.by_ticket.remove(&ticket) {
                    self.by_op.remove(&op);
                    protocol.cancel(op);
                }
            }
        }
    }

    /// The waiter of `op`, which has finished (`None` for operations the
    /// node started itself, or whose caller went away).
    pub(crate) fn take(&mut self, op: OpId) -> Option<Waiter> {
        let (ticket, waiter) = self.by_op.remove(&op)?;
        self.by_ticket.remove(&ticket);
        Some(waiter)
    }
}
