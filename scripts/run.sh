#!/usr/bin/env bash
# Runs the service on its embedded defaults: SQLite in ./data, generated keys
# and admin token, the example plugins from target/plugins, on 127.0.0.1:8080.
# Installs and builds what it needs first. Extra arguments go to `divoc serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
DIVOC_SKIP_FIXTURES=1 bash scripts/setup.sh release
exec "${CARGO_TARGET_DIR:-target}/release/divoc" serve "$@"
