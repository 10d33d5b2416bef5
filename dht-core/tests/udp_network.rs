#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real UDP networks of kadmium nodes on 127.0.0.1: a 64-node network where
//! every value is found from every node tried, and the same network after a
//! quarter of its nodes stop without warning.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dht_core::{Config, Error, Node, NodeId, PutOptions, Value};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

const NODES: usize = 64;
const K: usize = 20;
const RPC_TIMEOUT: Duration = Duration::from_millis(500);
/// Upper bound for a whole test, so that a hang fails instead of blocking CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// The two tests run one after the other: each starts 64 nodes, and the churn
/// test's time bound should not depend on the other test's load.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("test did not finish within {TEST_TIMEOUT:?}");
    }
}

/// Bind `n` nodes on 127.0.0.1 (ids and RNGs derived from `tag`/`seed`, so a
/// run is repeatable) and bootstrap node i from node 0 and a random earlier
/// node, as dht_bench.py does.
async fn start_network(n: usize, tag: &str, seed: u64) -> Vec<Node> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let config = Config::default()
            .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_k(K)
            .with_rpc_timeout(RPC_TIMEOUT)
            .with_node_id(NodeId::digest(format!("{tag}-node-{i}").as_bytes()))
            .with_rng_seed(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        nodes.push(Node::bind(config).await.expect("bind on 127.0.0.1:0"));
    }
    for i in 1..n {
        let mut seeds = vec![nodes[0].local_addr()];
        let other = rng.random_range(0..i);
        if other != 0 {
            seeds.push(nodes[other].local_addr());
        }
        let found = nodes[i].bootstrap(&seeds).await.expect("bootstrap");
        assert!(
            !found.is_empty(),
            "node {i} found no contacts bootstrapping from {seeds:?}"
        );
    }
    nodes
}

fn random_value(rng: &mut StdRng, i: usize) -> Value {
    // Mostly bytes (what C and Rust users store), some typed values.
    match i % 5 {
        0 => Value::Str(format!("value #{i} ✓")),
        1 => Value::Int(rng.random::<i64>()),
        _ => {
            let len = rng.random_range(1..=300);
            Value::Bytes((0..len).map(|_| rng.random::<u8>()).collect())
        }
    }
}

/// Put `count` values, each from a random node; return (key, value, putter).
async fn put_values(
    nodes: &[Node],
    rng: &mut StdRng,
    tag: &str,
    count: usize,
) -> Vec<(NodeId, Value, usize)> {
    let mut put = Vec::with_capacity(count);
    for i in 0..count {
        let key = NodeId::digest(format!("{tag}-key-{i}").as_bytes());
        let value = random_value(rng, i);
        let putter = rng.random_range(0..nodes.len());
        let report = nodes[putter]
            .put(key, value.clone(), PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("put #{i} from node {putter}: {e}"));
        // Every node is alive and loopback loses nothing: the k closest all
        // acknowledge, and with the putter's own copy there are k replicas.
        assert_eq!(
            report.stored_remote, report.contacted,
            "put #{i} from node {putter}: some STOREs were not acknowledged: {report:?}"
        );
        assert!(
            report.stored_remote + usize::from(report.stored_locally) >= K,
            "put #{i} from node {putter} reached fewer than k = {K} nodes in a {}-node network: {report:?}",
            nodes.len()
        );
        // The lookup before the STORE must have found the exact k closest
        // nodes: every one of them (by XOR distance over the whole network)
        // now holds the value.
        let mut by_distance: Vec<usize> = (0..nodes.len()).collect();
        by_distance.sort_by_key(|&n| nodes[n].id().distance(&key));
        let missing: Vec<usize> = by_distance[..K]
            .iter()
            .copied()
            .filter(|&n| nodes[n].local_value(&key).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "put #{i} from node {putter} (key {key}): nodes {missing:?} are among the k = {K} closest \
             but hold no copy (report {report:?})"
        );
        put.push((key, value, putter));
    }
    put
}

