//! The VoidPhone DHT API (crate `dht-voidphone`) for Python:
//! `kadmium._kadmium.ApiServer`, serving the TCP API from a running `Node`,
//! and `parse_voidphone_config`, reading the `[dht]` section of a course INI
//! file. `kadmium.voidphone` builds the CLI options on top of these.

use std::io;
use std::net::SocketAddr;

use dht_core::{Error, Node};
use dht_voidphone::{ApiConfig, ApiError, ApiServer, NodeSettings};
use pyo3::create_exception;
use pyo3::prelude::*;

use crate::args::seconds;
use crate::bridge::awaitable;
use crate::error::{KadError, KadmiumError};
use crate::node::PyNode;
use crate::runtime::block_on;

create_exception!(
    kadmium,
    ConfigError,
    KadmiumError,
    "A config file cannot be used; the message is one line naming the file, line and key."
);

type PyAddr = (String, u16);
/// `(p2p or None, api or None, bootstrap, data_dir or None)` as read from the file.
type PySettings = (
    Option<PyAddr>,
    Option<PyAddr>,
    Vec<PyAddr>,
    Option<std::path::PathBuf>,
);

fn addr_to_py(a: SocketAddr) -> PyAddr {
    (a.ip().to_string(), a.port())
}

fn api_error(e: ApiError) -> KadError {
    match e {
        ApiError::InvalidConfig(m) => KadError(Error::InvalidArgument(m)),
        // The error itself goes in, so the message names the address and
        // the socket's error code stays reachable (as `errno`).
        ApiError::Bind { ref source, .. } => KadError(Error::Io(io::Error::new(source.kind(), e))),
        ApiError::NodeShutDown => KadError(Error::Shutdown),
    }
}

/// Everything `start` needs, owned, so it can cross into the runtime.
struct StartArgs {
    node: Node,
    /// Held by the server it starts: a node nobody holds stops.
    keep: Py<PyNode>,
    host: String,
    port: u16,
    config: ApiConfig,
}

impl StartArgs {
    fn new(
        node: &Bound<'_, PyNode>,
        host: String,
        port: u16,
        max_connections: usize,
        max_in_flight: usize,
        max_ttl: Option<f64>,
        request_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut config = ApiConfig {
            max_connections,
            max_in_flight_per_connection: max_in_flight,
            ..ApiConfig::default()
        };
        if let Some(t) = max_ttl {
            config.max_ttl = Some(seconds("max_ttl", t)?);
        }
        if let Some(t) = request_timeout {
            config.request_timeout = seconds("request_timeout", t)?;
        }
        Ok(StartArgs {
            node: node.get().node()?.clone(),
            keep: node.clone().unbind(),
            host,
            port,
            config,
        })
    }

    async fn start(self) -> Result<PyApiServer, KadError> {
        let bad = || KadError(Error::BadAddress(format!("{}:{}", self.host, self.port)));
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|_| bad())?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(bad)?;
        let inner = ApiServer::bind(self.node, addr, self.config)
            .await
            .map_err(api_error)?;
        Ok(PyApiServer {
            inner,
            _node: self.keep,
        })
    }
}

/// A running VoidPhone DHT API server (TCP). Stops when shut down,
/// garbage-collected or when its node stops; the node keeps running in the
/// first two cases, and runs at least as long as the server (which holds it).
#[pyclass(frozen, name = "ApiServer", module = "kadmium._kadmium")]
pub struct PyApiServer {
    inner: ApiServer,
    _node: Py<PyNode>,
}

#[pymethods]
impl PyApiServer {
    /// Listen on `host:port` (port 0 picks a free port) and serve `node`;
    /// `ShutdownError` if the node was shut down.
    #[staticmethod]
    #[pyo3(signature = (node, host="127.0.0.1".to_string(), port=0, *, max_connections=1024, max_in_flight=64, max_ttl=None, request_timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        py: Python<'_>,
        node: &Bound<'_, PyNode>,
        host: String,
        port: u16,
        max_connections: usize,
        max_in_flight: usize,
        max_ttl: Option<f64>,
        request_timeout: Option<f64>,
    ) -> PyResult<PyApiServer> {
        let args = StartArgs::new(
            node,
            host,
            port,
            max_connections,
            max_in_flight,
            max_ttl,
            request_timeout,
        )?;
        block_on(py, args.start())
    }

    /// `start` as an awaitable.
    #[staticmethod]
    #[pyo3(signature = (node, host="127.0.0.1".to_string(), port=0, *, max_connections=1024, max_in_flight=64, max_ttl=None, request_timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn start_async<'py>(
        py: Python<'py>,
        node: &Bound<'_, PyNode>,
        host: String,
        port: u16,
        max_connections: usize,
        max_in_flight: usize,
        max_ttl: Option<f64>,
        request_timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = StartArgs::new(
            node,
            host,
            port,
            max_connections,
            max_in_flight,
            max_ttl,
            request_timeout,
        )?;
        awaitable(py, args.start())
    }

    #[getter]
    fn local_addr(&self) -> PyAddr {
        addr_to_py(self.inner.local_addr())
    }

    #[getter]
    fn active_connections(&self) -> usize {
        self.inner.active_connections()
    }

    #[getter]
    fn is_shut_down(&self) -> bool {
        self.inner.is_shut_down()
    }

    /// Stop listening and close every connection; idempotent, never blocks.
    fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn __repr__(&self) -> String {
        format!(
            "<kadmium._kadmium.ApiServer at {}>",
            self.inner.local_addr()
        )
    }
}

/// Read the `[dht]` section of a course INI file: `(p2p, api, bootstrap,
/// data_dir)`, `p2p`, `api` and `data_dir` None when the file does not set
/// them. Raises `ConfigError`.
#[pyfunction]
fn parse_voidphone_config(py: Python<'_>, path: std::path::PathBuf) -> PyResult<PySettings> {
    // Host names are resolved while reading: no GIL needed for that.
    let settings = py
        .detach(|| NodeSettings::from_file(&path))
        .map_err(|e| ConfigError::new_err(e.to_string()))?;
    Ok((
        settings.p2p.map(addr_to_py),
        settings.api.map(addr_to_py),
        settings.bootstrap.into_iter().map(addr_to_py).collect(),
        settings.data_dir,
    ))
}

/// Add the class, the function and `ConfigError` to the module (one line in `lib.rs`).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyApiServer>()?;
    m.add_function(wrap_pyfunction!(parse_voidphone_config, m)?)?;
    m.add("ConfigError", m.py().get_type::<ConfigError>())?;
    Ok(())
}
