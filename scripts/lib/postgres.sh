# Sourced by scripts/*.sh: makes sure a PostgreSQL server answers.
#
#   ensure_postgres URL   sets POSTGRES_URL to URL when a server answers there; otherwise starts
#                         a throwaway cluster from the installed PostgreSQL binaries on a free
#                         port (trust auth, user postgres), says so, sets POSTGRES_URL to it, and
#                         stops and removes it when the script exits.
# initdb refuses to run as root, so as root the cluster runs as the `postgres` user.

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
pg_answers() {
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
    pg_fallback_bindir=$(pg_bindir)
    port=$(free_port)
    pg_fallback_dir=$(mktemp -d "${TMPDIR:-/tmp}/migrate-pg.XXXXXX")
    trap stop_throwaway_cluster EXIT
    trap 'exit 130' INT TERM
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$pg_fallback_dir"
    fi
    as_cluster_owner "$pg_fallback_bindir/initdb" -D "$pg_fallback_dir/data" --auth=trust \
        -U postgres -E UTF8 --locale=C --no-sync >"$pg_fallback_dir/initdb.log" 2>&1 ||
        { cat "$pg_fallback_dir/initdb.log" >&2; exit 1; }
    as_cluster_owner "$pg_fallback_bindir/pg_ctl" start -w -D "$pg_fallback_dir/data" \
        -l "$pg_fallback_dir/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_fallback_dir -c fsync=off" >/dev/null ||
        { cat "$pg_fallback_dir/server.log" >&2; exit 1; }
    POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "started a throwaway PostgreSQL at $POSTGRES_URL (removed on exit)" >&2
}

stop_throwaway_cluster() {
    if [ -d "${pg_fallback_dir:-}/data" ]; then
        as_cluster_owner "$pg_fallback_bindir/pg_ctl" stop -D "$pg_fallback_dir/data" \
            -m immediate -w >/dev/null 2>&1 || true
    fi
    rm -rf "${pg_fallback_dir:-}"
}

ensure_postgres() {
    local url=$1 shown
    if pg_answers "$url"; then
        POSTGRES_URL=$url
        return
    fi
    shown=$(printf '%s' "$url" | sed -E 's#(://[^:/@]*):[^@]*@#\1:****@#')
    echo "no PostgreSQL answers at $shown" >&2
    start_throwaway_cluster
}
