//! Rust futures -> asyncio futures.
//!
//! Each event loop gets a [`Port`]: a queue of finished operations and a
//! socket pair registered with `loop.add_reader`. A tokio thread that
//! finishes an operation pushes it onto the queue and, when the queue was
//! empty, writes one byte; the loop wakes, and on its own thread, holding
//! the GIL it already has, settles every asyncio future in the queue. No
//! other thread ever attaches to Python: an earlier bridge did it from a
//! delivery thread, which had to win the GIL from the running loop once per
//! batch (a tenth of a get's CPU time went to that hand-over) and had to be
//! stopped at exit before the interpreter finalized. `pyo3_async_runtimes`
//! resolves each future from a fresh blocking thread that attaches to
//! Python, and one caught attaching while Python finalizes aborts the
//! process (its issue #40).
//!
//! Most operations run as a tokio task ([`awaitable`]); get and put are
//! settled by the node's driver itself ([`awaitable_then`] with
//! `Node::get_then`/`put_then`), one task fewer per call. Cancelling the
//! asyncio future stops the operation either way: it aborts the task (which
//! drops, and so cancels, the Rust future) or cancels the call on the node.

use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyWeakrefReference;
use pyo3::{intern, BoundObject};
use tokio::sync::Notify;

use crate::error::KadError;
use crate::runtime::runtime;

/// Turns the finished operation's output into a Python object (under the GIL).
type Resolve = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A finished operation and the asyncio future waiting for it.
struct Completion {
    future: Py<PyAny>,
    /// The future's done-callback, taken off before the future is settled.
    stop: Py<StopOnCancel>,
    resolve: Resolve,
}

/// One event loop's finished operations, and the socket pair that wakes it.
struct Port {
    ready: Mutex<Vec<Completion>>,
    /// Written by finishing operations (any thread).
    wake: UnixDatagram,
    /// Registered with the loop's `add_reader`.
    woken: UnixDatagram,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Port {
    fn new() -> std::io::Result<Port> {
        let (wake, woken) = UnixDatagram::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        Ok(Port {
            ready: Mutex::new(Vec::new()),
            wake,
            woken,
        })
    }

    /// Queue `completion` for the loop (from any thread, without the GIL).
    fn push(&self, completion: Completion) {
        let first = {
            let mut ready = lock(&self.ready);
            ready.push(completion);
            ready.len() == 1
        };
        // Only the first of a batch writes: the loop takes the whole queue
        // at once. A full socket buffer (WouldBlock) already holds a wake-up.
        if first {
            let _ = self.wake.send(&[1]);
        }
    }

    /// Everything queued so far. Wake-ups are read *before* the queue is
    /// taken: a completion queued after the take writes a fresh one.
    fn take(&self) -> Vec<Completion> {
        let mut buf = [0u8; 64];
        loop {
            match self.woken.recv(&mut buf) {
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: drained
            }
        }
        std::mem::take(&mut *lock(&self.ready))
    }
}

/// The loop's reader callback: settle every queued future.
#[pyclass(frozen)]
struct PortReader {
    port: Arc<Port>,
}

#[pymethods]
impl PortReader {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        // An exception while settling one future (a KeyboardInterrupt from
        // a signal handler, say) must not strand the rest of the batch,
        // already taken off the queue: settle them all, then raise the first.
        let mut first_error = None;
        for completion in self.port.take() {
            if let Err(e) = settle(py, completion) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Set the future's result or exception, unless it is already done (a
/// cancelled future stays cancelled).
fn settle(py: Python<'_>, completion: Completion) -> PyResult<()> {
    let Completion {
        future,
        stop,
        resolve,
    } = completion;
    let future = future.bind(py);
    // Left on, the callback would be scheduled on the loop and run only to
    // find the future not cancelled: a few microseconds of every call. Only
    // this bridge holds `stop`, and a future that is done (cancelled) has
    // let go of its callbacks, so none removed means done: left as it is.
    let removed: usize = future
        .call_method1(intern!(py, "remove_done_callback"), (stop,))?
        .extract()?;
    if removed == 0 {
        return Ok(());
    }
    match resolve(py) {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
        Err(e) => future.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
    };
    Ok(())
}

/// The port of `event_loop`, made and registered with it on first use. Ports
/// live in a `WeakKeyDictionary`: one goes with its loop — unless the loop
/// closed with results still queued for it, whose futures hold the loop
/// (a fire-and-forget `put_async` finishing after `asyncio.run` returned,
/// say). Nothing reads a closed loop's queue, so those ports are let go
/// here, each time a new loop gets its port.
fn port_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Port>> {
    if let Some(port) = LastPort::of(py, event_loop) {
        return Ok(port);
    }
    let port = registered_port_of(py, event_loop)?;
    LastPort::remember(event_loop, &port)?;
    Ok(port)
}

/// The loop that last asked for its port, and that port: a program mostly
/// runs one loop, and the weak dictionary's lookup is Python code that
/// makes a weak reference each time. (With `settle`'s one call fewer, this
/// took the median of a call's time on the Python thread from 12.6 µs to
/// 11.4 in seven interleaved pairs of `bench/bridge_cost.py`'s bridge loop.)
/// The loop is held by a weak reference, so one that goes is not kept, and
/// its address, if reused by another loop, never matches.
struct LastPort {
    event_loop: Py<PyWeakrefReference>,
    port: Arc<Port>,
}

static LAST_PORT: Mutex<Option<LastPort>> = Mutex::new(None);

impl LastPort {
    fn of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> Option<Arc<Port>> {
        // Cloned out first: nothing runs Python with the mutex held.
        let (weak, port) = {
            let last = lock(&LAST_PORT);
            let last = last.as_ref()?;
            (last.event_loop.clone_ref(py), last.port.clone())
        };
        let alive = weak.bind(py).upgrade()?;
        alive.is(event_loop).then_some(port)
    }

    fn remember(event_loop: &Bound<'_, PyAny>, port: &Arc<Port>) -> PyResult<()> {
        let event_loop = PyWeakrefReference::new(event_loop)?.unbind();
        let previous = lock(&LAST_PORT).replace(LastPort {
            event_loop,
            port: port.clone(),
        });
        drop(previous); // after the mutex: its weak reference's release is Python's
        Ok(())
    }
}

/// [`port_of`] without the shortcut: the loop's entry in the weak dictionary.
fn registered_port_of(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Port>> {
    static PORTS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let ports = PORTS
        .get_or_try_init(py, || {
            py.import("weakref")?
                .getattr("WeakKeyDictionary")?
                .call0()
                .map(Bound::unbind)
        })?
        .bind(py);
    let known = ports.call_method1(intern!(py, "get"), (event_loop,))?;
    if let Ok(reader) = known.cast::<PortReader>() {
        return Ok(reader.get().port.clone());
    }
    forget_closed_loops(ports)?;
    let port = Arc::new(Port::new().map_err(|e| KadError(dht_core::Error::Io(e)))?);
    let reader = Bound::new(py, PortReader { port: port.clone() })?;
    event_loop.call_method1(
        intern!(py, "add_reader"),
        (port.woken.as_raw_fd(), reader.clone()),
    )?;
    ports.set_item(event_loop, reader)?;
    Ok(port)
}

/// Drop the ports of closed loops and what is queued in them (see
/// [`port_of`]). A result that comes later for one of them finds its port
/// held by nobody else, and goes with it.
fn forget_closed_loops(ports: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = ports.py();
    // Collected first: the dictionary cannot change while it is iterated.
    let items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = ports
        .call_method0(intern!(py, "items"))?
        .try_iter()?
        .map(|item| item?.extract())
        .collect::<PyResult<_>>()?;
    for (event_loop, reader) in items {
        if !event_loop
            .call_method0(intern!(py, "is_closed"))?
            .is_truthy()?
        {
            continue;
        }
        if let Ok(reader) = reader.cast::<PortReader>() {
            drop(reader.get().port.take());
        }
        ports.del_item(&event_loop)?;
    }
    Ok(())
}

fn get_running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()
}

/// How to stop an operation whose asyncio future was cancelled.
pub type Cancel = Box<dyn Fn() + Send + Sync>;

/// Done-callback of the asyncio future: a cancelled future stops its
/// operation. (`cancel` is set once the operation has started.)
#[pyclass(frozen)]
struct StopOnCancel {
    cancel: OnceLock<Cancel>,
}

#[pymethods]
impl StopOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        let cancelled = future.call_method0(intern!(future.py(), "cancelled"))?;
        if let (true, Some(cancel)) = (cancelled.is_truthy()?, self.cancel.get()) {
            cancel();
        }
        Ok(())
    }
}

/// The asyncio future of an operation started by [`awaitable_then`]: settle
/// it once, from any thread.
pub struct Pending {
    port: Arc<Port>,
    future: Py<PyAny>,
    stop: Py<StopOnCancel>,
}

impl Pending {
    pub fn settle<T>(self, result: Result<T, KadError>)
    where
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let resolve: Resolve = Box::new(move |py| match result {
            Ok(v) => v
                .into_pyobject(py)
                .map(|o| o.into_any().unbind())
                .map_err(Into::into),
            Err(e) => Err(e.into()),
        });
        self.port.push(Completion {
            future: self.future,
            stop: self.stop,
            resolve,
        });
    }
}

