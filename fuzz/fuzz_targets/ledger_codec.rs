//! Decoding arbitrary bytes as a command payload (what a Raft entry carries) must never panic, and
//! whatever decodes must re-encode to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ledger::codec::fuzz_decode_commands(data);
});
