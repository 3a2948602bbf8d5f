#![no_main]
//! cargo-fuzz target: `chatwire::fuzzing::ws_frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatwire::fuzzing::ws_frame(data));