/// An asyncio future of the running loop for an operation that reports its
/// own end: `start` begins it, hands the [`Pending`] to whatever finishes
/// it (a node's driver, with no tokio task in between), and returns how to
/// cancel it.
pub fn awaitable_then<'py>(
    py: Python<'py>,
    start: impl FnOnce(Pending) -> Cancel,
) -> PyResult<Bound<'py, PyAny>> {
    let event_loop = get_running_loop(py)?;
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let stop = Bound::new(
        py,
        StopOnCancel {
            cancel: OnceLock::new(),
        },
    )?;
    future.call_method1(intern!(py, "add_done_callback"), (&stop,))?;
    let pending = Pending {
        port: port_of(py, &event_loop)?,
        future: future.clone().unbind(),
        stop: stop.clone().unbind(),
    };
    // Nothing can cancel the future before this returns: we hold the GIL.
    let _ = stop.get().cancel.set(start(pending));
    Ok(future)
}

/// Run `fut` on the shared runtime; an asyncio future of the running loop
/// that resolves to its output (or raises its error).
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, KadError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let rt = runtime()?;
    let Some(doorbell) = crate::runtime::doorbell() else {
        return awaitable_then(py, move |pending| {
            let task = rt.spawn(async move { pending.settle(fut.await) });
            let abort = task.abort_handle();
            Box::new(move || abort.abort())
        });
    };
    // Started by the doorbell's task: `rt.spawn` from this thread would
    // wake a second worker too (see `dht_core::Doorbell`). Cancelling drops
    // the operation, as aborting the task did.
    awaitable_then(py, move |pending| {
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        doorbell.spawn(async move {
            tokio::select! {
                biased;
                () = stopped.notified() => {}
                result = fut => pending.settle(result),
            }
        });
        Box::new(move || stop.notify_one())
    })
}
