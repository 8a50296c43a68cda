#!/usr/bin/env bash
# Runs the whole test suite: host crates, the plugin runtime against real
# components (examples and hostile fixtures), conformance, the pages in
# headless Chromium (screenshots kept in target/screenshots), and the example
# plugins' own unit tests, then every fuzz target for a bounded time
# (FUZZ_SECONDS each, default 20; 0 skips: scripts/fuzz.sh). Installs and
# builds what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh debug
# The page tests drive Debian's Chromium (headless) through ChromeDriver.
sh scripts/install-browser.sh
# The end-to-end tests' Python helpers (format decoders, an SMTP server)
# run from target/pyenv.
sh scripts/install-pyenv.sh
# The PDF's second QR is checked with poppler (pdftoppm, pdftotext).
sh scripts/install-pdf-tools.sh

echo "== host workspace tests"
cargo test --workspace

echo "== example plugins' unit tests (host target)"
(cd plugins && cargo test)

fuzz_seconds="${FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
    echo "== fuzz targets, ${fuzz_seconds}s each"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi
