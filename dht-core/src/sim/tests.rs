#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use crate::id::NodeId;
use crate::protocol::PutOptions;
use crate::value::Value;

fn small_network(n: usize, seed: u64) -> Simulation {
    let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(40)));
    let config = Config::default()
        .with_k(8)
        .with_rpc_timeout(Duration::from_millis(500));
    for i in 0..n {
        sim.add_node(config.clone()).unwrap();
        if i > 0 {
            let seed_addr = sim.addr(0);
            let op = sim
                .try_command(i, |p, now| p.bootstrap(now, &[seed_addr]))
                .unwrap();
            let out = sim.run_until_done(i, op, Duration::from_secs(60)).unwrap();
            assert!(matches!(out, Outcome::Bootstrap(c) if !c.is_empty()));
        }
    }
    sim
}

fn put(sim: &mut Simulation, node: usize, key: NodeId, value: Value, ttl: Option<Duration>) {
    let opts = PutOptions {
        ttl,
        replication: None,
        ..PutOptions::default()
    };
    let op = sim
        .try_command(node, |p, now| p.put(now, key, value, opts))
        .unwrap()
        .unwrap();
    assert!(matches!(
        sim.run_until_done(node, op, Duration::from_secs(30)),
        Some(Outcome::Put(Ok(_)))
    ));
}

#[test]
fn put_and_get_across_a_small_network() {
    let mut sim = small_network(60, 1);
    let key = NodeId::digest(b"k");
    let op = sim
        .try_command(5, |p, now| {
            p.put(now, key, Value::from("v"), PutOptions::default())
        })
        .unwrap()
        .unwrap();
    match sim.run_until_done(5, op, Duration::from_secs(30)).unwrap() {
        Outcome::Put(Ok(report)) => assert_eq!(report.stored_remote, 8),
        other => panic!("{other:?}"),
    }
    for reader in [0, 17, 42, 59] {
        let got = sim.get_from(reader, key, Duration::from_secs(30));
        assert_eq!(got.value, Some(Value::from("v")), "reader {reader}");
    }
    let missing = sim.get_from(3, NodeId::digest(b"missing"), Duration::from_secs(30));
    assert!(!missing.found());
    // A lookup that finds nothing asks several nodes: it takes some time.
    assert!(missing.latency >= Duration::from_millis(10), "{missing:?}");
}

#[test]
fn same_seed_same_run() {
    let a = small_network(30, 7);
    let b = small_network(30, 7);
    assert_eq!(a.net_stats(), b.net_stats());
    assert_eq!(
        a.try_protocol(29).unwrap().id(),
        b.try_protocol(29).unwrap().id()
    );
    assert_eq!(
        a.try_protocol(29).unwrap().stats(),
        b.try_protocol(29).unwrap().stats()
    );
}

#[test]
fn values_expire_and_replicas_take_over_dead_nodes() {
    let mut sim = small_network(40, 3);
    let key = NodeId::digest(b"short");
    put(
        &mut sim,
        1,
        key,
        Value::from(1i64),
        Some(Duration::from_secs(90)),
    );
    // Stop the first holders; the rest still serve it.
    let holders: Vec<usize> = sim.holders(&key).into_iter().filter(|i| *i != 1).collect();
    assert!(holders.len() >= 8);
    for h in holders.iter().take(4) {
        sim.leave(*h);
    }
    let reader = (0..40)
        .find(|i| sim.is_alive(*i) && !holders.contains(i) && *i != 1)
        .unwrap();
    assert!(sim.get_from(reader, key, Duration::from_secs(30)).found());
    // The publisher keeps it alive (it re-puts before any copy lapses)...
    sim.run_for(Duration::from_secs(200));
    assert!(sim.get_from(reader, key, Duration::from_secs(30)).found());
    // ...and once it stops, every copy is gone within the TTL.
    sim.leave(1);
    sim.run_for(Duration::from_secs(90 + 60));
    assert_eq!(sim.live_copies(&key), 0);
    assert_eq!(sim.copies_except(&key, 1), 0);
}

#[test]
fn oversize_datagrams_are_dropped_and_counted() {
    let mut sim = small_network(3, 5);
    let before = sim.net_stats();
    sim.send_raw(sim.addr(0), 1, vec![0; MAX_DATAGRAM + 1]);
    sim.send_raw(sim.addr(0), 1, vec![0; 30]);
    sim.run_for(Duration::from_secs(1));
    let after = sim.net_stats();
    assert_eq!(after.dropped_oversize - before.dropped_oversize, 1);
    // The small garbage datagram arrives (and the node drops it itself),
    // beside whatever the nodes' own maintenance sent meanwhile.
    assert!(after.delivered - before.delivered >= 1);
    assert_eq!(sim.try_protocol(1).unwrap().stats().datagrams_dropped, 1);
}

