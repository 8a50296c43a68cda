#!/usr/bin/env bash
# Installs and builds what the service and the tests need. Idempotent.
#   scripts/setup.sh [debug|release]
# - the guest toolchain for wasm32 plugins (scripts/install-guest-toolchain.sh)
# - the divoc binary
# - the example plugins into target/plugins, and the test fixtures into
#   target/fixtures (both built by `divoc plugin build`)
# - with the fixtures (unless DIVOC_SKIP_FIXTURES=1, as scripts/run.sh sets):
#   the C guest toolchain (scripts/install-c-guest.sh; its one-off
#   `cargo install wit-bindgen-cli` takes about 4.5 minutes) and the C plugin
#   plugins/c/notify-webhook-c into target/c-plugins. Not into target/plugins:
#   the server loads everything there, and the tests count those.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-debug}"
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 1
fi

bash scripts/install-guest-toolchain.sh

cargo_flags=()
if [ "$profile" = release ]; then cargo_flags+=(--release); fi
cargo build "${cargo_flags[@]}" -p divoc
divoc="${CARGO_TARGET_DIR:-target}/$profile/divoc"

"$divoc" plugin build plugins --out target/plugins
if [ "${DIVOC_SKIP_FIXTURES:-0}" != 1 ]; then
    "$divoc" plugin build conformance/fixtures --out target/fixtures --no-contract-check
    sh scripts/install-c-guest.sh
    bash plugins/c/notify-webhook-c/build.sh target/c-plugins
fi
