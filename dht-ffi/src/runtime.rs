//! The one tokio runtime of the library, created on first use and never shut
//! down (C programs have no destructor hook that runs before their threads
//! exit; keeping it alive for the process is the simple, safe choice), and
//! the rules about which thread may wait for what.
//!
//! Threads: `worker` threads (one per core) run the nodes' drivers and never
//! run C code except a log callback; at most [`KAD_CALLBACK_THREADS`]
//! threads of tokio's blocking pool run the C callbacks. After `fork()` none
//! of these threads exist in the child, so every call that would need them
//! fails with KAD_FORKED instead of waiting forever.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use dht_core::Doorbell;
use tokio::runtime::{Handle, Runtime};

use crate::error::{kad_result, Failure};

/// Most library threads that run C callbacks at once. When that many
/// callbacks are running (or blocked), further callbacks wait in order for
/// one of them to return; they are delayed, never lost. Host names given
/// to _async calls are resolved on the same pool (blocking calls resolve
/// them on the calling thread).
pub const KAD_CALLBACK_THREADS: usize = 64;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
/// Wakes the nodes for calls from C threads (see `dht_core::Doorbell`).
static DOORBELL: OnceLock<Option<Doorbell>> = OnceLock::new();
/// The process that started the runtime (0 = not started yet).
static RUNTIME_PID: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// True while this thread runs a C callback of the library.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
    /// True on the runtime's own threads (workers and callback threads), for
    /// good: unlike tokio's context, which `Handle::try_current` reads, a
    /// `const` Cell is never destroyed, so this still holds in code a thread
    /// runs after its thread-locals are gone (a callback that calls `exit()`).
    static ON_RUNTIME_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is one of the runtime's.
fn on_runtime_thread() -> bool {
    Handle::try_current().is_ok() || ON_RUNTIME_THREAD.with(Cell::get)
}

/// The library runtime, starting it if needed; KAD_FORKED in a child
/// process of the one that started it (its threads did not survive fork).
pub(crate) fn runtime() -> Result<&'static Runtime, Failure> {
    check_not_forked()?;
    RUNTIME
        .get_or_init(|| {
            RUNTIME_PID.store(std::process::id(), Ordering::SeqCst);
            crate::log::install();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("kadmium")
                .on_thread_start(|| ON_RUNTIME_THREAD.with(|on| on.set(true)))
                .max_blocking_threads(KAD_CALLBACK_THREADS)
                .build()
                .map_err(|e| format!("cannot start the kadmium runtime: {e}"))?;
            let _inside = runtime.enter();
            // Without it (no socket pair to be had), nodes are woken as
            // tokio does it.
            let _ = DOORBELL.set(Doorbell::start().ok());
            drop(_inside);
            Ok(runtime)
        })
        .as_ref()
        .map_err(|e| Failure::new(kad_result::KAD_RUNTIME_ERROR, e.clone()))
}

/// The runtime's doorbell, once the runtime has started and if it has one.
pub(crate) fn doorbell() -> Option<&'static Doorbell> {
    DOORBELL.get()?.as_ref()
}

/// KAD_FORKED when the runtime was started by another process, i.e. this is
/// a child created by fork() after the library was used. Takes no lock, so
/// it is safe in a child whatever the parent's threads held at fork time.
pub(crate) fn check_not_forked() -> Result<(), Failure> {
    let started_by = RUNTIME_PID.load(Ordering::SeqCst);
    if started_by != 0 && started_by != std::process::id() {
        return Err(Failure::new(
            kad_result::KAD_FORKED,
            format!(
                "kadmium was started in process {started_by}; its threads do not exist in this \
                 forked child, so its nodes and runtime cannot be used here (create nodes after \
                 fork, or exec)"
            ),
        ));
    }
    Ok(())
}

/// Fail with KAD_WRONG_THREAD when called on a runtime thread: `block_on`
/// there would panic (or deadlock the worker it runs on).
pub(crate) fn ensure_not_runtime_thread() -> Result<(), Failure> {
    if on_runtime_thread() {
        return Err(Failure::new(
            kad_result::KAD_WRONG_THREAD,
            "blocking kadmium calls cannot be made from a library thread (inside a \
             callback); use the _async variant",
        ));
    }
    Ok(())
}

