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
    by_ip: HashMap<IpAddr, usize>,
    by_subnet: HashMap<[u8; 9], usize>,
    /// Who pays for each charged key, and how much.
    charged: HashMap<Key, (IpAddr, usize)>,
    /// STOREs refused for being over a quota.
    pub refused: u64,
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
        let already = match self.charged.get(key) {
            Some((payer, bytes)) if *payer == ip => *bytes,
            _ => 0,
        };
        let ip_total = self.by_ip.get(&ip).copied().unwrap_or(0) - already + size;
        let net_total = self.by_subnet.get(&subnet(&ip)).copied().unwrap_or(0) - already + size;
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
        *self.by_ip.entry(ip).or_insert(0) += size;
        *self.by_subnet.entry(subnet(&ip)).or_insert(0) += size;
        self.charged.insert(key, (ip, size));
    }

    /// The value under `key` left (expired, evicted or replaced locally).
    pub fn release(&mut self, key: &Key) {
        let Some((ip, size)) = self.charged.remove(key) else {
            return;
        };
        for (map, k) in [(&mut self.by_ip, ip)] {
            if let Some(n) = map.get_mut(&k) {
                *n -= size;
                if *n == 0 {
                    map.remove(&k);
                }
            }
        }
        let net = subnet(&ip);
        if let Some(n) = self.by_subnet.get_mut(&net) {
            *n -= size;
            if *n == 0 {
                self.by_subnet.remove(&net);
            }
        }
    }

    /// Bytes charged to `ip`.
    pub fn used_by(&self, ip: &IpAddr) -> usize {
        self.by_ip.get(ip).copied().unwrap_or(0)
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
