#!/bin/sh
# Installs what plugins/c/*/build.sh needs to build C plugins into
# WebAssembly components. Idempotent; non-interactive; run as root on
# Debian 12.
#
# - Debian's clang-19 (the compiler, with the wasm32 backend), lld-19
#   (wasm-ld-19), libclang-rt-19-dev-wasm32 (compiler-rt builtins for wasm32)
#   and wasi-libc (the libc headers and objects the wasm32-wasi target uses;
#   the C plugins link only its allocator and string functions, which import
#   nothing: build.sh refuses a module with any import outside divoc:plugin).
# - wit-bindgen-cli 0.63.0 (`wit-bindgen c` writes the bindings) from
#   crates.io into ~/.cargo/bin, unless that version is already there. The
#   one-off `cargo install` compiles for a few minutes; later runs skip it.
set -eu

PACKAGES="clang-19 lld-19 libclang-rt-19-dev-wasm32 wasi-libc"
WIT_BINDGEN_VERSION=0.63.0

. "$(dirname "$0")/lib/apt.sh"
# shellcheck disable=SC2086
apt_install "C guest toolchain" $PACKAGES

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
have=""
if [ -x "$cargo_bin/wit-bindgen" ]; then
    have=$("$cargo_bin/wit-bindgen" --version 2>/dev/null || true)
fi
case "$have" in
"wit-bindgen-cli $WIT_BINDGEN_VERSION"*)
    echo "wit-bindgen-cli $WIT_BINDGEN_VERSION already installed ($cargo_bin/wit-bindgen)."
    ;;
*)
    echo "Installing wit-bindgen-cli $WIT_BINDGEN_VERSION into $cargo_bin (once; a few minutes)."
    # The host's target dir is not the place for a tool's build.
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET \
        cargo install wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" --locked
    ;;
esac
