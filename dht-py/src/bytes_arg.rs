//! Byte-string arguments, for `#[pyo3(from_py_with = ...)]`.
//!
//! pyo3's own `Vec<u8>` conversion takes `bytes`, `bytearray` and any
//! sequence of ints, and refuses a `str` with "Can't extract `str` to `Vec`",
//! which names the argument only in a note of the traceback: a caller who
//! passed a public key as text could not tell which argument was wrong.
//! These take `bytes`, `bytearray` and `memoryview` (what the `.pyi` stubs
//! promise) and raise a `TypeError` naming the argument and the type given.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};

fn bytes_named(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if obj.is_instance_of::<PyMemoryView>() {
        // A view of another format or shape is copied as its raw bytes, as
        // `bytes(view)` does.
        return Ok(obj
            .call_method0("tobytes")?
            .cast::<PyBytes>()?
            .as_bytes()
            .to_vec());
    }
    let type_name = obj.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "{name} must be bytes, not {type_name}"
    )))
}

/// One extractor per argument name (`from_py_with` passes only the object).
macro_rules! named_bytes_args {
    ($($function:ident => $name:literal),* $(,)?) => {
        $(
            #[doc = concat!("The `", $name, "` argument as bytes.")]
            pub(crate) fn $function(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
                bytes_named(obj, $name)
            }
        )*
    };
}

named_bytes_args! {
    value => "value",
    salt => "salt",
    public_key => "public_key",
    digest => "digest",
    secret => "secret",
}
