//! A deterministic 10,000-node network with virtual time: every value put is
//! found, and the cost of a lookup (RPCs, hops) is printed.
//!
//! Run with `--nocapture` to see the figures; `cargo run --release --example
//! simulate` prints them as JSON for other sizes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dht_core::sim::Simulation;
use dht_core::{Config, NodeId, Outcome, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn ten_thousand_nodes_find_every_value() {
    let nodes = 10_000;
    let started = Instant::now();
    let mut sim = Simulation::new(42, (Duration::from_millis(5), Duration::from_millis(50)));
    let config = Config::default().with_rpc_timeout(Duration::from_secs(1));
    for _ in 0..nodes {
        sim.add_node(config.clone()).unwrap();
    }
    let failed_joins = sim.join_network(100, Duration::from_secs(120));
    assert_eq!(failed_joins, 0, "every node found contacts when joining");
    let joined_in = started.elapsed();

    let mut rng = StdRng::seed_from_u64(7);
    let keys: Vec<(NodeId, Value)> = (0..200)
        .map(|i| {
            (
                NodeId::digest(format!("sim-key-{i}").as_bytes()),
                Value::from(i as i64),
            )
        })
        .collect();
    for (key, value) in &keys {
        let putter = rng.random_range(0..nodes);
        let op = sim
            .try_command(putter, |p, now| {
                p.put(now, *key, value.clone(), PutOptions::default())
            })
            .unwrap()
            .unwrap();
        match sim.run_until_done(putter, op, Duration::from_secs(60)) {
            Some(Outcome::Put(Ok(report))) => assert_eq!(report.stored_remote, 20),
            other => panic!("put from {putter}: {other:?}"),
        }
    }

    let before = sim.lookup_totals();
    let (mut tried, mut found) = (0, 0);
    for (key, value) in &keys {
        for _ in 0..3 {
            let getter = rng.random_range(0..nodes);
            // A getter holding the value answers locally, without a lookup.
            if sim
                .try_protocol(getter)
                .unwrap()
                .local_value(key, sim.now())
                .is_some()
            {
                continue;
            }
            tried += 1;
            let op = sim.try_command(getter, |p, now| p.get(now, *key)).unwrap();
            match sim.run_until_done(getter, op, Duration::from_secs(60)) {
                Some(Outcome::Get(Ok(Some(v)))) if v == *value => found += 1,
                other => eprintln!("get from {getter} failed: {other:?}"),
            }
        }
    }
    let (rpcs_per_lookup, hops_per_lookup) = sim.lookup_totals().per_lookup_since(&before);
    println!(
        "simulation: nodes={nodes} gets={tried} found={found} success={:.1}% \
         rpcs_per_lookup={:.2} hops_per_lookup={:.2} datagrams={} join_wall={:.1}s total_wall={:.1}s",
        100.0 * found as f64 / tried as f64,
        rpcs_per_lookup,
        hops_per_lookup,
        sim.delivered(),
        joined_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert!(tried > 500);
    assert_eq!(found, tried, "every value found without churn");
}
