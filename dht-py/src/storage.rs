//! Where a Python node keeps what it holds for the network.
//!
//! Two `dht_core::Storage` backends, both shared with the `PyNode` that owns
//! the node so Python can read them while the node runs:
//! * [`ViewedMemory`]: the default, dht-core's `MemoryStorage` plus the time
//!   each value was last stored (what `server.storage.iter_older_than` reads).
//! * [`PythonStorage`]: a user's `IStorage` (`Server(storage=...)`). The values
//!   live in the Python object — every value the node stores goes through its
//!   `__setitem__`, every read through its `get` — while the expiry and
//!   replication times stay here, in Rust, because the protocol needs them.
//!   If the object forgets a value (a `ForgetfulStorage` past its `ttl`), the
//!   node no longer has it.
//!
//! Locking: the driver calls these with the node's lock held, and the Python
//! backend then attaches to the interpreter. So no Python thread may wait for
//! the node's lock while attached: every `PyNode` method that takes it runs
//! under `py.detach`. Nor may the storage object's own methods call into a
//! node: the thread running them may be the one holding the lock, and would
//! wait for itself (see `reentry.rs`, which turns that into an exception).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dht_core::{Error, Key, MemoryStorage, Origin, Result, Storage, StoredValue, Value};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tracing::warn;

use crate::reentry::CallbackScope;
use crate::value::{value_from_py, PyValue};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One held value as Python's views see it.
pub struct Held {
    pub key: Key,
    pub value: Value,
    pub stored_at: Instant,
}

/// The default backend, readable from Python.
#[derive(Clone)]
pub struct ViewedMemory(Arc<Mutex<Memory>>);

struct Memory {
    values: MemoryStorage,
    stored_at: HashMap<Key, Instant>,
}

impl ViewedMemory {
    pub fn new(max_values: usize, max_bytes: usize) -> Self {
        ViewedMemory(Arc::new(Mutex::new(Memory {
            values: MemoryStorage::new(max_values, max_bytes),
            stored_at: HashMap::new(),
        })))
    }

    /// Every value held and not expired at `now`.
    pub fn held(&self, now: Instant) -> Vec<Held> {
        let m = lock(&self.0);
        let mut out: Vec<Held> = m
            .values
            .keys_from(&Key::default(), usize::MAX)
            .into_iter()
            .filter_map(|key| {
                let value = m.values.get(&key).filter(|v| v.is_live(now))?.value;
                let stored_at = m.stored_at.get(&key).copied().unwrap_or(now);
                Some(Held {
                    key,
                    value,
                    stored_at,
                })
            })
            .collect();
        out.sort_by_key(|h| h.stored_at);
        out
    }
}

impl Storage for ViewedMemory {
    fn get(&self, key: &Key) -> Option<StoredValue> {
        lock(&self.0).values.get(key)
    }

    fn inspect(&self, key: &Key, f: &mut dyn FnMut(Option<&StoredValue>)) {
        lock(&self.0).values.inspect(key, f);
    }

    fn put(&mut self, key: Key, value: StoredValue) -> Result<()> {
        let mut m = lock(&self.0);
        // Like upstream's ForgetfulStorage: the time of the last store,
        // re-sends included. (This backend runs under the real driver only,
        // so reading the clock here is fine; the protocol itself never does.)
        let at = Instant::now();
        m.values.put(key, value)?;
        m.stored_at.insert(key, at);
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Option<StoredValue> {
        let mut m = lock(&self.0);
        m.stored_at.remove(key);
        m.values.remove(key)
    }

    fn keys_from(&self, start: &Key, limit: usize) -> Vec<Key> {
        lock(&self.0).values.keys_from(start, limit)
    }

    fn len(&self) -> usize {
        lock(&self.0).values.len()
    }

    fn bytes(&self) -> usize {
        lock(&self.0).values.bytes()
    }
}

/// What Rust keeps about a value held in a Python storage object.
#[derive(Clone)]
struct Meta {
    expires_at: Instant,
    origin: Origin,
    size: usize,
}

/// A fresh `object()`, equal to nothing a storage could hold.
fn sentinel(py: Python<'_>) -> Py<PyAny> {
    py.import("builtins")
        .and_then(|b| b.getattr("object"))
        .and_then(|o| o.call0())
        .map(Bound::unbind)
        .unwrap_or_else(|_| py.None())
}

/// A user's `IStorage` as the node's storage.
pub struct PythonStorage {
    object: Py<PyAny>,
    /// Returned by `object.get(key, missing)` when it does not hold `key`
    /// (None is a value like any other).
    missing: Py<PyAny>,
    /// Ordered, so the protocol can walk the keys in slices.
    meta: BTreeMap<Key, Meta>,
    bytes: usize,
    max_values: usize,
    max_bytes: usize,
}

impl PythonStorage {
    pub fn new(py: Python<'_>, object: Py<PyAny>, max_values: usize, max_bytes: usize) -> Self {
        PythonStorage {
            object,
            missing: sentinel(py),
            meta: BTreeMap::new(),
            bytes: 0,
            max_values,
            max_bytes,
        }
    }

