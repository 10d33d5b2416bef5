//! `kadmium._kadmium.Node`: a thin handle on a running `dht_core::Node`.
//!
//! Each network operation comes as a blocking method (the GIL is released
//! while it waits) and an `_async` twin returning an asyncio awaitable; the
//! Rust work runs on the shared tokio runtime either way. Arguments are
//! converted to owned Rust values before the GIL is released. Keys arrive
//! already hashed (20 bytes): hashing is `kadmium.utils.digest`'s job.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Contact, Error, Node};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{key_from, put_options, seconds, BindArgs, TakenMemory};
use crate::bridge::{awaitable, awaitable_then};
use crate::bytes_arg;
use crate::error::KadError;
use crate::node_ops::{
    bootstrap, contact_to_py, get_with_timeout, ping, put_report, Found, PyContact, PyHeld,
    PyPutReport,
};
use crate::reentry::refuse_reentry;
use crate::runtime::{block_on, check_same_process, fork_generation};
use crate::storage::ViewedMemory;
use crate::unclaimed::bind_node;
use crate::value::{value_from_py, PyValue};

/// Longest `shutdown` waits for the node's task to close its socket (it
/// takes microseconds; the bound only keeps a wedged runtime from hanging
/// Python).
pub(crate) const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

#[pyclass(frozen, name = "Node", module = "kadmium._kadmium")]
pub struct PyNode {
    pub(crate) inner: Node,
    /// The default storage, for Python's read-only views; None when values
    /// live in a Python storage object (which is then the view).
    memory: Option<ViewedMemory>,
    /// Set once a node bound with `values_of` this one took over `memory`.
    values_passed_on: Arc<AtomicBool>,
    /// The fork generation that bound it (`runtime::fork_generation`): its
    /// threads are that process's.
    bound_in: u64,
}

impl PyNode {
    /// A node just bound in this process, with its default storage (None
    /// with a Python storage object).
    pub(crate) fn new(inner: Node, memory: Option<ViewedMemory>) -> PyNode {
        PyNode {
            inner,
            memory,
            values_passed_on: Arc::default(),
            bound_in: fork_generation(),
        }
    }

    /// Whether this is a forked child's copy of a node its parent bound:
    /// nothing of it runs here, so it counts as stopped.
    pub(crate) fn is_foreign(&self) -> bool {
        self.bound_in != fork_generation()
    }

    /// The node, for a call that needs its threads: `ShutdownError` in a
    /// child forked after the node was bound, where they do not exist (the
    /// call would wait forever).
    pub(crate) fn node(&self) -> PyResult<&Node> {
        check_same_process(self.bound_in)?;
        Ok(&self.inner)
    }

    /// This node's default storage, for a node that goes on with its values:
    /// once this one has closed (its task gone, nothing else touches the
    /// storage), and to one node only. None when a Python storage object
    /// held its values.
    fn take_memory(&self) -> Result<Option<TakenMemory>, KadError> {
        if self.is_foreign() {
            // A forked child's copy of a parent's node: its storage may have
            // been locked by one of the parent's threads at the fork, and
            // the values are the parent's. The new node starts empty.
            return Ok(None);
        }
        if !self.inner.is_closed() {
            return Err(KadError(Error::InvalidArgument(
                "values_of must be a node that has stopped".into(),
            )));
        }
        self.memory
            .clone()
            .map(|m| TakenMemory::take(m, &self.values_passed_on))
            .transpose()
    }
}

