//! Byte-string arguments, for `#[pyo3(from_py_with = ...)]`.
//!
//! pyo3's own `Vec<u8>` conversion takes `bytes`, `bytearray` and any
//! sequence of ints, and refuses a `str` with "Can't extract `str` to `Vec`",
//! which names the argument only in a note of the traceback (and not at all
//! before Python 3.11): a caller who passed a public key as text could not
//! tell which argument was wrong. These take what Python calls bytes-like
//! (`bytes`, `bytearray`, `memoryview`, any object with the buffer protocol:
//! `array.array`, `mmap`, numpy arrays), read as `bytes(obj)` reads it, and
//! raise a `TypeError` naming the argument and the type given otherwise.

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
    // Any other buffer, copied as its raw bytes in logical order (a view of
    // 32-bit ints gives four bytes an item), as `bytes(view)` and hashlib
    // read it. `str` and lists have no buffer: they get the named error.
    if let Ok(view) = PyMemoryView::from(obj) {
        let raw = view.call_method0("tobytes")?;
        return Ok(raw.cast::<PyBytes>()?.as_bytes().to_vec());
    }
    let type_name = obj.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "{name} must be a bytes-like object, not {type_name}"
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
    key => "key",
}
