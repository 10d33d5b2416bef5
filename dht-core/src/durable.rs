//! The driver's side of persistence: the open data directory, the clock
//! anchor, and the changes taken from the protocol but not yet on disk.
//! [`Durable::open`] locks and loads the directory and builds the protocol
//! from it. Each driver iteration [`Durable::collect`]s the protocol's
//! journal under the node lock; [`Durable::start`] hands everything collected
//! to one write transaction on the node's disk thread, and the driver keeps
//! serving while it runs (group commit: what arrives meanwhile is the next
//! transaction). Every collection gets a sequence number, so the driver can
//! hold an acknowledgement until [`Durable::is_saved`] says the changes
//! collected before it are on disk; [`Held`] keeps those acknowledgements
//! (STORE answers, completed puts) meanwhile. A failed commit (disk full, I/O error)
//! keeps its changes and is retried after [`RETRY_PAUSE`]; until it succeeds
//! the driver acknowledges nothing, so nothing unsaved is ever acknowledged.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{error, info};

use crate::config::Config;
use crate::disk_thread::{DiskThread, DiskWork};
use crate::error::{Error, Result};
use crate::node::now;
use crate::node_commands::Waiter;
use crate::ops::Outcome;
use crate::persist::{Change, ClockAnchor, DataDir, PersistError};
use crate::protocol::{Protocol, Transmit};
use crate::storage::Storage;
use crate::wire;

/// Pause between attempts to save changes that failed to commit.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What a commit gives back: the directory, the changes (kept for a retry
/// when the commit failed) and the result.
type Committed = (DataDir, Vec<Change>, std::result::Result<(), PersistError>);

/// A commit running on the disk thread.
struct InFlight {
    /// The newest collection it holds.
    seq: u64,
    task: DiskWork<Committed>,
}

pub struct Durable {
    path: PathBuf,
    disk: DiskThread,
    /// `None` while a commit runs, or after its thread died (then the next
    /// commit fails and is retried).
    dir: Option<DataDir>,
    anchor: ClockAnchor,
    /// Taken from the protocol, not yet handed to a commit.
    batch: Vec<Change>,
    /// Number of the newest collection that took changes (0: none yet).
    collected: u64,
    /// Every collection up to this number is on disk.
    saved: u64,
    in_flight: Option<InFlight>,
    /// Set while changes failed to commit: when to try again.
    retry_at: Option<Instant>,
    last_error: Option<PersistError>,
}

impl Durable {
    /// Locks and loads the data directory `path`, and builds the protocol
    /// from what it holds (with `storage` as its backend). Disk work runs on
    /// the node's disk thread, started here. `now` is the driver's clock, read with the wall
    /// clock into this run's anchor: the system clock, or `unix_secs_at_now`
    /// when the caller set one (`Config::unix_time_at_start`: tests of
    /// expiry across restarts start a node "90 s later" that way).
    pub async fn open(
        config: Config,
        storage: Box<dyn Storage>,
        path: &Path,
        now: Instant,
        unix_secs_at_now: Option<u64>,
    ) -> Result<(Durable, Protocol)> {
        let wall = match unix_secs_at_now {
            Some(secs) => UNIX_EPOCH + Duration::from_secs(secs),
            None => SystemTime::now(),
        };
        let anchor = ClockAnchor::new(now, wall);
        let owned = path.to_owned();
        let disk = DiskThread::start().map_err(|source| {
            Error::Persistence(PersistError::Io {
                path: path.to_owned(),
                source,
            })
        })?;
        let opened = disk
            .run(move || {
                let mut dir = DataDir::open(&owned)?;
                let snapshot = dir.load_at(anchor.unix_ms())?;
                Ok::<_, PersistError>((dir, snapshot))
            })
            .await
            .map_err(|e| Error::Persistence(thread_died(path, &e)))?;
        let (dir, snapshot) = opened?;
        info!(
            dir = %path.display(),
            records = snapshot.records.len(),
            contacts = snapshot.contacts.len(),
            expired_while_down = snapshot.expired_dropped,
            "data directory loaded"
        );
        let protocol = Protocol::restore_with_storage(config, storage, &snapshot, &anchor, now)?;
        let durable = Durable {
            path: path.to_owned(),
            disk,
            dir: Some(dir),
            anchor,
            batch: Vec::new(),
            collected: 0,
            saved: 0,
            in_flight: None,
            retry_at: None,
            last_error: None,
        };
        Ok((durable, protocol))
    }

