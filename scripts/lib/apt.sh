# Sourced by the install scripts (POSIX sh). apt_install WHAT PACKAGES...
# installs the Debian packages not yet installed, non-interactively, as
# root; refreshes the package lists only when apt does not know one of
# them. Returns 0 (printing "WHAT already installed") when none is missing.
apt_install() {
    what=$1
    shift
    missing=""
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    if [ -z "$missing" ]; then
        echo "$what already installed ($*)."
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: installing$missing needs root (run with sudo)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    for p in $missing; do
        if ! apt-cache show "$p" >/dev/null 2>&1; then
            apt-get update
            break
        fi
    done
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing
    echo "Installed:$missing."
}
