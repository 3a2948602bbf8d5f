#![no_main]
//! cargo-fuzz target: `chatwire::fuzzing::sio_event`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| chatwire::fuzzing::sio_event(data));
