//! Catching redb's panics on a damaged file without the panic report.
//!
//! redb trusts the pages of a file it considers cleanly closed and can panic
//! on damaged ones (a truncated file, a byte flipped in a header). The store
//! turns such a panic into [`PersistError::Corrupt`](super::PersistError),
//! which callers print as one line; the default panic hook would print a
//! multi-line "thread panicked at ..." report to stderr first, which reads as
//! a crash. [`catch_quietly`] wraps whatever hook is installed, once, with
//! one that stays silent for a panic raised inside it on the same thread and
//! hands every other panic to the previous hook unchanged. A silenced
//! panic's message and location are returned instead, for the error's
//! detail: a panic of kadmium's own code in there is not lost either.
//!
//! Built with `panic = "abort"` nothing can be caught, so nothing is
//! silenced: the report is all there is before the process ends.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`catch_quietly`] calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the panic being silenced on this thread was raised.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static WRAP_HOOK: Once = Once::new();

/// A panic caught by [`catch_quietly`].
#[derive(Debug)]
pub(super) struct Caught {
    /// The panic's message ("unknown" for a payload other than a string).
    pub(super) message: String,
    /// `file:line:column` where it was raised, when the hook was told.
    pub(super) location: Option<String>,
}

impl std::fmt::Display for Caught {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{} (at {at})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Runs `f`, returning its panic as a [`Caught`] instead of unwinding, and
/// without the panic hook's report for that panic.
pub(super) fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    WRAP_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if cfg!(panic = "unwind") && DEPTH.with(Cell::get) > 0 {
                LOCATION.with(|at| *at.borrow_mut() = info.location().map(|l| l.to_string()));
            } else {
                previous(info);
            }
        }));
    });
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| Caught {
        message: payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into()),
        location: LOCATION.with(|at| at.borrow_mut().take()),
    })
}
