//! Request rate limits: token buckets per source IP and for the whole node.
//!
//! Only *requests* are limited. Responses to the node's own RPCs are matched
//! against the pending table instead, so they still get through a flood and
//! the node keeps working for its users while it sheds a flooder's load.
//! OpenDHT's defaults are the reference: 8,192 requests/s in all and 1,024/s
//! per IP. Loopback and private addresses are exempt unless
//! `strict_local_limits` is set, so local test networks of hundreds of nodes
//! on one address keep working.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::contact::is_local;

/// Most source IPs tracked at once; past that the oldest-seen are forgotten
/// (a forgotten IP starts with a full bucket, which is the conservative
/// failure for honest peers and costs an attacker nothing new).
const MAX_TRACKED: usize = 16_384;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            updated: now,
        }
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Limits, in requests per second (0 disables a limit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimits {
    pub global_per_sec: u32,
    pub per_ip_per_sec: u32,
    /// Apply the limits to loopback and private addresses too.
    pub strict_local: bool,
}

pub struct RateLimiter {
    limits: RateLimits,
    global: Bucket,
    per_ip: HashMap<IpAddr, Bucket>,
    /// Requests refused so far.
    pub refused: u64,
}

impl RateLimiter {
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        RateLimiter {
            limits,
            global: Bucket::full(f64::from(limits.global_per_sec), now),
            per_ip: HashMap::new(),
            refused: 0,
        }
    }

    /// May a request from `ip` be handled at `now`?
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if !self.limits.strict_local && is_local(&ip) {
            return true;
        }
        let ok = self.allow_ip(now, ip) && self.allow_global(now);
        self.refused += u64::from(!ok);
        ok
    }

    fn allow_ip(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rate = f64::from(self.limits.per_ip_per_sec);
        if rate == 0.0 {
            return true;
        }
        if self.per_ip.len() >= MAX_TRACKED && !self.per_ip.contains_key(&ip) {
            let idle = Duration::from_secs(1);
            self.per_ip
                .retain(|_, b| now.saturating_duration_since(b.updated) < idle);
            if self.per_ip.len() >= MAX_TRACKED {
                self.per_ip.clear();
            }
        }
        self.per_ip
            .entry(ip)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(now, rate, rate)
    }

    fn allow_global(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.limits.global_per_sec);
        rate == 0.0 || self.global.take(now, rate, rate)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limiter(strict_local: bool) -> (RateLimiter, Instant) {
        let now = Instant::now();
        let limits = RateLimits {
            global_per_sec: 100,
            per_ip_per_sec: 10,
            strict_local,
        };
        (RateLimiter::new(limits, now), now)
    }

    #[test]
    fn one_ip_gets_its_share_and_the_rest_still_get_through() {
        let (mut l, now) = limiter(false);
        let flooder: IpAddr = "203.0.113.7".parse().unwrap();
        let honest: IpAddr = "198.51.100.1".parse().unwrap();
        let allowed = (0..1000).filter(|_| l.allow(now, flooder)).count();
        assert_eq!(allowed, 10);
        assert!(l.allow(now, honest));
        // Tokens come back with time.
        let later = now + Duration::from_millis(500);
        let allowed = (0..1000).filter(|_| l.allow(later, flooder)).count();
        assert_eq!(allowed, 5);
        assert_eq!(l.refused, 1985);
    }

    #[test]
    fn the_global_limit_holds_across_ips_and_loopback_is_exempt_unless_strict() {
        let (mut l, now) = limiter(false);
        let allowed = (0..1000u32)
            .filter(|i| l.allow(now, IpAddr::from((0xc633_6400 + i).to_be_bytes())))
            .count();
        assert_eq!(allowed, 100);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!((0..1000).filter(|_| l.allow(now, lo)).count(), 1000);
        let (mut strict, now) = limiter(true);
        assert_eq!((0..1000).filter(|_| strict.allow(now, lo)).count(), 10);
    }
}
