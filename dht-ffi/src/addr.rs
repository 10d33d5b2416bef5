//! Peer addresses from C strings: checked on the calling thread, resolved
//! later on the runtime.
//!
//! An address given to an operation is "host:port". Literals ("127.0.0.1:4000",
//! "[::1]:4000") are checked at once: one this node can never reach (another
//! IP family, port 0) is
//! KAD_BAD_ADDRESS before anything starts. Host names are only checked for
//! shape on the calling thread; they are resolved inside the operation (on
//! the library's callback pool), so an _async call never blocks on DNS and a
//! name that does not resolve is reported to its callback.

use std::ffi::{c_char, CStr};
use std::net::SocketAddr;

use dht_core::Node;

use crate::error::{kad_result, Failure};

/// One peer address as given by C: a checked literal, or a name to resolve.
pub(crate) enum PeerAddr {
    Literal(SocketAddr),
    Name(String),
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

/// Resolve (on the runtime) the addresses of one peer, keeping those the
/// node can reach.
pub(crate) async fn resolve(addr: PeerAddr, node: &Node) -> Result<Vec<SocketAddr>, Failure> {
    let name = match addr {
        PeerAddr::Literal(a) => return Ok(vec![a]),
        PeerAddr::Name(name) => name,
    };
    let local = node.local_addr();
    let all: Vec<SocketAddr> = tokio::net::lookup_host(name.as_str())
        .await
        .map_err(|e| bad(format!("cannot resolve {name:?}: {e}")))?
        .collect();
    let usable: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| node.check_peer_addr(*a).is_ok())
        .collect();
    if usable.is_empty() {
        return Err(bad(format!(
            "{name:?} resolves to {all:?}, none reachable from this node at {local}"
        )));
    }
    Ok(usable)
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
