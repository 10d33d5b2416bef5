//! `kadmium._kadmium`: the native half of the `kadmium` Python package.
//! Everything Pythonic (Server, DHT, digest, CLI) lives in `python/kadmium`;
//! this crate only wraps `dht_core::Node` and maps its errors.

mod args;
mod bridge;
mod bytes_arg;
mod error;
mod exit_gate;
mod key_digest;
mod logging;
mod node;
mod node_ops;
mod node_stop;
mod reentry;
mod runtime;
mod signed;
mod storage;
mod unclaimed;
mod value;
mod voidphone;

use pyo3::prelude::*;

// The module's allocator (linked for its `#[global_allocator]`).
use dht_alloc as _;

/// The module's contents, one registration per line.
#[pymodule]
fn _kadmium(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LOGGER_PREFIX", logging::LOGGER_PREFIX)?;
    exit_gate::register(m)?;
    runtime::register_fork_hook(m)?;
    logging::install(m.py())?;
    m.add_class::<node::PyNode>()?;
    key_digest::register(m)?;
    error::register(m)?;
    signed::register(m)?;
    voidphone::register(m)?;
    Ok(())
}
