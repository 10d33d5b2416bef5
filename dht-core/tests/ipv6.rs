//! The driver works on IPv6 sockets, and a dual-stack node reaches IPv4 peers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dht_core::{Config, Node, NodeId, PutOptions, Value};

fn config(bind: &str) -> Config {
    Config::default()
        .with_bind(bind.parse().unwrap())
        .with_rpc_timeout(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_network() {
    let mut nodes = Vec::new();
    for _ in 0..6 {
        nodes.push(Node::bind(config("[::1]:0")).await.unwrap());
    }
    assert!(nodes[0].local_addr().is_ipv6());
    for n in &nodes[1..] {
        let found = n.bootstrap(&[nodes[0].local_addr()]).await.unwrap();
        assert!(!found.is_empty());
    }
    let key = NodeId::digest(b"v6");
    let report = nodes[2]
        .put(key, Value::from("over v6"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(report.stored_remote, 5);
    for n in &nodes {
        assert_eq!(n.get(key).await.unwrap(), Some(Value::from("over v6")));
    }
    for n in &nodes {
        n.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_node_talks_to_ipv4_peers() {
    let v4 = Node::bind(config("127.0.0.1:0")).await.unwrap();
    let dual = Node::bind(config("[::]:0")).await.unwrap();
    let found = dual.bootstrap(&[v4.local_addr()]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, v4.id());
    // The IPv4 peer is recorded with a plain IPv4 address, not a mapped one.
    assert!(dual.contacts().iter().all(|c| c.addr.is_ipv4()));
    assert_eq!(dual.ping(v4.local_addr()).await.unwrap(), v4.id());
    v4.shutdown();
    dual.shutdown();
}

#[tokio::test]
async fn shut_down_node_refuses_work() {
    let node = Node::bind(config("127.0.0.1:0")).await.unwrap();
    node.shutdown();
    node.shutdown(); // idempotent
    assert!(node.is_shut_down());
    assert!(matches!(
        node.get(NodeId::digest(b"x")).await,
        Err(dht_core::Error::Shutdown)
    ));
}

#[tokio::test]
async fn imported_contacts_the_socket_cannot_reach_are_skipped() {
    // An IPv4 socket cannot send to an IPv6 peer, and nothing reaches port 0:
    // such contacts would hold routing slots until their pings time out.
    let node = Node::bind(config("127.0.0.1:0")).await.unwrap();
    let contact =
        |n: u8, addr: &str| dht_core::Contact::new(NodeId([n; 20]), addr.parse().unwrap());
    let added = node.import_contacts(&[
        contact(1, "[::1]:5"),
        contact(2, "127.0.0.1:0"),
        contact(3, "127.0.0.1:5"),
    ]);
    assert_eq!(added, 1);
    let kept: Vec<_> = node.contacts().iter().map(|c| c.id).collect();
    assert_eq!(kept, vec![NodeId([3; 20])]);
    node.shutdown();
}
