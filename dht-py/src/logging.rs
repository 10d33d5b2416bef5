//! Rust log events -> Python `logging`.
//!
//! dht-core and dht-voidphone log with `tracing`; with tracing's `log`
//! feature (and no tracing subscriber) each event becomes a `log` record,
//! which pyo3-log passes to the Python logger named after its target under
//! [`LOGGER_PREFIX`]: `dht_core::protocol` logs to
//! `kademlia.kadmium.dht_core.protocol`. So configuring the `kademlia` logger,
//! as scripts written for the Python package do, controls kadmium's messages,
//! and `kademlia.kadmium` controls only kadmium's.
//!
//! Python logger levels are read on every event that passes the Rust-side
//! maximum (so `setLevel` works at any time); that maximum is DEBUG, or TRACE
//! when `KADMIUM_LOG` or `RUST_LOG` asks for trace (per-RPC events).
//!
//! Records are dropped rather than logged once the interpreter exits
//! (see [`crate::exit_gate`]): a runtime thread attached to a finalizing
//! interpreter aborts the process.
//! A node logs while it holds its lock; such a record is copied and handed to
//! the handlers once the lock is released (`dht_core::after_unlock`), so a
//! handler may call the node, as upstream's may. Records made by such a call
//! while the handler runs are dropped (see [`Bridge::deliver`]).

use std::cell::Cell;
use std::sync::OnceLock;

use dht_core::after_unlock;
use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3_log::{Caching, Logger};

use crate::exit_gate;

/// Parent of every Python logger kadmium's Rust code logs to.
pub const LOGGER_PREFIX: &str = "kademlia.kadmium";

struct Bridge(Logger);

/// The installed bridge (a static, so that put-off records can reach it).
static BRIDGE: OnceLock<Bridge> = OnceLock::new();

thread_local! {
    /// Whether this thread is handing a record to the Python handlers.
    static DELIVERING: Cell<bool> = const { Cell::new(false) };
}

impl Bridge {
    /// Hand `record` to the Python handlers now. A record kadmium makes
    /// while a handler runs on this thread (the handler's own call into a
    /// node) is dropped, as the C log callback's are: delivered, it could
    /// make the handler call the node again, and so on forever.
    fn deliver(&self, record: &Record<'_>) {
        if DELIVERING.try_with(|d| d.replace(true)).unwrap_or(true) {
            return;
        }
        let _ = exit_gate::attached(|py| {
            // pyo3-log leaves a handler's exception set as the current one,
            // so a node method that logged on the caller's thread returned a
            // value with an exception set (`SystemError`). Python's logging
            // keeps a handler's failure from the code that logged
            // (`Handler.handleError`); so does this: the exception goes to
            // `sys.unraisablehook`, and one the caller had set stays.
            let before = PyErr::take(py);
            self.0.log(record);
            if let Some(raised) = PyErr::take(py) {
                if raised.is_instance_of::<PyKeyboardInterrupt>(py) {
                    // Ctrl-C while a handler ran: not lost, but raised again
                    // as a signal is, at Python's next check.
                    // SAFETY: a plain C call; attached to Python here.
                    unsafe { pyo3::ffi::PyErr_SetInterrupt() };
                } else {
                    raised.write_unraisable(py, None);
                }
            }
            if let Some(before) = before {
                before.restore(py);
            }
        });
        let _ = DELIVERING.try_with(|d| d.set(false));
    }
}

impl Log for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if DELIVERING.try_with(Cell::get).unwrap_or(true) || !self.0.enabled(record.metadata()) {
            return;
        }
        if after_unlock::must_wait() {
            let put_off = OwnedRecord::of(record);
            after_unlock::run_unlocked(move || {
                if let Some(bridge) = BRIDGE.get() {
                    put_off.deliver_to(bridge);
                }
            });
        } else {
            self.deliver(record);
        }
    }

    fn flush(&self) {}
}

/// A record kept until its node's lock is released.
struct OwnedRecord {
    level: Level,
    target: String,
    message: String,
    module_path: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

impl OwnedRecord {
    fn of(record: &Record<'_>) -> OwnedRecord {
        OwnedRecord {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
            module_path: record.module_path().map(str::to_owned),
            file: record.file().map(str::to_owned),
            line: record.line(),
        }
    }

    fn deliver_to(&self, bridge: &Bridge) {
        bridge.deliver(
            &Record::builder()
                .level(self.level)
                .target(&self.target)
                .args(format_args!("{}", self.message))
                .module_path(self.module_path.as_deref())
                .file(self.file.as_deref())
                .line(self.line)
                .build(),
        );
    }
}

fn max_level_from_env() -> LevelFilter {
    let wants_trace = ["KADMIUM_LOG", "RUST_LOG"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .any(|v| v.to_ascii_lowercase().contains("trace"));
    if wants_trace {
        LevelFilter::Trace
    } else {
        LevelFilter::Debug
    }
}

/// Install the bridge as the process's `log` logger (once; if another
/// extension already installed one, kadmium's records go there instead).
pub fn install(py: Python<'_>) -> PyResult<()> {
    let max = max_level_from_env();
    let logger = Logger::new(py, Caching::Loggers)?
        .set_prefix(LOGGER_PREFIX)
        .filter(max);
    let bridge = BRIDGE.get_or_init(|| Bridge(logger));
    if log::set_logger(bridge).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}
