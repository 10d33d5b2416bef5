//! Any bytes as an rpcudp datagram: split, then decoded as a request and as
//! a response of every RPC kind (harness: `dht_core::fuzzing::datagram`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dht_core::fuzzing::datagram(data));
