#!/usr/bin/env bash
# Fuzzes every parser of untrusted input, coverage-guided (libFuzzer through
# cargo-fuzz), each target for a bounded time; fails if any crashes.
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]
# CI runs `scripts/fuzz.sh 20` (every target, 20 s each). A longer campaign:
#   scripts/fuzz.sh 3600 qr_image verify_credential
# The targets are in fuzz/fuzz_targets/, their bodies and seeds in fuzz/src/;
# fuzz/README.md says how it builds on a stable toolchain.
#
# Corpora grow across runs in the build cache ($cache/fuzz/corpus/<target>),
# starting from the seeds (the test cases and vectors). A crash's input is
# copied to fuzz/cases/<target>/ and the script fails: commit it, fix the
# bug, and the replay test (fuzz/tests/replay.rs, run by scripts/test.sh)
# keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(certify_request native_request csv_import rollout_upload qr_text qr_image status_list jcs verify_credential)
fi

CARGO_FUZZ_VERSION=0.13.2
cache="${DIVOC_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/divoc-rs}"

# libFuzzer is C++: libfuzzer-sys compiles it with the system's compiler.
. "$(dirname "$0")/lib/apt.sh"
apt_install "C++ compiler for libFuzzer" g++

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
have=""
if [ -x "$cargo_bin/cargo-fuzz" ]; then
    have=$("$cargo_bin/cargo-fuzz" --version 2>/dev/null || true)
fi
case "$have" in
"cargo-fuzz $CARGO_FUZZ_VERSION"*) ;;
*)
    echo "Installing cargo-fuzz $CARGO_FUZZ_VERSION into $cargo_bin (once; a few minutes)."
    env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
    ;;
esac

# 16 codegen units: cargo-fuzz's release default of 1 compiles each crate
# of the instrumented dependency tree (wasmtime included) on one core.
fuzz=(--fuzz-dir fuzz --sanitizer none --features libfuzzer --codegen-units 16)

corpus="$cache/fuzz/corpus"
artifacts="$cache/fuzz/artifacts"
mkdir -p "$corpus" "$artifacts"
echo "== fuzz: seeds into $corpus"
cargo run -q -p divoc-fuzz --bin divoc-fuzz-seeds -- "$corpus"

# Only now: cargo fingerprints RUSTC_BOOTSTRAP, so the seed tool built with
# it set would rebuild the test build's crates (same files, new
# fingerprint) here and again in the next test run.
# Stable toolchain: RUSTC_BOOTSTRAP=1 admits the few -Z flags cargo-fuzz
# passes; `--sanitizer none` because AddressSanitizer needs a nightly std
# (and safe Rust needs it least). The coverage instrumentation
# (-Cpasses=sancov-module, -Cllvm-args=-sanitizer-coverage-*) is stable.
export RUSTC_BOOTSTRAP=1

echo "== fuzz: building ${#targets[@]} targets (instrumented, release)"
for t in "${targets[@]}"; do
    cargo fuzz build "${fuzz[@]}" "$t"
done

failed=()
for t in "${targets[@]}"; do
    echo "== fuzz: $t for ${seconds}s"
    rm -rf "${artifacts:?}/$t"
    mkdir -p "$artifacts/$t"
    # -timeout: an input taking over 10 s counts as a crash (a hang);
    # -rss_limit_mb: so does one needing over 2 GB.
    if ! cargo fuzz run "${fuzz[@]}" "$t" "$corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/$t/" -print_final_stats=1 2>&1 |
        grep -v '^#[0-9]*.*\(NEW\|REDUCE\|pulse\)'; then
        failed+=("$t")
    fi
    # `grep` above hides the progress lines; what matters is any artifact.
    if compgen -G "$artifacts/$t/*" >/dev/null; then
        mkdir -p "fuzz/cases/$t"
        for f in "$artifacts/$t"/*; do
            cp "$f" "fuzz/cases/$t/$(basename "$f")"
            echo "fuzz: $t: $(basename "$f") -> fuzz/cases/$t/ (commit it with the fix)"
        done
        if [[ ! " ${failed[*]} " == *" $t "* ]]; then failed+=("$t"); fi
    fi
done
# rollout_upload's databases (libFuzzer exits without cleaning up).
rm -rf /dev/shm/divoc-fuzz-rollout-* "${TMPDIR:-/tmp}"/divoc-fuzz-rollout-*

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crashes"
