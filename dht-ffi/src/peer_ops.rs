//! The operations that take peer addresses, kad_node_bootstrap and
//! kad_node_ping, blocking and asynchronous (conventions as in `ops`). Host
//! names are resolved on the calling thread by the blocking calls, on the
//! runtime by the _async ones (see `addr`).

use std::ffi::{c_char, c_void};
use std::time::{Duration, Instant};

use dht_core::{Node, NodeId};

use crate::addr::{parse_list, parse_one, resolve, resolve_all, resolve_here, PeerAddr};
use crate::callback::{
    deliver_count, kad_bootstrap_callback, kad_ping_callback, spawn_with_callback, Userdata,
};
use crate::cancel::{kad_cancel_token, Cancel};
use crate::error::{kad_result, Failure};
use crate::key::{check_id_buffer, write_id, KAD_ID_LEN};
use crate::node::{entry_from_handle, kad_node, node_from_handle};
use crate::ops::write_opt;
use crate::runtime::{block_on, ensure_not_runtime_thread};
use crate::stats::{timed, Op};

// ---------------------------------------------------------------- helpers --

async fn ping(node: Node, addr: PeerAddr) -> Result<NodeId, Failure> {
    let addrs = resolve(addr, &node).await?;
    let mut last = None;
    // A name may resolve to several addresses: the first that answers wins.
    for a in addrs {
        match node.ping(a).await {
            Ok(id) => return Ok(id),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || Failure::new(kad_result::KAD_BAD_ADDRESS, "address has no address"),
        Failure::from,
    ))
}

async fn bootstrap(node: Node, addrs: Vec<PeerAddr>) -> Result<usize, Failure> {
    let addrs = resolve_all(addrs, &node).await?;
    let found = node.bootstrap(&addrs).await?;
    if found.is_empty() {
        let asked = if addrs.is_empty() {
            "no address given and no known contact answered".to_owned()
        } else {
            format!("no peer answered (asked {addrs:?} and any known contacts)")
        };
        return Err(Failure::new(
            kad_result::KAD_NO_PEERS,
            format!("bootstrap found no peers: {asked}"),
        ));
    }
    Ok(found.len())
}

/// For a blocking call: resolve host names on the calling thread (never on
/// the callback pool, which callbacks waiting for this thread could fill),
/// after checking that this thread may block at all. Returns the addresses
/// and what is left of `timeout_ms` (0 = no limit), KAD_TIMEOUT if the
/// names took all of it.
fn resolve_before(
    addrs: Vec<PeerAddr>,
    node: &Node,
    timeout_ms: u32,
) -> Result<(Vec<PeerAddr>, u32), Failure> {
    if !addrs.iter().any(|a| matches!(a, PeerAddr::Name(_))) {
        return Ok((addrs, timeout_ms));
    }
    ensure_not_runtime_thread()?;
    let started = Instant::now();
    let limit = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(timeout_ms)));
    let addrs = resolve_here(addrs, node, limit)?;
    if timeout_ms == 0 {
        return Ok((addrs, 0));
    }
    let spent = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
    match timeout_ms.checked_sub(spent) {
        Some(left) if left > 0 => Ok((addrs, left)),
        _ => Err(Failure::new(
            kad_result::KAD_TIMEOUT,
            format!("resolving the host names took more than {timeout_ms} ms"),
        )),
    }
}

// -------------------------------------------------------------- bootstrap --

