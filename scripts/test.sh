#!/usr/bin/env bash
# Runs every test against a real PostgreSQL: `scripts/test.sh [extra args for the test runner]`.
#
# The tests connect to MIGRATE_TEST_DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres) and create one database each. When nothing
# answers there, a throwaway cluster is started from the installed PostgreSQL binaries on a free
# port (scripts/lib/postgres.sh) and removed on exit.
# Uses cargo-nextest when it is installed, else cargo test; extra arguments are passed on
# (e.g. `scripts/test.sh export_cli`). Installs the Convex test tools (tests/convex) with npm
# first when they are missing or stale, and moto's S3 server (scripts/lib/s3-server.sh) with pip
# when it is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/postgres.sh
source scripts/lib/convex-tools.sh
source scripts/lib/s3-server.sh

ensure_convex_tools
ensure_s3_server

ensure_postgres "${MIGRATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export MIGRATE_TEST_DATABASE_URL=$POSTGRES_URL

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    # Four at once, as .config/nextest.toml says for nextest.
    RUST_TEST_THREADS=${RUST_TEST_THREADS:-4} cargo test --workspace --no-fail-fast "$@"
fi
