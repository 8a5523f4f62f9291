#!/usr/bin/env bash
# Benchmark `migrate transform` against what people do today, a hand-written Node script
# (../shared/bench/baseline-transform.mjs), on the same table in the same run, and report times,
# the ratio, CPU time and peak memory. A report, not a test: it exits 0 when a goal is missed,
# and non-zero only when something fails to run or the row counts disagree.
#
#   scripts/bench-transform.sh
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults. BENCH_TMPDIR
# needs about 3 x 270 MB free per million rows.
#
# Needs: cargo, psql (same major as the server or newer), node, awk, and a way to read peak RSS:
# GNU time at /usr/bin/time, else python3 (scripts/lib/bench.sh says why and how). The script
# installs nothing. On a fresh Debian machine: apt-get install -y time postgresql-client nodejs.
#
# Method, per size: load ../shared/bench/users.sql (as bench-export does), then, untimed:
# `migrate export --tables bench_users --jobs 1` (migrate's input), `migrate init` with no
# database URL, so that it writes the plan and the Convex files from the export's manifest: the plan
# every user starts from, not one tuned for speed, and psql's
# `\copy (select row_to_json(t) from bench_users t)` to rows.jsonl (Node's input: what the seeds'
# export scripts produce).
# Then BENCH_REPEAT rounds of: `node baseline-transform.mjs rows.jsonl out.jsonl`, then
# `migrate transform`. Before every measurement the previous outputs are deleted and `sync` runs,
# so no run pays for another's writeback; both inputs were just written and are in the page
# cache. Wall time, peak RSS and CPU time (user+sys) are taken per process (scripts/lib/bench.sh).
# migrate transform runs on every core (rayon) while Node's script runs on one, so the CPU time
# says how much of the ratio is parallelism.
# Not the same work, as the baseline is not a migration tool: migrate also checks the export's
# checksums and Convex's document rules, writes the tagged Convex encoding and a manifest, and
# fsyncs its files before renaming them into place, which Node does not; migrate's time includes
# all of that. And the plan `init` writes keeps `balance` as a number, where the baseline makes
# cents.

set -euo pipefail

# Goals (see ../shared/bench/README.md): Node's time / migrate's time, judged at the largest
# size; migrate's peak RSS flat, meaning the largest size's is at most FLAT_FACTOR times the
# smallest size's (bench_users has no consolidation, whose lookup tables grow with the rows).
GOAL_SPEEDUP=10
FLAT_FACTOR=1.25

source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"

bench_setup cargo psql node awk sync
bench_node baseline-transform.mjs
baseline=$node_script
[[ $tmp != *"'"* ]] || die "the temp dir's path $tmp holds a quote, which psql's \\copy cannot take"
bench_start
bench_header "(medians), node $node_version, the plan from migrate init"

data=$tmp/data plan=$tmp/plan rows_file=$tmp/rows.jsonl node_file=$tmp/node.jsonl

# The one document file transform wrote (transformed/<convexTable>.jsonl).
transformed_file() {
  local files=("$data"/transformed/*.jsonl)
  ((${#files[@]} == 1)) && [[ -f ${files[0]} ]] \
    || die "expected one transformed/*.jsonl, found: $(ls "$data/transformed" 2>&1 | tr '\n' ' ')"
  printf '%s\n' "${files[0]}"
}

declare -A rss_of
largest="" smallest=""
for n in "${size_list[@]}"; do
  bench_load "$n"

  s=$(now)
  rm -f "$rows_file"
  export_and_plan "$data" "$plan" "$tmp/convex" --jobs 1
  bench -c "\\copy (select row_to_json(t) from $table t) to '$rows_file'"
  raw_lines=$(wc -l <"$data/raw/public.$table.jsonl")
  json_lines=$(wc -l <"$rows_file")
  ((raw_lines == n && json_lines == n)) \
    || die "inputs disagree at rows=$n: migrate export $raw_lines lines, row_to_json $json_lines"
  log "rows=$n: exported, copied with row_to_json and planned in $(elapsed "$s" "$(now)") s" \
    "(not a result)"

  t_node=() t_mig=() rss_node=() rss_mig=() cpu_node=() cpu_mig=()
  for ((r = 1; r <= repeat; r++)); do
    rm -f "$node_file"
    rm -rf "$data/transformed" "$data/rejects"
    sync
    result=$(cd "$tmp/cwd" && measure "$tmp/node.out" "$tmp/node.err" \
      "$node_bin" "$baseline" "$rows_file" "$node_file") || die "the node baseline failed"
    read -r secs kib cpu <<<"$result"
    t_node+=("$secs") rss_node+=("$kib") cpu_node+=("$cpu")
    line_byte_count "$node_file" node_lines node_bytes
    rm -f "$node_file"
    sync

    result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
      "$bin" --data-dir "$data" --plan-dir "$plan" transform --no-progress) \
      || die "migrate transform failed"
    read -r secs kib cpu <<<"$result"
    t_mig+=("$secs") rss_mig+=("$kib") cpu_mig+=("$cpu")
    out_file=$(transformed_file)
    check_lines "$n" "$out_file" "migrate transform" node "$node_lines"
    log "rows=$n run $r/$repeat: node ${t_node[-1]} s, ${rss_node[-1]} KiB, cpu ${cpu_node[-1]} s;" \
      "migrate $secs s, $kib KiB, cpu $cpu s"
  done
  rm -rf "$data" "$plan" "$tmp/convex" "$rows_file"

  m_node=$(median "${t_node[@]}")
  m_mig=$(median "${t_mig[@]}")
  m_cpu_node=$(median "${cpu_node[@]}")
  m_cpu_mig=$(median "${cpu_mig[@]}")
  mib_node=$(calc '%.1f' "$(median "${rss_node[@]}") / 1024")
  mib_mig=$(calc '%.1f' "$(median "${rss_mig[@]}") / 1024")
  speedup=$(calc '%.1f' "$m_node / $m_mig")

  echo
  printf 'rows=%s  node baseline %.2f s | migrate transform %.2f s\n' "$n" "$m_node" "$m_mig"
  printf 'ratio: node/migrate %sx (goal >= %sx)   migrate peak RSS %s MiB, node %s MiB\n' \
    "$speedup" "$GOAL_SPEEDUP" "$mib_mig" "$mib_node"
  printf 'CPU user+sys: migrate %.2f s (%.1f cores busy), node %.2f s (%.1f); node/migrate %sx per CPU second\n' \
    "$m_cpu_mig" "$(calc '%f' "$m_cpu_mig / $m_mig")" "$m_cpu_node" \
    "$(calc '%f' "$m_cpu_node / $m_node")" "$(calc '%.1f' "$m_cpu_node / ($m_cpu_mig > 0 ? $m_cpu_mig : 0.01)")"
  printf 'output %s MB (node %s MB), %s rows checked\n' \
    "$(calc '%.1f' "$mig_bytes / 1e6")" "$(calc '%.1f' "$node_bytes / 1e6")" "$n"

  rss_of[$n]=$mib_mig
  [[ -n $smallest ]] || smallest=$n
  largest=$n
  last_speedup=$speedup
done

echo
rss_flatness "migrate peak RSS" "$smallest" "${rss_of[$smallest]}" "$largest" "${rss_of[$largest]}"
echo "goal node/migrate >= ${GOAL_SPEEDUP}x at rows=$largest: ${last_speedup}x" \
  "$(verdict "$(calc '%d' "$last_speedup >= $GOAL_SPEEDUP")")"
echo "goal migrate peak RSS flat: $flat"
