//! EMV QR payload parsing must never panic, and whatever parses must rebuild to the same payload.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ledger::emv::fuzz_parse(data);
});
