//! What Python passes, checked and turned into the core's types: keys,
//! seconds, host names, and a node's settings. Each failure is an
//! `InvalidArgument` (Python's `ValueError`) naming the argument, or a
//! `BadAddress` for a host that does not resolve.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Config, Error, Key, Node, NodeId, PutOptions};
use pyo3::prelude::*;
use tracing::warn;

use crate::error::KadError;
use crate::storage::{PythonStorage, ViewedMemory};

/// Longest RPC timeout accepted (longer asks are capped to it).
const MAX_RPC_TIMEOUT: Duration = Duration::from_secs(3600);

pub(crate) fn key_from(key: &[u8]) -> Result<Key, KadError> {
    NodeId::from_slice(key).ok_or_else(|| {
        KadError(Error::InvalidArgument(format!(
            "keys and node ids are 20 bytes (got {})",
            key.len()
        )))
    })
}

/// A positive number of seconds. Values too large for a `Duration` (1e20,
/// inf) saturate: every such setting is capped further on (a TTL at
/// `Config::max_ttl`; a timeout that long never fires).
pub(crate) fn seconds(what: &str, secs: f64) -> Result<Duration, KadError> {
    if secs.is_nan() || secs <= 0.0 {
        return Err(KadError(Error::InvalidArgument(format!(
            "{what} must be a positive number of seconds (got {secs:?})"
        ))));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(KadError(Error::InvalidArgument(format!(
            "{what} must be at least a nanosecond (got {secs:?})"
        )))),
        Err(_) => Ok(Duration::MAX),
    }
}

/// Resolve `host:port`, preferring the address family of `like` (a node bound
/// to 127.0.0.1 cannot reach ::1 even if "localhost" resolves there first).
pub(crate) async fn resolve(
    host: &str,
    port: u16,
    like: Option<SocketAddr>,
) -> Result<SocketAddr, KadError> {
    let bad = || KadError(Error::BadAddress(format!("{host}:{port}")));
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| bad())?
        .collect();
    let preferred = like.and_then(|l| addrs.iter().find(|a| a.is_ipv4() == l.is_ipv4()));
    preferred.or(addrs.first()).copied().ok_or_else(bad)
}

