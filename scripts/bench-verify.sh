#!/usr/bin/env bash
# Benchmark `migrate verify` against `migrate import` into the same fast in-memory Convex
# stand-in (tools/convex-sink, 0 ms latency) in the same run: wall time of each, the ratio
# verify / import, and verify's peak RSS per size (goals: verify no slower than import, and its
# memory flat in the table size). A report, not a test: it exits 0 when a goal is missed, and
# non-zero only when something fails to run or verify does not pass.
#
#   scripts/bench-verify.sh
#   BENCH_SIZES=100000 BENCH_REPEAT=1 scripts/bench-verify.sh     # a quick run
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults (sizes "100000
# 1000000", BENCH_REPEAT 3). BENCH_TMPDIR needs about 3 x 270 MB free per million rows.
#
# Method, per size. Untimed setup: load ../shared/bench/users.sql (bench_users, one table, no
# references), `migrate export --tables bench_users`, `migrate init` from the export's manifest,
# `migrate transform`. Then BENCH_REPEAT times: a fresh sink; `migrate import --concurrency 16`
# (timed; state and rejects/import deleted first, `sync`); `migrate verify` (timed) against the
# same sink, which must pass (exit 0); the sink stopped. Medians are reported. Wall time, peak RSS
# and CPU (user+sys) per process come from scripts/lib/bench.sh.
#
# Caveats: the sink is single-threaded and shares the machine's cores with migrate; both
# directions pay the same HTTP and JSON costs, verify also re-hashes the raw file, reads the
# transformed file and fingerprints both sides. Other processes on the machine (other builds,
# tests) slow both measurements.

set -euo pipefail

# Goals (the issue): verify's time <= import's time at the largest size; verify's peak RSS at the
# largest size <= FLAT_FACTOR x at the smallest.
FLAT_FACTOR=1.5
CONCURRENCY=16

source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"

bench_setup cargo psql awk sync

source "$(dirname "${BASH_SOURCE[0]}")/lib/sink.sh"

bench_start
sink_build
bench_header "(medians), convex-sink at 0 ms, import --concurrency $CONCURRENCY"

data=$tmp/data plan=$tmp/plan convex=$tmp/convex

declare -A t_import_of t_verify_of rss_verify_of rss_import_of cpu_verify_of
for n in "${size_list[@]}"; do
  bench_load "$n"
  s=$(now)
  export_and_plan "$data" "$plan" "$convex"
  setup_migrate --data-dir "$data" --plan-dir "$plan" transform --no-progress
  log "rows=$n: exported, planned and transformed in $(elapsed "$s" "$(now)") s (not a result)"

  imports=() verifies=() rss_v=() rss_i=() cpu_v=()
  for ((r = 1; r <= repeat; r++)); do
    rm -rf "$data/state.sqlite" "$data/state.sqlite-wal" "$data/state.sqlite-shm" \
      "$data/rejects/import"
    sync
    start_sink
    result=$(cd "$tmp/cwd" && measure "$tmp/import.out" "$tmp/import.err" \
      "$bin" --data-dir "$data" --plan-dir "$plan" --no-progress import \
      --concurrency "$CONCURRENCY") || die "migrate import failed"
    read -r isecs ikib _ <<<"$result"
    result=$(cd "$tmp/cwd" && measure "$tmp/verify.out" "$tmp/verify.err" \
      "$bin" --data-dir "$data" --plan-dir "$plan" --no-progress verify) \
      || { cat "$tmp/verify.out" >&2; die "migrate verify failed"; }
    read -r vsecs vkib vcpu <<<"$result"
    grep -q '^verified: ' "$tmp/verify.out" || { cat "$tmp/verify.out" >&2; die "verify did not verify"; }
    stop_sink_process
    imports+=("$isecs") verifies+=("$vsecs") rss_v+=("$vkib") rss_i+=("$ikib") cpu_v+=("$vcpu")
    log "rows=$n run $r/$repeat: import $isecs s ($ikib KiB), verify $vsecs s ($vkib KiB, cpu $vcpu s)"
  done
  t_import_of[$n]=$(median "${imports[@]}")
  t_verify_of[$n]=$(median "${verifies[@]}")
  rss_verify_of[$n]=$(median "${rss_v[@]}")
  rss_import_of[$n]=$(median "${rss_i[@]}")
  cpu_verify_of[$n]=$(median "${cpu_v[@]}")
done

printf '%10s %10s %10s %14s %16s %16s %14s\n' rows "import s" "verify s" "verify/import" \
  "verify RSS MiB" "import RSS MiB" "verify cpu s"
for n in "${size_list[@]}"; do
  printf '%10s %10s %10s %14s %16s %16s %14s\n' "$n" "${t_import_of[$n]}" "${t_verify_of[$n]}" \
    "$(calc '%.2f' "${t_verify_of[$n]} / ${t_import_of[$n]}")" \
    "$(calc '%.1f' "${rss_verify_of[$n]} / 1024")" "$(calc '%.1f' "${rss_import_of[$n]} / 1024")" \
    "${cpu_verify_of[$n]}"
done
smallest=${size_list[0]}
largest=${size_list[-1]}
ratio=$(calc '%.2f' "${t_verify_of[$largest]} / ${t_import_of[$largest]}")
echo "verify/import at $(human_rows "$largest"): x$ratio (goal: <= 1):" \
  "$(verdict "$(calc '%d' "$ratio <= 1")")"
rss_flatness "verify peak RSS" "$smallest" "$(calc '%.1f' "${rss_verify_of[$smallest]} / 1024")" \
  "$largest" "$(calc '%.1f' "${rss_verify_of[$largest]} / 1024")"
echo "verify peak RSS flat: $flat"