/// Run `f` as a C callback: marked so that [`wait_on_runtime`] knows this
/// thread may block (it is a blocking-pool thread, not a worker).
pub(crate) fn as_callback<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let was = self.0;
            let _ = IN_CALLBACK.try_with(|c| c.set(was));
        }
    }
    let _reset = Reset(IN_CALLBACK.try_with(|c| c.replace(true)).unwrap_or(false));
    f()
}

/// KAD_WRONG_THREAD on a worker thread (inside a log callback), where
/// [`wait_on_runtime`] refuses to wait. Calls that wait check this before
/// they change anything, so that the refusal means "nothing was done".
pub(crate) fn ensure_may_wait() -> Result<(), Failure> {
    let on_runtime = on_runtime_thread();
    let in_callback = IN_CALLBACK.try_with(Cell::get).unwrap_or(false);
    if on_runtime && !in_callback {
        return Err(Failure::new(
            kad_result::KAD_WRONG_THREAD,
            "this kadmium call waits, and cannot be made from a log callback",
        ));
    }
    Ok(())
}

/// Wait for `fut` (run on the runtime) from a thread that may block: a C
/// thread, or a callback thread (the future runs on the workers, so waiting
/// there cannot deadlock). `None` if `limit` passed first. On a worker
/// thread (e.g. inside a log callback) waiting could stall the very task
/// being waited for, so it is refused with KAD_WRONG_THREAD.
pub(crate) fn wait_on_runtime<T, F>(limit: Option<Duration>, fut: F) -> Result<Option<T>, Failure>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    ensure_may_wait()?;
    let rt = runtime()?;
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    Ok(match limit {
        Some(limit) => rx.recv_timeout(limit).ok(),
        // The runtime lives as long as the process, so the task finishes.
        None => rx.recv().ok(),
    })
}

/// Run `fut` to completion on the library runtime from a C thread, giving up
/// after `timeout_ms` (0 = no limit beyond the operation's own RPC timeouts).
/// Giving up drops the future, which cancels the operation in the node.
pub(crate) fn block_on<T, F>(timeout_ms: u32, fut: F) -> Result<T, Failure>
where
    T: Send,
    F: Future<Output = Result<T, Failure>> + Send,
{
    ensure_not_runtime_thread()?;
    let rt = runtime()?;
    if timeout_ms == 0 {
        return run_blocking(rt, fut)?;
    }
    let limit = Duration::from_millis(u64::from(timeout_ms));
    run_blocking(rt, async move { tokio::time::timeout(limit, fut).await })?.unwrap_or_else(|_| {
        Err(Failure::new(
            kad_result::KAD_TIMEOUT,
            format!("operation did not finish within {timeout_ms} ms"),
        ))
    })
}

/// `rt.block_on(fut)`, also where this thread's tokio context is gone.
///
/// glibc's `exit()` destroys the main thread's thread-locals before it runs
/// `atexit` handlers and C++ static destructors, and tokio's `block_on`
/// panics without them ("The Tokio context thread-local variable has been
/// destroyed"): a final put from such a handler got KAD_PANIC. There the
/// future runs on a thread of its own, which has a context, while this one
/// waits for it.
pub(crate) fn run_blocking<T, F>(rt: &Runtime, fut: F) -> Result<T, Failure>
where
    T: Send,
    F: Future<Output = T> + Send,
{
    // Callers refused the runtime's own threads first (`ensure_not_runtime_thread`),
    // so here the context is either this C thread's or gone.
    if !matches!(Handle::try_current(), Err(e) if e.is_thread_local_destroyed()) {
        return Ok(rt.block_on(fut));
    }
    std::thread::scope(|scope| {
        let waiter = std::thread::Builder::new()
            .name("kadmium-exit".into())
            .spawn_scoped(scope, || rt.block_on(fut))
            .map_err(|e| {
                Failure::new(
                    kad_result::KAD_RUNTIME_ERROR,
                    format!("cannot start a thread to wait on (this thread is exiting): {e}"),
                )
            })?;
        // A panic in the future goes on to the caller's panic boundary.
        match waiter.join() {
            Ok(output) => Ok(output),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
