//! Work a thread must not do while it holds a node's lock, put off until it
//! lets go.
//!
//! A node logs while it holds its lock (it logs what it is handling), and
//! the log sinks of the bindings run their users' code: a Python `logging`
//! handler, a C log callback. Such code may call the node — upstream's
//! Python handlers run on the event loop, where `server.stats()` just works —
//! and waiting for the lock on the thread that holds it never ends. So a sink
//! hands the delivery to [`run_unlocked`]: it runs at once when it can, else
//! on the same thread as soon as the outermost node lock there is released.
//!
//! Work runs in the order it was made, never nested: work done while the
//! thread runs earlier work (a handler's own call into a node that logs) is
//! queued behind it. A panic while a lock is held drops what was put off:
//! user code must not run while unwinding, and a record that came later
//! must not overtake it.
//!
//! Every lock of a node's state goes through `Inner::lock` (node.rs), which
//! keeps a `HeldScope` for as long as it holds the lock.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::marker::PhantomData;

thread_local! {
    /// How many node locks this thread holds (nested locks of several nodes count each).
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread is running put-off work now.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    /// Work put off until `HELD` drops to zero, oldest first.
    static LATER: RefCell<VecDeque<Box<dyn FnOnce()>>> = const { RefCell::new(VecDeque::new()) };
}

/// Whether this thread holds a node's lock right now.
fn node_lock_held() -> bool {
    HELD.try_with(Cell::get).unwrap_or(0) > 0
}

/// Whether [`run_unlocked`] would put work off now: this thread holds a
/// node's lock, or runs work put off earlier. A sink that must copy what it
/// delivers asks first, to copy only then.
pub fn must_wait() -> bool {
    RUNNING.try_with(Cell::get).unwrap_or(false) || node_lock_held()
}

/// Run `work` now, or — when this thread holds a node's lock — right after
/// it releases the last one it holds, on this thread. Work made while
/// earlier work runs waits for it (see the module's notes).
///
/// Work put off while the thread exits (its thread-locals gone) is dropped.
pub fn run_unlocked(work: impl FnOnce() + 'static) {
    if !must_wait() {
        work();
        return;
    }
    let _ = LATER.try_with(|later| later.borrow_mut().push_back(Box::new(work)));
}

/// Counts one held node lock from [`HeldScope::enter`] to its drop; the
/// drop that ends the last one runs the work put off meanwhile. Drop it
/// *after* the lock's guard (the guard's field comes first), so the work
/// runs with the lock free. Not `Send`: the count is this thread's.
pub(crate) struct HeldScope(PhantomData<*const ()>);

impl HeldScope {
    pub(crate) fn enter() -> HeldScope {
        let _ = HELD.try_with(|held| held.set(held.get() + 1));
        HeldScope(PhantomData)
    }
}

impl Drop for HeldScope {
    fn drop(&mut self) {
        let outermost = HELD
            .try_with(|held| {
                held.set(held.get().saturating_sub(1));
                held.get() == 0
            })
            .unwrap_or(false);
        // The common case, every release of a node's lock: nothing was put off.
        if !outermost
            || LATER
                .try_with(|later| later.borrow().is_empty())
                .unwrap_or(true)
        {
            return;
        }
        if std::thread::panicking() {
            let _ = LATER.try_with(|later| later.borrow_mut().clear());
        } else {
            run_put_off();
        }
    }
}

/// Run the work put off so far, oldest first, including work it puts off
/// in turn. A release inside that work leaves it to this loop.
fn run_put_off() {
    if RUNNING
        .try_with(|running| running.replace(true))
        .unwrap_or(true)
    {
        return;
    }
    /// Clears `RUNNING` however the loop ends.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = RUNNING.try_with(|running| running.set(false));
        }
    }
    let _running = Running;
    while let Some(work) = LATER
        .try_with(|later| later.borrow_mut().pop_front())
        .ok()
        .flatten()
    {
        work();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn log() -> Rc<RefCell<Vec<&'static str>>> {
        Rc::new(RefCell::new(Vec::new()))
    }

    #[test]
    fn without_a_lock_work_runs_at_once() {
        let seen = log();
        let s = seen.clone();
        run_unlocked(move || s.borrow_mut().push("now"));
        assert_eq!(*seen.borrow(), ["now"]);
        assert!(!node_lock_held());
    }

    #[test]
    fn work_waits_for_the_outermost_release_in_order() {
        let seen = log();
        let outer = HeldScope::enter();
        let inner = HeldScope::enter();
        assert!(node_lock_held());
        let (a, b) = (seen.clone(), seen.clone());
        run_unlocked(move || a.borrow_mut().push("first"));
        run_unlocked(move || b.borrow_mut().push("second"));
        drop(inner);
        assert!(seen.borrow().is_empty(), "an inner release must not run it");
        drop(outer);
        assert_eq!(*seen.borrow(), ["first", "second"]);
        assert!(!node_lock_held());
    }

    #[test]
    fn work_made_by_running_work_waits_for_the_work_before_it() {
        let seen = log();
        let scope = HeldScope::enter();
        let (a, b) = (seen.clone(), seen.clone());
        run_unlocked(move || {
            // A handler calling a node that logs: locked, then released.
            let again = HeldScope::enter();
            let inner = a.clone();
            run_unlocked(move || inner.borrow_mut().push("made by the work"));
            drop(again);
            // ... and a record made with no lock held, while work runs.
            let unlocked = a.clone();
            run_unlocked(move || unlocked.borrow_mut().push("made unlocked by the work"));
            a.borrow_mut().push("work");
        });
        run_unlocked(move || b.borrow_mut().push("made before"));
        drop(scope);
        assert_eq!(
            *seen.borrow(),
            [
                "work",
                "made before",
                "made by the work",
                "made unlocked by the work"
            ]
        );
        // Nothing is left running: the next record runs at once.
        let c = seen.clone();
        run_unlocked(move || c.borrow_mut().push("now"));
        assert_eq!(seen.borrow().last(), Some(&"now"));
    }

    #[test]
    fn a_panic_under_the_lock_drops_the_work_put_off() {
        let seen = log();
        let s = seen.clone();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _scope = HeldScope::enter();
            run_unlocked(move || s.borrow_mut().push("put off before the panic"));
            panic!("while holding the lock");
        }));
        assert!(caught.is_err());
        assert!(!node_lock_held());
        // Neither run later (out of order) nor by the next release.
        let later = seen.clone();
        run_unlocked(move || later.borrow_mut().push("made after"));
        drop(HeldScope::enter());
        assert_eq!(*seen.borrow(), ["made after"]);
    }
}
