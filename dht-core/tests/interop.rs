#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Interop with the pure-Python `kademlia` 2.2.3 package, in both directions,
//! on loopback.
//!
//! The Python nodes run in one child process, `tests/interop/py_peer.py`,
//! driven by JSON lines (one command, one reply). The interpreter is
//! `$KADMIUM_PYTHON` (the Makefile exports the venv's python), else
//! `python3`. Without `kademlia==2.2.3` these tests fail with a message saying
//! how to install it: interop is a promise of the crate, so it must not be
//! skipped silently.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_core::{Config, Node, NodeId, PutOptions, Value};
use serde_json::{json, Value as Json};
use tokio::sync::mpsc;

/// Short, so that a kadmium node never waits long on a slow or dead peer.
const RPC_TIMEOUT: Duration = Duration::from_millis(500);
/// Upper bound for one py_peer command (a Python lookup that meets a dead
/// peer waits rpcudp's fixed 5 s per round).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for a whole test, so that a hang fails instead of blocking CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

fn python() -> String {
    std::env::var("KADMIUM_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_owned())
}

fn py_peer_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/py_peer.py")
}

/// The child process hosting the Python nodes.
struct PyPeer {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
    next_id: u64,
}

/// A node as reported by Python: id and UDP address.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PyNode {
    id: NodeId,
    addr: SocketAddr,
}

impl PyPeer {
    fn spawn() -> PyPeer {
        let py = python();
        let probe = Command::new(&py)
            .args([
                "-c",
                "import kademlia.network, sys; print(kademlia.__version__); \
                 sys.exit(0 if kademlia.__version__ == '2.2.3' else 4)",
            ])
            .output();
        match probe {
            Err(e) => panic!(
                "interop tests need a Python interpreter with kademlia==2.2.3, but {py:?} \
                 could not be started ({e}). Run `make setup` and `make test` (the Makefile \
                 exports KADMIUM_PYTHON=.venv/bin/python), or set KADMIUM_PYTHON."
            ),
            Ok(out) if !out.status.success() => panic!(
                "interop tests need the Python package kademlia==2.2.3, but `{py} -c 'import \
                 kademlia'` failed ({}; stdout {:?}): {}\nRun `make setup` and `make test` (the \
                 Makefile exports KADMIUM_PYTHON=.venv/bin/python), or set KADMIUM_PYTHON to a \
                 python that has kademlia==2.2.3 installed.",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(_) => {}
        }

        let script = py_peer_script();
        let mut child = Command::new(&py)
            .arg(&script)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {py} {}: {e}", script.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();

        let (tx, replies) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Keep the Python logs for failure messages instead of interleaving
        // them with the test output.
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        PyPeer {
            child,
            stdin,
            replies,
            stderr,
            next_id: 0,
        }
    }

    fn stderr_tail(&self) -> String {
        let log = self.stderr.lock().unwrap();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }

    /// Send one command, return its `result`; panic on an error reply.
    async fn request(&mut self, mut cmd: Json) -> Json {
        self.next_id += 1;
        let id = self.next_id;
        cmd["id"] = json!(id);
        let line = format!("{cmd}\n");
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| {
                panic!(
                    "py_peer stdin closed ({e}); stderr:\n{}",
                    self.stderr_tail()
                )
            });
        let reply = match tokio::time::timeout(COMMAND_TIMEOUT, self.replies.recv()).await {
            Err(_) => panic!(
                "py_peer did not answer {cmd} within {COMMAND_TIMEOUT:?}; stderr:\n{}",
                self.stderr_tail()
            ),
            Ok(None) => {
                let status = self.child.try_wait();
                panic!(
                    "py_peer exited ({status:?}) before answering {cmd}; stderr:\n{}",
                    self.stderr_tail()
                )
            }
            Ok(Some(reply)) => reply,
        };
        let reply: Json = serde_json::from_str(&reply)
            .unwrap_or_else(|e| panic!("py_peer sent a bad line {reply:?}: {e}"));
        assert_eq!(
            reply["id"],
            json!(id),
            "py_peer answered out of order: {reply}"
        );
        if reply["ok"] != json!(true) {
            panic!(
                "py_peer command {cmd} failed: {}; stderr:\n{}",
                reply["error"],
                self.stderr_tail()
            );
        }
        reply["result"].clone()
    }

