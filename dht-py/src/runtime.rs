//! The tokio runtime shared by every node of the process, and the bridge from
//! blocking Python calls into it.

use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::error::KadError;

/// How often a blocking call wakes up to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The runtime of this process, and which process started it.
struct Started {
    pid: u32,
    runtime: Runtime,
}

/// The current [`Started`]: leaked, never freed (see [`runtime`]).
static CURRENT: AtomicPtr<Started> = AtomicPtr::new(ptr::null_mut());

/// The one runtime of the process: every node's driver task and every
/// operation, called from asyncio or blocking code, run on its threads.
///
/// A child forked after the runtime started (`multiprocessing`'s default
/// start method on Linux) holds the parent's runtime in memory but none of
/// its threads: work handed to it would wait forever. So a process that
/// finds the runtime started by another one starts its own; nodes the child
/// binds then work. The parent's is left as it is: dropping it would wait
/// for threads that do not exist here. (Nodes the parent bound cannot be
/// used in the child: [`check_same_process`].)
pub fn runtime() -> Result<&'static Runtime, KadError> {
    let pid = std::process::id();
    loop {
        let seen = CURRENT.load(Ordering::Acquire);
        // SAFETY: a non-null pointer in CURRENT came from `Box::into_raw` in
        // this function and is never freed, so it stays valid for 'static.
        if let Some(started) = unsafe { seen.as_ref() } {
            if started.pid == pid {
                return Ok(&started.runtime);
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("kadmium-rt")
            .enable_all()
            .build()
            .map_err(|e| KadError(dht_core::Error::Io(e)))?;
        let fresh = Box::into_raw(Box::new(Started { pid, runtime }));
        match CURRENT.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: `fresh` was just made by `Box::into_raw` and is now
            // published, never to be freed.
            Ok(_) => return Ok(unsafe { &(*fresh).runtime }),
            // Another thread started one first: use it, drop ours (never
            // published, so nothing else refers to it).
            // SAFETY: `fresh` came from `Box::into_raw` and was not shared.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// Refuse a node bound by `bound_by`, another process: this is a child
/// forked after the node started, and the node's threads are the parent's.
pub fn check_same_process(bound_by: u32) -> PyResult<()> {
    let here = std::process::id();
    if bound_by == here {
        return Ok(());
    }
    Err(crate::error::ShutdownError::new_err(format!(
        "this node was bound by process {bound_by} and this is process {here}, a child \
         forked from it: the node's threads are not here. Bind a node in the child, or \
         use multiprocessing's 'spawn' start method"
    )))
}

/// Run `fut` to completion on the shared runtime without holding the GIL, so
/// other Python threads keep running. Signals are checked every 100 ms; a
/// pending KeyboardInterrupt drops (and so cancels) the operation.
pub fn block_on<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = Result<T, KadError>> + Send,
    T: Send,
{
    crate::reentry::refuse_reentry()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        // A logging handler runs on the thread that logged: one of the
        // runtime's, or a caller's thread while kadmium runs the runtime
        // there. Waiting for the runtime from inside it would stall it
        // (tokio refuses with a panic).
        return Err(PyRuntimeError::new_err(
            "a blocking kadmium call cannot be made from inside kadmium's runtime \
             (a logging handler called by kadmium runs there): \
             use the asyncio API or another thread",
        ));
    }
    let rt = runtime()?;
    let mut fut = Box::pin(fut);
    loop {
        // The timer must be created inside the runtime, hence the async block.
        let step =
            py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut fut).await }));
        match step {
            Ok(result) => return result.map_err(PyErr::from),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}
