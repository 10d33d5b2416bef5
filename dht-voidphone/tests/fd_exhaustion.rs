//! Idle connections that use up the process's file descriptors before any of
//! the API server's limits is reached (a soft limit of 1,024 is common; the
//! default is 1,024 connections, 256 per address): a new client must still
//! be served. The server makes room as at its limits, by closing the
//! connection idle longest. Before, `accept` failed with EMFILE every 100 ms
//! for as long as the idle clients stayed, and nobody new was served.
//!
//! A test binary of its own: it lowers this process's descriptor limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use dht_core::{Config, Node};
use dht_voidphone::{ApiConfig, ApiServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(20);
/// The descriptor limit of this test process: client and server ends of
/// every connection count against it.
const FD_LIMIT: u64 = 256;

fn set_fd_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

fn socket_from(last: u8) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, last], 0)))
        .unwrap();
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_using_up_descriptors_do_not_lock_out_a_new_client() {
    let node = Node::bind(Config::default().with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let server = ApiServer::bind(
        node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        ApiConfig::default(),
    )
    .await
    .unwrap();
    let api = server.local_addr();
    // The canary's socket is made first, so the client side still has one.
    let canary = socket_from(200);
    set_fd_limit(FD_LIMIT);

    // Idle clients from five addresses (under the per-address limit) until
    // the process has no descriptor left for another client socket.
    let mut idle = Vec::new();
    'filling: for _ in 0..FD_LIMIT {
        for last in 2..7u8 {
            let Ok(socket) = TcpSocket::new_v4() else {
                break 'filling;
            };
            socket
                .bind(SocketAddr::from(([127, 0, 0, last], 0)))
                .unwrap();
            match timeout(GUARD, socket.connect(api)).await {
                Ok(Ok(stream)) => idle.push(stream),
                _ => break 'filling,
            }
        }
    }
    let evicted_before = server.stats().evicted;

    let mut stream: TcpStream = timeout(GUARD, canary.connect(api))
        .await
        .expect("the canary could not connect")
        .unwrap();
    let key = [7u8; 32];
    let mut get = Vec::new();
    get.extend_from_slice(&36u16.to_be_bytes());
    get.extend_from_slice(&651u16.to_be_bytes());
    get.extend_from_slice(&key);
    stream.write_all(&get).await.unwrap();
    let mut reply = [0u8; 36];
    let answered = timeout(GUARD, stream.read_exact(&mut reply)).await;
    let evicted = server.stats().evicted - evicted_before;
    println!(
        "descriptor limit {FD_LIMIT}: {} idle clients connected, the canary answered: {}, \
         idle connections closed to make room: {evicted}",
        idle.len(),
        answered.is_ok()
    );
    assert!(
        matches!(answered, Ok(Ok(_))),
        "a new client was not served while idle ones held every descriptor"
    );
    assert_eq!(
        u16::from_be_bytes([reply[2], reply[3]]),
        653,
        "GET of a key never stored"
    );
    assert_eq!(&reply[4..], &key);
    assert!(
        evicted >= 1,
        "served without closing anyone: the test tests nothing"
    );
    drop(idle);
    server.shutdown();
    node.shutdown();
}
