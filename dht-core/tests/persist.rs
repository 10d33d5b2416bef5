//! The data directory in one process: every record kind and value type reads
//! back as written, wall-clock expiry holds across a reopen, and bad states
//! (a locked directory, damaged or foreign files, a newer format, a path that
//! is not a directory, a full disk) give their documented error, never a
//! panic. Crash safety under SIGKILL is in `persist_crash.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dht_core::persist::{
    Change, DataDir, PersistError, PersistedRecord, RecordKind, DATA_FILE, FORMAT_VERSION,
};
use dht_core::{Contact, NodeId, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const NOW: u64 = 1_800_000_000_000;

fn values() -> Vec<Value> {
    vec![
        Value::Int(-7),
        Value::Int(i64::MAX),
        Value::UInt(u64::MAX),
        Value::Float(3.25),
        Value::Bool(true),
        Value::Str("ünïcode ✓".into()),
        Value::Bytes(vec![0xff; 1000]),
        Value::Bytes(vec![]),
    ]
}

fn kinds() -> Vec<RecordKind> {
    vec![
        RecordKind::Held,
        RecordKind::Cached,
        RecordKind::Published {
            ttl: Duration::from_secs(86_400),
            last_published_unix_ms: NOW - 5_000,
        },
    ]
}

fn record(value: Value, kind: RecordKind, expires_at_unix_ms: u64) -> PersistedRecord {
    PersistedRecord {
        value,
        expires_at_unix_ms,
        kind,
    }
}

#[test]
fn everything_reads_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = NodeId::digest(b"me");
    let contacts = vec![
        Contact::new(NodeId::digest(b"a"), "192.0.2.1:8468".parse().unwrap()),
        Contact::new(NodeId::digest(b"b"), "[2001:db8::2]:9000".parse().unwrap()),
    ];
    let mut expected = Vec::new();
    let mut changes = vec![Change::SetNodeId(id), Change::SetContacts(contacts.clone())];
    for (i, kind) in kinds().into_iter().enumerate() {
        for (j, value) in values().into_iter().enumerate() {
            let key = NodeId::digest(format!("{i}/{j}").as_bytes());
            let r = record(value, kind.clone(), NOW + 60_000);
            changes.push(Change::PutRecord {
                key,
                record: r.clone(),
            });
            expected.push((key, r));
        }
    }
    {
        let mut store = DataDir::open(dir.path()).unwrap();
        store.commit(&changes).unwrap();
    }
    expected.sort_by_key(|(k, _)| *k);
    let mut store = DataDir::open(dir.path()).unwrap();
    let snapshot = store.load_at(NOW).unwrap();
    assert_eq!(snapshot.node_id, Some(id));
    assert_eq!(snapshot.contacts, contacts);
    assert_eq!(snapshot.records, expected);
    assert_eq!(snapshot.expired_dropped, 0);
}

#[test]
fn later_changes_replace_earlier_ones_within_and_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = DataDir::open(dir.path()).unwrap();
    let (k1, k2) = (NodeId::digest(b"1"), NodeId::digest(b"2"));
    let c = |s: &str| Contact::new(NodeId::digest(s.as_bytes()), "10.0.0.1:1".parse().unwrap());
    store
        .commit(&[
            Change::PutRecord {
                key: k1,
                record: record(Value::Int(1), RecordKind::Held, NOW + 1),
            },
            Change::PutRecord {
                key: k1,
                record: record(Value::Int(2), RecordKind::Cached, NOW + 1),
            },
            Change::PutRecord {
                key: k2,
                record: record(Value::Int(3), RecordKind::Held, NOW + 1),
            },
            Change::SetContacts(vec![c("x"), c("y"), c("z")]),
        ])
        .unwrap();
    store
        .commit(&[
            Change::RemoveRecord { key: k2 },
            Change::RemoveRecord {
                key: NodeId::digest(b"never stored"),
            },
            Change::SetContacts(vec![c("w")]),
        ])
        .unwrap();
    store.commit(&[]).unwrap();
    drop(store);
    let snapshot = DataDir::open(dir.path()).unwrap().load_at(NOW).unwrap();
    assert_eq!(
        snapshot.records,
        vec![(k1, record(Value::Int(2), RecordKind::Cached, NOW + 1))]
    );
    assert_eq!(snapshot.contacts, vec![c("w")], "contacts are replaced");
    assert_eq!(snapshot.node_id, None);
}

