//! Signed (mutable) and immutable records for Python: `kadmium.Keypair`,
//! `kadmium.SignedValue`, and the module functions `put_signed`,
//! `get_signed`, `delete_signed`, `put_immutable`, `get_immutable` (each with
//! an `_async` twin) that `kadmium.Server` and `kadmium.DHT` wrap. They are
//! module functions taking the node rather than `Node` methods so that
//! `node.rs` keeps one job (the node's lifecycle and plain values).

use dht_core::{Error, Key, Keypair, NodeId, PublicKey, SignedPutOptions, SignedValue};
use pyo3::prelude::*;

use crate::args::seconds;
use crate::bridge::awaitable;
use crate::bytes_arg;
use crate::error::KadError;
use crate::node::PyNode;
use crate::runtime::block_on;

fn invalid(msg: String) -> KadError {
    KadError(Error::InvalidArgument(msg))
}

/// `seq` or `cas`: a sequence number from 0 to 2**64 - 1. One out of that
/// range is an `InvalidArgumentError` naming the argument (pyo3's own
/// conversion raised a bare `OverflowError`); a non-integer stays a `TypeError`.
fn sequence_number(name: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.extract::<u64>() {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(value.py()) => {
            Err(invalid(format!(
                "{name} must be a sequence number from 0 to 2**64 - 1, got {value}"
            ))
            .into())
        }
        Err(e) => Err(e),
    }
}

/// An ed25519 key pair: the right to publish under SHA-1(public key ‖ salt).
#[pyclass(frozen, name = "Keypair", module = "kadmium._kadmium")]
#[derive(Clone)]
pub struct PyKeypair {
    inner: Keypair,
}

#[pymethods]
impl PyKeypair {
    /// A fresh key pair from the operating system's CSPRNG.
    #[staticmethod]
    fn generate() -> PyKeypair {
        PyKeypair {
            inner: Keypair::generate(&mut rand::rng()),
        }
    }

    /// The key pair of a 32-byte ed25519 secret (as saved from `.secret`).
    #[staticmethod]
    fn from_secret(
        #[pyo3(from_py_with = bytes_arg::secret)] secret: Vec<u8>,
    ) -> PyResult<PyKeypair> {
        let secret: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
            invalid(format!(
                "an ed25519 secret is 32 bytes (got {})",
                secret.len()
            ))
        })?;
        Ok(PyKeypair {
            inner: Keypair::from_secret(secret),
        })
    }

    /// The 32-byte secret (keep it private: it signs records).
    #[getter]
    fn secret(&self) -> Vec<u8> {
        self.inner.secret().to_vec()
    }

    /// The 32-byte public key that readers pass to `get_signed`.
    #[getter]
    fn public_key(&self) -> Vec<u8> {
        self.inner.public_key().as_bytes().to_vec()
    }

    fn __repr__(&self) -> String {
        format!("<kadmium.Keypair {}>", self.inner.public_key().to_hex())
    }
}

/// The current value of a signed record.
#[pyclass(frozen, name = "SignedValue", module = "kadmium._kadmium")]
pub struct PySignedValue {
    inner: SignedValue,
}

#[pymethods]
impl PySignedValue {
    #[getter]
    fn value(&self) -> Vec<u8> {
        self.inner.value.clone()
    }

    #[getter]
    fn seq(&self) -> u64 {
        self.inner.seq
    }

    #[getter]
    fn public_key(&self) -> Vec<u8> {
        self.inner.public_key.as_bytes().to_vec()
    }

    #[getter]
    fn salt(&self) -> Vec<u8> {
        self.inner.salt.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "<kadmium.SignedValue seq={} {} bytes under {}>",
            self.inner.seq,
            self.inner.value.len(),
            self.inner.public_key.to_hex()
        )
    }
}

fn public_key_from(bytes: &[u8]) -> Result<PublicKey, KadError> {
    PublicKey::from_slice(bytes).ok_or_else(|| {
        invalid(format!(
            "an ed25519 public key is 32 bytes (got {})",
            bytes.len()
        ))
    })
}

fn digest_from(bytes: &[u8]) -> Result<Key, KadError> {
    NodeId::from_slice(bytes).ok_or_else(|| {
        invalid(format!(
            "an immutable record's key is a 20-byte digest (got {})",
            bytes.len()
        ))
    })
}

