//! `make demo`: a 50-node kadmium network on 127.0.0.1 doing real puts and gets.
//!
//! Starts 50 nodes (one tokio runtime, one UDP socket each), bootstraps them,
//! puts 1000 values of mixed types from random nodes, gets every one of them
//! back from a different node, and prints what happened: progress per phase,
//! success counts, latency percentiles, throughput and the nodes' statistics.
//! Exits non-zero if any put or get failed.
//!
//! ```text
//! cargo run --release -p dht-core --example demo
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dht_core::{Config, Node, NodeId, PutOptions, Stats, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: usize = 50;
const VALUES: usize = 1000;
const CONCURRENCY: usize = 32;
const SEED: u64 = 2024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One operation of a phase: which key, which value, from which node.
struct Job {
    key: NodeId,
    value: Value,
    node: usize,
}

/// What one operation did: did it succeed, how long it took, and a note if not.
struct Outcome {
    ok: bool,
    took: Duration,
    note: Option<String>,
}

async fn run() -> Result<bool, BoxError> {
    let mut rng = StdRng::seed_from_u64(SEED);
    println!("kadmium demo: {NODES} nodes on 127.0.0.1, {VALUES} values, {CONCURRENCY} operations in flight");
    println!();

    // --- 1. start ---------------------------------------------------------
    let started = Instant::now();
    let mut nodes = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let config = Config::default()
            .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .with_rpc_timeout(Duration::from_secs(1))
            .with_rng_seed(SEED + i as u64);
        nodes.push(Node::bind(config).await?);
    }
    println!(
        "[1/4] started {NODES} nodes in {:.1} ms",
        ms(started.elapsed())
    );
    for (i, node) in nodes.iter().enumerate().take(3) {
        println!(
            "      node {i:>2}  id {}  on {}",
            node.id(),
            node.local_addr()
        );
    }
    println!("      ...");

    // --- 2. bootstrap -------------------------------------------------------
    let started = Instant::now();
    for i in 1..NODES {
        let mut seeds = vec![nodes[0].local_addr()];
        let other = rng.random_range(0..i);
        if other != 0 {
            seeds.push(nodes[other].local_addr());
        }
        let found = nodes[i].bootstrap(&seeds).await?;
        if found.is_empty() {
            println!("      node {i} found no contacts bootstrapping from {seeds:?}");
            return Ok(false);
        }
    }
    let table_sizes: Vec<usize> = nodes.iter().map(|n| n.contacts().len()).collect();
    println!(
        "[2/4] bootstrapped {} nodes in {:.1} ms; routing tables hold {}..{} contacts (mean {:.1})",
        NODES - 1,
        ms(started.elapsed()),
        table_sizes.iter().min().copied().unwrap_or(0),
        table_sizes.iter().max().copied().unwrap_or(0),
        table_sizes.iter().sum::<usize>() as f64 / NODES as f64
    );

    // --- 3. put -------------------------------------------------------------
    let mut puts = Vec::with_capacity(VALUES);
    let mut gets = Vec::with_capacity(VALUES);
    for i in 0..VALUES {
        let key = NodeId::digest(format!("demo-key-{i}").as_bytes());
        let value = demo_value(&mut rng, i);
        let putter = rng.random_range(0..NODES);
        let getter = (putter + 1 + rng.random_range(0..NODES - 1)) % NODES;
        puts.push(Job {
            key,
            value: value.clone(),
            node: putter,
        });
        gets.push(Job {
            key,
            value,
            node: getter,
        });
    }
    let nodes = Arc::new(nodes);
    let started = Instant::now();
    let put_outcomes = run_phase("put", &nodes, puts, |node, job| async move {
        match node.put(job.key, job.value, PutOptions::default()).await {
            Ok(report) if report.stored_remote > 0 || report.stored_locally => (true, None),
            Ok(report) => (false, Some(format!("stored nowhere: {report:?}"))),
            Err(e) => (false, Some(e.to_string())),
        }
    })
    .await?;
    let put_wall = started.elapsed();
    let put_ok = summarize("[3/4] put", &put_outcomes, put_wall);

    // --- 4. get -------------------------------------------------------------
    let lookups_before: u64 = nodes.iter().map(|n| n.stats().lookups_started).sum();
    let started = Instant::now();
    let get_outcomes = run_phase("get", &nodes, gets, |node, job| async move {
        match node.get(job.key).await {
            Ok(Some(got)) if got == job.value => (true, None),
            Ok(Some(got)) => (false, Some(format!("wrong value: {got:?}"))),
            Ok(None) => (false, Some("not found".to_owned())),
            Err(e) => (false, Some(e.to_string())),
        }
    })
    .await?;
    let get_wall = started.elapsed();
    let get_ok = summarize("[4/4] get", &get_outcomes, get_wall);
    let lookups: u64 = nodes.iter().map(|n| n.stats().lookups_started).sum();
    println!(
        "      {} gets needed a network lookup; the other getters held a replica themselves",
        lookups.saturating_sub(lookups_before)
    );

    // --- statistics ---------------------------------------------------------
    let total = nodes
        .iter()
        .map(Node::stats)
        .fold(Stats::default(), add_stats);
    println!();
    println!("node statistics, summed over {NODES} nodes:");
    println!(
        "  datagrams   sent {:>8}   received {:>8}   dropped {:>6}",
        total.datagrams_sent, total.datagrams_received, total.datagrams_dropped
    );
    println!(
        "  RPCs        sent {:>8}   answered {:>8}   timed out {:>4}   requests served {}",
        total.rpcs_sent, total.responses_received, total.rpc_timeouts, total.requests_received
    );
    println!(
        "  lookups  started {:>8}   completed {:>7}",
        total.lookups_started, total.lookups_completed
    );
    println!(
        "  storage   values {:>8}   bytes {:>11}   (≈ {:.1} replicas per value)",
        total.values_stored,
        total.stored_bytes,
        total.values_stored as f64 / VALUES as f64
    );
    println!(
        "  contacts         {:>8}   (mean {:.1} per node)",
        total.contacts,
        total.contacts as f64 / NODES as f64
    );

    for node in nodes.iter() {
        node.shutdown();
    }
    println!();
    let ok = put_ok == VALUES && get_ok == VALUES;
    if ok {
        println!("demo OK: all {VALUES} values stored and found from another node");
    } else {
        println!("demo FAILED: {put_ok}/{VALUES} puts and {get_ok}/{VALUES} gets succeeded");
    }
    Ok(ok)
}

