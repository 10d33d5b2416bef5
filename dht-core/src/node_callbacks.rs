//! Callback forms of [`Node::get`] and [`Node::put`], for bindings that
//! deliver outcomes to an event loop of their own (the Python module hands
//! them to asyncio).
//!
//! The async methods cost such a binding a tokio task per call: the task
//! awaits the outcome, then hands it on. Here the node's driver calls `done`
//! itself when the operation finishes, so a call is one command on the
//! driver's channel and one call back. `done` runs exactly once (unless the
//! call is cancelled first), never under the node's lock: on the driver's
//! thread, where it may call the node but should return quickly (the driver
//! handles no datagram while it runs), or, when the node has already
//! stopped, at once on the caller's thread, inside `get_then`/`put_then`,
//! with [`crate::Error::Shutdown`]: a caller must not hold a lock there that
//! `done` takes.

use crate::error::Result;
use crate::id::Key;
use crate::node::{unexpected, Node};
use crate::node_commands::OutcomeCallback;
use crate::protocol::{Outcome, PutOptions, PutReport};
use crate::value::Value;

/// A call started by [`Node::get_then`] or [`Node::put_then`], to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallTicket(u64);

impl Node {
    /// [`Node::get`], its outcome passed to `done`: the value, `None` when
    /// the network does not have it, or the error ([`crate::Error::Shutdown`] when
    /// the node stops first).
    pub fn get_then(
        &self,
        key: Key,
        done: impl FnOnce(Result<Option<Value>>) + Send + 'static,
    ) -> CallTicket {
        let done = OutcomeCallback::new(move |outcome| {
            done(outcome.and_then(|outcome| match outcome {
                Outcome::Get(result) => result,
                other => Err(unexpected(other)),
            }))
        });
        CallTicket(self.start_then(move |p, now| Ok(p.get(now, key)), done))
    }

    /// [`Node::put`], its report (or error) passed to `done`.
    pub fn put_then(
        &self,
        key: Key,
        value: Value,
        options: PutOptions,
        done: impl FnOnce(Result<PutReport>) + Send + 'static,
    ) -> CallTicket {
        let done = OutcomeCallback::new(move |outcome| {
            done(outcome.and_then(|outcome| match outcome {
                Outcome::Put(result) => result,
                other => Err(unexpected(other)),
            }))
        });
        CallTicket(self.start_then(move |p, now| p.put(now, key, value, options), done))
    }

