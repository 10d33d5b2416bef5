//! Batched UDP I/O for the tokio driver ([`crate::node`]). On Linux one
//! `sendmmsg` sends up to [`BATCH`] datagrams and one `recvmmsg` reads up to
//! [`BATCH`] (through `nix`); elsewhere each datagram is its own `send_to` /
//! `recv_from`. Nothing here waits while the socket has work: receiving takes
//! what is queued, sending waits only for the socket's send buffer. The
//! receive buffers belong to the worker thread, not to each node, so a
//! process with thousands of nodes keeps one set per thread.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tracing::debug;

use crate::rpc::Transmit;

/// A node's UDP socket, registered with tokio's reactor for reading only.
///
/// tokio's own `UdpSocket` registers for writability too, and a UDP socket
/// signals writability again each time the kernel frees one of its sent
/// datagrams (on loopback, as it is delivered): every datagram sent woke a
/// worker thread parked in `epoll_wait` for nothing, at the cost of a context
/// switch on another core. (`bench/epollout_wakeups.py`: 977 of 1,000 sends
/// woke the waiter with that interest, none without.) Sends go straight to the
/// socket, whose buffer nearly always has room; only when it has none does
/// [`NodeSocket::writable`] register a duplicate descriptor for writability,
/// for that one wait.
pub(crate) struct NodeSocket {
    io: AsyncFd<std::net::UdpSocket>,
}

impl NodeSocket {
    /// Takes over `socket` (made non-blocking) on the current runtime's reactor.
    pub(crate) fn register(socket: std::net::UdpSocket) -> io::Result<NodeSocket> {
        socket.set_nonblocking(true)?;
        // SAFETY: the descriptor is the socket's own, and the `AsyncFd` owns
        // the socket (and so keeps the descriptor open) for its whole life.
        let io = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(NodeSocket { io })
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Waits until a datagram may be queued. The readiness stays set until a
    /// read through [`NodeSocket::try_read`] finds the queue empty.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await?.retain_ready();
        Ok(())
    }

    /// Runs `read` on the socket; a `WouldBlock` from it clears the readiness.
    fn try_read<R>(
        &self,
        read: impl FnOnce(&std::net::UdpSocket) -> io::Result<R>,
    ) -> io::Result<R> {
        self.io.try_io(Interest::READABLE, read)
    }

    /// Waits until the socket's send buffer has room, through a duplicate
    /// of its descriptor registered for writability alone (the reactor
    /// cannot hold the same descriptor twice). Dropping it deregisters the
    /// duplicate before closing it, so no stale registration is left.
    async fn writable(&self) -> io::Result<()> {
        let duplicate = self.io.get_ref().try_clone()?;
        // SAFETY: as in `register`, for the duplicate's own descriptor.
        let waiter = unsafe { AsyncFd::register_with_interest(duplicate, Interest::WRITABLE) }?;
        waiter.writable().await?.retain_ready();
        Ok(())
    }
}

/// Datagrams per `sendmmsg`/`recvmmsg` call.
pub(crate) const BATCH: usize = 32;
/// Larger than any UDP payload, so nothing is truncated silently.
const RECV_BUFFER: usize = 65_536;