/// Values of every type a Python peer could also read.
fn demo_value(rng: &mut StdRng, i: usize) -> Value {
    match i % 4 {
        0 => Value::Str(format!("hello from value #{i}")),
        1 => Value::Int(rng.random_range(-1_000_000..1_000_000)),
        2 => Value::Float(rng.random::<f64>() * 1000.0),
        _ => Value::Bytes((0..100).map(|_| rng.random::<u8>()).collect()),
    }
}

/// Run `jobs` with at most CONCURRENCY in flight, printing progress; outcomes
/// come back in job order.
async fn run_phase<F, Fut>(
    name: &str,
    nodes: &Arc<Vec<Node>>,
    jobs: Vec<Job>,
    op: F,
) -> Result<Vec<Outcome>, BoxError>
where
    F: Fn(Node, Job) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (bool, Option<String>)> + Send + 'static,
{
    let total = jobs.len();
    let queue = Arc::new(std::sync::Mutex::new(jobs.into_iter().enumerate()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (queue, done, nodes, op) = (queue.clone(), done.clone(), nodes.clone(), op.clone());
        let name = name.to_owned();
        workers.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let next = match queue.lock() {
                    Ok(mut queue) => queue.next(),
                    Err(_) => None,
                };
                let Some((i, job)) = next else { break };
                let node = nodes[job.node].clone();
                let started = Instant::now();
                let (ok, note) = op(node, job).await;
                outcomes.push((
                    i,
                    Outcome {
                        ok,
                        took: started.elapsed(),
                        note,
                    },
                ));
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if finished % (total / 4).max(1) == 0 {
                    println!("      {name}: {finished}/{total}");
                }
            }
            outcomes
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
    while let Some(worker) = workers.join_next().await {
        for (i, outcome) in worker? {
            outcomes[i] = Some(outcome);
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome {
                ok: false,
                took: Duration::ZERO,
                note: Some("never ran".to_owned()),
            })
        })
        .collect())
}

/// Print one phase's results; return how many operations succeeded.
fn summarize(label: &str, outcomes: &[Outcome], wall: Duration) -> usize {
    let ok = outcomes.iter().filter(|o| o.ok).count();
    let mut took: Vec<Duration> = outcomes.iter().map(|o| o.took).collect();
    took.sort();
    println!(
        "{label}: {ok}/{} succeeded in {:.1} ms  ->  {:.0} ops/s;  latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        outcomes.len(),
        ms(wall),
        outcomes.len() as f64 / wall.as_secs_f64().max(1e-9),
        ms(percentile(&took, 0.50)),
        ms(percentile(&took, 0.99)),
        ms(took.last().copied().unwrap_or_default()),
    );
    for (i, o) in outcomes.iter().enumerate().filter(|(_, o)| !o.ok).take(10) {
        println!(
            "      operation #{i} failed: {}",
            o.note.as_deref().unwrap_or("?")
        );
    }
    ok
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn add_stats(mut a: Stats, b: Stats) -> Stats {
    a.datagrams_received += b.datagrams_received;
    a.datagrams_sent += b.datagrams_sent;
    a.datagrams_dropped += b.datagrams_dropped;
    a.requests_received += b.requests_received;
    a.responses_received += b.responses_received;
    a.rpcs_sent += b.rpcs_sent;
    a.rpc_timeouts += b.rpc_timeouts;
    a.lookups_started += b.lookups_started;
    a.lookups_completed += b.lookups_completed;
    a.contacts += b.contacts;
    a.values_stored += b.values_stored;
    a.stored_bytes += b.stored_bytes;
    a.pending_rpcs += b.pending_rpcs;
    a
}
