//! Stopping a node: `Node.shutdown`, and its last reference going.

use pyo3::prelude::*;

use crate::node::{PyNode, SHUTDOWN_WAIT};
use crate::reentry::in_callback;

impl PyNode {
    /// Stop the node; idempotent. With `wait`, return once its socket is
    /// closed, so the port can be bound again at once (bounded by
    /// `SHUTDOWN_WAIT`) — except on one of the runtime's own threads or in
    /// a storage callback, which must not block on it.
    pub(crate) fn stop(&self, wait: bool) -> PyResult<()> {
        if self.is_foreign() {
            // A forked child's copy of a parent's node: nothing runs here to stop.
            return Ok(());
        }
        self.inner.shutdown();
        if !wait || tokio::runtime::Handle::try_current().is_ok() || in_callback() {
            return Ok(());
        }
        let rt = crate::runtime::runtime()?;
        let node = self.inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            node.closed().await;
            let _ = tx.send(());
        });
        // Bounded on this thread, not by a tokio timer: the runtime's threads
        // may all be held up — by a log record waiting for a lock this
        // thread holds (a logging handler that stops a node), with one
        // worker on one CPU — and then no timer fires. Past the bound the
        // node still closes, as soon as they can go on.
        let _closed_in_time =
            Python::attach(|py| py.detach(move || rx.recv_timeout(SHUTDOWN_WAIT)));
        Ok(())
    }
}

/// A node nobody can reach any more stops, as upstream's transport closes
/// when it is garbage-collected: a `Server` left running when its loop ended
/// (and with it the refresh timer that held it, as upstream's holds its
/// transport) must not keep its port and answer the network until the
/// process exits. An `ApiServer` holds the node it serves.
///
/// Without waiting: the socket closes a moment later, on the runtime. The
/// collector may run this anywhere — inside a logging handler, holding its
/// lock, while the stopping node's last log record waits for that lock —
/// and at interpreter exit, where giving up the GIL lets a thread the exit
/// gate gave up on take it.
impl Drop for PyNode {
    fn drop(&mut self) {
        let _ = self.stop(false);
    }
}
