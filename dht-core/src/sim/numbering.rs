//! The simulation's [`ContactDirectory`]: node `i` is listed as number `i`,
//! at [`addr_of`]`(i)`, with an id computed from the simulation's seed and
//! `i`. Nothing is stored, so the directory is shared by every node on
//! either thread without a lock, and a table resolves a listed contact
//! with a few multiplications.
//!
//! The ids are those of the nodes (a node created without an id of its
//! own takes the one listed for it), uniformly spread like random ones:
//! each is three outputs of SplitMix64, a fast mixer of statistical, not
//! cryptographic, quality, which a simulation's ids need no more than.

use std::net::SocketAddr;

use super::shard::{addr_of, index_of};
use super::MAX_NODES;
use crate::contact::Contact;
use crate::directory::ContactDirectory;
use crate::id::{NodeId, ID_LEN};

#[derive(Debug)]
pub(super) struct Numbering {
    key: u64,
}

/// SplitMix64's increment: stream `i` starts `3·i` steps in, so the three
/// words of one id never overlap another's.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl Numbering {
    pub(super) fn new(seed: u64) -> Self {
        // A key of its own, so ids do not follow the seed's other streams.
        Numbering {
            key: mix(seed ^ 0x1d5_1d5_1d5),
        }
    }

    pub(super) fn id(&self, index: u32) -> NodeId {
        let mut id = [0u8; ID_LEN];
        let start = self
            .key
            .wrapping_add(u64::from(index).wrapping_mul(GAMMA.wrapping_mul(3)));
        for (word, chunk) in (1u64..).zip(id.chunks_mut(8)) {
            let bytes = mix(start.wrapping_add(word.wrapping_mul(GAMMA))).to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        NodeId(id)
    }
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ContactDirectory for Numbering {
    fn number_of(&self, contact: &Contact) -> Option<u32> {
        let index = index_of(&contact.addr, MAX_NODES)?;
        let number = u32::try_from(index).ok()?;
        (self.id(number) == contact.id).then_some(number)
    }

    fn contact(&self, number: u32) -> Contact {
        Contact::new(self.id(number), self.addr(number))
    }

    fn addr(&self, number: u32) -> SocketAddr {
        addr_of(number as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_node_at_its_address_only_and_spreads_ids_evenly() {
        let numbering = Numbering::new(42);
        let mut first_bits = [0usize; 16];
        for i in (0..MAX_NODES as u32).step_by(4099) {
            let c = numbering.contact(i);
            assert_eq!(numbering.number_of(&c), Some(i));
            let elsewhere = Contact::new(c.id, addr_of(i as usize + 1));
            assert_eq!(numbering.number_of(&elsewhere), None);
            let mut other = c;
            other.id.0[19] ^= 1;
            assert_eq!(numbering.number_of(&other), None);
            first_bits[usize::from(c.id.0[0] >> 4)] += 1;
        }
        // 4,096 ids over 16 values of their first 4 bits: 256 each expected.
        let (lo, hi) = (first_bits.iter().min(), first_bits.iter().max());
        assert!(
            lo >= Some(&200) && hi <= Some(&312),
            "first 4 bits: {first_bits:?}"
        );
        assert_ne!(Numbering::new(1).id(5), Numbering::new(2).id(5));
    }
}
