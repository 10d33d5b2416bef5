//! The whole protocol state machine driven by a structured scenario of
//! datagrams, replies, time and commands (harness: `dht_core::fuzzing::protocol`).
#![no_main]

libfuzzer_sys::fuzz_target!(|scenario: dht_core::fuzzing::Scenario| {
    dht_core::fuzzing::protocol(scenario)
});
