//! A node's UDP socket and the addresses it deals in: binding (dual-stack
//! for "::", a large receive buffer) and the forms of a peer address that
//! make one peer one address.

use std::net::{IpAddr, SocketAddr};

use tracing::debug;

use crate::error::Result;
use crate::udp::NodeSocket;

/// The socket receive buffer asked of the kernel (which caps it at
/// `net.core.rmem_max` and, on Linux, doubles it). A flood overflows the
/// default (208 KB, a few hundred small datagrams) whenever the driver
/// misses a millisecond, and the kernel then drops honest requests with the
/// flood's. Measured with `tests/udp_flood.rs` (400,000 datagrams at
/// 400,000/s, 2 cores at load average 13): the default lost 81-84% of the
/// datagrams and 8 of 204 honest gets; 4 MB asked (8 MB granted) lost 0-4%
/// and 1 get of 144. The memory is used only while datagrams queue.
const SOCKET_RECV_BUFFER: usize = 4 << 20;
/// Bind the node's socket, with a receive buffer of [`SOCKET_RECV_BUFFER`].
pub(crate) fn bind_socket(addr: SocketAddr) -> Result<NodeSocket> {
    let socket = bind_plain_socket(addr)?;
    // Best effort: a smaller buffer than asked for still works.
    let sock = socket2::SockRef::from(&socket);
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_RECV_BUFFER) {
        debug!(error = %e, "could not enlarge the socket receive buffer");
    }
    debug!(bytes = ?sock.recv_buffer_size(), "socket receive buffer");
    Ok(NodeSocket::register(socket)?)
}

/// For the IPv6 unspecified address ("::") the socket is made dual-stack
/// explicitly (IPV6_V6ONLY off), so one node serves IPv4 and IPv6 peers
/// whatever the system default (`net.ipv6.bindv6only` on Linux) says.
fn bind_plain_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    match addr.ip() {
        IpAddr::V6(ip) if ip.is_unspecified() => {
            use socket2::{Domain, Protocol, Socket, Type};
            let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            socket.set_only_v6(false)?;
            socket.bind(&addr.into())?;
            Ok(socket.into())
        }
        _ => std::net::UdpSocket::bind(addr),
    }
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) as plain IPv4, so a
/// peer has one address whichever way we heard of it.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// A wildcard address (`0.0.0.0`, `::`) as the loopback address of its
/// family. Programs bootstrap through `("0.0.0.0", port)` to reach a node on
/// this host, as the Python package allows; the answer comes from loopback,
/// so that is the address the request must be recorded as sent to.
pub(crate) fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}
