//! The VoidPhone DHT API server (crate `dht-voidphone`) for C: serve the TCP
//! API of the TUM P2PSEC course DHTs from a running kad_node.

use std::ffi::{c_char, CStr};
use std::net::{IpAddr, SocketAddr};

use dht_voidphone::{ApiConfig, ApiError, ApiServer};

use crate::error::{kad_result, Failure};
use crate::node::{kad_node, node_from_handle};
use crate::runtime::{ensure_not_runtime_thread, run_blocking, runtime, wait_on_runtime};

/// A running VoidPhone DHT API server (TCP), serving one node. Created by
/// kad_api_server_start, stopped and released with kad_api_server_free.
pub struct kad_api_server {
    inner: ApiServer,
}

/// Largest `max_in_flight` of kad_api_server_start.
pub const KAD_API_MAX_IN_FLIGHT: usize = 65_536;

fn start_failure(e: ApiError) -> Failure {
    let code = match e {
        ApiError::InvalidConfig(_) => kad_result::KAD_INVALID_ARGUMENT,
        ApiError::Bind { .. } => kad_result::KAD_NETWORK_ERROR,
        ApiError::NodeShutDown => kad_result::KAD_SHUT_DOWN,
    };
    Failure::new(code, e.to_string())
}

/// Serve the VoidPhone DHT API (messages 650 PUT, 651 GET, 652 SUCCESS,
/// 653 FAILURE) on TCP `host:port` from `node`. `host` is an IP literal
/// ("127.0.0.1", "::1", "0.0.0.0"; names are not resolved); `port` 0 picks
/// a free port (see kad_api_server_port). `max_connections` (0 = 1024) bounds
/// the clients served at once; `max_in_flight` (0 = 64, at most
/// KAD_API_MAX_IN_FLIGHT) bounds the requests in progress per connection.
/// A 32-byte API key K is stored under the
/// digest of K, so kad_node_get(node, K, 32, ...) finds values put through
/// the API and the other way round.
///
/// On success `*server_out` receives a server the caller owns and must
/// release with kad_api_server_free. The server keeps its own reference to
/// the node; when the node is shut down (kad_node_shutdown, or
/// kad_node_free), the server stops listening and closes its connections
/// (the handle stays valid until kad_api_server_free).
///
/// Blocking (binds the socket); KAD_WRONG_THREAD inside a callback.
/// KAD_INVALID_HANDLE for a freed node, KAD_SHUT_DOWN for a node shut down,
/// KAD_BAD_ADDRESS if `host` is not an IP address, KAD_INVALID_ARGUMENT for
/// `max_in_flight` above KAD_API_MAX_IN_FLIGHT (the detail names the limit),
/// KAD_NETWORK_ERROR if the address cannot be bound.
#[no_mangle]
pub unsafe extern "C" fn kad_api_server_start(
    node: *mut kad_node,
    host: *const c_char,
    port: u16,
    max_connections: usize,
    max_in_flight: usize,
    server_out: *mut *mut kad_api_server,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(server_out);
        let host = try_ref!(host);
        // SAFETY: non-NULL, NUL-terminated per the contract.
        let host = unsafe { CStr::from_ptr(host) };
        let Some(ip) = host.to_str().ok().and_then(|h| h.parse::<IpAddr>().ok()) else {
            return Failure::new(
                kad_result::KAD_BAD_ADDRESS,
                format!("API host {host:?} is not an IP address"),
            )
            .report();
        };
        let node = try_ffi!(node_from_handle(node));
        let defaults = ApiConfig::default();
        let config = ApiConfig {
            max_connections: if max_connections == 0 { defaults.max_connections } else { max_connections },
            max_in_flight_per_connection: if max_in_flight == 0 {
                defaults.max_in_flight_per_connection
            } else {
                max_in_flight
            },
            ..defaults
        };
        try_ffi!(ensure_not_runtime_thread());
        let rt = try_ffi!(runtime());
        // ApiServer::bind spawns the listener task: it must run inside the runtime.
        let bound = try_ffi!(run_blocking(rt, ApiServer::bind(node, SocketAddr::new(ip, port), config)));
        let inner = try_ffi!(bound.map_err(start_failure));
        let server = Box::into_raw(Box::new(kad_api_server { inner }));
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *server_out = server };
        kad_result::KAD_OK
    }
}

