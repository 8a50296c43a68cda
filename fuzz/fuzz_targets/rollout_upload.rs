//! `cargo fuzz run rollout_upload`: see [`divoc_fuzz::targets::rollout_upload`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| divoc_fuzz::targets::rollout_upload(data));
