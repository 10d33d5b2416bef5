//! Signed (mutable) records in the C ABI (key pairs are in `keypair`,
//! immutable records in `immutable`): `kad_node_put_signed` /
//! `kad_node_get_signed` / `kad_node_delete_signed`, with `_async` twins in
//! the conventions of `ops.rs` (blocking calls take `timeout_ms`; async ones
//! a callback, userdata and an optional cancel token; arguments are copied,
//! and checked as far as the node's state does not matter, before the call
//! returns).

use std::ffi::c_void;
use std::time::Duration;

use dht_core::{Keypair, Node, Protocol, PublicKey, SignedPutOptions, Value};

use crate::callback::{spawn_with_callback, Userdata};
use crate::cancel::{kad_cancel_token, Cancel};
use crate::error::{kad_result, Failure};
use crate::key::slice;
use crate::keypair::{fixed_key, kad_keypair};
use crate::node::entry_from_handle;
use crate::node::kad_node;
use crate::runtime::block_on;
use crate::stats::{timed, Op};
use crate::value::kad_value;

/// Longest salt of a signed record, in bytes (longer ones are
/// KAD_INVALID_ARGUMENT from every signed-record call).
pub const KAD_SALT_MAX_LEN: usize = 64;

/// Called once when kad_node_put_signed_async finishes. `seq` is the
/// sequence number of the record stored (0 unless `result` is KAD_OK).
pub type kad_seq_callback =
    Option<unsafe extern "C-unwind" fn(userdata: *mut c_void, result: kad_result, seq: u64)>;

/// Called once when kad_node_get_signed_async finishes. On KAD_OK `value` is
/// a new kad_value (bytes) owned by the callback (release it with
/// kad_value_free) and `seq` its sequence number; otherwise `value` is NULL
/// and `seq` 0 (KAD_NOT_FOUND when there is no record or it was deleted).
pub type kad_get_signed_callback = Option<
    unsafe extern "C-unwind" fn(
        userdata: *mut c_void,
        result: kad_result,
        value: *mut kad_value,
        seq: u64,
    ),
>;

// ------------------------------------------------------------- operations --

/// Copy a salt out of C memory, refusing one above KAD_SALT_MAX_LEN before
/// anything starts: the same KAD_INVALID_ARGUMENT from put, get and delete,
/// where the node would answer each its own way (KAD_INVALID_RECORD, or for
/// a put a value limit computed from the salt, "maximum 0").
///
/// # Safety
/// `salt` must be NULL (with `len` 0) or valid for `len` bytes of reads.
unsafe fn salt_arg(salt: *const u8, len: usize) -> Result<Vec<u8>, Failure> {
    // NULL first: KAD_NULL_POINTER whatever the length, as everywhere.
    if salt.is_null() && len > 0 {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `salt` is NULL",
        ));
    }
    if len > KAD_SALT_MAX_LEN {
        return Err(Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("salt is {len} bytes; the maximum is {KAD_SALT_MAX_LEN} (KAD_SALT_MAX_LEN)"),
        ));
    }
    // SAFETY: forwarded contract; the length is small.
    Ok(unsafe { slice(salt, len, "salt")? }.to_vec())
}

/// A signed put's arguments, copied out of C memory.
struct SignedPut {
    keypair: Keypair,
    salt: Vec<u8>,
    value: Vec<u8>,
    options: SignedPutOptions,
}

/// `seq`/`cas` of 0 mean "not given" (sequence numbers start at 1);
/// `ttl_secs` 0 means the node's default TTL.
#[allow(clippy::too_many_arguments)]
unsafe fn signed_put_args(
    keypair: *const kad_keypair,
    salt: *const u8,
    salt_len: usize,
    value: *const u8,
    value_len: usize,
    seq: u64,
    cas: u64,
    ttl_secs: u32,
) -> Result<SignedPut, Failure> {
    if keypair.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `keypair` is NULL",
        ));
    }
    // SAFETY: non-NULL; a kad_keypair per the contract.
    let keypair = unsafe { &*keypair }.inner.clone();
    // SAFETY: forwarded contract.
    let salt = unsafe { salt_arg(salt, salt_len)? };
    // SAFETY: forwarded contract.
    let value = unsafe { slice(value, value_len, "value")? }.to_vec();
    let seq = (seq > 0).then_some(seq);
    // What the node would refuse whatever it holds, refused here: an _async
    // put then fails before it returns, not in its callback.
    Protocol::check_signed_put(&salt, &value, seq)?;
    Ok(SignedPut {
        keypair,
        salt,
        value,
        options: SignedPutOptions {
            seq,
            cas: (cas > 0).then_some(cas),
            ttl: (ttl_secs > 0).then(|| Duration::from_secs(u64::from(ttl_secs))),
        },
    })
}

async fn put_signed(node: Node, put: SignedPut) -> Result<u64, Failure> {
    Ok(node
        .put_signed(&put.keypair, &put.salt, &put.value, put.options)
        .await?)
}

