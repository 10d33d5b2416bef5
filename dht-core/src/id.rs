//! 160-bit identifiers, keys and the XOR metric.

use std::fmt;

use sha1::{Digest, Sha1};

/// Length in bytes of node ids and keys (SHA-1 output).
pub const ID_LEN: usize = 20;

/// A 160-bit identifier: a node's id, or the digest of a key.
///
/// Ordering is the big-endian numeric order, which is also the order of XOR
/// distances when two `Distance`s are compared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeId(pub [u8; ID_LEN]);

/// 20 bytes as (high 128 bits, low 32 bits), big-endian: comparing the pair
/// is a few instructions, where the byte-array order calls `memcmp` (the
/// routing table's bucket search and every lookup compare ids in their inner
/// loops; at 10⁴ nodes that `memcmp` was 6% of a simulation's CPU).
#[inline]
fn be_words(bytes: &[u8; ID_LEN]) -> (u128, u32) {
    let mut hi = [0u8; 16];
    hi.copy_from_slice(&bytes[..16]);
    let lo = [bytes[16], bytes[17], bytes[18], bytes[19]];
    (u128::from_be_bytes(hi), u32::from_be_bytes(lo))
}

impl Ord for NodeId {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        be_words(&self.0).cmp(&be_words(&other.0))
    }
}

impl PartialOrd for NodeId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Keys live in the same 160-bit space as node ids.
pub type Key = NodeId;

impl NodeId {
    /// SHA-1 of `data`, exactly as `kademlia.utils.digest` hashes bytes.
    ///
    /// ```
    /// use dht_core::NodeId;
    /// let k = NodeId::digest(b"hello");
    /// assert_eq!(k.to_hex(), "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
    /// ```
    pub fn digest(data: &[u8]) -> Self {
        let out = Sha1::digest(data);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&out);
        NodeId(id)
    }

    /// Wrap 20 bytes that already are a digest; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(NodeId)
    }

    /// A uniformly random id.
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; ID_LEN];
        rng.fill_bytes(&mut id);
        NodeId(id)
    }

    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// The next id in numeric order; `None` after the largest one. Lets a
    /// walk over ordered keys resume after the last key it saw.
    pub fn successor(&self) -> Option<NodeId> {
        let mut next = self.0;
        for b in next.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                return Some(NodeId(next));
            }
        }
        None
    }

    /// XOR distance to `other`.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; ID_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Bit `i` counted from the most significant bit (0..160).
    pub fn bit(&self, i: usize) -> bool {
        (self.0[i / 8] >> (7 - (i % 8))) & 1 == 1
    }

    /// Number of leading bits `self` and `other` share.
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        self.distance(other).leading_zeros()
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parse 40 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        // Hex digits only: `from_str_radix` also takes a sign ("+1+1...").
        if s.len() != ID_LEN * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut id = [0u8; ID_LEN];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(NodeId(id))
    }

    /// A random id that shares the first `prefix_len` bits with `self` (used to
    /// refresh a bucket: any id in its range will do).
    pub fn random_with_prefix<R: rand::Rng + ?Sized>(
        &self,
        prefix_len: usize,
        rng: &mut R,
    ) -> Self {
        let mut out = NodeId::random(rng);
        for i in 0..prefix_len.min(ID_LEN * 8) {
            let (byte, mask) = (i / 8, 0x80u8 >> (i % 8));
            out.0[byte] = (out.0[byte] & !mask) | (self.0[byte] & mask);
        }
        out
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// XOR distance between two ids; compares as a 160-bit unsigned integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Distance(pub [u8; ID_LEN]);

impl Distance {
    /// The distance's first 64 bits: orders distances as they do, except
    /// that two distances may share them.
    #[inline]
    pub fn prefix64(&self) -> u64 {
        let mut hi = [0u8; 8];
        hi.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(hi)
    }

    /// The distance with every bit after the first `bits` cleared.
    pub fn truncated(mut self, bits: usize) -> Distance {
        let bits = bits.min(ID_LEN * 8);
        let (whole, rest) = (bits / 8, bits % 8);
        if whole < ID_LEN {
            // Keep the first `rest` bits of the partial byte, clear the others.
            self.0[whole] &= !(0xffu8 >> rest);
            for b in &mut self.0[whole + 1..] {
                *b = 0;
            }
        }
        self
    }

    /// Number of leading zero bits (160 for distance zero).
    pub fn leading_zeros(&self) -> usize {
        for (i, b) in self.0.iter().enumerate() {
            if *b != 0 {
                return i * 8 + b.leading_zeros() as usize;
            }
        }
        ID_LEN * 8
    }
}

impl Ord for Distance {
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        be_words(&self.0).cmp(&be_words(&other.0))
    }
}

