//! Node statistics as a snapshot object read by counter id, so that new
//! counters can be added without changing any layout.

use std::ffi::c_char;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dht_core::Stats;

use crate::error::{kad_result, Failure};
use crate::node::{entry_from_handle, kad_node, Entry};

/// Counters and gauges of a node, read with kad_stats_get. Numbers are
/// stable; new ones are added at the end.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kad_stat {
    DatagramsReceived = 0,
    DatagramsSent = 1,
    /// Malformed, oversized or unsolicited datagrams.
    DatagramsDropped = 2,
    RequestsReceived = 3,
    ResponsesReceived = 4,
    RpcsSent = 5,
    RpcTimeouts = 6,
    LookupsStarted = 7,
    LookupsCompleted = 8,
    /// Gauge: contacts in the routing table.
    Contacts = 9,
    /// Gauge: values this node stores for the network.
    ValuesStored = 10,
    /// Gauge: bytes of those values.
    StoredBytes = 11,
    /// Gauge: RPCs awaiting a reply.
    PendingRpcs = 12,
    /// Gets (blocking or async) that found a value.
    GetsSucceeded = 13,
    /// Mean duration of those gets, in microseconds (0 before the first).
    GetMeanUs = 14,
    /// Longest of those gets, in microseconds.
    GetMaxUs = 15,
    /// Puts that at least one node stored.
    PutsSucceeded = 16,
    /// Mean duration of those puts, in microseconds.
    PutMeanUs = 17,
    /// Longest of those puts, in microseconds.
    PutMaxUs = 18,
    /// Pings answered.
    PingsSucceeded = 19,
    /// Mean round trip of those pings, in microseconds.
    PingMeanUs = 20,
    /// Longest of those round trips, in microseconds.
    PingMaxUs = 21,
}

/// One count per kad_stat, in kad_stat order.
const NAMES: [&str; 22] = [
    "datagrams_received\0",
    "datagrams_sent\0",
    "datagrams_dropped\0",
    "requests_received\0",
    "responses_received\0",
    "rpcs_sent\0",
    "rpc_timeouts\0",
    "lookups_started\0",
    "lookups_completed\0",
    "contacts\0",
    "values_stored\0",
    "stored_bytes\0",
    "pending_rpcs\0",
    "gets_succeeded\0",
    "get_mean_us\0",
    "get_max_us\0",
    "puts_succeeded\0",
    "put_mean_us\0",
    "put_max_us\0",
    "pings_succeeded\0",
    "ping_mean_us\0",
    "ping_max_us\0",
];

/// The operations whose durations are kept per node.
#[derive(Clone, Copy)]
pub(crate) enum Op {
    Get = 0,
    Put = 1,
    Ping = 2,
}

/// Count, total and longest duration of each kind of successful operation.
/// Kept by the C layer (the protocol has no notion of a caller waiting);
/// measured with the wall clock, which is what a C caller experiences.
#[derive(Default)]
pub(crate) struct Latency {
    /// [count, total µs, max µs] per Op.
    ops: [[AtomicU64; 3]; 3],
}

impl Latency {
    fn record(&self, op: Op, micros: u64) {
        let [count, total, max] = &self.ops[op as usize];
        count.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(micros, Ordering::Relaxed);
        max.fetch_max(micros, Ordering::Relaxed);
    }

    /// [count, mean, max] per Op, in kad_stat order.
    fn snapshot(&self) -> [u64; 9] {
        let mut out = [0; 9];
        for (i, [count, total, max]) in self.ops.iter().enumerate() {
            let n = count.load(Ordering::Relaxed);
            out[i * 3] = n;
            out[i * 3 + 1] = total.load(Ordering::Relaxed).checked_div(n).unwrap_or(0);
            out[i * 3 + 2] = max.load(Ordering::Relaxed);
        }
        out
    }
}