#[test]
fn restart_keeps_id_and_address_but_not_values() {
    let mut sim = small_network(20, 11);
    let key = NodeId::digest(b"r");
    put(&mut sim, 2, key, Value::from(3i64), None);
    let holder = *sim.holders(&key).iter().find(|i| **i != 2).unwrap();
    let (id, addr) = (sim.id(holder), sim.addr(holder));
    sim.restart(holder, Duration::from_secs(30));
    assert!(!sim.is_alive(holder));
    assert!(sim.try_protocol(holder).is_none());
    sim.run_for(Duration::from_secs(29));
    assert!(!sim.is_alive(holder));
    sim.run_for(Duration::from_secs(5));
    let p = sim.try_protocol(holder).unwrap();
    assert_eq!((p.id(), sim.addr(holder)), (id, addr));
    assert!(p.stats().contacts > 0, "bootstrapped from a live node");
    assert_eq!(sim.lifecycle_stats().restarts, 1);
    assert_eq!(sim.lifecycle_stats().failed_bootstraps, 0);
}

#[test]
fn churn_replaces_the_rate_and_spares_protected_nodes() {
    let mut sim = small_network(40, 13);
    for p in 0..5 {
        sim.protect(p, true);
    }
    let config = Config::default()
        .with_k(8)
        .with_rpc_timeout(Duration::from_millis(500));
    sim.churn(0.5, config);
    sim.run_for(Duration::from_secs(2 * 3600));
    let life = sim.lifecycle_stats();
    // 20 per hour (half of 40 running nodes), two hours.
    assert_eq!((life.leaves, life.joins), (40, 40));
    assert_eq!(sim.live_nodes().len(), 40);
    assert!((0..5).all(|p| sim.is_alive(p)));
    assert_eq!(life.failed_bootstraps, 0);
    // Replacements are spread over the hour, not all at once.
    let mut sim2 = small_network(40, 13);
    sim2.churn(0.5, Config::default().with_k(8));
    sim2.run_for(Duration::from_secs(1800));
    let half = sim2.lifecycle_stats().leaves;
    assert!(
        (3..=17).contains(&half),
        "{half} of 20 in the first half hour"
    );
    // Stopping churn stops it.
    sim2.churn(0.0, Config::default());
    sim2.run_for(Duration::from_secs(3600));
    assert_eq!(sim2.lifecycle_stats().leaves, half);
}

/// The fingerprint of a run: datagram counts and every running node's
/// counters, contacts and copies of a key.
#[allow(clippy::type_complexity)]
fn fingerprint(
    sim: &Simulation,
    key: &NodeId,
) -> (NetStats, Vec<(usize, crate::Stats)>, Vec<usize>) {
    let mut nodes: Vec<(usize, crate::Stats)> =
        sim.running().map(|(i, p)| (i, p.stats())).collect();
    nodes.sort_by_key(|(i, _)| *i);
    (sim.net_stats(), nodes, sim.holders(key))
}

/// A network that joins, stores, loses datagrams, churns and restarts, its
/// nodes split into `shards` run on `threads` threads.
#[allow(clippy::type_complexity)]
fn busy_run(
    shards: usize,
    threads: usize,
) -> (
    NetStats,
    Vec<(usize, crate::Stats)>,
    Vec<usize>,
    Vec<GetResult>,
    u64,
) {
    let latency = (Duration::from_millis(5), Duration::from_millis(40));
    let mut sim = Simulation::with_shards(21, latency, shards);
    sim.set_threads(threads);
    let config = Config::default()
        .with_k(8)
        .with_rpc_timeout(Duration::from_millis(500));
    for _ in 0..400 {
        sim.add_node(config.clone()).unwrap();
    }
    assert_eq!(sim.join_network(100, Duration::from_secs(60)), 0);
    sim.set_loss(0.02);
    let key = NodeId::digest(b"same either way");
    put(&mut sim, 3, key, Value::from("v"), None);
    sim.churn(0.5, config);
    sim.restart(7, Duration::from_secs(90));
    sim.run_for(Duration::from_secs(1800));
    let gets = sim.gets(
        &[(11, key), (250, key), (399, NodeId::digest(b"absent"))],
        Duration::from_secs(30),
    );
    let (net, nodes, holders) = fingerprint(&sim, &key);
    (net, nodes, holders, gets, sim.windows_side_by_side)
}

#[test]
fn shards_and_threads_never_change_a_run() {
    let one = busy_run(1, 1);
    let two = busy_run(2, 2);
    // The run did something worth comparing: windows ran side by side,
    // datagrams were lost, nodes came and went, the value is held.
    assert_eq!(one.4, 0);
    assert!(two.4 > 100, "{} windows on two threads", two.4);
    assert!(one.0.delivered > 50_000, "{:?}", one.0);
    assert!(one.0.dropped_loss > 300, "{:?}", one.0);
    assert!(!one.2.is_empty());
    assert!(one.3[0].found() && !one.3[2].found());
    assert_eq!(one.0, two.0);
    assert_eq!(one.1, two.1);
    assert_eq!(one.2, two.2);
    assert_eq!(one.3, two.3);
    for other in [busy_run(2, 1), busy_run(3, 2)] {
        assert_eq!(one.0, other.0);
        assert_eq!(one.1, other.1);
        assert_eq!(one.2, other.2);
        assert_eq!(one.3, other.3);
    }
}
