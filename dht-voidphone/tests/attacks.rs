//! Attacks on the VoidPhone API server by clients that open connections and
//! do not use them, each with the figures it measured printed
//! (`cargo test -p dht-voidphone --release --test attacks -- --nocapture`).
//!
//! * Stalled connections by the thousand, from one address: a canary
//!   client's PUT then GET must still succeed (eviction of idle connections,
//!   per-IP limit). These run on the real clock but assert nothing about
//!   time; the timeouts are set to an hour so that only eviction acts.
//! * Read and idle timeouts, and the per-IP limit with busy connections:
//!   under tokio's paused clock, so the timings asserted are virtual and
//!   exact. The node's own timers are set days away because `Node` reads
//!   the real clock (a protocol deadline passed in virtual time only would
//!   make its driver spin).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dht_core::{Config, Contact, Node, NodeId, PutOptions, Value};
use dht_voidphone::{ApiConfig, ApiServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

const ATTACKER: [u8; 4] = [127, 0, 0, 1];
const CANARY: [u8; 4] = [127, 0, 0, 2];
/// Bound on every wait (virtual time in the paused tests: longer than any
/// server timeout there).
const GUARD: Duration = Duration::from_secs(3600);
const HOUR: Duration = Duration::from_secs(3600);
const DAYS: Duration = Duration::from_secs(30 * 24 * 3600);

// ---- the client (message layout as in tests/conformance.rs) -----------------

fn put_msg(key: &[u8; 32], value: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&u16::try_from(40 + value.len()).unwrap().to_be_bytes());
    m.extend_from_slice(&650u16.to_be_bytes());
    m.extend_from_slice(&[0, 60, 1, 0]); // ttl 60 s, replication 1, reserved
    m.extend_from_slice(key);
    m.extend_from_slice(value);
    m
}

fn get_msg(key: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&36u16.to_be_bytes());
    m.extend_from_slice(&651u16.to_be_bytes());
    m.extend_from_slice(key);
    m
}

/// Read one reply: `(type, key, value)`.
async fn read_reply(stream: &mut TcpStream) -> (u16, [u8; 32], Vec<u8>) {
    let mut header = [0u8; 4];
    timeout(GUARD, stream.read_exact(&mut header))
        .await
        .expect("no reply")
        .expect("connection failed while waiting for a reply");
    let size = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let mut body = vec![0u8; size - 4];
    stream.read_exact(&mut body).await.unwrap();
    let key = body[..32].try_into().unwrap();
    (
        u16::from_be_bytes([header[2], header[3]]),
        key,
        body[32..].to_vec(),
    )
}

async fn connect_from(ip: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((ip, 0))).unwrap();
    let stream = timeout(GUARD, socket.connect(server))
        .await
        .unwrap()
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// PUT then GET of one key on one connection; the GET must find the value.
async fn put_then_get(stream: &mut TcpStream, label: &str) {
    let key = NodeId::digest(label.as_bytes());
    let mut api_key = [0u8; 32];
    api_key[..20].copy_from_slice(key.as_bytes());
    stream
        .write_all(&put_msg(&api_key, b"canary"))
        .await
        .unwrap();
    stream.write_all(&get_msg(&api_key)).await.unwrap();
    assert_eq!(
        read_reply(stream).await,
        (652, api_key, b"canary".to_vec()),
        "the GET after a PUT must answer SUCCESS with the value"
    );
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
fn is_closed(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Wait until the server closes `stream`; returns the virtual time waited.
async fn wait_closed(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    match timeout(GUARD, stream.read(&mut buf)).await {
        Err(_) => panic!("connection still open after {GUARD:?}"),
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => panic!("server sent {n} bytes instead of closing"),
        Ok(Err(e)) => assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{e}"
        ),
    }
    start.elapsed()
}

// ---- setup ------------------------------------------------------------------

/// A node alone on 127.0.0.1 whose own timers lie days ahead.
async fn lone_node() -> Node {
    // Operations that never end on their own: only the API's own timeouts
    // close what these tests leave in flight.
    let mut config = Config::default()
        .with_bind("127.0.0.1:0".parse().unwrap())
        .with_rpc_timeout(DAYS)
        .with_operation_timeout(DAYS);
    config.maintenance_interval = DAYS;
    Node::bind(config).await.unwrap()
}

/// 1,000 sockets on each side of the loopback: make sure the process may
/// hold them (CI images often default to a soft limit of 1,024).
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= wanted,
        "need {wanted} file descriptors, the hard limit allows {}",
        limit.rlim_max
    );
}

/// Open `n` connections from `ip` that each send one byte of a message and
/// stall. Returns them (kept open by the caller).
async fn stall(n: usize, ip: [u8; 4], server: SocketAddr) -> Vec<TcpStream> {
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect_from(ip, server).await;
        s.write_all(&[0]).await.unwrap();
        stalled.push(s);
    }
    stalled
}

