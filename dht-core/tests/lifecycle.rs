//! How long a value lives, tried in the simulator over virtual days: a value
//! stays retrievable while its publisher runs (whatever its TTL) and is gone
//! within its TTL plus one maintenance interval after the publisher stops; a
//! STORE never makes a held copy expire earlier and never replaces the
//! publisher's own copy; churn loses no value whose publisher runs.
//!
//! Each test prints its figures (`--nocapture`). Every one of them failed on
//! the protocol before the value-lifecycle fix (the failures measured then
//! are in the comments).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::sim::scenario::{Scenario, ScenarioReport};
use dht_core::sim::Simulation;
use dht_core::wire::{self, Request};
use dht_core::{Config, Key, Lifetime, NodeId, Outcome, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HOUR: Duration = Duration::from_secs(3600);
const NODES: usize = 60;

fn node_config() -> Config {
    Config::default().with_rpc_timeout(Duration::from_secs(1))
}

/// A joined network of `n` nodes with the default k (20) and intervals.
fn network(n: usize, seed: u64) -> Simulation {
    let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(50)));
    for _ in 0..n {
        sim.add_node(node_config()).unwrap();
    }
    assert_eq!(sim.join_network(20, Duration::from_secs(60)), 0);
    sim
}

fn put(sim: &mut Simulation, node: usize, key: Key, value: Value, ttl: Option<Duration>) {
    let mut options = PutOptions::default();
    options.ttl = ttl;
    let op = sim
        .try_command(node, |p, now| p.put(now, key, value, options))
        .unwrap()
        .unwrap();
    match sim.run_until_done(node, op, Duration::from_secs(60)) {
        Some(Outcome::Put(Ok(r))) => assert_eq!(r.stored_remote, node_config().k),
        other => panic!("put: {other:?}"),
    }
}

/// A random running node that neither published nor holds `key`, so a get
/// from it has to find the value on the network.
fn getter(sim: &Simulation, key: &Key, publisher: usize, rng: &mut StdRng) -> usize {
    let holders = sim.holders(key);
    let candidates: Vec<usize> = sim
        .live_nodes()
        .iter()
        .copied()
        .filter(|n| *n != publisher && !holders.contains(n))
        .collect();
    candidates[rng.random_range(0..candidates.len())]
}

