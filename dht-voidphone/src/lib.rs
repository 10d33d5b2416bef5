//! The VoidPhone DHT API (the interface of the TUM "Peer-to-Peer Systems and
//! Security" course DHTs) served over TCP from a kadmium node, and the
//! course-style INI config file those modules are started with.
//!
//! * [`message`]: the wire format and an incremental frame decoder.
//! * [`server`]: [`ApiServer`], one task per connection, one per request.
//! * [`connections`]: connection limits and which idle connection a new
//!   client replaces.
//! * [`config`]: [`NodeSettings`] from the `[dht]` section of an INI file.
//!
//! A 32-byte API key `k` is stored in the DHT under `NodeId::digest(&k)`, so
//! values put through the API are found by `Node::get` (and the Python and C
//! interfaces) with that key, and the other way round.

pub mod config;
pub mod connections;
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod server;
mod session;
mod warn_limit;

pub use config::{default_api_address, parse_host_port, AddressError, ConfigError, NodeSettings};
pub use message::{ApiKey, FrameDecoder, Message, ProtocolError};
pub use server::{ApiConfig, ApiError, ApiServer, ApiStats, MAX_IN_FLIGHT_PER_CONNECTION};

/// The DHT key under which the value of a 32-byte API key is stored.
pub fn dht_key(api_key: &ApiKey) -> dht_core::NodeId {
    dht_core::NodeId::digest(api_key)
}
