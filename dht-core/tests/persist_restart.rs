//! Nodes with data directories survive `kill -9`, with real processes: the
//! `persist_node` example, driven over stdin/stdout. Ten nodes put 200
//! values, are all SIGKILLed, and are started again with the same command
//! lines minus `--bootstrap`: same ids, every value found, the network
//! re-formed through the saved contacts alone. Also: a second process on a
//! directory in use and a damaged data file are refused with the documented
//! messages, and a value outlives neither its TTL nor a restart after it
//! (under an explicit clock, not a 90-second sleep). And every STORE a node
//! acknowledged to a peer is there after a SIGKILL at a random moment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, UNIX_EPOCH};

use dht_core::persist::{ClockAnchor, DataDir, PersistError, DATA_FILE};
use dht_core::{Config, Error, Node, NodeId, Protocol, PutOptions, Value};

const NODES: usize = 10;
const VALUES: usize = 200;
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The example binary, next to this test's binary. Built here (a no-op
/// when up to date): `cargo test --test persist_restart` alone does not
/// build examples, and a stale one would test old code.
fn example_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_example).clone()
}

fn build_example() -> PathBuf {
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "-p", "dht-core", "--example", "persist_node"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let status = build.status().unwrap();
    assert!(status.success(), "building the persist_node example failed");
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join("persist_node");
    assert!(
        bin.exists(),
        "{} is missing: run through `cargo test` (which builds the examples)",
        bin.display()
    );
    bin
}

struct Proc {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// The READY line's fields.
    id: String,
    contacts_at_start: usize,
}

