//! Values returned by get: a library-owned object with typed accessors.

use dht_core::Value;

use crate::error::{kad_result, Failure};

/// Type of a kad_value. Values keep the type they were put with: by
/// kad_node_put (bytes), kad_node_put_value (any type), or a Python node
/// (int, float, bool, str, bytes; None, lists and dicts as NIL, LIST, MAP).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kad_value_type {
    /// Not a value (returned for a NULL kad_value).
    None = 0,
    /// Raw bytes (msgpack bin; Python `bytes`).
    Bytes = 1,
    /// UTF-8 text (msgpack str; Python `str`).
    Str = 2,
    /// Signed integer that fits int64_t (Python `int`).
    Int = 3,
    /// Unsigned integer above INT64_MAX (Python `int`).
    Uint = 4,
    /// Double (Python `float`).
    Float = 5,
    /// Boolean (Python `bool`).
    Bool = 6,
    /// msgpack nil (Python `None`); read with kad_value_msgpack.
    Nil = 7,
    /// A list (msgpack array; Python `list`/`tuple`); read with kad_value_msgpack.
    List = 8,
    /// A map (msgpack map; Python `dict`); read with kad_value_msgpack.
    Map = 9,
}

/// A typed value: found by a get, or made with kad_value_new_* to put with
/// kad_node_put_value. Owned by the caller that received or made it; release
/// it with kad_value_free. Immutable, so it may be read from several threads.
pub struct kad_value {
    value: Value,
    /// For Bytes and Str: the bytes followed by one NUL, so text can be
    /// printed with %s. For Nil, List and Map: their msgpack encoding.
    /// Empty for the other types.
    data: Vec<u8>,
}

impl kad_value {
    pub(crate) fn inner(&self) -> &Value {
        &self.value
    }

    pub(crate) fn boxed(value: Value) -> *mut kad_value {
        let data = match &value {
            Value::Bytes(b) => nul_terminated(b),
            Value::Str(s) => nul_terminated(s.as_bytes()),
            Value::Nil | Value::List(_) | Value::Map(_) => dht_core::wire::encode_value(&value),
            _ => Vec::new(),
        };
        Box::into_raw(Box::new(kad_value { value, data }))
    }
}

fn nul_terminated(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + 1);
    v.extend_from_slice(b);
    v.push(0);
    v
}

fn wrong_type(value: &kad_value, wanted: &str) -> kad_result {
    Failure::new(
        kad_result::KAD_WRONG_TYPE,
        format!("value is {:?}, not {wanted}", type_of(&value.value)),
    )
    .report()
}

fn type_of(v: &Value) -> kad_value_type {
    match v {
        Value::Bytes(_) => kad_value_type::Bytes,
        Value::Str(_) => kad_value_type::Str,
        Value::Int(_) => kad_value_type::Int,
        Value::UInt(_) => kad_value_type::Uint,
        Value::Float(_) => kad_value_type::Float,
        Value::Bool(_) => kad_value_type::Bool,
        Value::Nil => kad_value_type::Nil,
        Value::List(_) => kad_value_type::List,
        Value::Map(_) => kad_value_type::Map,
    }
}

/// Type of `value`; KAD_VALUE_TYPE_NONE if `value` is NULL.
#[no_mangle]
pub unsafe extern "C" fn kad_value_get_type(value: *const kad_value) -> kad_value_type {
    ffi_panic_boundary! {
        if value.is_null() {
            return kad_value_type::None;
        }
        // SAFETY: non-NULL kad_value from the library, per the contract.
        type_of(unsafe { &(*value).value })
    }
}

/// Borrow the bytes of a KAD_VALUE_TYPE_BYTES or KAD_VALUE_TYPE_STR value
/// (UTF-8 for STR). `*data_out` points into `value` and stays valid until
/// kad_value_free(value); it is followed by one NUL byte not counted in
/// `*len_out`, so text can be printed with %s (bytes may contain NULs too).
///
/// Returns KAD_WRONG_TYPE for the other types, KAD_NULL_POINTER for NULL
/// arguments.
#[no_mangle]
pub unsafe extern "C" fn kad_value_bytes(
    value: *const kad_value,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's pointers, checked by lend_data.
        unsafe {
            lend_data(value, data_out, len_out, "bytes or str", |v| match v.value {
                // Without the NUL kept after the bytes.
                Value::Bytes(_) | Value::Str(_) => Some(v.data.len() - 1),
                _ => None,
            })
        }
    }
}

