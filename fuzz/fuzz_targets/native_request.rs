//! `cargo fuzz run native_request`: see [`divoc_fuzz::targets::native_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::native_request(data));
