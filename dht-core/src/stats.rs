//! The counters and gauges a node reports.

/// Counters and gauges of one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    /// Malformed, truncated, oversized, unsolicited or misaddressed datagrams.
    pub datagrams_dropped: u64,
    /// Requests dropped by the rate limits.
    pub requests_refused: u64,
    /// Answers to unverified addresses never sent (their ping went
    /// unanswered, or too many were waiting).
    pub answers_withheld: u64,
    /// STOREs refused because their source was over its storage quota.
    pub stores_over_quota: u64,
    /// STOREs answered `false` because their value is not one kadmium
    /// holds (an extension type, a string that is not UTF-8, nesting too
    /// deep, a map a Python peer cannot unpack); counted in `requests_received` too,
    /// never stored.
    pub stores_undecodable: u64,
    pub requests_received: u64,
    pub responses_received: u64,
    pub rpcs_sent: u64,
    pub rpc_timeouts: u64,
    pub lookups_started: u64,
    pub lookups_completed: u64,
    /// RPCs sent by lookups that completed (for RPCs-per-lookup figures).
    pub lookup_rpcs: u64,
    /// Sum of the hops of completed lookups (see `Lookup::hops`).
    pub lookup_hops: u64,
    /// Gets that asked one likely holder alone first, those of them that
    /// found the value with that one query, and those that asked others
    /// too because its answer was late (see `ops/get.rs`).
    pub gets_asking_one_first: u64,
    pub gets_answered_by_first: u64,
    pub gets_widened_late: u64,
    /// Gets waiting for the answer of their lone first query now (each
    /// holds a timer until it answers or the get widens or ends).
    pub gets_awaiting_lone_first: u64,
    /// Values re-sent by replication and republishing.
    pub resends_started: u64,
    /// Keys handed over to contacts that appeared.
    pub handovers_sent: u64,
    /// Pings to close neighbours gone quiet (see churn repair).
    pub neighbour_checks: u64,
    pub contacts: u64,
    pub values_stored: u64,
    pub stored_bytes: u64,
    /// Requests holding one of the `max_pending_rpcs` slots: sent, and
    /// neither answered, timed out, nor given up (three adaptive timeouts
    /// without an answer; see `rpc/mod.rs`).
    pub pending_rpcs: u64,
    /// This node's address as its peers see it, once at least two peer IPs
    /// agree (see [`crate::public_address`]); `None` before that.
    pub public_address: Option<std::net::SocketAddr>,
}

/// Counters kept by the glue itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub datagrams_received: u64,
    pub datagrams_dropped: u64,
    pub requests_received: u64,
    pub stores_undecodable: u64,
    pub responses_received: u64,
    pub rpc_timeouts: u64,
    pub resends_started: u64,
    pub handovers_sent: u64,
    pub neighbour_checks: u64,
}