fn options(
    seq: Option<u64>,
    cas: Option<u64>,
    ttl: Option<f64>,
) -> Result<SignedPutOptions, KadError> {
    // Too large for a Duration saturates; the node caps it at max_ttl.
    let ttl = ttl.map(|t| seconds("ttl", t)).transpose()?;
    Ok(SignedPutOptions { seq, cas, ttl })
}

/// Everything one signed put needs, owned, so it can leave the GIL.
struct SignedPut {
    node: dht_core::Node,
    keypair: Keypair,
    salt: Vec<u8>,
    value: Vec<u8>,
    options: SignedPutOptions,
}

impl SignedPut {
    #[allow(clippy::too_many_arguments)]
    fn new(
        node: &PyNode,
        keypair: &PyKeypair,
        value: Vec<u8>,
        salt: Vec<u8>,
        seq: Option<u64>,
        cas: Option<u64>,
        ttl: Option<f64>,
    ) -> PyResult<Self> {
        Ok(SignedPut {
            node: node.node()?.clone(),
            keypair: keypair.inner.clone(),
            salt,
            value,
            options: options(seq, cas, ttl)?,
        })
    }

    async fn run(self) -> Result<u64, KadError> {
        Ok(self
            .node
            .put_signed(&self.keypair, &self.salt, &self.value, self.options)
            .await?)
    }
}

async fn get_signed_run(
    node: dht_core::Node,
    public_key: PublicKey,
    salt: Vec<u8>,
) -> Result<Option<PySignedValue>, KadError> {
    let found = node.get_signed(&public_key, &salt).await?;
    Ok(found.map(|inner| PySignedValue { inner }))
}

async fn delete_signed_run(
    node: dht_core::Node,
    keypair: Keypair,
    salt: Vec<u8>,
) -> Result<u64, KadError> {
    Ok(node.delete_signed(&keypair, &salt).await?)
}

async fn put_immutable_run(node: dht_core::Node, value: Vec<u8>) -> Result<Vec<u8>, KadError> {
    Ok(node.put_immutable(&value).await?.as_bytes().to_vec())
}

async fn get_immutable_run(node: dht_core::Node, key: Key) -> Result<Option<Vec<u8>>, KadError> {
    Ok(node.get_immutable(&key).await?)
}

/// Sign `value` with `keypair` and store it under SHA-1(public key ‖ salt);
/// the sequence number used.
#[pyfunction]
#[pyo3(signature = (node, keypair, value, *, salt=Vec::new(), seq=None, cas=None, ttl=None))]
#[allow(clippy::too_many_arguments)]
fn put_signed(
    py: Python<'_>,
    node: &PyNode,
    keypair: &PyKeypair,
    #[pyo3(from_py_with = bytes_arg::value)] value: Vec<u8>,
    #[pyo3(from_py_with = bytes_arg::salt)] salt: Vec<u8>,
    seq: Option<&Bound<'_, PyAny>>,
    cas: Option<&Bound<'_, PyAny>>,
    ttl: Option<f64>,
) -> PyResult<u64> {
    let (seq, cas) = (sequence_number("seq", seq)?, sequence_number("cas", cas)?);
    let put = SignedPut::new(node, keypair, value, salt, seq, cas, ttl)?;
    block_on(py, put.run())
}

#[pyfunction]
#[pyo3(signature = (node, keypair, value, *, salt=Vec::new(), seq=None, cas=None, ttl=None))]
#[allow(clippy::too_many_arguments)]
fn put_signed_async<'py>(
    py: Python<'py>,
    node: &PyNode,
    keypair: &PyKeypair,
    #[pyo3(from_py_with = bytes_arg::value)] value: Vec<u8>,
    #[pyo3(from_py_with = bytes_arg::salt)] salt: Vec<u8>,
    seq: Option<&Bound<'_, PyAny>>,
    cas: Option<&Bound<'_, PyAny>>,
    ttl: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let (seq, cas) = (sequence_number("seq", seq)?, sequence_number("cas", cas)?);
    let put = SignedPut::new(node, keypair, value, salt, seq, cas, ttl)?;
    awaitable(py, put.run())
}

/// The current value under SHA-1(public_key ‖ salt), or None.
#[pyfunction]
#[pyo3(signature = (node, public_key, *, salt=Vec::new()))]
fn get_signed(
    py: Python<'_>,
    node: &PyNode,
    #[pyo3(from_py_with = bytes_arg::public_key)] public_key: Vec<u8>,
    #[pyo3(from_py_with = bytes_arg::salt)] salt: Vec<u8>,
) -> PyResult<Option<PySignedValue>> {
    let pk = public_key_from(&public_key)?;
    block_on(py, get_signed_run(node.node()?.clone(), pk, salt))
}

