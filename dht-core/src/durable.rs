//! The driver's side of persistence: the open data directory, the clock
//! anchor, and the batch of changes taken from the protocol but not yet on
//! disk. [`Durable::open`] locks and loads the directory and builds the
//! protocol from it; each driver iteration [`Durable::collect`]s the
//! protocol's journal under the node lock and [`Durable::commit`]s it outside
//! the lock, on a blocking thread, before the iteration's datagrams go out.
//! A failed commit (disk full, I/O error) keeps its batch and is retried
//! after [`RETRY_PAUSE`]; until it succeeds the driver sends nothing and
//! fails puts, so nothing unsaved is ever acknowledged.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tracing::{error, info};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::persist::{Change, ClockAnchor, DataDir, PersistError};
use crate::protocol::Protocol;
use crate::storage::Storage;

/// Pause between attempts to save a batch that failed to commit.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

pub struct Durable {
    path: PathBuf,
    /// `None` only while a commit runs on a blocking thread, or after that
    /// thread died (then every later commit fails).
    dir: Option<DataDir>,
    anchor: ClockAnchor,
    /// Taken from the protocol, not yet committed.
    batch: Vec<Change>,
    /// Set while `batch` failed to commit: when to try again.
    retry_at: Option<Instant>,
    last_error: Option<PersistError>,
}

impl Durable {
    /// Locks and loads the data directory `path`, and builds the protocol
    /// from what it holds (with `storage` as its backend). Disk work runs on
    /// a blocking thread. `now` is the driver's clock, read with the wall
    /// clock into this run's anchor.
    pub async fn open(
        config: Config,
        storage: Box<dyn Storage>,
        path: &Path,
        now: Instant,
    ) -> Result<(Durable, Protocol)> {
        let anchor = ClockAnchor::new(now, SystemTime::now());
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
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
            dir: Some(dir),
            anchor,
            batch: Vec::new(),
            retry_at: None,
            last_error: None,
        };
        Ok((durable, protocol))
    }

    /// Takes the protocol's unsaved changes into the batch (under the node
    /// lock; no I/O). While a failed batch waits for its retry, nothing more
    /// is taken: the protocol's journal keeps one change per key meanwhile,
    /// so memory stays bounded however long the disk stays full.
    pub fn collect(&mut self, protocol: &mut Protocol, now: Instant) {
        if self.retry_at.is_none() {
            protocol.take_persist_changes(now, &self.anchor, &mut self.batch);
        }
    }

    /// Whether [`Durable::commit`] has something to do at `now`.
    pub fn has_work(&self, now: Instant) -> bool {
        !self.batch.is_empty() && self.retry_at.is_none_or(|t| t <= now)
    }

    /// When a failed batch is tried again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// The error of the last commit while its batch is still unsaved: the
    /// node must not acknowledge anything meanwhile.
    pub fn failure(&self) -> Option<&PersistError> {
        self.retry_at.and(self.last_error.as_ref())
    }

    /// Commits the batch (one fsync'ed transaction) on a blocking thread.
    pub async fn commit(&mut self, now: Instant) {
        if self.batch.is_empty() {
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
        let joined = tokio::task::spawn_blocking(move || {
            let result = dir.commit(&batch);
            (dir, batch, result)
        })
        .await;
        match joined {
            Ok((dir, mut batch, result)) => {
                self.dir = Some(dir);
                match result {
                    Ok(()) => {
                        if self.retry_at.take().is_some() {
                            info!(dir = %self.path.display(), "saving works again");
                        }
                        self.last_error = None;
                        batch.clear();
                        self.batch = batch; // keeps its allocation
                    }
                    Err(e) => {
                        self.batch = batch;
                        self.failed(now, e);
                    }
                }
            }
            // The thread panicked (DataDir catches redb's panics, so this
            // is not expected) or the runtime is shutting down: the batch
            // and the directory handle are gone with it.
            Err(e) => {
                let e = thread_died(&self.path, &e);
                self.failed(now, e);
            }
        }
    }

    fn failed(&mut self, now: Instant, e: PersistError) {
        error!(error = %e, "could not save the node's state; it answers nobody until it can");
        self.retry_at = Some(now + RETRY_PAUSE);
        self.last_error = Some(e);
    }
}

fn thread_died(path: &Path, e: &tokio::task::JoinError) -> PersistError {
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
        PersistError::Locked { path } => PersistError::Locked { path: path.clone() },
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
        PersistError::Io { path, source } => PersistError::Io {
            path: path.clone(),
            source: copy_io(source),
        },
    }
}
