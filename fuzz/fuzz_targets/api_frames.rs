//! Any bytes as a VoidPhone API stream, cut into reads of varying size
//! (harness: `dht_voidphone::fuzzing::frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dht_voidphone::fuzzing::frames(data));
