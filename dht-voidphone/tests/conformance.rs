//! Conformance tests of the VoidPhone DHT API server against a 10-node local
//! kadmium network on 127.0.0.1.
//!
//! The client here is written from the message table of issue 5, not from
//! `src/message.rs`, so an encoding mistake there cannot hide itself:
//!
//! | type | name    | body after `size:u16`, `type:u16`                     |
//! |------|---------|-------------------------------------------------------|
//! | 650  | PUT     | `ttl:u16`, `replication:u8`, `reserved:u8`, `key[32]`, `value` |
//! | 651  | GET     | `key[32]`                                             |
//! | 652  | SUCCESS | `key[32]`, `value`                                    |
//! | 653  | FAILURE | `key[32]`                                             |
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Config, Node, NodeId, PutOptions, Value};
use dht_voidphone::{ApiConfig, ApiError, ApiServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const PUT: u16 = 650;
const GET: u16 = 651;
const SUCCESS: u16 = 652;
const FAILURE: u16 = 653;

/// Bound on every read and wait in these tests.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

// ---- the client -------------------------------------------------------------

fn put_msg(ttl: u16, replication: u8, key: &[u8; 32], value: &[u8]) -> Vec<u8> {
    let size = u16::try_from(40 + value.len()).unwrap();
    let mut m = Vec::new();
    m.extend_from_slice(&size.to_be_bytes());
    m.extend_from_slice(&PUT.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.push(replication);
    m.push(0); // reserved
    m.extend_from_slice(key);
    m.extend_from_slice(value);
    m
}

fn get_msg(key: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&36u16.to_be_bytes());
    m.extend_from_slice(&GET.to_be_bytes());
    m.extend_from_slice(key);
    m
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Success { key: [u8; 32], value: Vec<u8> },
    Failure { key: [u8; 32] },
}

impl Reply {
    fn key(&self) -> [u8; 32] {
        match self {
            Reply::Success { key, .. } | Reply::Failure { key } => *key,
        }
    }
}

/// Read one whole reply and check its framing: size counts the header, a
/// FAILURE is exactly 36 bytes. Returns the reply and its raw bytes.
async fn read_reply(stream: &mut TcpStream) -> (Reply, Vec<u8>) {
    let mut header = [0u8; 4];
    timeout(IO_TIMEOUT, stream.read_exact(&mut header))
        .await
        .expect("timed out waiting for a reply")
        .expect("connection failed while waiting for a reply");
    let size = usize::from(u16::from_be_bytes([header[0], header[1]]));
    let msg_type = u16::from_be_bytes([header[2], header[3]]);
    assert!(size >= 36, "reply size {size} below 36");
    let mut raw = header.to_vec();
    raw.resize(size, 0);
    timeout(IO_TIMEOUT, stream.read_exact(&mut raw[4..]))
        .await
        .expect("timed out reading a reply body")
        .expect("connection failed reading a reply body");
    let key: [u8; 32] = raw[4..36].try_into().unwrap();
    let reply = match msg_type {
        SUCCESS => Reply::Success {
            key,
            value: raw[36..].to_vec(),
        },
        FAILURE => {
            assert_eq!(size, 36, "FAILURE must be exactly 36 bytes");
            Reply::Failure { key }
        }
        other => panic!("unexpected reply type {other}"),
    };
    (reply, raw)
}

/// The server must close the connection and send nothing on it.
async fn expect_closed(stream: &mut TcpStream, why: &str) {
    let mut buf = [0u8; 64];
    match timeout(IO_TIMEOUT, stream.read(&mut buf)).await {
        Err(_) => panic!("{why}: connection still open after {IO_TIMEOUT:?}"),
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => panic!("{why}: server sent {n} bytes instead of closing"),
        // Closing with our bytes unread makes the kernel send a reset.
        Ok(Err(e)) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
        Ok(Err(e)) => panic!("{why}: unexpected error {e}"),
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let s = timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    s.set_nodelay(true).unwrap();
    s
}

async fn put_get(stream: &mut TcpStream, key: &[u8; 32], value: &[u8]) {
    stream.write_all(&put_msg(60, 0, key, value)).await.unwrap();
    stream.write_all(&get_msg(key)).await.unwrap();
    let (reply, _) = read_reply(stream).await;
    assert_eq!(
        reply,
        Reply::Success {
            key: *key,
            value: value.to_vec()
        }
    );
}

fn key_of(label: &str) -> [u8; 32] {
    // Distinct, reproducible 32-byte keys: the label padded with a counter byte pattern.
    let mut k = [0u8; 32];
    for (i, b) in label
        .bytes()
        .chain(std::iter::repeat(b'.'))
        .take(32)
        .enumerate()
    {
        k[i] = b;
    }
    k
}

// ---- the network ------------------------------------------------------------

struct Net {
    nodes: Vec<Node>,
    server: ApiServer,
}

impl Net {
    fn api(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.server.shutdown();
        for n in &self.nodes {
            n.shutdown();
        }
    }
}

/// Ten nodes on 127.0.0.1 that know each other, and an API server on node 3.
async fn network(api_config: ApiConfig) -> Net {
    let localhost: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut nodes = Vec::new();
    for _ in 0..10 {
        let config = Config::default()
            .with_bind(localhost)
            .with_rpc_timeout(Duration::from_millis(300));
        nodes.push(Node::bind(config).await.unwrap());
    }
    let first = nodes[0].local_addr();
    for node in &nodes[1..] {
        let found = timeout(IO_TIMEOUT, node.bootstrap(&[first]))
            .await
            .unwrap()
            .unwrap();
        assert!(!found.is_empty(), "bootstrap found nobody");
    }
    // A second round so the early nodes also learn about the later ones.
    for node in &nodes {
        let other = if node.local_addr() == first {
            nodes[1].local_addr()
        } else {
            first
        };
        timeout(IO_TIMEOUT, node.bootstrap(&[other]))
            .await
            .unwrap()
            .unwrap();
    }
    let api = localhost;
    let server = ApiServer::bind(nodes[3].clone(), api, api_config)
        .await
        .unwrap();
    Net { nodes, server }
}

// ---- tests -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_then_get_on_one_connection_is_byte_exact() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    let key = key_of("put-then-get");
    let value: Vec<u8> = (0..=255u8).cycle().take(3000).collect(); // zeros and high bytes included
    c.write_all(&put_msg(120, 3, &key, &value)).await.unwrap();
    c.write_all(&get_msg(&key)).await.unwrap();
    let (reply, raw) = read_reply(&mut c).await;
    assert_eq!(
        reply,
        Reply::Success {
            key,
            value: value.clone()
        }
    );
    let mut expected = Vec::new();
    expected.extend_from_slice(&u16::try_from(36 + value.len()).unwrap().to_be_bytes());
    expected.extend_from_slice(&SUCCESS.to_be_bytes());
    expected.extend_from_slice(&key);
    expected.extend_from_slice(&value);
    assert_eq!(raw, expected);

    // The connection stays open for more requests.
    put_get(&mut c, &key_of("second on same connection"), b"again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_missing_key_is_failure_of_size_36() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    let key = key_of("never stored");
    c.write_all(&get_msg(&key)).await.unwrap();
    let (reply, raw) = read_reply(&mut c).await;
    assert_eq!(reply, Reply::Failure { key });
    assert_eq!(raw.len(), 36);
    assert_eq!(&raw[..4], &[0, 36, 0x02, 0x8d]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_in_one_segment() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    let key = key_of("pipelined");
    let missing = [
        key_of("missing-1"),
        key_of("missing-2"),
        key_of("missing-3"),
    ];
    let mut segment = put_msg(60, 1, &key, b"bernd");
    segment.extend(get_msg(&missing[0]));
    segment.extend(get_msg(&key));
    segment.extend(get_msg(&missing[1]));
    segment.extend(get_msg(&missing[2]));
    c.write_all(&segment).await.unwrap();

    // Four GETs, four answers, in any order; no answer for the PUT.
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(read_reply(&mut c).await.0);
    }
    replies.sort_by_key(|r| r.key());
    let mut expected = vec![
        Reply::Success {
            key,
            value: b"bernd".to_vec(),
        },
        Reply::Failure { key: missing[0] },
        Reply::Failure { key: missing[1] },
        Reply::Failure { key: missing[2] },
    ];
    expected.sort_by_key(|r| r.key());
    assert_eq!(replies, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_split_byte_by_byte() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    let key = key_of("byte by byte");
    let mut bytes = put_msg(60, 0, &key, b"slowly");
    bytes.extend(get_msg(&key));
    for b in &bytes {
        c.write_all(std::slice::from_ref(b)).await.unwrap();
        c.flush().await.unwrap();
        // Give each byte its own segment.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (reply, _) = read_reply(&mut c).await;
    assert_eq!(
        reply,
        Reply::Success {
            key,
            value: b"slowly".to_vec()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_clients() {
    let net = network(ApiConfig::default()).await;
    let api = net.api();
    let start = Arc::new(tokio::sync::Barrier::new(100));
    let mut clients = Vec::new();
    for i in 0..100u32 {
        let start = start.clone();
        clients.push(tokio::spawn(async move {
            let mut c = connect(api).await;
            start.wait().await; // all connected before anyone sends
            let key = key_of(&format!("client-{i}"));
            let value = format!("value of client {i}").into_bytes();
            let missing = key_of(&format!("client-{i}-missing"));
            let mut segment = put_msg(60, 0, &key, &value);
            segment.extend(get_msg(&key));
            segment.extend(get_msg(&missing));
            c.write_all(&segment).await.unwrap();
            let mut got = vec![read_reply(&mut c).await.0, read_reply(&mut c).await.0];
            got.sort_by_key(|r| r.key());
            let mut want = vec![
                Reply::Success { key, value },
                Reply::Failure { key: missing },
            ];
            want.sort_by_key(|r| r.key());
            assert_eq!(got, want, "client {i}");
        }));
    }
    for c in clients {
        timeout(Duration::from_secs(60), c)
            .await
            .expect("clients took too long")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_close_only_that_connection() {
    let net = network(ApiConfig::default()).await;
    let key = key_of("bystander");
    let mut bystander = connect(net.api()).await;
    put_get(&mut bystander, &key, b"still here").await;

    let header = |size: u16, t: u16| [size.to_be_bytes(), t.to_be_bytes()].concat();
    let with_body = |size: u16, t: u16, body_len: usize| {
        let mut m = header(size, t);
        m.resize(4 + body_len, 7);
        m
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown type 654", with_body(36, 654, 32)),
        ("unknown type 0", with_body(4, 0, 0)),
        ("size below the header", with_body(3, GET, 40)),
        ("size 0", with_body(0, PUT, 40)),
        ("PUT below its minimum of 40", with_body(39, PUT, 35)),
        ("GET of size 37", with_body(37, GET, 33)),
        ("GET of size 35", with_body(35, GET, 31)),
        ("GET of size 4", with_body(4, GET, 0)),
        ("empty PUT", with_body(40, PUT, 36)),
        ("SUCCESS sent by a client", with_body(40, SUCCESS, 36)),
        ("FAILURE sent by a client", with_body(36, FAILURE, 32)),
        // A PUT has no reply: a value the node would refuse must not vanish
        // silently (the default limit, 8,137 bytes, is what Python peers carry).
        (
            "PUT over the node's value limit",
            put_msg(60, 0, &key_of("too big"), &[1u8; 8_138]),
        ),
    ];
    for (why, bytes) in cases {
        let mut bad = connect(net.api()).await;
        bad.write_all(&bytes).await.unwrap();
        expect_closed(&mut bad, why).await;

        // A valid request ahead of the bad one in the same segment does not
        // keep the connection open either, but it is carried out: a PUT,
        // which has no reply, is stored.
        let mut bad = connect(net.api()).await;
        let before = key_of(&format!("before {why}"));
        let mut segment = put_msg(60, 0, &before, b"x");
        segment.extend(&bytes);
        bad.write_all(&segment).await.unwrap();
        expect_closed(&mut bad, why).await;
        let mut stored = false;
        for _ in 0..200 {
            bystander.write_all(&get_msg(&before)).await.unwrap();
            if read_reply(&mut bystander).await.0 != (Reply::Failure { key: before }) {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(stored, "{why}: the PUT sent whole before it was lost");

        // A GET ahead of the bad message is answered before the close.
        let mut bad = connect(net.api()).await;
        let mut segment = get_msg(&key);
        segment.extend(&bytes);
        bad.write_all(&segment).await.unwrap();
        assert_eq!(
            read_reply(&mut bad).await.0,
            Reply::Success {
                key,
                value: b"still here".to_vec()
            },
            "{why}: the GET sent whole before it"
        );
        expect_closed(&mut bad, why).await;

        // Everyone else is still served: the open connection and a new one.
        bystander.write_all(&get_msg(&key)).await.unwrap();
        assert_eq!(
            read_reply(&mut bystander).await.0,
            Reply::Success {
                key,
                value: b"still here".to_vec()
            },
            "after {why}"
        );
        let mut fresh = connect(net.api()).await;
        fresh.write_all(&get_msg(&key_of("fresh"))).await.unwrap();
        assert_eq!(
            read_reply(&mut fresh).await.0,
            Reply::Failure {
                key: key_of("fresh")
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_on_after_a_bad_message_still_gets_every_earlier_reply() {
    // Pipelined GETs of a large value, a bad message, then more bytes, all
    // written before any reply is read: the server answers the GETs and reads
    // on (dropping the rest) until the client closes, instead of closing with
    // bytes unread, which resets the connection and discards replies the
    // client has not read yet (it got 14 of 60 that way).
    let net = network(ApiConfig::default()).await;
    let key = key_of("large");
    let value = vec![5u8; 8000];
    put_get(&mut connect(net.api()).await, &key, &value).await;
    let gets = 60;
    let (mut read_half, mut write_half) = connect(net.api()).await.into_split();
    let sender = tokio::spawn(async move {
        let mut segment: Vec<u8> = (0..gets).flat_map(|_| get_msg(&key)).collect();
        segment.extend([0, 36, 0x02, 0x8e]); // type 654: unknown
        segment.extend(vec![9u8; 4 << 20]);
        let sent = write_half.write_all(&segment).await;
        let _ = write_half.shutdown().await;
        sent
    });
    let mut answered = 0;
    let mut stream_bytes = Vec::new();
    let _ = timeout(
        Duration::from_secs(60),
        read_half.read_to_end(&mut stream_bytes),
    )
    .await;
    let mut rest = &stream_bytes[..];
    while rest.len() >= 4 {
        let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < size || rest[4 + 32..size] != value[..] {
            break;
        }
        answered += 1;
        rest = &rest[size..];
    }
    println!(
        "{answered} of {gets} GETs before a bad message answered; {} bytes left over",
        rest.len()
    );
    assert_eq!(answered, gets, "replies lost");
    assert!(rest.is_empty());
    assert!(
        sender.await.unwrap().is_ok(),
        "the server reset the connection"
    );
}

// TTL 2: the API's node used to renew a value it put for as long as it ran
// (re-putting a TTL 2 value every 1.5 s, forever); a PUT's TTL is now its
// lifetime (`Lifetime::Fixed`; tests/lifecycle.rs in dht-core tries it over
// virtual hours). TTL 1 expired by chance: its re-put fell due as it expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_with_ttl_2_is_gone_after_it_expires() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    let key = key_of("short-lived");
    c.write_all(&put_msg(2, 0, &key, b"ephemeral"))
        .await
        .unwrap();
    c.write_all(&get_msg(&key)).await.unwrap();
    assert_eq!(
        read_reply(&mut c).await.0,
        Reply::Success {
            key,
            value: b"ephemeral".to_vec()
        }
    );

    tokio::time::sleep(Duration::from_millis(3500)).await;
    c.write_all(&get_msg(&key)).await.unwrap();
    assert_eq!(read_reply(&mut c).await.0, Reply::Failure { key });
    // Gone from every node, not just the one serving the API.
    for node in &net.nodes {
        let got = timeout(IO_TIMEOUT, node.get(NodeId::digest(&key)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_node_interfaces_see_each_others_values() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;

    // API PUT -> Node::get on another node.
    let key = key_of("from the api");
    put_get(&mut c, &key, b"\x00binary\xff").await;
    let got = timeout(IO_TIMEOUT, net.nodes[8].get(NodeId::digest(&key)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(Value::Bytes(b"\x00binary\xff".to_vec())));
    assert_eq!(dht_voidphone::dht_key(&key), NodeId::digest(&key));

    // Node::put on another node -> API GET.
    let key2 = key_of("from a node");
    let opts = PutOptions::default();
    timeout(
        IO_TIMEOUT,
        net.nodes[6].put(
            NodeId::digest(&key2),
            Value::Bytes(b"hello api".to_vec()),
            opts,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    c.write_all(&get_msg(&key2)).await.unwrap();
    assert_eq!(
        read_reply(&mut c).await.0,
        Reply::Success {
            key: key2,
            value: b"hello api".to_vec()
        }
    );

    // A str value (as Python would store) comes back as its UTF-8 bytes.
    let key3 = key_of("a str value");
    let opts = PutOptions::default();
    timeout(
        IO_TIMEOUT,
        net.nodes[1].put(NodeId::digest(&key3), Value::Str("grüße".into()), opts),
    )
    .await
    .unwrap()
    .unwrap();
    c.write_all(&get_msg(&key3)).await.unwrap();
    assert_eq!(
        read_reply(&mut c).await.0,
        Reply::Success {
            key: key3,
            value: "grüße".as_bytes().to_vec()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_limit_applies_back_pressure_without_losing_requests() {
    let config = ApiConfig {
        max_in_flight_per_connection: 2,
        ..ApiConfig::default()
    };
    let net = network(config).await;
    let mut c = connect(net.api()).await;
    let key = key_of("many gets");
    put_get(&mut c, &key, b"v").await;
    let mut segment = Vec::new();
    for _ in 0..40 {
        segment.extend(get_msg(&key));
        segment.extend(get_msg(&key_of("many gets, missing")));
    }
    c.write_all(&segment).await.unwrap();
    let (mut found, mut missing) = (0, 0);
    for _ in 0..80 {
        match read_reply(&mut c).await.0 {
            Reply::Success { key: k, value } if k == key && value == b"v" => found += 1,
            Reply::Failure { key: k } if k == key_of("many gets, missing") => missing += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((found, missing), (40, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_makes_room_by_closing_the_longest_idle_client() {
    let config = ApiConfig {
        max_connections: 2,
        ..ApiConfig::default()
    };
    let net = network(config).await;
    let mut a = connect(net.api()).await;
    let mut b = connect(net.api()).await;
    put_get(&mut a, &key_of("limit a"), b"a").await;
    put_get(&mut b, &key_of("limit b"), b"b").await;
    assert_eq!(net.server.active_connections(), 2);

    // Full: a newcomer takes the place of `a`, idle since before `b`.
    let mut c = connect(net.api()).await;
    put_get(&mut c, &key_of("limit c"), b"c").await;
    expect_closed(&mut a, "the longest-idle connection when a third came").await;
    put_get(&mut b, &key_of("limit b2"), b"b2").await;
    let stats = net.server.stats();
    assert_eq!((stats.active, stats.evicted, stats.refused), (2, 1, 0));

    // A closed connection frees its place without evicting anyone.
    drop(b);
    timeout(IO_TIMEOUT, async {
        while net.server.active_connections() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("closed connection never released its slot");
    let mut d = connect(net.api()).await;
    put_get(&mut d, &key_of("limit d"), b"d").await;
    put_get(&mut c, &key_of("limit c2"), b"c2").await;
    assert_eq!(net.server.stats().evicted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_pending_gets_after_the_client_half_closes() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    let key = key_of("half close");
    put_get(&mut c, &key, b"bye").await;
    c.write_all(&get_msg(&key)).await.unwrap();
    c.shutdown().await.unwrap(); // our sending side only
    assert_eq!(
        read_reply(&mut c).await.0,
        Reply::Success {
            key,
            value: b"bye".to_vec()
        }
    );
    expect_closed(&mut c, "after the last answer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_connections_and_listener() {
    let net = network(ApiConfig::default()).await;
    let mut c = connect(net.api()).await;
    put_get(&mut c, &key_of("before shutdown"), b"x").await;
    net.server.shutdown();
    expect_closed(&mut c, "after shutdown").await;
    timeout(IO_TIMEOUT, async {
        while !net.server.is_shut_down() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        TcpStream::connect(net.api()).await.is_err(),
        "listener still accepting"
    );
    // The node itself keeps running.
    assert!(!net.nodes[3].is_shut_down());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_with_its_node_and_refuses_a_stopped_one() {
    // A stopped node answers every GET with FAILURE and drops every PUT:
    // an API still listening would pass that off as a working DHT.
    let config = Config::default().with_bind("127.0.0.1:0".parse().unwrap());
    let node = Node::bind(config).await.unwrap();
    let server = ApiServer::bind(
        node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ApiConfig::default(),
    )
    .await
    .unwrap();
    let mut c = connect(server.local_addr()).await;
    let key = key_of("node stops");
    c.write_all(&get_msg(&key)).await.unwrap();
    assert_eq!(read_reply(&mut c).await.0, Reply::Failure { key });

    node.shutdown_and_wait().await;
    expect_closed(&mut c, "after the node stopped").await;
    timeout(IO_TIMEOUT, async {
        while !server.is_shut_down() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server outlived its node");
    assert_eq!(server.active_connections(), 0);
    assert_eq!(server.stats().active, 0);
    assert!(
        TcpStream::connect(server.local_addr()).await.is_err(),
        "listener still accepting"
    );
    match ApiServer::bind(node, "127.0.0.1:0".parse().unwrap(), ApiConfig::default()).await {
        Err(ApiError::NodeShutDown) => {}
        other => panic!(
            "a stopped node was served: {:?}",
            other.map(|s| s.local_addr())
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_keeps_api_puts_and_hands_them_to_nodes_that_join() {
    let config = Config::default()
        .with_bind("127.0.0.1:0".parse().unwrap())
        .with_rpc_timeout(Duration::from_millis(300));
    let lone = Node::bind(config.clone()).await.unwrap();
    let server = ApiServer::bind(
        lone.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ApiConfig::default(),
    )
    .await
    .unwrap();
    let mut stream = connect(server.local_addr()).await;
    let key = key_of("alone");
    put_get(&mut stream, &key, b"kept while alone").await;

    // A node that joins later receives the value it is now responsible for.
    let joiner = Node::bind(config).await.unwrap();
    joiner.bootstrap(&[lone.local_addr()]).await.unwrap();
    let digest = NodeId::digest(&key);
    let mut held = None;
    for _ in 0..100 {
        held = joiner.local_value(&digest);
        if held.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(held, Some(Value::Bytes(b"kept while alone".to_vec())));
    server.shutdown();
    lone.shutdown();
    joiner.shutdown();
}
