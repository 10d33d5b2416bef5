//! Deterministic simulation of a large network with virtual time; the last
//! line on stdout is one JSON object with the figures.
//!
//! Two modes. Lookups (the default): join N nodes, put values, optionally
//! kill a fraction, and measure gets:
//!
//!     cargo run --release -p dht-core --example simulate -- --nodes 10000 --gets 1000 --churn 0.25
//!
//! Value lifecycle (when `--hours` is given): publishers put values, the
//! network churns, and every virtual hour the copies of each value are
//! counted and the values got from random nodes (progress on stderr):
//!
//!     cargo run --release -p dht-core --example simulate -- --nodes 2000 --values 1000 \
//!         --hours 24 --churn-per-hour 0.5 --seed 1 [--publishers 10] \
//!         [--publishers-leave-at HOURS] [--ttl SECONDS] [--gets-per-hour N]
//!
//! Both modes run on two threads where the machine has two cores
//! (`--threads 1` for one); the figures are the same either way, only the
//! wall-clock time changes.

use std::str::FromStr;
use std::time::{Duration, Instant};

use dht_core::sim::scenario::Scenario;
use dht_core::sim::Simulation;
use dht_core::{Config, NodeId, Outcome, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

struct Args {
    nodes: usize,
    values: Option<usize>,
    gets: usize,
    churn: f64,
    seed: Option<u64>,
    hours: Option<u32>,
    churn_per_hour: f64,
    publishers: usize,
    publishers_leave_at: Option<f64>,
    ttl: Option<u64>,
    gets_per_hour: Option<usize>,
    /// Exit with status 1 unless every join and every get succeeded.
    require_all_found: bool,
    /// Threads running the shards (the run is the same with any number).
    threads: usize,
}

const USAGE: &str =
    "flags: --nodes --values --seed --threads; lookups: --gets --churn --require-all-found; \
lifecycle: --hours --churn-per-hour --publishers --publishers-leave-at --ttl --gets-per-hour";

fn parse<T: FromStr>(flag: &str, value: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| format!("{flag} {value:?}: {e}"))
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nodes: 10_000,
        values: None,
        gets: 600,
        churn: 0.0,
        seed: None,
        hours: None,
        churn_per_hour: 0.0,
        publishers: 10,
        publishers_leave_at: None,
        ttl: None,
        gets_per_hour: None,
        require_all_found: false,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(2)),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--require-all-found" {
            args.require_all_found = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let v = value.as_str();
        match flag.as_str() {
            "--nodes" => args.nodes = parse(&flag, v)?,
            "--threads" => args.threads = parse(&flag, v)?,
            "--values" => args.values = Some(parse(&flag, v)?),
            "--gets" => args.gets = parse(&flag, v)?,
            "--churn" => args.churn = parse(&flag, v)?,
            "--seed" => args.seed = Some(parse(&flag, v)?),
            "--hours" => args.hours = Some(parse(&flag, v)?),
            "--churn-per-hour" => args.churn_per_hour = parse(&flag, v)?,
            "--publishers" => args.publishers = parse(&flag, v)?,
            "--publishers-leave-at" => args.publishers_leave_at = Some(parse(&flag, v)?),
            "--ttl" => args.ttl = Some(parse(&flag, v)?),
            "--gets-per-hour" => args.gets_per_hour = Some(parse(&flag, v)?),
            _ => return Err(format!("unknown flag {flag} ({USAGE})")),
        }
    }
    if args.require_all_found && args.hours.is_some() {
        return Err("--require-all-found applies to the lookups mode, not --hours".into());
    }
    if !(1..=2).contains(&args.threads) {
        return Err("--threads must be 1 or 2".into());
    }
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".into());
    }
    if args.values == Some(0) {
        return Err("--values must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.churn) {
        return Err("--churn must be between 0 and 1".into());
    }
    if !args.churn_per_hour.is_finite() || args.churn_per_hour < 0.0 {
        return Err("--churn-per-hour must be a number of at least 0".into());
    }
    if args.publishers == 0 || args.publishers > args.nodes {
        return Err("--publishers must be between 1 and --nodes".into());
    }
    if args
        .publishers_leave_at
        .is_some_and(|h| !h.is_finite() || h < 0.0)
    {
        return Err("--publishers-leave-at must be a number of hours of at least 0".into());
    }
    if args.ttl == Some(0) {
        return Err("--ttl must be at least 1 second".into());
    }
    if args.hours.is_none()
        && (args.churn_per_hour > 0.0
            || args.publishers_leave_at.is_some()
            || args.ttl.is_some()
            || args.gets_per_hour.is_some())
    {
        return Err(
            "--churn-per-hour, --publishers-leave-at, --ttl and --gets-per-hour need --hours"
                .into(),
        );
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
    let result = match args.hours {
        Some(hours) => lifecycle(&args, hours),
        None => lookups(&args),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            let all_found = line["failed_joins"] == 0 && line["found"] == line["gets"];
            if args.require_all_found && !all_found {
                eprintln!("simulate: --require-all-found: a join failed or a get missed its value");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("simulate: {e}");
            std::process::exit(1);
        }
    }
}

/// Peak resident memory of this process in MB (Linux), if readable.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}

/// CPU time this process has run, in seconds (Linux), if readable: on a
/// shared machine wall time also counts waiting for a core.
/// CPU time of the whole process (every thread, ended ones included).
fn cpu_s() -> Option<f64> {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some((secs(usage.ru_utime) + secs(usage.ru_stime)) * 10.0).map(|t| t.round() / 10.0)
}

fn lifecycle(args: &Args, hours: u32) -> dht_core::Result<serde_json::Value> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or(1);
    let scenario = Scenario {
        nodes: args.nodes,
        values: args.values.unwrap_or(1000),
        hours,
        churn_per_hour: args.churn_per_hour,
        seed,
        publishers: args.publishers,
        publishers_leave_at: args.publishers_leave_at,
        ttl: args.ttl.map(Duration::from_secs),
        gets_per_hour: args.gets_per_hour,
        threads: args.threads,
        ..Scenario::default()
    };
    eprintln!(
        "simulate: {} nodes, {} values from {} publishers, {} h at churn {}/h, seed {seed}",
        scenario.nodes, scenario.values, scenario.publishers, hours, scenario.churn_per_hour
    );
    let (report, sim) = scenario.run(|h| {
        eprintln!(
            "hour {:>3}: live {} published {} min_copies {:?} gets {}/{} lost {} orphans_found {} datagrams {} wall {:.1}s",
            h.hour,
            h.live_nodes,
            h.published,
            h.min_copies,
            h.gets_found,
            h.gets,
            h.lost,
            h.orphans_found,
            h.datagrams,
            started.elapsed().as_secs_f64()
        );
    })?;
    let net = sim.net_stats();
    let life = sim.lifecycle_stats();
    Ok(json!({
        "nodes": scenario.nodes,
        "threads": args.threads,
        "values": scenario.values,
        "hours": hours,
        "churn_per_hour": scenario.churn_per_hour,
        "seed": seed,
        "publishers": scenario.publishers,
        "publishers_leave_at": scenario.publishers_leave_at,
        "ttl_s": scenario.ttl.map(|t| t.as_secs()),
        "failed_joins": report.failed_joins,
        "puts_ok": report.puts_ok,
        "values_lost": report.values_lost,
        "lost_per_hour": report.hours.iter().map(|h| h.lost).collect::<Vec<_>>(),
        "min_copies": report.min_copies,
        "min_copies_per_hour": report.hours.iter().map(|h| h.min_copies).collect::<Vec<_>>(),
        "orphans_found_per_hour": report.hours.iter().map(|h| h.orphans_found).collect::<Vec<_>>(),
        "gets": report.gets,
        "gets_found": report.gets_found,
        "joins": life.joins,
        "leaves": life.leaves,
        "failed_bootstraps": life.failed_bootstraps,
        "datagrams": net.delivered,
        "datagrams_dropped": net.dropped(),
        "datagrams_oversize": net.dropped_oversize,
        "wall_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "cpu_s": cpu_s(),
        "peak_rss_mb": peak_rss_mb(),
    }))
}

