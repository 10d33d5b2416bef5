//! Ed25519 key pairs and public keys for signed records. A [`Keypair`] wraps
//! `ed25519-dalek`'s signing key (which zeroizes its secret on drop) and never
//! shows the secret in `Debug`; a [`PublicKey`] is the 32-byte compressed
//! point that names a record's owner, with hex helpers for CLIs and logs.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};

/// Length in bytes of a public key, and of a secret key.
pub const PUBLIC_KEY_LEN: usize = 32;
pub const SECRET_KEY_LEN: usize = 32;

/// An ed25519 public key as it travels: 32 bytes (compressed Edwards point).
///
/// Holding one says nothing about validity: a record's verification checks
/// that the bytes are a usable key ([`super::RecordError::BadPublicKey`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Wrap 32 bytes; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes).ok().map(PublicKey)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parse 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        // Hex digits only: `from_str_radix` also takes a sign ("+1+1...").
        if s.len() != PUBLIC_KEY_LEN * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; PUBLIC_KEY_LEN];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(PublicKey(out))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An ed25519 key pair: the owner's right to publish under
/// SHA-1(public key ‖ salt).
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh key pair from a cryptographic RNG (`rand::rng()` in
    /// production, a seeded `StdRng` in tests).
    ///
    /// This draws the 32 secret bytes and hands them to
    /// `SigningKey::from_bytes`, which is exactly what dalek's own `generate`
    /// does; we do it here because dalek 2.x takes a `rand_core` 0.6 RNG
    /// while the workspace uses rand 0.9.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut secret = zeroize::Zeroizing::new([0u8; SECRET_KEY_LEN]);
        rng.fill_bytes(&mut secret[..]);
        Keypair::from_secret(*secret)
    }

    /// The key pair of a 32-byte ed25519 secret (RFC 8032 seed).
    pub fn from_secret(secret: [u8; SECRET_KEY_LEN]) -> Self {
        Keypair {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// The 32-byte secret, for saving the key (`kadmium keygen FILE`).
    pub fn secret(&self) -> [u8; SECRET_KEY_LEN] {
        self.signing.to_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Ed25519 signature of `message` (deterministic, RFC 8032).
    pub(crate) fn sign_message(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: key pairs end up in logs through their owners.
        f.debug_struct("Keypair")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn hex32(s: &str) -> [u8; 32] {
        PublicKey::from_hex(s).map(|p| p.0).unwrap()
    }

    #[test]
    fn rfc8032_test_vector_1_public_key() {
        // RFC 8032 §7.1, TEST 1.
        let kp = Keypair::from_secret(hex32(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        assert_eq!(
            kp.public_key().to_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        // The empty message's signature from the same vector.
        let sig = kp.sign_message(b"");
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn secret_round_trips_and_debug_hides_it() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let kp = Keypair::generate(&mut rng);
        let again = Keypair::from_secret(kp.secret());
        assert_eq!(kp.public_key(), again.public_key());
        let shown = format!("{kp:?}");
        let secret_hex: String = kp.secret().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&secret_hex), "{shown}");
        assert!(shown.contains(&kp.public_key().to_hex()));
        // Two draws give two different keys.
        assert_ne!(Keypair::generate(&mut rng).public_key(), kp.public_key());
    }

    #[test]
    fn public_key_hex_round_trip_and_rejects() {
        let pk = PublicKey([0xab; 32]);
        assert_eq!(PublicKey::from_hex(&pk.to_hex()), Some(pk));
        assert_eq!(PublicKey::from_hex(&pk.to_hex().to_uppercase()), Some(pk));
        assert_eq!(PublicKey::from_hex("ab"), None);
        assert_eq!(PublicKey::from_hex(&"zz".repeat(32)), None);
        assert_eq!(PublicKey::from_hex(&"é".repeat(32)), None);
        // Sixty-four characters `u8::from_str_radix` pair by pair would take.
        assert_eq!(PublicKey::from_hex(&"+1".repeat(32)), None);
        assert_eq!(PublicKey::from_slice(&[1; 31]), None);
    }
}
