//! The Python exception hierarchy, and the one place where `dht_core::Error`
//! becomes a Python exception.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

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
create_exception!(
    kadmium,
    BadAddressError,
    KadmiumError,
    "An address could not be parsed or resolved."
);
create_exception!(
    kadmium,
    NetworkError,
    KadmiumError,
    "A socket operation failed."
);
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
    "The data directory could not be opened, read or written (in use by another process, damaged, newer format)."
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
            E::BadAddress(_) => BadAddressError::new_err(msg),
            E::Io(_) => NetworkError::new_err(msg),
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
    m.add("BadAddressError", py.get_type::<BadAddressError>())?;
    m.add("NetworkError", py.get_type::<NetworkError>())?;
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
