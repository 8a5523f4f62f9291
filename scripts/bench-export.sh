#!/usr/bin/env bash
# Benchmark `migrate export` against what people do today with psql, on the same table in the
# same run, and report ratios, peak memory and goals. A report, not a test: it exits 0 when a
# goal is missed, and non-zero only when something fails to run or the row counts disagree.
#
#   scripts/bench-export.sh
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults. BENCH_TMPDIR
# needs about 4 x 270 MB free per million rows.
#
# Needs: cargo, psql (same major as the server or newer), awk, and a way to read peak RSS: GNU
# time at /usr/bin/time, else python3 (scripts/lib/bench.sh says why and how). The script
# installs nothing; it stops and says what to install when neither is there. On a fresh Debian
# machine: apt-get install -y time postgresql-client (psql).
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

source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"
raw_file=raw/public.$table.jsonl

bench_setup cargo psql awk sync
bench_start
bench_header "(medians), migrate --jobs 1"

# The seconds of one method in the baseline script's output ("psql-copy-text   1.450 s ...").
pick() {
  awk -v m="$1" '$1 == m { print $2; found = 1 } END { exit !found }' "$tmp/baseline.out" \
    || die "no '$1' line in the baseline output: $(cat "$tmp/baseline.out")"
}

declare -A rss_of
largest="" smallest="" worst_rss_kib=0
for n in "${size_list[@]}"; do
  bench_load "$n"

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
    line_byte_count "$tmp/baseline/row_to_json.jsonl" json_lines json_bytes
    rm -rf "$tmp/baseline"
    sync

    result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
      "$bin" export --database-url "$url" --tables "$table" --jobs 1 \
      --data-dir "$tmp/data" --no-progress) || die "migrate export failed"
    read -r secs kib _ <<<"$result"
    t_mig+=("$secs")
    rss+=("$kib")
    check_lines "$n" "$tmp/data/$raw_file" migrate "psql row_to_json" "$json_lines"
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

worst_rss_mib=$(calc '%.1f' "$worst_rss_kib / 1024")
echo
rss_flatness "peak RSS" "$smallest" "${rss_of[$smallest]}" "$largest" "${rss_of[$largest]}"
at="at rows=$largest"
echo "goal migrate/row_to_json <= $GOAL_VS_ROW_TO_JSON $at: $last_r_json $(verdict "$(calc '%d' "$last_r_json <= $GOAL_VS_ROW_TO_JSON")")"
echo "goal migrate/COPY-binary <= $GOAL_VS_COPY_BINARY $at: $last_r_bin $(verdict "$(calc '%d' "$last_r_bin <= $GOAL_VS_COPY_BINARY")")"
echo "goal peak RSS < $GOAL_RSS_MIB MiB (worst run, all sizes): $worst_rss_mib MiB $(verdict "$(calc '%d' "$worst_rss_mib < $GOAL_RSS_MIB")")"
echo "goal peak RSS flat: $flat"
