//! Logging for C programs: the library's `tracing` events go to a C
//! callback (kad_set_log_callback), or, when none is set and `KADMIUM_LOG`
//! (else `RUST_LOG`) is in the environment, to stderr filtered by it
//! (EnvFilter syntax, e.g. `KADMIUM_LOG=dht_core=debug`).
//!
//! One subscriber is installed for the process on first use of the library
//! (if the host program already installed one, e.g. a Rust program linking
//! us, that one is kept and these settings have no effect).

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Once, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer};

use crate::callback::Userdata;
use crate::error::{kad_result, Failure};

/// Severity of a log message; a callback gets the messages up to the level
/// it asked for (KAD_LOG_LEVEL_DEBUG includes WARN, ...).
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum kad_log_level {
    /// No messages (disables the callback).
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// Receives one log message: `target` is the module that logged it (e.g.
/// "dht_core::node"), `message` the text with its fields ("node started
/// id=... addr=..."); both NUL-terminated and valid only during the call.
/// Runs on the thread that logged, often a library worker thread, possibly
/// on several threads at once: it must be quick and must not block (in
/// particular not on a lock that a thread calling kad_node_free or
/// kad_api_server_free may hold: those wait for the library's threads);
/// kadmium calls that wait return KAD_WRONG_THREAD there. Calls that read a node
/// (kad_node_stats, kad_node_public_address, the routing-table calls) work:
/// a message a node makes while it holds its state reaches the callback
/// after the node has let go of it, on the same thread.
pub type kad_log_callback = Option<
    unsafe extern "C-unwind" fn(
        userdata: *mut c_void,
        level: kad_log_level,
        target: *const c_char,
        message: *const c_char,
    ),
>;

struct Sink {
    callback: unsafe extern "C-unwind" fn(*mut c_void, kad_log_level, *const c_char, *const c_char),
    userdata: Userdata,
}

// SAFETY: userdata is only handed back to the caller's callback, which is
// documented to run on any thread.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// kad_log_level of the callback, read on every event without the lock.
static SINK_LEVEL: AtomicU8 = AtomicU8::new(0);
static INSTALL: Once = Once::new();

thread_local! {
    /// True while this thread runs the log callback (to refuse re-entry).
    static IN_LOG: Cell<bool> = const { Cell::new(false) };
}

fn level_of(level: &Level) -> kad_log_level {
    match *level {
        Level::ERROR => kad_log_level::Error,
        Level::WARN => kad_log_level::Warn,
        Level::INFO => kad_log_level::Info,
        Level::DEBUG => kad_log_level::Debug,
        Level::TRACE => kad_log_level::Trace,
    }
}

/// Install the process's subscriber once: the callback layer, plus stderr
/// output when KADMIUM_LOG or RUST_LOG is set.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let callback_layer = CallbackLayer.with_filter(filter::filter_fn(|meta| {
            level_of(meta.level()) as u8 <= SINK_LEVEL.load(Ordering::Relaxed)
        }));
        let env = std::env::var("KADMIUM_LOG")
            .or_else(|_| std::env::var("RUST_LOG"))
            .ok();
        let stderr_layer = env.map(|spec| {
            let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("warn"));
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                // Only while no C callback is set.
                .with_filter(filter::filter_fn(|_| {
                    SINK_LEVEL.load(Ordering::Relaxed) == 0
                }))
                .with_filter(filter)
        });
        // Err: the host program has its own subscriber; keep it.
        let _ = tracing_subscriber::registry()
            .with(callback_layer)
            .with(stderr_layer)
            .try_init();
    });
}

struct CallbackLayer;

impl<S: Subscriber> Layer<S> for CallbackLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if IN_LOG.try_with(Cell::get).unwrap_or(true) {
            return; // a log message from inside the callback: drop it
        }
        let mut text = MessageText(String::new());
        event.record(&mut text);
        let meta = event.metadata();
        let (Ok(target), Ok(message)) = (
            CString::new(meta.target()),
            CString::new(text.0.replace('\0', "\\0")),
        ) else {
            return;
        };
        let level = level_of(meta.level());
        // A node logs while it holds its lock; the callback gets such a
        // message once the lock is released, so it may call the node.
        dht_core::after_unlock::run_unlocked(move || deliver(level, &target, &message));
    }
}

/// Hand one message to the callback set now (none: dropped). A message made
/// before kad_set_log_callback, and put off until its node's lock was
/// released, reaches the callback set by then if its level asks for it.
fn deliver(level: kad_log_level, target: &CStr, message: &CStr) {
    if level as u8 > SINK_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    // The callback is never re-entered: a message made inside it was dropped
    // (see `on_event`), and put-off work runs in order, not nested.
    if IN_LOG.try_with(|c| c.replace(true)).unwrap_or(true) {
        return;
    }
    let sink = SINK.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(sink) = sink.as_ref() {
        // SAFETY: the caller's C callback with its own userdata; the strings
        // live until it returns.
        unsafe {
            (sink.callback)(
                sink.userdata.get(),
                level,
                target.as_ptr(),
                message.as_ptr(),
            )
        };
    }
    let _ = IN_LOG.try_with(|c| c.set(false));
}

/// "message key=value key=value" from an event's fields.
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}

/// Send the library's log messages up to `max_level` to `callback` (called
/// with `userdata`; see kad_log_callback for its thread rules), for the whole
/// process. A NULL `callback` or KAD_LOG_LEVEL_OFF removes it; stderr
/// logging (KADMIUM_LOG / RUST_LOG) then resumes. When this returns, the
/// previous callback is no longer running on any thread and will not be
/// called again, so its userdata may be released. A message made just
/// before this call may still reach the new callback.
///
/// KAD_INVALID_ARGUMENT for a level above KAD_LOG_LEVEL_TRACE;
/// KAD_WRONG_THREAD from inside a log callback.
#[no_mangle]
pub unsafe extern "C" fn kad_set_log_callback(
    callback: kad_log_callback,
    userdata: *mut c_void,
    max_level: u32,
) -> kad_result {
    ffi_panic_boundary! {
        if max_level > kad_log_level::Trace as u32 {
            return Failure::new(kad_result::KAD_INVALID_ARGUMENT, format!("no log level {max_level}")).report();
        }
        if IN_LOG.try_with(Cell::get).unwrap_or(false) {
            return Failure::new(
                kad_result::KAD_WRONG_THREAD,
                "kad_set_log_callback cannot be called from inside the log callback",
            )
            .report();
        }
        install();
        // Taking the write lock waits for callbacks running on other threads.
        let mut sink = SINK.write().unwrap_or_else(PoisonError::into_inner);
        *sink = callback.map(|callback| Sink { callback, userdata: Userdata::new(userdata) });
        let level = if sink.is_some() { max_level as u8 } else { 0 };
        SINK_LEVEL.store(level, Ordering::Relaxed);
        drop(sink);
        // Filters answered per call site may have been cached as "never".
        tracing::callsite::rebuild_interest_cache();
        kad_result::KAD_OK
    }
}
