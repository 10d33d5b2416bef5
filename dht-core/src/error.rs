//! The one error type of dht-core.

use std::io;

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
    #[error("bad address {0:?}")]
    BadAddress(String),
    #[error("network error: {0}")]
    Io(#[from] io::Error),
    #[error("local storage is full")]
    StorageFull,
    #[error("too many requests in flight")]
    Busy,
    #[error("the node has been shut down")]
    Shutdown,
    /// The data directory could not be opened, read or written.
    #[error(transparent)]
    Persistence(#[from] crate::persist::PersistError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