/// The attack and the canary; prints and returns `(stalled open at the
/// server, closed as seen by the attacker)`.
async fn stalled_attack_then_canary(config: ApiConfig, canary_ip: [u8; 4]) -> (usize, usize) {
    raise_fd_limit(4096);
    let node = lone_node().await;
    let server = ApiServer::bind(node.clone(), "127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let stalled = stall(1000, ATTACKER, server.local_addr()).await;
    // Let the server register every connection (and evict what it must).
    let settled = timeout(Duration::from_secs(60), async {
        while server.stats().accepted < 1000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "server never saw the 1,000 connections");
    let under_attack = server.stats();

    let started = std::time::Instant::now();
    let mut canary = connect_from(canary_ip, server.local_addr()).await;
    put_then_get(&mut canary, "canary").await;
    let latency = started.elapsed();

    let after = server.stats();
    // Evicted connections close as their tasks are aborted: give the last
    // FINs a moment to arrive (a bounded wait, not a timing assertion).
    let mut closed = 0;
    for _ in 0..1000 {
        closed = stalled.iter().filter(|s| is_closed(s)).count();
        if closed as u64 >= after.evicted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "1000 stalled connections from {}: {} open at the server when the canary \
         came, {} evicted, {} refused; canary from {} connect+PUT+GET in {:.2?}; \
         after it {} open, {} evicted in all; {} of the 1000 closed as seen by the attacker",
        IpAddr::from(ATTACKER),
        under_attack.active,
        under_attack.evicted,
        under_attack.refused,
        IpAddr::from(canary_ip),
        latency,
        after.active,
        after.evicted,
        closed,
    );
    assert_eq!(after.refused, 0, "nobody should be refused: all are idle");
    server.shutdown();
    node.shutdown();
    (under_attack.active, closed)
}

// ---- stalled connections, real clock ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_filling_the_server_do_not_stop_a_canary() {
    // One address may fill the whole server; only eviction protects it.
    let config = ApiConfig {
        max_connections: 500,
        max_connections_per_ip: 1000,
        read_timeout: HOUR,
        idle_timeout: HOUR,
        ..ApiConfig::default()
    };
    let (open, closed) = stalled_attack_then_canary(config, CANARY).await;
    assert_eq!(open, 500, "the attacker should have filled the server");
    // 500 evicted by the attacker's own later connections, one by the canary.
    assert_eq!(closed, 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_capped_per_address_by_default() {
    // Default limits, and the canary shares the attacker's address (as
    // VoidPhone modules on one host share 127.0.0.1).
    let config = ApiConfig {
        read_timeout: HOUR,
        idle_timeout: HOUR,
        ..ApiConfig::default()
    };
    let per_ip = config.max_connections_per_ip;
    let (open, closed) = stalled_attack_then_canary(config, ATTACKER).await;
    assert_eq!(open, per_ip);
    assert_eq!(closed, 1000 - per_ip + 1);
}

// ---- timeouts and busy connections, paused clock ---------------------------

#[tokio::test(start_paused = true)]
async fn read_and_idle_timeouts_close_stalled_connections() {
    let config = ApiConfig {
        read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        ..ApiConfig::default()
    };
    let node = lone_node().await;
    let server = ApiServer::bind(node.clone(), "127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = server.local_addr();
    let start = Instant::now();

    // One byte of a message, then nothing: closed by the read timeout.
    let mut one_byte = connect_from(ATTACKER, addr).await;
    one_byte.write_all(&[0]).await.unwrap();
    // A GET trickled one byte every 5 s: it would take 180 s, the read
    // timeout counts from its first byte.
    // Returns when it first sees the connection closed.
    let mut trickle = connect_from(ATTACKER, addr).await;
    let trickler = tokio::spawn(async move {
        for b in get_msg(&[7; 32]) {
            if is_closed(&trickle) || trickle.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        start.elapsed()
    });
    // Connected, never sends: closed by the idle timeout.
    let mut silent = connect_from(ATTACKER, addr).await;
    // Does a PUT and GET, then nothing: closed 60 s after its last answer.
    let mut used = connect_from(CANARY, addr).await;
    put_then_get(&mut used, "used then idle").await;
    let answered = start.elapsed();

    let waited = wait_closed(&mut one_byte).await;
    println!("one byte then silence: closed after {waited:?}");
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11));
    // Seen at the trickler's next 5-second step after the close.
    let waited = trickler.await.unwrap();
    println!("a GET trickled at one byte per 5 s: seen closed after {waited:?}");
    assert!(waited >= Duration::from_secs(10) && waited <= Duration::from_secs(15));
    let waited = start.elapsed() + wait_closed(&mut silent).await;
    println!("connected and silent: closed after {waited:?}");
    assert!(waited >= Duration::from_secs(60) && waited < Duration::from_secs(61));
    let waited = start.elapsed() + wait_closed(&mut used).await - answered;
    println!("PUT+GET then silence: closed {waited:?} after the answer");
    assert!(waited >= Duration::from_secs(60) && waited < Duration::from_secs(61));

    let stats = server.stats();
    println!("{stats:?}");
    assert_eq!((stats.read_timeouts, stats.idle_timeouts), (2, 2));
    assert_eq!(stats.active, 0);
    server.shutdown();
    node.shutdown();
}

#[tokio::test(start_paused = true)]
async fn a_put_header_over_the_value_limit_closes_before_its_body() {
    // The header alone of a PUT announcing a value one byte over the node's
    // limit. It can never be stored, so the server must not wait for (and
    // buffer) its body: it used to, until the read timeout closed it.
    let node = lone_node().await;
    let max = node.config().max_value_size;
    let server = ApiServer::bind(
        node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ApiConfig::default(),
    )
    .await
    .unwrap();
    let read_timeout = ApiConfig::default().read_timeout;
    let mut c = connect_from(ATTACKER, server.local_addr()).await;
    let oversized = put_msg(&[3; 32], &vec![1u8; max + 1]);
    c.write_all(&oversized[..4]).await.unwrap();
    let waited = wait_closed(&mut c).await;
    println!(
        "header of a PUT of {} bytes (limit {max}): closed after {waited:?}",
        max + 1
    );
    assert!(
        waited < read_timeout,
        "closed only by the read timeout ({waited:?})"
    );
    assert_eq!(server.stats().read_timeouts, 0);

    // A PUT within the limit still waits for its body, and is stored.
    let mut ok = connect_from(ATTACKER, server.local_addr()).await;
    let fits = put_msg(&[4; 32], &vec![2u8; max]);
    ok.write_all(&fits[..4]).await.unwrap();
    ok.write_all(&fits[4..]).await.unwrap();
    ok.write_all(&get_msg(&[4; 32])).await.unwrap();
    assert_eq!(read_reply(&mut ok).await, (652, [4; 32], vec![2u8; max]));
    server.shutdown();
    node.shutdown();
}

#[tokio::test(start_paused = true)]
async fn busy_connections_are_neither_idle_nor_evicted_and_the_per_ip_limit_holds() {
    // GETs stay in flight: the node's only contact never answers, and its
    // RPC timeout is days away, so only the API's request_timeout ends them.
    let node = lone_node().await;
    let hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hole_contact = Contact::new(NodeId::digest(b"black hole"), hole.local_addr().unwrap());
    assert_eq!(node.import_contacts(&[hole_contact]), 1);
    let config = ApiConfig {
        max_connections_per_ip: 2,
        idle_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(120),
        ..ApiConfig::default()
    };
    let server = ApiServer::bind(node.clone(), "127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let addr = server.local_addr();
    let start = Instant::now();

    let missing = [9u8; 32];
    // Held locally, so a GET of it is answered without the network.
    let held = [5u8; 32];
    node.store_local(
        dht_voidphone::dht_key(&held),
        Value::Bytes(b"held".to_vec()),
        PutOptions::default(),
    )
    .unwrap();
    let expect_held = (652, held, b"held".to_vec());
    let mut a = connect_from(ATTACKER, addr).await;
    let mut b = connect_from(ATTACKER, addr).await;
    a.write_all(&get_msg(&missing)).await.unwrap();
    b.write_all(&get_msg(&missing)).await.unwrap();
    // Let the server take both GETs before the next client comes.
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Both busy: a third from the same address is refused...
    let mut c = connect_from(ATTACKER, addr).await;
    assert!(wait_closed(&mut c).await < Duration::from_millis(10));
    assert_eq!(server.stats().refused, 1);
    // ...while another address is served.
    let mut other = connect_from(CANARY, addr).await;
    other.write_all(&get_msg(&held)).await.unwrap();
    assert_eq!(read_reply(&mut other).await, expect_held);

    // In flight for 120 s, twice the idle timeout: still open, answered.
    for s in [&mut a, &mut b] {
        assert_eq!(read_reply(s).await, (653, missing, Vec::new()));
    }
    let answered = start.elapsed();
    println!("GETs in flight answered after {answered:?} (idle timeout 60 s)");
    assert!(answered >= Duration::from_secs(120));

    // Now idle: a newcomer from that address takes the place of one of them.
    let mut d = connect_from(ATTACKER, addr).await;
    d.write_all(&get_msg(&held)).await.unwrap();
    assert_eq!(read_reply(&mut d).await, expect_held);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let stats = server.stats();
    println!("{stats:?}");
    // The one idle timeout is `other`'s, 60 s after its answer.
    assert_eq!(
        (stats.evicted, stats.refused, stats.idle_timeouts),
        (1, 1, 1)
    );
    assert_eq!(
        [is_closed(&a), is_closed(&b)]
            .iter()
            .filter(|c| **c)
            .count(),
        1
    );
    drop(hole);
    server.shutdown();
    node.shutdown();
}