#[pyfunction]
#[pyo3(signature = (node, public_key, *, salt=Vec::new()))]
fn get_signed_async<'py>(
    py: Python<'py>,
    node: &PyNode,
    #[pyo3(from_py_with = bytes_arg::public_key)] public_key: Vec<u8>,
    #[pyo3(from_py_with = bytes_arg::salt)] salt: Vec<u8>,
) -> PyResult<Bound<'py, PyAny>> {
    let pk = public_key_from(&public_key)?;
    awaitable(py, get_signed_run(node.node()?.clone(), pk, salt))
}

/// Replace the record with a signed tombstone; the tombstone's sequence number.
#[pyfunction]
#[pyo3(signature = (node, keypair, *, salt=Vec::new()))]
fn delete_signed(
    py: Python<'_>,
    node: &PyNode,
    keypair: &PyKeypair,
    #[pyo3(from_py_with = bytes_arg::salt)] salt: Vec<u8>,
) -> PyResult<u64> {
    let (n, kp) = (node.node()?.clone(), keypair.inner.clone());
    block_on(py, delete_signed_run(n, kp, salt))
}

#[pyfunction]
#[pyo3(signature = (node, keypair, *, salt=Vec::new()))]
fn delete_signed_async<'py>(
    py: Python<'py>,
    node: &PyNode,
    keypair: &PyKeypair,
    #[pyo3(from_py_with = bytes_arg::salt)] salt: Vec<u8>,
) -> PyResult<Bound<'py, PyAny>> {
    let (n, kp) = (node.node()?.clone(), keypair.inner.clone());
    awaitable(py, delete_signed_run(n, kp, salt))
}

/// Store `value` under the digest of its content; that 20-byte digest.
#[pyfunction]
fn put_immutable(
    py: Python<'_>,
    node: &PyNode,
    #[pyo3(from_py_with = bytes_arg::value)] value: Vec<u8>,
) -> PyResult<Vec<u8>> {
    block_on(py, put_immutable_run(node.node()?.clone(), value))
}

#[pyfunction]
fn put_immutable_async<'py>(
    py: Python<'py>,
    node: &PyNode,
    #[pyo3(from_py_with = bytes_arg::value)] value: Vec<u8>,
) -> PyResult<Bound<'py, PyAny>> {
    awaitable(py, put_immutable_run(node.node()?.clone(), value))
}

/// The immutable value under the 20-byte `digest` (checked by hashing), or None.
#[pyfunction]
fn get_immutable(
    py: Python<'_>,
    node: &PyNode,
    #[pyo3(from_py_with = bytes_arg::digest)] digest: Vec<u8>,
) -> PyResult<Option<Vec<u8>>> {
    let key = digest_from(&digest)?;
    block_on(py, get_immutable_run(node.node()?.clone(), key))
}

#[pyfunction]
fn get_immutable_async<'py>(
    py: Python<'py>,
    node: &PyNode,
    #[pyo3(from_py_with = bytes_arg::digest)] digest: Vec<u8>,
) -> PyResult<Bound<'py, PyAny>> {
    let key = digest_from(&digest)?;
    awaitable(py, get_immutable_run(node.node()?.clone(), key))
}

/// Add the classes and functions to the module (called from `lib.rs`).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKeypair>()?;
    m.add_class::<PySignedValue>()?;
    m.add_function(wrap_pyfunction!(put_signed, m)?)?;
    m.add_function(wrap_pyfunction!(put_signed_async, m)?)?;
    m.add_function(wrap_pyfunction!(get_signed, m)?)?;
    m.add_function(wrap_pyfunction!(get_signed_async, m)?)?;
    m.add_function(wrap_pyfunction!(delete_signed, m)?)?;
    m.add_function(wrap_pyfunction!(delete_signed_async, m)?)?;
    m.add_function(wrap_pyfunction!(put_immutable, m)?)?;
    m.add_function(wrap_pyfunction!(put_immutable_async, m)?)?;
    m.add_function(wrap_pyfunction!(get_immutable, m)?)?;
    m.add_function(wrap_pyfunction!(get_immutable_async, m)?)?;
    Ok(())
}
