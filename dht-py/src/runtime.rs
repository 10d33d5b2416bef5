//! The tokio runtime shared by every node of the process, and the bridge from
//! blocking Python calls into it.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::error::KadError;

/// How often a blocking call wakes up to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The one runtime of the process: every node's driver task and every
/// operation, called from asyncio or blocking code, run on its threads.
pub fn runtime() -> Result<&'static Runtime, KadError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("kadmium-rt")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| KadError(dht_core::Error::Io(std::io::Error::other(e.clone()))))
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
