//! The one result enum of the C ABI, its messages, and the detail message of
//! the last failure on each thread.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::{Mutex, PoisonError};

use crate::key::check_out_buffer;

/// Result of every fallible kadmium function. `KAD_OK` is 0.
///
/// Numbers are grouped in blocks and never reused: 1-99 are mistakes of the
/// caller, 100-199 outcomes of network operations, 200-299 failures inside
/// the library. New codes are added at the end of their block.
///
/// cbindgen:prefix-with-name=false
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kad_result {
    /// Success.
    KAD_OK = 0,
    // --- 1-99: the caller passed something the function cannot use ---
    /// An argument is out of range: zero-length key, k of 0, wrong digest length, ...
    KAD_INVALID_ARGUMENT = 1,
    /// A pointer argument that must not be NULL was NULL.
    KAD_NULL_POINTER = 2,
    /// A kad_node handle that was already freed (or never was a node).
    KAD_INVALID_HANDLE = 3,
    /// A caller buffer is too small for the output; nothing was written.
    KAD_BUFFER_TOO_SMALL = 4,
    /// A kad_value accessor was called on a value of another type.
    KAD_WRONG_TYPE = 5,
    /// A blocking call was made from a library thread (inside a callback).
    KAD_WRONG_THREAD = 6,
    /// The value is larger than the node's max_value_size.
    KAD_VALUE_TOO_LARGE = 7,
    /// An address could not be parsed or resolved, or can never be reached
    /// from this node (port 0, another IP family). 0.0.0.0 means this host.
    KAD_BAD_ADDRESS = 8,
    /// Called in a child process created by fork() after the library was
    /// used in the parent: the library's threads do not exist in the child,
    /// so its nodes (and new ones) cannot work there. Nothing was done.
    KAD_FORKED = 9,
    // --- 100-199: outcomes of network operations ---
    /// The key was not found on the network.
    KAD_NOT_FOUND = 100,
    /// The operation did not finish within its timeout.
    KAD_TIMEOUT = 101,
    /// The node knows no peers (bootstrap failed or was not done).
    KAD_NO_PEERS = 102,
    /// A socket error (for example the bind address is in use).
    KAD_NETWORK_ERROR = 103,
    /// This node's storage for the network is full.
    KAD_STORAGE_FULL = 104,
    /// Too many requests in flight; try again later.
    KAD_BUSY = 105,
    /// The node was shut down before or during the operation.
    KAD_SHUT_DOWN = 106,
    /// The operation was cancelled with kad_cancel_token_cancel.
    KAD_CANCELLED = 107,
    /// A compare-and-swap signed put found another sequence number than the
    /// one given (the detail names both).
    KAD_CAS_MISMATCH = 108,
    /// A signed or immutable record was refused: bad signature, sequence
    /// number not above the newest, malformed or expired.
    KAD_INVALID_RECORD = 109,
    // --- 200-299: failures inside the library ---
    /// A panic inside the library was caught at the C boundary (a bug).
    KAD_PANIC = 200,
    /// The library's runtime (threads, timers) could not be started.
    KAD_RUNTIME_ERROR = 201,
    /// The data directory (kad_config_set_data_dir) could not be opened,
    /// read or written: in use (by another process or another node of this
    /// one), damaged, of a newer format, or not writable. The detail says
    /// which.
    KAD_DATA_DIR_ERROR = 202,
}

impl kad_result {
    /// Fixed, NUL-terminated description of the code.
    pub(crate) fn message(self) -> &'static str {
        use kad_result::*;
        match self {
            KAD_OK => "success\0",
            KAD_INVALID_ARGUMENT => "invalid argument\0",
            KAD_NULL_POINTER => "unexpected NULL pointer\0",
            KAD_INVALID_HANDLE => "invalid or already freed handle\0",
            KAD_BUFFER_TOO_SMALL => "buffer too small\0",
            KAD_WRONG_TYPE => "value has another type\0",
            KAD_WRONG_THREAD => "blocking call from a library thread (inside a callback)\0",
            KAD_VALUE_TOO_LARGE => "value too large\0",
            KAD_BAD_ADDRESS => "bad address\0",
            KAD_FORKED => "kadmium cannot be used in a forked child process\0",
            KAD_NOT_FOUND => "not found\0",
            KAD_TIMEOUT => "timed out\0",
            KAD_NO_PEERS => "no known peers\0",
            KAD_NETWORK_ERROR => "network error\0",
            KAD_STORAGE_FULL => "storage full\0",
            KAD_BUSY => "too many requests in flight\0",
            KAD_SHUT_DOWN => "node shut down\0",
            KAD_CANCELLED => "operation cancelled\0",
            KAD_CAS_MISMATCH => "compare-and-swap mismatch\0",
            KAD_INVALID_RECORD => "invalid record\0",
            KAD_PANIC => "internal panic (a bug in kadmium)\0",
            KAD_RUNTIME_ERROR => "could not start the kadmium runtime\0",
            KAD_DATA_DIR_ERROR => "data directory error\0",
        }
    }
}

