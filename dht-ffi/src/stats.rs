//! Node statistics as a snapshot object read by counter id, so that new
//! counters can be added without changing any layout.

use std::ffi::c_char;

use dht_core::Stats;

use crate::error::{kad_result, Failure};
use crate::node::{kad_node, node_from_handle};

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
}

/// One count per kad_stat, in kad_stat order.
const NAMES: [&str; 13] = [
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
];

fn read(s: &Stats, which: u32) -> Option<u64> {
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
        _ => return None,
    })
}

/// A snapshot of a node's statistics, taken by kad_node_stats. Owned by the
/// caller; release with kad_stats_free. Immutable.
pub struct kad_stats {
    stats: Stats,
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
        let n = try_ffi!(node_from_handle(node));
        let boxed = Box::new(kad_stats { stats: n.stats() });
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
        let Some(v) = read(&stats.stats, which) else {
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
        for (i, name) in NAMES.iter().enumerate() {
            assert!(read(&s, i as u32).is_some(), "{name}");
        }
        assert!(read(&s, NAMES.len() as u32).is_none());
        assert_eq!(kad_stat::PendingRpcs as usize, NAMES.len() - 1);
    }
}
