//! Peer addresses from C strings: checked on the calling thread; host names
//! resolved on the calling thread by blocking calls, later on the runtime by
//! _async ones.
//!
//! An address given to an operation is "host:port". Literals ("127.0.0.1:4000",
//! "[::1]:4000") are checked at once: one this node can never reach (another
//! IP family, port 0) is
//! KAD_BAD_ADDRESS before anything starts. Host names are only checked for
//! shape by _async calls; they are resolved inside the operation (on the
//! library's callback pool), so an _async call never blocks on DNS and a
//! name that does not resolve is reported to its callback. Blocking calls
//! resolve them first, on the caller's thread ([`resolve_here`]): on the
//! callback pool they would wait behind callbacks, which may be waiting for
//! the very thread that made the call.

use std::ffi::{c_char, CStr};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

use dht_core::Node;

use crate::error::{kad_result, Failure};

/// One peer address as given by C: a checked literal, a name to resolve, or
/// the reachable addresses a name resolved to.
pub(crate) enum PeerAddr {
    Literal(SocketAddr),
    Name(String),
    Resolved(Vec<SocketAddr>),
}

fn bad(why: String) -> Failure {
    Failure::new(kad_result::KAD_BAD_ADDRESS, why)
}

fn check(addr: SocketAddr, node: &Node) -> Result<SocketAddr, Failure> {
    node.check_peer_addr(addr).map_err(Failure::from)?;
    Ok(addr)
}

/// Check one "host:port" string without resolving it.
fn parse(s: &CStr, node: &Node) -> Result<PeerAddr, Failure> {
    let s = s
        .to_str()
        .map_err(|_| bad("address is not valid UTF-8".to_owned()))?;
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(PeerAddr::Literal(check(a, node)?));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(bad(format!("bad address {s:?}: want host:port")));
    };
    match port.parse::<u16>() {
        Ok(0) => Err(bad(format!("bad address {s:?}: port 0 cannot be reached"))),
        Ok(_) if !host.is_empty() && !host.contains(':') => Ok(PeerAddr::Name(s.to_owned())),
        _ => Err(bad(format!("bad address {s:?}: want host:port"))),
    }
}

/// # Safety
/// `addr` must be NULL or a NUL-terminated string.
pub(crate) unsafe fn parse_one(addr: *const c_char, node: &Node) -> Result<PeerAddr, Failure> {
    if addr.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `addr` is NULL",
        ));
    }
    // SAFETY: non-NULL, NUL-terminated per the contract.
    parse(unsafe { CStr::from_ptr(addr) }, node)
}

/// # Safety
/// `addrs` must be NULL (with `len` 0) or point to `len` NUL-terminated strings.
pub(crate) unsafe fn parse_list(
    addrs: *const *const c_char,
    len: usize,
    node: &Node,
) -> Result<Vec<PeerAddr>, Failure> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if addrs.is_null() {
        return Err(Failure::new(
            kad_result::KAD_NULL_POINTER,
            "argument `addrs` is NULL",
        ));
    }
    crate::key::check_len(len, std::mem::size_of::<*const c_char>(), "addrs")?;
    // SAFETY: `len` readable pointers per the contract; length checked above.
    let ptrs = unsafe { std::slice::from_raw_parts(addrs, len) };
    let mut out = Vec::with_capacity(len);
    for (i, p) in ptrs.iter().enumerate() {
        if p.is_null() {
            return Err(Failure::new(
                kad_result::KAD_NULL_POINTER,
                format!("addrs[{i}] is NULL"),
            ));
        }
        // SAFETY: non-NULL, NUL-terminated per the contract.
        out.push(parse(unsafe { CStr::from_ptr(*p) }, node)?);
    }
    Ok(out)
}

/// The addresses `name` resolved to (or why not) that the node can reach.
fn reachable(
    name: &str,
    resolved: std::io::Result<Vec<SocketAddr>>,
    node: &Node,
) -> Result<Vec<SocketAddr>, Failure> {
    let all = resolved.map_err(|e| bad(format!("cannot resolve {name:?}: {e}")))?;
    let usable: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| node.check_peer_addr(*a).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(bad(format!(
            "{name:?} resolves to {all:?}, none reachable from this node at {}",
            node.local_addr()
        )));
    }
    Ok(usable)
}

/// Resolve (on the runtime) the addresses of one peer, keeping those the
/// node can reach.
pub(crate) async fn resolve(addr: PeerAddr, node: &Node) -> Result<Vec<SocketAddr>, Failure> {
    let name = match addr {
        PeerAddr::Literal(a) => return Ok(vec![a]),
        PeerAddr::Resolved(addrs) => return Ok(addrs),
        PeerAddr::Name(name) => name,
    };
    let resolved = tokio::net::lookup_host(name.as_str())
        .await
        .map(Iterator::collect);
    reachable(&name, resolved, node)
}

/// Resolve the names among `addrs` now, for a blocking call (see the module
/// documentation), waiting at most `limit` (`None`: as long as it takes).
/// The system resolver cannot be interrupted, so it runs on a thread of its
/// own that the caller waits for: a slow resolver costs the caller `limit`
/// (then KAD_TIMEOUT), not however long the resolver takes. The thread
/// finishes on its own.
pub(crate) fn resolve_here(
    addrs: Vec<PeerAddr>,
    node: &Node,
    limit: Option<Duration>,
) -> Result<Vec<PeerAddr>, Failure> {
    let names: Vec<String> = addrs
        .iter()
        .filter_map(|a| match a {
            PeerAddr::Name(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kadmium-resolve".into())
        .spawn(move || {
            let resolved: Vec<std::io::Result<Vec<SocketAddr>>> = names
                .iter()
                .map(|n| n.as_str().to_socket_addrs().map(Iterator::collect))
                .collect();
            let _ = tx.send(resolved);
        })
        .map_err(|e| {
            Failure::new(
                kad_result::KAD_RUNTIME_ERROR,
                format!("resolver thread: {e}"),
            )
        })?;
    let timed_out = || {
        Failure::new(
            kad_result::KAD_TIMEOUT,
            "resolving the host names took longer than the call's timeout",
        )
    };
    let resolved = match limit {
        Some(limit) => rx.recv_timeout(limit).map_err(|_| timed_out())?,
        None => rx.recv().map_err(|_| timed_out())?,
    };
    let mut resolved = resolved.into_iter();
    addrs
        .into_iter()
        .map(|a| match a {
            PeerAddr::Name(name) => {
                let found = resolved.next().unwrap_or_else(|| Ok(Vec::new()));
                reachable(&name, found, node).map(PeerAddr::Resolved)
            }
            other => Ok(other),
        })
        .collect()
}

/// Resolve every address of a list.
pub(crate) async fn resolve_all(
    addrs: Vec<PeerAddr>,
    node: &Node,
) -> Result<Vec<SocketAddr>, Failure> {
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        out.extend(resolve(a, node).await?);
    }
    Ok(out)
}