    async fn start(&mut self, count: usize, ksize: usize) -> Vec<PyNode> {
        let result = self
            .request(json!({"cmd": "start", "count": count, "host": "127.0.0.1", "ksize": ksize}))
            .await;
        let nodes: Vec<PyNode> = result
            .as_array()
            .unwrap_or_else(|| panic!("start: expected a list, got {result}"))
            .iter()
            .map(|n| PyNode {
                id: NodeId::from_hex(n["id"].as_str().unwrap()).unwrap(),
                addr: SocketAddr::from(([127, 0, 0, 1], n["port"].as_u64().unwrap() as u16)),
            })
            .collect();
        assert_eq!(nodes.len(), count, "start: {result}");
        assert!(
            nodes.iter().all(|n| n.addr.port() != 0),
            "start reported port 0: {result}"
        );
        nodes
    }

    async fn bootstrap(&mut self, node: usize, addrs: &[SocketAddr]) -> Vec<PyNode> {
        let addrs: Vec<Json> = addrs
            .iter()
            .map(|a| json!([a.ip().to_string(), a.port()]))
            .collect();
        let result = self
            .request(json!({"cmd": "bootstrap", "node": node, "addrs": addrs}))
            .await;
        triples(&result)
    }

    async fn routing(&mut self, node: usize) -> Vec<PyNode> {
        let result = self.request(json!({"cmd": "routing", "node": node})).await;
        triples(&result)
    }

    async fn set(&mut self, node: usize, key: &str, value: &Value) -> bool {
        let result = self
            .request(json!({"cmd": "set", "node": node, "key": key, "value": value_to_json(value)}))
            .await;
        result
            .as_bool()
            .unwrap_or_else(|| panic!("set: expected a bool, got {result}"))
    }

    async fn get(&mut self, node: usize, key: &str) -> Option<Value> {
        let result = self
            .request(json!({"cmd": "get", "node": node, "key": key}))
            .await;
        value_from_json(&result)
    }

    /// The value the node holds itself (its storage only, no lookup).
    async fn local(&mut self, node: usize, key: &str) -> Option<Value> {
        let result = self
            .request(json!({"cmd": "local", "node": node, "key": key}))
            .await;
        value_from_json(&result)
    }

    async fn set_hex(&mut self, node: usize, key: &NodeId, value: &[u8]) -> bool {
        let cmd =
            json!({"cmd": "set_hex", "node": node, "key": key.to_hex(), "value": to_hex(value)});
        self.request(cmd).await.as_bool().unwrap_or(false)
    }

    async fn get_hex(&mut self, node: usize, key: &NodeId) -> Option<Value> {
        let result = self
            .request(json!({"cmd": "get_hex", "node": node, "key": key.to_hex()}))
            .await;
        value_from_json(&result)
    }

    async fn local_hex(&mut self, node: usize, key: &NodeId) -> Option<Value> {
        let result = self
            .request(json!({"cmd": "local_hex", "node": node, "key": key.to_hex()}))
            .await;
        value_from_json(&result)
    }

    /// Put `value` straight into one Python node's storage (a lying holder).
    async fn plant_hex(&mut self, node: usize, key: &NodeId, value: &[u8]) {
        let cmd =
            json!({"cmd": "plant_hex", "node": node, "key": key.to_hex(), "value": to_hex(value)});
        self.request(cmd).await;
    }

    async fn stop(mut self) {
        self.request(json!({"cmd": "stop"})).await;
        // Drop kills the process if it has not exited by itself.
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(100));
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `[[id_hex, ip, port], ...]` → nodes.
fn triples(result: &Json) -> Vec<PyNode> {
    result
        .as_array()
        .unwrap_or_else(|| panic!("expected a list of [id, ip, port], got {result}"))
        .iter()
        .map(|t| {
            let id =
                NodeId::from_hex(t[0].as_str().unwrap()).unwrap_or_else(|| panic!("bad id in {t}"));
            let ip = t[1]
                .as_str()
                .unwrap()
                .parse()
                .unwrap_or_else(|e| panic!("bad ip in {t}: {e}"));
            PyNode {
                id,
                addr: SocketAddr::new(ip, t[2].as_u64().unwrap() as u16),
            }
        })
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The typed JSON form py_peer uses: `{"t": python type, "v": value}`.
fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Int(i) => json!({"t": "int", "v": i}),
        Value::UInt(u) => json!({"t": "int", "v": u}),
        Value::Float(f) => json!({"t": "float", "v": f}),
        Value::Bool(b) => json!({"t": "bool", "v": b}),
        Value::Str(s) => json!({"t": "str", "v": s}),
        Value::Bytes(b) => json!({"t": "bytes", "v": to_hex(b)}),
        // Lists and maps cross languages in tests/python (test_interop.py).
        Value::Nil | Value::List(_) | Value::Map(_) => {
            panic!("py_peer's typed JSON carries scalars only: {value:?}")
        }
    }
}

