//! `kadmium.utils.digest` in Rust: the key hash every `Server.get`/`set`
//! and `DHT` call computes. Through `hashlib` it took a few tenths of a
//! microsecond more than the rest of a local get (`hashlib.sha1` sets up an
//! OpenSSL context per call).

use dht_core::NodeId;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyString};

/// SHA-1 of `string`: bytes as they are, anything else as `str(string)` in
/// UTF-8 — `kademlia.utils.digest`'s rule. Exact `bytes` and `str` (every
/// key a program normally passes) are hashed here; anything else goes
/// through `kadmium.utils._digest_by_hashlib`, upstream's own code, so that
/// what a subclass overrides (a `str` from `__str__` whose `encode` is its
/// own, a `bytes` subclass's `__buffer__`) counts exactly as upstream.
#[pyfunction]
fn digest<'py>(py: Python<'py>, string: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let id = if let Ok(bytes) = string.cast_exact::<PyBytes>() {
        NodeId::digest(bytes.as_bytes())
    } else if let Ok(text) = string.cast_exact::<PyString>() {
        // A lone surrogate raises UnicodeEncodeError, as `str.encode` does.
        NodeId::digest(text.to_cow()?.as_bytes())
    } else {
        static BY_HASHLIB: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let slow = BY_HASHLIB.import(py, "kadmium.utils", "_digest_by_hashlib")?;
        return Ok(slow.call1((string,))?.cast_into::<PyBytes>()?);
    };
    Ok(PyBytes::new(py, id.as_bytes()))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(digest, m)?)
}
