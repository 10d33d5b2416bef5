//! The gate through which kadmium's own threads call into Python, closed
//! when the interpreter exits.
//!
//! The runtime's threads attach to Python to hand log records to `logging`
//! and to call a Python storage object. Once the interpreter has begun to
//! finalize, a thread that takes the GIL is ended by CPython with
//! `pthread_exit`, whose unwinding through Rust frames aborts the process.
//! Checking for finalization before attaching is not enough: a thread
//! already inside a handler gives the GIL up while it waits for the
//! handler's lock, and takes it again after finalization began (a node
//! stopped by SIGTERM while its API clients' requests fail, each logging a
//! warning, aborted this way).
//!
//! So an `atexit` callback closes the gate, and `atexit` runs before
//! finalization begins: from then on no thread enters, and the callback waits,
//! with the GIL released, for those inside to leave. Entering counts the
//! thread in before it reads whether the gate is closed, and closing marks
//! the gate before it reads the count, both sequentially consistent: either
//! the thread sees the gate closed, or the callback sees it counted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

static CLOSED: AtomicBool = AtomicBool::new(false);
static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// How long exit waits for threads inside Python (a handler blocked for
/// good must not hang the exit; one still inside past this may abort it).
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Run `f` attached to Python, unless the interpreter is exiting (`None`).
pub fn attached<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    INSIDE.fetch_add(1, SeqCst);
    let out = if CLOSED.load(SeqCst) {
        None
    } else {
        Python::try_attach(f)
    };
    INSIDE.fetch_sub(1, SeqCst);
    out
}

/// In a forked child: threads counted inside are the parent's, which do
/// not exist here (its exit would wait for them).
pub fn forget_other_threads() {
    INSIDE.store(0, SeqCst);
}

/// The `atexit` callback: close the gate and wait for threads inside it.
#[pyfunction]
fn _close_exit_gate(py: Python<'_>) {
    CLOSED.store(true, SeqCst);
    let deadline = Instant::now() + EXIT_WAIT;
    py.detach(|| {
        // The caller's own thread is never inside: it holds the GIL here
        // outside any kadmium callback.
        while INSIDE.load(SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Register the callback with `atexit` (at import: `atexit` runs callbacks
/// last-registered first, so those a program registers later, which may
/// still log through kadmium, run before the gate closes).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let close = wrap_pyfunction!(_close_exit_gate, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (close,))?;
    Ok(())
}
