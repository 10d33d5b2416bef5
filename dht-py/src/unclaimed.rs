//! Binding a node for Python, up to the moment Python holds it: a node
//! whose asyncio caller was cancelled meanwhile must not run on unseen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dht_core::Error;
use pyo3::prelude::*;

use crate::args::BindArgs;
use crate::error::KadError;
use crate::node::{PyNode, SHUTDOWN_WAIT};

/// Start the node `args` describe.
pub(crate) async fn bind_node(args: BindArgs) -> Result<Unclaimed, KadError> {
    let bound = args.bind().await?;
    Ok(Unclaimed {
        node: Some(PyNode::new(bound.node, bound.memory)),
        values_from: bound.values_from,
    })
}

/// A node bound and not yet handed to Python. One never handed over is
/// stopped when this goes: an asyncio caller cancelled after the bind
/// finished (a `wait_for` timing out, a `TaskGroup` cancelling its other
/// tasks) never settles its future, and the node would run on, bound to
/// its port, with nothing left to stop it. The values it took over from a
/// stopped node can then be taken again.
pub(crate) struct Unclaimed {
    node: Option<PyNode>,
    values_from: Option<Arc<AtomicBool>>,
}

impl Unclaimed {
    /// The node, now held by the caller.
    pub(crate) fn claim(mut self) -> Result<PyNode, KadError> {
        self.node.take().ok_or(KadError(Error::Shutdown))
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        node.inner.shutdown();
        // Until its socket has closed the port is taken, and the values it
        // took over are in use: a listen retried at once would fail, or
        // share them with it. So wait for that (bounded), as `shutdown`
        // does, then hand the values back.
        let (inner, mark) = (node.inner.clone(), self.values_from.take());
        let release = async move {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, inner.closed()).await;
            if let Some(mark) = mark {
                mark.store(false, Ordering::SeqCst);
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // On one of the runtime's threads, which must not block on it.
            tokio::spawn(release);
        } else if let Ok(rt) = crate::runtime::runtime() {
            let _ = Python::try_attach(|py| py.detach(|| rt.block_on(release)));
        }
    }
}

impl<'py> IntoPyObject<'py> for Unclaimed {
    type Target = PyNode;
    type Output = Bound<'py, PyNode>;
    type Error = PyErr;

    fn into_pyobject(mut self, py: Python<'py>) -> PyResult<Bound<'py, PyNode>> {
        let Some(node) = self.node.take() else {
            return Err(KadError(Error::Shutdown).into());
        };
        let inner = node.inner.clone();
        Bound::new(py, node).inspect_err(|_| inner.shutdown())
    }
}
