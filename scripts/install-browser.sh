#!/bin/sh
# Installs the browser the page tests drive: Debian's Chromium and its
# ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver), and Noto fonts
# for the Hindi pages. Idempotent; non-interactive; run as root on Debian 12.
set -eu

PACKAGES="chromium chromium-driver fonts-noto-core"

. "$(dirname "$0")/lib/apt.sh"
# shellcheck disable=SC2086
apt_install "browser for the page tests" $PACKAGES