/// Maps dht-core's error type to a result code, keeping its text as the detail.
impl From<&dht_core::Error> for kad_result {
    fn from(e: &dht_core::Error) -> Self {
        use dht_core::Error as E;
        match e {
            E::InvalidArgument(_) => kad_result::KAD_INVALID_ARGUMENT,
            E::ValueTooLarge { .. } => kad_result::KAD_VALUE_TOO_LARGE,
            E::NoPeers => kad_result::KAD_NO_PEERS,
            E::Timeout => kad_result::KAD_TIMEOUT,
            E::BadAddress(_) => kad_result::KAD_BAD_ADDRESS,
            E::Io(_) => kad_result::KAD_NETWORK_ERROR,
            E::StorageFull => kad_result::KAD_STORAGE_FULL,
            E::Busy => kad_result::KAD_BUSY,
            E::Shutdown => kad_result::KAD_SHUT_DOWN,
            E::CasMismatch { .. } => kad_result::KAD_CAS_MISMATCH,
            E::InvalidRecord(_) => kad_result::KAD_INVALID_RECORD,
            E::Persistence(_) => kad_result::KAD_DATA_DIR_ERROR,
        }
    }
}

/// A failure on its way to C: the code plus a human-readable detail.
/// Public for other C ABI modules of this crate's users (e.g. VoidPhone).
#[derive(Debug)]
pub struct Failure {
    pub code: kad_result,
    pub detail: String,
}

impl Failure {
    pub fn new(code: kad_result, detail: impl Into<String>) -> Self {
        Failure {
            code,
            detail: detail.into(),
        }
    }

    /// Record the detail for this thread and return the code.
    pub fn report(self) -> kad_result {
        set_last_error(self.detail);
        self.code
    }
}

impl From<dht_core::Error> for Failure {
    fn from(e: dht_core::Error) -> Self {
        Failure::new(kad_result::from(&e), e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The detail of threads whose `LAST_ERROR` is already destroyed: code run
/// while a thread ends, after its thread-locals (an `atexit` handler or a C++
/// static destructor on the main thread, which glibc's `exit()` runs after
/// them). One slot for all such threads; in practice only the main thread
/// makes calls there.
static DETAIL_IN_TEARDOWN: Mutex<String> = Mutex::new(String::new());

pub(crate) fn set_last_error(detail: String) {
    let mut detail = Some(detail);
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = detail.take().unwrap_or_default());
    if let Some(detail) = detail {
        *DETAIL_IN_TEARDOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = detail;
    }
}

/// `f` of the calling thread's detail.
fn with_last_error<R>(f: impl Fn(&str) -> R) -> R {
    LAST_ERROR
        .try_with(|slot| f(&slot.borrow()))
        .unwrap_or_else(|_| {
            f(&DETAIL_IN_TEARDOWN
                .lock()
                .unwrap_or_else(PoisonError::into_inner))
        })
}

/// Copy `msg` into a C buffer of `len` bytes, truncating at a UTF-8 boundary
/// and always NUL-terminating. Returns the number of bytes written before the NUL.
///
/// # Safety
/// `buf` must be valid for `len` bytes of writes; `len` must be at least 1.
unsafe fn copy_message(msg: &str, buf: *mut c_char, len: usize) -> usize {
    let mut n = msg.len().min(len - 1);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: the caller guarantees `len` writable bytes and n + 1 <= len.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    n
}

/// Write the fixed message of `result` into `buf` (NUL-terminated, truncated
/// to `buf_len`) and its length without the NUL into `*written_out`
/// (`written_out` may be NULL). Unknown codes get "unknown result code".
///
/// Returns KAD_NULL_POINTER if `buf` is NULL, KAD_BUFFER_TOO_SMALL if
/// `buf_len` is 0, KAD_INVALID_ARGUMENT if it is above PTRDIFF_MAX (nothing
/// is written then). The caller owns `buf`. Does not change the last-error
/// detail.
#[no_mangle]
pub unsafe extern "C" fn kad_result_message(
    result: u32,
    buf: *mut c_char,
    buf_len: usize,
    written_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // Failures are not recorded: this call leaves the detail alone.
        if let Err(f) = check_out_buffer(buf, buf_len, "argument `buf`") {
            return f.code;
        }
        if buf_len == 0 {
            return kad_result::KAD_BUFFER_TOO_SMALL;
        }
        let msg = result_from_u32(result).map_or("unknown result code", |r| {
            let m = r.message();
            &m[..m.len() - 1]
        });
        // SAFETY: caller provides `buf_len` writable bytes.
        let n = unsafe { copy_message(msg, buf, buf_len) };
        if !written_out.is_null() {
            // SAFETY: non-NULL out-parameter provided by the caller.
            unsafe { *written_out = n };
        }
        kad_result::KAD_OK
    }
}

/// Fixed, NUL-terminated English name of `result`, e.g. "not found".
/// The string is static: never free it; it stays valid for the life of the
/// process. Unknown codes give "unknown result code".
#[no_mangle]
pub extern "C" fn kad_result_str(result: u32) -> *const c_char {
    ffi_panic_boundary! {
        result_from_u32(result)
            .map_or("unknown result code\0", kad_result::message)
            .as_ptr()
            .cast::<c_char>()
    }
}

/// Copy the detail message of the last failure of a kadmium function on the
/// calling thread (for example "value too large: 9000 bytes (maximum 8137)")
/// into `buf`, NUL-terminated and truncated to `buf_len`; `*written_out`
/// (may be NULL) receives its length without the NUL. The detail is empty if
/// nothing failed on this thread yet; successful calls do not clear it.
/// Code run after a thread's thread-local storage is gone (an atexit handler
/// or C++ static destructor, which glibc's exit() runs after the main
/// thread's) still gets a detail, from one slot shared by such threads.
/// Callbacks see the detail of the operation they report.
///
/// Returns KAD_NULL_POINTER if `buf` is NULL, KAD_BUFFER_TOO_SMALL if
/// `buf_len` is 0, KAD_INVALID_ARGUMENT if it is above PTRDIFF_MAX (nothing
/// is written then; none of these failures changes the detail). The caller
/// owns `buf`; the library keeps its own copy, so later calls never change
/// what was copied.
#[no_mangle]
pub unsafe extern "C" fn kad_last_error_detail(
    buf: *mut c_char,
    buf_len: usize,
    written_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        // Failures are not recorded: that would replace the detail asked for.
        if let Err(f) = check_out_buffer(buf, buf_len, "argument `buf`") {
            return f.code;
        }
        if buf_len == 0 {
            return kad_result::KAD_BUFFER_TOO_SMALL;
        }
        // SAFETY: caller provides `buf_len` writable bytes.
        let n = with_last_error(|detail| unsafe { copy_message(detail, buf, buf_len) });
        if !written_out.is_null() {
            // SAFETY: non-NULL out-parameter provided by the caller.
            unsafe { *written_out = n };
        }
        kad_result::KAD_OK
    }
}

