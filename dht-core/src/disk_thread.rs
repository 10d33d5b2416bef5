//! The thread a node's disk work runs on (`durable.rs`: opening the data
//! directory, each commit). Its own thread, not tokio's blocking pool: the
//! program may fill that pool with slow work of its own (dht-ffi runs C
//! callbacks there, up to 64 at once), and a commit waiting for a free slot
//! would hold up every acknowledgement of the node.

use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// One node's disk thread. Dropping it lets the thread finish the work
/// queued and waits for that: the data directory is released by then.
pub(crate) struct DiskThread {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The disk work panicked: its result is lost (the thread goes on with the
/// next).
#[derive(Debug)]
pub(crate) struct WorkLost;

impl std::fmt::Display for WorkLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the disk work panicked")
    }
}

/// The result of work handed to a [`DiskThread`]. Cancel safe: polled again
/// after being dropped from a `select!`, it still yields the result.
pub(crate) enum DiskWork<T> {
    Direct(oneshot::Receiver<T>),
    /// Waited for on tokio's blocking pool: under a paused test clock tokio
    /// holds the clock while blocking work runs, and not while a thread it
    /// does not know of does; so a paused clock does not jump ahead (firing
    /// timeouts) while the disk works.
    Held(JoinHandle<Result<T, oneshot::error::RecvError>>),
}

impl<T> Future for DiskWork<T> {
    type Output = Result<T, WorkLost>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            DiskWork::Direct(rx) => Pin::new(rx).poll(cx).map(|r| r.map_err(|_| WorkLost)),
            DiskWork::Held(task) => Pin::new(task)
                .poll(cx)
                .map(|r| r.ok().and_then(Result::ok).ok_or(WorkLost)),
        }
    }
}

impl DiskThread {
    /// Start the thread, in the context of the current runtime if there is
    /// one: code it runs (a log callback, say) then knows it is a library
    /// thread, where C callers' blocking calls are refused.
    pub(crate) fn start() -> io::Result<DiskThread> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let runtime = Handle::try_current().ok();
        let thread = thread::Builder::new()
            .name("kadmium-disk".into())
            .spawn(move || {
                let _context = runtime.as_ref().map(Handle::enter);
                while let Ok(job) = queue.recv() {
                    // A panicking job drops its result's sender: its waiter
                    // sees the error, and later work still runs.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(DiskThread {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Run `work` on the thread, after the work handed to it before.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> DiskWork<T> {
        let (result, waiter) = oneshot::channel();
        if let Some(jobs) = &self.jobs {
            // The thread cannot be gone (it catches panics), but if it were,
            // the job would be dropped with `result`, and the waiter told so.
            let _ = jobs.send(Box::new(move || {
                let _ = result.send(work());
            }));
        }
        let pausable =
            Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if pausable {
            DiskWork::Held(tokio::task::spawn_blocking(move || waiter.blocking_recv()))
        } else {
            DiskWork::Direct(waiter)
        }
    }
}

impl Drop for DiskThread {
    fn drop(&mut self) {
        drop(self.jobs.take()); // the thread ends once its queue is done
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

    /// Under a paused clock, slow disk work does not let the clock jump to
    /// a pending timer (which would fire a timeout meant for real time).
    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_waits_for_disk_work() {
        let disk = DiskThread::start().unwrap();
        let slow = disk.run(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), slow).await;
        assert!(
            waited.is_ok(),
            "the paused clock ran 60 s ahead while the disk worked"
        );
    }

    /// Dropping the thread waits for the work queued: whatever it held (a
    /// data directory's lock) is released when the drop returns.
    #[test]
    fn dropping_waits_for_queued_work() {
        let disk = DiskThread::start().unwrap();
        let held = std::sync::Arc::new(());
        let in_work = held.clone();
        drop(disk.run(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(in_work);
        }));
        drop(disk);
        assert_eq!(std::sync::Arc::strong_count(&held), 1);
    }
}
