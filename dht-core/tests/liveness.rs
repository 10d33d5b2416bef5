//! Lookups that never wait on the dead, and clients that leave no ghosts.
//! Virtual time (the simulator) for latencies; real UDP for the wildcard
//! bootstrap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dht_core::sim::Simulation;
use dht_core::{Config, Error, Node, NodeId, Outcome, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(name: &str, mut t: Vec<Duration>) -> (Duration, Duration, Duration) {
    t.sort();
    let (p50, p99, max) = (percentile(&t, 0.5), percentile(&t, 0.99), t[t.len() - 1]);
    println!("{name}: n={} p50={p50:?} p99={p99:?} max={max:?}", t.len());
    (p50, p99, max)
}

/// 1,000 nodes, 30% of them stop answering without notice: gets and puts
/// go on at round-trip speed (virtual time), every value found.
#[test]
fn thirty_percent_dead_cost_gets_and_puts_almost_nothing() {
    let nodes = 1000;
    let mut sim = Simulation::new(11, (Duration::from_millis(5), Duration::from_millis(40)));
    for _ in 0..nodes {
        sim.add_node(Config::default()).unwrap();
    }
    assert_eq!(sim.join_network(50, Duration::from_secs(60)), 0);
    let mut rng = StdRng::seed_from_u64(3);
    let keys: Vec<NodeId> = (0..100)
        .map(|i| NodeId::digest(format!("before-{i}").as_bytes()))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let putter = rng.random_range(0..nodes);
        let op = sim
            .command(putter, |p, now| {
                p.put(now, *key, Value::from(i as i64), PutOptions::default())
            })
            .unwrap();
        assert!(matches!(
            sim.run_until_done(putter, op, Duration::from_secs(30)),
            Some(Outcome::Put(Ok(_)))
        ));
    }
    // 30% stop answering, none of them a publisher of the values above
    // (those keep re-putting; here we test lookups, not lifetimes).
    let mut dead = 0;
    while dead < nodes * 3 / 10 {
        let victim = rng.random_range(0..nodes);
        if sim.is_alive(victim) {
            sim.kill(victim);
            dead += 1;
        }
    }
    let live = |rng: &mut StdRng, sim: &Simulation| loop {
        let n = rng.random_range(0..nodes);
        if sim.is_alive(n) {
            return n;
        }
    };
    let (mut get_times, mut found) = (Vec::new(), 0);
    for (i, key) in keys.iter().enumerate() {
        let getter = live(&mut rng, &sim);
        let op = sim.command(getter, |p, now| p.get(now, *key));
        let limit = Duration::from_secs(30);
        let (took, outcome) = sim
            .run_until_done_timed(getter, op, limit)
            .map_or((limit, None), |(took, o)| (took, Some(o)));
        match outcome {
            Some(Outcome::Get(Ok(Some(v)))) if v == Value::from(i as i64) => found += 1,
            other => println!("get {i} from {getter}: {other:?}"),
        }
        get_times.push(took);
    }
    let mut put_times = Vec::new();
    for i in 0..100 {
        let putter = live(&mut rng, &sim);
        let key = NodeId::digest(format!("after-{i}").as_bytes());
        let op = sim
            .command(putter, |p, now| {
                p.put(now, key, Value::from(i as i64), PutOptions::default())
            })
            .unwrap();
        match sim.run_until_done_timed(putter, op, Duration::from_secs(30)) {
            Some((took, Outcome::Put(Ok(r)))) => {
                assert!(r.stored_remote > 0);
                put_times.push(took);
            }
            other => panic!("put {i}: {other:?}"),
        }
    }
    println!("1,000 nodes, 300 dead: {found}/100 gets found");
    let (_, get_p99, _) = summary("get (virtual time)", get_times);
    let (_, put_p99, _) = summary("put (virtual time)", put_times);
    assert_eq!(found, 100);
    assert!(get_p99 < Duration::from_secs(1), "get p99 {get_p99:?}");
    assert!(put_p99 < Duration::from_secs(2), "put p99 {put_p99:?}");
}

