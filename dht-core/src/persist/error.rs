//! What can go wrong with a data directory. Every message names the file or
//! directory and says what the operator should do, because these errors end
//! up on a terminal (CLI), in a Python exception or in a C error string.
//! Errors from redb and the OS are sorted here into the few cases a caller
//! can act on: in use, damaged, too new, disk full, not writable.

use std::io;
use std::path::{Path, PathBuf};

/// Why a data directory could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// `in_this_process`: the holder is another node of this process (a
    /// `DataDir`, `Node`, Python `Server` or C node not yet closed), not
    /// another process; the message says which, so nobody hunts for a
    /// process that does not exist.
    #[error("data directory {path} is {}", locked_by(.path, *.in_this_process))]
    Locked {
        path: PathBuf,
        in_this_process: bool,
    },
    #[error(
        "data file {path} is damaged or is not a kadmium store ({detail}); the node will not \
         start with it: restore it from a backup, or move it aside to start with an empty store"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "data file {path} has format version {found}, but this build of kadmium reads versions \
         up to {supported}: run a newer kadmium, or move the file aside to start empty"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "no space left on the disk holding {path}: the last changes were not saved; \
         free some space (later commits retry)"
    )]
    DiskFull { path: PathBuf },
    #[error("cannot write to {path} ({source}): give the node a data directory it may write to")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("{path} is not a directory (or lies under a file): give a directory path")]
    NotADirectory { path: PathBuf },
    #[error(
        "{path} is a symbolic link to {target}, which does not exist: create that directory, \
         or give another path"
    )]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error(
        "{path} is a symbolic link that leads back to itself (through {target}): point it at \
         a directory, or give another path"
    )]
    LinkLoop { path: PathBuf, target: PathBuf },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn locked_by(path: &Path, in_this_process: bool) -> String {
    if in_this_process {
        "already open in this process (by another node not yet stopped): stop that node \
         first, or give this one another data directory"
            .to_owned()
    } else {
        format!(
            "in use by another process (it holds the lock on {}/LOCK): stop that node, \
             or give this one another data directory",
            path.display()
        )
    }
}

impl PersistError {
    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        PersistError::Corrupt {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }

    /// Sorts an OS error on `path` into the case the operator can act on.
    pub(crate) fn from_io(path: &Path, source: io::Error) -> Self {
        let path = path.to_owned();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                PersistError::DiskFull { path }
            }
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                PersistError::NotWritable { path, source }
            }
            io::ErrorKind::NotADirectory => PersistError::NotADirectory { path },
            _ => PersistError::Io { path, source },
        }
    }

    /// Whether the store must be reopened before the next write: redb refuses
    /// every write after a failed I/O until then.
    pub(crate) fn needs_reopen(&self) -> bool {
        matches!(
            self,
            PersistError::DiskFull { .. }
                | PersistError::NotWritable { .. }
                | PersistError::Io { .. }
        )
    }
}

/// Errors of redb, given the data file they happened on. The redb error
/// enums are `#[non_exhaustive]`; new variants land in `Io`.
pub(crate) mod from_redb {
    use super::*;

    pub fn storage(path: &Path, e: redb::StorageError) -> PersistError {
        match e {
            redb::StorageError::Corrupted(detail) => PersistError::corrupt(path, detail),
            // A file shorter than its own header says it is (truncated), or
            // a header redb cannot parse.
            redb::StorageError::Io(source)
                if matches!(
                    source.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ) =>
            {
                PersistError::corrupt(path, source.to_string())
            }
            redb::StorageError::Io(source) => PersistError::from_io(path, source),
            other => PersistError::Io {
                path: path.to_owned(),
                source: io::Error::other(other.to_string()),
            },
        }
    }

    pub fn database(path: &Path, e: redb::DatabaseError) -> PersistError {
        match e {
            // Our own DirLock is held by now, so the file's other user is
            // not a kadmium node of this process.
            redb::DatabaseError::DatabaseAlreadyOpen => PersistError::Locked {
                path: path.parent().unwrap_or(path).to_owned(),
                in_this_process: false,
            },
            redb::DatabaseError::UpgradeRequired(version) => PersistError::corrupt(
                path,
                format!("a redb file of format {version}, which kadmium never writes"),
            ),
            redb::DatabaseError::Storage(e) => storage(path, e),
            other => PersistError::corrupt(path, other.to_string()),
        }
    }

    pub fn transaction(path: &Path, e: redb::TransactionError) -> PersistError {
        match e {
            redb::TransactionError::Storage(e) => storage(path, e),
            other => PersistError::Io {
                path: path.to_owned(),
                source: io::Error::other(other.to_string()),
            },
        }
    }

    /// Table errors other than storage ones mean a table of ours exists with
    /// another key or value type: a file some other program wrote.
    pub fn table(path: &Path, e: redb::TableError) -> PersistError {
        match e {
            redb::TableError::Storage(e) => storage(path, e),
            other => PersistError::corrupt(path, other.to_string()),
        }
    }

    pub fn commit(path: &Path, e: redb::CommitError) -> PersistError {
        match e {
            redb::CommitError::Storage(e) => storage(path, e),
            other => PersistError::Io {
                path: path.to_owned(),
                source: io::Error::other(other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_sort_into_actionable_cases() {
        let p = Path::new("/x");
        let full = io::Error::from_raw_os_error(28); // ENOSPC
        assert!(matches!(
            PersistError::from_io(p, full),
            PersistError::DiskFull { .. }
        ));
        let ro = io::Error::from_raw_os_error(30); // EROFS
        assert!(matches!(
            PersistError::from_io(p, ro),
            PersistError::NotWritable { .. }
        ));
        let notdir = io::Error::from_raw_os_error(20); // ENOTDIR
        assert!(matches!(
            PersistError::from_io(p, notdir),
            PersistError::NotADirectory { .. }
        ));
        let eof = redb::StorageError::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert!(matches!(
            from_redb::storage(p, eof),
            PersistError::Corrupt { .. }
        ));
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = PersistError::UnsupportedVersion {
            path: "/d/kadmium.redb".into(),
            found: 9,
            supported: 1,
        };
        let msg = e.to_string();
        assert!(msg.contains("/d/kadmium.redb") && msg.contains("version 9"));
        assert!(msg.contains("run a newer kadmium"));
    }
}