#[pymethods]
impl PyNode {
    /// Bind a UDP socket and start the node (blocking; port 0 picks a free port).
    #[staticmethod]
    #[pyo3(signature = (host="0.0.0.0".to_string(), port=0, *, k=20, alpha=3, node_id=None, rpc_timeout=None, max_value_size=None, default_ttl=None, storage=None, client_only=false, strict_local_limits=false, data_dir=None, unix_time_at_start=None, values_of=None))]
    #[allow(clippy::too_many_arguments)]
    fn bind(
        py: Python<'_>,
        host: String,
        port: u16,
        k: usize,
        alpha: usize,
        node_id: Option<Vec<u8>>,
        rpc_timeout: Option<f64>,
        max_value_size: Option<usize>,
        default_ttl: Option<f64>,
        storage: Option<Py<PyAny>>,
        client_only: bool,
        strict_local_limits: bool,
        data_dir: Option<std::path::PathBuf>,
        unix_time_at_start: Option<f64>,
        values_of: Option<PyRef<'_, PyNode>>,
    ) -> PyResult<PyNode> {
        let args = BindArgs::new(
            host,
            port,
            k,
            alpha,
            node_id,
            rpc_timeout,
            max_value_size,
            default_ttl,
        )?
        .with_storage(storage)
        .with_modes(client_only, strict_local_limits)
        .with_data_dir(data_dir)
        .with_wall_clock(unix_time_at_start)?
        .with_memory(values_of.map(|n| n.take_memory()).transpose()?.flatten())?;
        Ok(block_on(py, bind_node(args))?.claim()?)
    }