thread_local! {
    /// Up to [`BATCH`] receive buffers of [`RECV_BUFFER`] bytes, one set per thread:
    /// a batch is received and handled without an `.await` in between, so no
    /// other node on this thread can use them meanwhile. Only the pages a
    /// datagram touches become resident.
    static RECV_BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Fewest datagrams asked of one `recvmmsg`: with two, a lone datagram
/// comes back short of the request, which shows the queue empty (see
/// [`recv_batch`]); with one, a second call would have to find it so.
pub(crate) const MIN_SLOTS: usize = 2;

/// Reads what is queued on `socket` (at most `slots` datagrams, between
/// [`MIN_SLOTS`] and [`BATCH`]) without waiting, and calls
/// `handle(from, payload)` for each. When fewer than `slots` came, the queue
/// was empty: the socket's readiness is then cleared, so awaiting
/// `socket.readable()` waits for the next datagram. That saves the call that
/// would only find the queue empty, one per wake-up of a node that receives
/// a datagram at a time (most of them, in a network of many nodes). A
/// datagram that arrived after the read is not lost: tokio clears readiness
/// only if no readiness event came in between.
pub(crate) fn recv_batch(
    socket: &NodeSocket,
    slots: usize,
    mut handle: impl FnMut(SocketAddr, &[u8]),
) -> io::Result<usize> {
    RECV_BUFFERS.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let slots = slots.clamp(MIN_SLOTS, BATCH);
        // Allocated as first needed: a thread that never sees a burst keeps two.
        while bufs.len() < slots {
            bufs.push(vec![0u8; RECV_BUFFER]);
        }
        let mut got = [(0usize, None::<SocketAddr>); BATCH];
        let mut read = 0;
        let outcome = socket.try_read(|socket| {
            let received = sys::recv(socket, &mut bufs[..slots], &mut got)?;
            read = received.count;
            if received.drained {
                // Reported as WouldBlock so that tokio clears the readiness.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let n = read;
        for (buf, (len, from)) in bufs.iter().zip(got.iter()).take(n) {
            // A datagram without a sender address (not possible on UDP) is skipped.
            if let (Some(from), Some(payload)) = (from, buf.get(..*len)) {
                handle(*from, payload);
            }
        }
        Ok(n)
    })
}

/// Sends every datagram of `batch` (emptying it into `sent`, the payloads
/// for reuse), waiting only when the socket's send buffer is full. A
/// datagram the system refuses (an unreachable address, say) is dropped: the
/// peer shows up as an RPC timeout.
pub(crate) async fn send_batch(
    socket: &NodeSocket,
    local: SocketAddr,
    batch: &mut Vec<Transmit>,
    sent: &mut Vec<Vec<u8>>,
) {
    let mut next = 0;
    // The last send was refused for want of room, and room was waited for.
    let mut waited = false;
    while next < batch.len() {
        let chunk = &batch[next..batch.len().min(next + BATCH)];
        match sys::send(socket.io.get_ref(), local, chunk) {
            Ok(sent) => {
                next += sent.max(1);
                waited = false;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if waited {
                    // The socket reported room and still refused (EAGAIN for
                    // another reason than a full buffer): try again a
                    // millisecond later rather than spin.
                    tokio::time::sleep(SEND_RETRY).await;
                } else if let Err(e) = socket.writable().await {
                    // The runtime is stopping, or no descriptor is left for
                    // the wait's duplicate: the rest of the batch is dropped,
                    // as a full network drops datagrams (RPC timeouts follow).
                    debug!(error = %e, "cannot wait for room to send");
                    break;
                }
                waited = true;
            }
            Err(e) => {
                // sendmmsg reports an error only for the first datagram of a call.
                debug!(dest = %chunk[0].dest, error = %e, "send failed");
                next += 1;
            }
        }
    }
    sent.extend(batch.drain(..).map(|t| t.payload));
}

/// How long a send waits before trying again when waiting for room did not
/// help (see [`send_batch`]).
const SEND_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// What to send to: an IPv6 socket reaches IPv4 peers through mapped addresses.
pub(crate) fn sendable(addr: SocketAddr, local: SocketAddr) -> SocketAddr {
    match (local.ip(), addr.ip()) {
        (IpAddr::V6(_), IpAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), addr.port())
        }
        _ => addr,
    }
}

/// What one read took from the socket.
struct Received {
    count: usize,
    /// The socket's queue was found empty.
    drained: bool,
}

#[cfg(target_os = "linux")]
mod sys {
    //! `sendmmsg`/`recvmmsg` through nix. A send's message headers and
    //! destination addresses are kept per thread and reused (built per call
    //! they were four allocations a send). nix's `MultiHeaders` holds raw
    //! pointers, so it cannot live in the driver's `Send` future; a call
    //! never spans an `.await`, so the thread's set is free whenever one
    //! starts. A receive builds its headers per call: the kernel shortens
    //! each header's address length to the sender's, and nix resets it
    //! only in a new set, so reused headers would cut an IPv6 sender's
    //! address after an IPv4 one's.

    use std::cell::RefCell;
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use std::net::UdpSocket;

    use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

    use super::{sendable, Received, BATCH};
    use crate::rpc::Transmit;

    struct SendScratch {
        headers: MultiHeaders<SockaddrStorage>,
        /// One per datagram of a call; emptied (not freed) as the next starts.
        addrs: Vec<Option<SockaddrStorage>>,
    }

    thread_local! {
        static SEND_SCRATCH: RefCell<SendScratch> = RefCell::new(SendScratch {
            headers: MultiHeaders::preallocate(BATCH, None),
            addrs: Vec::with_capacity(BATCH),
        });
    }

