#![no_main]
//! cargo-fuzz target: `chatwire::fuzzing::rooms`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatwire::fuzzing::rooms(data));
