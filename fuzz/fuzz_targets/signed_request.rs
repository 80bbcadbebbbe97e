//! Arbitrary bytes as the signed metadata and body of a request: signature verification must never
//! panic and must never accept what the test key did not sign.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    api::fuzzing::signed_request(data);
});