fn value_from_json(j: &Json) -> Option<Value> {
    if j.is_null() || j["t"] == json!("none") {
        return None;
    }
    let v = &j["v"];
    let value = match j["t"].as_str() {
        Some("int") => match (v.as_i64(), v.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => panic!("int out of the 64-bit range: {j}"),
        },
        Some("float") => Value::Float(v.as_f64().unwrap_or_else(|| panic!("bad float {j}"))),
        Some("bool") => Value::Bool(v.as_bool().unwrap_or_else(|| panic!("bad bool {j}"))),
        Some("str") => Value::Str(
            v.as_str()
                .unwrap_or_else(|| panic!("bad str {j}"))
                .to_owned(),
        ),
        Some("bytes") => Value::Bytes(from_hex(
            v.as_str().unwrap_or_else(|| panic!("bad bytes {j}")),
        )),
        _ => panic!("unknown typed value {j}"),
    };
    Some(value)
}

/// One value of every type Python can put, with edge cases of each.
fn typed_values() -> Vec<(&'static str, Value)> {
    vec![
        ("int", Value::Int(42)),
        ("zero", Value::Int(0)),
        ("negative-int", Value::Int(-1_234_567_890_123)),
        ("i64-min", Value::Int(i64::MIN)),
        ("i64-max", Value::Int(i64::MAX)),
        // Above 2**63: travels as msgpack uint64, decodes as UInt.
        ("uint", Value::UInt((1u64 << 63) + 12_345)),
        ("u64-max", Value::UInt(u64::MAX)),
        ("float", Value::Float(std::f64::consts::PI)),
        ("small-float", Value::Float(-2.5e-7)),
        ("integral-float", Value::Float(3.0)),
        ("true", Value::Bool(true)),
        ("false", Value::Bool(false)),
        ("str", Value::Str("kadmium ✓ — héllo, 世界 🦀".to_owned())),
        ("empty-str", Value::Str(String::new())),
        ("digit-str", Value::Str("12".to_owned())),
        ("bytes", Value::Bytes(vec![0, 1, 2, 0x7f, 0x80, 0xfe, 0xff])),
        ("utf8-bytes", Value::Bytes("not a str".as_bytes().to_vec())),
    ]
}

/// Every node of a mixed network as (id, address).
fn known_nodes(pys: &[PyNode], kads: &[Node]) -> Vec<PyNode> {
    let kads = kads.iter().map(|k| PyNode {
        id: k.id(),
        addr: k.local_addr(),
    });
    pys.iter().copied().chain(kads).collect()
}

async fn kad_node(k: usize, seed: u64) -> Node {
    let config = Config::default()
        .with_bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .with_k(k)
        .with_rpc_timeout(RPC_TIMEOUT)
        .with_rng_seed(seed);
    Node::bind(config)
        .await
        .expect("bind a kadmium node on 127.0.0.1:0")
}