#[test]
fn expiry_is_wall_clock_and_holds_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let past = NodeId::digest(b"past");
    let soon = NodeId::digest(b"soon");
    let later = NodeId::digest(b"later");
    {
        let mut store = DataDir::open(dir.path()).unwrap();
        store
            .commit(&[
                Change::PutRecord {
                    key: past,
                    record: record(Value::Int(0), RecordKind::Held, NOW - 1),
                },
                Change::PutRecord {
                    key: soon,
                    record: record(Value::Int(1), kinds()[2].clone(), NOW + 60_000),
                },
                Change::PutRecord {
                    key: later,
                    record: record(Value::Int(2), RecordKind::Cached, NOW + 3_600_000),
                },
            ])
            .unwrap();
    }
    // Reopened "at NOW": only the record whose expiry passed is gone.
    let mut store = DataDir::open(dir.path()).unwrap();
    let snap = store.load_at(NOW).unwrap();
    let keys: Vec<_> = snap.records.iter().map(|(k, _)| *k).collect();
    assert_eq!(snap.expired_dropped, 1);
    assert!(!keys.contains(&past) && keys.contains(&soon) && keys.contains(&later));
    drop(store);
    // Down for 90 s: the 60 s record is gone too, and stays gone.
    let mut store = DataDir::open(dir.path()).unwrap();
    let snap = store.load_at(NOW + 90_000).unwrap();
    assert_eq!(snap.expired_dropped, 1);
    assert_eq!(snap.records.len(), 1);
    assert_eq!(snap.records[0].0, later);
    let snap = store.load_at(NOW).unwrap();
    assert_eq!(
        (snap.records.len(), snap.expired_dropped),
        (1, 0),
        "expired records were deleted from disk, not just hidden"
    );
    // load() reads the real wall clock.
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (gone, kept) = (NodeId::digest(b"gone"), NodeId::digest(b"kept"));
    store
        .commit(&[
            Change::RemoveRecord { key: later },
            Change::PutRecord {
                key: gone,
                record: record(Value::Int(3), RecordKind::Held, real_now - 1_000),
            },
            Change::PutRecord {
                key: kept,
                record: record(Value::Int(4), RecordKind::Held, real_now + 3_600_000),
            },
        ])
        .unwrap();
    let snap = store.load().unwrap();
    assert_eq!(snap.expired_dropped, 1);
    assert_eq!(snap.records.len(), 1);
    assert_eq!(snap.records[0].0, kept);
}

#[test]
fn a_saved_value_peers_now_refuse_is_dropped_at_load_not_the_store() {
    // Builds before this rule stored a map used as a map key from any peer's
    // STORE; such a data directory still opens, without that record.
    let dir = tempfile::tempdir().unwrap();
    let poisoned = NodeId::digest(b"poisoned");
    let fine = NodeId::digest(b"fine");
    let map_key = Value::Map(vec![(
        Value::Map(vec![(Value::from("a"), Value::Int(1))]),
        Value::Int(2),
    )]);
    {
        let mut store = DataDir::open(dir.path()).unwrap();
        store
            .commit(&[
                Change::PutRecord {
                    key: poisoned,
                    record: record(map_key, RecordKind::Held, NOW + 60_000),
                },
                Change::PutRecord {
                    key: fine,
                    record: record(Value::Int(1), RecordKind::Held, NOW + 60_000),
                },
            ])
            .unwrap();
    }
    let mut store = DataDir::open(dir.path()).unwrap();
    let snap = store.load_at(NOW).unwrap();
    assert_eq!(snap.refused_dropped, 1);
    assert_eq!(snap.expired_dropped, 0);
    let keys: Vec<_> = snap.records.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![fine]);
    let again = store.load_at(NOW).unwrap();
    assert_eq!(
        (again.records.len(), again.refused_dropped),
        (1, 0),
        "deleted from disk"
    );
}

#[test]
fn a_second_open_in_the_same_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let first = DataDir::open(dir.path()).unwrap();
    let err = DataDir::open(dir.path()).unwrap_err();
    assert!(matches!(err, PersistError::Locked { .. }), "{err}");
    println!("locked: {err}");
    // The holder is in this process: no other process to go looking for.
    let msg = err.to_string();
    assert!(msg.contains("already open in this process"), "{msg}");
    assert!(!msg.contains("another process"), "{msg}");
    // The same directory by another path (a symlink, `..`) is the same directory.
    let other_path = dir.path().join("sub").join("..");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let err = DataDir::open(&other_path).unwrap_err();
    assert!(err.to_string().contains("in this process"), "{err}");
    drop(first);
    DataDir::open(dir.path()).expect("the lock goes with the DataDir");
    DataDir::open(&other_path).expect("and so does its registration");
}

/// Opens `dir` and loads it; must give an error (returned for the caller to
/// inspect), never a panic.
fn open_and_load(dir: &Path) -> Result<usize, PersistError> {
    Ok(open_and_snapshot(dir)?.records.len())
}

fn open_and_snapshot(dir: &Path) -> Result<dht_core::persist::Snapshot, PersistError> {
    DataDir::open(dir)?.load_at(NOW)
}

