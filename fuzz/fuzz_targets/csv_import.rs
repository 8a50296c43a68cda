//! `cargo fuzz run csv_import`: see [`divoc_fuzz::targets::csv_import`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::csv_import(data));
