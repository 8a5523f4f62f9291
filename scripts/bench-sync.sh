#!/usr/bin/env bash
# Benchmark `migrate sync` (issue 12): the bench table fully imported into the fast sink at 20 ms
# per reply, then 1% of its rows updated, 0.1% deleted and 0.1% inserted in Postgres; the
# cut-over (`migrate export`, `migrate transform`, `migrate sync`) timed stage by stage against
# the full import's time, measured in the same run. Prints both figures of the issue:
#   (export + transform + sync time) / (full import time)   goal <= 0.10
#   documents sent / rows changed                             goal <= 1.1
# A report, not a test: it exits 0 when a goal is missed, non-zero only when something fails to
# run or the sink ends up holding the wrong documents.
#
#   scripts/bench-sync.sh
#   BENCH_SIZES=100000 scripts/bench-sync.sh        # a quick run
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults except:
#   BENCH_SIZES      rows; default "1000000" here
#   BENCH_REPEAT     ignored: one run (the sync needs the import before it)
#   BENCH_LATENCY    ms the sink holds each reply (default 20)
#   BENCH_VERIFY=0   skip the untimed `migrate verify` after the sync (default: run it)
#
# Method, per size. Untimed: load ../shared/bench/users.sql, `migrate export --tables
# bench_users`, `migrate init`, `migrate transform`; build migrate and convex-sink (--profile
# dist); start a fresh sink. Timed: `migrate import` (no flags). Untimed: the changes in
# Postgres (the first 1% of rows by id get a new full_name, the next 0.1% are deleted, 0.1% new
# rows inserted). Timed, one after the other: `migrate export`, `migrate transform`, `migrate
# sync`. Beside, not in the ratio: `migrate export --incremental` of the same changes from a copy
# of the data directory as the import left it, and the bytes it read from the server. The sink's counters then must show exactly the changes applied: inserted = N + 0.1%,
# replaced = 1%, deleted = 0.1%; `migrate verify` must pass. Documents sent = upserts + deletes
# the sink applied during the sync. Wall time is the whole process, start-up included.

set -euo pipefail

GOAL_TIME=0.10
GOAL_SENT=1.1
BENCH_SIZES=${BENCH_SIZES:-1000000}
BENCH_REPEAT=1
latency=${BENCH_LATENCY:-20}
[[ $latency =~ ^[0-9]+$ ]] || { echo "BENCH_LATENCY is a whole number" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
bench_setup cargo psql awk sync
source "$(dirname "${BASH_SOURCE[0]}")/lib/sink.sh"

bench_start
sink_build
bench_header "convex-sink at $latency ms per reply, migrate import and sync with no flags"

data=$tmp/data plan=$tmp/plan convex=$tmp/convex

# The sink's counter NAME from its stats line (printed on SIGTERM).
sink_counter() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$sink_stats"; }

# Runs `migrate ARGS...` timed; sets secs and cpu.
timed() {
  local result
  result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
    "$bin" --data-dir "$data" --plan-dir "$plan" --no-progress "$@") \
    || die "migrate $1 failed: $(tail -n 5 "$tmp/migrate.err")"
  read -r secs _ cpu <<<"$result"
}

