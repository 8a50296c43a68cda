//! `cargo fuzz run status_list`: see [`divoc_fuzz::targets::status_list`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::status_list(data));
