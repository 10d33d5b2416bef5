//! A node holding 100,000 values re-sends every one of them within one
//! replicate interval: replication cost follows what is due, with no fixed
//! per-minute cap (issue: "values live exactly as long as promised").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dht_core::sim::Simulation;
use dht_core::wire::{self, Request};
use dht_core::{Config, NodeId, Value};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_node_holding_100k_values_replicates_all_of_them_within_one_interval() {
    let started = Instant::now();
    // Few enough nodes that the holder is among the 2k closest to every key
    // (nodes refuse STOREs for keys they are plainly not responsible for).
    let nodes = 12;
    let mut sim = Simulation::new(5, (Duration::from_millis(5), Duration::from_millis(40)));
    let config = Config::default().with_k(8);
    for _ in 0..nodes {
        sim.add_node(config.clone()).unwrap();
    }
    assert_eq!(sim.join_network(10, Duration::from_secs(60)), 0);
    sim.run_for(Duration::from_secs(60));

    // Node 0 receives 100,000 replicas, as STOREs from node 1.
    let holder = 0;
    let from = sim.addr(1);
    let sender = sim.protocol(1).id();
    let values = 100_000u32;
    sim.command(holder, |p, now| {
        for i in 0..values {
            let request = Request::Store {
                sender,
                key: NodeId::digest(&i.to_be_bytes()),
                value: Value::from(i64::from(i)),
            };
            let id = wire::kadmium_id(48 * 3600, [7; 12]);
            p.handle_datagram(now, from, &wire::encode_request(&id, &request));
        }
    });
    assert_eq!(
        sim.protocol(holder).stats().values_stored,
        u64::from(values)
    );
    let before = sim.protocol(holder).stats().resends_started;
    sim.run_for(HOUR + Duration::from_secs(120));
    let resent = sim.protocol(holder).stats().resends_started - before;
    println!(
        "100,000 held values: {resent} re-sent within one replicate interval (+2 min); {} datagrams, {:.1} s wall",
        sim.delivered(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        resent >= u64::from(values),
        "only {resent} of {values} re-sent"
    );
}
