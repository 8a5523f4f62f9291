#!/usr/bin/env bash
# Benchmark `migrate export --from-dump` (restore into migrate's throwaway cluster + export)
# against what people do without it: `pg_restore` into a fresh database on the server, then a
# live `migrate export`. Same custom-format dump, same run. A report, not a test: it exits 0
# when the goal is missed, non-zero only when something fails to run or the rows disagree.
#
#   scripts/bench-dump.sh
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults (BENCH_SIZES
# "100000 1000000"). BENCH_TMPDIR (and TMPDIR, where migrate's cluster goes) need about
# 4 x 300 MB free per million rows.
#
# Needs: cargo, pg_dump, pg_restore, psql, awk, and the PostgreSQL server binaries (initdb,
# pg_ctl) for migrate's cluster; GNU time or python3 for peak RSS (scripts/lib/bench.sh).
#
# Method, per size: load ../shared/bench/users.sql, `pg_dump -Fc` the table once. Then
# BENCH_REPEAT rounds of: the baseline (drop and create a database, `pg_restore --jobs 1` into
# it, `migrate export --jobs 1` from it, timed as one), then `migrate export --from-dump --jobs 1`.
# Outputs are deleted and `sync` runs before each measurement. Both raw files must hold the
# same rows.

set -euo pipefail

# Goal (issue 15): not slower than pg_restore + a live export.
GOAL_RATIO=1.00

source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
raw_file=raw/public.$table.jsonl

bench_setup cargo pg_dump pg_restore psql awk sync
bench_start
bench_header "(medians), restore + export --jobs 1, custom-format dump"

restore_url=$(printf '%s' "$url" | sed -E "s#/[^/?]*(\\?|$)#/${db}_restored\\1#")
drop_restored() {
  psql "$admin_url" -qAtc "drop database if exists \"${db}_restored\" with (force)" >/dev/null
}
# The restored database goes before the lib's cleanup (tmp dir, bench database) runs.
bench_dump_cleanup() {
  local status=$?
  drop_restored || true
  (exit "$status")
  bench_cleanup
}
trap bench_dump_cleanup EXIT

for n in "${size_list[@]}"; do
  bench_load "$n"
  pg_dump -Fc -t "$table" -f "$tmp/users.dump" "$url" || die "pg_dump failed"

  t_base=() t_mig=() rss=()
  for ((r = 1; r <= repeat; r++)); do
    rm -rf "$tmp/data" "$tmp/base"
    drop_restored
    sync
    start=$(now)
    psql "$admin_url" -qAtc "create database \"${db}_restored\"" >/dev/null
    pg_restore --jobs 1 --no-owner -d "$restore_url" "$tmp/users.dump" || die "pg_restore failed"
    (cd "$tmp/cwd" && "$bin" export --database-url "$restore_url" --tables "$table" --jobs 1 \
      --data-dir "$tmp/base" --no-progress >/dev/null) || die "live migrate export failed"
    t_base+=("$(elapsed "$start" "$(now)")")
    line_byte_count "$tmp/base/$raw_file" base_lines base_bytes
    drop_restored
    sync

    result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
      "$bin" export --from-dump "$tmp/users.dump" --tables "$table" --jobs 1 \
      --data-dir "$tmp/data" --no-progress) || die "migrate export --from-dump failed: $(tail -5 "$tmp/migrate.err")"
    read -r secs kib _ <<<"$result"
    t_mig+=("$secs")
    rss+=("$kib")
    check_lines "$n" "$tmp/data/$raw_file" "migrate --from-dump" "pg_restore + export" "$base_lines"
    cmp -s "$tmp/data/$raw_file" "$tmp/base/$raw_file" || die "the raw files differ"
    log "rows=$n run $r/$repeat: pg_restore + export ${t_base[-1]} s, --from-dump $secs s, $kib KiB"
  done
  rm -rf "$tmp/data" "$tmp/base"

  m_base=$(median "${t_base[@]}")
  m_mig=$(median "${t_mig[@]}")
  ratio=$(calc '%.2f' "$m_mig / $m_base")
  echo
  printf 'rows=%s  pg_restore + migrate export %.2f s | migrate export --from-dump %.2f s | ratio %s (goal <= %s) %s | peak RSS %s MiB\n' \
    "$n" "$m_base" "$m_mig" "$ratio" "$GOAL_RATIO" \
    "$(verdict "$(calc '%d' "$ratio <= $GOAL_RATIO")")" "$(calc '%.1f' "$(median "${rss[@]}") / 1024")"
done
