#!/bin/sh
# Installs what divoc-toolchain needs to build Rust plugins for
# wasm32-unknown-unknown. Idempotent; non-interactive; run as root on Debian 12.
#
# - If rustup's wasm32-unknown-unknown std is installed, there is nothing to do.
# - Otherwise install Debian's rustc-web (Rust 1.96 with its own LLVM),
#   cargo-web, rust-web-src (std sources for -Zbuild-std) and lld-22 (wasm-ld-22).
set -eu

PACKAGES="rustc-web cargo-web rust-web-src lld-22"

if command -v rustc >/dev/null 2>&1; then
    sysroot=$(rustc --print sysroot 2>/dev/null || true)
    if [ -n "$sysroot" ] && [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib" ]; then
        echo "rustup's wasm32-unknown-unknown std is installed ($sysroot); nothing to do."
        exit 0
    fi
fi

. "$(dirname "$0")/lib/apt.sh"
# shellcheck disable=SC2086
apt_install "Debian guest toolchain" $PACKAGES
echo "divoc-toolchain will use /usr/bin/rustc with -Zbuild-std and wasm-ld-22."