/// The TCP port the server listens on (the real one when port 0 was asked).
#[no_mangle]
pub unsafe extern "C" fn kad_api_server_port(
    server: *const kad_api_server,
    port_out: *mut u16,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(port_out);
        let server = try_ref!(server);
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *port_out = server.inner.local_addr().port() };
        kad_result::KAD_OK
    }
}

/// Stop the server (close the listener and every client connection; the node
/// keeps running) and release it, returning once the listening socket is
/// closed: the port can be bound again at once. NULL is ignored. Freeing the
/// same server twice is undefined behaviour.
///
/// May be called from a callback (it waits on another thread); from a log
/// callback it stops the server without waiting for the socket, as
/// kad_node_free does there.
#[no_mangle]
pub unsafe extern "C" fn kad_api_server_free(server: *mut kad_api_server) {
    ffi_panic_boundary! {
        if server.is_null() {
            return;
        }
        // SAFETY: `server` came from Box::into_raw in kad_api_server_start
        // and the caller gives up ownership here.
        let server = unsafe { Box::from_raw(server) }.inner;
        // Where waiting is refused (a log callback, a forked child) the
        // future, and the server in it, is dropped unrun: dropping an
        // ApiServer stops it without waiting.
        if let Err(f) = wait_on_runtime(None, server.stop()) {
            f.report();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::ptr;
    use std::time::Duration;

    use super::*;
    use crate::config::{kad_config_free, kad_config_new, kad_config_set_bind};
    use crate::node::{kad_node_free, kad_node_new};

    fn new_node() -> *mut kad_node {
        unsafe {
            let config = kad_config_new();
            assert_eq!(
                kad_config_set_bind(config, c"127.0.0.1".as_ptr(), 0),
                kad_result::KAD_OK
            );
            let mut node = ptr::null_mut();
            assert_eq!(kad_node_new(config, &mut node), kad_result::KAD_OK);
            kad_config_free(config);
            node
        }
    }

    /// A server on 127.0.0.1 on a free port, and that port.
    fn start_server(node: *mut kad_node) -> (*mut kad_api_server, u16) {
        let mut server = ptr::null_mut();
        let r = unsafe { kad_api_server_start(node, c"127.0.0.1".as_ptr(), 0, 0, 0, &mut server) };
        assert_eq!(r, kad_result::KAD_OK);
        let mut port = 0u16;
        assert_eq!(
            unsafe { kad_api_server_port(server, &mut port) },
            kad_result::KAD_OK
        );
        (server, port)
    }

    /// The server closes `c` (a read timeout would fail here).
    fn expect_closed(c: &mut TcpStream, why: &str) {
        let mut buf = [0u8; 1];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("connection still open {why}: {other:?}"),
        }
    }

    #[test]
    fn serves_the_api_until_freed() {
        let node = new_node();
        let (server, port) = start_server(node);
        assert_ne!(port, 0);

        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let key = [7u8; 32];
        let mut get = vec![0, 36, 0x02, 0x8b];
        get.extend_from_slice(&key);
        c.write_all(&get).unwrap();
        // A lone node has nothing: FAILURE (653), 36 bytes, echoing the key.
        let mut reply = [0u8; 36];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply[..4], &[0, 36, 0x02, 0x8d]);
        assert_eq!(&reply[4..], &key);

        unsafe { kad_api_server_free(server) };
        // Closing is asynchronous; the connection ends soon after.
        expect_closed(&mut c, "after kad_api_server_free");
        kad_node_free(node);
        unsafe { kad_api_server_free(ptr::null_mut()) };
    }

    #[test]
    fn stops_with_its_node_and_refuses_a_stopped_one() {
        let node = new_node();
        let (server, port) = start_server(node);
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(crate::node::kad_node_shutdown(node), kad_result::KAD_OK);
        expect_closed(&mut c, "after the node stopped");
        let mut refused = ptr::null_mut();
        let r = unsafe { kad_api_server_start(node, c"127.0.0.1".as_ptr(), 0, 0, 0, &mut refused) };
        assert_eq!(r, kad_result::KAD_SHUT_DOWN);
        assert!(refused.is_null());
        unsafe { kad_api_server_free(server) };
        kad_node_free(node);
    }

    fn detail() -> String {
        let mut buf = [0 as std::ffi::c_char; 256];
        let mut n = 0usize;
        unsafe { crate::error::kad_last_error_detail(buf.as_mut_ptr(), buf.len(), &mut n) };
        buf[..n].iter().map(|&c| c as u8 as char).collect()
    }

    #[test]
    fn in_flight_above_the_maximum_is_refused_at_start() {
        assert_eq!(
            KAD_API_MAX_IN_FLIGHT,
            dht_voidphone::MAX_IN_FLIGHT_PER_CONNECTION
        );
        let node = new_node();
        for too_many in [KAD_API_MAX_IN_FLIGHT + 1, usize::MAX] {
            let mut server = ptr::null_mut();
            let r = unsafe {
                kad_api_server_start(node, c"127.0.0.1".as_ptr(), 0, 0, too_many, &mut server)
            };
            // It used to start, then panic in every connection's semaphore.
            assert_eq!(r, kad_result::KAD_INVALID_ARGUMENT);
            assert!(server.is_null());
            let d = detail();
            assert!(d.contains("max_in_flight") && d.contains("65536"), "{d}");
        }
        let mut server = ptr::null_mut();
        let r = unsafe {
            kad_api_server_start(
                node,
                c"127.0.0.1".as_ptr(),
                0,
                usize::MAX,
                KAD_API_MAX_IN_FLIGHT,
                &mut server,
            )
        };
        assert_eq!(r, kad_result::KAD_OK);
        unsafe { kad_api_server_free(server) };
        kad_node_free(node);
    }

    /// kad_api_server_free returns once the listener is closed: the same
    /// port can be bound again at once, every time (it used to fail with
    /// EADDRINUSE in most tries: the listener closed later).
    #[test]
    fn the_port_is_free_when_free_returns() {
        let node = new_node();
        let (mut server, port) = start_server(node);
        let tries = 50;
        let mut rebound = 0;
        for _ in 0..tries {
            unsafe { kad_api_server_free(server) };
            server = ptr::null_mut();
            let r = unsafe {
                kad_api_server_start(node, c"127.0.0.1".as_ptr(), port, 0, 0, &mut server)
            };
            if r != kad_result::KAD_OK {
                // Try the next round from a fresh server on the same port.
                while unsafe {
                    kad_api_server_start(node, c"127.0.0.1".as_ptr(), port, 0, 0, &mut server)
                } != kad_result::KAD_OK
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            rebound += 1;
        }
        unsafe { kad_api_server_free(server) };
        kad_node_free(node);
        assert_eq!(
            rebound, tries,
            "port bound again right after free {rebound} times of {tries}"
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        let node = new_node();
        let mut server = ptr::null_mut();
        unsafe {
            let r = kad_api_server_start(node, c"localhost".as_ptr(), 0, 0, 0, &mut server);
            assert_eq!(r, kad_result::KAD_BAD_ADDRESS);
            let r = kad_api_server_start(node, ptr::null(), 0, 0, 0, &mut server);
            assert_eq!(r, kad_result::KAD_NULL_POINTER);
            let r = kad_api_server_start(node, c"127.0.0.1".as_ptr(), 0, 0, 0, ptr::null_mut());
            assert_eq!(r, kad_result::KAD_NULL_POINTER);
            assert!(server.is_null(), "out-parameter written on failure");
        }
        kad_node_free(node);
        let r = unsafe { kad_api_server_start(node, c"127.0.0.1".as_ptr(), 0, 0, 0, &mut server) };
        assert_eq!(r, kad_result::KAD_INVALID_HANDLE);
        let mut port = 0u16;
        assert_eq!(
            unsafe { kad_api_server_port(ptr::null(), &mut port) },
            kad_result::KAD_NULL_POINTER
        );
    }
}
