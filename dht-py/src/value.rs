//! Python values <-> `dht_core::Value`, as `umsgpack` (what upstream
//! `kademlia` sends with) packs and unpacks them.
//!
//! Going out, anything `umsgpack.packb` accepts becomes a value: `None`,
//! `bool`, `int` (64-bit), `float`, `str`, `bytes`/`bytearray`, `list`/`tuple`
//! and `dict`, nested up to `MAX_VALUE_DEPTH`. Which types a *caller* may
//! store is checked in Python (`Server.set` keeps upstream's exact-type
//! check; `set_digest` does not check, as upstream). Coming back, lists are
//! lists and maps dicts; a map key that is a list becomes a tuple (so it can
//! be hashed), as `umsgpack.unpackb` does.

use dht_core::value::MAX_VALUE_DEPTH;
use dht_core::Value;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use crate::error::KadError;

fn invalid(message: String) -> PyErr {
    KadError(dht_core::Error::InvalidArgument(message)).into()
}

/// Convert a Python value to an owned `Value` (done before the GIL is released).
pub fn value_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    from_py_at(obj, 0)
}

fn from_py_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Nil);
    }
    // bool before int: `True` is an int too, but travels as a msgpack bool.
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract::<bool>()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::UInt(u));
        }
        return Err(invalid("int values must fit in 64 bits (msgpack)".into()));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Float(obj.extract::<f64>()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::Str(obj.extract::<String>()?));
    }
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        return Ok(Value::Bytes(obj.extract::<Vec<u8>>()?));
    }
    let is_list = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    let is_dict = obj.is_instance_of::<PyDict>();
    if (is_list || is_dict) && depth >= MAX_VALUE_DEPTH {
        return Err(invalid(format!(
            "values may nest lists and dicts at most {MAX_VALUE_DEPTH} deep"
        )));
    }
    if is_list {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(from_py_at(&item?, depth + 1)?);
        }
        return Ok(Value::List(items));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            entries.push((from_py_at(&k, depth + 1)?, from_py_at(&v, depth + 1)?));
        }
        return Ok(Value::Map(entries));
    }
    Err(PyTypeError::new_err(format!(
        "cannot store a value of type {} (msgpack data only: None, bool, int, float, str, \
         bytes, list, tuple, dict)",
        obj.get_type().name()?
    )))
}

/// A `Value` on its way back to Python, each variant as its own Python type.
pub struct PyValue(pub Value);

impl<'py> IntoPyObject<'py> for PyValue {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        to_py(py, self.0, false)
    }
}

/// `as_key`: the value is a dict key, so lists become tuples.
fn to_py(py: Python<'_>, value: Value, as_key: bool) -> PyResult<Bound<'_, PyAny>> {
    Ok(match value {
        Value::Nil => py.None().into_bound(py),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::UInt(u) => u.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Value::Str(s) => PyString::new(py, &s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Value::List(items) => {
            let items = items
                .into_iter()
                .map(|v| to_py(py, v, as_key))
                .collect::<PyResult<Vec<_>>>()?;
            if as_key {
                PyTuple::new(py, items)?.into_any()
            } else {
                PyList::new(py, items)?.into_any()
            }
        }
        Value::Map(entries) => {
            if as_key {
                return Err(PyTypeError::new_err(
                    "the value holds a dict used as a dict key, which Python cannot hash",
                ));
            }
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(to_py(py, k, true)?, to_py(py, v, false)?)?;
            }
            dict.into_any()
        }
    })
}
