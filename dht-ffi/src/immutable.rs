//! Immutable records in the C ABI: `kad_node_put_immutable` /
//! `kad_node_get_immutable` and their `_async` twins, in the conventions of
//! `ops.rs` (blocking calls take `timeout_ms`; async ones a callback,
//! userdata and an optional cancel token; arguments are copied, and checked
//! as far as the node's state does not matter, before the call returns). A
//! value is stored under the SHA-1 of its record, and checked against it by
//! hashing when read.

use std::ffi::c_void;

use dht_core::signed::MAX_IMMUTABLE_PAYLOAD_LEN;
use dht_core::{Key, Node, RecordError, Value};

use crate::callback::{kad_get_callback, spawn_with_callback, Userdata};
use crate::cancel::{kad_cancel_token, Cancel};
use crate::error::{kad_result, Failure};
use crate::key::{check_id_buffer, key_from_digest, slice, write_id};
use crate::node::{entry_from_handle, kad_node};
use crate::ops::get_async;
use crate::runtime::block_on;
use crate::stats::{timed, Op};
use crate::value::kad_value;

/// Called once when kad_node_put_immutable_async finishes. On KAD_OK
/// `digest` points to the value's KAD_ID_LEN-byte key, valid only during the
/// call (copy it); otherwise `digest` is NULL and `digest_len` 0.
pub type kad_digest_callback = Option<
    unsafe extern "C-unwind" fn(
        userdata: *mut c_void,
        result: kad_result,
        digest: *const u8,
        digest_len: usize,
    ),
>;

/// An immutable value copied out of C memory, refused at once if it is too
/// large (as the node would, but before an _async call returns).
///
/// # Safety
/// `value` must be NULL (with `len` 0) or valid for `len` bytes of reads.
unsafe fn immutable_value_arg(value: *const u8, len: usize) -> Result<Vec<u8>, Failure> {
    // SAFETY: forwarded contract.
    let value = unsafe { slice(value, len, "value")? };
    if value.len() > MAX_IMMUTABLE_PAYLOAD_LEN {
        let too_large = RecordError::TooLarge {
            size: value.len(),
            max: MAX_IMMUTABLE_PAYLOAD_LEN,
        };
        return Err(Failure::from(dht_core::Error::from(too_large)));
    }
    Ok(value.to_vec())
}

async fn put_immutable(node: Node, value: Vec<u8>) -> Result<Key, Failure> {
    Ok(node.put_immutable(&value).await?)
}

async fn get_immutable(node: Node, key: Key) -> Result<Value, Failure> {
    match node.get_immutable(&key).await? {
        Some(v) => Ok(Value::Bytes(v)),
        None => Err(Failure::new(
            kad_result::KAD_NOT_FOUND,
            format!("immutable value {key} not found"),
        )),
    }
}

/// Store `value` (`value_len` bytes) under the SHA-1 of its immutable
/// record; on success the KAD_ID_LEN-byte key is written to `digest_out`
/// (`digest_out_len` at least KAD_ID_LEN, checked before anything is sent).
/// KAD_VALUE_TOO_LARGE, at once, for a value over 8124 bytes (an immutable
/// record fits one STORE a Python peer can send on; not `max_value_size`).
/// Blocking, with `timeout_ms` as kad_node_put.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_immutable(
    node: *mut kad_node,
    value: *const u8,
    value_len: usize,
    timeout_ms: u32,
    digest_out: *mut u8,
    digest_out_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        try_ffi!(check_id_buffer(digest_out, digest_out_len));
        let e = try_ffi!(entry_from_handle(node));
        // SAFETY: forwarded contract.
        let v = try_ffi!(unsafe { immutable_value_arg(value, value_len) });
        let key = try_ffi!(block_on(
            timeout_ms,
            timed(&e, Op::Put, put_immutable(e.node.clone(), v))
        ));
        // SAFETY: checked by check_id_buffer.
        unsafe { write_id(&key, digest_out, digest_out_len) };
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_put_immutable: the key reaches `callback` (may be
/// NULL), called exactly once with `userdata` on a library thread.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_immutable_async(
    node: *mut kad_node,
    value: *const u8,
    value_len: usize,
    timeout_ms: u32,
    callback: kad_digest_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        // SAFETY: forwarded contract.
        let v = try_ffi!(unsafe { immutable_value_arg(value, value_len) });
        let ticket = try_ffi!(e.promise_callback());
        let ud = Userdata::new(userdata);
        try_ffi!(spawn_with_callback(
            ticket,
            // SAFETY: forwarded contract.
            unsafe { Cancel::from_ptr(cancel) },
            timeout_ms,
            timed(&e, Op::Put, put_immutable(e.node.clone(), v)),
            move |r| {
                let Some(cb) = callback else { return };
                match r {
                    // SAFETY: C callback; the digest is valid during the call.
                    Ok(k) => unsafe { cb(ud.get(), kad_result::KAD_OK, k.as_bytes().as_ptr(), k.as_bytes().len()) },
                    // SAFETY: C callback with its own userdata.
                    Err(f) => unsafe { cb(ud.get(), f.code, std::ptr::null(), 0) },
                }
            }
        ));
        kad_result::KAD_OK
    }
}

/// The immutable value under the KAD_ID_LEN-byte `digest`, checked by
/// hashing (answers that do not match are skipped). On success `*value_out`
/// receives a new bytes kad_value the caller owns (kad_value_free).
/// KAD_NOT_FOUND when no node has it. Blocking.
#[no_mangle]
pub unsafe extern "C" fn kad_node_get_immutable(
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
        let e = try_ffi!(entry_from_handle(node));
        let v = try_ffi!(block_on(
            timeout_ms,
            timed(&e, Op::Get, get_immutable(e.node.clone(), k))
        ));
        // SAFETY: checked non-NULL above.
        unsafe { *value_out = kad_value::boxed(v) };
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_get_immutable; see kad_node_get_async.
#[no_mangle]
pub unsafe extern "C" fn kad_node_get_immutable_async(
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
        unsafe { get_async(node, timeout_ms, callback, userdata, cancel, |n| get_immutable(n, k)) }
    }
}