fn key_id(key: &str) -> NodeId {
    // kademlia.utils.digest of a str: SHA-1 of its UTF-8 bytes.
    NodeId::digest(key.as_bytes())
}

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("test did not finish within {TEST_TIMEOUT:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_both_directions() {
    bounded(async {
        let mut py = PyPeer::spawn();
        let pys = py.start(2, 20).await;

        // kadmium → Python: a kadmium node joins through a Python node.
        let k0 = kad_node(20, 1).await;
        let found = k0
            .bootstrap(&[pys[0].addr])
            .await
            .expect("kadmium bootstrap from Python");
        assert!(
            found
                .iter()
                .any(|c| c.id == pys[0].id && c.addr == pys[0].addr),
            "kadmium bootstrap from Python node {:?} returned {found:?}",
            pys[0]
        );
        assert!(
            k0.contacts()
                .iter()
                .any(|c| c.id == pys[0].id && c.addr == pys[0].addr),
            "the Python node is not in the kadmium routing table: {:?}",
            k0.contacts()
        );
        let py0_table = py.routing(0).await;
        assert!(
            py0_table
                .iter()
                .any(|n| n.id == k0.id() && n.addr == k0.local_addr()),
            "the kadmium node {} at {} is not in the Python routing table: {py0_table:?}",
            k0.id(),
            k0.local_addr()
        );

        // Python → kadmium: a Python node joins through the kadmium node and
        // learns the first Python node from kadmium's find_node reply.
        let found = py.bootstrap(1, &[k0.local_addr()]).await;
        assert!(
            !found.is_empty(),
            "Python bootstrap from kadmium found nobody"
        );
        assert!(
            found
                .iter()
                .any(|n| n.id == k0.id() && n.addr == k0.local_addr()),
            "Python bootstrap from kadmium {} at {} returned {found:?}",
            k0.id(),
            k0.local_addr()
        );
        assert!(
            found
                .iter()
                .any(|n| n.id == pys[0].id && n.addr == pys[0].addr),
            "Python bootstrap via kadmium did not find {:?} (kadmium's find_node reply): {found:?}",
            pys[0]
        );
        assert!(
            k0.contacts()
                .iter()
                .any(|c| c.id == pys[1].id && c.addr == pys[1].addr),
            "the Python node that bootstrapped from kadmium is not in its table: {:?}",
            k0.contacts()
        );

        // A second kadmium node learns the first one from a Python find_node reply.
        let k1 = kad_node(20, 2).await;
        let found = k1
            .bootstrap(&[pys[1].addr])
            .await
            .expect("kadmium bootstrap from Python");
        for (what, id, addr) in [
            ("python 1", pys[1].id, pys[1].addr),
            ("python 0", pys[0].id, pys[0].addr),
            ("kadmium 0", k0.id(), k0.local_addr()),
        ] {
            assert!(
                found.iter().any(|c| c.id == id && c.addr == addr),
                "kadmium bootstrap via Python did not find {what} ({id} at {addr}): {found:?}"
            );
        }

        k0.shutdown();
        k1.shutdown();
        py.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_network_values_keep_their_type() {
    bounded(async {
        // k = 8 in a 16-node network: a value lives on about half of the
        // nodes, so most reads have to find it through the other side's nodes.
        const K: usize = 8;
        const PY_NODES: usize = 6;
        const KAD_NODES: usize = 10;
        const READERS: usize = 4;

        let mut py = PyPeer::spawn();
        let pys = py.start(PY_NODES, K).await;
        for i in 1..PY_NODES {
            let found = py.bootstrap(i, &[pys[0].addr]).await;
            assert!(!found.is_empty(), "Python node {i} found nobody");
        }
        let mut kads: Vec<Node> = Vec::new();
        for i in 0..KAD_NODES {
            let node = kad_node(K, 100 + i as u64).await;
            let seeds = match kads.first() {
                None => vec![pys[0].addr],
                Some(first) => vec![first.local_addr(), pys[i % PY_NODES].addr],
            };
            let found = node.bootstrap(&seeds).await.expect("kadmium bootstrap");
            assert!(!found.is_empty(), "kadmium node {i} found nobody from {seeds:?}");
            kads.push(node);
            // Every contact found is a real node of the network at its real address.
            let known = known_nodes(&pys, &kads);
            for c in &found {
                assert!(
                    known.contains(&PyNode { id: c.id, addr: c.addr }),
                    "kadmium node {i} bootstrap returned an unknown contact {c:?}"
                );
            }
        }
        // Python nodes also join through kadmium nodes, so both sides know each other.
        let known = known_nodes(&pys, &kads);
        for (i, kad) in kads.iter().enumerate().take(PY_NODES) {
            let found = py.bootstrap(i, &[kad.local_addr()]).await;
            // The k closest to the Python node's id need not include the seed,
            // but there are k of them and each is a real node at its real address.
            assert_eq!(
                found.len(),
                K,
                "Python node {i} bootstrapping from kadmium {} found {found:?}",
                kad.id()
            );
            for n in &found {
                assert!(
                    known.contains(n),
                    "Python node {i} bootstrap via kadmium returned an unknown node {n:?}"
                );
            }
        }

        let values = typed_values();
        let mut failures = Vec::new();

        // Put from Python, get from several kadmium nodes.
        for (j, (name, value)) in values.iter().enumerate() {
            let key = format!("interop-py-{name}");
            assert!(py.set(j % PY_NODES, &key, value).await, "Python set({key:?}, {value:?}) stored nowhere");
        }
        // Readers without a copy of their own come first, so that most reads
        // are lookups through the other implementation's nodes.
        let mut remote_reads = [0usize; 2];
        for (j, (name, value)) in values.iter().enumerate() {
            let key = format!("interop-py-{name}");
            let (mut lacking, holding): (Vec<usize>, Vec<usize>) =
                (0..KAD_NODES).partition(|&n| kads[n].local_value(&key_id(&key)).is_none());
            remote_reads[0] += lacking.len().min(READERS);
            lacking.extend(holding);
            for &reader in &lacking[..READERS] {
                match kads[reader].get(key_id(&key)).await {
                    Ok(Some(got)) if got == *value => {}
                    other => failures.push(format!(
                        "put {value:?} under {key:?} from Python node {}, kadmium node {reader} got {other:?}",
                        j % PY_NODES
                    )),
                }
            }
        }

        // Put from kadmium, get from several Python nodes.
        for (j, (name, value)) in values.iter().enumerate() {
            let key = format!("interop-rs-{name}");
            let report = kads[j % KAD_NODES]
                .put(key_id(&key), value.clone(), PutOptions::default())
                .await
                .unwrap_or_else(|e| panic!("kadmium put {key:?}: {e}"));
            assert!(report.stored_remote > 0, "kadmium put {key:?} stored nowhere: {report:?}");
        }
        for (j, (name, value)) in values.iter().enumerate() {
            let key = format!("interop-rs-{name}");
            let mut lacking = Vec::new();
            let mut holding = Vec::new();
            for n in 0..PY_NODES {
                match py.local(n, &key).await {
                    None => lacking.push(n),
                    Some(_) => holding.push(n),
                }
            }
            remote_reads[1] += lacking.len().min(READERS);
            lacking.extend(holding);
            for &reader in &lacking[..READERS] {
                let got = py.get(reader, &key).await;
                if got.as_ref() != Some(value) {
                    failures.push(format!(
                        "put {value:?} under {key:?} from kadmium node {}, Python node {reader} got {got:?}",
                        j % KAD_NODES
                    ));
                }
            }
        }
        eprintln!(
            "interop: {} reads each way; {} kadmium and {} Python reads were lookups (no local copy)",
            values.len() * READERS,
            remote_reads[0],
            remote_reads[1]
        );
        // With k = 8 of 16 nodes holding each value, many reads must be real
        // cross-implementation lookups; none would mean the test is too weak.
        assert!(
            remote_reads.iter().all(|&r| r > 0),
            "no reader lacked a local copy ({remote_reads:?}): values were stored everywhere"
        );

        assert!(
            failures.is_empty(),
            "{} of {} interop reads failed:\n{}\nPython stderr:\n{}",
            failures.len(),
            2 * values.len() * READERS,
            failures.join("\n"),
            py.stderr_tail()
        );

        // A missing key is a miss on both sides, not an error.
        assert_eq!(kads[0].get(key_id("interop-missing")).await.expect("kadmium get"), None);
        assert_eq!(py.get(0, "interop-missing").await, None);

        for node in &kads {
            node.shutdown();
        }
        py.stop().await;
    })
    .await;
}

/// Signed records through a network of half Python `kademlia` nodes: Python
/// holders carry them as opaque bytes (and hand them on with their own
/// STOREs), kadmium readers verify them, ignore what lying Python holders
/// answer (forged, tampered, replayed), repair those holders, and a delete
/// hides the value from every kadmium reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_network_carries_signed_records() {
    use dht_core::signed::{record_key, SignedRecord};
    use dht_core::{Keypair, SignedPutOptions};
    bounded(async {
        const K: usize = 8;
        const PY_NODES: usize = 6;
        const KAD_NODES: usize = 6;
        let mut py = PyPeer::spawn();
        let pys = py.start(PY_NODES, K).await;
        for i in 1..PY_NODES {
            assert!(!py.bootstrap(i, &[pys[0].addr]).await.is_empty());
        }
        let mut kads: Vec<Node> = Vec::new();
        for i in 0..KAD_NODES {
            let node = kad_node(K, 300 + i as u64).await;
            let found = node.bootstrap(&[pys[i % PY_NODES].addr]).await.unwrap();
            assert!(!found.is_empty());
            kads.push(node);
        }
        for (i, kad) in kads.iter().enumerate() {
            py.bootstrap(i % PY_NODES, &[kad.local_addr()]).await;
        }
        let owner = Keypair::from_secret([42; 32]);
        let salt = b"chat/alice";
        let key = record_key(&owner.public_key(), salt);

        // kadmium puts; Python nodes hold the record as plain bytes.
        let seq = kads[0]
            .put_signed(
                &owner,
                salt,
                b"alice@10.0.0.1:4000",
                SignedPutOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(seq, 1);
        let mut py_holders = 0;
        for i in 0..PY_NODES {
            if let Some(Value::Bytes(b)) = py.local_hex(i, &key).await {
                SignedRecord::decode_verified(&b, &key).expect("Python holds the record intact");
                py_holders += 1;
            }
        }
        println!("seq 1 put from kadmium: held by {py_holders}/{PY_NODES} Python nodes");
        assert!(py_holders > 0, "some Python nodes are among the k closest");

        // A record made by the owner travels from a Python node's own STORE.
        let expires = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let v2 = SignedRecord::sign(&owner, salt, 2, expires, Some(b"alice@10.0.0.2:4000"))
            .unwrap()
            .encode();
        assert!(
            py.set_hex(1, &key, &v2).await,
            "Python set of the seq 2 record"
        );
        for (i, kad) in kads.iter().enumerate() {
            let got = kad.get_signed(&owner.public_key(), salt).await.unwrap();
            let got = got.map(|g| (g.value, g.seq));
            assert_eq!(
                got,
                Some((b"alice@10.0.0.2:4000".to_vec(), 2)),
                "kadmium reader {i}"
            );
        }
        // A Python reader gets the record's bytes, which verify.
        match py.get_hex(3, &key).await {
            Some(Value::Bytes(b)) => {
                let r = SignedRecord::decode_verified(&b, &key).unwrap();
                assert_eq!(r.seq(), 2);
            }
            other => panic!("Python get: {other:?}"),
        }

        // Every Python node now lies: a replay of seq 1, a tampered seq 3,
        // a stranger's seq 9 signed for the owner's key, plain junk.
        let v1 = SignedRecord::sign(&owner, salt, 1, expires, Some(b"alice@10.0.0.1:4000"))
            .unwrap()
            .encode();
        let mut tampered =
            SignedRecord::sign(&owner, salt, 3, expires, Some(b"alice@10.6.6.6:4000"))
                .unwrap()
                .encode();
        let at = tampered.windows(6).position(|w| w == b"10.6.6").unwrap();
        tampered[at] = b'9';
        let stranger = Keypair::from_secret([43; 32]);
        let mut forged = SignedRecord::sign(&stranger, salt, 9, expires, Some(b"mallory"))
            .unwrap()
            .encode();
        let pk = stranger.public_key();
        let at = forged.windows(32).position(|w| w == pk.as_bytes()).unwrap();
        forged[at..at + 32].copy_from_slice(owner.public_key().as_bytes());
        let lies = [v1, tampered, forged, b"junk".to_vec()];
        let mut right = 0;
        let mut reads = 0;
        for (round, lie) in lies.iter().enumerate() {
            for i in 0..PY_NODES {
                py.plant_hex(i, &key, lie).await;
            }
            for kad in &kads {
                reads += 1;
                let got = kad.get_signed(&owner.public_key(), salt).await.unwrap();
                right += usize::from(got.map(|g| g.seq) == Some(2));
            }
            // The gets sent the newest record back to the lying holders.
            let mut repaired = 0;
            for i in 0..PY_NODES {
                repaired +=
                    usize::from(py.local_hex(i, &key).await == Some(Value::Bytes(v2.clone())));
            }
            println!(
                "lie {round}: Python holders repaired to seq 2 by the gets: {repaired}/{PY_NODES}"
            );
        }
        println!(
            "kadmium readers among lying Python holders: {right}/{reads} got the owner's seq 2"
        );
        assert_eq!(right, reads);

        // Delete: no kadmium reader sees the value; Python nodes carry the tombstone.
        let del = kads[2].delete_signed(&owner, salt).await.unwrap();
        assert_eq!(del, 3);
        for (i, kad) in kads.iter().enumerate() {
            assert_eq!(
                kad.get_signed(&owner.public_key(), salt).await.unwrap(),
                None,
                "reader {i}"
            );
        }
        py.stop().await;
        for kad in kads {
            kad.shutdown_and_wait().await;
        }
    })
    .await;
}
