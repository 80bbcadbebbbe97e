//! The camt053 statement reader must never panic and must stop on any input (bounded lines and
//! element sizes).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    api::statement::fuzz_parse(api::statement::Format::Camt053, data);
});