impl Proc {
    fn start(port: u16, dir: &Path, bootstrap: Option<u16>) -> Result<Proc, String> {
        let mut cmd = Command::new(example_binary());
        cmd.args(["--port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir);
        if let Some(b) = bootstrap {
            cmd.args(["--bootstrap", &format!("127.0.0.1:{b}")]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let ready = match lines.recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let out = child.wait_with_output().unwrap();
                return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
            }
        };
        let fields: Vec<&str> = ready.split_whitespace().collect();
        assert_eq!(fields.first(), Some(&"READY"), "{ready}");
        Ok(Proc {
            id: fields[1].to_owned(),
            contacts_at_start: fields[3].parse().unwrap(),
            child,
            stdin,
            lines,
        })
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.lines
            .recv_timeout(REPLY_TIMEOUT)
            .unwrap_or_else(|_| panic!("no answer to {command:?}"))
    }

    fn contacts(&mut self) -> usize {
        let answer = self.ask("contacts");
        answer.strip_prefix("CONTACTS ").unwrap().parse().unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// Ports free right now (bound once and released), so a restarted node can
/// use the same command line.
fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

#[test]
fn ten_nodes_killed_with_sigkill_come_back_with_everything() {
    let root = tempfile::tempdir().unwrap();
    let ports = free_ports(NODES);
    let dirs: Vec<PathBuf> = (0..NODES)
        .map(|i| root.path().join(format!("n{i}")))
        .collect();
    let bootstrap_of = |i: usize| (i > 0).then_some(ports[0]);

    let mut procs: Vec<Proc> = (0..NODES)
        .map(|i| Proc::start(ports[i], &dirs[i], bootstrap_of(i)).unwrap())
        .collect();
    let ids: Vec<String> = procs.iter().map(|p| p.id.clone()).collect();

    let started = Instant::now();
    for i in 0..VALUES {
        let answer = procs[i % NODES].ask(&format!("put key-{i} value-{i}"));
        let stored: usize = answer
            .strip_prefix("PUT ")
            .unwrap_or_else(|| panic!("put {i}: {answer}"))
            .parse()
            .unwrap();
        assert!(stored > 0, "put {i} reached nobody");
    }
    let put_s = started.elapsed().as_secs_f64();
    let before: Vec<usize> = procs.iter_mut().map(|p| p.contacts()).collect();
    let held_before = copies_held(&mut procs);
    // The contact list is compared with the saved one every second while it
    // is short; give that one turn, as a node that ran a few seconds would.
    std::thread::sleep(Duration::from_millis(1500));
    for p in procs.drain(..) {
        p.kill();
    }

    let started = Instant::now();
    let mut procs: Vec<Proc> = (0..NODES)
        .map(|i| Proc::start(ports[i], &dirs[i], None).unwrap())
        .collect();
    let restart_s = started.elapsed().as_secs_f64();
    let same_ids = procs
        .iter()
        .zip(&ids)
        .filter(|(p, id)| p.id == **id)
        .count();
    let saved_contacts: Vec<usize> = procs.iter().map(|p| p.contacts_at_start).collect();

    // The network re-forms through the saved contacts only.
    let started = Instant::now();
    let mut after: Vec<usize> = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        after = procs.iter_mut().map(|p| p.contacts()).collect();
        if after.iter().all(|&c| c == NODES - 1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let reform_s = started.elapsed().as_secs_f64();

    let mut found = 0;
    let mut missing = Vec::new();
    for i in 0..VALUES {
        // Asked of another node than the one that put it.
        let asker = (i + 3) % NODES;
        let answer = procs[asker].ask(&format!("get key-{i}"));
        if answer == format!("FOUND value-{i}") {
            found += 1;
        } else {
            missing.push((i, answer));
        }
    }
    let held = copies_held(&mut procs);
    // Every node holds a copy of everything (k = 20 > 10 nodes), so the gets
    // above may be answered locally. The network itself: a value put now by
    // each node must reach the nine others, which only the saved contacts
    // can have introduced.
    let mut reached = Vec::new();
    for (i, p) in procs.iter_mut().enumerate() {
        let answer = p.ask(&format!("put after-{i} fresh-{i}"));
        reached.push(
            answer
                .strip_prefix("PUT ")
                .map_or(0, |n| n.parse().unwrap()),
        );
    }
    let mut fresh_found = 0;
    for i in 0..NODES {
        if procs[(i + 1) % NODES].ask(&format!("get after-{i}")) == format!("FOUND fresh-{i}") {
            fresh_found += 1;
        }
    }
    println!(
        "{NODES} nodes, {VALUES} values put in {put_s:.2} s; contacts before kill {before:?}; \
         after SIGKILL and restart ({restart_s:.2} s): ids unchanged {same_ids}/{NODES}, \
         contacts loaded {saved_contacts:?}, contacts after {reform_s:.1} s {after:?}, \
         values found {found}/{VALUES}, copies held {held} (before kill {held_before}); \
         new puts reached {reached:?} peers, found {fresh_found}/{NODES}"
    );
    for p in procs {
        p.kill();
    }
    assert_eq!(same_ids, NODES, "node ids changed");
    assert!(saved_contacts.iter().all(|&c| c > 0), "{saved_contacts:?}");
    assert!(
        after.iter().all(|&c| c == NODES - 1),
        "network did not re-form: {after:?}"
    );
    assert_eq!(found, VALUES, "missing: {missing:?}");
    assert_eq!(held, held_before, "acknowledged copies lost");
    assert!(reached.iter().all(|&n| n == NODES - 1), "{reached:?}");
    assert_eq!(fresh_found, NODES);
}

fn copies_held(procs: &mut [Proc]) -> usize {
    procs
        .iter_mut()
        .map(|p| {
            let answer = p.ask("stats");
            answer
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum()
}

#[test]
fn a_second_process_and_a_damaged_file_are_refused_with_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let ports = free_ports(3);
    let first = Proc::start(ports[0], &dir, None).unwrap();
    let refused = Proc::start(ports[1], &dir, None).err().expect("refused");
    println!("second process on a directory in use: {refused}");
    assert!(
        refused.contains("is in use by another process"),
        "{refused}"
    );
    first.kill();

    // Killed: no stale lock. Now damage the file.
    std::fs::write(dir.join(DATA_FILE), vec![0x5a; 10_000]).unwrap();
    let refused = Proc::start(ports[2], &dir, None).err().expect("refused");
    println!("damaged data file: {refused}");
    assert!(
        refused.contains("is damaged or is not a kadmium store"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(dir.join(DATA_FILE)).unwrap(),
        vec![0x5a; 10_000],
        "the damaged file is left as it was"
    );
}

fn loopback(dir: &Path) -> Config {
    Config::default()
        .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_data_dir(dir)
}

#[tokio::test]
async fn node_bind_reports_locked_damaged_and_unusable_directories() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let node = Node::bind(loopback(&dir)).await.unwrap();
    match Node::bind(loopback(&dir)).await {
        Err(Error::Persistence(PersistError::Locked { .. })) => {}
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a locked directory was opened twice"),
    }
    node.shutdown_and_wait().await;
    // Released at shutdown: the same directory opens again, same id.
    let again = Node::bind(loopback(&dir)).await.unwrap();
    assert_eq!(again.id(), node.id());
    again.shutdown_and_wait().await;

    std::fs::write(dir.join(DATA_FILE), b"not a database").unwrap();
    match Node::bind(loopback(&dir)).await {
        Err(e @ Error::Persistence(PersistError::Corrupt { .. })) => println!("{e}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a damaged file was opened"),
    }

    let file = root.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    match Node::bind(loopback(&file)).await {
        Err(e @ Error::Persistence(PersistError::NotADirectory { .. })) => println!("{e}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a file was taken for a directory"),
    }
}

#[tokio::test]
async fn a_put_is_on_disk_when_it_completes_and_a_restart_republishes_it() {
    let root = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
    let a = Node::bind(loopback(&a_dir)).await.unwrap();
    let b = Node::bind(loopback(&b_dir)).await.unwrap();
    b.bootstrap(&[a.local_addr()]).await.unwrap();
    let key = NodeId::digest(b"k");
    let report = b
        .put(key, Value::from("v"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(report.stored_remote, 1);
    // Read both directories while the nodes still run (a second DataDir is
    // refused, so copy the files): what completed is on disk.
    for (dir, kind) in [(&a_dir, "held"), (&b_dir, "published")] {
        let copy = root.path().join(format!("copy-{kind}"));
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(dir.join(DATA_FILE), copy.join(DATA_FILE)).unwrap();
        let snapshot = DataDir::open(&copy).unwrap().load().unwrap();
        let record = snapshot.records.iter().find(|(k, _)| *k == key);
        assert!(record.is_some(), "{kind} copy not on disk");
    }
    let b_id = b.id();
    b.shutdown_and_wait().await;
    a.shutdown_and_wait().await;
    let b = Node::bind(loopback(&b_dir)).await.unwrap();
    assert_eq!(b.id(), b_id);
    assert_eq!(b.local_value(&key), Some(Value::from("v")));
    b.shutdown_and_wait().await;
}

#[tokio::test]
async fn contacts_learned_just_before_shutdown_are_saved() {
    // Contacts are compared with the saved list at most once a second (every
    // 30 s once k are saved); a node stopped sooner still keeps them.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("short-lived");
    let peers = [
        Node::bind(loopback(&root.path().join("p1"))).await.unwrap(),
        Node::bind(loopback(&root.path().join("p2"))).await.unwrap(),
    ];
    let node = Node::bind(loopback(&dir)).await.unwrap();
    node.bootstrap(&[peers[0].local_addr(), peers[1].local_addr()])
        .await
        .unwrap();
    assert_eq!(node.stats().contacts, 2);
    node.shutdown_and_wait().await;
    let snapshot = DataDir::open(&dir).unwrap().load().unwrap();
    let mut saved: Vec<_> = snapshot.contacts.iter().map(|c| c.id).collect();
    let mut expected: Vec<_> = peers.iter().map(|p| p.id()).collect();
    saved.sort();
    expected.sort();
    assert_eq!(saved, expected);
    for p in peers {
        p.shutdown_and_wait().await;
    }
}

#[test]
fn a_value_with_ttl_60s_is_gone_after_90s_down() {
    // The node's clocks are explicit here: run 1 anchors at wall time T0,
    // the restart reads the store at T0 + 90 s (DataDir::load_at) and anchors
    // there; no sleeping.
    const T0: u64 = 1_700_000_000_000;
    let root = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let anchor = ClockAnchor::new(now, UNIX_EPOCH + Duration::from_millis(T0));
    let ttl = |secs| PutOptions::default().with_ttl(Duration::from_secs(secs));
    let (short, long) = (NodeId::digest(b"60s"), NodeId::digest(b"1h"));
    let id = {
        let mut dir = DataDir::open(root.path()).unwrap();
        let snapshot = dir.load_at(T0).unwrap();
        let mut p = Protocol::restore(Config::default(), &snapshot, &anchor, now).unwrap();
        p.store_local(now, short, Value::from("short"), ttl(60))
            .unwrap();
        p.store_local(now, long, Value::from("long"), ttl(3600))
            .unwrap();
        let mut changes = Vec::new();
        p.take_persist_changes(now, &anchor, &mut changes);
        dir.commit(&changes).unwrap();
        p.id()
    };
    for down_s in [30u64, 90] {
        let wall = T0 + down_s * 1000;
        let mut dir = DataDir::open(root.path()).unwrap();
        let snapshot = dir.load_at(wall).unwrap();
        let restart = Instant::now();
        let anchor = ClockAnchor::new(restart, UNIX_EPOCH + Duration::from_millis(wall));
        let p = Protocol::restore(Config::default(), &snapshot, &anchor, restart).unwrap();
        let short_left = p
            .local_record(&short, restart)
            .map(|r| r.expires_at - restart);
        println!(
            "down {down_s} s: 60 s value {:?} (left {short_left:?}), 1 h value {:?}, \
             dropped at load {}",
            p.local_value(&short, restart),
            p.local_value(&long, restart),
            snapshot.expired_dropped
        );
        assert_eq!(p.id(), id);
        assert_eq!(p.local_value(&long, restart), Some(Value::from("long")));
        if down_s < 60 {
            assert_eq!(short_left, Some(Duration::from_secs(30)));
        } else {
            assert_eq!(p.local_value(&short, restart), None);
            assert_eq!(snapshot.expired_dropped, 1);
        }
    }
}

/// A tmpfs mounted for one test and unmounted when dropped (root only).
struct Mount(PathBuf);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_full_disk_acknowledges_nothing_until_it_can_save() {
    let root = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(root.path(), "size=4m") else {
        println!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let filler = root.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).unwrap();
    let fast = |c: Config| {
        // 20 KB values fill the small disk fast; a kadmium-only network may
        // raise the value limit past what Python peers carry.
        c.with_rpc_timeout(Duration::from_millis(300))
            .with_operation_timeout(Duration::from_secs(2))
            .with_max_value_size(60_000)
    };
    let a_dir = root.path().join("a");
    let a = Node::bind(fast(loopback(&a_dir))).await.unwrap();
    let b = Node::bind(fast(
        Config::default().with_bind(SocketAddr::from(([127, 0, 0, 1], 0))),
    ))
    .await
    .unwrap();
    b.bootstrap(&[a.local_addr()]).await.unwrap();
    let value = |i: u32| Value::Bytes(vec![(i % 251) as u8; 20_000]);
    let key = |i: u32| NodeId::digest(format!("full-{i}").as_bytes());

    // B stores at A until A stops acknowledging.
    let mut acked = Vec::new();
    let mut i = 0;
    loop {
        let report = b
            .put(key(i), value(i), PutOptions::default())
            .await
            .unwrap();
        if report.stored_remote == 0 {
            break;
        }
        acked.push(i);
        i += 1;
        assert!(i < 1000, "the disk never filled");
    }
    let refused_put = a.put(key(9999), value(9999), PutOptions::default()).await;
    println!(
        "disk full after {} acknowledged STOREs; A's own put: {:?}",
        acked.len(),
        refused_put.as_ref().map(|r| r.stored_remote)
    );
    assert!(
        matches!(
            refused_put,
            Err(Error::Persistence(PersistError::DiskFull { .. }))
        ),
        "{refused_put:?}"
    );

    // Room again: A saves again, and its own put completes (after its
    // publisher copy is committed). (B keeps the node that went silent out
    // of its table for a while, so A's own put is the probe.)
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = None;
    for attempt in 0..20u32 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = 5000 + attempt;
        if a.put(key(n), value(n), PutOptions::default()).await.is_ok() {
            acked.push(n);
            recovered = Some(attempt);
            break;
        }
    }
    println!("space freed: A's put succeeded after {recovered:?} half-second waits");
    assert!(recovered.is_some(), "A never saved again");
    a.shutdown_and_wait().await;
    b.shutdown_and_wait().await;

    let a = Node::bind(loopback(&a_dir)).await.unwrap();
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|&i| a.local_value(&key(i)) != Some(value(i)))
        .collect();
    println!(
        "after freeing space and a restart: {} acknowledged, {} lost",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{lost:?}");
    a.shutdown_and_wait().await;
}

/// The driver's acknowledgement rule under SIGKILL: a peer sends STOREs
/// (raw datagrams, 64 in flight) at a node process with a data directory and
/// records every STORE answered `true`; the node is SIGKILLed at a seeded
/// random moment while STOREs are in flight, started again on the same
/// directory, and must hold every acknowledged value. Rounds continue on the
/// same directory, so later rounds also kill during restart and recovery.
#[test]
fn every_store_acknowledged_before_a_sigkill_is_there_after_it() {
    use dht_core::wire::{self, Request};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const ROUNDS: usize = 6;
    const IN_FLIGHT: usize = 64;
    // A round ends at its kill time or after this many STOREs, whichever
    // comes first, still with IN_FLIGHT unanswered. All rounds together stay
    // under the node's default cap of 100,000 values: past it a node makes
    // room by evicting the values farthest from its id (by design), which
    // this test would count as lost. A fast machine acknowledged 101,105.
    const STORES_PER_ROUND: usize = 15_000;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let sender = NodeId::digest(b"the storing peer");
    let mut acknowledged: Vec<String> = Vec::new();
    let mut next = 0usize;
    for round in 0..ROUNDS {
        let port = free_ports(1)[0];
        let mut node = Proc::start(port, &dir, None).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        // Every value acknowledged in earlier rounds survived their kills.
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|k| !node.ask(&format!("local {k}")).starts_with("FOUND"))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged values lost, the first: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        let kill_after = Duration::from_millis(rng.random_range(50..600));
        let started = Instant::now();
        let mut pending: std::collections::HashMap<[u8; 20], String> = Default::default();
        let mut acked_this_round = 0;
        let mut buf = [0u8; 2048];
        let mut sent_this_round = 0;
        while started.elapsed() < kill_after && sent_this_round < STORES_PER_ROUND {
            while pending.len() < IN_FLIGHT {
                sent_this_round += 1;
                let key = format!("ack-{next}");
                next += 1;
                let id = wire::kadmium_id(3600, rng.random());
                let store = Request::Store {
                    sender,
                    key: NodeId::digest(key.as_bytes()),
                    value: Value::from(key.as_str()),
                };
                peer.send_to(&wire::encode_request(&id, &store), addr)
                    .unwrap();
                pending.insert(id, key);
            }
            if let Ok((n, _)) = peer.recv_from(&mut buf) {
                if let Some((id, stored)) = store_answer(&buf[..n]) {
                    if let Some(key) = pending.remove(&id) {
                        if stored {
                            acknowledged.push(key);
                            acked_this_round += 1;
                        }
                    }
                }
            }
        }
        // Killed with STOREs in flight; answers that arrive now count too
        // (they were sent before the kill).
        let killed_after = started.elapsed();
        node.kill();
        while let Ok((n, _)) = peer.recv_from(&mut buf) {
            if let Some((id, true)) = store_answer(&buf[..n]) {
                if let Some(key) = pending.remove(&id) {
                    acknowledged.push(key);
                    acked_this_round += 1;
                }
            }
        }
        println!(
            "round {round}: killed after {killed_after:?} with {} STOREs unanswered; \
             {acked_this_round} acknowledged this round, {} in all",
            pending.len(),
            acknowledged.len()
        );
    }
    let mut node = Proc::start(free_ports(1)[0], &dir, None).unwrap();
    let lost = acknowledged
        .iter()
        .filter(|k| !node.ask(&format!("local {k}")).starts_with("FOUND"))
        .count();
    println!(
        "{} STOREs acknowledged over {ROUNDS} SIGKILLs, {lost} lost",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 200,
        "too few STOREs were acknowledged to tell"
    );
    assert_eq!(lost, 0);
    node.kill();
}

/// The message id and verdict of a STORE answer (kadmium peers' answers
/// carry the observed-address trailer; the decoder checks and drops it).
fn store_answer(datagram: &[u8]) -> Option<([u8; 20], bool)> {
    use dht_core::wire::{self, Response, RESPONSE};
    let packet = wire::split_packet(datagram).ok()?;
    if packet.kind != RESPONSE {
        return None;
    }
    match wire::decode_response(wire::RpcKind::Store, packet.body).ok()? {
        Response::Store(stored) => Some((packet.id, stored)),
        _ => None,
    }
}
