#!/usr/bin/env bash
# Benchmark moving Supabase Storage objects into Convex file storage: `migrate import` (plan
# `[files] source = "s3://"`, objects read from a local S3 server) against a one-off script's
# sequential copy, one file at a time, download then upload (scripts/lib/naive-files.mjs), into
# the same stand-in for Convex, in the same run: tools/convex-sink by default, or the Convex test
# runtime (tests/convex/server.ts over convex-test) with BENCH_RUNTIME=convex-test.
# Prints both wall times, the ratio (goal >= 8x), the S3 server's own pace, and migrate's peak
# RSS with small files and with large ones (goal: flat). A report, not a test: it exits 0 when a
# goal is missed.
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
#   BENCH_PROFILE       cargo profile of the migrate binary (default dist, as the other benchmarks)
#   BENCH_RUNTIME       sink (default) or convex-test
#   BENCH_S3            s3s-fs (default) or moto: the local S3 server
#   BENCH_LATENCY_MS    milliseconds the sink waits before answering each function call (default
#                       20, as the import, targets and sync benchmarks; uploads are answered when
#                       their bytes are in), as a deployment over the network does: the sequential
#                       copy then pays it three times per file. 0: everything on loopback, where
#                       the cores, not the overlap, set both times (see below)
#
# Needs: cargo, psql, node (tests/convex installed), GNU time at /usr/bin/time; with BENCH_S3=moto,
# moto_server (scripts/lib/s3-server.sh installs it).
#
# The S3 server: tools/s3-fs-server, the `s3s-fs` crate's filesystem-backed S3 server (pinned in
# its own Cargo.lock, not a member of the workspace: the tests never build it) with TCP_NODELAY
# on its connections. It is multi-threaded, as a real S3 endpoint serves many requests at once,
# and checks every request's signature v4 (both clients sign, path-style). The first run builds
# it into ~/.cache/migrate-bench (about 4 minutes on 2 cores with CARGO_BUILD_JOBS=1), later runs
# find it there. Why not moto, which the tests use: moto's server (Python, one request at a time)
# served about 143 GETs of 100 KB per second whether 1 or 16 were in flight, so it bounded both
# sides and the ratio measured moto (2.8x). Why not the `s3s-fs` binary itself: it leaves Nagle's
# algorithm on, and its 4 KiB body chunks wait for the client's delayed ACK, about 35 ms per GET
# of 100 KB; a sequential client would pay that 2,000 times, for the server's sake.
#
# Why the sink by default: convex-test keeps every file in memory and runs one call at a time (its
# store is not built for concurrent calls), and each upload and record costs it milliseconds, so
# it is the ceiling for both sides and the ratio measures convex-test (about 1.2x at 100 files).
# The sink speaks the same wire format (upload URL, POST, {"storageId"}) and keeps only each
# file's size and SHA-256, so the figures are those of the client: migrate overlaps the
# downloads, the uploads and the calls around them; the baseline overlaps nothing. Everything
# (Postgres aside: it is idle while files move) shares the machine's cores: the S3 server, the
# sink, and the client measured. The script also times the downloads alone (16 in flight from
# Node) and prints it beside the ratio: the S3 server's pace, with Node's own cost in it.
#
# Measured at b7378b9 (2026-12-06, dist build, nothing else running): at 20 ms, migrate 2.85 s,
# the copy 94.94 s, 33.3x; at 0 ms (BENCH_LATENCY_MS=0), migrate 1.74 s, the copy 7.66 s, 4.4x;
# CPU seconds at 0 ms migrate 1.12 + sink 0.34 + S3 1.63 against Node 6.88 + sink 0.46 + S3 2.04.
# On loopback nothing waits, so overlapping buys at most the second core and the rest is CPU per
# file, most of it the S3 server's (about 1 ms per GET): 8x is out of reach there whatever the
# client does. Before 9469271 uploads fed the limiter round-trip samples, which held it at 4-8
# calls in flight (14.7 s at 20 ms). Peak RSS 68 MiB with 2,000 x 100 KB, 55 MiB with
# 20 x 10 MiB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/convex-tools.sh
ensure_convex_tools

admin_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
files=${BENCH_FILES:-2000}
file_bytes=${BENCH_FILE_BYTES:-102400}
large=${BENCH_LARGE:-20}
large_bytes=${BENCH_LARGE_BYTES:-10485760}
profile=${BENCH_PROFILE:-dist}
runtime=${BENCH_RUNTIME:-sink}
s3_server=${BENCH_S3:-s3s-fs}
default_latency=0
[[ $runtime != sink ]] || default_latency=20
latency_ms=${BENCH_LATENCY_MS:-$default_latency}
[[ $runtime == sink || $latency_ms == 0 ]] || { echo "BENCH_LATENCY_MS needs the sink" >&2; exit 2; }
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

# The S3 server, on a free port, with its objects under $tmp; sets $s3.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY="bench-$RANDOM$RANDOM" AWS_REGION=us-east-1
if [[ $s3_server == moto ]]; then
    source scripts/lib/s3-server.sh
    ensure_s3_server
    s3_port=$(port_free)
    moto_server -H 127.0.0.1 -p "$s3_port" >"$tmp/s3.log" 2>&1 &
    s3_pid=$!
    pids+=($s3_pid)
    s3=http://127.0.0.1:$s3_port
    for _ in $(seq 100); do curl -s -o /dev/null "$s3" && break; sleep 0.1; done
