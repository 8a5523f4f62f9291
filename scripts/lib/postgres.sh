# Sourced by scripts/*.sh: makes sure a PostgreSQL server answers.
#
#   ensure_postgres URL   → sets POSTGRES_URL to URL when a server answers there; otherwise starts
#                           a throwaway cluster with the installed Postgres binaries on a free port,
#                           says so, sets POSTGRES_URL to it and stops it when the script exits.
# initdb refuses to run as root, so as root the cluster runs as the `postgres` user.

pg_answers() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

pg_bindir() {
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
  else
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
  fi
}

ensure_postgres() {
  local url=$1
  if pg_answers "$url"; then
    POSTGRES_URL=$url
    return
  fi
  local bindir
  bindir=$(pg_bindir)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "error: nothing answers at $url and no Postgres binaries (initdb) are installed" >&2
    return 1
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_FALLBACK_DIR=$(mktemp -d /tmp/migrate-pg.XXXXXX)
  echo "note: nothing answers at $url; starting a throwaway PostgreSQL on 127.0.0.1:$port ($PG_FALLBACK_DIR)" >&2
  local run=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_FALLBACK_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bindir/initdb" -D "$PG_FALLBACK_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${run[@]}" "$bindir/pg_ctl" -D "$PG_FALLBACK_DIR/data" -l "$PG_FALLBACK_DIR/log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $PG_FALLBACK_DIR" start >/dev/null
  PG_FALLBACK_RUN=("${run[@]}")
  PG_FALLBACK_BINDIR=$bindir
  trap stop_fallback_postgres EXIT
  POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_fallback_postgres() {
  if [ -n "${PG_FALLBACK_DIR:-}" ]; then
    "${PG_FALLBACK_RUN[@]}" "$PG_FALLBACK_BINDIR/pg_ctl" -D "$PG_FALLBACK_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_FALLBACK_DIR"
    echo "note: stopped the throwaway PostgreSQL" >&2
  fi
}