async fn delete_signed(node: Node, keypair: Keypair, salt: Vec<u8>) -> Result<u64, Failure> {
    Ok(node.delete_signed(&keypair, &salt).await?)
}

async fn get_signed(node: Node, pk: PublicKey, salt: Vec<u8>) -> Result<(Value, u64), Failure> {
    match node.get_signed(&pk, &salt).await? {
        Some(v) => Ok((Value::Bytes(v.value), v.seq)),
        None => Err(Failure::new(
            kad_result::KAD_NOT_FOUND,
            format!("no signed record for {} with this salt", pk.to_hex()),
        )),
    }
}

unsafe fn public_key_arg(
    pk: *const u8,
    pk_len: usize,
    salt: *const u8,
    salt_len: usize,
) -> Result<(PublicKey, Vec<u8>), Failure> {
    // SAFETY: forwarded contract.
    let pk = PublicKey(unsafe { fixed_key(pk, pk_len, "public key")? });
    // SAFETY: forwarded contract.
    let salt = unsafe { salt_arg(salt, salt_len)? };
    Ok((pk, salt))
}

/// Sign `value` (`value_len` bytes) with `keypair` and store it under
/// SHA-1(public key ‖ `salt`) at the k closest nodes (`salt` may be NULL
/// with `salt_len` 0). `seq` 0 takes one more than the newest record found;
/// `cas` non-zero fails with KAD_CAS_MISMATCH unless the newest record has
/// that sequence number (and, read back after the STOREs, unless no holder
/// answers with a racing writer's record of the same number: of writers
/// racing with one `cas`, at most one succeeds; see docs/signed-records.md
/// for the limits); `ttl_secs` 0 is the
/// node's default TTL (the TTL is
/// signed into the record). On success `*seq_out` (may be NULL) receives
/// the sequence number stored.
///
/// KAD_INVALID_ARGUMENT for a salt longer than KAD_SALT_MAX_LEN (64) bytes
/// or `seq` UINT64_MAX (the last number is kept for a delete),
/// KAD_INVALID_RECORD when `seq` is not above the newest record's,
/// KAD_VALUE_TOO_LARGE when the record does not fit a datagram, KAD_TIMEOUT
/// after `timeout_ms` (0 = no limit). Blocking; KAD_WRONG_THREAD inside a
/// callback. The caller keeps ownership of every argument.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kad_node_put_signed(
    node: *mut kad_node,
    keypair: *const kad_keypair,
    salt: *const u8,
    salt_len: usize,
    value: *const u8,
    value_len: usize,
    seq: u64,
    cas: u64,
    ttl_secs: u32,
    timeout_ms: u32,
    seq_out: *mut u64,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        // SAFETY: forwarded contract.
        let put = try_ffi!(unsafe {
            signed_put_args(keypair, salt, salt_len, value, value_len, seq, cas, ttl_secs)
        });
        let stored = try_ffi!(block_on(
            timeout_ms,
            timed(&e, Op::Put, put_signed(e.node.clone(), put))
        ));
        crate::ops::write_opt(seq_out, stored);
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_put_signed: `callback` (may be NULL) is called
/// exactly once with `userdata` on a library thread, unless this returns an
/// error. `cancel` (may be NULL) cancels it.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kad_node_put_signed_async(
    node: *mut kad_node,
    keypair: *const kad_keypair,
    salt: *const u8,
    salt_len: usize,
    value: *const u8,
    value_len: usize,
    seq: u64,
    cas: u64,
    ttl_secs: u32,
    timeout_ms: u32,
    callback: kad_seq_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        // SAFETY: forwarded contract.
        let put = try_ffi!(unsafe {
            signed_put_args(keypair, salt, salt_len, value, value_len, seq, cas, ttl_secs)
        });
        let ticket = try_ffi!(e.promise_callback());
        let ud = Userdata::new(userdata);
        try_ffi!(spawn_with_callback(
            ticket,
            // SAFETY: forwarded contract.
            unsafe { Cancel::from_ptr(cancel) },
            timeout_ms,
            timed(&e, Op::Put, put_signed(e.node.clone(), put)),
            move |r| {
                let Some(cb) = callback else { return };
                let (code, seq) = match r {
                    Ok(seq) => (kad_result::KAD_OK, seq),
                    Err(f) => (f.code, 0),
                };
                // SAFETY: the caller's C callback with its own userdata.
                unsafe { cb(ud.get(), code, seq) };
            }
        ));
        kad_result::KAD_OK
    }
}