/// Read a KAD_VALUE_TYPE_INT value. KAD_WRONG_TYPE for every other type
/// (including UINT, which does not fit int64_t).
#[no_mangle]
pub unsafe extern "C" fn kad_value_int(value: *const kad_value, int_out: *mut i64) -> kad_result {
    ffi_panic_boundary! {
        let value = try_ref!(value);
        check_out!(int_out);
        match value.value {
            // SAFETY: out-parameter checked non-NULL above.
            Value::Int(i) => unsafe { *int_out = i },
            _ => return wrong_type(value, "int"),
        }
        kad_result::KAD_OK
    }
}

/// Read a KAD_VALUE_TYPE_UINT value, or a KAD_VALUE_TYPE_INT that is not
/// negative. KAD_WRONG_TYPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn kad_value_uint(value: *const kad_value, uint_out: *mut u64) -> kad_result {
    ffi_panic_boundary! {
        let value = try_ref!(value);
        check_out!(uint_out);
        let u = match value.value {
            Value::UInt(u) => u,
            Value::Int(i) if i >= 0 => i.unsigned_abs(),
            _ => return wrong_type(value, "a non-negative int"),
        };
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *uint_out = u };
        kad_result::KAD_OK
    }
}

/// Read a KAD_VALUE_TYPE_FLOAT value. KAD_WRONG_TYPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn kad_value_float(
    value: *const kad_value,
    float_out: *mut f64,
) -> kad_result {
    ffi_panic_boundary! {
        let value = try_ref!(value);
        check_out!(float_out);
        match value.value {
            // SAFETY: out-parameter checked non-NULL above.
            Value::Float(f) => unsafe { *float_out = f },
            _ => return wrong_type(value, "float"),
        }
        kad_result::KAD_OK
    }
}

/// Read a KAD_VALUE_TYPE_BOOL value. KAD_WRONG_TYPE otherwise.
#[no_mangle]
pub unsafe extern "C" fn kad_value_bool(
    value: *const kad_value,
    bool_out: *mut bool,
) -> kad_result {
    ffi_panic_boundary! {
        let value = try_ref!(value);
        check_out!(bool_out);
        match value.value {
            // SAFETY: out-parameter checked non-NULL above.
            Value::Bool(b) => unsafe { *bool_out = b },
            _ => return wrong_type(value, "bool"),
        }
        kad_result::KAD_OK
    }
}

/// Borrow the msgpack encoding of a KAD_VALUE_TYPE_NIL, _LIST or _MAP value
/// (what a Python peer stored as None, a list or tuple, or a dict), to decode
/// with a msgpack library. `*data_out` points into `value` and stays valid
/// until kad_value_free(value).
///
/// Returns KAD_WRONG_TYPE for the other types (they have accessors of their
/// own), KAD_NULL_POINTER for NULL arguments.
#[no_mangle]
pub unsafe extern "C" fn kad_value_msgpack(
    value: *const kad_value,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // SAFETY: the caller's pointers, checked by lend_data.
        unsafe {
            lend_data(value, data_out, len_out, "nil, list or map", |v| match v.value {
                Value::Nil | Value::List(_) | Value::Map(_) => Some(v.data.len()),
                _ => None,
            })
        }
    }
}

/// Lend the first `len_of(value)` bytes of `value.data` through the
/// out-parameters; KAD_WRONG_TYPE (wanting `wanted`) when `len_of` says this
/// type has no such data, KAD_NULL_POINTER for NULL arguments.
///
/// # Safety
/// `value` is NULL or a live kad_value; the out-pointers are NULL or writable.
unsafe fn lend_data(
    value: *const kad_value,
    data_out: *mut *const u8,
    len_out: *mut usize,
    wanted: &str,
    len_of: fn(&kad_value) -> Option<usize>,
) -> kad_result {
    let value = try_ref!(value);
    check_out!(data_out);
    check_out!(len_out);
    let Some(len) = len_of(value) else {
        return wrong_type(value, wanted);
    };
    // SAFETY: both out-parameters checked non-NULL above.
    unsafe {
        *data_out = value.data.as_ptr();
        *len_out = len;
    }
    kad_result::KAD_OK
}

/// Release a value received from kad_node_get*, a kad_get_callback or a
/// kad_value_new_* function.
/// NULL is ignored. Freeing the same value twice is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn kad_value_free(value: *mut kad_value) {
    ffi_panic_boundary! {
        if !value.is_null() {
            // SAFETY: `value` came from Box::into_raw in kad_value::boxed and
            // the caller gives up ownership here.
            drop(unsafe { Box::from_raw(value) });
        }
    }
}
