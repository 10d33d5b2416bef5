//! A joining node fills each far bucket from targets spread over its range
//! (`routing/far.rs`), so the contacts it keeps there are spread too, not
//! bunched near one random target: a lookup for any key in the bucket then
//! starts near the key. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dht_core::sim::Simulation;
use dht_core::Config;

/// Of the 4 quarters of a node's far half (the ids whose first bit is not
/// its own), how many hold at least one of its contacts, averaged over the
/// nodes of a joined `nodes`-node network.
fn far_quarters_covered(nodes: usize, seed: u64) -> f64 {
    let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(50)));
    let config = Config::default().with_rpc_timeout(Duration::from_secs(1));
    for _ in 0..nodes {
        sim.add_node(config.clone()).unwrap();
    }
    assert_eq!(sim.join_network(100, Duration::from_secs(120)), 0);
    let mut covered = 0usize;
    for node in 0..nodes {
        let own = sim.id(node);
        let mut quarters = [false; 4];
        for c in sim.protocol(node).routing().contacts() {
            if c.id.bit(0) != own.bit(0) {
                quarters[usize::from(c.id.bit(1)) * 2 + usize::from(c.id.bit(2))] = true;
            }
        }
        covered += quarters.iter().filter(|&&q| q).count();
    }
    covered as f64 / nodes as f64
}

#[test]
fn a_joined_nodes_far_half_spans_all_its_quarters() {
    let covered = far_quarters_covered(1000, 5);
    println!("far buckets: 1000 nodes: {covered:.2} of 4 far quarters hold a contact, on average");
    // Filled from one random target, a late joiner's far half held the k
    // nodes nearest that target, often all in one quarter: 3.02 quarters
    // on average before.
    assert!(covered > 3.3, "{covered:.2} of 4 quarters");
}
