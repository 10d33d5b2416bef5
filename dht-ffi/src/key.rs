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
    let bytes = unsafe { required_slice(key, len, "key")? };
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
    let bytes = unsafe { required_slice(digest, len, "digest")? };
    NodeId::from_slice(bytes).ok_or_else(|| {
        Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("a digest is {KAD_ID_LEN} bytes, not {len}"),
        )
    })
}

/// KAD_INVALID_ARGUMENT when `len` items of `item_size` bytes cannot be one
/// C object (more than PTRDIFF_MAX bytes): building a Rust slice of that
/// size is undefined behaviour, so this is checked before any slice exists.
pub(crate) fn check_len(len: usize, item_size: usize, what: &str) -> Result<(), Failure> {
    match len.checked_mul(item_size) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("length of `{what}` ({len}) is larger than any object can be (PTRDIFF_MAX)"),
        )),
    }
}

/// Borrow a C buffer; NULL is allowed only with length 0. The length is
/// checked (see [`check_len`]) before the slice is built.
///
/// # Safety
/// `p` must be NULL or valid for `len` bytes of reads for the returned lifetime.
pub(crate) unsafe fn slice<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    check_len(len, 1, what)?;
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

/// Borrow a C buffer that must exist even when empty (a digest, a key):
/// NULL is KAD_NULL_POINTER whatever `len`, so that a missing argument is
/// not reported as a wrong length.
///
/// # Safety
/// As [`slice`].
pub(crate) unsafe fn required_slice<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if p.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            format!("argument `{what}` is NULL"),
        ));
    }
    // SAFETY: forwarded contract.
    unsafe { slice(p, len, what) }
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

/// Check a caller's output buffer (`len` items) before anything is written
/// to it: NULL is KAD_NULL_POINTER, a length above PTRDIFF_MAX bytes
/// KAD_INVALID_ARGUMENT, as for input buffers (see [`check_len`]): no C
/// object is that large, so such a length is a bug (a negative size cast,
/// say), and trusting it would let a write run past the real buffer.
/// `what` names the buffer in the detail ("argument `buf`").
pub(crate) fn check_out_buffer<T>(out: *const T, len: usize, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            format!("{what} is NULL"),
        ));
    }
    match len.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!("length of {what} ({len}) is larger than any object can be (PTRDIFF_MAX)"),
        )),
    }
}

/// Check an id out-buffer before an operation starts.
pub(crate) fn check_id_buffer(out: *const u8, len: usize) -> Result<(), Failure> {
    check_out_buffer(out, len, "id buffer")?;
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
/// KAD_NULL_POINTER for a NULL `key` (whatever `key_len`) or `digest_out`,
/// KAD_INVALID_ARGUMENT for `key_len == 0` or either length above
/// PTRDIFF_MAX, KAD_BUFFER_TOO_SMALL for a short `digest_out`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_lengths_are_refused_before_a_slice_exists() {
        let byte = 0u8;
        for len in [isize::MAX as usize + 1, usize::MAX] {
            // SAFETY: the length check fails before the pointer is read.
            let r = unsafe { slice(&byte, len, "value") };
            assert_eq!(
                r.err().map(|f| f.code),
                Some(kad_result::KAD_INVALID_ARGUMENT)
            );
        }
        assert!(check_len(usize::MAX / 4, 8, "addrs").is_err());
        // SAFETY: a one-byte buffer.
        assert_eq!(
            unsafe { slice(&byte, 1, "value") }.map(<[u8]>::len).ok(),
            Some(1)
        );
    }

    #[test]
    fn huge_output_lengths_are_refused() {
        let mut buf = [0u8; KAD_ID_LEN];
        for len in [isize::MAX as usize + 1, usize::MAX] {
            let r = check_id_buffer(buf.as_mut_ptr(), len);
            assert_eq!(
                r.err().map(|f| f.code),
                Some(kad_result::KAD_INVALID_ARGUMENT)
            );
        }
        assert!(check_out_buffer(buf.as_ptr(), isize::MAX as usize, "buf").is_ok());
        assert_eq!(
            check_out_buffer(std::ptr::null::<u8>(), 1, "buf")
                .err()
                .map(|f| f.code),
            Some(kad_result::KAD_NULL_POINTER)
        );
    }

    #[test]
    fn null_key_is_a_null_pointer_whatever_its_length() {
        // SAFETY: NULL is refused before any read.
        let r = unsafe { key_from_bytes(std::ptr::null(), 0) };
        assert_eq!(r.err().map(|f| f.code), Some(kad_result::KAD_NULL_POINTER));
    }
}
