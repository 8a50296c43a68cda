//! `cargo fuzz run qr_image`: see [`divoc_fuzz::targets::qr_image`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::qr_image(data));
