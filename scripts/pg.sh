#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for tests, benches and trying the
# PostgreSQL backend locally, from Debian's packages:
#
#   scripts/pg.sh start DIR   # installs postgresql-15 if missing, makes a
#                             # cluster in DIR on a free loopback port, and
#                             # prints its URL (also in DIR/url)
#   scripts/pg.sh stop DIR    # stops it (DIR can then be removed)
#
# The cluster listens on 127.0.0.1 only, trusts local connections (it is
# for this machine's tests, never for data anyone keeps) and keeps
# PostgreSQL's durable defaults (fsync, synchronous_commit), so what the
# tests and benches see is what a deployment gets. Servers refuse to run as
# root: as root the cluster belongs to the `postgres` user the package
# creates.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

bin=/usr/lib/postgresql/15/bin
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    if [ ! -x "$bin/pg_ctl" ]; then
        . "$(dirname "$0")/lib/apt.sh"
        apt_install "PostgreSQL 15" postgresql-15
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        # C collation: text sorts by bytes, as in SQLite.
        as_owner "$bin/initdb" -D "$dir/data" -U divoc --auth=trust \
            --encoding=UTF8 --no-locale >"$dir/initdb.log"
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
        start >/dev/null
    url="postgres://divoc@127.0.0.1:$port/postgres"
    "$bin/psql" "$url" -qtAc "SELECT 1 FROM pg_database WHERE datname = 'divoc'" | grep -q 1 ||
        "$bin/psql" "$url" -qc "CREATE DATABASE divoc"
    url="postgres://divoc@127.0.0.1:$port/divoc"
    echo "$url" >"$dir/url"
    echo "$url"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
