//! The tokio runtime shared by every node of the process, and the bridge from
//! blocking Python calls into it.

use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use dht_core::Doorbell;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::error::KadError;

/// How often a blocking call wakes up to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// How many times this process's line was forked since the module was
/// loaded: bumped in a child by the hook [`register_fork_hook`] installs
/// (`os.register_at_fork`: every fork through Python, `multiprocessing`'s
/// included). An atomic read, where asking the kernel for the process id
/// would be a system call on every node call; and unlike a process id it is
/// never reused.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// This process's place in its line of forks (see [`FORK_GENERATION`]).
pub fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Acquire)
}

/// The hook run in a child just after `fork()`.
#[pyfunction]
fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
    crate::exit_gate::forget_other_threads();
}

/// Have Python call [`_after_fork_in_child`] in every forked child.
pub fn register_fork_hook(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(_after_fork_in_child, m)?;
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("after_in_child", hook)?;
    m.py()
        .import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

/// The runtime of this process, the fork generation that started it, and
/// the doorbell through which Python's threads wake its nodes.
struct Started {
    generation: u64,
    runtime: Runtime,
    doorbell: Option<Doorbell>,
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
    started().map(|started| &started.runtime)
}

/// The doorbell through which calls from Python's threads wake the nodes of
/// the process's runtime (see `dht_core::Doorbell`); None if it could not be
/// made (its socket pair), and then nodes are woken as tokio does it.
pub fn doorbell() -> Option<&'static Doorbell> {
    started().ok()?.doorbell.as_ref()
}

fn started() -> Result<&'static Started, KadError> {
    let generation = fork_generation();
    loop {
        let seen = CURRENT.load(Ordering::Acquire);
        // SAFETY: a non-null pointer in CURRENT came from `Box::into_raw` in
        // this function and is never freed, so it stays valid for 'static.
        if let Some(started) = unsafe { seen.as_ref() } {
            if started.generation == generation {
                return Ok(started);
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("kadmium-rt")
            .enable_all()
            .build()
            .map_err(|e| KadError(dht_core::Error::Io(e)))?;
        let doorbell = {
            let _inside = runtime.enter();
            Doorbell::start().ok()
        };
        let fresh = Box::into_raw(Box::new(Started {
            generation,
            runtime,
            doorbell,
        }));
        match CURRENT.compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: `fresh` was just made by `Box::into_raw` and is now
            // published, never to be freed.
            Ok(_) => return Ok(unsafe { &*fresh }),
            // Another thread started one first: use it, drop ours (never
            // published, so nothing else refers to it).
            // SAFETY: `fresh` came from `Box::into_raw` and was not shared.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// Refuse a node bound in fork generation `bound_in`, before this process
/// was forked from its parent: the node's threads are the parent's.
pub fn check_same_process(bound_in: u64) -> PyResult<()> {
    if bound_in == fork_generation() {
        return Ok(());
    }
    Err(crate::error::ShutdownError::new_err(
        "this node was bound before this process was forked from its parent: its threads \
         are the parent's, not here. Bind a node in the child, or use multiprocessing's \
         'spawn' start method",
    ))
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
