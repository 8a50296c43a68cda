#!/usr/bin/env bash
# Runs the whole test suite: host crates (the storage, certificate, insight,
# API and end-to-end suites twice: on SQLite and on PostgreSQL), the plugin runtime
# against real components (examples and hostile fixtures), conformance, the pages in
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

echo "== host workspace tests (SQLite)"
cargo test --workspace

# The same storage, module and end-to-end suites on PostgreSQL: the test
# binaries built above, run again against a throw-away PostgreSQL 15
# cluster (scripts/pg.sh: Debian's packages, a temp dir, a free loopback
# port), each test in a schema of its own.
echo "== the suites again on PostgreSQL"
pg_dir=$(mktemp -d /tmp/divoc-test-pg.XXXXXX)
stop_pg() {
    bash scripts/pg.sh stop "$pg_dir" || true
    rm -rf "$pg_dir"
}
trap stop_pg EXIT
TEST_DIVOC_POSTGRES=$(bash scripts/pg.sh start "$pg_dir")
export TEST_DIVOC_POSTGRES
# The binaries `cargo test --workspace` built, run again as cargo runs them
# (from their package's directory): `cargo test -p …` of a subset would
# resolve the subset's features and compile half the dependencies again.
# The end-to-end binary includes three hosts on one database, one killed
# mid-load (tests/all/three_hosts.rs: PostgreSQL only).
cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 scripts/lib/test-binaries.py divoc-storage divoc-certificates \
        divoc-insight divoc-api divoc-rollout divoc-runtime divoc >"$pg_dir/binaries"
failed=0
while read -r dir exe; do
    echo "-- $(basename "$exe") on PostgreSQL"
    (cd "$dir" && "$exe" -q) || failed=1
done <"$pg_dir/binaries"
unset TEST_DIVOC_POSTGRES
if [ "$failed" != 0 ]; then
    echo "the suites failed on PostgreSQL" >&2
    exit 1
fi
stop_pg
trap - EXIT

echo "== example plugins' unit tests (host target)"
(cd plugins && cargo test)

fuzz_seconds="${FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
    echo "== fuzz targets, ${fuzz_seconds}s each"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi
