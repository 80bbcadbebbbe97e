//! See `ledger::fuzzing::fuzz_snapshot`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ledger::fuzzing::fuzz_snapshot(data);
});
