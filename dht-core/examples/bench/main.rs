//! Release-mode benchmark of kadmium nodes on loopback (a program, not a test).
//!
//! Runs the workload of `shared/bench/dht_bench.py` against kadmium's Rust
//! API: N nodes in one process on 127.0.0.1, node i bootstraps from node 0
//! and a random earlier node, then `ops` puts of random `value_size`-byte
//! values from random nodes and as many gets from another node, first one at
//! a time (concurrency 1) and then `concurrency` at a time, seeded. Prints ONE
//! JSON object on stdout; progress goes to stderr.
//!
//! The same is then run with signed records on the same network
//! (`signed_seq`, `signed_par`): each put is `Node::put_signed` under a key
//! pair of its own (a gathering lookup for the newest record, signing, k
//! STOREs verified by every holder), each get `Node::get_signed` (a lookup
//! gathering the k closest answers, verifying them, read repair).
//!
//! ```text
//! cargo run --release -p dht-core --example bench -- --nodes 64,1000 --ops 300
//! cargo run --release -p dht-core --example bench -- --nodes 64 --data-dir /tmp/b
//! ```
//!
//! With `--data-dir DIR` every node keeps its state in `DIR/<N>-node<i>`
//! (`Config::data_dir`): every STORE and put is committed to disk before it
//! is acknowledged, so the figures include the fsyncs. DIR must be new or
//! empty of earlier runs' directories (they would be loaded).
//!
//! With `--compare-persistence R`, each network size runs R rounds, each of
//! one run in memory and then one with a data directory (a fresh
//! `DIR/<N>-r<round>`, DIR from `--data-dir` or the system temp dir, removed
//! after the run), and prints every run's put/get throughput with the median
//! of each side and persistent/in-memory ratios of the medians:
//!
//! ```text
//! cargo run --release -p dht-core --example bench -- --nodes 64 --ops 1000 \
//!     --phases seq,par --compare-persistence 3
//! ```
//!
//! Before its phases, each network's process measures the loopback round
//! trip (`--floor-rounds` round trips of a 100-byte datagram between two
//! blocking sockets, as the `efficiency` example does), and each phase
//! reports its get p50 in those round trips (`get_p50_per_floor_rtt`): the
//! floor moves with the machine's load within minutes, so it is measured
//! next to the gets it is compared with.
//!
//! Each network size runs in a child process of its own (this program with
//! `--single`), so that the memory per node — the VmRSS growth from before the
//! nodes were bound, divided by N — is not blurred by the previous run's heap.

