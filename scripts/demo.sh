#!/usr/bin/env bash
# The README's first command: loads the sample application database into Postgres and runs the
# pipeline on it, printing each stage's summary. Uses the server at MIGRATE_DEMO_SERVER_URL
# (default postgres://postgres@127.0.0.1:5432/postgres) when one answers, else a throwaway
# cluster of its own (scripts/lib/postgres.sh). Everything it writes goes to ./demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/postgres.sh

ensure_postgres "${MIGRATE_DEMO_SERVER_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
demo_url="${POSTGRES_URL%/*}/migrate_demo"

export PGOPTIONS="-c client_min_messages=warning"
psql "$POSTGRES_URL" -qc 'drop database if exists migrate_demo with (force)' -c 'create database migrate_demo'
psql "$demo_url" -q -v ON_ERROR_STOP=1 -f examples/sample-app.sql

cargo build --release --quiet
migrate() { target/release/migrate --data-dir demo/data --plan-dir demo/migrations "$@"; }
rm -rf demo && mkdir -p demo/migrations
# The example plan: users, settings and preferences consolidated into userProfiles, cents.
cp migrations/0001_initial.toml demo/migrations/

echo "== migrate export (sample app: users, settings, preferences, posts, threaded comments)"
migrate export --database-url "$demo_url"
echo
echo "== migrate init (keeps the edited example plan, writes demo/convex/schema.ts)"
migrate init --convex-dir demo/convex
echo
echo "== migrate transform --dry-run --sample 1"
migrate transform --dry-run --sample 1 | tail -n 12
echo
echo "== migrate transform"
migrate transform
echo
echo "Documents are in demo/data/transformed/, the Convex schema in demo/convex/schema.ts."
echo "import and verify are not built yet: see README.md."