fn store_with_records(dir: &Path, n: usize) {
    let mut store = DataDir::open(dir).unwrap();
    let changes: Vec<Change> = (0..n)
        .map(|i| Change::PutRecord {
            key: NodeId::digest(&i.to_be_bytes()),
            record: record(Value::Bytes(vec![i as u8; 300]), RecordKind::Held, NOW + 1),
        })
        .collect();
    store.commit(&changes).unwrap();
}

#[test]
fn garbage_and_truncated_files_are_refused_as_corrupt() {
    let mut rng = SmallRng::seed_from_u64(12);
    // Random bytes, long and short.
    for len in [10usize, 4096, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        fs::write(dir.path().join(DATA_FILE), &bytes).unwrap();
        let err = open_and_load(dir.path()).unwrap_err();
        assert!(matches!(err, PersistError::Corrupt { .. }), "{len}: {err}");
        println!("garbage of {len} bytes: {err}");
        assert_eq!(
            fs::read(dir.path().join(DATA_FILE)).unwrap(),
            bytes,
            "the damaged file is left as it was"
        );
    }
    // A real store cut short at several points.
    let source = tempfile::tempdir().unwrap();
    store_with_records(source.path(), 2000);
    let full = fs::read(source.path().join(DATA_FILE)).unwrap();
    for cut in [1, 100, 4096, full.len() / 2, full.len() - 1] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATA_FILE), &full[..cut]).unwrap();
        match open_and_load(dir.path()) {
            Err(PersistError::Corrupt { .. }) => {}
            other => panic!("cut at {cut} of {}: {other:?}", full.len()),
        }
    }
    println!(
        "truncated copies of a {} byte store: all Corrupt",
        full.len()
    );
}

#[test]
fn flipped_bytes_never_panic_or_load_wrong_data() {
    let source = tempfile::tempdir().unwrap();
    store_with_records(source.path(), 500);
    let full = fs::read(source.path().join(DATA_FILE)).unwrap();
    let original = open_and_snapshot(source.path()).unwrap();
    let mut rng = SmallRng::seed_from_u64(7);
    let (mut ok, mut refused) = (0, 0);
    let rounds = 200;
    for _ in 0..rounds {
        let mut bytes = full.clone();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] ^= rng.random_range(1..=255u8);
        }
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(DATA_FILE), &bytes).unwrap();
        match open_and_snapshot(dir.path()) {
            // A flip in free space or a spare page changes nothing we read.
            Ok(snapshot) => {
                assert_eq!(
                    snapshot, original,
                    "a damaged file must not load altered data"
                );
                ok += 1;
            }
            Err(e) => {
                assert!(
                    matches!(e, PersistError::Corrupt { .. }),
                    "unexpected error kind: {e}"
                );
                // Refused for good: a second start must not load whatever
                // redb's repair left behind.
                let again = open_and_snapshot(dir.path());
                assert!(
                    matches!(again, Err(PersistError::Corrupt { .. })),
                    "second open after refusal: {again:?}"
                );
                refused += 1;
            }
        }
    }
    println!("byte flips: {rounds} damaged copies, {ok} loaded intact, {refused} refused as Corrupt (and again on a second open), 0 panics escaped");
}

#[test]
fn a_foreign_redb_file_is_not_taken_for_a_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join(DATA_FILE)).unwrap();
        let write = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("other");
            let mut t = write.open_table(def).unwrap();
            t.insert("x", 1).unwrap();
        }
        write.commit().unwrap();
    }
    let err = open_and_load(dir.path()).unwrap_err();
    assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
    println!("foreign redb file: {err}");
}

/// Rewrites the format version of the store in `dir` behind DataDir's back.
fn set_format_version(dir: &Path, version: u32) {
    let db = redb::Database::open(dir.join(DATA_FILE)).unwrap();
    let write = db.begin_write().unwrap();
    {
        let def: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("kadmium_meta");
        let mut t = write.open_table(def).unwrap();
        t.insert("format_version", &version.to_be_bytes()[..])
            .unwrap();
    }
    write.commit().unwrap();
}

#[test]
fn a_newer_format_is_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    store_with_records(dir.path(), 3);
    set_format_version(dir.path(), FORMAT_VERSION + 1);
    let err = open_and_load(dir.path()).unwrap_err();
    match &err {
        PersistError::UnsupportedVersion {
            found, supported, ..
        } => assert_eq!((*found, *supported), (FORMAT_VERSION + 1, FORMAT_VERSION)),
        other => panic!("{other}"),
    }
    println!("newer format: {err}");
    // Nothing was rewritten: an older kadmium leaves a newer file alone.
    set_format_version(dir.path(), FORMAT_VERSION);
    assert_eq!(open_and_load(dir.path()).unwrap(), 3);
}

