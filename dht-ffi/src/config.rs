//! Node configuration as an opaque object with setters, so that new settings
//! can be added without changing the layout C programs were compiled against.

use std::ffi::{c_char, CStr};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dht_core::{Config, NodeId};

use crate::error::{kad_result, Failure};
use crate::key::{slice, KAD_ID_LEN};

/// Settings for kad_node_new. Created by kad_config_new with the defaults
/// documented on each setter, released with kad_config_free. Not thread-safe
/// to modify from several threads at once; kad_node_new copies it, so it can
/// be reused or freed right after.
pub struct kad_config {
    pub(crate) inner: Config,
}

/// A new configuration with all defaults (bind 0.0.0.0 port 0, k 20, alpha 3,
/// RPC timeout 2000 ms, random node id). The caller owns it; release it with
/// kad_config_free. Never returns NULL (aborts if memory is exhausted).
#[no_mangle]
pub extern "C" fn kad_config_new() -> *mut kad_config {
    ffi_panic_boundary! {
        Box::into_raw(Box::new(kad_config { inner: Config::default() }))
    }
}

/// Release a configuration. NULL is ignored; freeing twice is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn kad_config_free(config: *mut kad_config) {
    ffi_panic_boundary! {
        if !config.is_null() {
            // SAFETY: from Box::into_raw in kad_config_new; ownership ends here.
            drop(unsafe { Box::from_raw(config) });
        }
    }
}

/// UDP address to bind: `host` is an IP literal ("127.0.0.1", "::1",
/// "0.0.0.0"; names are not resolved, a bind address must be exact); `port`
/// 0 picks a free port (see kad_node_port). Default 0.0.0.0 port 0.
/// "::" binds one dual-stack socket (IPV6_V6ONLY off, whatever the system
/// default): the node then serves IPv4 and IPv6 peers on that one port.
/// KAD_BAD_ADDRESS if `host` is not an IP address.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_bind(
    config: *mut kad_config,
    host: *const c_char,
    port: u16,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        let host = try_ref!(host);
        // SAFETY: non-NULL, NUL-terminated per the contract.
        let host = unsafe { CStr::from_ptr(host) };
        let Some(ip) = host.to_str().ok().and_then(|h| h.parse::<IpAddr>().ok()) else {
            return Failure::new(
                kad_result::KAD_BAD_ADDRESS,
                format!("bind host {host:?} is not an IP address"),
            )
            .report();
        };
        config.inner.bind = SocketAddr::new(ip, port);
        kad_result::KAD_OK
    }
}

/// Replication factor and bucket size k, 1 to 1000 (the three furthest
/// buckets hold 4k, 2k and 2k contacts). Default 20.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_k(config: *mut kad_config, k: usize) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("k", k, 1, dht_core::config::MAX_K));
        config.inner.k = k;
        kad_result::KAD_OK
    }
}

/// Lookup parallelism alpha, 1 to 100. Default 3.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_alpha(config: *mut kad_config, alpha: usize) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("alpha", alpha, 1, 100));
        config.inner.alpha = alpha;
        kad_result::KAD_OK
    }
}

/// How long to wait for one RPC reply, in milliseconds (at least 1). Default 2000.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_rpc_timeout_ms(
    config: *mut kad_config,
    timeout_ms: u32,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("rpc timeout", timeout_ms as usize, 1, usize::MAX));
        config.inner.rpc_timeout = Duration::from_millis(u64::from(timeout_ms));
        kad_result::KAD_OK
    }
}

/// Consecutive missed replies after which a contact is dropped (at least 1;
/// values above 15 count as 15). Default 3.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_max_failures(
    config: *mut kad_config,
    max_failures: u32,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("max failures", max_failures as usize, 1, usize::MAX));
        config.inner.max_failures = max_failures;
        kad_result::KAD_OK
    }
}

/// Use the `id_len` bytes at `id` (exactly KAD_ID_LEN) as the node id instead
/// of a random one. KAD_INVALID_ARGUMENT for another length.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_node_id(
    config: *mut kad_config,
    id: *const u8,
    id_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        let id = try_ref!(id);
        // SAFETY: the caller provides `id_len` readable bytes.
        let bytes = try_ffi!(unsafe { slice(id, id_len, "id") });
        let Some(node_id) = NodeId::from_slice(bytes) else {
            return Failure::new(
                kad_result::KAD_INVALID_ARGUMENT,
                format!("a node id is {KAD_ID_LEN} bytes, not {id_len}"),
            )
            .report();
        };
        config.inner.node_id = Some(node_id);
        kad_result::KAD_OK
    }
}

/// Largest value kad_config_set_max_value_size accepts (see there).
const MAX_VALUE_SIZE: usize = 65_400;

