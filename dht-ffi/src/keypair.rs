//! Key pairs for signed records in the C ABI: the opaque `kad_keypair`
//! (`kad_keypair_new` / `_from_secret` / `_secret` / `_public_key` /
//! `_free`), used by the signed-record calls of `signed`.

use dht_core::Keypair;
use rand::rngs::OsRng;
use rand::TryRngCore;

use crate::error::{kad_result, Failure};
use crate::key::{check_out_buffer, required_slice};

/// Length of an ed25519 secret key and of a public key, in bytes.
pub const KAD_KEY_LEN: usize = 32;

/// An ed25519 key pair: the right to publish signed records under
/// SHA-1(public key ‖ salt). Created by kad_keypair_new or
/// kad_keypair_from_secret, released with kad_keypair_free. Immutable, so it
/// may be used from several threads at once.
pub struct kad_keypair {
    pub(crate) inner: Keypair,
}

/// A new key pair from the operating system's CSPRNG. The caller owns it;
/// release it with kad_keypair_free. Never returns NULL.
#[no_mangle]
pub extern "C" fn kad_keypair_new() -> *mut kad_keypair {
    ffi_panic_boundary! {
        // From the OS directly, not `rand::rng()`: that reads a thread-local,
        // gone in code run after the thread's thread-locals (an atexit
        // handler), where it panicked.
        let inner = Keypair::generate(&mut OsRng.unwrap_err());
        Box::into_raw(Box::new(kad_keypair { inner }))
    }
}

/// The key pair of a KAD_KEY_LEN-byte ed25519 secret (as written by
/// kad_keypair_secret). On success `*keypair_out` receives a new key pair
/// the caller owns (release with kad_keypair_free). KAD_INVALID_ARGUMENT
/// unless `secret_len` is KAD_KEY_LEN.
#[no_mangle]
pub unsafe extern "C" fn kad_keypair_from_secret(
    secret: *const u8,
    secret_len: usize,
    keypair_out: *mut *mut kad_keypair,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(keypair_out);
        let bytes = try_ffi!(unsafe { fixed_key(secret, secret_len, "secret") });
        let kp = Box::new(kad_keypair { inner: Keypair::from_secret(bytes) });
        // SAFETY: checked non-NULL above.
        unsafe { *keypair_out = Box::into_raw(kp) };
        kad_result::KAD_OK
    }
}

/// Copy the KAD_KEY_LEN-byte secret into `buf` (`buf_len` at least
/// KAD_KEY_LEN, else KAD_BUFFER_TOO_SMALL). Keep it private: it signs records.
#[no_mangle]
pub unsafe extern "C" fn kad_keypair_secret(
    keypair: *const kad_keypair,
    buf: *mut u8,
    buf_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let kp = try_ref!(keypair);
        unsafe { write_key(&kp.inner.secret(), buf, buf_len) }
    }
}

/// Copy the KAD_KEY_LEN-byte public key (what readers pass to
/// kad_node_get_signed) into `buf` (`buf_len` at least KAD_KEY_LEN).
#[no_mangle]
pub unsafe extern "C" fn kad_keypair_public_key(
    keypair: *const kad_keypair,
    buf: *mut u8,
    buf_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let kp = try_ref!(keypair);
        unsafe { write_key(kp.inner.public_key().as_bytes(), buf, buf_len) }
    }
}

/// Release a key pair. NULL is ignored; freeing twice is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn kad_keypair_free(keypair: *mut kad_keypair) {
    ffi_panic_boundary! {
        if !keypair.is_null() {
            // SAFETY: from Box::into_raw in this module; ownership ends here.
            drop(unsafe { Box::from_raw(keypair) });
        }
    }
}

/// A KAD_KEY_LEN-byte key or secret from C: NULL is KAD_NULL_POINTER, any
/// other length KAD_INVALID_ARGUMENT.
pub(crate) unsafe fn fixed_key(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<[u8; KAD_KEY_LEN], Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { required_slice(p, len, what)? };
    <[u8; KAD_KEY_LEN]>::try_from(bytes).map_err(|_| {
        Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("{what} must be {KAD_KEY_LEN} bytes, not {len}"),
        )
    })
}

unsafe fn write_key(key: &[u8; KAD_KEY_LEN], buf: *mut u8, buf_len: usize) -> kad_result {
    if let Err(f) = check_out_buffer(buf, buf_len, "argument `buf`") {
        return f.report();
    }
    if buf_len < KAD_KEY_LEN {
        return Failure::new(
            kad_result::KAD_BUFFER_TOO_SMALL,
            format!("buffer of {buf_len} bytes; a key needs {KAD_KEY_LEN}"),
        )
        .report();
    }
    // SAFETY: non-NULL, at least KAD_KEY_LEN writable bytes per the contract.
    unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), buf, KAD_KEY_LEN) };
    kad_result::KAD_OK
}
