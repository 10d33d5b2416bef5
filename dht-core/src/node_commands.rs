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
//!
//! A waiter is either a oneshot sender (the async API) or a callback (the
//! `_then` API of [`crate::node_callbacks`], for bindings that deliver
//! outcomes to their own event loops: no tokio task per call). A callback is
//! answered exactly once, never under the node's lock: with the outcome,
//! with the error that kept the command from starting, or with
//! [`Error::Shutdown`] when the node stops first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, Notify};

use crate::doorbell::Doorbell;
use crate::error::{Error, Result};
use crate::protocol::{OpId, Outcome, Protocol};

/// Starts an operation on the protocol, at the driver's `now`.
pub(crate) type Start = Box<dyn FnOnce(&mut Protocol, Instant) -> Result<OpId> + Send>;

/// Where an operation's outcome goes, or the error that kept it from
/// starting.
pub(crate) enum Waiter {
    /// An async caller; dropped unanswered when the node stops, which its
    /// receiver reports as [`Error::Shutdown`].
    Future(oneshot::Sender<Result<Outcome>>),
    Callback(OutcomeCallback),
}

impl Waiter {
    pub(crate) fn send(self, outcome: Result<Outcome>) {
        match self {
            // The caller may have gone; then nobody wants the outcome.
            Waiter::Future(tx) => drop(tx.send(outcome)),
            Waiter::Callback(done) => done.call(outcome),
        }
    }

    /// The caller cancelled: its callback is never called.
    fn discard(self) {
        if let Waiter::Callback(mut done) = self {
            done.0 = None;
        }
    }
}

/// A callback answered exactly once: with what [`Waiter::send`] gives it,
/// or, dropped unanswered (the driver exited first), with
/// [`Error::Shutdown`].
pub(crate) struct OutcomeCallback(Option<Box<dyn FnOnce(Result<Outcome>) + Send>>);

impl OutcomeCallback {
    pub(crate) fn new(done: impl FnOnce(Result<Outcome>) + Send + 'static) -> Self {
        OutcomeCallback(Some(Box::new(done)))
    }

    fn call(mut self, outcome: Result<Outcome>) {
        if let Some(done) = self.0.take() {
            done(outcome);
        }
    }
}

impl Drop for OutcomeCallback {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(Error::Shutdown));
        }
    }
}

pub(crate) enum Command {
    Start {
        ticket: u64,
        start: Start,
        waiter: Waiter,
    },
    /// The caller dropped its future: stop the operation.
    Cancel { ticket: u64 },
}

/// The API's end of the channel. The driver does not wait on the channel
/// itself but on `driver`, which each command wakes, through the node's
/// doorbell if it has one (see [`crate::doorbell`]).
pub(crate) struct CommandSender {
    tx: mpsc::UnboundedSender<Command>,
    tickets: AtomicU64,
    driver: Arc<Notify>,
    doorbell: OnceLock<Doorbell>,
}

/// A command handed to the driver: cancel it with its ticket, await its
/// outcome on the receiver.
pub(crate) struct Sent {
    pub ticket: u64,
    pub outcome: oneshot::Receiver<Result<Outcome>>,
}

impl CommandSender {
    /// A channel to a driver that waits on `driver`.
    pub(crate) fn new(driver: Arc<Notify>) -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sender = CommandSender {
            tx,
            tickets: AtomicU64::new(0),
            driver,
            doorbell: OnceLock::new(),
        };
        (sender, rx)
    }

    /// Wake the driver through `doorbell` for callers outside any runtime
    /// (the first doorbell given stays).
    pub(crate) fn ring_through(&self, doorbell: &Doorbell) {
        let _ = self.doorbell.set(doorbell.clone());
    }

    /// Queue `command` and wake the driver for it.
    fn queue(&self, command: Command) -> std::result::Result<(), ()> {
        self.tx.send(command).map_err(drop)?;
        match self.doorbell.get() {
            Some(doorbell) => doorbell.ring(&self.driver),
            None => self.driver.notify_one(),
        }
        Ok(())
    }

    /// Hand `start` to the driver; [`Error::Shutdown`] if it has exited.
    pub(crate) fn send(&self, start: Start) -> Result<Sent> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (waiter, outcome) = oneshot::channel();
        self.queue(Command::Start {
            ticket,
            start,
            waiter: Waiter::Future(waiter),
        })
        .map_err(|()| Error::Shutdown)?;
        Ok(Sent { ticket, outcome })
    }

    /// Hand `start` to the driver, its outcome to go to `done`. If the
    /// driver has exited the command is dropped here, and `done` with it:
    /// answered with [`Error::Shutdown`], on this thread.
    pub(crate) fn send_then(&self, start: Start, done: OutcomeCallback) -> u64 {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let _refused = self.queue(Command::Start {
            ticket,
            start,
            waiter: Waiter::Callback(done),
        });
        ticket
    }

    /// Stop the command `ticket` if it still runs (a stopped driver has
    /// nothing left to stop).
    pub(crate) fn cancel(&self, ticket: u64) {
        let _ = self.queue(Command::Cancel { ticket });
    }
}

/// The driver's end: the operations it started for callers.
#[derive(Default)]
pub(crate) struct Waiters {
    by_op: HashMap<OpId, (u64, Waiter)>,
    by_ticket: HashMap<u64, OpId>,
    /// Commands still queued when the driver exited, never to start; their
    /// waiters are answered [`Error::Shutdown`] as this goes.
    abandoned: HashMap<u64, Waiter>,
}

impl Waiters {
    /// Carry out `command` on `protocol`. A start the protocol refused comes
    /// back with its error, for the caller to answer once it has let go of
    /// the node's lock.
    #[must_use]
    pub(crate) fn handle(
        &mut self,
        command: Command,
        protocol: &mut Protocol,
        now: Instant,
    ) -> Option<(Waiter, Error)> {
        match command {
            Command::Start {
                ticket,
                start,
                waiter,
            } => match start(protocol, now) {
                Ok(op) => {
                    self.by_op.insert(op, (ticket, waiter));
                    self.by_ticket.insert(ticket, op);
                    None
                }
                Err(e) => Some((waiter, e)),
            },
            Command::Cancel { ticket } => {
                if let Some(op) = self.silence(ticket) {
                    protocol.cancel(op);
                }
                None
            }
        }
    }

    /// At the driver's exit, a command that will not run: a start is
    /// abandoned (answered [`Error::Shutdown`] when these waiters go), a
    /// cancel still keeps its call's callback from being called.
    pub(crate) fn abandon(&mut self, command: Command) {
        match command {
            Command::Start { ticket, waiter, .. } => {
                self.abandoned.insert(ticket, waiter);
            }
            Command::Cancel { ticket } => {
                self.silence(ticket);
            }
        }
    }

    /// Forget the waiter of the call `ticket` without answering it; the
    /// operation it waited on, if one was running, for the caller to stop.
    fn silence(&mut self, ticket: u64) -> Option<OpId> {
        let running = self.by_ticket.remove(&ticket);
        let waiter = match running {
            Some(op) => self.by_op.remove(&op).map(|(_, w)| w),
            None => self.abandoned.remove(&ticket),
        };
        if let Some(waiter) = waiter {
            waiter.discard();
        }
        running
    }

    /// The waiter of `op`, which has finished (`None` for operations the
    /// node started itself, or whose caller went away).
    pub(crate) fn take(&mut self, op: OpId) -> Option<Waiter> {
        let (ticket, waiter) = self.by_op.remove(&op)?;
        self.by_ticket.remove(&ticket);
        Some(waiter)
    }
}
