//! Node handles: creation, lifetime, getters.
//!
//! A `kad_node *` is not the address of a Rust object but a token looked up
//! in a table of live nodes on every call. That makes misuse harmless: after
//! kad_node_free, every call with the old handle returns KAD_INVALID_HANDLE
//! and a second kad_node_free does nothing, instead of touching freed memory.
//! Tokens are never reused. The table lock is held only to look up or remove
//! an entry, never while a node operation or a callback runs.

use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use dht_core::{Config, Node};
use tokio::sync::watch;

use crate::callback::{deliver_on_callback_thread, Userdata};
use crate::config::kad_config;
use crate::error::{kad_result, Failure};
use crate::key::{check_id_buffer, check_out_buffer, write_id};
use crate::runtime::{
    check_not_forked, ensure_may_wait, ensure_not_runtime_thread, run_blocking, runtime,
    wait_on_runtime,
};
use crate::stats::Latency;

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

/// Called once by kad_node_shutdown_async when the node's socket is closed
/// and every callback of the node's operations has returned. `result` is
/// KAD_OK.
pub type kad_shutdown_callback =
    Option<unsafe extern "C-unwind" fn(userdata: *mut c_void, result: kad_result)>;

/// What the table holds per handle: the node, and the bookkeeping that lets
/// a caller wait until the node's last callback has returned.
pub(crate) struct Entry {
    pub(crate) node: Node,
    /// Durations of the node's successful operations (see kad_stat).
    pub(crate) latency: Latency,
    callbacks: watch::Sender<Callbacks>,
}

#[derive(Clone, Copy, Default)]
struct Callbacks {
    /// Callbacks promised (an _async call returned KAD_OK) and not yet returned.
    outstanding: usize,
    /// Callbacks of kad_node_shutdown_async not yet returned. Counted apart
    /// from `outstanding` because each of them waits for `outstanding` to
    /// reach 0 (it must come last) and would otherwise wait for itself;
    /// kad_node_free_wait waits for both.
    last: usize,
    /// Set by shutdown/free: from then on _async calls are refused, so the
    /// count can only fall and "drained" stays true once reached.
    closing: bool,
}

/// Proof that one callback is owed; dropping it (after the callback
/// returned, or if it could not be delivered) settles the debt.
pub(crate) struct CallbackTicket(Arc<Entry>);

impl Drop for CallbackTicket {
    fn drop(&mut self) {
        self.0.callbacks.send_modify(|c| c.outstanding -= 1);
    }
}

/// Like [`CallbackTicket`] for a shutdown callback (see `Callbacks::last`).
struct LastCallbackTicket(Arc<Entry>);

impl Drop for LastCallbackTicket {
    fn drop(&mut self) {
        self.0.callbacks.send_modify(|c| c.last -= 1);
    }
}

impl Entry {
    /// Count one more callback, unless the node is shutting down.
    pub(crate) fn promise_callback(self: &Arc<Self>) -> Result<CallbackTicket, Failure> {
        let mut refused = false;
        self.callbacks.send_if_modified(|c| {
            refused = c.closing;
            if !refused {
                c.outstanding += 1;
            }
            !refused
        });
        if refused {
            return Err(shut_down());
        }
        Ok(CallbackTicket(self.clone()))
    }

    /// Count a shutdown callback. Never refused: kad_node_shutdown_async
    /// may be called again on a node already closing.
    fn promise_last_callback(self: &Arc<Self>) -> LastCallbackTicket {
        self.callbacks.send_modify(|c| c.last += 1);
        LastCallbackTicket(self.clone())
    }

    fn start_closing(&self) {
        self.callbacks.send_modify(|c| c.closing = true);
        self.node.shutdown();
    }

    /// Resolves when the socket is closed and no callback of an operation
    /// is outstanding; with `with_last`, no shutdown callback either.
    fn drained(
        self: &Arc<Self>,
        with_last: bool,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let entry = self.clone();
        async move {
            entry.node.closed().await;
            let mut rx = entry.callbacks.subscribe();
            let _ = rx
                .wait_for(|c| c.outstanding == 0 && (!with_last || c.last == 0))
                .await;
        }
    }
}

fn shut_down() -> Failure {
    Failure::new(
        kad_result::KAD_SHUT_DOWN,
        "the node was shut down (kad_node_shutdown or kad_node_free)",
    )
}

static NODES: OnceLock<Mutex<HashMap<usize, Arc<Entry>>>> = OnceLock::new();
/// Tokens are multiples of 16, so that they look like aligned pointers in a
/// debugger and never equal NULL.
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