    /// Takes the protocol's unsaved changes (under the node lock; no I/O).
    /// While failed changes wait for their retry, nothing more is taken:
    /// the protocol's journal keeps one change per key meanwhile, so memory
    /// stays bounded however long the disk stays full.
    pub fn collect(&mut self, protocol: &mut Protocol, now: Instant) {
        if self.retry_at.is_none() {
            let before = self.batch.len();
            protocol.take_persist_changes(now, &self.anchor, &mut self.batch);
            if self.batch.len() > before {
                self.collected += 1;
            }
        }
    }

    /// What an acknowledgement made now must wait for: `None` when every
    /// change collected so far is on disk, else the collection to be saved.
    pub fn unsaved(&self) -> Option<u64> {
        (self.collected > self.saved).then_some(self.collected)
    }

    /// Whether collection `seq` (from [`Durable::unsaved`]) is on disk.
    pub fn is_saved(&self, seq: u64) -> bool {
        seq <= self.saved
    }

    /// Whether anything collected still waits for a commit to start.
    pub fn has_work(&self, now: Instant) -> bool {
        !self.batch.is_empty() && self.retry_at.is_none_or(|t| t <= now)
    }

    pub fn is_committing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// When failed changes are tried again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The error of the last commit while its changes are still unsaved:
    /// the node must not acknowledge anything meanwhile.
    pub fn failure(&self) -> Option<&PersistError> {
        self.retry_at.and(self.last_error.as_ref())
    }

    /// Starts committing everything collected (one fsync'ed transaction on
    /// a blocking thread), unless a commit runs already or there is nothing
    /// to do at `now`. Returns at once; [`Durable::finish`] awaits it.
    pub fn start(&mut self, now: Instant) {
        if self.in_flight.is_some() || !self.has_work(now) {
            return;
        }
        let Some(mut dir) = self.dir.take() else {
            let e = PersistError::Io {
                path: self.path.clone(),
                source: io::Error::other("the data directory was lost by a failed commit"),
            };
            return self.failed(now, e);
        };
        let batch = std::mem::take(&mut self.batch);
        let task = self.disk.run(move || {
            let result = dir.commit(&batch);
            (dir, batch, result)
        });
        self.in_flight = Some(InFlight {
            seq: self.collected,
            task,
        });
    }

    /// Waits for the running commit, if any, and records its result.
    /// Cancel safe: dropped before the commit ends, it can be called again.
    pub async fn finish(&mut self) {
        let Some(in_flight) = &mut self.in_flight else {
            return;
        };
        let joined = (&mut in_flight.task).await;
        let seq = in_flight.seq;
        self.in_flight = None;
        let now = now();
        match joined {
            Ok((dir, mut batch, result)) => {
                self.dir = Some(dir);
                match result {
                    Ok(()) => {
                        if self.retry_at.take().is_some() {
                            info!(dir = %self.path.display(), "saving works again");
                        }
                        self.last_error = None;
                        self.saved = seq;
                        if self.batch.is_empty() {
                            batch.clear();
                            self.batch = batch; // keeps its allocation
                        }
                    }
                    Err(e) => {
                        // Saved again before what was collected after it.
                        batch.append(&mut self.batch);
                        self.batch = batch;
                        self.failed(now, e);
                    }
                }
            }
            // The commit panicked (DataDir catches redb's panics, so this
            // is not expected): the changes and the directory handle are
            // gone with it.
            Err(e) => {
                let e = thread_died(&self.path, &e);
                self.failed(now, e);
            }
        }
    }

    /// Commits everything collected and waits for it (at shutdown).
    pub async fn flush(&mut self) {
        self.finish().await;
        self.start(now());
        self.finish().await;
    }

    fn failed(&mut self, now: Instant, e: PersistError) {
        error!(error = %e, "could not save the node's state; it acknowledges nothing until it can");
        self.retry_at = Some(now + RETRY_PAUSE);
        self.last_error = Some(e);
    }
}

/// Whether the driver must hold `t` until the changes before it are saved:
/// the answer to a STORE (a response whose body is one msgpack bool, see
/// `wire::encode_response`) acknowledges a value. The node's own requests
/// and its other answers (contacts, values, pings) acknowledge nothing, so
/// they go out while the disk works.
pub fn acknowledges(t: &Transmit) -> bool {
    wire::is_store_answer(&t.payload)
}

/// Whether a finished operation reports a put (or a signed put, which
/// also keeps the publisher's copy) to its caller: it waits for the disk.
pub fn reports_put(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Put(_) | Outcome::SignedPut(_))
}

