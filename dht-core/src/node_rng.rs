//! A node's random numbers: the ChaCha12 stream `StdRng` draws from, with
//! 47 bytes of it kept between draws instead of `StdRng`'s 256.
//!
//! A node draws a few random bytes per RPC (its message id, which answers
//! must echo, so it must be unpredictable: 11 bytes) and now and then a
//! jitter or a random target. The cipher makes a run of four ChaCha blocks
//! at a time (256 bytes, the width its SIMD code works at, ~0.1 µs), and
//! running it afresh for every 11-byte id was 3.6% of a put's instructions.
//! `StdRng` keeps the whole run, but that was 272 of the 2,640 bytes of a
//! [`Protocol`](crate::Protocol), and a simulation holds 10⁶ of them. Here
//! the bytes after a draw's are kept, up to [`SPARE`] of them (four more
//! message ids), and the rest of the run is dropped: no byte is handed out
//! twice, and one run serves five ids.

use rand::rand_core::block::BlockRngCore;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha12Core;

/// Bytes of a run kept for the next draws: with the 48 of the cipher's
/// state, the generator stays 96 bytes.
const SPARE: usize = 47;

/// Bytes in one run of the cipher.
const RUN: usize = 256;

/// ChaCha12 output, drawn only as needed. Its `Debug` shows no state. Not
/// `Clone`: a copy would repeat the message ids the original draws.
pub struct NodeRng {
    core: ChaCha12Core,
    /// The stream's next bytes are the last `spare_len` of these.
    spare: [u8; SPARE],
    spare_len: u8,
}

impl std::fmt::Debug for NodeRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeRng { .. }")
    }
}

impl NodeRng {
    /// Fill `dest` from the kept bytes, then from fresh runs of the stream;
    /// keep what follows in the last run, up to [`SPARE`] bytes.
    fn draw(&mut self, dest: &mut [u8]) {
        let kept = usize::from(self.spare_len);
        let from_spare = kept.min(dest.len());
        let start = SPARE - kept;
        dest[..from_spare].copy_from_slice(&self.spare[start..start + from_spare]);
        self.spare_len -= from_spare as u8; // at most SPARE
        let mut rest = &mut dest[from_spare..];
        while !rest.is_empty() {
            let run = self.run();
            let n = rest.len().min(RUN);
            rest[..n].copy_from_slice(&run[..n]);
            rest = &mut rest[n..];
            if rest.is_empty() {
                let keep = (RUN - n).min(SPARE);
                self.spare[SPARE - keep..].copy_from_slice(&run[n..n + keep]);
                self.spare_len = keep as u8; // at most SPARE
            }
        }
    }

    /// The next run of the stream.
    fn run(&mut self) -> [u8; RUN] {
        let mut block = <ChaCha12Core as BlockRngCore>::Results::default();
        self.core.generate(&mut block);
        let mut bytes = [0u8; RUN];
        for (out, word) in bytes.chunks_exact_mut(4).zip(block.as_ref()) {
            out.copy_from_slice(&word.to_le_bytes());
        }
        bytes
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
            spare: [0; SPARE],
            spare_len: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_chacha::ChaCha12Rng;

    /// The bytes are ChaCha12's own, in stream order, except that of each
    /// run of four blocks only the bytes drawn and the [`SPARE`] after them
    /// are used; the rest of the run is skipped.
    #[test]
    fn draws_read_the_chacha12_stream_keeping_a_little_of_each_run() {
        let seed = [7; 32];
        let mut ours = NodeRng::from_seed(seed);
        let mut stream = [0u8; RUN * 4];
        ChaCha12Rng::from_seed(seed).fill_bytes(&mut stream);
        let run = |i: usize, range: std::ops::Range<usize>| {
            stream[RUN * i + range.start..RUN * i + range.end].to_vec()
        };

        // Run 0: 8 bytes drawn, 47 kept.
        assert_eq!(ours.next_u64().to_le_bytes().to_vec(), run(0, 0..8));
        let mut eleven = [0u8; 11];
        ours.fill_bytes(&mut eleven);
        assert_eq!(eleven.to_vec(), run(0, 8..19));
        // 36 kept bytes are not enough: run 1 supplies 4 more, and 47 after them are kept.
        let mut forty = [0u8; 40];
        ours.fill_bytes(&mut forty);
        assert_eq!(forty.to_vec(), [run(0, 19..55), run(1, 0..4)].concat());
        // A long draw: the kept 47, a whole run, 6 bytes of the next; 47 kept.
        let mut long = [0u8; 309];
        ours.fill_bytes(&mut long);
        let expected = [run(1, 4..51), run(2, 0..256), run(3, 0..6)].concat();
        assert_eq!(long.to_vec(), expected);
        let mut three = [0u8; 3];
        ours.fill_bytes(&mut three);
        assert_eq!(three.to_vec(), run(3, 6..9));
    }

    #[test]
    fn a_draw_that_ends_near_a_runs_end_keeps_only_what_is_left() {
        let seed = [9; 32];
        let mut ours = NodeRng::from_seed(seed);
        let mut stream = [0u8; RUN * 2];
        ChaCha12Rng::from_seed(seed).fill_bytes(&mut stream);
        let mut most = [0u8; 250];
        ours.fill_bytes(&mut most);
        assert_eq!(most[..], stream[..250]);
        // 6 bytes kept; a draw of 10 takes them and 4 of a fresh run.
        let mut ten = [0u8; 10];
        ours.fill_bytes(&mut ten);
        assert_eq!(ten[..6], stream[250..256]);
        assert_eq!(ten[6..], stream[RUN..RUN + 4]);
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
        assert!(std::mem::size_of::<NodeRng>() <= 96);
        assert_eq!(format!("{a:?}"), "NodeRng { .. }");
    }
}
