//! Node handles: creation, lifetime, getters.
//!
//! A `kad_node *` is not the address of a Rust object but a token looked up
//! in a table of live nodes on every call. That makes misuse harmless: after
//! kad_node_free, every call with the old handle returns KAD_INVALID_HANDLE
//! and a second kad_node_free does nothing, instead of touching freed memory.
//! Tokens are never reused. The table lock is held only to look up or remove
//! an entry, never while a node operation or a callback runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use dht_core::{Config, Node};

use crate::config::kad_config;
use crate::error::{kad_result, Failure};
use crate::key::{check_id_buffer, write_id};
use crate::runtime::{ensure_not_runtime_thread, runtime};

/// A running DHT node: one UDP socket and the tasks serving it on the
/// library's threads. Created by kad_node_new, released with kad_node_free.
/// All functions taking a node may be called from many threads at once.
/// Node handles are checked on every call: after kad_node_free, using the
/// handle returns KAD_INVALID_HANDLE and freeing it again does nothing
/// (handles are never reused). This protection is for nodes only; freeing
/// any other object twice is undefined behaviour.
pub struct kad_node {
    _private: [u8; 0],
}

static NODES: OnceLock<Mutex<HashMap<usize, Node>>> = OnceLock::new();
/// Tokens are multiples of 16, so that they look like aligned pointers in a
/// debugger and never equal NULL.
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

fn nodes() -> MutexGuard<'static, HashMap<usize, Node>> {
    // A panic while holding the lock cannot leave the map half-updated
    // (insert/remove/get are single calls), so poisoning is ignored.
    NODES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The node behind a handle, for the functions of this crate (and of other
/// C ABI modules such as a VoidPhone API server).
pub fn node_from_handle(handle: *const kad_node) -> Result<Node, Failure> {
    if handle.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `node` is NULL",
        ));
    }
    nodes().get(&(handle as usize)).cloned().ok_or_else(|| {
        Failure::new(
            kad_result::KAD_INVALID_HANDLE,
            "node handle is not a live node (already freed?)",
        )
    })
}

/// Create a node from `config` (NULL means all defaults; the config is
/// copied, the caller keeps ownership of it) and start it on the library's
/// threads. On success `*node_out` receives a handle the caller owns and must
/// release with kad_node_free.
///
/// Blocking (binds the socket); KAD_WRONG_THREAD inside a callback.
/// KAD_INVALID_ARGUMENT for inconsistent settings (e.g. max_pending_rpcs <
/// alpha), KAD_NETWORK_ERROR if the address cannot be bound.
#[no_mangle]
pub unsafe extern "C" fn kad_node_new(
    config: *const kad_config,
    node_out: *mut *mut kad_node,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(node_out);
        let config = if config.is_null() {
            Config::default()
        } else {
            // SAFETY: non-NULL kad_config from kad_config_new, per the contract.
            unsafe { (*config).inner.clone() }
        };
        try_ffi!(ensure_not_runtime_thread());
        let rt = try_ffi!(runtime());
        // Node::bind spawns the driver task, so it must run inside the runtime.
        let node = try_ffi!(rt.block_on(Node::bind(config)).map_err(Failure::from));
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed) * 16;
        nodes().insert(token, node);
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *node_out = token as *mut kad_node };
        kad_result::KAD_OK
    }
}

/// Shut the node down and release the handle. Operations still running end
/// with KAD_SHUT_DOWN (their callbacks still run, exactly once). NULL, and a
/// handle that was already freed, are ignored. Does not block.
#[no_mangle]
pub extern "C" fn kad_node_free(node: *mut kad_node) {
    ffi_panic_boundary! {
        let removed = nodes().remove(&(node as usize));
        if let Some(n) = removed {
            n.shutdown();
        }
    }
}

/// Stop the node (close its socket, fail its pending operations with
/// KAD_SHUT_DOWN) but keep the handle valid: later operations return
/// KAD_SHUT_DOWN, getters keep working. Idempotent. The handle still has to
/// be released with kad_node_free.
#[no_mangle]
pub extern "C" fn kad_node_shutdown(node: *const kad_node) -> kad_result {
    ffi_panic_boundary! {
        let n = try_ffi!(node_from_handle(node));
        n.shutdown();
        kad_result::KAD_OK
    }
}

/// The UDP port the node is bound to (the real one when port 0 was asked).
#[no_mangle]
pub unsafe extern "C" fn kad_node_port(node: *const kad_node, port_out: *mut u16) -> kad_result {
    ffi_panic_boundary! {
        check_out!(port_out);
        let n = try_ffi!(node_from_handle(node));
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *port_out = n.local_addr().port() };
        kad_result::KAD_OK
    }
}

/// Copy the node's KAD_ID_LEN-byte id into `id_out` (`id_out_len` bytes,
/// at least KAD_ID_LEN, else KAD_BUFFER_TOO_SMALL).
#[no_mangle]
pub unsafe extern "C" fn kad_node_id(
    node: *const kad_node,
    id_out: *mut u8,
    id_out_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        try_ffi!(check_id_buffer(id_out, id_out_len));
        let n = try_ffi!(node_from_handle(node));
        // SAFETY: buffer checked above.
        unsafe { write_id(&n.id(), id_out, id_out_len) };
        kad_result::KAD_OK
    }
}
