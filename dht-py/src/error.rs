//! The Python exception hierarchy, and the one place where `dht_core::Error`
//! becomes a Python exception.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

create_exception!(
    kadmium,
    KadmiumError,
    PyException,
    "Base class of every error raised by kadmium."
);
create_exception!(
    kadmium,
    InvalidArgumentError,
    KadmiumError,
    "An argument was rejected (bad key length, TTL of 0, int outside 64 bits, ...)."
);
create_exception!(
    kadmium,
    ValueTooLargeError,
    KadmiumError,
    "The value is larger than the node's max_value_size (it must fit one UDP datagram)."
);
create_exception!(
    kadmium,
    NoPeersError,
    KadmiumError,
    "The routing table is empty: bootstrap the node first."
);
create_exception!(
    kadmium,
    OperationTimeoutError,
    KadmiumError,
    "The operation did not complete in time."
);
/// `BadAddressError` and `NetworkError` are `OSError`s too, as what the
/// Python package's `listen` raises is (a port taken, a name that does not
/// resolve): scripts that try the next port on `OSError` work unchanged.
/// `create_exception!` takes one base, so these two are made with `type()`
/// at import ([`register`]).
static BAD_ADDRESS_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NETWORK_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A class deriving from `KadmiumError` and `OSError`.
fn os_error_class(py: Python<'_>, name: &str, doc: &str) -> PyResult<Py<PyType>> {
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "kadmium")?;
    let bases = (py.get_type::<KadmiumError>(), py.get_type::<PyOSError>());
    let class = py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?;
    Ok(class.unbind())
}

/// The system's error code behind `io`: its own, or that of an I/O error it
/// wraps to add context (the VoidPhone API's bind error, which names the
/// address, carries the socket's error as its source).
fn os_code(io: &std::io::Error) -> Option<i32> {
    if let Some(code) = io.raw_os_error() {
        return Some(code);
    }
    fn inner(io: &std::io::Error) -> Option<&(dyn std::error::Error + 'static)> {
        io.get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static))
    }
    let mut cause = inner(io);
    while let Some(error) = cause {
        cause = match error.downcast_ref::<std::io::Error>() {
            Some(io) if io.raw_os_error().is_some() => return io.raw_os_error(),
            // `source()` of an I/O error made with `io::Error::new` skips
            // what it wraps (it gives the wrapped error's own source).
            Some(io) => inner(io),
            None => error.source(),
        };
    }
    None
}

/// An instance of one of the `OSError` classes, with `errno` set when the
/// system gave a code (`strerror` stays None: the message already says it).
fn os_error(class: &PyOnceLock<Py<PyType>>, errno: Option<i32>, msg: String) -> PyErr {
    Python::attach(|py| {
        let Some(class) = class.get(py) else {
            // Only before the module is imported, which nothing can observe.
            return KadmiumError::new_err(msg);
        };
        // Made from the message alone, so str() and args stay what they were
        // (`OSError(errno, text)` would print "[Errno N] text" and change
        // args); errno is set afterwards, as the attribute is writable.
        let made = class.bind(py).call1((msg,)).and_then(|instance| {
            if let Some(code) = errno {
                instance.setattr("errno", code)?;
            }
            Ok(instance)
        });
        match made {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        }
    })
}
create_exception!(
    kadmium,
    StorageFullError,
    KadmiumError,
    "The node's local storage is full."
);
create_exception!(
    kadmium,
    BusyError,
    KadmiumError,
    "Too many requests are in flight."
);
create_exception!(
    kadmium,
    CasMismatchError,
    KadmiumError,
    "A compare-and-swap signed put found another sequence number than the one expected."
);
create_exception!(
    kadmium,
    InvalidSignatureError,
    KadmiumError,
    "A signed record was refused: bad signature, sequence number not above the newest, or malformed."
);
create_exception!(
    kadmium,
    PersistenceError,
    KadmiumError,
    "The data directory could not be opened, read or written (in use by another process or node, damaged, newer format)."
);
create_exception!(
    kadmium,
    ShutdownError,
    KadmiumError,
    "The node has been stopped."
);

/// `dht_core::Error` on its way to Python. A newtype because neither the
/// error nor `PyErr` belong to this crate (orphan rule); `?` goes through it
/// with `.map_err(KadError)`.
#[derive(Debug)]
pub struct KadError(pub dht_core::Error);

impl From<dht_core::Error> for KadError {
    fn from(e: dht_core::Error) -> Self {
        KadError(e)
    }
}

impl From<KadError> for PyErr {
    fn from(KadError(e): KadError) -> PyErr {
        use dht_core::Error as E;
        let msg = e.to_string();
        match e {
            E::InvalidArgument(_) => InvalidArgumentError::new_err(msg),
            E::ValueTooLarge { .. } => ValueTooLargeError::new_err(msg),
            E::NoPeers => NoPeersError::new_err(msg),
            E::Timeout => OperationTimeoutError::new_err(msg),
            E::BadAddress(_) => os_error(&BAD_ADDRESS_ERROR, None, msg),
            E::Io(io) => os_error(&NETWORK_ERROR, os_code(&io), msg),
            E::StorageFull => StorageFullError::new_err(msg),
            E::Busy => BusyError::new_err(msg),
            E::Shutdown => ShutdownError::new_err(msg),
            E::CasMismatch { .. } => CasMismatchError::new_err(msg),
            E::InvalidRecord(_) => InvalidSignatureError::new_err(msg),
            E::Persistence(_) => PersistenceError::new_err(msg),
        }
    }
}

/// Add every exception class to the module (called from `lib.rs`).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KadmiumError", py.get_type::<KadmiumError>())?;
    m.add(
        "InvalidArgumentError",
        py.get_type::<InvalidArgumentError>(),
    )?;
    m.add("ValueTooLargeError", py.get_type::<ValueTooLargeError>())?;
    m.add("NoPeersError", py.get_type::<NoPeersError>())?;
    m.add(
        "OperationTimeoutError",
        py.get_type::<OperationTimeoutError>(),
    )?;
    let bad_address = BAD_ADDRESS_ERROR.get_or_try_init(py, || {
        os_error_class(
            py,
            "BadAddressError",
            "An address could not be parsed or resolved.",
        )
    })?;
    m.add("BadAddressError", bad_address.bind(py))?;
    let network = NETWORK_ERROR.get_or_try_init(py, || {
        os_error_class(py, "NetworkError", "A socket operation failed.")
    })?;
    m.add("NetworkError", network.bind(py))?;
    m.add("StorageFullError", py.get_type::<StorageFullError>())?;
    m.add("BusyError", py.get_type::<BusyError>())?;
    m.add("ShutdownError", py.get_type::<ShutdownError>())?;
    m.add("PersistenceError", py.get_type::<PersistenceError>())?;
    m.add("CasMismatchError", py.get_type::<CasMismatchError>())?;
    m.add(
        "InvalidSignatureError",
        py.get_type::<InvalidSignatureError>(),
    )?;
    Ok(())
}