    /// Run `f` attached to Python; `None` once the interpreter exits (see
    /// [`crate::exit_gate`]: a node still running then acts as if it held
    /// nothing).
    fn with_python<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
        crate::exit_gate::attached(|py| {
            let _scope = CallbackScope::enter();
            f(py)
        })
    }

    fn read(&self, key: &Key) -> Option<Value> {
        Self::with_python(|py| {
            let obj = self.object.bind(py);
            let found = obj.call_method1(
                "get",
                (PyBytes::new(py, key.as_bytes()), self.missing.bind(py)),
            );
            match found {
                Ok(v) if v.is(self.missing.bind(py)) => None,
                Ok(v) => value_from_py(&v)
                    .inspect_err(
                        |e| warn!(key = %key, "storage returned a value that cannot be sent: {e}"),
                    )
                    .ok(),
                Err(e) => {
                    warn!(key = %key, "storage.get failed: {e}");
                    None
                }
            }
        })
        .flatten()
    }

    fn write(&self, key: &Key, value: Value) -> Result<()> {
        Self::with_python(|py| {
            let obj = self.object.bind(py);
            let value = PyValue(value).into_pyobject(py)?;
            obj.set_item(PyBytes::new(py, key.as_bytes()), value)
        })
        .ok_or(Error::Shutdown)?
        .map_err(|e| {
            // Said here, as storage.get's failures are: the protocol only
            // answers the STORE `false`, and the sender is another host.
            warn!(key = %key, "storage.__setitem__ failed: {e}");
            Error::Io(std::io::Error::other(format!(
                "storage.__setitem__ failed: {e}"
            )))
        })
    }

    /// `del object[key]` if the object supports it (upstream's `IStorage`
    /// has no delete; a `ForgetfulStorage` forgets on its own).
    fn forget(&self, key: &Key) {
        let _ = Self::with_python(|py| {
            let obj = self.object.bind(py);
            let _ = obj.del_item(PyBytes::new(py, key.as_bytes()));
        });
    }
}

impl Storage for PythonStorage {
    fn get(&self, key: &Key) -> Option<StoredValue> {
        let meta = self.meta.get(key)?;
        Some(StoredValue {
            value: self.read(key)?,
            expires_at: meta.expires_at,
            origin: meta.origin,
        })
    }

    fn put(&mut self, key: Key, value: StoredValue) -> Result<()> {
        let size = value.value.size();
        let old = self.meta.get(&key).map(|m| m.size);
        let new_bytes = self.bytes - old.unwrap_or(0) + size;
        let new_len = self.meta.len() + usize::from(old.is_none());
        if new_len > self.max_values || new_bytes > self.max_bytes {
            return Err(Error::StorageFull);
        }
        self.write(&key, value.value)?;
        self.bytes = new_bytes;
        self.meta.insert(
            key,
            Meta {
                expires_at: value.expires_at,
                origin: value.origin,
                size,
            },
        );
        Ok(())
    }

    fn remove(&mut self, key: &Key) -> Option<StoredValue> {
        let meta = self.meta.remove(key)?;
        self.bytes -= meta.size;
        let value = self.read(key);
        self.forget(key);
        Some(StoredValue {
            value: value?,
            expires_at: meta.expires_at,
            origin: meta.origin,
        })
    }

    fn keys_from(&self, start: &Key, limit: usize) -> Vec<Key> {
        self.meta
            .range(*start..)
            .take(limit)
            .map(|(k, _)| *k)
            .collect()
    }

    fn len(&self) -> usize {
        self.meta.len()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}
