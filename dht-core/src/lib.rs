//! kadmium's core: a Kademlia DHT wire-compatible with the Python `kademlia`
//! 2.2.3 / `rpcudp` 5.0.1 packages.
//!
//! The protocol ([`protocol::Protocol`], with [`routing`], [`lookup`],
//! [`storage`] and [`wire`]) is a sans-IO state machine: it takes `now`,
//! datagrams and timer expiries, and gives datagrams, events and its next
//! deadline. [`Node`] runs it on a tokio UDP socket; [`sim::Simulation`] runs
//! thousands of them on an in-memory network with virtual time.
//!
//! ```no_run
//! # async fn demo() -> dht_core::Result<()> {
//! use dht_core::{Config, Node, NodeId, PutOptions, Value};
//! let a = Node::bind(Config::default().with_bind("127.0.0.1:0".parse().unwrap())).await?;
//! let b = Node::bind(Config::default().with_bind("127.0.0.1:0".parse().unwrap())).await?;
//! b.bootstrap(&[a.local_addr()]).await?;
//! let report = b.put(NodeId::digest(b"key"), Value::from(&b"value"[..]), PutOptions::default()).await?;
//! assert_eq!(report.stored_remote, 1);
//! assert_eq!(a.get(NodeId::digest(b"key")).await?, Some(Value::from(&b"value"[..])));
//! # Ok(()) }
//! ```

pub mod after_unlock;
pub mod amplification;
pub mod config;
pub mod contact;
pub mod contacts;
mod deadline_queue;
pub mod directory;
mod disk_thread;
mod doorbell;
pub(crate) mod durable;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
mod idle_memory;
pub(crate) mod journal;
pub mod lookup;
pub mod node;
mod node_callbacks;
mod node_commands;
mod node_driver;
mod node_records;
mod node_rng;
mod node_socket;
pub mod ops;
mod peer_array;
pub mod peer_book;
mod peer_key;
pub mod persist;
pub mod protocol;
pub mod public_address;
pub mod quota;
pub mod ratelimit;
pub mod record_policy;
mod record_schedule;
pub mod records;
pub mod refresh;
pub mod replication;
pub mod responder;
pub mod routing;
pub mod rpc;
pub mod rtt;
pub mod signed;
pub mod sim;
pub mod stats;
pub mod storage;
mod stored_contact;
mod timeline;
mod udp;
pub mod umsgpack_rules;
pub mod value;
pub mod wall_clock;
pub mod wire;

pub use config::{Config, DEFAULT_MAX_VALUE_SIZE};
pub use contact::Contact;
pub use directory::ContactDirectory;
pub use doorbell::Doorbell;
pub use error::{Error, Result};
pub use id::{Distance, Key, NodeId, ID_LEN};
pub use node::Node;
pub use node_callbacks::CallTicket;
pub use persist::{DataDir, PersistError};
pub use protocol::{
    Event, Lifetime, OpId, Outcome, Protocol, PutOptions, PutReport, SignedPutOptions,
    SignedPutReport, SignedValue, Stats, Transmit,
};
pub use signed::{Keypair, PublicKey, RecordError, SignedRecord, StoreDecision};
pub use storage::{MemoryStorage, Origin, Storage, StoredValue};
pub use value::Value;