fn nodes() -> MutexGuard<'static, HashMap<usize, Arc<Entry>>> {
    // A panic while holding the lock cannot leave the map half-updated
    // (insert/remove/get are single calls), so poisoning is ignored.
    NODES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The table entry behind a handle. KAD_FORKED in a forked child (checked
/// before the table lock, which a parent thread may have held at fork time).
pub(crate) fn entry_from_handle(handle: *const kad_node) -> Result<Arc<Entry>, Failure> {
    if handle.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `node` is NULL",
        ));
    }
    check_not_forked()?;
    nodes().get(&(handle as usize)).cloned().ok_or_else(|| {
        Failure::new(
            kad_result::KAD_INVALID_HANDLE,
            "node handle is not a live node (already freed?)",
        )
    })
}

/// The node behind a handle, for the functions of this crate (and of other
/// C ABI modules such as a VoidPhone API server).
pub fn node_from_handle(handle: *const kad_node) -> Result<Node, Failure> {
    entry_from_handle(handle).map(|e| e.node.clone())
}

/// Create a node from `config` (NULL means all defaults; the config is
/// copied, the caller keeps ownership of it) and start it on the library's
/// threads. On success `*node_out` receives a handle the caller owns and must
/// release with kad_node_free.
///
/// Blocking (binds the socket); KAD_WRONG_THREAD inside a callback.
/// KAD_INVALID_ARGUMENT for inconsistent settings (e.g. max_pending_rpcs <
/// alpha), KAD_NETWORK_ERROR if the address cannot be bound, KAD_FORKED in
/// a child process forked after the library was first used.
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
        let bound = try_ffi!(run_blocking(rt, Node::bind(config)));
        let node = try_ffi!(bound.map_err(Failure::from));
        if let Some(doorbell) = crate::runtime::doorbell() {
            node.ring_through(doorbell);
        }
        let entry = Arc::new(Entry {
            node,
            latency: Latency::default(),
            callbacks: watch::Sender::new(Callbacks::default()),
        });
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed) * 16;
        nodes().insert(token, entry);
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *node_out = token as *mut kad_node };
        kad_result::KAD_OK
    }
}

/// Remove a handle from the table (later calls see KAD_INVALID_HANDLE) and
/// start shutting its node down.
fn remove(node: *mut kad_node) -> Result<Option<Arc<Entry>>, Failure> {
    check_not_forked()?;
    let removed = nodes().remove(&(node as usize));
    if let Some(e) = &removed {
        e.start_closing();
    }
    Ok(removed)
}

/// Shut the node down, release the handle, and return once its socket is
/// closed (the port can be bound again at once). Operations still running
/// end with KAD_SHUT_DOWN; their callbacks still run, exactly once, possibly
/// after this returns (use kad_node_free_wait to wait for them). NULL, and a
/// handle that was already freed, are ignored.
///
/// May be called from a callback (it waits for the socket on another
/// thread); from a log callback it does not wait. In a forked child it does
/// nothing (see KAD_FORKED).
#[no_mangle]
pub extern "C" fn kad_node_free(node: *mut kad_node) {
    ffi_panic_boundary! {
        match remove(node) {
            Ok(Some(e)) => {
                let n = e.node.clone();
                if let Err(f) = wait_on_runtime(None, async move { n.closed().await }) {
                    f.report();
                }
            }
            Ok(None) => {}
            Err(f) => {
                f.report();
            }
        }
    }
}

/// Like kad_node_free, then also wait until every callback of this node's
/// operations has returned, and the callback of every
/// kad_node_shutdown_async call made before, so that nothing the callbacks
/// use can be destroyed too early (e.g. before returning from main).
/// `timeout_ms` 0 waits as long as it takes.
///
/// The handle is released in every case except KAD_WRONG_THREAD.
/// KAD_TIMEOUT if callbacks were still running after `timeout_ms` (they
/// still run, exactly once). KAD_WRONG_THREAD inside a callback (it would
/// wait for itself); nothing is done then. Unlike kad_node_free, which
/// ignores them, NULL is KAD_NULL_POINTER and a handle already freed
/// KAD_INVALID_HANDLE: a caller waiting for callbacks learns that there was
/// nothing to wait for. KAD_FORKED in a forked child.
#[no_mangle]
pub extern "C" fn kad_node_free_wait(node: *mut kad_node, timeout_ms: u32) -> kad_result {
    ffi_panic_boundary! {
        try_ffi!(entry_from_handle(node));
        try_ffi!(ensure_not_runtime_thread());
        let Some(e) = try_ffi!(remove(node)) else {
            return Failure::new(kad_result::KAD_INVALID_HANDLE, "node handle already freed").report();
        };
        let limit = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
        match try_ffi!(wait_on_runtime(limit, e.drained(true))) {
            Some(()) => kad_result::KAD_OK,
            None => Failure::new(
                kad_result::KAD_TIMEOUT,
                format!("callbacks still running after {timeout_ms} ms"),
            )
            .report(),
        }
    }
}

