//! `cargo fuzz run qr_text`: see [`divoc_fuzz::targets::qr_text`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::qr_text(data));
