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
//! make two addresses share one except by chance (2⁻⁶⁴ per pair; the peer
//! array and the public-address votes keep 32 of its bits, 2⁻³² per pair:
//! see `peer_array`).

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

    #[cfg(test)]
    pub(crate) fn from_bits(bits: u64) -> Self {
        PeerKey::new(bits)
    }

    /// The low 32 bits, for tables that keep a shorter fingerprint.
    pub fn low_bits(self) -> u32 {
        self.0.get() as u32
    }

    /// The high 32 bits: the key as the tables that keep 4 bytes of it
    /// hold it (the peer array, the public-address votes).
    pub(crate) fn high_bits(self) -> u32 {
        (self.0.get() >> 32) as u32
    }
}

/// Turns addresses and ids into [`PeerKey`]s; each table has its own keys.
#[derive(Debug, Default)]
pub struct PeerKeys(RandomState);

impl PeerKeys {
    /// An IPv4 address is hashed as one 64-bit word (tag, address, port):
    /// hashing the `SocketAddr` itself feeds SipHash its enum tag, octets
    /// and port in separate writes, and these keys are computed a few times
    /// for every datagram (one word instead: 1% fewer instructions in a
    /// 2,000-node simulation, where SipHash in all took 7%). The tag bit
    /// keeps the word apart from an IPv4 `ip` key's.
    pub fn addr(&self, addr: &SocketAddr) -> PeerKey {
        match addr {
            SocketAddr::V4(v4) => {
                let word = 1 << 48 | u64::from(v4.ip().to_bits()) << 16 | u64::from(v4.port());
                PeerKey::new(self.0.hash_one(word))
            }
            SocketAddr::V6(_) => PeerKey::new(self.0.hash_one(addr)),
        }
    }

    pub fn ip(&self, ip: &IpAddr) -> PeerKey {
        match ip {
            IpAddr::V4(v4) => PeerKey::new(self.0.hash_one(u64::from(v4.to_bits()))),
            IpAddr::V6(_) => PeerKey::new(self.0.hash_one(ip)),
        }
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
        self.0 = fold(self.0, bytes);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Bytes a pass-through hasher does not expect, mixed in all the same.
fn fold(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, &b| h.rotate_left(8) ^ u64::from(b))
}

/// A map keyed by our own message ids. Their last 8 bytes come from the
/// node's cryptographic RNG, so they are used as the hash as they are
/// instead of running SipHash over all 20 bytes on every request sent and
/// every reply matched. A reply may carry any id, but only our random ones
/// are ever inserted, so chosen ids cannot make entries collide.
pub type MsgIdMap<V> = HashMap<crate::wire::MsgId, V, BuildHasherDefault<RandomTail>>;

/// The hasher of [`MsgIdMap`]: the last 8 bytes written.
#[derive(Default)]
pub struct RandomTail(u64);

impl Hasher for RandomTail {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = match bytes.last_chunk::<8>() {
            Some(tail) => self.0 ^ u64::from_le_bytes(*tail),
            None => fold(self.0, bytes),
        };
    }

    // The array's length, written before its bytes: the same for every id.
    fn write_usize(&mut self, _: usize) {}
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
        // IPv4 addresses are packed into one word: every part counts.
        let z: SocketAddr = "198.51.100.3:4000".parse().expect("addr");
        let v6: SocketAddr = "[::ffff:198.51.100.2]:4000".parse().expect("addr");
        assert_ne!(a.addr(&x), a.addr(&z));
        assert_ne!(a.addr(&x), a.addr(&v6));
        assert_ne!(a.ip(&x.ip()), a.ip(&z.ip()));
        assert_eq!(a.ip(&x.ip()), a.ip(&y.ip()));
        let mut map = PeerMap::default();
        map.insert(a.addr(&x), 1);
        map.insert(a.addr(&y), 2);
        assert_eq!(map.get(&a.addr(&x)), Some(&1));
        assert_eq!(map.get(&a.addr(&y)), Some(&2));
    }

    #[test]
    fn message_ids_hash_by_their_random_tail() {
        let hash =
            |id: &crate::wire::MsgId| BuildHasherDefault::<RandomTail>::default().hash_one(id);
        let mut a = [7u8; crate::wire::MSG_ID_LEN];
        let b = a;
        assert_eq!(hash(&a), hash(&b));
        a[crate::wire::MSG_ID_LEN - 1] = 8;
        assert_ne!(hash(&a), hash(&b));
        let mut map = MsgIdMap::default();
        map.insert(a, 1);
        map.insert(b, 2);
        assert_eq!((map.get(&a), map.get(&b)), (Some(&1), Some(&2)));
    }
}
