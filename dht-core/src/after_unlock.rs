//! Work a thread must not do while it holds a node's lock, put off until it
//! lets go.
//!
//! A node logs while it holds its lock (it logs what it is handling), and
//! the log sinks of the bindings run their users' code: a Python `logging`
//! handler, a C log callback. Such code may call the node — upstream's
//! Python handlers run on the event loop, where `server.stats()` just works —
//! and waiting for the lock on the thread that holds it never ends. So a sink
//! asks [`node_lock_held`] and, when it is, hands the delivery to
//! [`run_unlocked`]: it runs on the same thread as soon as the outermost
//! node lock there is released, in the order the work was put off.
//!
//! Every lock of a node's state goes through `Inner::lock` (node.rs), which
//! keeps a [`HeldScope`] for as long as it holds the lock.

use std::cell::{Cell, RefCell};

thread_local! {
    /// How many node locks this thread holds (nested locks of several nodes count each).
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Work put off until `HELD` drops to zero.
    static LATER: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread holds a node's lock right now.
pub fn node_lock_held() -> bool {
    HELD.try_with(Cell::get).unwrap_or(0) > 0
}

/// Run `work` now, or — when this thread holds a node's lock — right after
/// it releases the last one it holds, on this thread.
///
/// Work put off while the thread exits (its thread-locals gone) is dropped.
pub fn run_unlocked(work: impl FnOnce() + 'static) {
    if !node_lock_held() {
        work();
        return;
    }
    let _ = LATER.try_with(|later| later.borrow_mut().push(Box::new(work)));
}

/// Counts one held node lock from [`HeldScope::enter`] to its drop; the
/// drop that ends the last one runs the work put off meanwhile. Drop it
/// *after* the lock's guard (the guard's field comes first), so the work
/// runs with the lock free.
pub(crate) struct HeldScope(());

impl HeldScope {
    pub(crate) fn enter() -> HeldScope {
        let _ = HELD.try_with(|held| held.set(held.get() + 1));
        HeldScope(())
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
        // While unwinding, user code (a Python handler, a C callback) must
        // not run: the work waits for this thread's next release.
        if outermost && !std::thread::panicking() {
            run_put_off();
        }
    }
}

/// Run the work put off so far. Work may lock a node again and put off
/// more; that runs when its own lock is released, before the rest of this
/// batch (the batch is taken off the queue first).
fn run_put_off() {
    loop {
        let batch = LATER
            .try_with(|later| std::mem::take(&mut *later.borrow_mut()))
            .unwrap_or_default();
        if batch.is_empty() {
            return;
        }
        for work in batch {
            work();
        }
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
    fn work_that_locks_again_runs_its_own_work_after_its_release() {
        let seen = log();
        let scope = HeldScope::enter();
        let (a, b) = (seen.clone(), seen.clone());
        run_unlocked(move || {
            let again = HeldScope::enter();
            let inner = a.clone();
            run_unlocked(move || inner.borrow_mut().push("put off by the work"));
            a.borrow_mut().push("work");
            drop(again);
        });
        run_unlocked(move || b.borrow_mut().push("later work"));
        drop(scope);
        assert_eq!(
            *seen.borrow(),
            ["work", "put off by the work", "later work"]
        );
    }

    #[test]
    fn a_panic_under_the_lock_keeps_the_work_for_the_next_release() {
        let seen = log();
        let s = seen.clone();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _scope = HeldScope::enter();
            run_unlocked(move || s.borrow_mut().push("after the panic"));
            panic!("while holding the lock");
        }));
        assert!(caught.is_err());
        assert!(seen.borrow().is_empty());
        assert!(!node_lock_held());
        drop(HeldScope::enter());
        assert_eq!(*seen.borrow(), ["after the panic"]);
    }
}