/// Stop the node and return once its socket is closed: pending operations
/// fail with KAD_SHUT_DOWN (their callbacks still run, exactly once), later
/// operations return KAD_SHUT_DOWN at once (an _async call then never calls
/// its callback), getters keep working. Idempotent. The handle still has to
/// be released with kad_node_free. May be called from a callback.
///
/// From a log callback (a worker thread, where it cannot wait) it returns
/// KAD_WRONG_THREAD and does nothing, as every call that waits does there;
/// use kad_node_shutdown_async in a log callback.
#[no_mangle]
pub extern "C" fn kad_node_shutdown(node: *mut kad_node) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        // Refuse before closing anything: KAD_WRONG_THREAD means nothing was done.
        try_ffi!(ensure_may_wait());
        e.start_closing();
        let n = e.node.clone();
        try_ffi!(wait_on_runtime(None, async move { n.closed().await }));
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_shutdown: stops the node and returns at once;
/// `callback` (may be NULL) is then called exactly once with `userdata` and
/// KAD_OK, on a library callback thread, after the socket is closed and
/// after every other callback of this node has returned (so it is the last
/// call the library makes about this node). The handle stays valid until
/// kad_node_free, which may be called from inside `callback`.
#[no_mangle]
pub unsafe extern "C" fn kad_node_shutdown_async(
    node: *mut kad_node,
    callback: kad_shutdown_callback,
    userdata: *mut c_void,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        let rt = try_ffi!(runtime());
        // Counted before this returns, so that a kad_node_free_wait right
        // after it waits for this callback too.
        let ticket = e.promise_last_callback();
        e.start_closing();
        let ud = Userdata::new(userdata);
        let drained = e.drained(false);
        rt.spawn(async move {
            drained.await;
            deliver_on_callback_thread(move || {
                if let Some(cb) = callback {
                    // SAFETY: the caller's C callback, with the caller's own userdata.
                    unsafe { cb(ud.get(), kad_result::KAD_OK) };
                }
                drop(ticket);
            });
        });
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

/// Room for the longest address kad_node_public_address writes
/// (`[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535`) and its NUL.
pub const KAD_ADDRESS_MAX_LEN: usize = 48;

/// Write the node's public address as its peers see it ("ip:port", or
/// `[ip]:port` for IPv6; behind a NAT, the NAT's address) into `addr_out`,
/// NUL-terminated, and its length without the NUL into `*written_out`
/// (`written_out` may be NULL). `addr_out_len` >= KAD_ADDRESS_MAX_LEN is
/// always enough.
///
/// kadmium peers tell a node where its requests came from in their answers
/// (Python peers do not); the address is known once at least two peer IPs
/// agree on it, so one lying peer cannot set it. Loopback and private
/// addresses count like public ones. It can change while the node runs
/// (when the NAT's mapping does). Never blocks.
///
/// KAD_NOT_FOUND while fewer than two peer IPs agree (e.g. right after
/// kad_node_new, or among Python peers only). KAD_BUFFER_TOO_SMALL if the
/// address and its NUL do not fit (the detail says how many bytes it needs);
/// nothing is written then: an address is never truncated. KAD_NULL_POINTER
/// for a NULL `addr_out`.
#[no_mangle]
pub unsafe extern "C" fn kad_node_public_address(
    node: *const kad_node,
    addr_out: *mut c_char,
    addr_out_len: usize,
    written_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        try_ffi!(check_out_buffer(addr_out, addr_out_len, "argument `addr_out`"));
        let n = try_ffi!(node_from_handle(node));
        let Some(addr) = n.public_address() else {
            return Failure::new(
                kad_result::KAD_NOT_FOUND,
                "public address not known yet: fewer than 2 peer IPs agree on it",
            )
            .report();
        };
        let text = addr.to_string();
        if text.len() >= addr_out_len {
            return Failure::new(
                kad_result::KAD_BUFFER_TOO_SMALL,
                format!("public address {text} needs {} bytes, got {addr_out_len}", text.len() + 1),
            )
            .report();
        }
        // SAFETY: `addr_out` holds `addr_out_len` bytes (caller's contract),
        // more than the text and its NUL, checked above.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), addr_out.cast::<u8>(), text.len());
            *addr_out.add(text.len()) = 0;
        }
        if !written_out.is_null() {
            // SAFETY: non-NULL out-parameter provided by the caller.
            unsafe { *written_out = text.len() };
        }
        kad_result::KAD_OK
    }
}

#[cfg(test)]
mod public_address_tests {
    use super::KAD_ADDRESS_MAX_LEN;

    #[test]
    fn the_longest_address_fits() {
        let longest: std::net::SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
            .parse()
            .expect("addr");
        assert_eq!(longest.to_string().len() + 1, KAD_ADDRESS_MAX_LEN);
    }
}
