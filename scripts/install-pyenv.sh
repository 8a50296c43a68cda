#!/bin/sh
# Makes the Python venv the end-to-end tests run their helpers with
# (target/pyenv): the independent format decoders (cbor2, cryptography) and
# the SMTP server the e-mail tests send to (aiosmtpd). Debian's python3-venv
# first (ensurepip is not in Debian's python3). Idempotent: a venv that
# imports every package is left alone; a broken one (its python gone) is made
# again. Run as root on Debian 12 (for apt), from anywhere.
set -eu
cd "$(dirname "$0")/.."

VENV=target/pyenv
MODULES="aiosmtpd cbor2 cryptography"

. scripts/lib/apt.sh
apt_install "Python venv support" python3 python3-venv

if ! "$VENV/bin/python" -c "" 2>/dev/null; then
    echo "Creating $VENV."
    python3 -m venv --clear "$VENV"
fi
# shellcheck disable=SC2086
if "$VENV/bin/python" -c "import $(echo $MODULES | tr ' ' ',')" 2>/dev/null; then
    echo "$VENV already has $MODULES."
else
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $MODULES
    echo "Installed $MODULES into $VENV."
fi