/// Join the network: ping every address in `addrs` ("host:port" strings,
/// `addrs_len` of them; names are resolved first, on the calling thread,
/// within `timeout_ms`), then look
/// up the node's own id. Contacts already known (e.g. imported with
/// kad_node_import_routing_table) also seed the lookup, so `addrs_len` may
/// be 0 (then `addrs` may be NULL). On success `*contacts_out` (may be NULL)
/// receives the number of contacts found.
///
/// KAD_NO_PEERS if nobody answered, KAD_BAD_ADDRESS at once for an
/// unparsable address or one this node can never reach (port 0, an IPv6
/// peer on an IPv4 node; 0.0.0.0 means this host; see kad_node_ping) and for
/// a name that
/// does not resolve, KAD_TIMEOUT after `timeout_ms` (0 = no limit). Blocking;
/// KAD_WRONG_THREAD inside a callback.
#[no_mangle]
pub unsafe extern "C" fn kad_node_bootstrap(
    node: *mut kad_node,
    addrs: *const *const c_char,
    addrs_len: usize,
    timeout_ms: u32,
    contacts_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        let n = try_ffi!(node_from_handle(node));
        // SAFETY: forwarded contract.
        let addrs = try_ffi!(unsafe { parse_list(addrs, addrs_len, &n) });
        let (addrs, timeout_ms) = try_ffi!(resolve_before(addrs, &n, timeout_ms));
        let found = try_ffi!(block_on(timeout_ms, bootstrap(n, addrs)));
        write_opt(contacts_out, found);
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_bootstrap: returns at once (host names are resolved
/// later, never on the calling thread; a name that does not resolve is
/// reported to the callback as KAD_BAD_ADDRESS); `callback` (may be NULL
/// to ignore the outcome) is then called exactly once with `userdata`, on a
/// library thread.
#[no_mangle]
pub unsafe extern "C" fn kad_node_bootstrap_async(
    node: *mut kad_node,
    addrs: *const *const c_char,
    addrs_len: usize,
    timeout_ms: u32,
    callback: kad_bootstrap_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        let n = e.node.clone();
        // SAFETY: forwarded contract.
        let addrs = try_ffi!(unsafe { parse_list(addrs, addrs_len, &n) });
        let ticket = try_ffi!(e.promise_callback());
        let ud = Userdata::new(userdata);
        // SAFETY: forwarded contract.
        let cancel = unsafe { Cancel::from_ptr(cancel) };
        try_ffi!(spawn_with_callback(ticket, cancel, timeout_ms, bootstrap(n, addrs), deliver_count(callback, ud)));
        kad_result::KAD_OK
    }
}

// ------------------------------------------------------------------- ping --

/// Ping the node at `addr` ("host:port"; a name is resolved first, on the
/// calling thread, within `timeout_ms`). On success its KAD_ID_LEN-byte id
/// is copied to `id_out` if that is not NULL (`id_out_len` at least
/// KAD_ID_LEN, else KAD_BUFFER_TOO_SMALL before anything is sent).
///
/// KAD_BAD_ADDRESS at once for an address this node can never reach: port
/// 0, or another IP family than the
/// node's socket (IPv6 on a node bound to an IPv4 address; a node bound to
/// "::" reaches both). KAD_TIMEOUT if it does not answer within the RPC
/// timeout or `timeout_ms` (0 = no extra limit). Blocking; KAD_WRONG_THREAD
/// inside a callback.
#[no_mangle]
pub unsafe extern "C" fn kad_node_ping(
    node: *mut kad_node,
    addr: *const c_char,
    timeout_ms: u32,
    id_out: *mut u8,
    id_out_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        if !id_out.is_null() {
            try_ffi!(check_id_buffer(id_out, id_out_len));
        }
        let e = try_ffi!(entry_from_handle(node));
        let n = e.node.clone();
        // SAFETY: forwarded contract.
        let a = try_ffi!(unsafe { parse_one(addr, &n) });
        let (mut a, timeout_ms) = try_ffi!(resolve_before(vec![a], &n, timeout_ms));
        let Some(a) = a.pop() else {
            return Failure::new(kad_result::KAD_BAD_ADDRESS, "no address").report();
        };
        let id = try_ffi!(block_on(timeout_ms, timed(&e, Op::Ping, ping(n, a))));
        if !id_out.is_null() {
            // SAFETY: buffer checked above.
            unsafe { write_id(&id, id_out, id_out_len) };
        }
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_ping: returns at once (a host name is resolved
/// later, never on the calling thread); `callback` (may be NULL) is called
/// exactly once with `userdata` on a library thread.
#[no_mangle]
pub unsafe extern "C" fn kad_node_ping_async(
    node: *mut kad_node,
    addr: *const c_char,
    timeout_ms: u32,
    callback: kad_ping_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        let n = e.node.clone();
        // SAFETY: forwarded contract.
        let a = try_ffi!(unsafe { parse_one(addr, &n) });
        let ticket = try_ffi!(e.promise_callback());
        let ud = Userdata::new(userdata);
        // SAFETY: forwarded contract.
        let cancel = unsafe { Cancel::from_ptr(cancel) };
        try_ffi!(spawn_with_callback(ticket, cancel, timeout_ms, timed(&e, Op::Ping, ping(n, a)), move |r| {
            let Some(cb) = callback else { return };
            match r {
                // SAFETY: C callback; `id` lives until it returns.
                Ok(id) => unsafe { cb(ud.get(), kad_result::KAD_OK, id.as_bytes().as_ptr(), KAD_ID_LEN) },
                // SAFETY: C callback with the caller's own userdata.
                Err(f) => unsafe { cb(ud.get(), f.code, std::ptr::null(), 0) },
            }
        }));
        kad_result::KAD_OK
    }
}
