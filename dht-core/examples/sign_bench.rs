//! Release-mode micro-benchmark of signed records (a program, not a test):
//! µs per sign, per verify of a decoded record, per decode + verify of the
//! bytes a node receives, per storing-node decision (held record + newer
//! incoming one: two verifications), per reader pick among 20 answers, and
//! per immutable-record check, for a small and for the largest payload.
//! Each figure is the median over `RUNS` runs of the mean over `ITERS`
//! operations, in wall-clock time and in this thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which other processes on a shared machine do
//! not inflate.
//!
//! ```text
//! cargo run --release -p dht-core --example sign_bench
//! ```

use std::hint::black_box;
use std::time::Instant;

use dht_core::signed::{
    immutable, max_payload_len, pick_newest, record_key, store_decision, verify_immutable, Keypair,
    SignedRecord, StoreDecision, MAX_IMMUTABLE_PAYLOAD_LEN,
};

const RUNS: usize = 7;
const ITERS: usize = 2_000;
const NOW: u64 = 1_700_000_000;
const EXPIRES: u64 = NOW + 3_600;

/// Mean µs per call of `op`, median over `RUNS` runs: (wall clock, on-CPU).
fn micros_per_op(mut op: impl FnMut(usize)) -> (f64, f64) {
    let mut wall = Vec::with_capacity(RUNS);
    let mut cpu = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
        for i in 0..ITERS {
            op(i);
        }
        wall.push(start.elapsed().as_secs_f64() * 1e6 / ITERS as f64);
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu_ns()) {
            cpu.push(b.saturating_sub(a) as f64 / 1e3 / ITERS as f64);
        }
    }
    (median(wall), median(cpu))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Nanoseconds this thread has run on a CPU (unix; `None` elsewhere).
#[cfg(unix)]
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(unix))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keypair = Keypair::from_secret([42; 32]);
    let salt = b"bench";
    let key = record_key(&keypair.public_key(), salt);
    println!("signed records, µs per operation, wall clock (median of {RUNS} runs x {ITERS} ops)");
    println!(
        "{:>8}  {:>8}  {:>8}  {:>14}  {:>14}  {:>14}  {:>10}",
        "payload",
        "sign",
        "verify",
        "decode+verify",
        "store_decision",
        "pick_newest/20",
        "immutable"
    );
    let mut cpu_rows = Vec::new();
    for size in [64, max_payload_len(salt.len())] {
        let payload = vec![0xa5; size];
        let sign = micros_per_op(|i| {
            black_box(SignedRecord::sign(&keypair, salt, i as u64, EXPIRES, Some(&payload)).ok());
        });
        let held = SignedRecord::sign(&keypair, salt, 1, EXPIRES, Some(&payload))?;
        let newer = SignedRecord::sign(&keypair, salt, 2, EXPIRES, Some(&payload))?;
        let (held_bytes, newer_bytes) = (held.encode(), newer.encode());
        let verify = micros_per_op(|_| {
            black_box(newer.verify(&key).ok());
        });
        let decode_verify = micros_per_op(|_| {
            black_box(SignedRecord::decode_verified(&newer_bytes, &key).ok());
        });
        let decide = micros_per_op(|_| {
            let d = store_decision(&key, Some(&held_bytes), &newer_bytes, NOW);
            debug_assert!(matches!(d, StoreDecision::Accept { .. }));
            black_box(d);
        });
        // 20 answers: 15 holders of the newest record, 5 of the older one
        // (each distinct byte string is verified once).
        let answers: Vec<&[u8]> = (0..20)
            .map(|i| {
                if i % 4 == 0 {
                    &held_bytes[..]
                } else {
                    &newer_bytes[..]
                }
            })
            .collect();
        let pick = micros_per_op(|_| {
            black_box(pick_newest(&key, answers.iter().copied(), NOW));
        });
        let (ikey, ibytes) = immutable(&payload[..size.min(MAX_IMMUTABLE_PAYLOAD_LEN)])?;
        let immutable_check = micros_per_op(|_| {
            black_box(verify_immutable(&ikey, &ibytes).ok());
        });
        let figures = [sign, verify, decode_verify, decide, pick, immutable_check];
        print_row(size, figures.map(|f| f.0));
        cpu_rows.push((size, figures.map(|f| f.1)));
    }
    println!("this thread's CPU time, same runs (NaN where the CPU clock is missing):");
    for (size, row) in cpu_rows {
        print_row(size, row);
    }
    Ok(())
}

fn print_row(size: usize, f: [f64; 6]) {
    println!(
        "{size:>8}  {:>8.1}  {:>8.1}  {:>14.1}  {:>14.1}  {:>14.1}  {:>10.2}",
        f[0], f[1], f[2], f[3], f[4], f[5]
    );
}
