#!/usr/bin/env bash
# Benchmark `migrate export` against what people do today with psql, on the same table in the
# same run, and report ratios, peak memory and goals. A report, not a test: it exits 0 when a
# goal is missed, and non-zero only when something fails to run or the row counts disagree.
#
#   scripts/bench-export.sh
#
# Environment:
#   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres); the
#                       script (re)creates the database `migrate_bench` on that server and works
#                       only in it
#   BENCH_SIZES         row counts to load (default "100000 1000000"); run smallest first
#   BENCH_REPEAT        runs of each measurement; the median is kept (default 3)
#   BENCH_KEEP=1        keep the `migrate_bench` database afterwards (default: dropped)
#   BENCH_RSS_TOOL      gnu-time or python3 (default: gnu-time when /usr/bin/time exists)
#   BENCH_TMPDIR        where the outputs are written (default $TMPDIR or /tmp); needs about
#                       4 x 270 MB free per million rows
#
# Needs: cargo, psql (same major as the server or newer), awk, and a way to read peak RSS:
#   - GNU time at /usr/bin/time (Debian/Ubuntu: `apt-get install time`; it is not in minimal
#     or container images), else
#   - python3 (in most Debian installs, though not in minimal images), polling the program's
#     VmHWM in /proc (see hwm_poller below for why not getrusage).
# The script installs nothing; it stops and says what to install when neither is there. On a
# fresh Debian machine: apt-get install -y time postgresql-client (psql).
#
# Method, per size: load ../shared/bench/users.sql (timed, for information only), VACUUM ANALYZE,
# read the whole heap once with a forced sequential scan (a plain count(*) on a freshly vacuumed
# table is answered from the smallest index and would leave the heap cold). Then BENCH_REPEAT
# rounds of: ../shared/bench/baseline-export.sh (psql row_to_json, COPY text, COPY binary), then
# `migrate export --jobs 1`. Before every measurement the previous outputs are deleted and `sync`
# runs, so no run pays for another's writeback. Wall time is taken with `date +%s.%N` around the
# process, the same clock the baseline script uses; peak RSS comes from GNU time's %M (GNU time's
# own %e has only 10 ms resolution).
# Note: migrate fsyncs its file before renaming it into place, psql does not; migrate's time
# includes that.

set -euo pipefail

# Goals (see ../shared/bench/README.md). Ratios are migrate time / baseline time, judged at the
# largest size; RSS at every size; "flat" means the largest size's peak RSS is at most
# FLAT_FACTOR times the smallest size's.
GOAL_VS_ROW_TO_JSON=0.67
GOAL_VS_COPY_BINARY=1.50
GOAL_RSS_MIB=64
FLAT_FACTOR=1.25

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=$(cd "$repo/../shared/bench" && pwd)
admin_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
sizes=${BENCH_SIZES:-100000 1000000}
repeat=${BENCH_REPEAT:-3}
keep=${BENCH_KEEP:-0}
db=migrate_bench
table=bench_users
raw_file=raw/public.$table.jsonl

log() { printf '%s\n' "$*" >&2; }
die() { log "bench-export: $*"; exit 1; }

