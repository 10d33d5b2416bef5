//! Durable node state: a data directory holding the node id, the routing
//! contacts and the records (values held for the network, values this node
//! published, cached copies), so a node killed at any moment comes back with
//! everything it had acknowledged. The store is redb (pure Rust, ACID,
//! crash-safe) behind a small interface: [`DataDir::open`] locks and checks
//! the directory, [`DataDir::load`] reads it back, [`DataDir::commit`] writes
//! a batch of [`Change`]s durably. Times on disk are wall-clock unix
//! milliseconds; [`ClockAnchor`] converts them to and from the protocol's
//! `Instant`s. The on-disk format is described in `docs/persistence.md`.

mod clock;
mod codec;
mod dir;
mod error;
mod lock;
mod quiet_panic;
mod store;

pub use clock::ClockAnchor;
pub use codec::{PersistedRecord, RecordKind, RECORD_ENCODING};
pub use error::PersistError;
pub use lock::LOCK_FILE;
pub use store::{Change, DataDir, Snapshot, DATA_FILE, FORMAT_VERSION};
