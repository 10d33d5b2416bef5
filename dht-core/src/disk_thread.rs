//! The thread a node's disk work runs on (`durable.rs`: opening the data
//! directory, each commit). Its own thread, not tokio's blocking pool: the
//! program may fill that pool with slow work of its own (dht-ffi runs C
//! callbacks there, up to 64 at once), and a commit waiting for a free slot
//! would hold up every acknowledgement of the node.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// One node's disk thread; it ends once this is dropped and its queue is done.
pub(crate) struct DiskThread {
    jobs: mpsc::Sender<Job>,
}

/// The result of work handed to a [`DiskThread`]: an error if the work
/// panicked (it is then lost; the thread goes on with the next).
pub(crate) type DiskWork<T> = oneshot::Receiver<T>;

impl DiskThread {
    pub(crate) fn start() -> io::Result<DiskThread> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("kadmium-disk".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panicking job drops its result's sender: its waiter
                    // sees the error, and later work still runs.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(DiskThread { jobs })
    }

    /// Run `work` on the thread, after the work handed to it before.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> DiskWork<T> {
        let (result, waiter) = oneshot::channel();
        // The thread cannot be gone (it catches panics), but if it were, the
        // job would be dropped with `result`, and the waiter told so.
        let _ = self.jobs.send(Box::new(move || {
            let _ = result.send(work());
        }));
        waiter
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn work_runs_in_order_and_a_panic_loses_only_its_own() {
        let disk = DiskThread::start().unwrap();
        let first = disk.run(|| 1);
        let failed = disk.run(|| -> i32 { panic!("disk work failed") });
        let third = disk.run(|| 3);
        assert_eq!(first.await.unwrap(), 1);
        assert!(failed.await.is_err());
        assert_eq!(third.await.unwrap(), 3);
    }

    /// Blocking work filling tokio's blocking pool does not hold up the disk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_full_blocking_pool_does_not_delay_disk_work() {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
        // More than the pool holds (512 by default): every slot is taken.
        let blockers: Vec<_> = (0..600)
            .map(|_| {
                let gate = gate.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = gate.lock().unwrap().recv();
                })
            })
            .collect();
        let disk = DiskThread::start().unwrap();
        let done = tokio::time::timeout(std::time::Duration::from_secs(30), disk.run(|| 7)).await;
        for _ in 0..blockers.len() {
            let _ = release.send(());
        }
        for b in blockers {
            b.await.unwrap();
        }
        assert_eq!(done.unwrap().unwrap(), 7);
    }
}
