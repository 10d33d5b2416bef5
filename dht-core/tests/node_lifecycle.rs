//! The driver's lifetime guarantees: every command started while a node shuts
//! down completes (with its result or `Error::Shutdown`), and the port is free
//! once `shutdown_and_wait` returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dht_core::{Config, Error, Node, NodeId};

fn loopback() -> Config {
    Config::default().with_bind("127.0.0.1:0".parse().unwrap())
}

/// Commands racing `shutdown` from other threads never hang: a lost waiter
/// would leave the outer timeout to fire, failing the test. (Multi-threaded,
/// so the race between a command and the driver's exit is real.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_racing_shutdown_all_complete() {
    // Nobody listens here: a bootstrap through it waits for its RPC timeout.
    let dead: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut shutdown_errors = 0;
    for round in 0..200 {
        let node = Node::bind(loopback().with_rpc_timeout(Duration::from_millis(50)))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let node = node.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    node.bootstrap(&[dead]).await.map(|_| ())
                } else {
                    node.get(NodeId::digest(b"k")).await.map(|_| ())
                }
            }));
        }
        // Shut down at a different point of the spawned tasks' progress each round.
        let stopper = node.clone();
        tokio::spawn(async move {
            for _ in 0..(round % 5) {
                tokio::task::yield_now().await;
            }
            stopper.shutdown();
        });
        for task in tasks {
            let result = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("a command started during shutdown never completed")
                .unwrap();
            if matches!(result, Err(Error::Shutdown)) {
                shutdown_errors += 1;
            }
        }
        assert!(matches!(
            node.get(NodeId::digest(b"k")).await,
            Err(Error::Shutdown)
        ));
    }
    println!(
        "200 rounds x 20 racing commands: all completed, {shutdown_errors} with Error::Shutdown"
    );
}

#[tokio::test]
async fn port_is_free_when_shutdown_and_wait_returns() {
    for _ in 0..50 {
        let node = Node::bind(loopback()).await.unwrap();
        let addr = node.local_addr();
        node.shutdown_and_wait().await;
        assert!(node.is_closed());

        let again = Node::bind(Config::default().with_bind(addr)).await.unwrap();
        again.shutdown_and_wait().await;
    }
}
