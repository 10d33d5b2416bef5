//! Release-mode benchmark of the data directory (a program, not a test):
//! commit latency and records/s for batches of 1, 32 and 1000 record puts
//! (median of the runs; every commit is fsync'ed, 2-phase), then how long
//! opening (with redb's full checksum pass) and loading a store of 100,000
//! records take — what a restarted node pays before it serves.
//!
//! ```text
//! cargo run --release -p dht-core --example persist_bench [-- DIR]
//! ```
//!
//! DIR (default: a fresh directory under the system temp dir) chooses the
//! filesystem measured; fsync cost is the disk's, so figures vary by machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dht_core::persist::{Change, DataDir, PersistedRecord, RecordKind};
use dht_core::{NodeId, Value};

type BoxError = Box<dyn std::error::Error>;

/// Runs per batch size: enough for a stable median without taking minutes.
const PLAN: [(usize, usize); 3] = [(1, 200), (32, 100), (1000, 30)];
const LOAD_RECORDS: usize = 100_000;
const VALUE_BYTES: usize = 100;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("persist_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn put(i: u64) -> Change {
    Change::PutRecord {
        key: NodeId::digest(&i.to_be_bytes()),
        record: PersistedRecord {
            value: Value::Bytes(vec![(i % 251) as u8; VALUE_BYTES]),
            expires_at_unix_ms: u64::MAX,
            kind: RecordKind::Held,
        },
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn run() -> Result<(), BoxError> {
    let scratch;
    let base: PathBuf = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_owned()
        }
    };
    println!("data directory under {}", base.display());
    println!("value size {VALUE_BYTES} bytes; each commit is one fsync'ed transaction");
    println!(
        "{:>6} {:>6} {:>14} {:>14}",
        "batch", "runs", "median commit", "records/s"
    );
    let mut next = 0u64;
    for (batch, runs) in PLAN {
        let dir = base.join(format!("batch-{batch}"));
        let mut store = DataDir::open(&dir)?;
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let changes: Vec<Change> = (next..next + batch as u64).map(put).collect();
            next += batch as u64;
            let started = Instant::now();
            store.commit(&changes)?;
            samples.push(started.elapsed());
        }
        let m = median(samples);
        println!(
            "{batch:>6} {runs:>6} {:>11.3} ms {:>14.0}",
            m.as_secs_f64() * 1e3,
            batch as f64 / m.as_secs_f64()
        );
    }

    let dir = base.join("load");
    {
        let mut store = DataDir::open(&dir)?;
        let changes: Vec<Change> = (0..LOAD_RECORDS as u64).map(put).collect();
        for chunk in changes.chunks(10_000) {
            store.commit(chunk)?;
        }
    }
    let started = Instant::now();
    let mut store = DataDir::open(&dir)?;
    let opened = started.elapsed();
    let started = Instant::now();
    let snapshot = store.load()?;
    let loaded = started.elapsed();
    let file_bytes = std::fs::metadata(store.data_file())?.len();
    println!(
        "store of {} records ({:.1} MiB file): open {:.1} ms, load {:.1} ms",
        snapshot.records.len(),
        file_bytes as f64 / (1 << 20) as f64,
        opened.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3
    );
    Ok(())
}