[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer, not '$repeat'"
read -r -a size_list <<<"$sizes"
((${#size_list[@]} > 0)) || die "BENCH_SIZES is empty"
for n in "${size_list[@]}"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZES holds '$n', not a positive row count"
done
mapfile -t size_list < <(printf '%s\n' "${size_list[@]}" | sort -n -u)
for tool in cargo psql awk sync; do
  command -v "$tool" >/dev/null || die "needs $tool on PATH"
done
rss_tool=${BENCH_RSS_TOOL:-}
if [[ -z $rss_tool ]]; then
  if [[ -x /usr/bin/time ]]; then
    rss_tool=gnu-time
  elif command -v python3 >/dev/null; then
    rss_tool=python3
  else
    die "needs GNU time (apt-get install time) or python3 to measure peak RSS"
  fi
fi
[[ $rss_tool == gnu-time || $rss_tool == python3 ]] || die "BENCH_RSS_TOOL is gnu-time or python3"

# The same server and credentials as the admin URL, database `migrate_bench`.
bench_url() {
  local url=$1 query=
  if [[ $url == *\?* ]]; then query="?${url#*\?}"; url=${url%%\?*}; fi
  [[ $url == *://* ]] || die "BENCH_DATABASE_URL must be a postgres:// URL"
  local scheme=${url%%://*} rest=${url#*://}
  printf '%s://%s/%s%s\n' "$scheme" "${rest%%/*}" "$db" "$query"
}
url=$(bench_url "$admin_url")

# Quiet psql: no NOTICEs ("table does not exist, skipping") on the report's stderr.
quiet_options="${PGOPTIONS:-} -c client_min_messages=warning"
admin() { PGOPTIONS=$quiet_options psql "$admin_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
bench() { PGOPTIONS=$quiet_options psql "$url" -X -q -v ON_ERROR_STOP=1 "$@"; }

tmp=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/migrate-bench.XXXXXX")
db_created=0
cleanup() {
  local status=$?
  rm -rf "$tmp"
  if ((db_created)); then
    if [[ $keep == 1 ]]; then
      log "kept database $db (BENCH_KEEP=1)"
    else
      admin -c "drop database if exists $db" >/dev/null 2>&1 || log "could not drop database $db"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", e - s }'; }

# Median of the arguments (mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
verdict() { awk -v c="$1" 'BEGIN { print (c ? "PASS" : "MISS") }'; }

# The python3 fallback for peak RSS. Not getrusage(RUSAGE_CHILDREN): Linux folds the memory the
# child had before exec (a copy of the python interpreter, 5-14 MiB) into its max RSS. Instead
# poll VmHWM (the high-water mark of the exec'd program only) every 5 ms while the child runs;
# it agrees with GNU time within a few hundred KiB, but can miss a spike in the last 5 ms. The
# wall time is taken around the child only, so python's own start-up (30-50 ms) is not counted.
# Writes "<wall seconds> <peak KiB>".
hwm_poller='
import os, subprocess, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
target = os.path.realpath(argv[0])
started = time.monotonic()
child = subprocess.Popen(argv)
ended = []
waiter = threading.Thread(target=lambda: (child.wait(), ended.append(time.monotonic())))
waiter.start()
status, exe, peak = f"/proc/{child.pid}/status", f"/proc/{child.pid}/exe", 0
while waiter.is_alive():
    try:
        if os.path.realpath(exe) == target:
            with open(status) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
    except OSError:
        pass
    waiter.join(0.005)
with open(out, "w") as f:
    print(f"{ended[0] - started:.3f} {peak}", file=f)
sys.exit(child.returncode)
'

# Runs a command with stdout/stderr to files; prints "<wall seconds> <max RSS KiB>".
measure() {
  local out=$1 err=$2; shift 2
  local s e rc=0
  s=$(now)
  case $rss_tool in
    gnu-time) /usr/bin/time -f '%M' -o "$tmp/rss" "$@" >"$out" 2>"$err" || rc=$? ;;
    python3) python3 -c "$hwm_poller" "$tmp/rss" "$@" >"$out" 2>"$err" || rc=$? ;;
  esac
  e=$(now)
  if ((rc != 0)); then
    log "failed (exit $rc): $*"
    cat "$err" >&2
    return "$rc"
  fi
  case $rss_tool in
    gnu-time) printf '%s %s\n' "$(elapsed "$s" "$e")" "$(tail -n 1 "$tmp/rss")" ;;
    python3) cat "$tmp/rss" ;;
  esac
}

log "building: cargo build --release"
(cd "$repo" && cargo build --release --quiet) || die "cargo build --release failed"
bin=$repo/target/release/migrate
[[ -x $bin ]] || die "no binary at $bin"

# migrate reads DATABASE_URL, MIGRATE_* and a .env in its working directory: run it from the
# temp dir with none of those set, so only the flags below count.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(MIGRATE_|DATABASE_URL$|RUST_LOG$)' || true)

log "database: $db (recreated on the BENCH_DATABASE_URL server)"
admin -c "drop database if exists $db" >/dev/null
admin -c "create database $db" >/dev/null
db_created=1

server=$(bench -At -c "show server_version")
log "server $server, migrate $(git -C "$repo" describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores, rss via $rss_tool, outputs in $tmp"
echo "bench-export: PostgreSQL $server, $(nproc) cores, BENCH_REPEAT=$repeat (medians), migrate --jobs 1"

# The seconds of one method in the baseline script's output ("psql-copy-text   1.450 s ...").
pick() {
  awk -v m="$1" '$1 == m { print $2; found = 1 } END { exit !found }' "$tmp/baseline.out" \
    || die "no '$1' line in the baseline output: $(cat "$tmp/baseline.out")"
}

declare -A rss_of
largest="" smallest="" worst_rss_kib=0
for n in "${size_list[@]}"; do
  log "rows=$n: loading users.sql"
  s=$(now)
  bench -v rows="$n" -f "$shared/users.sql" >/dev/null
  bench -c "vacuum analyze $table"
  bench -At -c "set enable_indexonlyscan = off; set enable_indexscan = off;
                set enable_bitmapscan = off; select count(*) from $table" >/dev/null
  log "rows=$n: loaded and warmed in $(elapsed "$s" "$(now)") s (not a result)"
  count=$(bench -At -c "select count(*) from $table")
  ((count == n)) || die "bench_users holds $count rows, expected $n"

  t_json=() t_text=() t_bin=() t_mig=() rss=()
  for ((r = 1; r <= repeat; r++)); do
    rm -rf "$tmp/baseline" "$tmp/data"
    sync
    "$shared/baseline-export.sh" "$url" "$table" "$tmp/baseline" >"$tmp/baseline.out" \
      || die "baseline-export.sh failed"
    secs=$(pick psql-row_to_json)
    t_json+=("$secs")
    secs=$(pick psql-copy-text)
    t_text+=("$secs")
    secs=$(pick psql-copy-binary)
    t_bin+=("$secs")
    json_lines=$(wc -l <"$tmp/baseline/row_to_json.jsonl")
    json_bytes=$(wc -c <"$tmp/baseline/row_to_json.jsonl")
    rm -rf "$tmp/baseline"
    sync

    mkdir -p "$tmp/cwd"
    result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
      "$bin" export --database-url "$url" --tables "$table" --jobs 1 \
      --data-dir "$tmp/data" --no-progress) || die "migrate export failed"
    read -r secs kib <<<"$result"
    t_mig+=("$secs")
    rss+=("$kib")
    mig_lines=$(wc -l <"$tmp/data/$raw_file")
    mig_bytes=$(wc -c <"$tmp/data/$raw_file")
    if ((mig_lines != n || json_lines != n)); then
      die "line counts disagree at rows=$n: migrate $mig_lines, psql row_to_json $json_lines"
    fi
    log "rows=$n run $r/$repeat: row_to_json ${t_json[-1]} s, COPY text ${t_text[-1]} s," \
      "COPY binary ${t_bin[-1]} s, migrate $secs s, $kib KiB"
  done
  rm -rf "$tmp/data"

  m_json=$(median "${t_json[@]}")
  m_text=$(median "${t_text[@]}")
  m_bin=$(median "${t_bin[@]}")
  m_mig=$(median "${t_mig[@]}")
  m_rss=$(median "${rss[@]}")
  rss_mib=$(calc '%.1f' "$m_rss / 1024")
  r_json=$(calc '%.2f' "$m_mig / $m_json")
  r_bin=$(calc '%.2f' "$m_mig / $m_bin")
  max_rss_kib=$(printf '%s\n' "${rss[@]}" | sort -n | tail -n 1)

  echo
  printf 'rows=%s  psql row_to_json %.2f s | COPY text %.2f s | COPY binary %.2f s | migrate export %.2f s\n' \
    "$n" "$m_json" "$m_text" "$m_bin" "$m_mig"
  printf 'ratios: migrate/row_to_json %s (goal <= %s)  migrate/COPY-binary %s (goal <= %s)\n' \
    "$r_json" "$GOAL_VS_ROW_TO_JSON" "$r_bin" "$GOAL_VS_COPY_BINARY"
  printf 'migrate peak RSS %s MiB (goal < %s MiB)  output %s MB (row_to_json %s MB), %s rows checked\n' \
    "$rss_mib" "$GOAL_RSS_MIB" "$(calc '%.1f' "$mig_bytes / 1e6")" \
    "$(calc '%.1f' "$json_bytes / 1e6")" "$n"

  rss_of[$n]=$rss_mib
  [[ -n $smallest ]] || smallest=$n
  largest=$n
  last_r_json=$r_json last_r_bin=$r_bin
  if ((max_rss_kib > worst_rss_kib)); then worst_rss_kib=$max_rss_kib; fi
done

human_rows() { awk -v n="$1" 'BEGIN {
  if (n >= 1e6 && n % 1e6 == 0) printf "%dM", n / 1e6
  else if (n >= 1e3 && n % 1e3 == 0) printf "%dk", n / 1e3
  else printf "%d", n }'; }

worst_rss_mib=$(calc '%.1f' "$worst_rss_kib / 1024")
echo
if [[ $smallest != "$largest" ]]; then
  growth=$(calc '%.2f' "${rss_of[$largest]} / ${rss_of[$smallest]}")
  printf 'peak RSS %s %s MiB -> %s %s MiB (x%s, goal: flat, <= x%s)\n' \
    "$(human_rows "$smallest")" "${rss_of[$smallest]}" "$(human_rows "$largest")" \
    "${rss_of[$largest]}" "$growth" "$FLAT_FACTOR"
  flat=$(verdict "$(calc '%d' "$growth <= $FLAT_FACTOR")")
else
  echo "peak RSS flatness: n/a (one size)"
  flat="SKIP (needs two sizes)"
fi
at="at rows=$largest"
echo "goal migrate/row_to_json <= $GOAL_VS_ROW_TO_JSON $at: $last_r_json $(verdict "$(calc '%d' "$last_r_json <= $GOAL_VS_ROW_TO_JSON")")"
echo "goal migrate/COPY-binary <= $GOAL_VS_COPY_BINARY $at: $last_r_bin $(verdict "$(calc '%d' "$last_r_bin <= $GOAL_VS_COPY_BINARY")")"
echo "goal peak RSS < $GOAL_RSS_MIB MiB (worst run, all sizes): $worst_rss_mib MiB $(verdict "$(calc '%d' "$worst_rss_mib < $GOAL_RSS_MIB")")"
echo "goal peak RSS flat: $flat"
