#!/usr/bin/env bash
# The README's first command: the whole migration of a small application, on this machine.
#
# Loads the sample application (examples/sample-app.sql: users with settings and preferences
# consolidated into one Convex table, posts, threaded comments with a self-reference, an enum,
# money as cents, jsonb, arrays) into Postgres; writes the plan and the Convex files with
# `migrate init`; starts a local Convex runtime running those files (tests/convex/server.ts: the
# official `convex-test` package behind Convex's HTTP API, standing in for a deployment); then
# `migrate run` exports, transforms, imports and verifies, printing each stage's summary.
#
# Uses the server at MIGRATE_DEMO_SERVER_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# when one answers, else a throwaway cluster of its own (scripts/lib/postgres.sh). Needs Node.js
# with npm for the Convex runtime (installed into tests/convex on first use). Everything it
# writes goes to ./demo/; the database it creates is dropped when it ends.
#
# It builds migrate in the dev profile, as scripts/test.sh does, so that the two README commands
# compile the dependencies once; the demo's data is small enough that optimisation would not
# show. Real migrations use the optimised build (`cargo install --path . --profile dist`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh
source scripts/lib/convex-tools.sh

ensure_postgres "${MIGRATE_DEMO_SERVER_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
demo_url="${POSTGRES_URL%/*}/migrate_demo"
ensure_convex_tools

export PGOPTIONS="-c client_min_messages=warning"
drop_demo_db() { psql "$POSTGRES_URL" -qc 'drop database if exists migrate_demo with (force)'; }
runtime_pid="" app=""
# On exit: the local Convex runtime stopped, the demo database dropped, a throwaway cluster
# (scripts/lib/postgres.sh) stopped last.
cleanup() {
  if [[ -n $runtime_pid ]]; then
    exec 3>&-
    wait "$runtime_pid" 2>/dev/null || true
  fi
  [[ -z $app ]] || rm -rf "$app" demo/.runtime-stdin
  drop_demo_db || true
  stop_throwaway_cluster
}
trap cleanup EXIT

echo "== building migrate (cargo build; the first build takes a few minutes)"
cargo build
echo

drop_demo_db
psql "$POSTGRES_URL" -qc 'create database migrate_demo'
psql "$demo_url" -q -v ON_ERROR_STOP=1 -f examples/sample-app.sql

migrate() { target/debug/migrate --data-dir demo/data --plan-dir demo/migrations "$@"; }
rm -rf demo && mkdir -p demo/migrations
# The example plan: users, settings and preferences consolidated into userProfiles, cents.
cp migrations/0001_initial.toml demo/migrations/

echo "== migrate init (keeps the edited example plan, writes demo/convex: migrateTables.ts, migrate.ts and a schema.ts spreading the tables)"
migrate init --database-url "$demo_url" --convex-dir demo/convex
echo

# The local Convex runtime loads a copy of demo/convex from inside tests/convex, where the app's
# imports of `convex/server` resolve. It exits when its stdin closes: when this script ends.
app=$convex_tools/.demo-app
rm -rf "$app" && mkdir -p "$app" && cp -r demo/convex "$app/convex"
deploy_key="demo|$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
mkfifo demo/.runtime-stdin
(cd "$convex_tools" && exec node_modules/.bin/tsx server.ts .demo-app/convex --admin-key "$deploy_key" --port 0) \
  <demo/.runtime-stdin >demo/convex-runtime.out 2>demo/convex-runtime.log &
runtime_pid=$!
exec 3>demo/.runtime-stdin
for _ in $(seq 300); do
  grep -q '^listening on ' demo/convex-runtime.out 2>/dev/null && break
  kill -0 "$runtime_pid" 2>/dev/null || { cat demo/convex-runtime.log >&2; exit 1; }
  sleep 0.2
done
convex_url=$(sed -n 's/^listening on //p' demo/convex-runtime.out | head -n 1)
[[ -n $convex_url ]] || { echo "the local Convex runtime did not start" >&2; cat demo/convex-runtime.log >&2; exit 1; }
echo "== local Convex runtime (convex-test) running demo/convex at $convex_url"
echo

echo "== migrate import --dry-run would send, in this order:"
migrate export --database-url "$demo_url" >/dev/null
migrate transform >/dev/null
migrate import --dry-run
echo

echo "== migrate run: export → transform → import → verify"
CONVEX_URL=$convex_url CONVEX_DEPLOY_KEY=$deploy_key migrate run --database-url "$demo_url"
echo
echo "Every row of the sample app is in the local Convex runtime, and verify proved it."
echo "Files: demo/migrations (the plan), demo/convex (schema.ts, migrateTables.ts, migrate.ts), demo/data (each stage's output)."
echo "The demo database migrate_demo is dropped now; run the script again to recreate it."