/// `count` readers for a value: other nodes from `candidates`, preferring
/// those without a local copy so that most gets are real lookups.
fn pick_readers(
    nodes: &[Node],
    candidates: &[usize],
    key: &NodeId,
    putter: usize,
    count: usize,
    rng: &mut StdRng,
) -> Vec<usize> {
    let (mut holding, mut lacking): (Vec<usize>, Vec<usize>) = candidates
        .iter()
        .copied()
        .filter(|&n| n != putter)
        .partition(|&n| nodes[n].local_value(key).is_some());
    lacking.shuffle(rng);
    holding.shuffle(rng);
    lacking.extend(holding);
    lacking.truncate(count);
    assert_eq!(lacking.len(), count, "not enough readers");
    lacking
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_is_found_from_every_node_tried() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        const VALUES: usize = 50;
        const READERS: usize = 8;
        let nodes = start_network(NODES, "udp-net", 7).await;
        let mut rng = StdRng::seed_from_u64(70);
        let put = put_values(&nodes, &mut rng, "udp-net", VALUES).await;

        let mut failures = Vec::new();
        for (i, (key, value, putter)) in put.iter().enumerate() {
            let all: Vec<usize> = (0..NODES).collect();
            for reader in pick_readers(&nodes, &all, key, *putter, READERS, &mut rng) {
                match nodes[reader].get(*key).await {
                    Ok(Some(got)) if got == *value => {}
                    other => failures.push(format!(
                        "value #{i} (key {key}) put from node {putter}, read from node {reader}: {other:?}"
                    )),
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} gets failed:\n{}",
            failures.len(),
            VALUES * READERS,
            failures.join("\n")
        );

        let timeouts: u64 = nodes.iter().map(|n| n.stats().rpc_timeouts).sum();
        eprintln!("udp_network: {VALUES} values × {READERS} readers found; {timeouts} RPC timeouts in total");
        for node in &nodes {
            node.shutdown();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_survive_churn_and_lookups_stay_bounded() {
    let _serial = SERIAL.lock().await;
    bounded(async {
        const VALUES: usize = 40;
        const READERS: usize = 5;
        const STOPPED: usize = NODES / 4;
        // A lookup that is not round-synchronised loses at most one timeout
        // per slot to dead peers running concurrently; a few timeouts plus
        // scheduling slack bound any get. (A round-synchronised lookup pays a
        // full timeout for every round that meets a dead peer.)
        let bound = RPC_TIMEOUT * 4 + Duration::from_secs(1);

        let nodes = start_network(NODES, "churn", 11).await;
        let mut rng = StdRng::seed_from_u64(110);
        let put = put_values(&nodes, &mut rng, "churn", VALUES).await;

        // A quarter of the nodes stop without warning: no goodbye, their
        // contacts stay in everyone's routing tables.
        let mut order: Vec<usize> = (0..NODES).collect();
        order.shuffle(&mut rng);
        let (stopped, survivors) = order.split_at(STOPPED);
        for &i in stopped {
            nodes[i].shutdown();
        }
        for &i in stopped {
            assert!(nodes[i].is_shut_down());
            let after = nodes[i].get(put[0].0).await;
            assert!(matches!(after, Err(Error::Shutdown)), "get on a stopped node gave {after:?}");
        }

        // Reads from survivors, at most 8 at a time; each get is timed on its own.
        let nodes = Arc::new(nodes);
        let gate = Arc::new(Semaphore::new(8));
        let mut reads = tokio::task::JoinSet::new();
        let mut remote_reads = 0;
        for (i, (key, value, putter)) in put.iter().enumerate() {
            for reader in pick_readers(&nodes, survivors, key, *putter, READERS, &mut rng) {
                remote_reads += usize::from(nodes[reader].local_value(key).is_none());
                let (nodes, gate, key, value) = (Arc::clone(&nodes), Arc::clone(&gate), *key, value.clone());
                let putter = *putter;
                reads.spawn(async move {
                    let _permit = gate.acquire_owned().await.unwrap();
                    let start = Instant::now();
                    let got = nodes[reader].get(key).await;
                    let took = start.elapsed();
                    let outcome = match got {
                        Ok(Some(got)) if got == value => None,
                        other => Some(format!(
                            "value #{i} (key {key}) put from node {putter}, read from survivor {reader}: {other:?}"
                        )),
                    };
                    (i, reader, took, outcome)
                });
            }
        }
        let mut failures = Vec::new();
        let mut slow = Vec::new();
        let mut durations = Vec::new();
        while let Some(read) = reads.join_next().await {
            let (i, reader, took, outcome) = read.expect("read task panicked");
            failures.extend(outcome);
            if took > bound {
                slow.push(format!("value #{i} from survivor {reader} took {took:?}"));
            }
            durations.push(took);
        }
        durations.sort();
        let timeouts: u64 = nodes.iter().map(|n| n.stats().rpc_timeouts).sum();
        eprintln!(
            "churn: {} gets ({remote_reads} by readers without a local copy) after stopping {STOPPED}/{NODES} nodes: median {:?}, max {:?} (bound {bound:?}); {timeouts} RPC timeouts",
            durations.len(),
            durations[durations.len() / 2],
            durations[durations.len() - 1],
        );
        assert!(
            failures.is_empty(),
            "{} of {} gets failed after churn:\n{}",
            failures.len(),
            VALUES * READERS,
            failures.join("\n")
        );
        assert!(
            slow.is_empty(),
            "{} gets took longer than {bound:?} (4 × rpc_timeout + 1 s):\n{}",
            slow.len(),
            slow.join("\n")
        );
        for node in nodes.iter() {
            node.shutdown();
        }
    })
    .await;
}
