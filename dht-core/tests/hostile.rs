//! Garbage on the wire is dropped and counted; the node keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dht_core::{Config, Node, NodeId, PutOptions, Value};
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_dropped_and_counted() {
    let config = Config::default()
        .with_bind("127.0.0.1:0".parse().unwrap())
        .with_rpc_timeout(Duration::from_millis(300));
    let a = Node::bind(config.clone()).await.unwrap();
    let b = Node::bind(config).await.unwrap();
    b.bootstrap(&[a.local_addr()]).await.unwrap();

    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00; 5],  // too short
        vec![0x07; 40], // unknown kind
        [vec![0x00], vec![1; 20], vec![0xdd, 0xff, 0xff, 0xff, 0xff]].concat(), // huge array
        [
            vec![0x00],
            vec![1; 20],
            vec![0xc6, 0xff, 0xff, 0xff, 0xff, 1],
        ]
        .concat(), // huge bin
        [vec![0x01], vec![9; 20], vec![0xc3]].concat(), // unsolicited response
        [
            vec![0x00],
            vec![1; 20],
            vec![0x92, 0xa3, b'f', b'o', b'o', 0x90],
        ]
        .concat(), // unknown rpc
        vec![0x00; 65_000], // large, all zeros
    ];
    let mut state = 99u64;
    for len in [22, 30, 100, 1000] {
        let mut d = vec![0x00];
        d.extend((1..len).map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        }));
        garbage.push(d);
    }
    let before = a.stats().datagrams_dropped;
    for d in &garbage {
        attacker.send_to(d, a.local_addr()).await.unwrap();
    }
    // Datagrams are processed in order: a ping sent after them is answered
    // only once every piece of garbage went through the node.
    assert_eq!(b.ping(a.local_addr()).await.unwrap(), a.id());
    let dropped = a.stats().datagrams_dropped - before;
    // The empty datagram may never be delivered as a datagram by the kernel
    // path; everything else must have been seen and dropped.
    assert!(
        dropped >= garbage.len() as u64 - 1,
        "dropped {dropped} of {}",
        garbage.len()
    );

    let key = NodeId::digest(b"still works");
    b.put(key, Value::from(7i64), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(a.get(key).await.unwrap(), Some(Value::from(7i64)));
    a.shutdown();
    b.shutdown();
}
