#!/usr/bin/env bash
# Benchmark `migrate import --all-targets`: the bench table imported into ONE sink target, then
# into FOUR sink targets at once (targets.toml in the plan dir, one convex-sink per target, each
# with its own key and --latency-ms), in the same run; prints both times and their ratio. The
# goal (issue 11): four targets take no more than 1.3 x one target's time, i.e. targets run
# concurrently. A report, not a test: it exits 0 when the goal is missed, non-zero only when
# something fails to run or a sink holds the wrong documents.
#
#   scripts/bench-targets.sh
#   BENCH_SIZES=100000 BENCH_REPEAT=1 scripts/bench-targets.sh     # a quick run
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults except:
#   BENCH_SIZES      documents per target; default "1000000" here
#   BENCH_REPEAT     runs of each measurement (default 1 here; the median is reported)
#   BENCH_LATENCY    ms each sink holds a reply (default 20)
#   BENCH_TARGETS    how many targets in the wide run (default 4); --parallel-targets is set to it
#
# Method, per size. Untimed setup as in bench-import: load ../shared/bench/users.sql, `migrate
# export --tables bench_users`, `migrate init`, `migrate transform`; build migrate and convex-sink
# (--profile dist). Then per run: fresh sinks (empty stores) started before the clock, the
# per-deployment state (data/deployments/) removed, `sync`; `migrate import --target t1`, then
# `migrate import --all-targets` over BENCH_TARGETS targets. Each sink must end with
# inserted=N replaced=0. Wall time is the whole process, start-up included. migrate and the
# sinks share this machine's cores: the wide run has BENCH_TARGETS sinks doing BENCH_TARGETS x
# the inserts, so on few cores the ratio also measures CPU contention, not only concurrency: the
# script prints the cores migrate and the sinks kept busy (their CPU time / wall time) so that a
# miss can be told apart. Targets run concurrently when the wide run's time is set by CPU (cores
# busy near what the machine gives) rather than by latency (cores idle while waiting).

set -euo pipefail

GOAL_RATIO=1.3
BENCH_SIZES=${BENCH_SIZES:-1000000}
BENCH_REPEAT=${BENCH_REPEAT:-1}
latency=${BENCH_LATENCY:-20}
wide=${BENCH_TARGETS:-4}
[[ $latency =~ ^[0-9]+$ && $wide =~ ^[1-9][0-9]*$ ]] || {
  echo "BENCH_LATENCY and BENCH_TARGETS are whole numbers" >&2
  exit 2
}
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
bench_setup cargo psql awk sync
source "$(dirname "${BASH_SOURCE[0]}")/lib/sink.sh"

# Several sinks at once: their pids, stopped on exit too.
sink_pids=()
stop_all_sinks() {
  local pid
  for pid in "${sink_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  sink_pids=()
}
trap 'stop_all_sinks; bench_sink_cleanup' EXIT

bench_start
sink_build
bench_header "convex-sink at $latency ms per reply, 1 target vs $wide targets (--all-targets)"

data=$tmp/data plan=$tmp/plan convex=$tmp/convex

# Starts sink I (1-based) with key bench-key-I; writes its [targets.tI] table into targets.toml.
start_target_sink() {
  local i=$1 url="" tries
  : >"$tmp/sink$i.out"
  "$sink_bin" --module "$convex/migrate.ts" --admin-key "bench-key-$i" --port 0 \
    --latency-ms "$latency" >"$tmp/sink$i.out" 2>"$tmp/sink$i.err" &
  sink_pids+=($!)
  for ((tries = 0; tries < 200; tries++)); do
    url=$(sed -n 's/^listening on //p' "$tmp/sink$i.out")
    [[ -z $url ]] || break
    sleep 0.05
  done
  [[ -n $url ]] || die "convex-sink $i printed no 'listening on' line"
  printf '[targets.t%d]\nurl = "%s"\ndeploy_key_env = "BENCH_KEY_%d"\n\n' "$i" "$url" "$i" \
    >>"$plan/targets.toml"
  export "BENCH_KEY_$i=bench-key-$i"
}

# Stops the sinks (sets sinks_cpu: their CPU seconds, user+sys, summed); dies unless each
# inserted N documents and replaced none.
check_and_stop_sinks() {
  local n=$1 i stats pid ticks=0
  for pid in "${sink_pids[@]}"; do
    ticks=$((ticks + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
  done
  sinks_cpu=$(calc '%.2f' "$ticks / $(getconf CLK_TCK)")
  stop_all_sinks
  for ((i = 1; i <= $2; i++)); do
    stats=$(grep '^convex-sink: requests=' "$tmp/sink$i.err" | tail -n 1) \
      || die "no stats line from sink $i: $(cat "$tmp/sink$i.err")"
    [[ $stats == *" inserted=$n "* && $stats == *" replaced=0 "* ]] \
      || die "sink $i holds the wrong documents (expected inserted=$n replaced=0): $stats"
  done
}

# One measurement: COUNT fresh sinks, then `migrate import ARGS...`; sets secs (wall seconds),
# cpu (migrate's CPU seconds) and sinks_cpu.
measure_targets() {
  local n=$1 count=$2 i result
  shift 2
  rm -rf "$data/deployments" "$data/state.sqlite"* "$data/rejects/import" "$plan/targets.toml"
  for ((i = 1; i <= count; i++)); do start_target_sink "$i"; done
  sync
  result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
    "$bin" --data-dir "$data" --plan-dir "$plan" --no-progress import "$@") \
    || die "migrate import $* failed: $(tail -n 5 "$tmp/migrate.err")"
  check_and_stop_sinks "$n" "$count"
  read -r secs _ cpu <<<"$result"
}

for n in "${size_list[@]}"; do
  bench_load "$n"
  export_and_plan "$data" "$plan" "$convex"
  setup_migrate --data-dir "$data" --plan-dir "$plan" transform --no-progress
  one=() many=()
  for ((r = 1; r <= repeat; r++)); do
    measure_targets "$n" 1 --target t1
    one+=("$secs")
    busy1=$(calc '%.2f' "($cpu + $sinks_cpu) / $secs")
    log "rows=$n run $r/$repeat: 1 target ${one[-1]} s; CPU migrate $cpu s + sink $sinks_cpu s" \
      "= $busy1 cores busy of $(nproc)"
    measure_targets "$n" "$wide" --all-targets --parallel-targets "$wide"
    many+=("$secs")
    busyn=$(calc '%.2f' "($cpu + $sinks_cpu) / $secs")
    log "rows=$n run $r/$repeat: $wide targets ${many[-1]} s; CPU migrate $cpu s + sinks" \
      "$sinks_cpu s = $busyn cores busy of $(nproc)"
  done
  echo "rows=$n last run: cores busy (migrate + sinks CPU / wall): 1 target $busy1, $wide targets" \
    "$busyn, of $(nproc) (1-min load average at the end: $(cut -d' ' -f1 /proc/loadavg), other processes included)"
  t1=$(median "${one[@]}") tn=$(median "${many[@]}")
  ratio=$(calc '%.2f' "$tn / $t1")
  echo "rows=$n per target: 1 target $t1 s ($(calc '%.0f' "$n / $t1") docs/s);" \
    "$wide targets $tn s ($(calc '%.0f' "$wide * $n / $tn") docs/s in all);" \
    "ratio ${ratio}x (goal <= ${GOAL_RATIO}x) $(verdict "$(calc '%d' "($ratio <= $GOAL_RATIO)")")"
  rm -rf "$data" "$plan" "$convex"
done