/// Largest value put accepts, in bytes: from 1 to 65400. Default 8137, the
/// most a Python kademlia peer can carry; raise it on networks of kadmium
/// nodes only, up to 65400, about the most one UDP datagram carries with the
/// STORE around the value (65422 measured). KAD_INVALID_ARGUMENT outside.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_max_value_size(
    config: *mut kad_config,
    max_value_size: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("max value size", max_value_size, 1, MAX_VALUE_SIZE));
        config.inner.max_value_size = max_value_size;
        kad_result::KAD_OK
    }
}

/// Limits of what this node stores for the network: number of values and
/// total bytes (each at least 1). Defaults 100000 values, 64 MiB.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_storage_limits(
    config: *mut kad_config,
    max_values: usize,
    max_bytes: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("max stored values", max_values, 1, usize::MAX));
        try_ffi!(in_range("max stored bytes", max_bytes, 1, usize::MAX));
        config.inner.max_stored_values = max_values;
        config.inner.max_stored_bytes = max_bytes;
        kad_result::KAD_OK
    }
}

/// Most RPCs awaiting a reply at once (at least alpha when the node is
/// created). Default 4096.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_max_pending_rpcs(
    config: *mut kad_config,
    max_pending_rpcs: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        try_ffi!(in_range("max pending rpcs", max_pending_rpcs, 1, usize::MAX));
        config.inner.max_pending_rpcs = max_pending_rpcs;
        kad_result::KAD_OK
    }
}

/// Lifetime of values put with ttl_secs 0 and of values from peers that do
/// not say (default 86400 s), and the longest TTL accepted (default 604800 s).
/// Both at least 1 and default_ttl <= max_ttl.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_ttl(
    config: *mut kad_config,
    default_ttl_secs: u32,
    max_ttl_secs: u32,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        // The maximum first: checked against it, a bad maximum read as a bad
        // default ("default ttl must be between 1 and 0, not 5").
        try_ffi!(in_range("max ttl", max_ttl_secs as usize, 1, usize::MAX));
        try_ffi!(in_range("default ttl", default_ttl_secs as usize, 1, max_ttl_secs as usize));
        config.inner.default_ttl = Duration::from_secs(u64::from(default_ttl_secs));
        config.inner.max_ttl = Duration::from_secs(u64::from(max_ttl_secs));
        kad_result::KAD_OK
    }
}

/// Seed of the node's random number generator, for repeatable runs in
/// tests. Default: random.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_rng_seed(config: *mut kad_config, seed: u64) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        config.inner.rng_seed = Some(seed);
        kad_result::KAD_OK
    }
}

/// Client-only node: it queries the network, but kadmium peers do not add
/// it to their routing tables (for short-lived programs). Default false.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_client_only(
    config: *mut kad_config,
    client_only: bool,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        config.inner.client_only = client_only;
        kad_result::KAD_OK
    }
}

/// Apply the per-IP limits (request rate, routing table, storage quota) to
/// loopback and private addresses too. Default false, so local test
/// networks of many nodes on one address keep working.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_strict_local_limits(
    config: *mut kad_config,
    strict: bool,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        config.inner.strict_local_limits = strict;
        kad_result::KAD_OK
    }
}

/// Keep the node's values and contacts in the directory `path` (a
/// NUL-terminated path, created if missing) across restarts; NULL turns it
/// off (the default). The path is copied. kad_node_new then fails with
/// KAD_DATA_DIR_ERROR if the directory is in use (by another process, or by
/// another node of this one not yet freed), damaged, or not writable.
#[no_mangle]
pub unsafe extern "C" fn kad_config_set_data_dir(
    config: *mut kad_config,
    path: *const c_char,
) -> kad_result {
    ffi_panic_boundary! {
        let config = try_mut!(config);
        if path.is_null() {
            config.inner.data_dir = None;
            return kad_result::KAD_OK;
        }
        // SAFETY: non-NULL, NUL-terminated per the contract.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        if bytes.is_empty() {
            return Failure::new(kad_result::KAD_INVALID_ARGUMENT, "data dir path is empty").report();
        }
        // Paths are bytes on Unix; anywhere else they must be UTF-8.
        #[cfg(unix)]
        let dir = std::path::PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes));
        #[cfg(not(unix))]
        let dir = match std::str::from_utf8(bytes) {
            Ok(s) => std::path::PathBuf::from(s),
            Err(_) => {
                return Failure::new(kad_result::KAD_INVALID_ARGUMENT, "data dir path is not UTF-8")
                    .report()
            }
        };
        config.inner.data_dir = Some(dir);
        kad_result::KAD_OK
    }
}

fn in_range(what: &str, v: usize, lo: usize, hi: usize) -> Result<(), Failure> {
    if v < lo || v > hi {
        let range = if hi == usize::MAX {
            format!("at least {lo}")
        } else {
            format!("between {lo} and {hi}")
        };
        return Err(Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("{what} must be {range}, not {v}"),
        ));
    }
    Ok(())
}
