//! The one tokio runtime of the library, created on first use and never shut
//! down (C programs have no destructor hook that runs before their threads
//! exit; keeping it alive for the process is the simple, safe choice).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::error::{kad_result, Failure};

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The library runtime, starting it if needed.
pub(crate) fn runtime() -> Result<&'static Runtime, Failure> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("kadmium")
                .build()
                .map_err(|e| format!("cannot start the kadmium runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| Failure::new(kad_result::KAD_RUNTIME_ERROR, e.clone()))
}

/// Fail with KAD_WRONG_THREAD when called on a runtime thread: `block_on`
/// there would panic (or deadlock the worker it runs on).
pub(crate) fn ensure_not_runtime_thread() -> Result<(), Failure> {
    if Handle::try_current().is_ok() {
        return Err(Failure::new(
            kad_result::KAD_WRONG_THREAD,
            "blocking kadmium calls cannot be made from a library thread (inside a \
             callback); use the _async variant",
        ));
    }
    Ok(())
}

/// Run `fut` to completion on the library runtime from a C thread, giving up
/// after `timeout_ms` (0 = no limit beyond the operation's own RPC timeouts).
/// Giving up drops the future, which cancels the operation in the node.
pub(crate) fn block_on<T, F>(timeout_ms: u32, fut: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    ensure_not_runtime_thread()?;
    let rt = runtime()?;
    if timeout_ms == 0 {
        return rt.block_on(fut);
    }
    let limit = Duration::from_millis(u64::from(timeout_ms));
    rt.block_on(async move { tokio::time::timeout(limit, fut).await })
        .unwrap_or_else(|_| {
            Err(Failure::new(
                kad_result::KAD_TIMEOUT,
                format!("operation did not finish within {timeout_ms} ms"),
            ))
        })
}
