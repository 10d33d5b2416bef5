//! A node's random numbers: the ChaCha12 stream `StdRng` draws from, without
//! `StdRng`'s 256-byte buffer of output drawn ahead.
//!
//! A node draws a few random bytes per RPC (its message id, which answers
//! must echo, so it must be unpredictable) and now and then a jitter or a
//! random target, so a buffer saves little time; it was 272 of the 2,640
//! bytes of a [`Protocol`](crate::Protocol), and a simulation holds 10⁶ of
//! them. Each draw here runs the cipher afresh (four ChaCha blocks, the
//! width its SIMD code works at, ~0.1 µs) and takes what it needs; the rest
//! of those blocks is dropped, never handed out twice.

use rand::rand_core::block::BlockRngCore;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Core;

/// ChaCha12 output, drawn only as needed. Its `Debug` shows no state. Not
/// `Clone`: a copy would repeat the message ids the original draws.
#[derive(Debug)]
pub struct NodeRng {
    core: ChaCha12Core,
}

impl NodeRng {
    /// Fill `dest` from fresh blocks of the stream.
    fn draw(&mut self, dest: &mut [u8]) {
        let mut block = <ChaCha12Core as BlockRngCore>::Results::default();
        for chunk in dest.chunks_mut(block.as_ref().len() * 4) {
            self.core.generate(&mut block);
            for (bytes, word) in chunk.chunks_mut(4).zip(block.as_ref()) {
                bytes.copy_from_slice(&word.to_le_bytes()[..bytes.len()]);
            }
        }
    }
}

impl RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0; 4];
        self.draw(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0; 8];
        self.draw(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.draw(dest);
    }
}

/// The ChaCha12 stream is what `StdRng` (a CSPRNG) reads from too.
impl CryptoRng for NodeRng {}

impl SeedableRng for NodeRng {
    type Seed = [u8; 32];

    fn from_seed(seed: Self::Seed) -> Self {
        NodeRng {
            core: ChaCha12Core::from_seed(seed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_chacha::ChaCha12Rng;

    /// The bytes are ChaCha12's own: each draw starts a fresh run of four
    /// blocks (64 words), so a draw of n bytes is the first n bytes of the
    /// stream from that block on.
    #[test]
    fn draws_read_the_chacha12_stream_a_run_of_blocks_each() {
        let seed = [7; 32];
        let mut ours = NodeRng::from_seed(seed);
        let mut reference = ChaCha12Rng::from_seed(seed);
        let mut expected = [0u8; 256 * 3];
        reference.fill_bytes(&mut expected);

        assert_eq!(ours.next_u64().to_le_bytes(), expected[..8]);
        let mut eleven = [0u8; 11];
        ours.fill_bytes(&mut eleven);
        assert_eq!(eleven, expected[256..267]);
        let mut long = [0u8; 300];
        let mut reference = ChaCha12Rng::from_seed(seed);
        reference.set_word_pos(128);
        let mut expected = [0u8; 512];
        reference.fill_bytes(&mut expected);
        ours.fill_bytes(&mut long);
        assert_eq!(long[..256], expected[..256]);
        assert_eq!(long[256..], expected[256..300]);
    }

    #[test]
    fn two_seeds_give_two_streams_and_ranges_hold() {
        let mut a = NodeRng::seed_from_u64(1);
        let mut b = NodeRng::seed_from_u64(2);
        assert_ne!(a.next_u64(), b.next_u64());
        for _ in 0..1000 {
            let x = a.random_range(0.9..=1.0);
            assert!((0.9..=1.0).contains(&x));
        }
        assert!(std::mem::size_of::<NodeRng>() <= 64);
    }
}
