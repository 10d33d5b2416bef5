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
//! node, wakes the drivers that have commands from inside the runtime.
//!
//! Rings are batched as the Python bridge's completions are: only the ring
//! that finds the list empty writes to the socket pair, and the task drains
//! the pair before it takes the list, so a ring after the take writes again.

use std::io::{self, ErrorKind};
use std::os::unix::net::UnixDatagram;
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

struct Shared {
    /// Drivers to wake, in the order rung.
    waiting: Mutex<Vec<Arc<Notify>>>,
    /// Written by the ring that finds `waiting` empty.
    bell: UnixDatagram,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Doorbell {
    /// A doorbell whose task runs on the current tokio runtime (it must be
    /// called inside one) for as long as the runtime does.
    pub fn start() -> io::Result<Doorbell> {
        let (bell, heard) = UnixDatagram::pair()?;
        bell.set_nonblocking(true)?;
        heard.set_nonblocking(true)?;
        // SAFETY: the descriptor is `heard`'s own, and the `AsyncFd` owns
        // `heard` (and so keeps the descriptor open) for its whole life.
        let heard = unsafe { AsyncFd::register_with_interest(heard, Interest::READABLE) }?;
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Vec::new()),
            bell,
        });
        tokio::spawn(answer(shared.clone(), heard));
        Ok(Doorbell { shared })
    }

    /// Have the doorbell's task call `driver.notify_one()`.
    pub(crate) fn ring(&self, driver: &Arc<Notify>) {
        let first = {
            let mut waiting = lock(&self.shared.waiting);
            waiting.push(driver.clone());
            waiting.len() == 1
        };
        if first {
            // A full socket buffer (WouldBlock) already holds a ring.
            let _ = self.shared.bell.send(&[1]);
        }
    }
}

/// The doorbell's task: each time the pair is readable, drain it, then wake
/// every driver rung for. Ends when the runtime's reactor goes.
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
        let drivers = std::mem::take(&mut *lock(&shared.waiting));
        for driver in drivers {
            driver.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// Rings from many threads at once, for many drivers: every ring is
    /// heard. A lost one leaves its driver waiting, and the test fails at
    /// its hang guard (not a timing assertion: a run takes milliseconds).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_ring_from_other_threads_wakes_its_driver() {
        const DRIVERS: usize = 16;
        const THREADS: usize = 4;
        const RINGS: u64 = 2_000;
        let doorbell = Doorbell::start().unwrap();
        let drivers: Vec<(Arc<Notify>, Arc<AtomicU64>)> = (0..DRIVERS)
            .map(|_| (Arc::new(Notify::new()), Arc::new(AtomicU64::new(0))))
            .collect();
        // Each driver counts what was queued for it, as a node's driver
        // drains its commands, until it has seen every ring meant for it.
        let expected = THREADS as u64 * RINGS;
        let waiting: Vec<_> = drivers
            .iter()
            .map(|(notify, queued)| {
                let (notify, queued) = (notify.clone(), queued.clone());
                tokio::spawn(async move {
                    let mut seen = 0;
                    loop {
                        seen += queued.swap(0, Ordering::SeqCst);
                        if seen == expected {
                            return seen;
                        }
                        notify.notified().await;
                    }
                })
            })
            .collect();
        let ringers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (doorbell, drivers) = (doorbell.clone(), drivers.clone());
                std::thread::spawn(move || {
                    for i in 0..RINGS {
                        for (d, (notify, queued)) in drivers.iter().enumerate() {
                            // Spread the rings so drivers are woken in every order.
                            if (d as u64 + i + t as u64) % 3 == 0 {
                                continue;
                            }
                            queued.fetch_add(1, Ordering::SeqCst);
                            doorbell.ring(notify);
                        }
                    }
                    // The skipped rings, so each driver gets `expected`.
                    for i in 0..RINGS {
                        for (d, (notify, queued)) in drivers.iter().enumerate() {
                            if (d as u64 + i + t as u64) % 3 == 0 {
                                queued.fetch_add(1, Ordering::SeqCst);
                                doorbell.ring(notify);
                            }
                        }
                    }
                })
            })
            .collect();
        for ringer in ringers {
            ringer.join().unwrap();
        }
        for task in waiting {
            let seen = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a ring was lost: its driver never woke")
                .unwrap();
            assert_eq!(seen, expected);
        }
    }
}