/// The 72-hour rule for one TTL: found by a get every hour with at least k
/// copies besides the publisher's, then gone within TTL + one maintenance
/// interval after the publisher stops.
fn publisher_alive_then_gone(ttl: Option<Duration>, seed: u64) {
    let mut sim = network(NODES, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let k = node_config().k;
    let publisher = 7;
    let key = NodeId::digest(format!("lifecycle-{ttl:?}").as_bytes());
    let value = Value::from("kept while published");
    put(&mut sim, publisher, key, value.clone(), ttl);
    let mut failures = Vec::new();
    let mut fewest = usize::MAX;
    for hour in 1..=72 {
        sim.run_for(HOUR);
        let n = sim.copies_except(&key, publisher);
        fewest = fewest.min(n);
        let from = getter(&sim, &key, publisher, &mut rng);
        let got = sim.get_from(from, key, Duration::from_secs(60));
        if got.value.as_ref() != Some(&value) || n < k {
            failures.push(format!("h{hour}: copies {n}, found {}", got.found()));
        }
    }
    println!(
        "ttl {ttl:?}: fewest copies over 72 h {fewest} (k = {k}); failed hours: {}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "ttl {ttl:?}: {} of 72 hours failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    sim.leave(publisher);
    let ttl = ttl.unwrap_or(node_config().default_ttl);
    sim.run_for(ttl + node_config().maintenance_interval);
    let left = sim.live_copies(&key);
    println!("ttl {ttl:?}: copies left TTL + one maintenance interval after the publisher stopped: {left}");
    assert_eq!(left, 0, "copies outlive the publisher by more than the TTL");
}

// Measured before the fix: 0 copies and no get finds it from hour 24 on (49
// of 72 hours failed): republish falls due as the publisher's own copy expires.
#[test]
fn default_ttl_value_lives_while_published_and_dies_after() {
    publisher_alive_then_gone(None, 1);
}

// Measured before the fix: 72 of 72 hours failed, 0 copies from hour 1 on
// (a 1 h value is republished only every 24 h).
#[test]
fn one_hour_ttl_value_lives_while_published_and_dies_after() {
    publisher_alive_then_gone(Some(HOUR), 2);
}

// Measured before the fix: hour 25 failed with 0 copies: after the 24 h
// republish, replicas re-sending their 1 h remainder pull every copy back to
// the original expiry.
#[test]
fn long_ttl_value_lives_while_published_and_dies_after() {
    publisher_alive_then_gone(Some(25 * HOUR), 3);
}

/// A put with [`Lifetime::Fixed`] (what the VoidPhone API's PUT asks for):
/// found until its TTL is nearly over, gone from every node within its TTL
/// plus one maintenance interval although its putter runs on, and nothing
/// brings it back.
fn fixed_lifetime_ends_with_its_ttl(ttl: Duration, seed: u64) {
    let mut sim = network(NODES, seed);
    let mut rng = StdRng::seed_from_u64(seed);
    let putter = 7;
    let key = NodeId::digest(format!("fixed-{ttl:?}").as_bytes());
    let value = Value::from("kept for its ttl");
    let options = PutOptions::default()
        .with_ttl(ttl)
        .with_lifetime(Lifetime::Fixed);
    let op = sim
        .try_command(putter, |p, now| p.put(now, key, value.clone(), options))
        .unwrap()
        .unwrap();
    match sim.run_until_done(putter, op, Duration::from_secs(60)) {
        Some(Outcome::Put(Ok(r))) => assert_eq!(r.stored_remote, node_config().k),
        other => panic!("put: {other:?}"),
    }
    // Most of the TTL later (a get takes a moment of virtual time too).
    sim.run_for(ttl.mul_f64(0.8).saturating_sub(Duration::from_secs(1)));
    let from = getter(&sim, &key, putter, &mut rng);
    let got = sim.get_from(from, key, Duration::from_secs(60));
    let copies_late = sim.live_copies(&key);
    assert_eq!(got.value, Some(value), "ttl {ttl:?}: lost before its TTL");

    sim.run_for(ttl.mul_f64(0.2) + node_config().maintenance_interval);
    let after = sim.live_copies(&key);
    sim.run_for(3 * HOUR);
    let later = sim.live_copies(&key);
    let from = getter(&sim, &key, putter, &mut rng);
    let found_later = sim.get_from(from, key, Duration::from_secs(60)).found();
    println!(
        "fixed lifetime, ttl {ttl:?}, putter running: copies at 80% of the TTL {copies_late}, \
         TTL + one maintenance interval after the put {after}, 3 h later {later}"
    );
    assert_eq!(after, 0, "ttl {ttl:?}: copies outlive a fixed lifetime");
    assert_eq!(later, 0, "ttl {ttl:?}: a fixed-lifetime value came back");
    assert!(!found_later, "ttl {ttl:?}: a get still finds it");
}

// The VoidPhone tester's case: a PUT with a TTL of 2 s was re-put every 1.5 s
// by the API's node and never expired while the node ran.
#[test]
fn fixed_lifetime_value_with_a_short_ttl_expires_while_its_putter_runs() {
    fixed_lifetime_ends_with_its_ttl(Duration::from_secs(2), 4);
}

#[test]
fn fixed_lifetime_value_with_a_long_ttl_expires_while_its_putter_runs() {
    fixed_lifetime_ends_with_its_ttl(2 * HOUR, 5);
}

// A node that published a key (a renewing put, or a data directory from
// before fixed lifetimes) and then puts it with a fixed lifetime: the new
// value is what is found, and it ends with its TTL. (Over a publisher's copy
// the fixed put was taken as a peer's STORE, which never replaces that copy:
// the old value stayed, renewed for as long as the node ran.)
#[test]
fn fixed_lifetime_put_replaces_the_nodes_own_published_copy() {
    let mut sim = network(NODES, 6);
    let mut rng = StdRng::seed_from_u64(6);
    let putter = 7;
    let key = NodeId::digest(b"published, then fixed");
    put(&mut sim, putter, key, Value::from("old"), None);
    let options = PutOptions::default()
        .with_ttl(HOUR)
        .with_lifetime(Lifetime::Fixed);
    let op = sim
        .try_command(putter, |p, now| {
            p.put(now, key, Value::from("new"), options)
        })
        .unwrap()
        .unwrap();
    assert!(matches!(
        sim.run_until_done(putter, op, Duration::from_secs(60)),
        Some(Outcome::Put(Ok(_)))
    ));
    let own = sim
        .try_protocol(putter)
        .unwrap()
        .local_value(&key, sim.now());
    assert_eq!(own, Some(Value::from("new")), "the putter's own copy");
    let from = getter(&sim, &key, putter, &mut rng);
    let got = sim.get_from(from, key, Duration::from_secs(60));
    assert_eq!(got.value, Some(Value::from("new")));
    // The old copies elsewhere keep their own expiry (24 h, the default TTL):
    // a STORE never shortens a held copy. What matters is that nothing renews
    // the key any more.
    sim.run_for(Duration::from_secs(25 * 3600));
    let left = sim.live_copies(&key);
    println!("published, then put with a fixed 1 h lifetime: copies 25 h later {left}");
    assert_eq!(left, 0, "the publisher's renewal outlived the fixed put");
}

/// Put a value, then let `sender` STORE the same key with a short TTL to
/// every holder; no holder may lose its copy before the original expiry.
fn short_store_cannot_shorten(
    sender: impl Fn(&Simulation, &[usize]) -> (SocketAddr, NodeId),
    short: u32,
    seed: u64,
) {
    let mut sim = network(NODES, seed);
    let publisher = 3;
    let key = NodeId::digest(b"do not shorten me");
    let value = Value::from("original");
    put(&mut sim, publisher, key, value.clone(), Some(10 * HOUR));
    let holders = sim.holders(&key);
    let (from, sender_id) = sender(&sim, &holders);
    let mut rng = StdRng::seed_from_u64(seed);
    for &h in &holders {
        let id = wire::kadmium_id(short, rng.random());
        let store = Request::Store {
            sender: sender_id,
            key,
            value: value.clone(),
        };
        sim.send_raw(from, h, wire::encode_request(&id, &store));
    }
    // Past the short TTL and two maintenance ticks, well before 10 h.
    sim.run_for(Duration::from_secs(u64::from(short)) + Duration::from_secs(180));
    let kept = holders
        .iter()
        .filter(|h| {
            sim.try_protocol(**h)
                .is_some_and(|p| p.local_value(&key, sim.now()).is_some())
        })
        .count();
    println!(
        "STORE with ttl {short}s from {from}: {kept} of {} holders kept their copy",
        holders.len()
    );
    assert_eq!(
        kept,
        holders.len(),
        "a STORE with ttl {short}s cut held copies short"
    );
}

// Measured before the fix (this and the next two): of 21 holders only the
// publisher kept its copy; the 20 others expired with the short STORE.
#[test]
fn hostile_short_store_cannot_shorten_held_copies() {
    let attacker: SocketAddr = "192.0.2.66:6666".parse().unwrap();
    short_store_cannot_shorten(|_, _| (attacker, NodeId::digest(b"attacker")), 1, 11);
}

/// A stale replica: a holder re-sends its copy with an older, shorter remainder.
#[test]
fn stale_replica_cannot_shorten_held_copies() {
    short_store_cannot_shorten(
        |sim, holders| {
            let stale = holders[holders.len() - 1];
            (sim.addr(stale), sim.id(stale))
        },
        60,
        12,
    );
}

/// A cached copy: a node outside the k closest (where a get caches the
/// value) re-sends it with the short remainder a cache holds.
#[test]
fn cached_copy_cannot_shorten_held_copies() {
    short_store_cannot_shorten(
        |sim, holders| {
            let cache = sim
                .live_nodes()
                .iter()
                .copied()
                .find(|n| !holders.contains(n))
                .unwrap();
            (sim.addr(cache), sim.id(cache))
        },
        120,
        13,
    );
}

// Measured before the fix: the publisher's copy became the remote value
// (Str("replaced")).
#[test]
fn remote_store_does_not_change_the_publishers_copy() {
    let mut sim = network(NODES, 21);
    let publisher = 4;
    let key = NodeId::digest(b"mine");
    let value = Value::from("published");
    put(&mut sim, publisher, key, value.clone(), None);
    let other = *sim.holders(&key).iter().find(|n| **n != publisher).unwrap();
    let store = Request::Store {
        sender: sim.id(other),
        key,
        value: Value::from("replaced"),
    };
    let id = wire::kadmium_id(30, [7; 12]);
    sim.send_raw(
        sim.addr(other),
        publisher,
        wire::encode_request(&id, &store),
    );
    sim.run_for(Duration::from_secs(5));
    let now = sim.now();
    let held = sim.try_protocol(publisher).unwrap().local_value(&key, now);
    println!("publisher's copy after a remote STORE: {held:?}");
    assert_eq!(held, Some(value.clone()));
    // Nor does the short TTL it carried cut the publisher's copy short.
    sim.run_for(Duration::from_secs(120));
    let now = sim.now();
    assert_eq!(
        sim.try_protocol(publisher).unwrap().local_value(&key, now),
        Some(value)
    );
}

/// Scaled down from the 2,000 nodes / 1,000 values so it runs in
/// seconds of CPU; the full size is `simulate --nodes 2000 --values 1000
/// --hours 24 --churn-per-hour 0.5 --seed 1`. 24 virtual hours, so a value
/// of the default TTL has to outlive its first expiry.
/// Run `scenario`, printing each hour's figures and a summary, both headed
/// `label`.
fn run_reported(label: &str, scenario: &Scenario) -> (ScenarioReport, Simulation) {
    let (report, sim) = scenario
        .run(|h| {
            println!(
                "{label}, hour {:>2}: min_copies {:?} found {}/{} lost {}",
                h.hour, h.min_copies, h.gets_found, h.gets, h.lost
            )
        })
        .unwrap();
    println!(
        "{label}: values_lost {} min_copies {:?} gets {}/{} joins {} datagrams {}",
        report.values_lost,
        report.min_copies,
        report.gets_found,
        report.gets,
        sim.lifecycle_stats().joins,
        sim.net_stats().delivered,
    );
    (report, sim)
}

fn churn_scenario(seed: u64) -> Scenario {
    Scenario {
        nodes: 150,
        values: 50,
        hours: 24,
        churn_per_hour: 0.5,
        seed,
        gets_per_hour: Some(10),
        ..Scenario::default()
    }
}

#[test]
fn churn_loses_no_value_whose_publisher_runs() {
    let started = Instant::now();
    let (report, sim) = run_reported(
        "churn 0.5/h, 150 nodes, 50 values, 24 h",
        &churn_scenario(5),
    );
    println!("wall {:.1}s", started.elapsed().as_secs_f64());
    assert_eq!(report.failed_joins, 0);
    assert_eq!(report.puts_ok, 50);
    let joins = sim.lifecycle_stats().joins;
    assert!(
        (24 * 75..=24 * 75 + 24).contains(&joins),
        "half of 150 nodes replaced per hour: {joins} joins"
    );
    assert_eq!(
        report.values_lost,
        0,
        "lost per hour: {:?}",
        report.hours.iter().map(|h| h.lost).collect::<Vec<_>>()
    );
}

/// OpenDHT's churn rate, "85% of the nodes replaced every 10 minutes"
/// (R = 5.1 per hour), scaled down from 2,000 nodes for CI. Before close
/// holders were checked every maintenance interval, a dead holder was
/// noticed only after 3 missed replies, which nobody sent it: this run lost
/// values within the first hour (18 of 100 at 300 nodes in 2 h). Four
/// seeds: no value may be lost in any, and the gets missed are counted over
/// all four, since one seed's 77 gets allow a single miss and which get
/// misses moves with any change to the protocol's traffic.
#[test]
fn heavy_churn_loses_no_value_whose_publisher_runs() {
    let (mut gets, mut missed) = (0, 0);
    for seed in 1..=4 {
        let scenario = Scenario {
            nodes: 150,
            values: 50,
            hours: 2,
            churn_per_hour: 5.1,
            seed,
            gets_per_hour: Some(25),
            ..Scenario::default()
        };
        let label = format!("churn 5.1/h, 150 nodes, 50 values, 2 h, seed {seed}");
        let (report, sim) = run_reported(&label, &scenario);
        assert_eq!(report.puts_ok, 50);
        let joins = sim.lifecycle_stats().joins;
        assert!(
            joins >= 2 * 700,
            "5.1 × 150 nodes replaced per hour: {joins} joins"
        );
        assert_eq!(
            report.values_lost,
            0,
            "seed {seed}, lost per hour: {:?}",
            report.hours.iter().map(|h| h.lost).collect::<Vec<_>>()
        );
        gets += report.gets;
        missed += report.gets - report.gets_found;
    }
    // With 85% of the nodes replaced every 10 minutes, a get may now and then
    // miss on its first try (found on the final check's retry, so not lost):
    // over seeds 1–12, 3 misses in 901 gets before the round that sent
    // fewer contact lists along a put, 4 in 904 after. At most 1 in 50 here.
    println!("heavy churn, seeds 1-4: {missed} of {gets} gets missed");
    assert!(missed * 50 <= gets, "{missed} of {gets} gets missed");
}

// ------------------------------------------------------------ same seed, same run

/// Everything a run should reproduce: datagram counters, every running
/// node's stats and which nodes hold which keys.
fn fingerprint(scenario: &Scenario) -> String {
    let (report, sim) = scenario.run(|_| {}).unwrap();
    let mut out = format!(
        "{report:?}\n{:?}\n{:?}\n",
        sim.net_stats(),
        sim.lifecycle_stats()
    );
    let mut live: Vec<usize> = sim.live_nodes().to_vec();
    live.sort_unstable();
    for n in live {
        out += &format!(
            "{n} {:?} {:?}\n",
            sim.id(n),
            sim.try_protocol(n).unwrap().stats()
        );
    }
    for i in 0..scenario.values {
        let key = NodeId::digest(format!("scenario-value-{i}").as_bytes());
        out += &format!("{i} {:?}\n", sim.holders(&key));
    }
    out
}

fn small_valued_churn() -> Scenario {
    Scenario {
        nodes: 80,
        values: 30,
        hours: 3,
        churn_per_hour: 0.5,
        seed: 9,
        publishers: 3,
        ttl: Some(2 * HOUR),
        ..Scenario::default()
    }
}

fn assert_same_run(scenario: &Scenario) {
    let a = fingerprint(scenario);
    let b = fingerprint(scenario);
    if a != b {
        let first = a
            .lines()
            .zip(b.lines())
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("{x}\n  vs\n{y}"));
        panic!("two runs with one seed differ; first difference:\n{first:?}");
    }
    assert!(a.lines().count() > scenario.values);
}

/// Same seed, same run, with values and churn: storage iterates in key
/// order. (Before the fix the runs differed from hour 2 on, because
/// `MemoryStorage` iterated a `HashMap` with a random hasher.)
#[test]
fn same_seed_same_run_with_values_and_churn() {
    assert_same_run(&small_valued_churn());
}