use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dht_core::{Config, Keypair, Node, NodeId, PutOptions, SignedPutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// Allocate as the Python module does (mimalloc; see dht-alloc).
use dht_alloc as _;

#[path = "../common/floor.rs"]
mod floor;

mod args;
mod compare;

use args::Args;
use compare::compare_persistence;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BoxError> {
    let args = Args::parse()?;
    if args.single {
        let &[nodes] = args.nodes.as_slice() else {
            return Err("--single runs exactly one network size".into());
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let report = runtime.block_on(run_network(&args, nodes))?;
        println!("{report}");
        return Ok(());
    }

    if args.compare_rounds > 0 {
        return compare_persistence(&args);
    }
    let mut runs = Vec::new();
    for &nodes in &args.nodes {
        eprintln!("bench: N = {nodes} (child process)");
        runs.push(run_child(&args, nodes)?);
    }
    let report = json!({
        "impl": "kadmium (Rust API, dht-core)",
        "workload": "shared/bench/dht_bench.py",
        "ops": args.ops,
        "concurrency": args.concurrency,
        "value_size": args.value_size,
        "ksize": args.ksize,
        "alpha": args.alpha,
        "seed": args.seed,
        "rpc_timeout_ms": args.rpc_timeout_ms,
        "data_dir": args.data_dir.as_ref().map(|d| d.display().to_string()),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "runs": runs,
    });
    println!("{report}");
    Ok(())
}

/// Runs one network size in a child process of this program; its report.
fn run_child(args: &Args, nodes: usize) -> Result<Json, BoxError> {
    let output = Command::new(std::env::current_exe()?)
        .args(args.child_flags(nodes))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("the run with N = {nodes} failed ({})", output.status).into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// VmRSS of this process in KiB (Linux); 0 where /proc is unavailable.
fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The phases: name, whether `--concurrency` operations run at once (else
/// one at a time), whether puts and gets are of signed records.
const PHASES: [(&str, bool, bool); 4] = [
    ("seq", false, false),
    ("par", true, false),
    ("signed_seq", false, true),
    ("signed_par", true, true),
];

/// One operation: key, value, node that runs it.
#[derive(Clone)]
struct Job {
    key: NodeId,
    value: Value,
    node: usize,
    /// Secret of the key pair of a signed put or get.
    secret: [u8; 32],
}

/// Salt of the benchmark's signed records.
const SALT: &[u8] = b"bench";

fn value_bytes(value: &Value) -> &[u8] {
    match value {
        Value::Bytes(b) => b,
        _ => &[],
    }
}

async fn run_network(args: &Args, n: usize) -> Result<Json, BoxError> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let rss_base = vm_rss_kb();

    let started = Instant::now();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let config = Config::default()
            .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_k(args.ksize)
            .with_alpha(args.alpha)
            .with_rpc_timeout(Duration::from_millis(args.rpc_timeout_ms))
            .with_rng_seed(args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let config = match &args.data_dir {
            Some(dir) => config.with_data_dir(dir.join(format!("{n}-node{i}"))),
            None => config,
        };
        nodes.push(Node::bind(config).await?);
    }
    let listen_s = started.elapsed().as_secs_f64();
    eprintln!("bench: N = {n}: bound {n} nodes in {listen_s:.3} s");

    let started = Instant::now();
    let mut lonely = 0usize;
    for i in 1..n {
        let mut seeds = vec![0, rng.random_range(0..i)];
        seeds.dedup();
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&j| nodes[j].local_addr()).collect();
        if nodes[i].bootstrap(&addrs).await?.is_empty() {
            lonely += 1;
        }
        if i % 250 == 0 {
            eprintln!("bench: N = {n}: bootstrapped {i}/{}", n - 1);
        }
    }
    let bootstrap_s = started.elapsed().as_secs_f64();
    let rss_bootstrapped = vm_rss_kb();
    eprintln!("bench: N = {n}: bootstrap took {bootstrap_s:.3} s");

    let nodes = Arc::new(nodes);
    let mut report = json!({
        "nodes": n,
        "listen_s": round(listen_s, 4),
        "bootstrap_s": round(bootstrap_s, 4),
        "bootstrap_ms_per_node": round(bootstrap_s * 1e3 / (n - 1) as f64, 3),
        "bootstrap_found_nobody": lonely,
    });
    // The loopback round trip, measured here and now: the floor of a
    // one-hop get, which moves with the machine's load within minutes.
    let floor_rtt_us = if args.floor_rounds > 0 {
        let rounds = args.floor_rounds;
        let floor = tokio::task::spawn_blocking(move || floor::ping_pong(rounds)).await??;
        report["floor_ping_pong"] = floor.clone();
        floor["rtt_p50_us"].as_f64()
    } else {
        None
    };

    for &(phase, parallel, signed) in &PHASES {
        if !args.phases.iter().any(|p| p == phase) {
            continue;
        }
        let concurrency = if parallel { args.concurrency } else { 1 };
        // The plain phases keep their keys and random draws of before.
        let suffix = match phase {
            "seq" => "",
            "par" => "-par",
            other => other,
        };
        let mut puts = Vec::with_capacity(args.ops);
        let mut gets = Vec::with_capacity(args.ops);
        for i in 0..args.ops {
            let key = NodeId::digest(format!("bench-{}-{i}{suffix}", args.seed).as_bytes());
            let value = Value::Bytes((0..args.value_size).map(|_| rng.random::<u8>()).collect());
            let putter = rng.random_range(0..n);
            let getter = (putter + 1 + rng.random_range(0..n - 1)) % n;
            let secret: [u8; 32] = if signed { rng.random() } else { [0; 32] };
            puts.push(Job {
                key,
                value: value.clone(),
                node: putter,
                secret,
            });
            gets.push(Job {
                key,
                value,
                node: getter,
                secret,
            });
        }

        let started = Instant::now();
        let put_results =
            run_concurrently(&nodes, puts, concurrency, move |node, job| async move {
                if signed {
                    let owner = Keypair::from_secret(job.secret);
                    let value = value_bytes(&job.value);
                    let options = SignedPutOptions::default();
                    node.put_signed(&owner, SALT, value, options).await.is_ok()
                } else {
                    matches!(node.put(job.key, job.value, PutOptions::default()).await,
                         Ok(r) if r.stored_remote > 0 || r.stored_locally)
                }
            })
            .await?;
        let put_wall = started.elapsed().as_secs_f64();
        let counted = GetCounters::sum(&nodes);
        let started = Instant::now();
        let get_results =
            run_concurrently(&nodes, gets, concurrency, move |node, job| async move {
                if signed {
                    let owner = Keypair::from_secret(job.secret).public_key();
                    matches!(node.get_signed(&owner, SALT).await,
                         Ok(Some(v)) if v.value == value_bytes(&job.value))
                } else {
                    matches!(node.get(job.key).await, Ok(Some(v)) if v == job.value)
                }
            })
            .await?;
        let get_wall = started.elapsed().as_secs_f64();
        let get_counters = GetCounters::sum(&nodes).since(&counted);

        let put_ok = put_results.iter().filter(|(ok, _)| *ok).count();
        let get_found = get_results.iter().filter(|(ok, _)| *ok).count();
        let put_lat: Vec<f64> = put_results.iter().map(|(_, t)| t.as_secs_f64()).collect();
        let get_lat: Vec<f64> = get_results.iter().map(|(_, t)| t.as_secs_f64()).collect();
        eprintln!(
            "bench: N = {n}: {phase} (concurrency {concurrency}): {put_ok}/{} puts ok, {get_found}/{} gets found",
            args.ops, args.ops
        );
        report[phase] = json!({
            "concurrency": concurrency,
            "put_ok": put_ok,
            "get_found": get_found,
            "put_ops_s": round(args.ops as f64 / put_wall, 1),
            "get_ops_s": round(args.ops as f64 / get_wall, 1),
            "put_p50_ms": round(percentile(&put_lat, 0.50) * 1e3, 3),
            "put_p99_ms": round(percentile(&put_lat, 0.99) * 1e3, 3),
            "get_p50_ms": round(percentile(&get_lat, 0.50) * 1e3, 3),
            "get_p99_ms": round(percentile(&get_lat, 0.99) * 1e3, 3),
            // RPCs of the lookups that completed during the gets (any
            // maintenance lookup included; a get answered from a local
            // copy sends none) per get, and the gets that asked one
            // likely holder alone first (see `ops/get.rs`).
            "get_rpcs_per_get": round(get_counters.rpcs as f64 / args.ops as f64, 2),
            "gets_asking_one_first": get_counters.asking_one_first,
            "gets_answered_by_first": get_counters.answered_by_first,
        });
        if let Some(rtt_us) = floor_rtt_us {
            let get_p50_us = percentile(&get_lat, 0.50) * 1e6;
            report[phase]["get_p50_per_floor_rtt"] = json!(round(get_p50_us / rtt_us, 2));
        }
    }

    let rss_end = vm_rss_kb();
    let (mut rpcs_sent, mut rpc_timeouts, mut dropped, mut values_stored) =
        (0u64, 0u64, 0u64, 0u64);
    for node in nodes.iter() {
        let s = node.stats();
        rpcs_sent += s.rpcs_sent;
        rpc_timeouts += s.rpc_timeouts;
        dropped += s.datagrams_dropped;
        values_stored += s.values_stored;
    }
    for node in nodes.iter() {
        node.shutdown();
    }
    report["memory"] = json!({
        "rss_base_mb": round(rss_base as f64 / 1024.0, 1),
        "rss_bootstrapped_mb": round(rss_bootstrapped as f64 / 1024.0, 1),
        "rss_end_mb": round(rss_end as f64 / 1024.0, 1),
        // VmRSS growth from before binding to after bootstrap, per node.
        "per_node_kb": round(rss_bootstrapped.saturating_sub(rss_base) as f64 / n as f64, 1),
        // The same after the workload (values stored, caches warm).
        "per_node_after_workload_kb": round(rss_end.saturating_sub(rss_base) as f64 / n as f64, 1),
    });
    report["stats"] = json!({
        "rpcs_sent": rpcs_sent,
        "rpc_timeouts": rpc_timeouts,
        "datagrams_dropped": dropped,
        "values_stored": values_stored,
    });
    Ok(report)
}

/// Run `jobs` with at most `concurrency` in flight; (success, latency) per job, in job order.
async fn run_concurrently<F, Fut>(
    nodes: &Arc<Vec<Node>>,
    jobs: Vec<Job>,
    concurrency: usize,
    op: F,
) -> Result<Vec<(bool, Duration)>, BoxError>
where
    F: Fn(Node, Job) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate()));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(total) {
        let (queue, nodes, op) = (queue.clone(), nodes.clone(), op.clone());
        workers.spawn(async move {
            let mut results = Vec::new();
            loop {
                let next = match queue.lock() {
                    Ok(mut queue) => queue.next(),
                    Err(_) => None,
                };
                let Some((i, job)) = next else { break };
                let node = nodes[job.node].clone();
                let started = Instant::now();
                let ok = op(node, job).await;
                results.push((i, ok, started.elapsed()));
            }
            results
        });
    }
    let mut out = vec![(false, Duration::ZERO); total];
    while let Some(worker) = workers.join_next().await {
        for (i, ok, took) in worker? {
            out[i] = (ok, took);
        }
    }
    Ok(out)
}

/// dht_bench.py's percentile: the sample at index round(q · (len − 1)).
fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let index = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[index]
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// Get counters summed over every node (see `Stats`).
#[derive(Default)]
struct GetCounters {
    rpcs: u64,
    asking_one_first: u64,
    answered_by_first: u64,
}

impl GetCounters {
    fn sum(nodes: &[Node]) -> Self {
        nodes.iter().fold(GetCounters::default(), |acc, node| {
            let s = node.stats();
            GetCounters {
                rpcs: acc.rpcs + s.lookup_rpcs,
                asking_one_first: acc.asking_one_first + s.gets_asking_one_first,
                answered_by_first: acc.answered_by_first + s.gets_answered_by_first,
            }
        })
    }

    fn since(&self, earlier: &Self) -> Self {
        GetCounters {
            rpcs: self.rpcs - earlier.rpcs,
            asking_one_first: self.asking_one_first - earlier.asking_one_first,
            answered_by_first: self.answered_by_first - earlier.answered_by_first,
        }
    }
}
