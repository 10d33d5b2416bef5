//! The work behind `kadmium._kadmium.Node`'s network methods (run on the
//! runtime, blocking or as asyncio awaitables alike), and the Python shapes
//! of their results.

use std::time::Duration;

use dht_core::{Contact, Error, Key, Node, PutOptions, Value};
use pyo3::prelude::*;

use crate::args::{resolve, resolve_usable};
use crate::error::KadError;
use crate::value::PyValue;

/// A contact as Python sees it: `(id, ip, port)`, the order of
/// `tuple(kademlia.node.Node)`.
pub(crate) type PyContact = (Vec<u8>, String, u16);
/// `(key, value, seconds since stored)`.
pub(crate) type PyHeld = (Vec<u8>, PyValue, f64);
/// `(stored_remote, stored_locally, contacted)`.
pub(crate) type PyPutReport = (usize, bool, usize);

pub(crate) fn contact_to_py(c: &Contact) -> PyContact {
    (
        c.id.as_bytes().to_vec(),
        c.addr.ip().to_string(),
        c.addr.port(),
    )
}

/// A lookup's result for Python: the value, or the caller's `default` when
/// nothing was found (so a stored `None` and a missing key can be told apart).
pub(crate) struct Found {
    pub(crate) value: Option<PyValue>,
    pub(crate) default: Py<PyAny>,
}

impl<'py> IntoPyObject<'py> for Found {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        match self.value {
            Some(v) => v.into_pyobject(py),
            None => Ok(self.default.into_bound(py)),
        }
    }
}

pub(crate) async fn get_with_timeout(
    node: Node,
    key: Key,
    timeout: Option<Duration>,
    default: Py<PyAny>,
) -> Result<Found, KadError> {
    let found = match timeout {
        Some(t) => tokio::time::timeout(t, node.get(key))
            .await
            .map_err(|_| KadError(Error::Timeout))??,
        None => node.get(key).await?,
    };
    Ok(Found {
        value: found.map(PyValue),
        default,
    })
}

pub(crate) async fn put_report(
    node: Node,
    key: Key,
    value: Value,
    options: PutOptions,
) -> Result<PyPutReport, KadError> {
    let r = node.put(key, value, options).await?;
    Ok((r.stored_remote, r.stored_locally, r.contacted))
}

pub(crate) async fn bootstrap(
    node: Node,
    addrs: Vec<(String, u16)>,
) -> Result<Vec<PyContact>, KadError> {
    let addrs = resolve_usable(addrs, node.local_addr()).await?;
    Ok(node
        .bootstrap(&addrs)
        .await?
        .iter()
        .map(contact_to_py)
        .collect())
}

pub(crate) async fn ping(node: Node, host: String, port: u16) -> Result<Vec<u8>, KadError> {
    let addr = resolve(&host, port, Some(node.local_addr())).await?;
    Ok(node.ping(addr).await?.as_bytes().to_vec())
}
