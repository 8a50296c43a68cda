#!/bin/sh
# Installs poppler-utils (pdftoppm, pdftotext, pdfimages): the end-to-end
# test of the PDF's second QR (host/divoc/tests/all/pdf_second_qr.rs) checks
# the page as a reader sees it, with a PDF renderer that is not ours.
# Idempotent; non-interactive; run as root on Debian 12.
set -eu

PACKAGES="poppler-utils"

. "$(dirname "$0")/lib/apt.sh"
# shellcheck disable=SC2086
apt_install "PDF tools for the PDF tests" $PACKAGES
