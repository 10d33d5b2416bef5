//! Python code a node runs while it holds its lock: a storage object's
//! methods (`storage.rs`). Such code must not call a node: the thread
//! running it may be the one holding that node's lock, and would wait for
//! itself, forever (upstream's storage runs on the event loop, where such a
//! call works). A thread-local marks the scope of each such call, and every
//! `PyNode` method that takes a node's lock or blocks refuses to run inside
//! one. (Log records are handed to Python only after the lock is released,
//! `logging.rs`, so logging handlers need no such scope.)

use std::cell::Cell;

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;

thread_local! {
    /// Whether this thread runs a callback of a node.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as running a node's callback until dropped (however
/// the callback ends; nested scopes restore the outer state).
pub struct CallbackScope {
    outer: bool,
}

impl CallbackScope {
    pub fn enter() -> CallbackScope {
        CallbackScope {
            outer: IN_CALLBACK.with(|c| c.replace(true)),
        }
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.outer));
    }
}

/// Whether the caller runs inside a node's callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// `RuntimeError` when called from inside a node's callback.
pub fn refuse_reentry() -> PyResult<()> {
    if in_callback() {
        return Err(PyRuntimeError::new_err(
            "a storage object's methods cannot call a kadmium node: \
             the node waits for them to return",
        ));
    }
    Ok(())
}
