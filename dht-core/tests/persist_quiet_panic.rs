//! A damaged data file on which redb panics is refused as `Corrupt` without a
//! panic report on stderr (the panic's message and location are in the error), while panics elsewhere still reach the hook the
//! program installed. Its own test binary: the panic hook is per process, and
//! this test must install its hook before the store wraps it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dht_core::persist::{Change, DataDir, PersistError, PersistedRecord, RecordKind, DATA_FILE};
use dht_core::{NodeId, Value};

const NOW: u64 = 1_800_000_000_000;

#[test]
fn panics_on_a_damaged_file_are_caught_without_a_report() {
    // Counts every panic the hook is shown (the test harness may run other
    // threads, but this binary has one test).
    let reported = Arc::new(AtomicUsize::new(0));
    let counter = reported.clone();
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));

    let source = tempfile::tempdir().unwrap();
    {
        let mut store = DataDir::open(source.path()).unwrap();
        let changes: Vec<Change> = (0..2000u32)
            .map(|i| Change::PutRecord {
                key: NodeId::digest(&i.to_be_bytes()),
                record: PersistedRecord {
                    value: Value::Bytes(vec![i as u8; 300]),
                    expires_at_unix_ms: NOW + 1,
                    kind: RecordKind::Held,
                },
            })
            .collect();
        store.commit(&changes).unwrap();
    }
    let full = fs::read(source.path().join(DATA_FILE)).unwrap();
    let (mut caught_panics, mut refused) = (0, 0);
    for cut in (4096..full.len()).step_by(4096) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATA_FILE), &full[..cut]).unwrap();
        match DataDir::open(dir.path()).and_then(|mut s| s.load_at(NOW)) {
            Err(PersistError::Corrupt { detail, .. }) => {
                refused += 1;
                if detail.contains("the database library failed reading it") {
                    // The report is not printed, but where it was raised is
                    // kept in the error, so a bug in there is not lost.
                    assert!(detail.contains(".rs:"), "no location: {detail}");
                    if caught_panics == 0 {
                        println!("e.g. cut at {cut}: {detail}");
                    }
                    caught_panics += 1;
                }
            }
            other => panic!("cut at {cut} of {}: {other:?}", full.len()),
        }
    }
    println!(
        "{refused} truncated copies refused as Corrupt, {caught_panics} of them by a caught \
         redb panic; panics reported: {}",
        reported.load(Ordering::SeqCst)
    );
    assert!(
        caught_panics > 0,
        "no cut made redb panic: the test shows nothing"
    );
    assert_eq!(
        reported.load(Ordering::SeqCst),
        0,
        "a caught panic was reported"
    );

    // A panic outside the store still reaches the program's hook.
    assert!(std::panic::catch_unwind(|| panic!("elsewhere")).is_err());
    assert_eq!(reported.load(Ordering::SeqCst), 1);
}
