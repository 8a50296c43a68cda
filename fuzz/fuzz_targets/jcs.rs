//! `cargo fuzz run jcs`: see [`divoc_fuzz::targets::jcs`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::jcs(data));
