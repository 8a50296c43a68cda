//! `cargo fuzz run certify_request`: see [`divoc_fuzz::targets::certify_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::certify_request(data));
