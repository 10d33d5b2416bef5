//! Waking node drivers for threads outside their runtime, through the
//! runtime's reactor rather than its scheduler.
//!
//! A task woken from a thread outside a multi-thread tokio runtime is queued
//! for the runtime and a sleeping worker is woken to run it. That worker,
//! once it has found the task, wakes a second one to look for more
//! (`transition_worker_from_searching` in tokio's scheduler), which finds
//! nothing and goes back to sleep: two wake-ups for each call a Python or C
//! caller makes on an idle node. A worker woken by its reactor (a datagram,
//! a readable descriptor) starts no such search. So a binding whose callers
//! live outside the runtime gives its nodes a [`Doorbell`]
//! ([`crate::Node::ring_through`]): a caller queues its command, rings, and
//! the doorbell's task, woken by the reactor like a datagram would wake a
//! node, wakes the drivers that have commands from inside the runtime. A
//! binding can also start its own tasks that way ([`Doorbell::spawn`]).
//!
//! Rings are batched as the Python bridge's completions are: only the ring
//! that finds the list empty writes to the socket pair, and the task drains
//! the pair before it takes the list, so a ring after the take writes again.

use std::future::Future;
use std::io::{self, ErrorKind};
use std::os::unix::net::UnixDatagram;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;
use tracing::debug;

/// Wakes node drivers for callers outside the runtime (see the module doc).
/// Cloning shares the doorbell.
#[derive(Clone)]
pub struct Doorbell {
    shared: Arc<Shared>,
}

/// What a ring asks of the doorbell's task.
enum Rung {
    Wake(Arc<Notify>),
    Spawn(Pin<Box<dyn Future<Output = ()> + Send>>),
}

struct Shared {
    /// What was rung for, in order.
    waiting: Mutex<Vec<Rung>>,
    /// Written by the ring that finds `waiting` empty.
    bell: UnixDatagram,
    /// The doorbell's runtime, for rings its task cannot hear (below).
    runtime: tokio::runtime::Handle,
}

impl Rung {
    /// Do what was rung for, from whatever thread this is.
    fn answer(self, runtime: &tokio::runtime::Handle) {
        match self {
            Rung::Wake(driver) => driver.notify_one(),
            Rung::Spawn(task) => drop(runtime.spawn(task)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Doorbell {
    /// A doorbell whose task runs on the current tokio runtime for as long
    /// as the runtime does; an error outside a runtime.
    pub fn start() -> io::Result<Doorbell> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (bell, heard) = UnixDatagram::pair()?;
        bell.set_nonblocking(true)?;
        heard.set_nonblocking(true)?;
        // SAFETY: the descriptor is `heard`'s own, and the `AsyncFd` owns
        // `heard` (and so keeps the descriptor open) for its whole life.
        let heard = unsafe { AsyncFd::register_with_interest(heard, Interest::READABLE) }?;
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Vec::new()),
            bell,
            runtime: runtime.clone(),
        });
        runtime.spawn(answer(shared.clone(), heard));
        Ok(Doorbell { shared })
    }

    /// Wake `driver` (`notify_one`): through the doorbell's task from a
    /// thread outside any runtime, directly from a runtime's thread.
    pub(crate) fn ring(&self, driver: &Arc<Notify>) {
        self.push(Rung::Wake(driver.clone()));
    }

    /// Start `task` on the doorbell's runtime: from a thread outside any
    /// runtime through the doorbell's task, where `Handle::spawn` would wake
    /// a second worker as well (see the module doc); directly from a
    /// runtime's thread. Nothing is returned to abort it with; a task that
    /// can be cancelled watches for that itself.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.push(Rung::Spawn(Box::pin(task)));
    }

    fn push(&self, rung: Rung) {
        if tokio::runtime::Handle::try_current().is_ok() {
            // A runtime's own thread wakes or spawns without the search.
            return rung.answer(&self.shared.runtime);
        }
        let first = {
            let mut waiting = lock(&self.shared.waiting);
            waiting.push(rung);
            waiting.len() == 1
        };
        if !first {
            return; // the ring that found the list empty wrote
        }
        match self.shared.bell.send(&[1]) {
            // A full socket buffer (WouldBlock) already holds a ring.
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                // The task cannot hear this ring (its runtime is gone, or
                // the system is out of buffers), and later rings would not
                // write while the list is not empty: answer it here.
                debug!(error = %e, "doorbell unheard, answered by the caller");
                let rungs = std::mem::take(&mut *lock(&self.shared.waiting));
                for rung in rungs {
                    rung.answer(&self.shared.runtime);
                }
            }
        }
    }
}

