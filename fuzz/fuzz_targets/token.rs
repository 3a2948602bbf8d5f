#![no_main]
//! cargo-fuzz target: `chatwire::fuzzing::token`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatwire::fuzzing::token(data));
