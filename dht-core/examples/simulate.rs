//! Deterministic simulation of a large network with virtual time; prints one
//! JSON object with the success rate and the cost of a lookup.
//!
//!     cargo run --release -p dht-core --example simulate -- --nodes 10000 --gets 1000 --churn 0.25

use std::time::{Duration, Instant};

use dht_core::sim::Simulation;
use dht_core::{Config, NodeId, Outcome, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Args {
    nodes: usize,
    values: usize,
    gets: usize,
    churn: f64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: 10_000,
        values: 200,
        gets: 600,
        churn: 0.0,
        seed: 42,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--nodes" => args.nodes = value.parse().map_err(|e| bad(&e))?,
            "--values" => args.values = value.parse().map_err(|e| bad(&e))?,
            "--gets" => args.gets = value.parse().map_err(|e| bad(&e))?,
            "--churn" => args.churn = value.parse().map_err(|e| bad(&e))?,
            "--seed" => args.seed = value.parse().map_err(|e| bad(&e))?,
            _ => {
                return Err(format!(
                    "unknown flag {flag} (--nodes --values --gets --churn --seed)"
                ))
            }
        }
    }
    if args.nodes < 2 || args.values == 0 {
        return Err("--nodes must be at least 2 and --values at least 1".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("simulate: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let mut sim = Simulation::new(
        args.seed,
        (Duration::from_millis(5), Duration::from_millis(50)),
    );
    let config = Config::default().with_rpc_timeout(Duration::from_secs(1));
    for _ in 0..args.nodes {
        if let Err(e) = sim.add_node(config.clone()) {
            eprintln!("simulate: {e}");
            std::process::exit(1);
        }
    }
    eprintln!("joining {} nodes...", args.nodes);
    let failed_joins = sim.join_network(100, Duration::from_secs(120));
    let join_wall = started.elapsed().as_secs_f64();

    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let keys: Vec<(NodeId, Value)> = (0..args.values)
        .map(|i| {
            (
                NodeId::digest(format!("sim-{i}").as_bytes()),
                Value::from(i as i64),
            )
        })
        .collect();
    let mut puts_ok = 0;
    for (key, value) in &keys {
        let putter = rng.random_range(0..args.nodes);
        let put = sim.command(putter, |p, now| {
            p.put(now, *key, value.clone(), PutOptions::default())
        });
        if let Ok(op) = put {
            if let Some(Outcome::Put(Ok(r))) =
                sim.run_until_done(putter, op, Duration::from_secs(60))
            {
                puts_ok += usize::from(r.stored_remote > 0);
            }
        }
    }

    let killed = (args.nodes as f64 * args.churn) as usize;
    let mut dead = 0;
    while dead < killed.min(args.nodes - 1) {
        let victim = rng.random_range(0..args.nodes);
        if sim.is_alive(victim) {
            sim.kill(victim);
            dead += 1;
        }
    }

    let before = sim.lookup_totals();
    let (mut tried, mut found, mut max_virtual) = (0usize, 0usize, Duration::ZERO);
    while tried < args.gets {
        let (key, value) = &keys[rng.random_range(0..keys.len())];
        let getter = rng.random_range(0..args.nodes);
        if !sim.is_alive(getter) || sim.protocol(getter).local_value(key, sim.now()).is_some() {
            continue;
        }
        tried += 1;
        let start = sim.now();
        let op = sim.command(getter, |p, now| p.get(now, *key));
        if let Some(Outcome::Get(Ok(Some(v)))) =
            sim.run_until_done(getter, op, Duration::from_secs(60))
        {
            found += usize::from(v == *value);
        }
        max_virtual = max_virtual.max(sim.now() - start);
    }
    let (rpcs_per_lookup, hops_per_lookup) = sim.lookup_totals().per_lookup_since(&before);
    println!(
        "{{\"nodes\": {}, \"failed_joins\": {}, \"values\": {}, \"puts_ok\": {}, \"killed\": {}, \
         \"gets\": {}, \"found\": {}, \"success_rate\": {:.4}, \"rpcs_per_lookup\": {:.2}, \
         \"hops_per_lookup\": {:.2}, \"max_get_virtual_ms\": {}, \"datagrams\": {}, \
         \"join_wall_s\": {:.1}, \"total_wall_s\": {:.1}}}",
        args.nodes,
        failed_joins,
        args.values,
        puts_ok,
        killed,
        tried,
        found,
        found as f64 / tried.max(1) as f64,
        rpcs_per_lookup,
        hops_per_lookup,
        max_virtual.as_millis(),
        sim.delivered(),
        join_wall,
        started.elapsed().as_secs_f64(),
    );
}
