//! Node configuration. Every field has a documented default; builders set them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::id::NodeId;

/// Largest value accepted by `put` by default (in [`Value::size`] bytes:
/// the length of a string or byte string, the encoded length of a list or
/// map): 8,137 bytes, the most a Python `kademlia` peer can carry. rpcudp
/// refuses to send a request whose body exceeds 8,192 bytes, and a STORE
/// body is 52 bytes of name, ids and framing plus the value with a 3-byte
/// header (see the test `default_value_limit_fills_an_rpcudp_request_exactly`
/// in `wire.rs`). A larger value would be stored on kadmium nodes but a Python
/// peer could neither cache nor republish it, and its `get()` would fail.
///
/// On networks of kadmium nodes only, [`Config::with_max_value_size`] may
/// raise the limit up to what one UDP datagram carries (about 65,400 bytes;
/// `put` refuses larger values whatever the setting).
///
/// [`Value::size`]: crate::Value::size
pub const DEFAULT_MAX_VALUE_SIZE: usize = 8_137;
/// The largest k (replication factor and bucket size) a node may run with.
pub const MAX_K: usize = 1000;

/// Settings of one node. `Config::default()` gives the documented defaults;
/// the `with_*` methods change one field each.
///
/// ```
/// use std::time::Duration;
/// use dht_core::Config;
/// let config = Config::default()
///     .with_bind("127.0.0.1:0".parse().unwrap())
///     .with_k(20)
///     .with_rpc_timeout(Duration::from_millis(500));
/// assert_eq!(config.alpha, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// UDP address to bind (port 0 picks a free port). Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// Replication factor and bucket size k (the three furthest buckets
    /// hold 4k, 2k and 2k contacts). Default 20.
    pub k: usize,
    /// Lookup parallelism α. Default 3.
    pub alpha: usize,
    /// How long to wait for one RPC reply. Default 2 s.
    pub rpc_timeout: Duration,
    /// The shortest a lookup waits for one peer before querying the next
    /// (the adaptive timeout's floor; see [`crate::rtt`]). A late reply is
    /// still accepted until `rpc_timeout`. Default 100 ms.
    pub min_rpc_timeout: Duration,
    /// Consecutive missed replies after which a contact is dropped from the
    /// routing table. Default 3; values above 15 count as 15 (the table
    /// counts misses in 4 bits of each contact).
    pub max_failures: u32,
    /// This node's id; random when `None`.
    pub node_id: Option<NodeId>,
    /// Largest value `put` accepts, in bytes. Default [`DEFAULT_MAX_VALUE_SIZE`].
    pub max_value_size: usize,
    /// Most values this node stores for the network. Default 100,000.
    pub max_stored_values: usize,
    /// Most value bytes this node stores for the network. Default 64 MiB.
    pub max_stored_bytes: usize,
    /// Most RPCs holding a slot at once; lookups wait for a free slot. A
    /// query or STORE unanswered after three adaptive timeouts gives its
    /// slot back (its reply is still accepted until `rpc_timeout`); at most
    /// this many more can be out that way. Default 4,096.
    pub max_pending_rpcs: usize,
    /// Expiry of a value put without an explicit TTL, and of values received
    /// from peers that do not say (Python nodes). Default 24 h.
    pub default_ttl: Duration,
    /// Longest TTL accepted from anyone. Default 7 days.
    pub max_ttl: Duration,
    /// Buckets not used for this long are refreshed by a lookup. Default 1 h.
    pub refresh_interval: Duration,
    /// Stored values are re-sent to the current k closest nodes this often. Default 1 h.
    pub replicate_interval: Duration,
    /// The original publisher re-puts its values this often. Default 24 h.
    pub republish_interval: Duration,
    /// How often the maintenance timer runs (refresh, replicate, expire). Default 60 s.
    pub maintenance_interval: Duration,
    /// A node holding values pings those of its k closest neighbours it has
    /// not heard from for this long, so a holder that left is noticed and
    /// its keys re-sent (churn repair). Shorter notices faster at the cost
    /// of up to k pings per interval. Default 5 min.
    pub neighbour_check_interval: Duration,
    /// When a newcomer finds its bucket full, the bucket's least recently
    /// seen contact is pinged (and replaced if it does not answer) only if
    /// it has been quiet this long; otherwise the newcomer waits in the
    /// replacement cache. BEP 5's "questionable after 15 minutes": in a
    /// busy network nearly every contact is heard from often, and pinging
    /// one per newcomer was most of a joining network's traffic. Dead
    /// contacts still leave as soon as they miss replies. Default 15 min.
    pub contact_fresh_for: Duration,
    /// Overall deadline of a get, put, ping or bootstrap; past it the
    /// operation fails with [`crate::Error::Timeout`] (a bootstrap reports
    /// the contacts found so far). Default 10 s.
    pub operation_timeout: Duration,
    /// Only query the network: kadmium peers do not add this node to their
    /// routing tables (for short-lived CLI processes and scripts). Default false.
    pub client_only: bool,
    /// Requests per second the node handles in all (0: no limit). Default
    /// 8,192, as OpenDHT. Responses to the node's own RPCs are never limited.
    pub max_requests_per_sec: u32,
    /// Requests per second handled from one IP (0: no limit). Default 1,024.
    pub max_requests_per_ip_per_sec: u32,
    /// Most contacts of one /24 (IPv4) or /64 (IPv6) in one bucket. Default 2.
    pub max_contacts_per_subnet_per_bucket: usize,
    /// Most contacts of one IP address in the routing table. Default 2.
    pub max_contacts_per_ip: usize,
    /// Apply the per-IP limits above (rate, routing table, storage quota)
    /// to loopback and private addresses too. Off by default, so local test
    /// networks of hundreds of nodes on one address keep working.
    pub strict_local_limits: bool,
    /// Seed for the node's RNG (ids, message ids); random when `None`. A
    /// simulated node's id comes from the simulator's directory instead.
    pub rng_seed: Option<u64>,
    /// Unix time (seconds) at the `now` the protocol is created with: its
    /// only link to wall-clock time, for signed records' expiry. [`crate::Node`]
    /// sets it from the system clock when `None`; the protocol alone (the
    /// simulator) then uses [`crate::wall_clock::VIRTUAL_EPOCH_UNIX`].
    /// With a [`Config::data_dir`], a value set here is also the wall clock
    /// the saved expiries are read against at start (instead of the system
    /// clock): a test restarts a node "90 s later" without waiting 90 s.
    pub unix_time_at_start: Option<u64>,
    /// Directory where [`crate::Node`] keeps its id, routing contacts and
    /// records across restarts (created if missing, locked while the node
    /// runs; see `docs/persistence.md`). `None` (the default): everything
    /// lives in memory and is lost when the node stops. Read by
    /// [`crate::Node`]; a bare [`crate::Protocol`] and the simulator ignore
    /// it (see [`crate::Protocol::restore`]).
    ///
    /// Durability: the driver commits changes in fsync'ed transactions
    /// while it goes on serving (one transaction for everything changed
    /// while the previous one ran), and holds every STORE answer and every
    /// completed `put` until the changes made before it are committed, so a
    /// STORE acknowledged to a peer or a put reported to the caller survives
    /// `kill -9` or a crash. What is lost is at most the changes not yet
    /// committed (milliseconds of work, none of it acknowledged), and the
    /// contact list is saved at most
    /// once a second (every 30 s once it holds k contacts), so a kill may
    /// lose the newest contacts. [`crate::Node::store_local`] returns before
    /// its value is saved (in the next iteration, normally within
    /// milliseconds). Opening fails with [`crate::Error::Persistence`] when
    /// the directory is in use by another process, its file is damaged or of
    /// a newer format, or it cannot be written.
    pub data_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            k: 20,
            alpha: 3,
            rpc_timeout: Duration::from_secs(2),
            min_rpc_timeout: Duration::from_millis(100),
            max_failures: 3,
            node_id: None,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            max_stored_values: 100_000,
            max_stored_bytes: 64 << 20,
            max_pending_rpcs: 4096,
            default_ttl: Duration::from_secs(24 * 3600),
            max_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_interval: Duration::from_secs(3600),
            replicate_interval: Duration::from_secs(3600),
            republish_interval: Duration::from_secs(24 * 3600),
            maintenance_interval: Duration::from_secs(60),
            neighbour_check_interval: Duration::from_secs(300),
            contact_fresh_for: Duration::from_secs(15 * 60),
            operation_timeout: Duration::from_secs(10),
            max_requests_per_sec: 8192,
            max_requests_per_ip_per_sec: 1024,
            max_contacts_per_subnet_per_bucket: 2,
            max_contacts_per_ip: 2,
            strict_local_limits: false,
            client_only: false,
            rng_seed: None,
            unix_time_at_start: None,
            data_dir: None,
        }
    }
}

