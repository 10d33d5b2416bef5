//! Compact keys for the per-peer tables a node keeps (verified addresses,
//! round-trip estimates, public-address votes): a 64-bit keyed hash of the
//! address instead of the address itself.
//!
//! A `SocketAddr` is 32 bytes, even for IPv4, and a `HashMap` hashes it
//! with SipHash on every access. These tables hold an entry per peer that
//! ever answered us, so in a simulation of 10⁴ nodes they were half of all
//! memory. A [`PeerKey`] is 8 bytes; being the output of a SipHash keyed
//! with per-table random keys, it is hashed no further ([`PeerMap`] uses it
//! as is) and a remote host can neither predict it (no hash flooding) nor
//! make two addresses share one except by chance (2⁻⁶⁴ per pair).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU64;

use crate::id::NodeId;

/// An address (or node id) as a per-table random 64-bit fingerprint.
/// Never zero, so an `Option<PeerKey>` is 8 bytes too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey(NonZeroU64);

impl PeerKey {
    fn new(hash: u64) -> Self {
        PeerKey(NonZeroU64::new(hash).unwrap_or(NonZeroU64::MIN))
    }
}

/// Turns addresses and ids into [`PeerKey`]s; each table has its own keys.
#[derive(Debug, Default)]
pub struct PeerKeys(RandomState);

impl PeerKeys {
    pub fn addr(&self, addr: &SocketAddr) -> PeerKey {
        PeerKey::new(self.0.hash_one(addr))
    }

    pub fn ip(&self, ip: &IpAddr) -> PeerKey {
        PeerKey::new(self.0.hash_one(ip))
    }

    pub fn id(&self, id: &NodeId) -> PeerKey {
        PeerKey::new(self.0.hash_one(id))
    }
}

/// A map keyed by [`PeerKey`], which needs no further hashing.
pub type PeerMap<V> = HashMap<PeerKey, V, BuildHasherDefault<PassThrough>>;

/// The hasher of [`PeerMap`]: a [`PeerKey`] is already a keyed hash.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is reached through `PeerKey`'s derived `Hash`;
        // anything else is folded in rather than ignored.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_per_table_and_differ_between_tables() {
        let (a, b) = (PeerKeys::default(), PeerKeys::default());
        let x: SocketAddr = "198.51.100.2:4000".parse().expect("addr");
        let y: SocketAddr = "198.51.100.2:4001".parse().expect("addr");
        assert_eq!(a.addr(&x), a.addr(&x));
        assert_ne!(a.addr(&x), a.addr(&y));
        assert_ne!(a.addr(&x), b.addr(&x), "each table has its own keys");
        let mut map = PeerMap::default();
        map.insert(a.addr(&x), 1);
        map.insert(a.addr(&y), 2);
        assert_eq!(map.get(&a.addr(&x)), Some(&1));
        assert_eq!(map.get(&a.addr(&y)), Some(&2));
    }
}