else
    s3_cache=${XDG_CACHE_HOME:-$HOME/.cache}/migrate-bench
    cargo build --release --locked --quiet --manifest-path tools/s3-fs-server/Cargo.toml \
        --target-dir "$s3_cache/target"
    mkdir -p "$tmp/s3"
    "$s3_cache/target/release/s3-fs-server" "$tmp/s3" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
        </dev/null >"$tmp/s3.out" 2>"$tmp/s3.log" &
    s3_pid=$!
    pids+=($s3_pid)
    for _ in $(seq 100); do grep -q listening "$tmp/s3.out" 2>/dev/null && break; sleep 0.1; done
    s3=$(sed -n 's/^listening on //p' "$tmp/s3.out")
    [[ -n $s3 ]] || { cat "$tmp/s3.log" >&2; exit 1; }
fi
export AWS_ENDPOINT_URL=$s3

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
    (cd "$work" && "$bin" export --database-url "$url" --tables storage.buckets,storage.objects -q >/dev/null \
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
            --latency-ms "$latency_ms" </dev/null >"$tmp/server.out" 2>"$tmp/server.err" &
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

# CPU seconds (user + system) process $1 has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# CPU seconds the stand-in for Convex and the S3 server used since `cpu_mark`: "<runtime> <s3>".
# With BENCH_RUNTIME=convex-test the runtime's figure is its tsx launcher's, not Node's: "-".
cpu_mark() { runtime_cpu0=$(cpu_s "$runtime_pid"); s3_cpu0=$(cpu_s "$s3_pid"); }
cpu_since_mark() {
    local runtime_cpu=-
    [[ $runtime == sink ]] && runtime_cpu=$(awk -v a="$runtime_cpu0" -v b="$(cpu_s "$runtime_pid")" 'BEGIN { printf "%.2f", b - a }')
    echo "$runtime_cpu $(awk -v a="$s3_cpu0" -v b="$(cpu_s "$s3_pid")" 'BEGIN { printf "%.2f", b - a }')"
}

# Runs migrate import; prints "<wall s> <peak RSS KiB> <CPU s>".
time_migrate() {
    local work=$1
    local start end
    start=$(date +%s.%N)
    (cd "$work" && CONVEX_URL=$convex CONVEX_DEPLOY_KEY=$key /usr/bin/time -f '%M %U %S' -o "$tmp/rss" \
        "$bin" import --no-progress >"$tmp/import.out" 2>"$tmp/import.err") \
        || { cat "$tmp/import.err" >&2; exit 1; }
    end=$(date +%s.%N)
    echo "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') $(awk '{ printf "%s %.2f", $1, $2 + $3 }' "$tmp/rss")"
}

echo "bench-files: $(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) cores, profile $profile, from $s3_server into $runtime ($latency_ms ms per call), load$(uptime | sed 's/.*load average//')"
node scripts/lib/naive-files.mjs put "$s3" small "$files" "$file_bytes"
prepare "$tmp/small" small "$files" "$file_bytes"

start_runtime "$tmp/small"
cpu_mark
read -r migrate_s small_rss migrate_cpu < <(time_migrate "$tmp/small")
read -r migrate_runtime_cpu migrate_s3_cpu < <(cpu_since_mark)
stop_runtime
grep -q "files: $files of $files uploaded" "$tmp/import.out" \
    || { echo "migrate did not upload every file:" >&2; cat "$tmp/import.out" >&2; exit 1; }

start_runtime "$tmp/small"
cpu_mark
start=$(date +%s.%N)
/usr/bin/time -f '%U %S' -o "$tmp/naive.cpu" node scripts/lib/naive-files.mjs copy "$s3" small "$files" "$convex" "$key"
naive_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
naive_cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$tmp/naive.cpu")
read -r naive_runtime_cpu naive_s3_cpu < <(cpu_since_mark)
stop_runtime

start=$(date +%s.%N)
node scripts/lib/naive-files.mjs get "$s3" small "$files" 16
get_s=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')

ratio=$(awk -v a="$naive_s" -v b="$migrate_s" 'BEGIN { printf "%.1f", a / b }')
echo "$files files of $file_bytes bytes: migrate ${migrate_s}s, sequential copy ${naive_s}s: ${ratio}x (goal >= 8x)"
# The S3 server's own pace: the downloads alone, 16 at a time from Node, nothing uploaded.
echo "the downloads alone (Node, 16 in flight, nothing uploaded): ${get_s}s"
# Where the cores went: on loopback, with no latency to hide, a run is as fast as the CPU it
# needs from the client, the S3 server and the stand-in for Convex, all on the same cores.
echo "CPU seconds: migrate ${migrate_cpu} + $runtime ${migrate_runtime_cpu} + S3 ${migrate_s3_cpu}; sequential copy (Node) ${naive_cpu} + $runtime ${naive_runtime_cpu} + S3 ${naive_s3_cpu}"

node scripts/lib/naive-files.mjs put "$s3" large "$large" "$large_bytes"
prepare "$tmp/large" large "$large" "$large_bytes"
start_runtime "$tmp/large"
read -r large_s large_rss _ < <(time_migrate "$tmp/large")
stop_runtime
echo "peak RSS: ${small_rss} KiB with $files x $file_bytes bytes, ${large_rss} KiB with $large x $large_bytes bytes (${large_s}s)"