/// Length in bytes (without the NUL) of the detail kad_last_error_detail
/// would copy on the calling thread, untruncated: 0 if nothing failed on this
/// thread yet. A buffer of this length + 1 holds the whole detail; when
/// kad_last_error_detail's `*written_out` is smaller, the copy was truncated.
#[no_mangle]
pub extern "C" fn kad_last_error_detail_len() -> usize {
    ffi_panic_boundary! {
        with_last_error(str::len)
    }
}

/// The code for a raw number from C, if it is one of ours.
fn result_from_u32(n: u32) -> Option<kad_result> {
    use kad_result::*;
    const ALL: [kad_result; 23] = [
        KAD_OK,
        KAD_INVALID_ARGUMENT,
        KAD_NULL_POINTER,
        KAD_INVALID_HANDLE,
        KAD_BUFFER_TOO_SMALL,
        KAD_WRONG_TYPE,
        KAD_WRONG_THREAD,
        KAD_VALUE_TOO_LARGE,
        KAD_BAD_ADDRESS,
        KAD_FORKED,
        KAD_NOT_FOUND,
        KAD_TIMEOUT,
        KAD_NO_PEERS,
        KAD_NETWORK_ERROR,
        KAD_STORAGE_FULL,
        KAD_BUSY,
        KAD_SHUT_DOWN,
        KAD_CANCELLED,
        KAD_CAS_MISMATCH,
        KAD_INVALID_RECORD,
        KAD_PANIC,
        KAD_RUNTIME_ERROR,
        KAD_DATA_DIR_ERROR,
    ];
    ALL.into_iter().find(|r| *r as u32 == n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_nul_terminated_and_codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..300 {
            if let Some(r) = result_from_u32(n) {
                assert!(seen.insert(r as u32));
                let m = r.message();
                assert!(m.ends_with('\0') && !m[..m.len() - 1].contains('\0'));
            }
        }
        assert_eq!(seen.len(), 23);
    }

    #[test]
    fn message_is_truncated_at_char_boundary() {
        let mut buf = [1 as c_char; 4];
        // "é" is two bytes: with room for 3 bytes only "aé" fits.
        let n = unsafe { copy_message("aéb", buf.as_mut_ptr(), buf.len()) };
        assert_eq!(n, 3);
        assert_eq!(buf[3], 0);
        let n = unsafe { copy_message("aéb", buf.as_mut_ptr(), 3) };
        assert_eq!(n, 1);
    }
}