/// `fut`, recording its duration in the node's statistics if it succeeds.
pub(crate) fn timed<T, F>(
    entry: &Arc<Entry>,
    op: Op,
    fut: F,
) -> impl Future<Output = Result<T, Failure>> + Send + 'static
where
    F: Future<Output = Result<T, Failure>> + Send + 'static,
{
    let entry = entry.clone();
    async move {
        let start = Instant::now();
        let r = fut.await;
        if r.is_ok() {
            let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            entry.latency.record(op, micros);
        }
        r
    }
}

fn read(s: &Stats, latency: &[u64; 9], which: u32) -> Option<u64> {
    Some(match which {
        0 => s.datagrams_received,
        1 => s.datagrams_sent,
        2 => s.datagrams_dropped,
        3 => s.requests_received,
        4 => s.responses_received,
        5 => s.rpcs_sent,
        6 => s.rpc_timeouts,
        7 => s.lookups_started,
        8 => s.lookups_completed,
        9 => s.contacts,
        10 => s.values_stored,
        11 => s.stored_bytes,
        12 => s.pending_rpcs,
        13..=21 => latency[which as usize - 13],
        _ => return None,
    })
}

/// A snapshot of a node's statistics, taken by kad_node_stats. Owned by the
/// caller; release with kad_stats_free. Immutable.
pub struct kad_stats {
    stats: Stats,
    latency: [u64; 9],
}

/// Take a snapshot of the node's statistics into `*stats_out` (a new object
/// the caller owns).
#[no_mangle]
pub unsafe extern "C" fn kad_node_stats(
    node: *const kad_node,
    stats_out: *mut *mut kad_stats,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(stats_out);
        let e = try_ffi!(entry_from_handle(node));
        let boxed = Box::new(kad_stats { stats: e.node.stats(), latency: e.latency.snapshot() });
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *stats_out = Box::into_raw(boxed) };
        kad_result::KAD_OK
    }
}

/// Read counter `which` (a kad_stat) of the snapshot into `*value_out`.
/// KAD_INVALID_ARGUMENT for a number that is not a kad_stat this library knows.
#[no_mangle]
pub unsafe extern "C" fn kad_stats_get(
    stats: *const kad_stats,
    which: u32,
    value_out: *mut u64,
) -> kad_result {
    ffi_panic_boundary! {
        let stats = try_ref!(stats);
        check_out!(value_out);
        let Some(v) = read(&stats.stats, &stats.latency, which) else {
            return Failure::new(kad_result::KAD_INVALID_ARGUMENT, format!("no statistic number {which}"))
                .report();
        };
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *value_out = v };
        kad_result::KAD_OK
    }
}

/// Static, NUL-terminated name of counter `which` ("datagrams_received", ...),
/// or NULL for a number that is not a kad_stat. Never free it.
#[no_mangle]
pub extern "C" fn kad_stat_name(which: u32) -> *const c_char {
    ffi_panic_boundary! {
        NAMES
            .get(which as usize)
            .map_or(std::ptr::null(), |n| n.as_ptr().cast::<c_char>())
    }
}

/// Release a snapshot. NULL is ignored; freeing twice is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn kad_stats_free(stats: *mut kad_stats) {
    ffi_panic_boundary! {
        if !stats.is_null() {
            // SAFETY: from Box::into_raw in kad_node_stats; ownership ends here.
            drop(unsafe { Box::from_raw(stats) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counters_line_up() {
        let s = Stats::default();
        let l = [0; 9];
        for (i, name) in NAMES.iter().enumerate() {
            assert!(read(&s, &l, i as u32).is_some(), "{name}");
        }
        assert!(read(&s, &l, NAMES.len() as u32).is_none());
        assert_eq!(kad_stat::PingMaxUs as usize, NAMES.len() - 1);
    }
}

#[cfg(test)]
mod latency_tests {
    use super::*;

    #[test]
    fn mean_and_max_per_operation() {
        let l = Latency::default();
        l.record(Op::Get, 100);
        l.record(Op::Get, 300);
        l.record(Op::Ping, 7);
        assert_eq!(l.snapshot(), [2, 200, 300, 0, 0, 0, 1, 7, 7]);
    }
}