fn lookups(args: &Args) -> dht_core::Result<serde_json::Value> {
    let started = Instant::now();
    let seed = args.seed.unwrap_or(42);
    let values = args.values.unwrap_or(200);
    let mut sim = Simulation::new(seed, (Duration::from_millis(5), Duration::from_millis(50)));
    sim.set_threads(args.threads);
    let config = Config::default().with_rpc_timeout(Duration::from_secs(1));
    for _ in 0..args.nodes {
        sim.add_node(config.clone())?;
    }
    eprintln!("joining {} nodes...", args.nodes);
    let failed_joins = sim.join_network(100, Duration::from_secs(120));
    let join_wall = started.elapsed().as_secs_f64();
    let join_virtual = sim.elapsed().as_secs_f64();

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let keys: Vec<(NodeId, Value)> = (0..values)
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
        let put = sim.try_command(putter, |p, now| {
            p.put(now, *key, value.clone(), PutOptions::default())
        });
        if let Some(Ok(op)) = put {
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
            sim.leave(victim);
            dead += 1;
        }
    }

    let before = sim.lookup_totals();
    let (mut tried, mut found) = (0usize, 0usize);
    let mut latencies = Vec::with_capacity(args.gets);
    while tried < args.gets {
        let (key, value) = &keys[rng.random_range(0..keys.len())];
        let getter = rng.random_range(0..args.nodes);
        match sim.try_protocol(getter) {
            Some(p) if p.local_value(key, sim.now()).is_none() => {}
            _ => continue,
        }
        tried += 1;
        let got = sim.get_from(getter, *key, Duration::from_secs(60));
        found += usize::from(got.value.as_ref() == Some(value));
        latencies.push(got.latency);
    }
    latencies.sort_unstable();
    let virtual_ms = |at: f64| {
        let i = ((latencies.len() as f64 - 1.0) * at).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let mean_ms = latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3
        / latencies.len().max(1) as f64;
    let after = sim.lookup_totals();
    let (rpcs_per_lookup, hops_per_lookup) = after.per_lookup_since(&before);
    Ok(json!({
        "nodes": args.nodes,
        "threads": args.threads,
        "failed_joins": failed_joins,
        "values": values,
        "puts_ok": puts_ok,
        "killed": killed,
        "gets": tried,
        "found": found,
        "success_rate": (found as f64 / tried.max(1) as f64 * 1e4).round() / 1e4,
        "rpcs_per_lookup": (rpcs_per_lookup * 100.0).round() / 100.0,
        "hops_per_lookup": (hops_per_lookup * 100.0).round() / 100.0,
        "gets_asking_one_first": after.gets_asking_one_first - before.gets_asking_one_first,
        "gets_answered_by_first": after.gets_answered_by_first - before.gets_answered_by_first,
        "gets_widened_late": after.gets_widened_late - before.gets_widened_late,
        "get_virtual_ms": {
            "mean": (mean_ms * 10.0).round() / 10.0,
            "p50": (virtual_ms(0.5) * 10.0).round() / 10.0,
            "p99": (virtual_ms(0.99) * 10.0).round() / 10.0,
            "max": (virtual_ms(1.0) * 10.0).round() / 10.0,
        },
        "datagrams": sim.delivered(),
        "join_wall_s": (join_wall * 10.0).round() / 10.0,
        "join_virtual_s": (join_virtual * 10.0).round() / 10.0,
        "total_wall_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "cpu_s": cpu_s(),
        "peak_rss_mb": peak_rss_mb(),
    }))
}
