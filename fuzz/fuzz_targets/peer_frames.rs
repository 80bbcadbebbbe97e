//! See `consensus::fuzzing::fuzz_peer_frames`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    consensus::fuzzing::fuzz_peer_frames(data);
});
