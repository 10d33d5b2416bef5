//! The second thread of a simulation: it runs one shard's window while the
//! caller runs the others.
//!
//! A shard travels to it and back by value (a move of a few hundred bytes),
//! so no borrow crosses threads and nothing here is `unsafe`. The thread
//! lives as long as its simulation. Windows come in quick succession (a
//! 24-hour run at 10⁴ nodes has millions, most of a few dozen entries), so
//! waking a parked thread for each would cost more than the window itself:
//! both sides spin briefly on an atomic state before parking, and a window
//! is handed over in well under a microsecond while the two keep pace.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use super::shard::Shard;

/// Nothing to do: the helper waits for a job.
const IDLE: u8 = 0;
/// A job is posted.
const POSTED: u8 = 1;
/// The shard of the last job is back.
const DONE: u8 = 2;
/// The simulation is gone: the helper ends.
const STOP: u8 = 3;

/// Spins before parking (a spin is a `pause`, tens of nanoseconds): long
/// enough to cover the main thread's work between two windows.
const SPINS: u32 = 4096;

struct Shared {
    state: AtomicU8,
    job: Mutex<Option<(Shard, u64)>>,
    done: Mutex<Option<Shard>>,
    /// The thread that posts jobs, unparked when one is done.
    caller: Thread,
}

/// A lock whose poisoning cannot matter: the data is a handed-over value.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Wait until `ready` holds: spin first, then park (woken by an unpark, or
/// every millisecond to check `give_up`). Returns false if `give_up` did.
fn wait(ready: impl Fn() -> bool, give_up: impl Fn() -> bool) -> bool {
    for _ in 0..SPINS {
        if ready() {
            return true;
        }
        std::hint::spin_loop();
    }
    while !ready() {
        if give_up() {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(1));
    }
    true
}

pub(super) struct Helper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    /// `None` if the system refuses another thread (then one thread runs all).
    pub(super) fn start() -> Option<Helper> {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            job: Mutex::new(None),
            done: Mutex::new(None),
            caller: std::thread::current(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sim-shard".into())
            .spawn(move || serve(&theirs))
            .ok()?;
        Some(Helper {
            shared,
            thread: Some(thread),
        })
    }

    /// Run `shard` until `limit` on the helper thread while `meanwhile`
    /// runs here; returns the shard. Meant for the thread that started the
    /// helper (from another one it works too, checking every millisecond
    /// instead of being woken).
    ///
    /// # Panics
    /// If a node panicked on the helper thread: its panic goes on here, as
    /// it would have had the node run on this thread.
    pub(super) fn run_beside(
        &mut self,
        shard: Shard,
        limit: u64,
        meanwhile: impl FnOnce(),
    ) -> Shard {
        let shared = &self.shared;
        *lock(&shared.job) = Some((shard, limit));
        shared.state.store(POSTED, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        meanwhile();
        let finished = || self.thread.as_ref().is_none_or(JoinHandle::is_finished);
        let back = wait(|| shared.state.load(Ordering::Acquire) == DONE, finished);
        let shard = lock(&shared.done).take();
        match (back, shard) {
            (true, Some(shard)) => {
                shared.state.store(IDLE, Ordering::Release);
                shard
            }
            _ => {
                // The thread ended without handing the shard back: it panicked.
                let payload = self
                    .thread
                    .take()
                    .and_then(|t| t.join().err())
                    .unwrap_or_else(|| Box::new("the simulation's helper thread stopped"));
                std::panic::resume_unwind(payload)
            }
        }
    }
}

/// The helper thread: run each posted job, hand the shard back.
fn serve(shared: &Shared) {
    loop {
        let posted = || {
            let state = shared.state.load(Ordering::Acquire);
            state == POSTED || state == STOP
        };
        wait(posted, || false);
        if shared.state.load(Ordering::Acquire) == STOP {
            return;
        }
        let Some((mut shard, limit)) = lock(&shared.job).take() else {
            continue;
        };
        shard.run_until(limit);
        *lock(&shared.done) = Some(shard);
        // Unless the simulation went meanwhile (a panic on the caller's side).
        if shared
            .state
            .compare_exchange(POSTED, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        shared.caller.unpark();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.shared.state.store(STOP, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