impl Config {
    pub fn with_bind(mut self, bind: SocketAddr) -> Self {
        self.bind = bind;
        self
    }
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }
    pub fn with_alpha(mut self, alpha: usize) -> Self {
        self.alpha = alpha;
        self
    }
    pub fn with_rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }
    pub fn with_node_id(mut self, id: NodeId) -> Self {
        self.node_id = Some(id);
        self
    }
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }
    pub fn with_client_only(mut self, client_only: bool) -> Self {
        self.client_only = client_only;
        self
    }
    pub fn with_strict_local_limits(mut self, strict: bool) -> Self {
        self.strict_local_limits = strict;
        self
    }
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }
    /// Keep the node's state in `dir` across restarts (see [`Config::data_dir`]).
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Check the settings for values the protocol cannot run with.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: &str| Err(crate::Error::InvalidArgument(m.to_owned()));
        if self.k == 0 || self.k > MAX_K {
            return bad("k must be between 1 and 1000");
        }
        if self.alpha == 0 || self.alpha > 100 {
            return bad("alpha must be between 1 and 100");
        }
        if self.rpc_timeout.is_zero() {
            return bad("rpc_timeout must be positive");
        }
        if self.max_failures == 0 {
            return bad("max_failures must be at least 1");
        }
        if self.max_pending_rpcs < self.alpha {
            return bad("max_pending_rpcs must be at least alpha");
        }
        if self.max_contacts_per_subnet_per_bucket == 0 || self.max_contacts_per_ip == 0 {
            return bad("contact limits must be at least 1");
        }
        if self.operation_timeout.is_zero() {
            return bad("operation_timeout must be positive");
        }
        if self.maintenance_interval.is_zero() {
            return bad("maintenance_interval must be positive");
        }
        if self.neighbour_check_interval.is_zero() {
            return bad("neighbour_check_interval must be positive");
        }
        if self
            .data_dir
            .as_ref()
            .is_some_and(|dir| dir.as_os_str().is_empty())
        {
            return bad("data_dir must name a directory, not be empty");
        }
        Ok(())
    }
}
