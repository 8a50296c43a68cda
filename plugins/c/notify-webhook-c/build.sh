#!/usr/bin/env bash
# Builds the C webhook plugin into a component:
#   plugins/c/notify-webhook-c/build.sh [OUT_DIR]      (default: <repo>/target/c-plugins)
# writes OUT_DIR/notify-webhook-c/notify-webhook-c.wasm and its plugin.toml,
# the layout `divoc plugin build` writes for Rust plugins.
#
# 1. `wit-bindgen c` generates the bindings for the distribution-channel
#    world from <repo>/wit: a .c/.h pair and an object holding the world's
#    component type.
# 2. The plugin's unit tests (tests.c) run natively.
# 3. clang-19 compiles for wasm32-wasi, linked by wasm-ld-19 with wasi-libc
#    for malloc and the string functions only: no start files, no entry
#    point. Those parts of wasi-libc import nothing, so the module imports
#    only divoc:plugin functions (step 4 fails otherwise).
# 4. divoc-toolchain's componentizer (examples/componentize.rs, the code
#    behind `divoc plugin build`) wraps the module into a validated
#    component, checks it against plugin.toml's world and version, and
#    refuses any import outside divoc:plugin.
#
# Needs scripts/install-c-guest.sh (clang-19, lld-19, wasi-libc,
# wit-bindgen-cli) and cargo. Environment: CLANG (default clang-19),
# WIT_BINDGEN (default: wit-bindgen in PATH or ~/.cargo/bin),
# DIVOC_GUEST_TARGET_DIR (intermediate files go to <it>/c/notify-webhook-c;
# default <repo>/target/guest).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
name=notify-webhook-c
out=${1:-$repo/target/c-plugins}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=${DIVOC_GUEST_TARGET_DIR:-$repo/target/guest}/c/$name
clang=${CLANG:-clang-19}

need() {
    echo "error: $1 not found; run scripts/install-c-guest.sh (as root) first" >&2
    exit 1
}
command -v "$clang" >/dev/null 2>&1 || need "$clang"
command -v wasm-ld-19 >/dev/null 2>&1 || need "wasm-ld-19 (lld-19)"
[ -f /usr/lib/wasm32-wasi/libc.a ] || need "wasi-libc (/usr/lib/wasm32-wasi/libc.a)"
wit_bindgen=${WIT_BINDGEN:-}
if [ -z "$wit_bindgen" ]; then
    wit_bindgen=$(command -v wit-bindgen || true)
    [ -n "$wit_bindgen" ] || wit_bindgen="${CARGO_HOME:-$HOME/.cargo}/bin/wit-bindgen"
fi
[ -x "$wit_bindgen" ] || need "wit-bindgen"

rm -rf "$work"
mkdir -p "$work/gen"

# 1. Bindings. The world is named with its package and version, so another
#    package's world of the same name can never be picked.
if ! "$wit_bindgen" c --world divoc:plugin/distribution-channel@1.2.0 --out-dir "$work/gen" "$repo/wit" \
    >"$work/wit-bindgen.log" 2>&1; then
    cat "$work/wit-bindgen.log" >&2
    exit 1
fi

# 2. Unit tests, natively; undefined behaviour traps (no sanitizer runtime needed).
cflags=(-std=c11 -O2 -Wall -Wextra -Werror -I"$work/gen")
"$clang" "${cflags[@]}" -fsanitize=undefined -fsanitize-trap=undefined \
    -o "$work/tests" "$here/tests.c" "$here/webhook.c" "$here/sha256.c"
"$work/tests"

# 3. The core module. -nostartfiles and --no-entry: a library of exports, no
#    _start and no WASI start-up code. --strip-all drops symbol names and
#    debug info but keeps the component-type section.
"$clang" --target=wasm32-wasi "${cflags[@]}" \
    -nostartfiles -Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=65536 \
    -o "$work/$name.core.wasm" \
    "$here/notify_webhook.c" "$here/webhook.c" "$here/sha256.c" \
    "$work/gen/distribution_channel.c" "$work/gen/distribution_channel_component_type.o"

# 4. The component, with the project's own componentizer.
(cd "$repo" && cargo run --quiet -p divoc-toolchain --example componentize -- \
    --only-divoc-imports "$work/$name.core.wasm" "$here/plugin.toml" "$out")
