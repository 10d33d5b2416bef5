//! [`Node`]'s commands for signed and immutable records: each one starts
//! the protocol command of the same name and awaits its outcome, so the C
//! and Python bindings wrap one async call each.
//!
//! ```no_run
//! # async fn demo(node: dht_core::Node) -> dht_core::Result<()> {
//! use dht_core::{Keypair, SignedPutOptions};
//! let me = Keypair::generate(&mut rand::rng());
//! let seq = node.put_signed(&me, b"addr", b"10.0.0.1:4000", SignedPutOptions::default()).await?;
//! let current = node.get_signed(&me.public_key(), b"addr").await?;
//! assert_eq!(current.map(|v| (v.value, v.seq)), Some((b"10.0.0.1:4000".to_vec(), seq)));
//! node.delete_signed(&me, b"addr").await?;
//! assert_eq!(node.get_signed(&me.public_key(), b"addr").await?, None);
//! # Ok(()) }
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::id::Key;
use crate::node::{unexpected, Node};
use crate::protocol::{Outcome, PutOptions, SignedPutOptions, SignedValue};
use crate::signed::{Keypair, PublicKey};

/// The system's unix time, for the protocol's wall-clock anchor.
pub(crate) fn system_unix_time() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

impl Node {
    /// Store `value` under SHA-1(public key ‖ `salt`), signed with
    /// `keypair`; returns the sequence number used. Looks up the newest
    /// record first (for `seq: None` and for `cas`); a compare-and-swap
    /// conflict fails with [`crate::Error::CasMismatch`], a `seq` not above
    /// the newest with [`crate::Error::InvalidRecord`].
    pub async fn put_signed(
        &self,
        keypair: &Keypair,
        salt: &[u8],
        value: &[u8],
        options: SignedPutOptions,
    ) -> Result<u64> {
        // The command runs in the driver task, which owns what it uses.
        let (keypair, salt, value) = (keypair.clone(), salt.to_vec(), value.to_vec());
        let outcome = self
            .run(move |p, now| p.put_signed(now, &keypair, &salt, &value, options))
            .await?;
        match outcome {
            Outcome::SignedPut(result) => result.map(|r| r.seq),
            other => Err(unexpected(other)),
        }
    }

    /// The current value under SHA-1(`public_key` ‖ `salt`): the newest
    /// valid record among the k closest nodes' answers; `None` when there
    /// is none or it was deleted. Holders of older copies are sent the
    /// newest (read repair).
    pub async fn get_signed(
        &self,
        public_key: &PublicKey,
        salt: &[u8],
    ) -> Result<Option<SignedValue>> {
        let (public_key, salt) = (*public_key, salt.to_vec());
        match self
            .run(move |p, now| p.get_signed(now, &public_key, &salt))
            .await?
        {
            Outcome::SignedGet(result) => result,
            other => Err(unexpected(other)),
        }
    }

    /// Delete the record under SHA-1(public key ‖ `salt`) with a signed
    /// tombstone; returns the tombstone's sequence number.
    pub async fn delete_signed(&self, keypair: &Keypair, salt: &[u8]) -> Result<u64> {
        let (keypair, salt) = (keypair.clone(), salt.to_vec());
        match self
            .run(move |p, now| p.delete_signed(now, &keypair, &salt))
            .await?
        {
            Outcome::SignedPut(result) => result.map(|r| r.seq),
            other => Err(unexpected(other)),
        }
    }

    /// Store `value` under the SHA-1 of its immutable record; returns that key.
    pub async fn put_immutable(&self, value: &[u8]) -> Result<Key> {
        // The key is the record's hash: known before the put runs.
        let (key, _) = crate::signed::immutable(value)?;
        let value = value.to_vec();
        let outcome = self
            .run(move |p, now| {
                p.put_immutable(now, &value, PutOptions::default())
                    .map(|(_, op)| op)
            })
            .await?;
        match outcome {
            Outcome::Put(result) => result.map(|_| key),
            other => Err(unexpected(other)),
        }
    }

    /// The immutable value under `key`, checked by hashing (answers that do
    /// not match are skipped); `None` when no node has it.
    pub async fn get_immutable(&self, key: &Key) -> Result<Option<Vec<u8>>> {
        let key = *key;
        match self
            .run(move |p, now| Ok(p.get_immutable(now, key)))
            .await?
        {
            Outcome::ImmutableGet(result) => result,
            other => Err(unexpected(other)),
        }
    }
}