    /// `bind` as an awaitable.
    #[staticmethod]
    #[pyo3(signature = (host="0.0.0.0".to_string(), port=0, *, k=20, alpha=3, node_id=None, rpc_timeout=None, max_value_size=None, default_ttl=None, storage=None, client_only=false, strict_local_limits=false, data_dir=None, unix_time_at_start=None, values_of=None))]
    #[allow(clippy::too_many_arguments)]
    fn bind_async<'py>(
        py: Python<'py>,
        host: String,
        port: u16,
        k: usize,
        alpha: usize,
        node_id: Option<Vec<u8>>,
        rpc_timeout: Option<f64>,
        max_value_size: Option<usize>,
        default_ttl: Option<f64>,
        storage: Option<Py<PyAny>>,
        client_only: bool,
        strict_local_limits: bool,
        data_dir: Option<std::path::PathBuf>,
        unix_time_at_start: Option<f64>,
        values_of: Option<PyRef<'py, PyNode>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = BindArgs::new(
            host,
            port,
            k,
            alpha,
            node_id,
            rpc_timeout,
            max_value_size,
            default_ttl,
        )?
        .with_storage(storage)
        .with_modes(client_only, strict_local_limits)
        .with_data_dir(data_dir)
        .with_wall_clock(unix_time_at_start)?
        .with_memory(values_of.map(|n| n.take_memory()).transpose()?.flatten())?;
        awaitable(py, bind_node(args))
    }

    #[getter]
    fn id(&self) -> Vec<u8> {
        self.inner.id().as_bytes().to_vec()
    }

    #[getter]
    fn local_addr(&self) -> (String, u16) {
        let a = self.inner.local_addr();
        (a.ip().to_string(), a.port())
    }

    /// This node's address as its peers see it, once two peer IPs agree;
    /// None before that.
    #[getter]
    fn public_address(&self, py: Python<'_>) -> PyResult<Option<(String, u16)>> {
        refuse_reentry()?;
        let node = self.node()?.clone();
        // Off the GIL: it reads the node's counters under the node's lock.
        let addr = py.detach(move || node.public_address());
        Ok(addr.map(|a| (a.ip().to_string(), a.port())))
    }

    #[getter]
    fn k(&self) -> usize {
        self.inner.config().k
    }

    #[getter]
    fn alpha(&self) -> usize {
        self.inner.config().alpha
    }

    #[getter]
    fn max_value_size(&self) -> usize {
        self.inner.config().max_value_size
    }

    /// Ping every `(host, port)`, then look up our own id; the contacts found.
    fn bootstrap(&self, py: Python<'_>, addrs: Vec<(String, u16)>) -> PyResult<Vec<PyContact>> {
        block_on(py, bootstrap(self.node()?.clone(), addrs))
    }

    fn bootstrap_async<'py>(
        &self,
        py: Python<'py>,
        addrs: Vec<(String, u16)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, bootstrap(self.node()?.clone(), addrs))
    }

    /// Store `value` under the 20-byte `key` at the k closest nodes.
    #[pyo3(signature = (key, value, *, ttl=None))]
    fn put(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = bytes_arg::key)] key: Vec<u8>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<PyPutReport> {
        let (key, value, options) = (key_from(&key)?, value_from_py(value)?, put_options(ttl)?);
        block_on(py, put_report(self.node()?.clone(), key, value, options))
    }

    // `ttl` (`get_async`'s `timeout`) may come by position: cheaper to parse.
    #[pyo3(signature = (key, value, ttl=None))]
    fn put_async<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = bytes_arg::key)] key: Vec<u8>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (key, value, options) = (key_from(&key)?, value_from_py(value)?, put_options(ttl)?);
        let node = self.node()?.clone();
        awaitable_then(py, move |pending| {
            let ticket = node.put_then(key, value, options, move |report| {
                let report = report.map(|r| (r.stored_remote, r.stored_locally, r.contacted));
                pending.settle(report.map_err(KadError));
            });
            Box::new(move || node.cancel(ticket))
        })
    }

    /// The value under the 20-byte `key`, or `default` (None) if not found.
    #[pyo3(signature = (key, *, timeout=None, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = bytes_arg::key)] key: Vec<u8>,
        timeout: Option<f64>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let key = key_from(&key)?;
        let timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        let default = default.unwrap_or_else(|| py.None());
        let found = block_on(
            py,
            get_with_timeout(self.node()?.clone(), key, timeout, default),
        )?;
        Ok(found.into_pyobject(py)?.unbind())
    }

    #[pyo3(signature = (key, timeout=None, *, default=None))]
    fn get_async<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = bytes_arg::key)] key: Vec<u8>,
        timeout: Option<f64>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_from(&key)?;
        let timeout = timeout.map(|t| seconds("timeout", t)).transpose()?;
        let default = default.unwrap_or_else(|| py.None());
        if timeout.is_some() {
            return awaitable(
                py,
                get_with_timeout(self.node()?.clone(), key, timeout, default),
            );
        }
        // The common case skips the tokio task: the driver settles the future.
        let node = self.node()?.clone();
        awaitable_then(py, move |pending| {
            let ticket = node.get_then(key, move |found| {
                let found = found.map(|value| Found {
                    value: value.map(PyValue),
                    default,
                });
                pending.settle(found.map_err(KadError));
            });
            Box::new(move || node.cancel(ticket))
        })
    }

    /// The value this node itself holds under the 20-byte `key`, or
    /// `default`; no network traffic (upstream's `get` checks its storage
    /// the same way).
    #[pyo3(signature = (key, default=None))]
    fn local_value(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = bytes_arg::key)] key: Vec<u8>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let key = key_from(&key)?;
        let node = self.node()?.clone();
        refuse_reentry()?;
        let value = py.detach(move || node.local_value(&key));
        let found = Found {
            value: value.map(PyValue),
            default: default.unwrap_or_else(|| py.None()),
        };
        Ok(found.into_pyobject(py)?.unbind())
    }

    /// Keep `value` on this node only (a node with no peers yet; the value
    /// reaches nodes that join later).
    #[pyo3(signature = (key, value, *, ttl=None))]
    fn store_local(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = bytes_arg::key)] key: Vec<u8>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let (key, value, options) = (key_from(&key)?, value_from_py(value)?, put_options(ttl)?);
        let node = self.node()?.clone();
        refuse_reentry()?;
        py.detach(move || node.store_local(key, value, options))
            .map_err(|e| KadError(e).into())
    }

    /// The id of the node at `host:port`.
    fn ping(&self, py: Python<'_>, host: String, port: u16) -> PyResult<Vec<u8>> {
        block_on(py, ping(self.node()?.clone(), host, port))
    }

    fn ping_async<'py>(
        &self,
        py: Python<'py>,
        host: String,
        port: u16,
    ) -> PyResult<Bound<'py, PyAny>> {
        awaitable(py, ping(self.node()?.clone(), host, port))
    }

    /// Every value held in the default storage, oldest store first, as
    /// `(key, value, seconds since stored)`; None when a Python storage
    /// object holds the values.
    fn held(&self, py: Python<'_>) -> PyResult<Option<Vec<PyHeld>>> {
        let Some(memory) = self.memory.clone() else {
            return Ok(None);
        };
        let now = std::time::Instant::now();
        let held = py.detach(move || memory.held(now));
        Ok(Some(
            held.into_iter()
                .map(|h| {
                    let age = now.saturating_duration_since(h.stored_at).as_secs_f64();
                    (h.key.as_bytes().to_vec(), PyValue(h.value), age)
                })
                .collect(),
        ))
    }

    /// The whole routing table.
    fn contacts(&self, py: Python<'_>) -> PyResult<Vec<PyContact>> {
        refuse_reentry()?;
        let node = self.node()?.clone();
        Ok(py.detach(move || node.contacts().iter().map(contact_to_py).collect()))
    }

    /// The `n` contacts nearest to our own id.
    fn closest_contacts(&self, py: Python<'_>, n: usize) -> PyResult<Vec<PyContact>> {
        refuse_reentry()?;
        let node = self.node()?.clone();
        Ok(py.detach(move || node.closest_contacts(n).iter().map(contact_to_py).collect()))
    }

    /// Add `(id, ip, port)` contacts to the table; how many were new.
    fn import_contacts(
        &self,
        py: Python<'_>,
        contacts: Vec<(Vec<u8>, String, u16)>,
    ) -> PyResult<usize> {
        let mut parsed = Vec::with_capacity(contacts.len());
        for (id, ip, port) in contacts {
            let ip = ip
                .parse()
                .map_err(|_| KadError(Error::BadAddress(format!("{ip}:{port}"))))?;
            parsed.push(Contact {
                id: key_from(&id)?,
                addr: SocketAddr::new(ip, port),
            });
        }
        let node = self.node()?.clone();
        refuse_reentry()?;
        Ok(py.detach(move || node.import_contacts(&parsed)))
    }

    /// Counters and gauges of the node, by name.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let node = self.node()?.clone();
        refuse_reentry()?;
        let s = py.detach(move || node.stats());
        let d = PyDict::new(py);
        for (name, v) in [
            ("datagrams_received", s.datagrams_received),
            ("datagrams_sent", s.datagrams_sent),
            ("datagrams_dropped", s.datagrams_dropped),
            ("requests_received", s.requests_received),
            ("stores_undecodable", s.stores_undecodable),
            ("responses_received", s.responses_received),
            ("rpcs_sent", s.rpcs_sent),
            ("rpc_timeouts", s.rpc_timeouts),
            ("lookups_started", s.lookups_started),
            ("lookups_completed", s.lookups_completed),
            ("gets_asking_one_first", s.gets_asking_one_first),
            ("gets_answered_by_first", s.gets_answered_by_first),
            ("gets_widened_late", s.gets_widened_late),
            ("contacts", s.contacts),
            ("values_stored", s.values_stored),
            ("stored_bytes", s.stored_bytes),
            ("pending_rpcs", s.pending_rpcs),
        ] {
            d.set_item(name, v)?;
        }
        Ok(d)
    }

    /// Stop the node and close its socket; idempotent. With `wait` (the
    /// default) returns once the socket is closed, so the port can be bound
    /// again at once (bounded by `SHUTDOWN_WAIT`; never waits when called
    /// from one of the runtime's own threads, e.g. a storage callback).
    #[pyo3(signature = (wait=true))]
    fn shutdown(&self, wait: bool) -> PyResult<()> {
        self.stop(wait)
    }

    /// `shutdown` as an awaitable (resolves once the socket is closed).
    fn shutdown_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.is_foreign() {
            return awaitable(py, async { Ok::<(), KadError>(()) });
        }
        let node = self.inner.clone();
        awaitable(py, async move {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, node.shutdown_and_wait()).await;
            Ok::<(), KadError>(())
        })
    }

    /// True once the socket is closed.
    #[getter]
    fn is_closed(&self) -> bool {
        self.is_foreign() || self.inner.is_closed()
    }

    #[getter]
    fn is_shut_down(&self) -> bool {
        self.is_foreign() || self.inner.is_shut_down()
    }

    fn __repr__(&self) -> String {
        format!(
            "<kadmium._kadmium.Node {} at {}>",
            self.inner.id().to_hex(),
            self.inner.local_addr()
        )
    }
}
