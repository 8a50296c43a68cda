#!/bin/sh
# Installs the browser the page tests drive: Debian's Chromium and its
# ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver), and Noto fonts
# for the Hindi pages. Idempotent; non-interactive; run as root on Debian 12.
set -eu

PACKAGES="chromium chromium-driver fonts-noto-core"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "browser for the page tests already installed ($PACKAGES)."
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing$missing needs root (run with sudo)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q $missing; then
    apt-get update -q
    apt-get install -y -q $missing
fi