#[test]
fn a_path_that_is_not_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    for path in [file.clone(), file.join("sub")] {
        let err = DataDir::open(&path).unwrap_err();
        assert!(
            matches!(err, PersistError::NotADirectory { .. }),
            "{}: {err}",
            path.display()
        );
        println!("not a directory: {err}");
    }
    // A symbolic link to nothing says so, naming where it points.
    #[cfg(unix)]
    {
        let link = dir.path().join("link");
        // Relative: the message names it from the link's directory.
        std::os::unix::fs::symlink("nowhere", &link).unwrap();
        let err = DataDir::open(&link).unwrap_err();
        assert!(
            matches!(&err, PersistError::DanglingLink { target, .. } if *target == dir.path().join("nowhere")),
            "{err}"
        );
        println!("dangling link: {err}");
        // A loop is not "a link to nothing".
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink("loop", &looped).unwrap();
        let err = DataDir::open(&looped).unwrap_err();
        assert!(matches!(err, PersistError::LinkLoop { .. }), "{err}");
        println!("link loop: {err}");
        // And through another link (a -> b -> a), named by where it goes.
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink("b", &a).unwrap();
        std::os::unix::fs::symlink("a", &b).unwrap();
        let err = DataDir::open(&a).unwrap_err();
        assert!(
            matches!(&err, PersistError::LinkLoop { target, .. } if *target == b),
            "{err}"
        );
        println!("two-link loop: {err}");
    }
    // The data file itself replaced by a directory.
    let odd = dir.path().join("odd");
    fs::create_dir_all(odd.join(DATA_FILE)).unwrap();
    let err = DataDir::open(&odd).unwrap_err();
    println!("data file is a directory: {err}");
}

/// A tmpfs mounted for one test and unmounted when dropped (root only).
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Mount(at.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_location_gives_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(dir.path(), "ro,size=1m") else {
        println!("SKIPPED: cannot mount a read-only tmpfs here (needs root)");
        return;
    };
    let err = DataDir::open(&dir.path().join("data")).unwrap_err();
    assert!(matches!(err, PersistError::NotWritable { .. }), "{err}");
    println!("read-only: {err}");
}

#[test]
fn a_full_disk_gives_disk_full_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(dir.path(), "size=4m") else {
        println!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    // Another file takes a quarter of the disk; deleting it frees room.
    let filler = dir.path().join("filler");
    fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let data = dir.path().join("data");
    let mut store = DataDir::open(&data).unwrap();
    let put = |i: u32| Change::PutRecord {
        key: NodeId::digest(&i.to_be_bytes()),
        record: record(Value::Bytes(vec![7; 20_000]), RecordKind::Held, NOW + 1),
    };
    let mut acked = 0u32;
    let err = loop {
        match store.commit(&[put(acked)]) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the disk never filled");
    };
    assert!(matches!(err, PersistError::DiskFull { .. }), "{err}");
    println!("full disk after {acked} acknowledged commits: {err}");
    let again = store.commit(&[put(acked)]).unwrap_err();
    assert!(matches!(again, PersistError::DiskFull { .. }), "{again}");
    fs::remove_file(&filler).unwrap();
    store
        .commit(&[put(acked)])
        .expect("commits work again once there is room");
    acked += 1;
    drop(store);
    let mut store = DataDir::open(&data).unwrap();
    let snapshot = store.load_at(NOW).unwrap();
    let expected: Vec<NodeId> = {
        let mut keys: Vec<_> = (0..acked)
            .map(|i| NodeId::digest(&i.to_be_bytes()))
            .collect();
        keys.sort();
        keys
    };
    let stored: Vec<NodeId> = snapshot.records.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        stored, expected,
        "exactly the acknowledged commits are on disk"
    );
    println!("after freeing space: {acked} records on disk, 0 lost");
}

#[test]
fn a_store_marked_damaged_stays_refused() {
    // The mark DataDir writes when its integrity check at open had to roll a
    // cleanly closed file back; written directly here, as the flips that
    // cause it cannot be aimed.
    let dir = tempfile::tempdir().unwrap();
    store_with_records(dir.path(), 3);
    {
        let db = redb::Database::open(dir.path().join(DATA_FILE)).unwrap();
        let write = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &[u8]> =
                redb::TableDefinition::new("kadmium_meta");
            let mut t = write.open_table(def).unwrap();
            t.insert("damaged", &b"checksums failed"[..]).unwrap();
        }
        write.commit().unwrap();
    }
    for _ in 0..2 {
        let err = open_and_load(dir.path()).unwrap_err();
        assert!(matches!(err, PersistError::Corrupt { .. }), "{err}");
    }
}
