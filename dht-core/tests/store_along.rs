//! A put's converged lookup sends its STORE as the query (`ops/store.rs`):
//! the value still reaches every one of the k closest nodes, a put costs
//! far fewer datagrams than a lookup followed by k STOREs (2 per node
//! asked, 4k in all), and the copies it leaves outside the k closest stay
//! few. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dht_core::sim::Simulation;
use dht_core::{Config, NodeId, Outcome, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const K: usize = 20;

/// Puts into an `n`-node network: (datagrams per put, copies per put
/// outside the k closest and the putter), after checking that every put
/// reached all k closest.
fn puts_in(nodes: usize, puts: usize, seed: u64) -> (f64, f64) {
    let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(50)));
    let config = Config::default().with_rpc_timeout(Duration::from_secs(1));
    for _ in 0..nodes {
        sim.add_node(config.clone()).unwrap();
    }
    assert_eq!(sim.join_network(100, Duration::from_secs(120)), 0);
    // Let the joins' own traffic settle before counting.
    sim.run_for(Duration::from_secs(30));
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut datagrams, mut outside) = (0u64, 0usize);
    for i in 0..puts {
        let key = NodeId::digest(format!("along-{seed}-{i}").as_bytes());
        let putter = rng.random_range(0..nodes);
        let before = sim.delivered();
        let op = sim
            .try_command(putter, |p, now| {
                p.put(now, key, Value::from(vec![7u8; 100]), PutOptions::default())
            })
            .unwrap()
            .unwrap();
        let report = match sim.run_until_done(putter, op, Duration::from_secs(60)) {
            Some(Outcome::Put(Ok(report))) => report,
            other => panic!("put {i} from {putter}: {other:?}"),
        };
        datagrams += sim.delivered() - before;
        assert_eq!(
            report.stored_remote, report.contacted,
            "put {i}: {report:?}"
        );

        let mut by_distance: Vec<usize> = (0..nodes).collect();
        by_distance.sort_by_key(|&n| sim.id(n).distance(&key));
        let holders = sim.holders(&key);
        let missing: Vec<usize> = by_distance[..K]
            .iter()
            .copied()
            .filter(|n| !holders.contains(n))
            .collect();
        assert!(
            missing.is_empty(),
            "put {i} from {putter}: {missing:?} are among the k closest but hold no copy"
        );
        // The putter keeps its own copy (it republishes it) wherever it is.
        outside += holders
            .iter()
            .filter(|&&n| n != putter && !by_distance[..K].contains(&n))
            .count();
    }
    let per_put = datagrams as f64 / puts as f64;
    let outside_per_put = outside as f64 / puts as f64;
    println!(
        "store along: {nodes} nodes, {puts} puts: {per_put:.1} datagrams a put \
         (a lookup then k STOREs: at least {}), {outside_per_put:.2} copies a put outside the k closest and the putter",
        4 * K
    );
    (per_put, outside_per_put)
}

#[test]
fn a_put_stores_on_the_k_closest_in_fewer_datagrams() {
    for (nodes, puts) in [(64, 100), (500, 100)] {
        let (per_put, outside) = puts_in(nodes, puts, nodes as u64);
        // A lookup that hears from the k closest and then STOREs to them
        // takes 2 datagrams per node asked and 2 per STORE: 4k at least.
        assert!(
            per_put < (3 * K) as f64,
            "{nodes} nodes: {per_put:.1} datagrams a put"
        );
        assert!(
            outside < 1.0,
            "{nodes} nodes: {outside:.2} extra copies a put"
        );
    }
}