impl PartialOrd for Distance {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn digest_matches_python_sha1() {
        // python3 -c "import hashlib;print(hashlib.sha1(b'1').hexdigest())"
        assert_eq!(
            NodeId::digest(b"1").to_hex(),
            "356a192b7913b04c54574d18c28d46e6395428ab"
        );
        assert_eq!(
            NodeId::digest(b"").to_hex(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn xor_distance_properties() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = NodeId::random(&mut rng);
        let b = NodeId::random(&mut rng);
        let c = NodeId::random(&mut rng);
        assert_eq!(a.distance(&a), Distance([0; ID_LEN]));
        assert_eq!(a.distance(&b), b.distance(&a));
        // Unidirectional: for a fixed a and distance there is one b.
        let d = a.distance(&b);
        assert_ne!(a.distance(&c), d);
        assert_eq!(Distance([0; ID_LEN]).leading_zeros(), 160);
    }

    #[test]
    fn distance_order_is_numeric() {
        let zero = NodeId([0; ID_LEN]);
        let mut one = [0u8; ID_LEN];
        one[ID_LEN - 1] = 1;
        let mut big = [0u8; ID_LEN];
        big[0] = 0x80;
        let (one, big) = (NodeId(one), NodeId(big));
        assert!(zero.distance(&one) < zero.distance(&big));
        assert_eq!(zero.distance(&big).leading_zeros(), 0);
        assert_eq!(zero.distance(&one).leading_zeros(), 159);
        assert!(big.bit(0) && !big.bit(1));
    }

    #[test]
    fn distance_order_matches_byte_order() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for _ in 0..2000 {
            let (a, b, t) = (
                NodeId::random(&mut rng),
                NodeId::random(&mut rng),
                NodeId::random(&mut rng),
            );
            let (da, db) = (a.distance(&t), b.distance(&t));
            assert_eq!(da.cmp(&db), da.0.cmp(&db.0));
            assert_eq!(a.cmp(&b), a.0.cmp(&b.0));
            // Ids differing only in their last 4 bytes (the low word).
            let mut c = a;
            c.0[19] ^= 1;
            assert_eq!(a.cmp(&c), a.0.cmp(&c.0));
        }
        let mut x = [0u8; ID_LEN];
        x[19] = 1;
        assert!(Distance(x) > Distance([0; ID_LEN]));
        assert_eq!(Distance([0xff; ID_LEN]).truncated(12).leading_zeros(), 0);
        assert_eq!(Distance([0xff; ID_LEN]).truncated(12).0[1], 0xf0);
        assert_eq!(Distance([0xff; ID_LEN]).truncated(12).0[2], 0);
    }

    #[test]
    fn hex_round_trip_and_prefix() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = NodeId::random(&mut rng);
        assert_eq!(NodeId::from_hex(&a.to_hex()), Some(a));
        assert_eq!(NodeId::from_hex("zz"), None);
        // Forty characters that `u8::from_str_radix` pair by pair would take.
        assert_eq!(NodeId::from_hex(&"+1".repeat(20)), None);
        assert_eq!(NodeId::from_hex(&a.to_hex().to_uppercase()), Some(a));
        assert_eq!(NodeId::from_slice(&[1, 2, 3]), None);
        for p in [0, 1, 7, 8, 9, 100, 160] {
            let b = a.random_with_prefix(p, &mut rng);
            assert!(a.common_prefix_len(&b) >= p);
        }
    }
}
