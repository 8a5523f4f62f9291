#!/usr/bin/env bash
# Runs every test against a real PostgreSQL: `scripts/test.sh [extra args for the test runner]`.
#
# The tests connect to MIGRATE_TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres) and create one database each. When nothing
# answers there, this script starts a throwaway cluster from the installed PostgreSQL binaries
# on a free port, points MIGRATE_TEST_DATABASE_URL at it, and removes it on exit.
# Uses cargo-nextest when it is installed, else cargo test; extra arguments are passed on
# (e.g. `scripts/test.sh export_cli`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

url="${MIGRATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

# The directory holding initdb and pg_ctl.
pg_bindir() {
    local dir
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return
    fi
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return
    fi
    if command -v initdb >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    echo "error: no PostgreSQL server binaries (initdb, pg_ctl) found; install PostgreSQL" >&2
    exit 1
}

# True when a server answers at $1 (psql also checks the login; pg_isready only the server).
answers() {
    if command -v psql >/dev/null; then
        psql "$1" -Atqc 'select 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null; then
        pg_isready -q -d "$1"
    else
        "$(pg_bindir)/pg_isready" -q -d "$1"
    fi
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    for port in $(seq 54320 54420); do
        if ! (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "error: no free port found in 54320-54420" >&2
    exit 1
}

# Runs a PostgreSQL tool as the cluster's owner: initdb refuses to run as root.
as_cluster_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_throwaway_cluster() {
    local port
    bindir=$(pg_bindir)
    port=$(free_port)
    cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/migrate-test-pg.XXXXXX")
    trap stop_throwaway_cluster EXIT
    trap 'exit 130' INT TERM
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$cluster_dir"
    fi
    as_cluster_owner "$bindir/initdb" -D "$cluster_dir/data" --auth=trust -U postgres \
        -E UTF8 --locale=C --no-sync >"$cluster_dir/initdb.log" 2>&1 ||
        { cat "$cluster_dir/initdb.log" >&2; exit 1; }
    as_cluster_owner "$bindir/pg_ctl" start -w -D "$cluster_dir/data" -l "$cluster_dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $cluster_dir -c fsync=off" >/dev/null ||
        { cat "$cluster_dir/server.log" >&2; exit 1; }
    export MIGRATE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "started a throwaway PostgreSQL at $MIGRATE_TEST_DATABASE_URL (removed on exit)" >&2
}

stop_throwaway_cluster() {
    if [ -d "$cluster_dir/data" ]; then
        as_cluster_owner "$bindir/pg_ctl" stop -D "$cluster_dir/data" -m immediate -w \
            >/dev/null 2>&1 || true
    fi
    rm -rf "$cluster_dir"
}

if answers "$url"; then
    export MIGRATE_TEST_DATABASE_URL="$url"
else
    shown=$(printf '%s' "$url" | sed -E 's#(://[^:/@]*):[^@]*@#\1:****@#')
    echo "no PostgreSQL answers at $shown (MIGRATE_TEST_DATABASE_URL)" >&2
    start_throwaway_cluster
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
