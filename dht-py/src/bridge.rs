//! Rust futures -> asyncio futures.
//!
//! Why not `pyo3_async_runtimes::tokio::future_into_py`: it resolves each
//! future from a fresh tokio blocking thread that attaches to Python, and
//! nothing stops such a thread at interpreter exit; one caught attaching while
//! Python finalizes aborts the process ("PyGILState_Release: thread state must
//! be current", pyo3-async-runtimes issue #40) — we saw it on most CLI runs.
//! Here one delivery thread is the only non-Python thread that ever attaches;
//! an `atexit` hook stops and joins it while the interpreter is still whole.
//! It also batches: every completion ready at once is handed to its event loop
//! with one GIL acquisition and one `call_soon_threadsafe`.
//!
//! Cancelling the asyncio future aborts the tokio task, which drops (and so
//! cancels) the Rust operation.

use std::future::Future;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyList, PyTuple};
use pyo3::BoundObject;
use tokio::task::AbortHandle;

use crate::error::KadError;
use crate::runtime::runtime;

/// Turns the finished operation's output into a Python object (under the GIL).
type Resolve = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Completion {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    resolve: Resolve,
}

enum Msg {
    Done(Completion),
    Stop,
}

struct Delivery {
    tx: Sender<Msg>,
    thread: JoinHandle<()>,
}

/// The delivery thread, started on first use; `None` once stopped at exit.
static DELIVERY: Mutex<Option<Delivery>> = Mutex::new(None);
static STOPPED: Mutex<bool> = Mutex::new(false);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sender() -> Result<Sender<Msg>, KadError> {
    let mut delivery = lock(&DELIVERY);
    if let Some(d) = delivery.as_ref() {
        return Ok(d.tx.clone());
    }
    if *lock(&STOPPED) {
        return Err(KadError(dht_core::Error::Shutdown));
    }
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("kadmium-deliver".into())
        .spawn(move || deliver_loop(rx))
        .map_err(|e| KadError(dht_core::Error::Io(e)))?;
    *delivery = Some(Delivery {
        tx: tx.clone(),
        thread,
    });
    Ok(tx)
}

/// Most completions handed over per GIL acquisition.
const MAX_BATCH: usize = 1024;

fn deliver_loop(rx: Receiver<Msg>) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { return };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Done(c) => batch.push(c),
                Msg::Stop => stop = true,
            }
            if batch.len() < MAX_BATCH && !stop {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            Python::attach(|py| deliver(py, batch));
        }
    }
}

/// Hand each loop its results: one `call_soon_threadsafe(_resolve, [...])` per loop.
fn deliver(py: Python<'_>, batch: Vec<Completion>) {
    let mut per_loop: Vec<(Py<PyAny>, Vec<Bound<'_, PyAny>>)> = Vec::new();
    for c in batch {
        let (ok, value) = match (c.resolve)(py) {
            Ok(v) => (true, v),
            Err(e) => (false, e.into_value(py).into_any()),
        };
        let item = (c.future, ok, value).into_pyobject(py).map(Bound::into_any);
        let Ok(item) = item else { continue };
        match per_loop.iter_mut().find(|(l, _)| l.is(&c.event_loop)) {
            Some((_, items)) => items.push(item),
            None => per_loop.push((c.event_loop, vec![item])),
        }
    }
    let Ok(resolve) = resolve_fn(py) else { return };
    for (event_loop, items) in per_loop {
        let Ok(items) = PyList::new(py, items) else {
            continue;
        };
        // A closed loop raises here; its awaiting tasks are gone anyway.
        let _ = event_loop
            .bind(py)
            .call_method1("call_soon_threadsafe", (resolve, items));
    }
}

/// Runs on the event loop: settle every `(future, ok, value)` not already done
/// (a cancelled future is done and stays cancelled).
fn resolve_items(items: &Bound<'_, PyTuple>) -> PyResult<()> {
    let list = items.get_item(0)?;
    for item in list.try_iter()? {
        let (future, ok, value): (Bound<'_, PyAny>, bool, Bound<'_, PyAny>) = item?.extract()?;
        if future.call_method0("done")?.is_truthy()? {
            continue;
        }
        let method = if ok { "set_result" } else { "set_exception" };
        future.call_method1(method, (value,))?;
    }
    Ok(())
}

fn resolve_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyCFunction>> {
    static RESOLVE: PyOnceLock<Py<PyCFunction>> = PyOnceLock::new();
    RESOLVE
        .get_or_try_init(py, || {
            PyCFunction::new_closure(py, None, None, |args, _kwargs| resolve_items(args))
                .map(Bound::unbind)
        })
        .map(|f| f.bind(py))
}

fn get_running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()
}

/// Done-callback of the asyncio future: a cancelled future aborts the task.
#[pyclass(frozen)]
struct AbortOnCancel {
    task: AbortHandle,
}

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.task.abort();
        }
        Ok(())
    }
}

/// Run `fut` on the shared runtime; an asyncio future of the running loop
/// that resolves to its output (or raises its error).
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, KadError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = get_running_loop(py)?;
    let future = event_loop.call_method0("create_future")?;
    let tx = sender()?;
    let (loop_ref, future_ref) = (event_loop.clone().unbind(), future.clone().unbind());
    let task = runtime()?.spawn(async move {
        let result = fut.await;
        let resolve: Resolve = Box::new(move |py| match result {
            Ok(v) => v
                .into_pyobject(py)
                .map(|o| o.into_any().unbind())
                .map_err(Into::into),
            Err(e) => Err(e.into()),
        });
        // After shutdown the receiver is gone; the result is dropped with it.
        let _ = tx.send(Msg::Done(Completion {
            event_loop: loop_ref,
            future: future_ref,
            resolve,
        }));
    });
    future.call_method1(
        "add_done_callback",
        (AbortOnCancel {
            task: task.abort_handle(),
        },),
    )?;
    Ok(future)
}

/// Stop the delivery thread (registered with `atexit`): after this no thread
/// but Python's own touches the interpreter, which can then finalize safely.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    *lock(&STOPPED) = true;
    let delivery = lock(&DELIVERY).take();
    if let Some(d) = delivery {
        let _ = d.tx.send(Msg::Stop);
        // The thread may be waiting for the GIL we hold: let go while joining.
        py.detach(move || {
            let _ = d.thread.join();
        });
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let shutdown = wrap_pyfunction!(_shutdown, m)?;
    m.add_function(shutdown.clone())?;
    m.py()
        .import("atexit")?
        .call_method1("register", (shutdown,))?;
    Ok(())
}