/// What waits for the disk: STORE answers and completed puts, each with the
/// collection that must be saved first.
#[derive(Default)]
pub struct Held {
    answers: Vec<(u64, Transmit)>,
    puts: Vec<(u64, Waiter, Outcome)>,
}

impl Held {
    /// Moves out of `outgoing` and `finished` what must wait for the
    /// changes collected so far. While saving fails, those answers are
    /// dropped (peers see a node that does not reply) and those puts fail.
    pub fn hold(
        &mut self,
        d: &Durable,
        outgoing: &mut Vec<Transmit>,
        finished: &mut Vec<(Waiter, Outcome)>,
    ) {
        if let Some(e) = d.failure() {
            outgoing.retain(|t| !acknowledges(t));
            for (_, outcome) in finished.iter_mut() {
                if reports_put(outcome) {
                    *outcome = failed_put(outcome, e);
                }
            }
            return;
        }
        let Some(seq) = d.unsaved() else {
            return;
        };
        let (wait, go): (Vec<_>, Vec<_>) = outgoing.drain(..).partition(acknowledges);
        *outgoing = go;
        self.answers.extend(wait.into_iter().map(|t| (seq, t)));
        let (wait, go): (Vec<_>, Vec<_>) = finished
            .drain(..)
            .partition(|(_, outcome)| reports_put(outcome));
        *finished = go;
        self.puts
            .extend(wait.into_iter().map(|(tx, outcome)| (seq, tx, outcome)));
    }

    /// Completes the puts whose changes are saved and returns the answers
    /// that may go out. While saving fails, fails every held put and drops
    /// every held answer.
    pub fn release(&mut self, d: &Durable) -> Vec<Transmit> {
        if let Some(e) = d.failure() {
            self.answers.clear();
            for (_, waiter, outcome) in self.puts.drain(..) {
                waiter.send(Ok(failed_put(&outcome, e)));
            }
            return Vec::new();
        }
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.puts.drain(..).partition(|(seq, ..)| d.is_saved(*seq));
        self.puts = waiting;
        for (_, waiter, outcome) in done {
            waiter.send(Ok(outcome));
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .answers
            .drain(..)
            .partition(|(seq, _)| d.is_saved(*seq));
        self.answers = waiting;
        ready.into_iter().map(|(_, t)| t).collect()
    }
}

/// The outcome of a put whose changes could not be saved.
fn failed_put(outcome: &Outcome, e: &PersistError) -> Outcome {
    let e = Error::Persistence(duplicate(e));
    match outcome {
        Outcome::SignedPut(_) => Outcome::SignedPut(Err(e)),
        _ => Outcome::Put(Err(e)),
    }
}

fn thread_died(path: &Path, e: &dyn std::fmt::Display) -> PersistError {
    PersistError::Io {
        path: path.to_owned(),
        source: io::Error::other(format!("the thread doing disk work failed: {e}")),
    }
}

/// A copy of `e` for each caller that must see it (`io::Error` is not
/// `Clone`: its kind and message are kept).
pub fn duplicate(e: &PersistError) -> PersistError {
    let copy_io = |s: &io::Error| io::Error::new(s.kind(), s.to_string());
    match e {
        PersistError::Locked {
            path,
            in_this_process,
        } => PersistError::Locked {
            path: path.clone(),
            in_this_process: *in_this_process,
        },
        PersistError::Corrupt { path, detail } => PersistError::Corrupt {
            path: path.clone(),
            detail: detail.clone(),
        },
        PersistError::UnsupportedVersion {
            path,
            found,
            supported,
        } => PersistError::UnsupportedVersion {
            path: path.clone(),
            found: *found,
            supported: *supported,
        },
        PersistError::DiskFull { path } => PersistError::DiskFull { path: path.clone() },
        PersistError::NotWritable { path, source } => PersistError::NotWritable {
            path: path.clone(),
            source: copy_io(source),
        },
        PersistError::NotADirectory { path } => PersistError::NotADirectory { path: path.clone() },
        PersistError::DanglingLink { path, target } => PersistError::DanglingLink {
            path: path.clone(),
            target: target.clone(),
        },
        PersistError::LinkLoop { path, target } => PersistError::LinkLoop {
            path: path.clone(),
            target: target.clone(),
        },
        PersistError::Io { path, source } => PersistError::Io {
            path: path.clone(),
            source: copy_io(source),
        },
    }
}
