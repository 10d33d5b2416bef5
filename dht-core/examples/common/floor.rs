//! The loopback floors the benchmarks compare against, and the process's CPU
//! time. Shared by the `efficiency` and `bench` examples.
//!
//! [`ping_pong`]: two blocking sockets on 127.0.0.1, one thread each,
//! bouncing one 100-byte datagram (one `send_to` and one `recv_from` per
//! datagram, nothing else). Every datagram wakes the thread that sleeps on
//! it, so on a virtual machine whose wake-ups are slow this floor measures
//! the wake-ups more than the datagrams (a 7 µs round trip on one machine
//! of ours, 77 µs on another).
//!
//! [`one_thread_ping_pong`]: the same two sockets and datagram on one
//! thread, each receive finding its datagram already queued: what the
//! kernel charges for a datagram, with no scheduler in the way.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::json;

use super::BoxError;

/// User + system CPU time of the whole process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes a plain struct that we own; zeroed is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Two sockets, two threads, `rounds` round trips of a 100-byte datagram.
pub fn ping_pong(rounds: usize) -> Result<serde_json::Value, BoxError> {
    if rounds == 0 {
        return Err("the ping-pong needs at least one round".into());
    }
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    let b_addr = b.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = [0u8; 2048];
        for _ in 0..rounds {
            let (n, from) = b.recv_from(&mut buf)?;
            b.send_to(&buf[..n], from)?;
        }
        Ok(())
    });
    let payload = [7u8; 100];
    let mut buf = [0u8; 2048];
    let mut rtts = Vec::with_capacity(rounds);
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    for _ in 0..rounds {
        let sent = Instant::now();
        a.send_to(&payload, b_addr)?;
        a.recv_from(&mut buf)?;
        rtts.push(sent.elapsed());
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());
    echo.join().map_err(|_| "echo thread panicked")??;
    rtts.sort();
    let mut figures = rate(2 * rounds, cpu, wall);
    figures["rtt_p50_us"] = json!(rtts[rtts.len() / 2].as_secs_f64() * 1e6);
    Ok(figures)
}

/// A floor's figures: datagrams moved, in what CPU and wall time.
fn rate(datagrams: usize, cpu: Duration, wall: Duration) -> serde_json::Value {
    json!({
        "datagrams": datagrams,
        "cpu_s": cpu.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "datagrams_per_cpu_s": (datagrams as f64 / cpu.as_secs_f64()).round(),
    })
}

/// Two sockets, one thread, `rounds` round trips of a 100-byte datagram:
/// `a` sends to `b`, `b` receives and sends back, `a` receives. Loopback
/// queues a datagram on the receiving socket within `send_to`, so no
/// receive ever sleeps.
#[allow(dead_code)] // `bench` includes this module for `ping_pong` only.
pub fn one_thread_ping_pong(rounds: usize) -> Result<serde_json::Value, BoxError> {
    if rounds == 0 {
        return Err("the ping-pong needs at least one round".into());
    }
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    // A datagram lost in the kernel would block forever: time out instead.
    for socket in [&a, &b] {
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    }
    let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
    let payload = [7u8; 100];
    let mut buf = [0u8; 2048];
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    for _ in 0..rounds {
        a.send_to(&payload, b_addr)?;
        let (n, _) = b.recv_from(&mut buf)?;
        b.send_to(&buf[..n], a_addr)?;
        a.recv_from(&mut buf)?;
    }
    Ok(rate(2 * rounds, cpu_time() - cpu0, wall0.elapsed()))
}
