#!/usr/bin/env bash
# Benchmark moving Supabase Storage objects into Convex file storage: `migrate import` (plan
# `[files] source = "s3://"`, objects read from moto's local S3 server) against a one-off
# script's sequential copy, one file at a time, download then upload (scripts/lib/naive-files.mjs),
# into the same stand-in for Convex, in the same run: tools/convex-sink by default, or the Convex
# test runtime (tests/convex/server.ts over convex-test) with BENCH_RUNTIME=convex-test.
# Prints both wall times, the ratio (goal >= 8x) and migrate's peak RSS with small files and with
# large ones (goal: flat). A report, not a test: it exits 0 when a goal is missed.
#
#   scripts/bench-files.sh
#   BENCH_FILES=500 scripts/bench-files.sh        # fewer files
#
# Environment:
#   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres); the
#                       database migrate_bench_files is (re)created and dropped
#   BENCH_FILES         small files (default 2000), of BENCH_FILE_BYTES (default 102400)
#   BENCH_LARGE         large files for the memory run (default 20), of BENCH_LARGE_BYTES
#                       (default 10485760)
#   BENCH_PROFILE       cargo profile of the migrate binary (default release)
#   BENCH_RUNTIME       sink (default) or convex-test
#
# Needs: cargo, psql, node (tests/convex installed), moto_server (scripts/lib/s3-server.sh
# installs it), GNU time at /usr/bin/time.
#
# Why the sink by default: convex-test keeps every file in memory and runs one call at a time (its
# store is not built for concurrent calls), and each upload and record costs it milliseconds, so
# it is the ceiling for both sides and the ratio measures convex-test (about 1.2x at 100 files).
# The sink speaks the same wire format (upload URL, POST, {"storageId"}) and keeps only each
# file's size and SHA-256, so the figures are those of the client: migrate overlaps the
# downloads, the uploads and the calls around them; the baseline overlaps nothing. moto's server
# (Python) is on the same 2 cores, and its own speed bounds both: the script times the downloads
# alone (16 in flight from Node) and prints it beside the ratio. Measured here under load from
# other builds: moto served about 143 GETs of 100 KB per second whether 1 or 16 were in flight.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/convex-tools.sh
source scripts/lib/s3-server.sh
ensure_convex_tools
ensure_s3_server

