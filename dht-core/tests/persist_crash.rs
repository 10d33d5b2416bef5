//! Crash safety with real processes: a writer process commits batches in a
//! loop and prints `ACKED n` after each commit returns; it is killed with
//! SIGKILL at seeded random moments (during start-up and recovery too), and
//! the reopened store must hold exactly the state of the last acknowledged
//! batch, or of the one after it (committed, killed before printing): no
//! acknowledged change lost, no batch half applied. A second process is
//! locked out of a directory in use, and a killed holder leaves no stale lock.
//!
//! The child processes are this test binary run again with `--ignored --exact
//! child` and the role in an environment variable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::env;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use dht_core::persist::{Change, DataDir, PersistError, PersistedRecord, RecordKind, Snapshot};
use dht_core::{Contact, NodeId, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const ROLE: &str = "KADMIUM_PERSIST_TEST_ROLE";
const DIR: &str = "KADMIUM_PERSIST_TEST_DIR";
/// Far enough ahead that no record expires during the test.
const EXPIRES: u64 = 4_000_000_000_000;

#[test]
#[ignore = "child process of the tests below; they start it"]
fn child() {
    let dir = env::var(DIR).expect("started by a test");
    match env::var(ROLE).as_deref() {
        Ok("writer") => writer(Path::new(&dir)),
        Ok("holder") => holder(Path::new(&dir)),
        other => panic!("unknown role {other:?}"),
    }
}

fn spawn(role: &str, dir: &Path) -> Child {
    Command::new(env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(ROLE, role)
        .env(DIR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

// ------------------------------------------------------------ the workload

fn key(batch: u64, j: u64) -> NodeId {
    NodeId::digest(format!("{batch}/{j}").as_bytes())
}

fn counter_key() -> NodeId {
    NodeId::digest(b"counter")
}

fn batch_size(batch: u64) -> u64 {
    if batch % 10 == 9 {
        500
    } else {
        1 + (batch * 7) % 50
    }
}

fn record(batch: u64, j: u64) -> PersistedRecord {
    let len = 1 + ((batch * 31 + j * 17) % 400) as usize;
    let kind = match j % 3 {
        0 => RecordKind::Held,
        1 => RecordKind::Cached,
        _ => RecordKind::Published {
            ttl: Duration::from_secs(batch),
            last_published_unix_ms: j,
        },
    };
    PersistedRecord {
        value: Value::Bytes(vec![(batch ^ j) as u8; len]),
        expires_at_unix_ms: EXPIRES,
        kind,
    }
}

fn contacts(batch: u64) -> Vec<Contact> {
    (0..batch % 5)
        .map(|i| {
            let addr = if i % 2 == 0 {
                format!("10.0.{}.{i}:{}", batch % 256, 1000 + i)
            } else {
                format!("[2001:db8::{i}]:{}", batch % 60_000)
            };
            Contact::new(key(batch, 1000 + i), addr.parse().unwrap())
        })
        .collect()
}

/// Batch `n`: puts its own records, removes the even ones of batch `n - 2`,
/// replaces the contacts, and moves the counter to `n`.
fn batch(n: u64) -> Vec<Change> {
    let mut changes = Vec::new();
    if n == 0 {
        changes.push(Change::SetNodeId(NodeId::digest(b"writer")));
    }
    for j in 0..batch_size(n) {
        changes.push(Change::PutRecord {
            key: key(n, j),
            record: record(n, j),
        });
    }
    if n >= 2 {
        for j in (0..batch_size(n - 2)).step_by(2) {
            changes.push(Change::RemoveRecord { key: key(n - 2, j) });
        }
    }
    changes.push(Change::SetContacts(contacts(n)));
    changes.push(Change::PutRecord {
        key: counter_key(),
        record: PersistedRecord {
            value: Value::Int(n as i64),
            expires_at_unix_ms: EXPIRES,
            kind: RecordKind::Held,
        },
    });
    changes
}

/// The whole store after batches `0..=last`.
fn expected_after(last: u64) -> Snapshot {
    let mut records = Vec::new();
    for m in 0..=last {
        for j in 0..batch_size(m) {
            if j % 2 == 0 && m + 2 <= last {
                continue;
            }
            records.push((key(m, j), record(m, j)));
        }
    }
    records.push((
        counter_key(),
        PersistedRecord {
            value: Value::Int(last as i64),
            expires_at_unix_ms: EXPIRES,
            kind: RecordKind::Held,
        },
    ));
    records.sort_by_key(|(k, _)| *k);
    Snapshot {
        node_id: Some(NodeId::digest(b"writer")),
        contacts: contacts(last),
        records,
        expired_dropped: 0,
        refused_dropped: 0,
    }
}

fn last_batch(snapshot: &Snapshot) -> Option<u64> {
    snapshot.records.iter().find_map(|(k, r)| match r.value {
        Value::Int(n) if *k == counter_key() => Some(n as u64),
        _ => None,
    })
}

fn writer(dir: &Path) {
    let mut store = DataDir::open(dir).unwrap();
    let snapshot = store.load().unwrap();
    let mut next = last_batch(&snapshot).map_or(0, |n| n + 1);
    loop {
        store.commit(&batch(next)).unwrap();
        println!("ACKED {next}");
        next += 1;
    }
}

fn holder(dir: &Path) {
    let _store = DataDir::open(dir).unwrap();
    println!("HOLDING");
    // Hold the lock until the test closes stdin or kills this process.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn acked(line: &str) -> Option<u64> {
    line.rsplit("ACKED ").next()?.trim().parse().ok()
}

// ------------------------------------------------------------ the tests

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    // KADMIUM_CRASH_SEED=n replays another sequence of kill moments.
    let seed = env::var("KADMIUM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = SmallRng::seed_from_u64(seed);
    let rounds = 24;
    let (mut acked_batches, mut acked_changes, mut unacked_found) = (0u64, 0u64, 0u32);
    let mut last_acked: Option<u64> = None;
    let started = Instant::now();
    for round in 0..rounds {
        let before = last_acked;
        let mut note = |line: std::io::Result<String>| {
            if let Some(n) = acked(&line.unwrap()) {
                last_acked = Some(last_acked.map_or(n, |m: u64| m.max(n)));
                return true;
            }
            false
        };
        let mut child = spawn("writer", dir.path());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Some rounds die during start-up or crash recovery, before any commit.
        let wait_for = rng.random_range(0..30u32);
        if wait_for == 0 {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        }
        let mut seen = 0;
        while seen < wait_for {
            if note(lines.next().expect("writer died on its own")) {
                seen += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The rest of what it printed before dying: acknowledged batches too.
        for line in lines {
            note(line);
        }
        let snapshot = DataDir::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: store does not reopen: {e}"))
            .load()
            .unwrap();
        let on_disk = last_batch(&snapshot);
        match (last_acked, on_disk) {
            (None, None) => {}
            (Some(a), Some(d)) if d == a => {}
            // Committed, killed before it could print: allowed, one batch.
            (a, Some(d)) if a.map_or(0, |a| a + 1) == d => unacked_found += 1,
            (a, d) => panic!("round {round}: last acknowledged {a:?}, on disk {d:?}"),
        }
        if let Some(d) = on_disk {
            assert!(
                snapshot == expected_after(d),
                "round {round}: store differs from the state after batch {d}"
            );
            // The next writer continues after it; count it as acknowledged.
            last_acked = Some(d);
        }
        let first_new = before.map_or(0, |b| b + 1);
        if let Some(last) = last_acked {
            for n in first_new..=last {
                acked_batches += 1;
                acked_changes += batch(n).len() as u64;
            }
        }
    }
    println!(
        "crash test (seed {seed}): {rounds} SIGKILL rounds, {acked_batches} batches ({acked_changes} \
         changes) acknowledged and found intact, {unacked_found} of them committed but killed \
         before printing, lost = 0, half-applied = 0, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(acked_batches > rounds as u64, "the writer made progress");
}

fn wait_for_line(stdout: ChildStdout, want: &str) {
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("child died").unwrap();
        if line.contains(want) {
            return;
        }
    }
}

#[test]
fn a_second_process_is_locked_out_and_a_killed_holder_leaves_no_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = spawn("holder", dir.path());
    wait_for_line(holder.stdout.take().unwrap(), "HOLDING");
    let err = DataDir::open(dir.path()).unwrap_err();
    assert!(matches!(err, PersistError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    println!("while another process holds it: {err}");
    holder.kill().unwrap(); // SIGKILL: no chance to clean up
    holder.wait().unwrap();
    DataDir::open(dir.path()).expect("the OS released the dead holder's lock");
    println!("after SIGKILL of the holder: opens");
}
