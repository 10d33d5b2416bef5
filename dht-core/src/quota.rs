//! Storage that one source cannot take: per-source quotas on what peers'
//! STOREs may occupy.
//!
//! Every value a peer stores is charged to the IP address it came from, and
//! to that address's /24 (IPv4) or /64 (IPv6); a STORE that would take a
//! source past its share is refused (answered `false`). The newest writer of
//! a key pays for it; a key's charge is released when the value leaves.
//! Loopback and private sources are exempt unless `strict_local` is set, as
//! for the other per-IP limits. Together with the responder's responsibility
//! check and the record store's eviction order (cached copies first, then
//! the keys farthest from us; the node's own values never), one host cannot
//! fill a node's storage, and honest STOREs still find room.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::contact::{is_local, subnet};
use crate::id::Key;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Most value bytes one IP address may have stored here.
    pub per_ip_bytes: usize,
    /// Most value bytes one /24 or /64 may have stored here.
    pub per_subnet_bytes: usize,
    pub strict_local: bool,
}

#[derive(Default)]
pub struct SourceQuota {
    limits: Option<QuotaLimits>,
    /// Made at the first charge: most nodes of a large simulated network
    /// are never sent a value, and three empty maps took 144 bytes of each.
    charges: Option<Box<Charges>>,
    /// STOREs refused for being over a quota.
    pub refused: u64,
}

#[derive(Default)]
struct Charges {
    by_ip: HashMap<IpAddr, usize>,
    by_subnet: HashMap<[u8; 9], usize>,
    /// Who pays for each charged key, and how much.
    charged: HashMap<Key, (IpAddr, usize)>,
}

impl SourceQuota {
    pub fn new(limits: QuotaLimits) -> Self {
        SourceQuota {
            limits: Some(limits),
            ..Default::default()
        }
    }

    fn applies_to(&self, ip: &IpAddr) -> Option<QuotaLimits> {
        self.limits.filter(|l| l.strict_local || !is_local(ip))
    }

    /// May `ip` store `size` bytes under `key`? (Replacing its own value
    /// under the same key only costs the difference.)
    pub fn admits(&mut self, ip: IpAddr, key: &Key, size: usize) -> bool {
        let Some(limits) = self.applies_to(&ip) else {
            return true;
        };
        let (ip_used, net_used, already) = match self.charges.as_deref() {
            None => (0, 0, 0),
            Some(c) => (
                c.by_ip.get(&ip).copied().unwrap_or(0),
                c.by_subnet.get(&subnet(&ip)).copied().unwrap_or(0),
                match c.charged.get(key) {
                    Some((payer, bytes)) if *payer == ip => *bytes,
                    _ => 0,
                },
            ),
        };
        let ip_total = ip_used - already + size;
        let net_total = net_used - already + size;
        let ok = ip_total <= limits.per_ip_bytes && net_total <= limits.per_subnet_bytes;
        self.refused += u64::from(!ok);
        ok
    }

    /// `ip` now holds `size` bytes under `key` here.
    pub fn charge(&mut self, ip: IpAddr, key: Key, size: usize) {
        self.release(&key);
        if self.applies_to(&ip).is_none() {
            return;
        }
        let c = self.charges.get_or_insert_with(Box::default);
        *c.by_ip.entry(ip).or_insert(0) += size;
        *c.by_subnet.entry(subnet(&ip)).or_insert(0) += size;
        c.charged.insert(key, (ip, size));
    }

    /// The value under `key` left (expired, evicted or replaced locally).
    pub fn release(&mut self, key: &Key) {
        let Some(c) = self.charges.as_deref_mut() else {
            return;
        };
        let Some((ip, size)) = c.charged.remove(key) else {
            return;
        };
        release_from(&mut c.by_ip, ip, size);
        release_from(&mut c.by_subnet, subnet(&ip), size);
    }

    /// Bytes charged to `ip`.
    pub fn used_by(&self, ip: &IpAddr) -> usize {
        self.charges
            .as_deref()
            .and_then(|c| c.by_ip.get(ip).copied())
            .unwrap_or(0)
    }
}

/// Take `size` off `source`'s total, forgetting a source that holds nothing.
fn release_from<K: std::hash::Hash + Eq>(totals: &mut HashMap<K, usize>, source: K, size: usize) {
    if let Some(n) = totals.get_mut(&source) {
        *n -= size;
        if *n == 0 {
            totals.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::id::NodeId;

    #[test]
    fn one_source_gets_its_share_and_pays_for_what_it_replaces() {
        let limits = QuotaLimits {
            per_ip_bytes: 100,
            per_subnet_bytes: 150,
            strict_local: false,
        };
        let mut q = SourceQuota::new(limits);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let key = |i: u8| NodeId::digest(&[i]);
        assert!(q.admits(a, &key(1), 60));
        q.charge(a, key(1), 60);
        assert!(!q.admits(a, &key(2), 60), "over the per-IP share");
        assert!(
            q.admits(a, &key(1), 100),
            "replacing its own value costs the difference"
        );
        assert!(q.admits(b, &key(2), 60));
        q.charge(b, key(2), 60);
        assert!(!q.admits(b, &key(3), 40), "over the /24's share");
        q.release(&key(1));
        assert!(q.admits(b, &key(3), 40));
        assert_eq!((q.used_by(&a), q.used_by(&b), q.refused), (0, 60, 2));
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            q.admits(lo, &key(4), 10_000),
            "loopback exempt unless strict"
        );
    }
}
