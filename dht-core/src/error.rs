//! The one error type of dht-core.

use std::io;

use crate::signed::RecordError;

/// Everything a kadmium operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("value too large: {size} bytes (maximum {max})")]
    ValueTooLarge { size: usize, max: usize },
    #[error("no known peers: bootstrap the node first")]
    NoPeers,
    #[error("operation timed out")]
    Timeout,
    #[error("bad address: {0}")]
    BadAddress(String),
    #[error("network error: {0}")]
    Io(#[from] io::Error),
    #[error("local storage is full")]
    StorageFull,
    #[error("too many requests in flight")]
    Busy,
    #[error("the node has been shut down")]
    Shutdown,
    /// A signed put with `cas = expected` found another sequence number
    /// (`None`: no record at all).
    #[error("compare-and-swap failed: expected sequence {expected}, found {}",
        found.map_or_else(|| "no record".to_owned(), |s| s.to_string()))]
    CasMismatch { expected: u64, found: Option<u64> },
    /// A signed or immutable record that cannot be made or was refused
    /// (bad signature, wrong key, stale sequence, ...).
    #[error("invalid record: {0}")]
    InvalidRecord(RecordError),
    /// The data directory could not be opened, read or written.
    #[error(transparent)]
    Persistence(#[from] crate::persist::PersistError),
}

/// Lifts the record errors to the top level where callers match on them:
/// a CAS conflict and an oversized record keep their own variants, so
/// `Error::InvalidRecord` never holds `CasMismatch` or `TooLarge`.
impl From<RecordError> for Error {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::CasMismatch { expected, found } => Error::CasMismatch { expected, found },
            RecordError::TooLarge { size, max } => Error::ValueTooLarge { size, max },
            other => Error::InvalidRecord(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
