//! Catching redb's panics on a damaged file without the panic report.
//!
//! redb trusts the pages of a file it considers cleanly closed and can panic
//! on damaged ones (a truncated file, a byte flipped in a header). The store
//! turns such a panic into [`PersistError::Corrupt`](super::PersistError),
//! which callers print as one line; the default panic hook would print a
//! multi-line "thread panicked at ..." report to stderr first, which reads as
//! a crash. [`catch_quietly`] wraps whatever hook is installed, once, with
//! one that stays silent for a panic raised inside it on the same thread and
//! hands every other panic to the previous hook unchanged.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`catch_quietly`] calls this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

static WRAP_HOOK: Once = Once::new();

/// Runs `f`, returning its panic's payload instead of unwinding, and without
/// the panic hook's report for that panic.
pub(super) fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    WRAP_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result
}