/// Delete the record under SHA-1(public key ‖ `salt`) by storing a signed
/// tombstone; later gets find nothing. On success `*seq_out` (may be NULL)
/// receives the tombstone's sequence number. Blocking, like kad_node_put_signed.
/// KAD_INVALID_ARGUMENT for a salt longer than KAD_SALT_MAX_LEN bytes.
#[no_mangle]
pub unsafe extern "C" fn kad_node_delete_signed(
    node: *mut kad_node,
    keypair: *const kad_keypair,
    salt: *const u8,
    salt_len: usize,
    timeout_ms: u32,
    seq_out: *mut u64,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        let kp = try_ref!(keypair).inner.clone();
        // SAFETY: forwarded contract.
        let salt = try_ffi!(unsafe { salt_arg(salt, salt_len) });
        let seq = try_ffi!(block_on(
            timeout_ms,
            timed(&e, Op::Put, delete_signed(e.node.clone(), kp, salt))
        ));
        crate::ops::write_opt(seq_out, seq);
        kad_result::KAD_OK
    }
}

/// The current value under SHA-1(`public_key` ‖ `salt`) (`public_key_len`
/// must be KAD_KEY_LEN): the newest valid record among the closest nodes'
/// answers. On success `*value_out` receives a new bytes kad_value the
/// caller owns (release with kad_value_free) and `*seq_out` (may be NULL)
/// its sequence number. KAD_NOT_FOUND when there is none or it was deleted,
/// KAD_INVALID_ARGUMENT for a salt longer than KAD_SALT_MAX_LEN bytes,
/// KAD_TIMEOUT after `timeout_ms` (0 = no limit). Blocking.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kad_node_get_signed(
    node: *mut kad_node,
    public_key: *const u8,
    public_key_len: usize,
    salt: *const u8,
    salt_len: usize,
    timeout_ms: u32,
    value_out: *mut *mut kad_value,
    seq_out: *mut u64,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(value_out);
        let e = try_ffi!(entry_from_handle(node));
        // SAFETY: forwarded contract.
        let (pk, salt) = try_ffi!(unsafe { public_key_arg(public_key, public_key_len, salt, salt_len) });
        let (v, seq) = try_ffi!(block_on(
            timeout_ms,
            timed(&e, Op::Get, get_signed(e.node.clone(), pk, salt))
        ));
        // SAFETY: checked non-NULL above.
        unsafe { *value_out = kad_value::boxed(v) };
        crate::ops::write_opt(seq_out, seq);
        kad_result::KAD_OK
    }
}

/// Asynchronous kad_node_get_signed: `callback` (may be NULL: the value is
/// then released by the library) is called exactly once with `userdata` on
/// a library thread, and owns the kad_value it receives.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kad_node_get_signed_async(
    node: *mut kad_node,
    public_key: *const u8,
    public_key_len: usize,
    salt: *const u8,
    salt_len: usize,
    timeout_ms: u32,
    callback: kad_get_signed_callback,
    userdata: *mut c_void,
    cancel: *const kad_cancel_token,
) -> kad_result {
    ffi_panic_boundary! {
        let e = try_ffi!(entry_from_handle(node));
        // SAFETY: forwarded contract.
        let (pk, salt) = try_ffi!(unsafe { public_key_arg(public_key, public_key_len, salt, salt_len) });
        let ticket = try_ffi!(e.promise_callback());
        let ud = Userdata::new(userdata);
        try_ffi!(spawn_with_callback(
            ticket,
            // SAFETY: forwarded contract.
            unsafe { Cancel::from_ptr(cancel) },
            timeout_ms,
            timed(&e, Op::Get, get_signed(e.node.clone(), pk, salt)),
            move |r| {
                let Some(cb) = callback else { return };
                match r {
                    // SAFETY: C callback; ownership of the value passes to it.
                    Ok((v, seq)) => unsafe { cb(ud.get(), kad_result::KAD_OK, kad_value::boxed(v), seq) },
                    // SAFETY: C callback with its own userdata.
                    Err(f) => unsafe { cb(ud.get(), f.code, std::ptr::null_mut(), 0) },
                }
            }
        ));
        kad_result::KAD_OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_limit_is_the_nodes() {
        assert_eq!(KAD_SALT_MAX_LEN, dht_core::signed::MAX_SALT_LEN);
        let salt = [0u8; KAD_SALT_MAX_LEN + 1];
        // SAFETY: a buffer of that many bytes.
        let ok = unsafe { salt_arg(salt.as_ptr(), KAD_SALT_MAX_LEN) };
        assert_eq!(ok.map(|s| s.len()).ok(), Some(KAD_SALT_MAX_LEN));
        for len in [KAD_SALT_MAX_LEN + 1, 65_000, usize::MAX] {
            // SAFETY: refused before the pointer is read.
            let e = unsafe { salt_arg(salt.as_ptr(), len) }.err();
            let e = e
                .map(|f| (f.code, f.detail))
                .unwrap_or((kad_result::KAD_OK, String::new()));
            assert_eq!(e.0, kad_result::KAD_INVALID_ARGUMENT);
            assert!(e.1.contains("salt") && e.1.contains("64"), "{}", e.1);
        }
    }
}
