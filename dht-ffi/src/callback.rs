//! Asynchronous calls: callback types and the one place that runs an
//! operation on the runtime and reports its outcome to C exactly once.

use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::cancel::Cancel;
use crate::error::{kad_result, set_last_error, Failure};
use crate::node::CallbackTicket;
use crate::runtime::{as_callback, runtime};
use crate::value::kad_value;

/// Called once when kad_node_bootstrap_async finishes. `contacts` is the number
/// of contacts found (0 unless `result` is KAD_OK).
pub type kad_bootstrap_callback =
    Option<unsafe extern "C-unwind" fn(userdata: *mut c_void, result: kad_result, contacts: usize)>;

/// Called once when a put finishes. `stored` is the number of nodes that
/// hold the value (remote acknowledgements plus this node's own copy; 0
/// unless `result` is KAD_OK).
pub type kad_put_callback =
    Option<unsafe extern "C-unwind" fn(userdata: *mut c_void, result: kad_result, stored: usize)>;

/// Called once when a get finishes. On KAD_OK `value` is a new kad_value owned
/// by the callback (release it with kad_value_free, from any thread, at any
/// time); otherwise `value` is NULL (KAD_NOT_FOUND when the key is missing).
pub type kad_get_callback = Option<
    unsafe extern "C-unwind" fn(userdata: *mut c_void, result: kad_result, value: *mut kad_value),
>;

/// Called once when kad_node_ping_async finishes. On KAD_OK `id` points to the
/// peer's KAD_ID_LEN-byte node id, valid only during the call (copy it);
/// otherwise `id` is NULL and `id_len` 0.
pub type kad_ping_callback = Option<
    unsafe extern "C-unwind" fn(
        userdata: *mut c_void,
        result: kad_result,
        id: *const u8,
        id_len: usize,
    ),
>;

// The callback types are "C-unwind": a C++ exception escaping a callback
// then reaches our catch_unwind, where Rust aborts the process (a defined,
// documented outcome) instead of unwinding through frames that forbid it.

/// The caller's `void *userdata`, carried to the callback thread untouched.
#[derive(Clone, Copy)]
pub(crate) struct Userdata(*mut c_void);

// SAFETY: the library never dereferences userdata; it only hands it back to
// the caller's callback, which is documented to run on a library thread.
unsafe impl Send for Userdata {}

impl Userdata {
    pub(crate) fn new(p: *mut c_void) -> Self {
        Userdata(p)
    }
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

/// The delivery of an operation whose outcome is a count (bootstrap: the
/// contacts found; put: the nodes that stored): `callback(userdata, KAD_OK, n)`
/// on success, `callback(userdata, code, 0)` on failure. `kad_bootstrap_callback`
/// and `kad_put_callback` share this signature.
pub(crate) fn deliver_count(
    callback: Option<unsafe extern "C-unwind" fn(*mut c_void, kad_result, usize)>,
    userdata: Userdata,
) -> impl FnOnce(Result<usize, Failure>) + Send + 'static {
    move |outcome| {
        let (code, n) = match outcome {
            Ok(n) => (kad_result::KAD_OK, n),
            Err(f) => (f.code, 0),
        };
        if let Some(cb) = callback {
            // SAFETY: the caller's C callback, with the caller's own userdata.
            unsafe { cb(userdata.get(), code, n) };
        }
    }
}

/// Run `deliver` on a callback thread (the runtime's blocking pool, at most
/// KAD_CALLBACK_THREADS of them), marked as a callback so blocking calls
/// inside it are refused. Called from inside the runtime.
pub(crate) fn deliver_on_callback_thread(deliver: impl FnOnce() + Send + 'static) {
    // The blocking pool never refuses work while the runtime lives, and
    // the runtime lives as long as the process.
    drop(tokio::task::spawn_blocking(move || {
        // A panic in our own delivery code must not kill the thread
        // silently; C callbacks themselves cannot unwind into Rust.
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || as_callback(deliver))) {
            crate::panic::record_panic(&*p);
        }
    }));
}

/// Run `op` on the library runtime; when it is done (or `timeout_ms` passed,
/// 0 = no limit), call `deliver` with its outcome exactly once.
///
/// `deliver` runs on the runtime's blocking pool, not on a worker thread, so a
/// slow callback never holds up the tasks that handle the nodes' packets; no
/// library lock is held while it runs. A failure's detail is recorded as that
/// thread's last error first, so the callback can read it. `ticket` is
/// dropped once the callback has returned (see kad_node_free_wait).
pub(crate) fn spawn_with_callback<T, F, D>(
    ticket: CallbackTicket,
    cancel: Cancel,
    timeout_ms: u32,
    op: F,
    deliver: D,
) -> Result<(), Failure>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Failure>> + Send + 'static,
    D: FnOnce(Result<T, Failure>) + Send + 'static,
{
    let rt = runtime()?;
    let run = async move {
        // A separate task, so that a panic inside the operation is caught by
        // tokio and reported as KAD_PANIC instead of losing the callback.
        let task = tokio::spawn(async move {
            let limited = async move {
                if timeout_ms == 0 {
                    return op.await;
                }
                let limit = Duration::from_millis(u64::from(timeout_ms));
                tokio::time::timeout(limit, op).await.unwrap_or_else(|_| {
                    Err(Failure::new(
                        kad_result::KAD_TIMEOUT,
                        format!("operation did not finish within {timeout_ms} ms"),
                    ))
                })
            };
            // Dropping the losing branch cancels the operation in the node.
            tokio::select! {
                biased;
                () = cancel.cancelled() => Err(Failure::new(
                    kad_result::KAD_CANCELLED,
                    "operation cancelled with kad_cancel_token_cancel",
                )),
                r = limited => r,
            }
        });
        let outcome = match task.await {
            Ok(r) => r,
            Err(e) => Err(Failure::new(
                kad_result::KAD_PANIC,
                format!("panic inside kadmium: {e}"),
            )),
        };
        deliver_on_callback_thread(move || {
            if let Err(f) = &outcome {
                set_last_error(f.detail.clone());
            }
            deliver(outcome);
            drop(ticket);
        });
    };
    // From a C thread, `rt.spawn` would wake a second worker too (see
    // `dht_core::Doorbell`).
    match crate::runtime::doorbell() {
        Some(doorbell) => doorbell.spawn(run),
        None => drop(rt.spawn(run)),
    }
    Ok(())
}