for n in "${size_list[@]}"; do
  bench_load "$n"
  export_and_plan "$data" "$plan" "$convex"
  setup_migrate --data-dir "$data" --plan-dir "$plan" transform --no-progress
  start_sink "$latency"
  sync

  timed import
  t_import=$secs
  log "rows=$n: full import $t_import s (CPU $cpu s)"
  # The export as it was, for `export --incremental` to start from (not in the ratio).
  cp -a "$data" "$tmp/data-incremental"

  updated=$((n / 100)) deleted=$((n / 1000)) inserted=$((n / 1000))
  changed=$((updated + deleted + inserted))
  bench -c "
    create temporary table picked as
      select id, row_number() over (order by id) as k from $table;
    update $table set full_name = full_name || ' (edited)'
      where id in (select id from picked where k <= $updated);
    delete from $table
      where id in (select id from picked where k > $updated and k <= $updated + $deleted);
    insert into $table (email, full_name, balance, meta, tags)
      select 'new' || g || '@example.com', 'New User ' || g, g / 100.0,
             jsonb_build_object('plan', 'free', 'score', g % 97), array['new']
      from generate_series(1, $inserted) g;"
  bench -c "vacuum analyze $table"
  sync
  log "rows=$n: changed $updated updated + $deleted deleted + $inserted inserted = $changed rows"

  timed export --database-url "$url" --tables "$table"
  t_export=$secs cpu_export=$cpu
  # `export --incremental` of the same changes from the copy, reported beside (not in the
  # ratio): its time, and the bytes the server sent (keys and changed rows) against what a full
  # export reads (the table in binary COPY, as psql sends it).
  result=$(cd "$tmp/cwd" && measure "$tmp/inc.out" "$tmp/inc.err" "$bin" \
    --data-dir "$tmp/data-incremental" --no-progress --format json \
    export --database-url "$url" --tables "$table" --incremental) \
    || die "migrate export --incremental failed: $(tail -n 5 "$tmp/inc.err")"
  read -r t_incremental _ cpu_incremental <<<"$result"
  inc_bytes=$(sed -n 's/.*"read_bytes": \([0-9]*\).*/\1/p' "$tmp/inc.out")
  [[ -n $inc_bytes ]] || die "export --incremental read the table whole: $(cat "$tmp/inc.out")"
  full_bytes=$(bench -c "copy $table to stdout (format binary)" | wc -c)
  rm -rf "$tmp/data-incremental"
  timed transform
  t_transform=$secs cpu_transform=$cpu
  timed --format json sync
  t_sync=$secs cpu_sync=$cpu
  cp "$tmp/migrate.out" "$tmp/sync.json"
  diff_s=$(sed -n 's/.*"diff_seconds": \([0-9.]*\).*/\1/p' "$tmp/sync.json")
  send_s=$(sed -n 's/.*"send_seconds": \([0-9.]*\).*/\1/p' "$tmp/sync.json")
  delete_s=$(sed -n 's/.*"delete_seconds": \([0-9.]*\).*/\1/p' "$tmp/sync.json")

  if [[ ${BENCH_VERIFY:-1} == 1 ]]; then
    s=$(now)
    setup_migrate --data-dir "$data" --plan-dir "$plan" verify --no-progress
    log "rows=$n: verify passed in $(elapsed "$s" "$(now)") s (not timed)"
  fi

  stop_sink_process
  sink_stats=$(grep '^convex-sink: requests=' "$tmp/sink.err" | tail -n 1) \
    || die "no stats line from convex-sink: $(cat "$tmp/sink.err")"
  s_inserted=$(sink_counter inserted) s_replaced=$(sink_counter replaced)
  s_deleted=$(sink_counter deleted)
  if ((s_inserted != n + inserted || s_replaced != updated || s_deleted != deleted)); then
    die "the sink applied inserted=$s_inserted replaced=$s_replaced deleted=$s_deleted;" \
      "expected $((n + inserted)) $updated $deleted: $sink_stats"
  fi
  sent=$((s_inserted - n + s_replaced + s_deleted))

  total=$(calc '%.3f' "$t_export + $t_transform + $t_sync")
  time_ratio=$(calc '%.3f' "$total / $t_import")
  sent_ratio=$(calc '%.3f' "$sent / $changed")
  echo "rows=$n full import: $t_import s ($(calc '%.0f' "$n / $t_import") docs/s)"
  echo "rows=$n cut-over: export $t_export s (CPU $cpu_export s) + transform $t_transform s" \
    "(CPU $cpu_transform s) + sync $t_sync s (CPU $cpu_sync s: diff $diff_s s, send $send_s s," \
    "delete $delete_s s) = $total s"
  echo "rows=$n (export + transform + sync) / import = ${time_ratio} (goal <= $GOAL_TIME)" \
    "$(verdict "$(calc '%d' "($time_ratio <= $GOAL_TIME)")"); sync alone / import =" \
    "$(calc '%.3f' "$t_sync / $t_import")"
  echo "rows=$n export --incremental (not in the ratio): $t_incremental s (CPU $cpu_incremental s)," \
    "read $(calc '%.1f' "$inc_bytes / 1048576") MiB from the server; the full export" \
    "$t_export s, the table $(calc '%.1f' "$full_bytes / 1048576") MiB in binary COPY"
  echo "rows=$n documents sent / rows changed = $sent / $changed = ${sent_ratio}" \
    "(goal <= $GOAL_SENT) $(verdict "$(calc '%d' "($sent_ratio <= $GOAL_SENT)")")"
  rm -rf "$data" "$plan" "$convex"
done