/// A client-only node's requests are answered, but it is never added to
/// the routing tables of the kadmium nodes it talked to.
#[test]
fn client_only_nodes_leave_no_contact_behind() {
    let mut sim = Simulation::new(2, (Duration::from_millis(5), Duration::from_millis(20)));
    for _ in 0..20 {
        sim.add_node(Config::default().with_k(8)).unwrap();
    }
    assert_eq!(sim.join_network(5, Duration::from_secs(30)), 0);
    let client = sim
        .add_node(Config::default().with_k(8).with_client_only(true))
        .unwrap();
    let seed = sim.addr(0);
    let op = sim.command(client, |p, now| p.bootstrap(now, &[seed]));
    assert!(matches!(
        sim.run_until_done(client, op, Duration::from_secs(30)),
        Some(Outcome::Bootstrap(c)) if !c.is_empty()
    ));
    let key = NodeId::digest(b"client-key");
    let op = sim
        .command(client, |p, now| {
            p.put(now, key, Value::from("x"), PutOptions::default())
        })
        .unwrap();
    assert!(matches!(
        sim.run_until_done(client, op, Duration::from_secs(30)),
        Some(Outcome::Put(Ok(r))) if r.stored_remote == 8
    ));
    let client_id = sim.protocol(client).id();
    let knowing = (0..20)
        .filter(|n| sim.protocol(*n).routing().contains(&client_id))
        .count();
    println!("client-only node: known to {knowing} of 20 nodes after bootstrap and put");
    assert_eq!(knowing, 0);
}

/// Every user operation has an overall deadline, surfaced as a timeout.
#[test]
fn operations_end_at_their_deadline() {
    // Peers answer after 20 s; the RPC timeout is longer, the deadline 10 s.
    let mut sim = Simulation::new(4, (Duration::from_secs(10), Duration::from_secs(10)));
    let config = Config::default().with_rpc_timeout(Duration::from_secs(30));
    let a = sim.add_node(config.clone()).unwrap();
    let b = sim.add_node(config).unwrap();
    let b_addr = sim.addr(b);
    let op = sim.command(a, |p, now| p.ping(now, b_addr));
    let out = sim.run_until_done_timed(a, op, Duration::from_secs(60));
    assert!(
        matches!(out, Some((_, Outcome::Ping(Err(Error::Timeout))))),
        "{out:?}"
    );
    assert_eq!(out.map(|(took, _)| took), Some(Duration::from_secs(10)));
}

/// `bootstrap([("0.0.0.0", port)])` reaches a node on this host, as with the
/// Python package.
#[tokio::test]
async fn bootstrap_through_the_wildcard_address() {
    let any = |port| std::net::SocketAddr::from(([0, 0, 0, 0], port));
    let a = Node::bind(Config::default().with_bind(any(0)))
        .await
        .unwrap();
    let b = Node::bind(Config::default().with_bind(any(0)))
        .await
        .unwrap();
    let found = b.bootstrap(&[any(a.local_addr().port())]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, a.id());
    a.shutdown_and_wait().await;
    b.shutdown_and_wait().await;
}

/// Gets cancelled while their queries to dead peers are out (a caller's
/// timeout, asyncio cancelling a burst): the queries' RPC slots come back
/// when the node stops waiting for them (three adaptive timeouts), not at
/// the 2 s RPC timeout, so the next get need not wait for the dead. The
/// Python tester saw `pending_rpcs` stay at the 4,096 cap for a second after
/// cancelling 3,000 gets.
#[test]
fn slots_of_queries_to_the_dead_come_back_before_their_timeout() {
    let mut sim = Simulation::new(5, (Duration::from_millis(1), Duration::from_millis(5)));
    let config = Config::default().with_rpc_timeout(Duration::from_secs(2));
    let live = sim.add_node(config.clone()).unwrap();
    let dead: Vec<usize> = (0..8)
        .map(|_| sim.add_node(config.clone()).unwrap())
        .collect();
    let mut scarce = config;
    scarce.max_pending_rpcs = 8;
    let getter = sim.add_node(scarce).unwrap();
    assert_eq!(sim.join_network(10, Duration::from_secs(30)), 0);
    sim.run_for(Duration::from_secs(5));
    let key = NodeId::digest(b"held by the live peer");
    // Held by the live peer alone.
    sim.command(live, |p, now| {
        p.store_local(now, key, Value::from(vec![3u8; 20]), PutOptions::default())
    })
    .unwrap();
    for &node in &dead {
        sim.kill(node);
    }
    // Gets of keys nobody holds ask everyone: their queries to the dead
    // take every slot.
    let burst: Vec<_> = (0..16)
        .map(|i| {
            let missing = NodeId::digest(format!("missing-{i}").as_bytes());
            sim.command(getter, |p, now| p.get(now, missing))
        })
        .collect();
    sim.run_for(Duration::from_millis(50));
    let held = sim.protocol(getter).stats().pending_rpcs;
    for op in burst {
        sim.command(getter, |p, _| p.cancel(op));
    }
    let get = sim.command(getter, |p, now| p.get(now, key));
    let (took, outcome) = sim
        .run_until_done_timed(getter, get, Duration::from_secs(10))
        .expect("the get ends");
    println!(
        "8 RPC slots, {held} held by queries to 8 dead peers when 16 gets were cancelled: \
         the next get took {took:?}"
    );
    assert_eq!(held, 8);
    assert!(matches!(outcome, Outcome::Get(Ok(Some(_)))), "{outcome:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}
