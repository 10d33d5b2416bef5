//! Datagrams per CPU-second: kadmium's put phase against a raw UDP ping-pong.
//!
//! The floor is two blocking sockets on 127.0.0.1 bouncing one 100-byte
//! datagram back and forth (one `send_to` and one `recv_from` per datagram,
//! nothing else), on two threads (`ratio`, the floor the issue named) and on
//! one (`ratio_one_thread`: no wake-ups, the kernel's cost alone, a floor
//! that holds still where the machine's wake-ups are slow; see
//! `common/floor.rs`). kadmium's figure is the put phase of the shared benchmark
//! (N nodes in this process, `ops` puts at concurrency 32): datagrams sent by
//! all nodes during the phase divided by the CPU time the process used in it.
//! CPU time (user + system, `getrusage`) rather than wall time makes "per
//! core" hold on a machine shared with other work. Also prints the ping-pong's
//! round-trip p50, the floor of a one-hop get. One JSON object on stdout.
//!
//! ```text
//! cargo run --release -p dht-core --example efficiency -- --nodes 64 --ops 300
//! ```

use std::time::Instant;

use dht_core::{Config, Node, NodeId, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// Allocate as the Python module does (mimalloc; see dht-alloc).
use dht_alloc as _;

#[path = "common/floor.rs"]
mod floor;
use floor::{cpu_time, one_thread_ping_pong, ping_pong};

async fn kadmium_puts(
    nodes: usize,
    ops: usize,
    ksize: usize,
) -> Result<serde_json::Value, BoxError> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut net = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        let mut config = Config::default().with_bind("127.0.0.1:0".parse()?);
        config.k = ksize;
        net.push(Node::bind(config).await?);
    }
    for i in 1..nodes {
        let seeds = [
            net[0].local_addr(),
            net[rng.random_range(0..i)].local_addr(),
        ];
        net[i].bootstrap(&seeds).await?;
    }
    let sent = |net: &[Node]| net.iter().map(|n| n.stats().datagrams_sent).sum::<u64>();
    let jobs: Vec<(usize, Vec<u8>)> = (0..ops)
        .map(|i| (rng.random_range(0..nodes), format!("eff-{i}").into_bytes()))
        .collect();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let (d0, cpu0, wall0) = (sent(&net), cpu_time(), Instant::now());
    let mut tasks = Vec::with_capacity(ops);
    for (putter, key) in jobs {
        let node = net[putter].clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await;
            node.put(
                NodeId::digest(&key),
                Value::from(vec![1u8; 100]),
                PutOptions::default(),
            )
            .await
            .is_ok()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += usize::from(task.await?);
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    let datagrams = sent(&net) - d0;
    for node in &net {
        node.shutdown();
    }
    Ok(json!({
        "nodes": nodes,
        "ksize": ksize,
        "puts": ops,
        "stored": stored,
        "datagrams": datagrams,
        "cpu_s": cpu.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "datagrams_per_cpu_s": (datagrams as f64 / cpu.as_secs_f64()).round(),
        "put_ops_s": (ops as f64 / wall.as_secs_f64()).round(),
    }))
}

fn main() -> Result<(), BoxError> {
    let (mut nodes, mut ops, mut ksize, mut rounds) = (64, 300, 20, 100_000);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().ok_or(format!("{flag} needs a value"))?.parse()?;
        match flag.as_str() {
            "--nodes" => nodes = value,
            "--ops" => ops = value,
            "--ksize" => ksize = value,
            "--rounds" => rounds = value,
            _ => {
                return Err(
                    format!("unknown flag {flag}; flags: --nodes --ops --ksize --rounds").into(),
                )
            }
        }
    }
    let floor = ping_pong(rounds)?;
    let floor_one_thread = one_thread_ping_pong(rounds)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let kadmium = runtime.block_on(kadmium_puts(nodes, ops, ksize))?;
    let ratio_to = |floor: &serde_json::Value| {
        let ratio = kadmium["datagrams_per_cpu_s"].as_f64().unwrap_or(0.0)
            / floor["datagrams_per_cpu_s"]
                .as_f64()
                .unwrap_or(f64::INFINITY);
        (ratio * 1000.0).round() / 1000.0
    };
    println!(
        "{}",
        json!({"floor_ping_pong": floor, "floor_one_thread": floor_one_thread,
               "kadmium_put_phase": kadmium,
               "ratio": ratio_to(&floor), "ratio_one_thread": ratio_to(&floor_one_thread),
               "loadavg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()})
    );
    Ok(())
}