    /// Stop the call `ticket` if it still runs; its `done` is then never
    /// called. A call that already finished is left as it was.
    pub fn cancel(&self, ticket: CallTicket) {
        self.cancel_ticket(ticket.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::error::Error;
    use crate::id::NodeId;
    use crate::value::MAX_VALUE_DEPTH;
    use std::sync::mpsc;
    use std::time::Duration;

    fn config() -> Config {
        Config::default().with_bind("127.0.0.1:0".parse().unwrap())
    }

    /// Answers from the driver arrive on a std channel; the bound only ends
    /// a test that would otherwise hang (a callback never called).
    fn answer<T>(rx: &mpsc::Receiver<T>) -> T {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("done was never called")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_value_put_with_put_then_comes_back_from_get_then() {
        let a = Node::bind(config()).await.unwrap();
        let b = Node::bind(config()).await.unwrap();
        b.bootstrap(&[a.local_addr()]).await.unwrap();
        let key = NodeId::digest(b"callback");
        let (tx, rx) = mpsc::channel();
        b.put_then(key, Value::from("v"), PutOptions::default(), move |r| {
            tx.send(r).unwrap()
        });
        let report = tokio::task::block_in_place(|| answer(&rx)).unwrap();
        assert_eq!(report.stored_remote, 1);
        let (tx, rx) = mpsc::channel();
        b.get_then(key, move |r| tx.send(r).unwrap());
        let found = tokio::task::block_in_place(|| answer(&rx)).unwrap();
        assert_eq!(found, Some(Value::from("v")));
        a.shutdown_and_wait().await;
        b.shutdown_and_wait().await;
    }

    /// Calls from a thread outside the runtime reach a node through its
    /// doorbell: a thousand gets one after another, and a burst of a
    /// thousand at once with every other one cancelled, are all answered
    /// (a lost wake-up would leave one waiting, and the test at its hang
    /// guard).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_from_outside_the_runtime_are_woken_through_the_doorbell() {
        let a = Node::bind(config()).await.unwrap();
        let b = Node::bind(config()).await.unwrap();
        b.ring_through(&crate::Doorbell::start().unwrap());
        b.bootstrap(&[a.local_addr()]).await.unwrap();
        let key = NodeId::digest(b"doorbell");
        a.store_local(key, Value::from("v"), PutOptions::default())
            .unwrap();
        let caller = b.clone();
        let outside = std::thread::spawn(move || {
            for _ in 0..1_000 {
                let (tx, rx) = mpsc::channel();
                caller.get_then(key, move |r| tx.send(r).unwrap());
                assert_eq!(answer(&rx).unwrap(), Some(Value::from("v")));
            }
            let (tx, rx) = mpsc::channel();
            for i in 0..1_000 {
                let tx = tx.clone();
                let ticket = caller.get_then(key, move |r| tx.send((i, r)).unwrap());
                if i % 2 == 1 {
                    caller.cancel(ticket);
                }
            }
            drop(tx);
            // Every call not cancelled is answered with the value (a
            // cancelled one only if it finished first). The channel closes
            // once every callback has run or been dropped.
            let mut found = std::collections::BTreeSet::new();
            while let Ok((i, r)) = rx.recv_timeout(Duration::from_secs(30)) {
                assert!(
                    matches!(r, Ok(Some(ref v)) if *v == Value::from("v")),
                    "{r:?}"
                );
                found.insert(i);
            }
            assert!((0..1_000).step_by(2).all(|i| found.contains(&i)));
        });
        tokio::task::block_in_place(|| outside.join()).unwrap();
        a.shutdown_and_wait().await;
        b.shutdown_and_wait().await;
    }

    /// A refused start (a value over the size limit) is answered outside the
    /// node's lock: the callback can call the node. Under the lock, `stats`
    /// would wait for the lock the driver holds, and the answer never comes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_call_is_answered_outside_the_lock() {
        let node = Node::bind(config()).await.unwrap();
        let (tx, rx) = mpsc::channel();
        let caller = node.clone();
        let too_big = Value::from(vec![0u8; 1 << 20]);
        node.put_then(
            NodeId::digest(b"k"),
            too_big,
            PutOptions::default(),
            move |r| {
                let _ = caller.stats();
                tx.send(r).unwrap();
            },
        );
        let refused = tokio::task::block_in_place(|| answer(&rx));
        assert!(
            matches!(refused, Err(Error::ValueTooLarge { .. })),
            "{refused:?}"
        );
        // Values peers' decoders refuse are refused here too.
        let map_key = Value::Map(vec![(Value::Map(vec![]), Value::Int(1))]);
        let mut too_deep = Value::Nil;
        for _ in 0..=MAX_VALUE_DEPTH {
            too_deep = Value::List(vec![too_deep]);
        }
        for value in [map_key, too_deep] {
            let (tx, rx) = mpsc::channel();
            let opts = PutOptions::default();
            node.put_then(NodeId::digest(b"k"), value, opts, move |r| {
                let _ = tx.send(r);
            });
            let refused = tokio::task::block_in_place(|| answer(&rx));
            assert!(
                matches!(refused, Err(Error::InvalidArgument(_))),
                "{refused:?}"
            );
        }
        node.shutdown_and_wait().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_on_a_stopped_node_is_answered_with_shutdown() {
        let node = Node::bind(config()).await.unwrap();
        node.shutdown_and_wait().await;
        let (tx, rx) = mpsc::channel();
        node.get_then(NodeId::digest(b"k"), move |r| tx.send(r).unwrap());
        let answer = tokio::task::block_in_place(|| answer(&rx));
        assert!(matches!(answer, Err(Error::Shutdown)), "{answer:?}");
    }

    /// A call running when the node stops is answered with Shutdown; a
    /// cancelled one is not answered at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_answers_running_calls_and_cancelling_silences_them() {
        let node = Node::bind(config()).await.unwrap();
        // A peer that never answers keeps the gets running.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        node.import_contacts(&[crate::contact::Contact::new(
            NodeId::digest(b"silent"),
            silent.local_addr().unwrap(),
        )]);
        let (tx, rx) = mpsc::channel();
        let (running, cancelled) = (tx.clone(), tx);
        node.get_then(NodeId::digest(b"a"), move |r| {
            running.send(("running", r)).unwrap()
        });
        let ticket = node.get_then(NodeId::digest(b"b"), move |r| {
            cancelled.send(("cancelled", r)).unwrap()
        });
        node.cancel(ticket);
        node.shutdown_and_wait().await;
        let (which, answer) = tokio::task::block_in_place(|| answer(&rx));
        assert_eq!(which, "running");
        assert!(matches!(answer, Err(Error::Shutdown)), "{answer:?}");
        // Both senders are gone now: the cancelled callback was dropped
        // without being called.
        let late = rx.recv_timeout(Duration::from_secs(30));
        assert!(late.is_err(), "{late:?}");
    }
}
