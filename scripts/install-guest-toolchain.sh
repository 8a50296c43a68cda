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

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "Debian guest toolchain already installed ($PACKAGES)."
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing$missing needs root (run with sudo)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when a package is unknown to apt.
need_update=0
for p in $missing; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
        need_update=1
    fi
done
if [ "$need_update" -eq 1 ]; then
    apt-get update
fi
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $PACKAGES
echo "Installed:$missing. divoc-toolchain will use /usr/bin/rustc with -Zbuild-std and wasm-ld-22."
