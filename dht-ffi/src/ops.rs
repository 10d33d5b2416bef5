//! Network operations, each blocking (with a timeout in milliseconds; 0 =
//! no limit beyond the node's own RPC timeouts) and asynchronous (callback +
//! userdata). Arguments are checked and copied before anything starts: an
//! async function that returns an error never calls its callback, one that
//! returns KAD_OK calls it exactly once, later, on a library thread.

use std::ffi::c_void;
use std::future::Future;
use std::time::Duration;

use dht_core::{Key, Node, PutOptions, PutReport, Value};

use crate::callback::{
    deliver_count, kad_get_callback, kad_put_callback, spawn_with_callback, Userdata,
};
use crate::cancel::{kad_cancel_token, Cancel};
use crate::error::{kad_result, Failure};
use crate::key::{check_len, key_from_bytes, key_from_digest, slice};
use crate::node::{entry_from_handle, kad_node};
use crate::runtime::block_on;
use crate::stats::{timed, Op};
use crate::value::kad_value;

// ---------------------------------------------------------------- helpers --

/// Copy the value and options out of C memory; check the size early so the
/// caller gets KAD_VALUE_TOO_LARGE before anything is sent.
///
/// # Safety
/// `value` must be NULL (with `len` 0) or valid for `len` bytes of reads.
unsafe fn put_args(
    node: &Node,
    value: *const u8,
    len: usize,
    ttl_secs: u32,
) -> Result<(Value, PutOptions), Failure> {
    // Lengths first: no slice is built from a length no object can have.
    check_len(len, 1, "value")?;
    let max = node.config().max_value_size;
    if len > max {
        return Err(dht_core::Error::ValueTooLarge { size: len, max }.into());
    }
    // SAFETY: forwarded contract; length checked above.
    let bytes = unsafe { slice(value, len, "value")? };
    let value = Value::Bytes(bytes.to_vec());
    let options = put_options(node, &value, ttl_secs)?;
    Ok((value, options))
}

/// Options of a put, after checking the value's size against the node's
/// limit (so the caller gets KAD_VALUE_TOO_LARGE before anything is sent).
pub(crate) fn put_options(
    node: &Node,
    value: &Value,
    ttl_secs: u32,
) -> Result<PutOptions, Failure> {
    let max = node.config().max_value_size;
    if value.size() > max {
        return Err(dht_core::Error::ValueTooLarge {
            size: value.size(),
            max,
        }
        .into());
    }
    let mut options = PutOptions::default();
    options.ttl = (ttl_secs > 0).then(|| Duration::from_secs(u64::from(ttl_secs)));
    Ok(options)
}

pub(crate) async fn put(
    node: Node,
    key: Key,
    value: Value,
    options: PutOptions,
) -> Result<usize, Failure> {
    let PutReport {
        stored_remote,
        stored_locally,
        contacted,
    } = node.put(key, value, options).await?;
    let stored = stored_remote + usize::from(stored_locally);
    if stored == 0 {
        return Err(Failure::new(
            kad_result::KAD_TIMEOUT,
            format!("no node acknowledged the value ({contacted} contacted)"),
        ));
    }
    Ok(stored)
}

async fn get(node: Node, key: Key) -> Result<Value, Failure> {
    node.get(key)
        .await?
        .ok_or_else(|| Failure::new(kad_result::KAD_NOT_FOUND, format!("key {key} not found")))
}

pub(crate) fn write_opt<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: non-NULL out-parameter from the caller.
        unsafe { *out = v };
    }
}

// -------------------------------------------------------------------- put --

