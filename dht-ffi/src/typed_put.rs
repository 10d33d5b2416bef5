//! Typed puts: values of the types Python peers store (int, float, bool,
//! str, bytes), built with kad_value_new_* and put with kad_node_put_value.
//! A Python node reading such a key gets an `int`/`float`/`bool`/`str`/`bytes`.

use std::ffi::{c_char, c_void};

use dht_core::Value;

use crate::callback::{deliver_count, kad_put_callback, spawn_with_callback, Userdata};
use crate::cancel::{kad_cancel_token, Cancel};
use crate::error::{kad_result, Failure};
use crate::key::{key_from_bytes, slice};
use crate::node::{entry_from_handle, kad_node};
use crate::ops::{put, put_options, write_opt};
use crate::runtime::block_on;
use crate::stats::{timed, Op};
use crate::value::kad_value;

/// A new KAD_VALUE_TYPE_INT value (Python `int`). The caller owns it
/// (kad_value_free). Never returns NULL (aborts if memory is exhausted).
#[no_mangle]
pub extern "C" fn kad_value_new_int(value: i64) -> *mut kad_value {
    ffi_panic_boundary! { kad_value::boxed(Value::Int(value)) }
}

/// A new KAD_VALUE_TYPE_FLOAT value (Python `float`); see kad_value_new_int.
#[no_mangle]
pub extern "C" fn kad_value_new_float(value: f64) -> *mut kad_value {
    ffi_panic_boundary! { kad_value::boxed(Value::Float(value)) }
}

/// A new KAD_VALUE_TYPE_BOOL value (Python `bool`); see kad_value_new_int.
#[no_mangle]
pub extern "C" fn kad_value_new_bool(value: bool) -> *mut kad_value {
    ffi_panic_boundary! { kad_value::boxed(Value::Bool(value)) }
}

/// A new KAD_VALUE_TYPE_STR value (Python `str`) from `text_len` bytes of
/// UTF-8 at `text` (copied; NULL allowed when `text_len` is 0; no NUL
/// needed). On success `*value_out` receives a value the caller owns.
/// KAD_INVALID_ARGUMENT if the bytes are not UTF-8.
#[no_mangle]
pub unsafe extern "C" fn kad_value_new_str(
    text: *const c_char,
    text_len: usize,
    value_out: *mut *mut kad_value,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(value_out);
        // SAFETY: the caller provides `text_len` readable bytes.
        let bytes = try_ffi!(unsafe { slice(text.cast::<u8>(), text_len, "text") });
        let Ok(s) = std::str::from_utf8(bytes) else {
            return Failure::new(kad_result::KAD_INVALID_ARGUMENT, "text is not valid UTF-8").report();
        };
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *value_out = kad_value::boxed(Value::Str(s.to_owned())) };
        kad_result::KAD_OK
    }
}

/// A new KAD_VALUE_TYPE_BYTES value (Python `bytes`) from `data_len` bytes
/// at `data` (copied; NULL allowed when `data_len` is 0). On success
/// `*value_out` receives a value the caller owns.
#[no_mangle]
pub unsafe extern "C" fn kad_value_new_bytes(
    data: *const u8,
    data_len: usize,
    value_out: *mut *mut kad_value,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(value_out);
        // SAFETY: the caller provides `data_len` readable bytes.
        let bytes = try_ffi!(unsafe { slice(data, data_len, "data") });
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *value_out = kad_value::boxed(Value::Bytes(bytes.to_vec())) };
        kad_result::KAD_OK
    }
}

/// # Safety
/// `value` must be NULL or a live kad_value.
unsafe fn copy_value(value: *const kad_value) -> Result<Value, Failure> {
    if value.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `value` is NULL",
        ));
    }
    // SAFETY: non-NULL kad_value from the library, per the contract.
    Ok(unsafe { (*value).inner().clone() })
}

/// kad_node_put with a typed value (from kad_value_new_* or a get; copied,
/// the caller keeps ownership of `value`). Same results as kad_node_put.
/// Blocking; KAD_WRONG_THREAD inside a callback.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_value(
    node: *mut kad_node,
    key: *const u8,
    key_len: usize,
    value: *const kad_value,
    ttl_secs: u32,
    timeout_ms: u32,
    stored_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: forwarded contract.
        let k = try_ffi!(unsafe { key_from_bytes(key, key_len) });
        // SAFETY: forwarded contract.
        let v = try_ffi!(unsafe { copy_value(value) });
        let e = try_ffi!(entry_from_handle(node));
        let n = e.node.clone();
        let options = try_ffi!(put_options(&n, &v, ttl_secs));
        let stored = try_ffi!(block_on(timeout_ms, timed(&e, Op::Put, put(n, k, v, options))));
        write_opt(stored_out, stored);
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_put_value: the value is copied now; `callback` (may
/// be NULL) is then called exactly once with `userdata` on a callback thread.
#[no_mangle]
pub unsafe extern "C" fn kad_node_put_value_async(
    node: *mut kad_node,
    key: *const u8,
    key_len: usize,
    value: *const kad_value,
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
        let v = try_ffi!(unsafe { copy_value(value) });
        let e = try_ffi!(entry_from_handle(node));
        let n = e.node.clone();
        let options = try_ffi!(put_options(&n, &v, ttl_secs));
        let ticket = try_ffi!(e.promise_callback());
        let ud = Userdata::new(userdata);
        let op = timed(&e, Op::Put, put(n, k, v, options));
        // SAFETY: forwarded contract.
        let cancel = unsafe { Cancel::from_ptr(cancel) };
        try_ffi!(spawn_with_callback(ticket, cancel, timeout_ms, op, deliver_count(callback, ud)));
        kad_result::KAD_OK
    }
}