/// The doorbell's task: each time the pair is readable, drain it, then wake
/// every driver and start every task rung for. Ends when the runtime's
/// reactor goes.
async fn answer(shared: Arc<Shared>, heard: AsyncFd<UnixDatagram>) {
    let mut buf = [0u8; 64];
    loop {
        let mut guard = match heard.readable().await {
            Ok(guard) => guard,
            Err(e) => {
                debug!(error = %e, "doorbell stopped");
                return;
            }
        };
        // Drained before the list is taken: a ring after the take writes
        // again. The read that finds the pair empty clears the readiness.
        loop {
            match guard.try_io(|socket| socket.get_ref().recv(&mut buf)) {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let rungs = std::mem::take(&mut *lock(&shared.waiting));
        for rung in rungs {
            rung.answer(&shared.runtime);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Tasks started from other threads all run, on the doorbell's runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_spawned_from_other_threads_all_run_on_the_runtime() {
        const TASKS: u64 = 5_000;
        let doorbell = Doorbell::start().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let spawners: Vec<_> = (0..4)
            .map(|_| {
                let (doorbell, tx) = (doorbell.clone(), tx.clone());
                std::thread::spawn(move || {
                    for _ in 0..TASKS / 4 {
                        let tx = tx.clone();
                        doorbell.spawn(async move {
                            // On the runtime: a runtime-only call works here.
                            let on_runtime = tokio::runtime::Handle::try_current().is_ok();
                            tokio::task::yield_now().await;
                            let _ = tx.send(on_runtime);
                        });
                    }
                })
            })
            .collect();
        drop(tx);
        for spawner in spawners {
            spawner.join().unwrap();
        }
        let mut ran = 0;
        while let Some(on_runtime) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a spawned task never ran")
        {
            assert!(on_runtime);
            ran += 1;
        }
        assert_eq!(ran, TASKS);
    }

    /// Rings from many threads at once, for many drivers, each ring heard
    /// on its own: a ringer waits for its driver to have seen a ring before
    /// the next, so no later ring can make up for a lost one, which leaves
    /// its driver waiting and the test at its hang guard (not a timing
    /// assertion: a run takes a fraction of a second).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_ring_from_other_threads_wakes_its_driver() {
        const THREADS: usize = 4;
        const DRIVERS_PER_THREAD: usize = 4;
        const RINGS: u64 = 1_000;
        let doorbell = Doorbell::start().unwrap();
        // Per driver: rings queued for it, and rings it has seen.
        let drivers: Vec<(Arc<Notify>, Arc<AtomicU64>, Arc<AtomicU64>)> = (0..THREADS
            * DRIVERS_PER_THREAD)
            .map(|_| {
                let counter = || Arc::new(AtomicU64::new(0));
                (Arc::new(Notify::new()), counter(), counter())
            })
            .collect();
        let waiting: Vec<_> = drivers
            .iter()
            .map(|(notify, queued, seen)| {
                let (notify, queued, seen) = (notify.clone(), queued.clone(), seen.clone());
                tokio::spawn(async move {
                    // As a node's driver: drain what was queued, then wait.
                    loop {
                        let got = queued.swap(0, Ordering::SeqCst);
                        if seen.fetch_add(got, Ordering::SeqCst) + got == RINGS {
                            return;
                        }
                        notify.notified().await;
                    }
                })
            })
            .collect();
        let ringers: Vec<_> = drivers
            .chunks(DRIVERS_PER_THREAD)
            .map(|mine| {
                let (doorbell, mine) = (doorbell.clone(), mine.to_vec());
                std::thread::spawn(move || {
                    for round in 1..=RINGS {
                        for (notify, queued, _) in &mine {
                            queued.fetch_add(1, Ordering::SeqCst);
                            doorbell.ring(notify);
                        }
                        for (_, _, seen) in &mine {
                            let give_up = std::time::Instant::now() + Duration::from_secs(30);
                            while seen.load(Ordering::SeqCst) < round {
                                assert!(std::time::Instant::now() < give_up, "a ring was lost");
                                std::thread::yield_now();
                            }
                        }
                    }
                })
            })
            .collect();
        for ringer in ringers {
            tokio::task::block_in_place(|| ringer.join()).unwrap();
        }
        for task in waiting {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a driver never saw its last ring")
                .unwrap();
        }
    }

    #[test]
    fn outside_a_runtime_there_is_no_doorbell_to_start() {
        assert!(Doorbell::start().is_err());
    }

    /// A ring its task cannot hear (the task is gone) is answered by the
    /// caller, and so is every ring after it.
    #[test]
    fn a_ring_nobody_hears_is_answered_by_the_caller() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let doorbell = runtime.block_on(async { Doorbell::start().unwrap() });
        drop(runtime); // the doorbell's task and its end of the pair go
        for _ in 0..3 {
            let driver = Arc::new(Notify::new());
            doorbell.ring(&driver);
            // The permit left by notify_one, taken without waiting.
            let mut woken = std::pin::pin!(driver.notified());
            assert!(woken.as_mut().enable(), "the ring was not answered");
        }
    }
}
