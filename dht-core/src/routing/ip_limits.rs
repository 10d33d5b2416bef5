//! IP diversity of the routing table (see the parent module's docs): at
//! most `per_subnet_per_bucket` contacts of one /24 (IPv4) or /64 (IPv6) in
//! a bucket and `per_ip` contacts of one address in the whole table, so one
//! host cannot fill the table with ids of its choosing.

use std::net::IpAddr;

use super::RoutingTable;
use crate::contact::{is_local, subnet};

/// IP diversity limits (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpLimits {
    pub per_subnet_per_bucket: usize,
    pub per_ip: usize,
    pub strict_local: bool,
}

impl IpLimits {
    /// No limits at all.
    pub const NONE: IpLimits = IpLimits {
        per_subnet_per_bucket: usize::MAX,
        per_ip: usize::MAX,
        strict_local: false,
    };

    pub(super) fn applies_to(&self, ip: &IpAddr) -> bool {
        self.strict_local || !is_local(ip)
    }
}

impl RoutingTable {
    /// Enforce `limits` on contacts inserted from now on.
    pub fn with_ip_limits(mut self, limits: IpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Contacts of `ip` held (entries and replacements), where limits apply.
    pub fn contacts_of_ip(&self, ip: &IpAddr) -> usize {
        self.per_ip
            .as_deref()
            .and_then(|counts| counts.get(ip))
            .copied()
            .unwrap_or(0)
    }

    pub(super) fn count_in(&mut self, ip: IpAddr) {
        if self.limits.applies_to(&ip) {
            let counts = self.per_ip.get_or_insert_with(Box::default);
            *counts.entry(ip).or_insert(0) += 1;
        }
    }

    pub(super) fn count_out(&mut self, ip: IpAddr) {
        let Some(counts) = self.per_ip.as_deref_mut() else {
            return;
        };
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// Whether a new contact at `ip` may join bucket `index`.
    pub(super) fn admits(&self, index: usize, ip: &IpAddr) -> bool {
        let limits = &self.limits;
        if !limits.applies_to(ip) {
            return true;
        }
        if self.contacts_of_ip(ip) >= limits.per_ip {
            return false;
        }
        let net = subnet(ip);
        let bucket = &self.buckets[index];
        let same = bucket
            .entries
            .iter()
            .chain(&bucket.replacements)
            .map(|c| self.book.ip(c))
            .filter(|other| subnet(other) == net)
            .count();
        same < limits.per_subnet_per_bucket
    }
}
