//! A joining node fills each far bucket from targets spread over its range
//! (`routing/far.rs`), so the contacts it keeps there are spread too, not
//! bunched near one random target: a lookup for any key in the bucket then
//! starts near the key. Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dht_core::sim::Simulation;
use dht_core::{Config, NodeId, ID_LEN};
use rand::{Rng, SeedableRng};

/// A joined `nodes`-node network.
fn joined_network(nodes: usize, seed: u64) -> Simulation {
    let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(50)));
    let config = Config::default().with_rpc_timeout(Duration::from_secs(1));
    for _ in 0..nodes {
        sim.add_node(config.clone()).unwrap();
    }
    assert_eq!(sim.join_network(100, Duration::from_secs(120)), 0);
    sim
}

/// Of the 4 quarters of a node's far half (the ids whose first bit is not
/// its own), how many hold at least one of its contacts, averaged over the
/// nodes.
fn far_quarters_covered(sim: &Simulation, nodes: usize) -> f64 {
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

/// For random keys and every 5th node: whether the node's table holds one
/// of the k = 20 nodes closest to the key (the ones a put stores on, so a
/// get could ask it alone). Returns the share for all keys and for the
/// keys in the node's far half.
fn holder_known(sim: &Simulation, nodes: usize) -> (f64, f64) {
    let ids: Vec<NodeId> = (0..nodes).map(|n| sim.id(n)).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (mut tried, mut known, mut far_tried, mut far_known) = (0, 0, 0, 0);
    for node in (0..nodes).step_by(5) {
        let own = sim.id(node);
        let contacts: Vec<NodeId> = sim
            .protocol(node)
            .routing()
            .contacts()
            .iter()
            .map(|c| c.id)
            .collect();
        for _ in 0..20 {
            let mut key = NodeId([0; ID_LEN]);
            rng.fill(&mut key.0[..]);
            let mut by_distance = ids.clone();
            by_distance.sort_by_key(|id| id.distance(&key));
            let holders = &by_distance[..20];
            let hit = contacts.iter().any(|c| holders.contains(c));
            tried += 1;
            known += usize::from(hit);
            if own.bit(0) != key.bit(0) {
                far_tried += 1;
                far_known += usize::from(hit);
            }
        }
    }
    (
        known as f64 / tried as f64,
        far_known as f64 / far_tried as f64,
    )
}

#[test]
fn a_joined_nodes_far_half_spans_all_its_quarters() {
    let nodes = 1000;
    let sim = joined_network(nodes, 5);
    let covered = far_quarters_covered(&sim, nodes);
    let (known, far_known) = holder_known(&sim, nodes);
    println!(
        "far buckets: {nodes} nodes: {covered:.2} of 4 far quarters hold a contact, on average; \
         the table holds one of a random key's 20 closest nodes for {:.1}% of keys \
         ({:.1}% of keys in the far half)",
        known * 100.0,
        far_known * 100.0
    );
    // Filled from one random target, a late joiner's far half held the k
    // nodes nearest that target, often all in one quarter: 3.02 quarters
    // on average, and a key's holder known for 46.2% of keys (27.8% in the
    // far half). From up to 4 parts, α queries at a time: 3.45 quarters,
    // 50.9% (32.7%). From up to 8 parts, one query at a time: 3.67,
    // 59.7% (43.5%). Spread uniformly, k = 20 contacts among the ~500 nodes
    // of the far half would know a holder of ~56% of its keys. With the
    // three furthest buckets holding 4k, 2k and 2k contacts as the node
    // hears from them (now): 3.72, 68.7% (53.4%).
    assert!(covered > 3.5, "{covered:.2} of 4 quarters");
    assert!(
        known > 0.64,
        "a holder known for {:.1}% of keys",
        known * 100.0
    );
}
