//! Keys: arbitrary bytes hashed with SHA-1 (as Python's kademlia does), or a
//! raw 20-byte digest.

use dht_core::{Key, NodeId};

use crate::error::{kad_result, Failure};

/// Length in bytes of node ids and key digests (SHA-1).
pub const KAD_ID_LEN: usize = 20;

/// The key for `len` bytes at `key`: their SHA-1 digest. Zero-length keys are
/// refused (KAD_INVALID_ARGUMENT).
///
/// # Safety
/// `key` must be NULL or valid for `len` bytes of reads.
pub(crate) unsafe fn key_from_bytes(key: *const u8, len: usize) -> Result<Key, Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { slice(key, len, "key")? };
    if bytes.is_empty() {
        return Err(Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            "keys must be at least one byte long",
        ));
    }
    Ok(NodeId::digest(bytes))
}

/// A key given as its raw 20-byte digest.
///
/// # Safety
/// `digest` must be NULL or valid for `len` bytes of reads.
pub(crate) unsafe fn key_from_digest(digest: *const u8, len: usize) -> Result<Key, Failure> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { slice(digest, len, "digest")? };
    NodeId::from_slice(bytes).ok_or_else(|| {
        Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("a digest is {KAD_ID_LEN} bytes, not {len}"),
        )
    })
}

/// Borrow a C buffer; NULL is allowed only with length 0.
///
/// # Safety
/// `p` must be NULL or valid for `len` bytes of reads for the returned lifetime.
pub(crate) unsafe fn slice<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            format!("argument `{what}` is NULL"),
        ));
    }
    // SAFETY: non-NULL and valid for `len` bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Write a node id into a caller buffer of `len` bytes (at least KAD_ID_LEN).
///
/// # Safety
/// `out` must be non-NULL and valid for `len` bytes of writes.
pub(crate) unsafe fn write_id(id: &NodeId, out: *mut u8, len: usize) {
    debug_assert!(len >= KAD_ID_LEN);
    // SAFETY: the caller checked `len >= KAD_ID_LEN` and the pointer.
    unsafe { std::ptr::copy_nonoverlapping(id.as_bytes().as_ptr(), out, KAD_ID_LEN) };
}

/// Check an id out-buffer before an operation starts.
pub(crate) fn check_id_buffer(out: *const u8, len: usize) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "id buffer is NULL",
        ));
    }
    if len < KAD_ID_LEN {
        return Err(Failure::new(
            kad_result::KAD_BUFFER_TOO_SMALL,
            format!("an id needs {KAD_ID_LEN} bytes, the buffer has {len}"),
        ));
    }
    Ok(())
}

/// Compute the key digest kadmium (and Python's kademlia) use for `key`: the
/// SHA-1 of its `key_len` bytes, written to `digest_out`, which must hold
/// `digest_out_len >= KAD_ID_LEN` bytes. Use it with the *_digest functions,
/// or to compare with keys seen elsewhere.
///
/// KAD_NULL_POINTER for a NULL `key` or `digest_out`, KAD_INVALID_ARGUMENT
/// for `key_len == 0`, KAD_BUFFER_TOO_SMALL for a short `digest_out`.
#[no_mangle]
pub unsafe extern "C" fn kad_key_digest(
    key: *const u8,
    key_len: usize,
    digest_out: *mut u8,
    digest_out_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        try_ffi!(check_id_buffer(digest_out, digest_out_len));
        // SAFETY: the caller provides `key_len` readable bytes.
        let k = try_ffi!(unsafe { key_from_bytes(key, key_len) });
        // SAFETY: checked above.
        unsafe { write_id(&k, digest_out, digest_out_len) };
        kad_result::KAD_OK
    }
}