/// Store `value_len` bytes at `value` (copied; `value` may be NULL when
/// `value_len` is 0) under the key `key` (`key_len` >= 1 bytes, hashed with
/// SHA-1 like Python's kademlia) at the k closest nodes. `ttl_secs` 0 means
/// the node's default TTL. On success `*stored_out` (may be NULL) receives
/// the number of nodes holding the value (this node included).
///
/// KAD_INVALID_ARGUMENT for an empty key, KAD_VALUE_TOO_LARGE above the
/// node's max value size, KAD_NO_PEERS with an empty routing table,
/// KAD_TIMEOUT if no node stored it or after `timeout_ms` (0 = no limit).
/// Blocking; KAD_WRONG_THREAD inside a callback.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put(
    node: *mut kad_node,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_secs: u32,
    timeout_ms: u32,
    stored_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_bytes(key, key_len) });
        // SAFETY: forwarded contract.
        unsafe { put_blocking(node, k, value, value_len, ttl_secs, timeout_ms, stored_out) }
    }
}

/// kad_node_put with the key given as its KAD_ID_LEN-byte digest
/// (`digest_len` must be KAD_ID_LEN, else KAD_INVALID_ARGUMENT).
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_digest(
    node: *mut kad_node,
    digest: *const u8,
    digest_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_secs: u32,
    timeout_ms: u32,
    stored_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_digest(digest, digest_len) });
        // SAFETY: forwarded contract.
        unsafe { put_blocking(node, k, value, value_len, ttl_secs, timeout_ms, stored_out) }
    }
}

/// # Safety
/// As kad_node_put.
unsafe fn put_blocking(
    node: *mut kad_node,
    k: Key,
    value: *const u8,
    value_len: usize,
    ttl_secs: u32,
    timeout_ms: u32,
    stored_out: *mut usize,
) -> kad_result {
    let e = try_ffi!(entry_from_handle(node));
    let n = e.node.clone();
    // SAFETY: forwarded contract.
    let (v, options) = try_ffi!(unsafe { put_args(&n, value, value_len, ttl_secs) });
    let stored = try_ffi!(block_on(
        timeout_ms,
        timed(&e, Op::Put, put(n, k, v, options))
    ));
    write_opt(stored_out, stored);
    kad_result::KAD_OK
}

/// Asynchronous kad_node_put: arguments are checked and copied now; then
/// `callback` (may be NULL) is called exactly once with `userdata`, on a
/// library thread.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_async(
    node: *mut kad_node,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_secs: u32,
    timeout_ms: u32,
    callback: kad_put_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_bytes(key, key_len) });
        // SAFETY: forwarded contract.
        unsafe { put_async(node, k, value, value_len, ttl_secs, timeout_ms, callback, userdata, cancel) }
    }
}

/// Asynchronous kad_node_put_digest; see kad_node_put_async.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_digest_async(
    node: *mut kad_node,
    digest: *const u8,
    digest_len: usize,
    value: *const u8,
    value_len: usize,
    ttl_secs: u32,
    timeout_ms: u32,
    callback: kad_put_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_digest(digest, digest_len) });
        // SAFETY: forwarded contract.
        unsafe { put_async(node, k, value, value_len, ttl_secs, timeout_ms, callback, userdata, cancel) }
    }
}

/// # Safety
/// As kad_node_put_async.
#[allow(clippy::too_many_arguments)]
unsafe fn put_async(
    node: *mut kad_node,
    k: Key,
    value: *const u8,
    value_len: usize,
    ttl_secs: u32,
    timeout_ms: u32,
    callback: kad_put_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    let e = try_ffi!(entry_from_handle(node));
    let n = e.node.clone();
    // SAFETY: forwarded contract.
    let (v, options) = try_ffi!(unsafe { put_args(&n, value, value_len, ttl_secs) });
    let ticket = try_ffi!(e.promise_callback());
    let ud = Userdata::new(userdata);
    try_ffi!(spawn_with_callback(
        ticket,
        // SAFETY: forwarded contract.
        unsafe { Cancel::from_ptr(cancel) },
        timeout_ms,
        timed(&e, Op::Put, put(n, k, v, options)),
        deliver_count(callback, ud)
    ));
    kad_result::KAD_OK
}

// -------------------------------------------------------------------- get --