admin_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
files=${BENCH_FILES:-2000}
file_bytes=${BENCH_FILE_BYTES:-102400}
large=${BENCH_LARGE:-20}
large_bytes=${BENCH_LARGE_BYTES:-10485760}
profile=${BENCH_PROFILE:-release}
runtime=${BENCH_RUNTIME:-sink}
db=migrate_bench_files
url=${admin_url%/*}/$db
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-files.XXXXXX")
# The app runs from inside tests/convex, where its imports of `convex` resolve.
appdir=$(mktemp -d tests/convex/.bench-files.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    psql -X -q -d "$admin_url" -c "drop database if exists $db" >/dev/null 2>&1 || true
    rm -rf "$tmp" "$appdir"
}
trap cleanup EXIT

cargo build --profile "$profile" --quiet --bin migrate && cargo build --profile "$profile" --quiet -p convex-sink
target_dir=$([[ $profile == dev ]] && echo debug || echo "$profile")
bin=$PWD/target/$target_dir/migrate

port_free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

s3_port=$(port_free)
moto_server -H 127.0.0.1 -p "$s3_port" >"$tmp/moto.log" 2>&1 &
pids+=($!)
s3=http://127.0.0.1:$s3_port
for _ in $(seq 100); do curl -s -o /dev/null "$s3" && break; sleep 0.1; done
export AWS_ENDPOINT_URL=$s3 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

# A data dir holding `count` objects of bucket `bucket`, exported, planned and transformed.
prepare() {
    local work=$1 bucket=$2 count=$3 bytes=$4
    psql -X -q -d "$admin_url" -c "drop database if exists $db" -c "create database $db" >/dev/null
    psql -X -q -d "$url" -f tests/fixtures/supabase-storage-schema.sql >/dev/null 2>&1
    psql -X -q -d "$url" >/dev/null <<SQL
insert into storage.buckets (id, name) values ('$bucket', '$bucket');
insert into storage.objects (bucket_id, name, metadata)
  select '$bucket', format('f/%s.bin', i), jsonb_build_object('size', $bytes, 'mimetype', 'application/octet-stream')
  from generate_series(0, $count - 1) i;
SQL
    mkdir -p "$work/plan"
    (cd "$work" && "$bin" export --database-url "$url" --tables storage.buckets,storage.objects -q \
        && "$bin" init --convex-dir convex -q >/dev/null \
        && printf '[files]\nsource = "s3://"\n\n[tables."storage.objects"]\nskip = true\n' > migrations/0002_files.toml \
        && "$bin" init --convex-dir convex -q >/dev/null && "$bin" transform -q >/dev/null)
}

# Starts an empty stand-in for Convex running $1/convex; sets $convex and $key.
start_runtime() {
    key="bench|$RANDOM$RANDOM"
    : >"$tmp/server.out"
    if [[ $runtime == sink ]]; then
        "$PWD/target/$target_dir/convex-sink" --module "$1/convex/migrate.ts" --admin-key "$key" \
            </dev/null >"$tmp/server.out" 2>"$tmp/server.err" &
        runtime_pid=$!
        pids+=($runtime_pid)
        for _ in $(seq 100); do grep -q listening "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
        convex=$(sed -n 's/^listening on //p' "$tmp/server.out")
        return
    fi
    rm -rf "$appdir/convex" && cp -r "$1/convex" "$appdir/convex"
    tests/convex/node_modules/.bin/tsx tests/convex/server.ts "$appdir/convex" --admin-key "$key" \
        </dev/null >"$tmp/server.out" 2>"$tmp/server.err" &
    pids+=($!)
    runtime_pid=$!
    for _ in $(seq 300); do grep -q listening "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
    convex=$(sed -n 's/^listening on //p' "$tmp/server.out")
    [[ -n $convex ]] || { cat "$tmp/server.err" >&2; exit 1; }
}
stop_runtime() { pkill -P "$runtime_pid" 2>/dev/null || true; kill "$runtime_pid" 2>/dev/null || true; wait "$runtime_pid" 2>/dev/null || true; }

# Runs migrate import; prints "<wall s> <peak RSS KiB>".
time_migrate() {
    local work=$1
    local start end
    start=$(date +%s.%N)
    (cd "$work" && CONVEX_URL=$convex CONVEX_DEPLOY_KEY=$key /usr/bin/time -f '%M' -o "$tmp/rss" \
        "$bin" import --no-progress >"$tmp/import.out" 2>"$tmp/import.err") \
        || { cat "$tmp/import.err" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') $(cat "$tmp/rss")"
}

echo "bench-files: $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) cores, profile $profile, into $runtime"
node scripts/lib/naive-files.mjs put "$s3" small "$files" "$file_bytes"
prepare "$tmp/small" small "$files" "$file_bytes"

start_runtime "$tmp/small"
read -r migrate_s small_rss < <(time_migrate "$tmp/small")
stop_runtime
grep -q "files: $files of $files uploaded" "$tmp/import.out" \
    || { echo "migrate did not upload every file:" >&2; cat "$tmp/import.out" >&2; exit 1; }

start_runtime "$tmp/small"
start=$(date +%s.%N)
node scripts/lib/naive-files.mjs copy "$s3" small "$files" "$convex" "$key"
naive_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
stop_runtime

start=$(date +%s.%N)
node scripts/lib/naive-files.mjs get "$s3" small "$files" 16
get_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')

ratio=$(awk -v a="$naive_s" -v b="$migrate_s" 'BEGIN { printf "%.1f", a / b }')
echo "$files files of $file_bytes bytes: migrate ${migrate_s}s, sequential copy ${naive_s}s: ${ratio}x (goal >= 8x)"
# The S3 server's own pace: the downloads alone, 16 at a time from Node, nothing uploaded.
echo "the downloads alone (Node, 16 in flight, nothing uploaded): ${get_s}s"

node scripts/lib/naive-files.mjs put "$s3" large "$large" "$large_bytes"
prepare "$tmp/large" large "$large" "$large_bytes"
start_runtime "$tmp/large"
read -r large_s large_rss < <(time_migrate "$tmp/large")
stop_runtime
echo "peak RSS: ${small_rss} KiB with $files x $file_bytes bytes, ${large_rss} KiB with $large x $large_bytes bytes (${large_s}s)"
