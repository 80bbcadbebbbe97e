//! Arbitrary bytes as a `Submit` request: protobuf decoding, then validation into ledger commands.
//! Must never panic; must reject or produce commands that re-encode and decode identically.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    api::fuzzing::submit_request(data);
});
