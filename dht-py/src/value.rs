//! Python values <-> `dht_core::Value`, with the exact types upstream
//! `kademlia` accepts: `int`, `float`, `bool`, `str`, `bytes` (no subclasses).

use std::convert::Infallible;

use dht_core::Value;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::error::KadError;

/// Same wording as `kademlia.network.Server.set`.
const TYPE_MESSAGE: &str = "Value must be of type int, float, bool, str, or bytes";

/// Convert a Python value to an owned `Value` (done before the GIL is released).
pub fn value_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    // bool before int: `True` is an int too, but travels as a msgpack bool.
    if obj.is_exact_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract::<bool>()?));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::UInt(u));
        }
        return Err(KadError(dht_core::Error::InvalidArgument(
            "int values must fit in 64 bits (msgpack)".into(),
        ))
        .into());
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(Value::Str(obj.extract::<String>()?));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        return Ok(Value::Bytes(obj.extract::<Vec<u8>>()?));
    }
    Err(PyTypeError::new_err(TYPE_MESSAGE))
}

/// A `Value` on its way back to Python, each variant as its own Python type.
pub struct PyValue(pub Value);

impl<'py> IntoPyObject<'py> for PyValue {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(match self.0 {
            Value::Int(i) => i.into_pyobject(py)?.into_any(),
            Value::UInt(u) => u.into_pyobject(py)?.into_any(),
            Value::Float(f) => f.into_pyobject(py)?.into_any(),
            Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Value::Str(s) => PyString::new(py, &s).into_any(),
            Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
            // Full conversion of containers comes with the Python side of them.
            Value::Nil | Value::List(_) | Value::Map(_) => py.None().into_bound(py),
        })
    }
}
