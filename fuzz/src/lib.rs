//! Coverage-guided fuzzing of every parser that takes untrusted input.
//!
//! Each target's body is a function in [`targets`]: the libFuzzer binaries
//! in `fuzz_targets/` call it (`scripts/fuzz.sh`, built with cargo-fuzz on
//! the stable toolchain: see `fuzz/README.md`), and the replay test calls
//! it on every seed ([`seeds`]) and on every input that ever crashed it
//! (`fuzz/cases/<target>/`), so a crash found once stays fixed.
//!
//! A target must not panic, and checks the property its parser promises
//! where there is one (a round trip, an idempotent canonical form, a
//! verdict that is `valid` only with a good signature).

pub mod seeds;
pub mod targets;

/// A target's body: arbitrary bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("certify_request", targets::certify_request),
    ("native_request", targets::native_request),
    ("csv_import", targets::csv_import),
    ("rollout_upload", targets::rollout_upload),
    ("qr_text", targets::qr_text),
    ("qr_image", targets::qr_image),
    ("status_list", targets::status_list),
    ("jcs", targets::jcs),
    ("verify_credential", targets::verify_credential),
];