    /// Reads up to `bufs.len()` (at most [`BATCH`]) datagrams. Fewer means
    /// the queue ran empty: `recvmmsg` also stops early at a pending socket
    /// error, but an unconnected UDP socket without `IP_RECVERR` (ours) is
    /// never given one.
    pub(super) fn recv(
        socket: &UdpSocket,
        bufs: &mut [Vec<u8>],
        got: &mut [(usize, Option<SocketAddr>); BATCH],
    ) -> io::Result<Received> {
        let asked = bufs.len().min(BATCH);
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(asked, None);
        let mut rest = bufs.iter_mut();
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                rest.next().map_or(&mut [][..], |b| b.as_mut_slice()),
            )]
        });
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices[..asked].iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut n = 0;
        for (slot, msg) in got.iter_mut().zip(received) {
            *slot = (msg.bytes, msg.address.and_then(|a| std_addr(&a)));
            n += 1;
        }
        Ok(Received {
            count: n,
            drained: n < asked,
        })
    }

    /// Sends `chunk` (at most [`BATCH`] datagrams); how many went.
    pub(super) fn send(
        socket: &UdpSocket,
        local: SocketAddr,
        chunk: &[Transmit],
    ) -> io::Result<usize> {
        let chunk = &chunk[..chunk.len().min(BATCH)];
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(chunk.get(i).map_or(&[][..], |t| &t.payload))]);
        SEND_SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            scratch.addrs.clear();
            scratch.addrs.extend(
                chunk
                    .iter()
                    .map(|t| Some(SockaddrStorage::from(sendable(t.dest, local)))),
            );
            let sent = sendmmsg(
                socket.as_raw_fd(),
                &mut scratch.headers,
                slices[..chunk.len()].iter(),
                &scratch.addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            )?;
            Ok(sent.count())
        })
    }

    fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
        }
        a.as_sockaddr_in6()
            .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! One system call per datagram where batched calls are not available.

    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    use super::{sendable, Received, BATCH};
    use crate::rpc::Transmit;

    pub(super) fn recv(
        socket: &UdpSocket,
        bufs: &mut [Vec<u8>],
        got: &mut [(usize, Option<SocketAddr>); BATCH],
    ) -> io::Result<Received> {
        let mut n = 0;
        for (buf, slot) in bufs.iter_mut().zip(got.iter_mut()) {
            match socket.recv_from(buf) {
                Ok((len, from)) => *slot = (len, Some(from)),
                // Empty: tokio clears the readiness (see `recv_batch`).
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Received {
                        count: n,
                        drained: true,
                    })
                }
                // What was read is handled; a lasting error shows up again next call.
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
            n += 1;
        }
        Ok(Received {
            count: n,
            drained: false,
        })
    }

    pub(super) fn send(
        socket: &UdpSocket,
        local: SocketAddr,
        chunk: &[Transmit],
    ) -> io::Result<usize> {
        let mut n = 0;
        for t in chunk {
            match socket.send_to(&t.payload, sendable(t.dest, local)) {
                Ok(_) => n += 1,
                // Report the sent ones; the failing datagram comes first next call.
                Err(_) if n > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    /// A node's socket on `addr` (inside a runtime).
    fn node_socket(addr: &str) -> NodeSocket {
        NodeSocket::register(std::net::UdpSocket::bind(addr).unwrap()).unwrap()
    }

    async fn receive(socket: &NodeSocket, count: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        while got.len() < count {
            socket.readable().await.unwrap();
            recv_batch(socket, BATCH, |from, payload| {
                got.push((from, payload.to_vec()))
            })
            .unwrap();
        }
        got
    }

    #[tokio::test]
    async fn batches_larger_than_one_call_arrive_whole_in_order_and_untruncated() {
        let a = node_socket("127.0.0.1:0");
        let b = node_socket("127.0.0.1:0");
        let c = node_socket("127.0.0.1:0");
        let (a_addr, b_addr, c_addr) = (
            a.local_addr().unwrap(),
            b.local_addr().unwrap(),
            c.local_addr().unwrap(),
        );
        // 3 * BATCH + 5 datagrams to two peers, then one near the UDP maximum.
        let count = 3 * BATCH + 5;
        let mut batch: Vec<Transmit> = (0..count)
            .map(|i| Transmit {
                dest: if i % 2 == 0 { b_addr } else { c_addr },
                payload: vec![i as u8; 1 + i],
            })
            .collect();
        batch.push(Transmit {
            dest: b_addr,
            payload: vec![9; 60_000],
        });
        let mut sent = Vec::new();
        send_batch(&a, a_addr, &mut batch, &mut sent).await;
        assert!(batch.is_empty());
        assert_eq!(sent.len(), count + 1, "every payload comes back for reuse");

        let to_b = receive(&b, count.div_ceil(2) + 1).await;
        let to_c = receive(&c, count / 2).await;
        let expect = |parity: usize| -> Vec<(SocketAddr, Vec<u8>)> {
            (0..count)
                .filter(|i| i % 2 == parity)
                .map(|i| (a_addr, vec![i as u8; 1 + i]))
                .collect()
        };
        let mut b_expected = expect(0);
        b_expected.push((a_addr, vec![9; 60_000]));
        assert_eq!(to_b, b_expected);
        assert_eq!(to_c, expect(1));
    }

    /// A read that comes back short has found the queue empty: one call
    /// clears the readiness (before, a second call had to find it empty),
    /// and a datagram sent afterwards still wakes the socket.
    #[tokio::test]
    async fn a_short_read_clears_readiness_and_the_next_datagram_still_wakes() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};

        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = node_socket("127.0.0.1:0");
        let b_addr = b.local_addr().unwrap();
        for round in 0..3u8 {
            a.send_to(&[round], b_addr).await.unwrap();
            b.readable().await.unwrap();
            let mut got = Vec::new();
            let n = recv_batch(&b, MIN_SLOTS, |_, p| got.push(p.to_vec())).unwrap();
            assert_eq!((n, got), (1, vec![vec![round]]));
            let mut readable = std::pin::pin!(b.readable());
            let poll = readable
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()));
            assert!(
                matches!(poll, Poll::Pending),
                "round {round}: still marked readable after a short read"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_datagram_is_dropped_and_the_rest_are_sent() {
        let a = node_socket("127.0.0.1:0");
        let b = node_socket("127.0.0.1:0");
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        // An IPv6 destination cannot be reached from an IPv4 socket: the system
        // refuses it, and the datagrams on either side of it still go out.
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let mut batch = vec![
            Transmit {
                dest: b_addr,
                payload: b"first".to_vec(),
            },
            Transmit {
                dest: v6,
                payload: b"never".to_vec(),
            },
            Transmit {
                dest: b_addr,
                payload: b"last".to_vec(),
            },
        ];
        send_batch(&a, a_addr, &mut batch, &mut Vec::new()).await;
        let got = receive(&b, 2).await;
        assert_eq!(
            got,
            vec![(a_addr, b"first".to_vec()), (a_addr, b"last".to_vec())]
        );
    }

    /// One thread receives and sends for an IPv4 socket and a dual-stack
    /// one in turn (as a worker thread does for the nodes it drives):
    /// whatever a call keeps for the next must not shorten or mix up the
    /// peers' addresses (16 bytes for IPv4, 28 for IPv6).
    #[tokio::test(flavor = "current_thread")]
    async fn a_dual_stack_socket_keeps_ipv4_and_ipv6_senders_apart() {
        use std::time::Duration;
        // Dual-stack whatever `net.ipv6.bindv6only` says, as a node's is.
        let dual = || -> io::Result<NodeSocket> {
            use socket2::{Domain, Protocol, Socket, Type};
            let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
            socket.set_only_v6(false)?;
            socket.bind(&SocketAddr::from(([0u16; 8], 0)).into())?;
            NodeSocket::register(socket.into())
        };
        let (Ok(dual), Ok(v6)) = (dual(), UdpSocket::bind("[::1]:0").await) else {
            return; // no IPv6 on this machine
        };
        // A lost datagram fails the test rather than hanging it.
        async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
            tokio::time::timeout(Duration::from_secs(10), f)
                .await
                .expect("a datagram was lost")
        }
        let port = dual.local_addr().unwrap().port();
        let v4 = node_socket("127.0.0.1:0");
        let (v4_addr, v6_addr) = (v4.local_addr().unwrap(), v6.local_addr().unwrap());
        let mapped = SocketAddr::new(
            match v4_addr.ip() {
                IpAddr::V4(ip) => IpAddr::V6(ip.to_ipv6_mapped()),
                other => other,
            },
            v4_addr.port(),
        );
        let other_v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let other_v4_addr = other_v4.local_addr().unwrap();
        for round in 0..3u8 {
            other_v4.send_to(&[round], v4_addr).await.unwrap();
            assert_eq!(
                within(receive(&v4, 1)).await,
                vec![(other_v4_addr, vec![round])]
            );
            v4.io
                .get_ref()
                .send_to(&[round], ("127.0.0.1", port))
                .unwrap();
            assert_eq!(within(receive(&dual, 1)).await, vec![(mapped, vec![round])]);
            v6.send_to(&[round, 6], ("::1", port)).await.unwrap();
            assert_eq!(
                within(receive(&dual, 1)).await,
                vec![(v6_addr, vec![round, 6])]
            );
            // And back: one batch to both.
            let local = dual.local_addr().unwrap();
            let mut batch = vec![
                Transmit {
                    dest: v6_addr,
                    payload: vec![round, 66],
                },
                Transmit {
                    dest: v4_addr,
                    payload: vec![round, 4],
                },
            ];
            send_batch(&dual, local, &mut batch, &mut Vec::new()).await;
            let mut buf = [0u8; 8];
            let (n, _) = within(v6.recv_from(&mut buf)).await.unwrap();
            assert_eq!(&buf[..n], &[round, 66]);
            let from_dual = SocketAddr::from(([127, 0, 0, 1], port));
            assert_eq!(
                within(receive(&v4, 1)).await,
                vec![(from_dual, vec![round, 4])]
            );
        }
    }

    /// The event masks this process's epoll instances hold for the file
    /// open as `fd`, one per registration (from `/proc/self/fdinfo`; Linux
    /// only). mio keeps a second descriptor of its epoll instance, which
    /// lists the same registrations: they are counted once.
    #[cfg(target_os = "linux")]
    fn epoll_masks(fd: std::os::fd::RawFd) -> Vec<u32> {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .ino();
        let mut registrations = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            let link = std::fs::read_link(entry.path()).unwrap_or_default();
            if link.to_string_lossy() != "anon_inode:[eventpoll]" {
                continue;
            }
            let name = entry.file_name().into_string().unwrap();
            let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{name}")) else {
                continue;
            };
            // "tfd:  9 events:  19 data:  1  pos:0 ino:3c5f sdev:8" (tfd in
            // decimal, events and ino in hex).
            for line in info.lines().filter(|l| l.starts_with("tfd:")) {
                let field = |key: &str| {
                    let rest = &line[line.find(key).unwrap() + key.len()..];
                    rest.split_whitespace().next().unwrap().to_string()
                };
                let hex = |key: &str| u64::from_str_radix(&field(key), 16).unwrap();
                if hex("ino:") == ino {
                    registrations.insert((field("tfd:"), hex("events:") as u32));
                }
            }
        }
        registrations.into_iter().map(|(_, mask)| mask).collect()
    }

    const EPOLLIN: u32 = 0x1;
    const EPOLLOUT: u32 = 0x4;

    /// tokio's own UDP socket is registered for writability too, so each
    /// datagram it sends wakes a thread parked on the reactor; a node's is
    /// registered for reading alone.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "current_thread")]
    async fn the_reactor_hears_of_datagrams_but_not_of_room_to_send() {
        use std::os::fd::AsRawFd;
        let tokio_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let masks = epoll_masks(tokio_socket.as_raw_fd());
        assert!(
            masks.len() == 1 && masks[0] & EPOLLOUT != 0,
            "tokio's UdpSocket: {masks:x?}"
        );
        let node = node_socket("127.0.0.1:0");
        let masks = epoll_masks(node.io.as_raw_fd());
        assert!(
            masks.len() == 1 && masks[0] & EPOLLIN != 0 && masks[0] & EPOLLOUT == 0,
            "a node's socket: {masks:x?}"
        );
    }

    /// Waiting for room to send (a full send buffer) goes through a
    /// duplicate descriptor; afterwards the socket is registered as before
    /// and still receives.
    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_room_to_send_leaves_the_socket_registered_for_reading() {
        let node = node_socket("127.0.0.1:0");
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // A hang guard, not a timing assertion: an empty send buffer has room.
        let within = |f| tokio::time::timeout(std::time::Duration::from_secs(10), f);
        within(node.writable()).await.unwrap().unwrap();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            assert_eq!(
                epoll_masks(node.io.as_raw_fd()).len(),
                1,
                "the duplicate is gone"
            );
        }
        let node_addr = node.local_addr().unwrap();
        peer.send_to(b"after", node_addr).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), receive(&node, 1))
            .await
            .unwrap();
        assert_eq!(got, vec![(peer.local_addr().unwrap(), b"after".to_vec())]);
    }

    #[test]
    fn ipv4_peers_of_an_ipv6_socket_are_sent_to_mapped_addresses() {
        let local: SocketAddr = "[::]:4000".parse().unwrap();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(
            sendable(peer, local),
            "[::ffff:10.0.0.1]:5000".parse().unwrap()
        );
        assert_eq!(sendable(peer, "0.0.0.0:1".parse().unwrap()), peer);
    }
}
