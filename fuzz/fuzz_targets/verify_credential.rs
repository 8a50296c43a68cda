//! `cargo fuzz run verify_credential`: see [`divoc_fuzz::targets::verify_credential`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::verify_credential(data));
