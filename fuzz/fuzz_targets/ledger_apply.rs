//! Structure-aware ledger fuzzing: arbitrary batches of real commands (every kind the log codec
//! carries), applied to the in-memory and RocksDB ledgers; invariants checked after each batch
//! (see `ledger::fuzzing`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ledger::fuzzing::fuzz_apply(data);
});
