#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `Node` API for signed and immutable records on real UDP sockets
//! (loopback): put, update, compare-and-swap conflict as a typed error,
//! delete, immutable put/get, and argument errors before anything is sent.

use std::net::SocketAddr;
use std::time::Duration;

use dht_core::signed::MAX_SALT_LEN;
use dht_core::{Config, Error, Keypair, Node, NodeId, SignedPutOptions};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn network(n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let config = Config::default()
            .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_k(8)
            .with_rpc_timeout(Duration::from_millis(500))
            .with_rng_seed(500 + i as u64);
        let node = Node::bind(config).await.unwrap();
        if let Some(first) = nodes.first() {
            assert!(!node
                .bootstrap(&[first.local_addr()])
                .await
                .unwrap()
                .is_empty());
        }
        nodes.push(node);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_signed_and_immutable_records() {
    let test = async {
        let nodes = network(12).await;
        let me = Keypair::from_secret([5; 32]);
        let salt = b"status";
        let opts = SignedPutOptions::default();
        assert_eq!(
            nodes[1]
                .put_signed(&me, salt, b"online", opts.clone())
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            nodes[2]
                .put_signed(&me, salt, b"away", opts.clone())
                .await
                .unwrap(),
            2
        );
        let got = nodes[7]
            .get_signed(&me.public_key(), salt)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.value.as_slice(), got.seq), (&b"away"[..], 2));
        let cas = SignedPutOptions {
            cas: Some(1),
            ..Default::default()
        };
        let conflict = nodes[3].put_signed(&me, salt, b"lost", cas).await;
        println!("Node::put_signed with a stale cas: {conflict:?}");
        assert!(matches!(
            conflict,
            Err(Error::CasMismatch {
                expected: 1,
                found: Some(2)
            })
        ));
        assert_eq!(nodes[4].delete_signed(&me, salt).await.unwrap(), 3);
        for node in &nodes {
            assert_eq!(node.get_signed(&me.public_key(), salt).await.unwrap(), None);
        }
        // Arguments are checked before anything is sent.
        // A salt far over the limit too (the value limit, which depends on
        // the salt's length, was checked first: "value too large, maximum 0").
        // An invalid argument, for a get as for a put (a get said "invalid
        // record").
        for long_salt in [vec![0; MAX_SALT_LEN + 1], vec![0; 65_000]] {
            assert!(matches!(
                nodes[0]
                    .put_signed(&me, &long_salt, b"x", SignedPutOptions::default())
                    .await,
                Err(Error::InvalidArgument(m)) if m.contains("salt too long")
            ));
            assert!(matches!(
                nodes[0].get_signed(&me.public_key(), &long_salt).await,
                Err(Error::InvalidArgument(_))
            ));
        }
        let huge = vec![0; 9000];
        assert!(matches!(
            nodes[0]
                .put_signed(&me, salt, &huge, SignedPutOptions::default())
                .await,
            Err(Error::ValueTooLarge { .. })
        ));

        let key = nodes[5].put_immutable(b"the same forever").await.unwrap();
        assert_eq!(
            key,
            NodeId::digest(b"the same forever"),
            "key = SHA-1(value)"
        );
        for node in &nodes {
            assert_eq!(
                node.get_immutable(&key).await.unwrap().as_deref(),
                Some(&b"the same forever"[..])
            );
        }
        let missing = NodeId::digest(b"nothing here");
        assert_eq!(nodes[6].get_immutable(&missing).await.unwrap(), None);
        for node in nodes {
            node.shutdown_and_wait().await;
        }
    };
    tokio::time::timeout(TEST_TIMEOUT, test).await.unwrap();
}