/// The addresses of `addrs` that resolve; those that do not are skipped
/// (with a warning), as a node's bootstrap skips unusable ones: one stale
/// name among a saved state's neighbours must not fail the whole join. With
/// none resolving, the first one's error alone (no warnings: the error says
/// it, once).
pub(crate) async fn resolve_usable(
    addrs: Vec<(String, u16)>,
    like: SocketAddr,
) -> Result<Vec<SocketAddr>, KadError> {
    let mut out = Vec::with_capacity(addrs.len());
    let mut errors = Vec::new();
    for (host, port) in addrs {
        match resolve(&host, port, Some(like)).await {
            Ok(addr) => out.push(addr),
            Err(e) => errors.push(e),
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(e) if out.is_empty() => Err(e),
        first => {
            for e in first.into_iter().chain(errors) {
                warn!("skipping a bootstrap address: {}", e.0);
            }
            Ok(out)
        }
    }
}

/// Everything `bind` needs, owned, so it can cross into the runtime.
pub(crate) struct BindArgs {
    host: String,
    port: u16,
    config: Config,
    /// A Python `IStorage` to keep values in; the default storage otherwise.
    storage: Option<Py<PyAny>>,
    /// The default storage of a stopped node, to go on with what it held.
    memory: Option<TakenMemory>,
}

/// What [`BindArgs::bind`] made.
pub(crate) struct BoundNode {
    pub node: Node,
    pub memory: Option<ViewedMemory>,
    /// The mark of the stopped node whose default storage `node` took over:
    /// cleared, that storage can be taken again.
    pub values_from: Option<Arc<AtomicBool>>,
}

/// A stopped node's default storage, taken for the node being bound: no
/// other bind can take it meanwhile, and it is given back (can be taken
/// again) if this bind fails.
pub(crate) struct TakenMemory {
    memory: ViewedMemory,
    /// The stopped node's mark that its storage was taken.
    taken: Arc<AtomicBool>,
    /// Set once the new node runs on it: the mark then stays.
    kept: bool,
}

impl TakenMemory {
    pub(crate) fn take(memory: ViewedMemory, taken: &Arc<AtomicBool>) -> Result<Self, KadError> {
        if taken.swap(true, Ordering::SeqCst) {
            return Err(KadError(Error::InvalidArgument(
                "values_of: that node's values were already passed on to another node".into(),
            )));
        }
        Ok(TakenMemory {
            memory,
            taken: taken.clone(),
            kept: false,
        })
    }
}

impl Drop for TakenMemory {
    fn drop(&mut self) {
        if !self.kept {
            self.taken.store(false, Ordering::SeqCst);
        }
    }
}

impl BindArgs {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        host: String,
        port: u16,
        k: usize,
        alpha: usize,
        node_id: Option<Vec<u8>>,
        rpc_timeout: Option<f64>,
        max_value_size: Option<usize>,
        default_ttl: Option<f64>,
    ) -> Result<Self, KadError> {
        let mut config = Config {
            k,
            alpha,
            ..Config::default()
        };
        if let Some(id) = node_id {
            config.node_id = Some(key_from(&id)?);
        }
        if let Some(t) = rpc_timeout {
            // Deadlines are `now + rpc_timeout`: keep it far from overflowing.
            config.rpc_timeout = seconds("rpc_timeout", t)?.min(MAX_RPC_TIMEOUT);
        }
        if let Some(m) = max_value_size {
            config.max_value_size = m;
        }
        if let Some(t) = default_ttl {
            config.default_ttl = seconds("default_ttl", t)?.min(config.max_ttl);
        }
        Ok(BindArgs {
            host,
            port,
            config,
            storage: None,
            memory: None,
        })
    }

    pub(crate) fn with_storage(mut self, storage: Option<Py<PyAny>>) -> Self {
        self.storage = storage;
        self
    }

    /// Go on with the values `memory` (a stopped node's default storage)
    /// holds, each with the expiry it had. Not with a data directory, whose
    /// values come from disk.
    pub(crate) fn with_memory(mut self, memory: Option<TakenMemory>) -> Result<Self, KadError> {
        if memory.is_some() && self.config.data_dir.is_some() {
            return Err(KadError(Error::InvalidArgument(
                "values_of cannot be combined with data_dir (its values come from disk)".into(),
            )));
        }
        self.memory = memory;
        Ok(self)
    }

    /// `client_only`: kadmium peers do not add this node to their routing
    /// tables (short-lived scripts and CLI runs); `strict_local_limits`: the per-IP request limit
    /// also applies to loopback and private addresses.
    pub(crate) fn with_modes(mut self, client_only: bool, strict_local_limits: bool) -> Self {
        self.config.client_only = client_only;
        self.config.strict_local_limits = strict_local_limits;
        self
    }

    /// Keep the node's values and contacts in `dir` across restarts.
    pub(crate) fn with_data_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.config.data_dir = dir;
        self
    }

    /// Testing: the unix time (seconds) the node assumes at its start
    /// instead of the system clock's (`Config::unix_time_at_start`); with a
    /// data directory, saved expiries are read against it.
    pub(crate) fn with_wall_clock(mut self, unix_secs: Option<f64>) -> Result<Self, KadError> {
        if let Some(t) = unix_secs {
            if !(0.0..1e15).contains(&t) {
                return Err(KadError(Error::InvalidArgument(format!(
                    "unix_time_at_start must be a unix time in seconds (got {t})"
                ))));
            }
            self.config.unix_time_at_start = Some(t as u64);
        }
        Ok(self)
    }

    /// The node, its default storage (None with a Python storage object),
    /// and the mark of the stopped node whose storage it took over, if any.
    pub(crate) async fn bind(self) -> Result<BoundNode, KadError> {
        let mut config = self.config;
        config.bind = resolve(&self.host, self.port, None).await?;
        let (max_values, max_bytes) = (config.max_stored_values, config.max_stored_bytes);
        let bound = match self.storage {
            Some(object) => {
                // On a runtime thread: through the exit gate, as every call
                // into Python from there.
                let storage = crate::exit_gate::attached(|py| {
                    PythonStorage::new(py, object, max_values, max_bytes)
                })
                .ok_or(KadError(Error::Shutdown))?;
                BoundNode {
                    node: Node::bind_with_storage(config, Box::new(storage)).await?,
                    memory: None,
                    values_from: None,
                }
            }
            None => {
                let mut taken = self.memory;
                let memory = match &taken {
                    Some(t) => t.memory.clone(),
                    None => ViewedMemory::new(max_values, max_bytes),
                };
                let node = Node::bind_with_storage(config, Box::new(memory.clone())).await?;
                if let Some(t) = &mut taken {
                    t.kept = true;
                }
                BoundNode {
                    node,
                    memory: Some(memory),
                    values_from: taken.map(|t| t.taken.clone()),
                }
            }
        };
        if let Some(doorbell) = crate::runtime::doorbell() {
            bound.node.ring_through(doorbell);
        }
        Ok(bound)
    }
}

pub(crate) fn put_options(ttl: Option<f64>) -> Result<PutOptions, KadError> {
    let mut options = PutOptions::default();
    options.ttl = ttl.map(|t| seconds("ttl", t)).transpose()?;
    Ok(options)
}