/// Find the value stored under `key` (`key_len` >= 1 bytes, hashed with
/// SHA-1): this node's copy first, then the network. On success
/// `*value_out` receives a new kad_value the caller owns (release with
/// kad_value_free); values put by Python nodes keep their type, see
/// kad_value_get_type.
///
/// KAD_NOT_FOUND if no node has it (also when the node knows no peers),
/// KAD_TIMEOUT after `timeout_ms` (0 = no limit). Blocking; KAD_WRONG_THREAD
/// inside a callback.
#[no_mangle]
pub unsafe extern "C" fn kad_node_get(
    node: *mut kad_node,
    key: *const u8,
    key_len: usize,
    timeout_ms: u32,
    value_out: *mut *mut kad_value,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(value_out);
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_bytes(key, key_len) });
        get_blocking(node, k, timeout_ms, value_out)
    }
}

/// kad_node_get with the key given as its KAD_ID_LEN-byte digest.
#[no_mangle]
pub unsafe extern "C" fn kad_node_get_digest(
    node: *mut kad_node,
    digest: *const u8,
    digest_len: usize,
    timeout_ms: u32,
    value_out: *mut *mut kad_value,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(value_out);
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_digest(digest, digest_len) });
        get_blocking(node, k, timeout_ms, value_out)
    }
}

fn get_blocking(
    node: *mut kad_node,
    k: Key,
    timeout_ms: u32,
    value_out: *mut *mut kad_value,
) -> kad_result {
    let e = try_ffi!(entry_from_handle(node));
    let v = try_ffi!(block_on(
        timeout_ms,
        timed(&e, Op::Get, get(e.node.clone(), k))
    ));
    // SAFETY: checked non-NULL by the callers.
    unsafe { *value_out = kad_value::boxed(v) };
    kad_result::KAD_OK
}

/// Asynchronous kad_node_get: `callback` (may be NULL: the value is then
/// released by the library) is called exactly once with `userdata` on a
/// library thread, and owns the kad_value it receives.
#[no_mangle]
pub unsafe extern "C" fn kad_node_get_async(
    node: *mut kad_node,
    key: *const u8,
    key_len: usize,
    timeout_ms: u32,
    callback: kad_get_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_bytes(key, key_len) });
        // SAFETY: forwarded contract.
        unsafe { get_async(node, timeout_ms, callback, userdata, cancel, |n| get(n, k)) }
    }
}

/// Asynchronous kad_node_get_digest; see kad_node_get_async.
#[no_mangle]
pub unsafe extern "C" fn kad_node_get_digest_async(
    node: *mut kad_node,
    digest: *const u8,
    digest_len: usize,
    timeout_ms: u32,
    callback: kad_get_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_digest(digest, digest_len) });
        // SAFETY: forwarded contract.
        unsafe { get_async(node, timeout_ms, callback, userdata, cancel, |n| get(n, k)) }
    }
}

/// Start `lookup` (a get of some kind, given the node) and hand its value
/// to a kad_get_callback: the body of every `_get_*_async` call.
pub(crate) unsafe fn get_async<L, F>(
    node: *mut kad_node,
    timeout_ms: u32,
    callback: kad_get_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
    lookup: L,
) -> kad_result
where
    L: FnOnce(Node) -> F,
    F: Future<Output = Result<Value, Failure>> + Send + 'static,
{
    let e = try_ffi!(entry_from_handle(node));
    let ticket = try_ffi!(e.promise_callback());
    let ud = Userdata::new(userdata);
    try_ffi!(spawn_with_callback(
        ticket,
        // SAFETY: forwarded contract.
        unsafe { Cancel::from_ptr(cancel) },
        timeout_ms,
        timed(&e, Op::Get, lookup(e.node.clone())),
        move |r| {
            let Some(cb) = callback else { return };
            match r {
                // SAFETY: C callback; ownership of the value passes to it.
                Ok(v) => unsafe { cb(ud.get(), kad_result::KAD_OK, kad_value::boxed(v)) },
                // SAFETY: C callback with the caller's own userdata.
                Err(f) => unsafe { cb(ud.get(), f.code, std::ptr::null_mut()) },
            }
        }
    ));
    kad_result::KAD_OK
}
