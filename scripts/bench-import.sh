#!/usr/bin/env bash
# Benchmark `migrate import` with no flags against what people do today, a loop of sequential
# batches of 100 (../shared/bench/naive-import.mjs), into the same fast in-memory Convex stand-in
# (tools/convex-sink) in the same run, at 0 ms and 20 ms of added latency per reply, and at 20 ms
# into a sink that runs 16 calls at once and queues the rest (Convex's smallest plan); report
# documents per second, the ratio, the efficiency against the bound of 16 calls in flight
# (16 x 100 / 20 ms), the calls in flight migrate's limiter reached, CPU time and peak memory. A report, not a test: it exits 0 when a goal is missed, and non-zero
# only when something fails to run or the document counts disagree.
#
#   scripts/bench-import.sh
#   BENCH_SIZES=100000 BENCH_REPEAT=1 scripts/bench-import.sh     # a quick run (about 1 min)
#
# Environment: the BENCH_* settings of scripts/lib/bench.sh, with its defaults except:
#   BENCH_SIZES         documents to import; default "1000000" here
#   BENCH_REPEAT        runs of each migrate measurement; the naive loop runs once per latency
#                       whatever BENCH_REPEAT (see below)
#   BENCH_TMPDIR        needs about 2 x 270 MB free per million rows
#
# Needs: cargo, psql (same major as the server or newer), node, awk, and a way to read peak RSS:
# GNU time at /usr/bin/time, else python3 (scripts/lib/bench.sh says why and how). The script
# installs nothing. On a fresh Debian machine: apt-get install -y time postgresql-client nodejs.
#
# Method, per size. Untimed setup: load ../shared/bench/users.sql (as bench-export does),
# `migrate export --tables bench_users`, `migrate init` with no database URL (the plan and
# convex/migrate.ts from the export's manifest: the plan every user starts from), `migrate
# transform`; build migrate and `convex-sink` (cargo build --release [-p convex-sink]). Then for
# each scenario (0 ms; 20 ms; 20 ms with 16 slots): BENCH_REPEAT runs of `migrate import` with no
# flags (batches of 100, calls in flight adaptive up to 64), then, at 0 and 20 ms, one run of
# `node naive-import.mjs` on the same transformed file.
# Every measurement gets a fresh sink (an empty store: every run inserts, none replaces), started
# with `--latency-ms L` before the clock starts and stopped with SIGTERM after it stops; its
# stats line must say inserted=N replaced=0. Before each migrate run data/state.sqlite and
# rejects/import are deleted (so it imports everything) and `sync` runs (so no run pays for
# another's writeback); the transformed file is in the page cache. After the first 0 ms run,
# `migrate verify` (untimed) reads every document back and compares it with transformed/.
# Wall time, peak RSS and CPU time (user+sys) are taken per process (scripts/lib/bench.sh); the
# sink's CPU time comes from /proc/<pid>/stat just before it is stopped.
#
# What the figures mean, and caveats:
# - docs/s = documents / wall time of the whole process: start-up, the migrate:info check, the
#   state file, checkpoints and the final summary are included, so it is end-to-end, not a
#   steady-state rate.
# - bound = 16 x batch / latency (16 x 100 / 20 ms = 80,000 docs/s): what 16 mutations always in
#   flight would give if the sink answered in exactly the latency: the old fixed default, and all
#   that Convex's smallest plan runs at once. It ignores the sink's own service time, the transfer
#   and the timer's granularity. Against the plain sink migrate's limiter may go past 16 calls
#   (the sink never slows down), so it can pass the bound; the slots scenario is the one where
#   the bound is real: more than 16 calls only wait in the sink's queue. There each call holds
#   its slot a little longer than 20 ms (the timer's tick, the work), so the goal is judged on the
#   sink's own count instead: its 16 slots busy >= 95% of migrate's wall time (start-up and the
#   last calls included). The plain 20 ms scenario is judged on >= 95% of the nominal bound. At 0 ms there is no bound: the goal is 100,000 docs/s, which means the client is
#   not the bottleneck (the sink alone does 350,000+ inserts/s on a core).
# - The sink's delay is measured from the request's arrival (the work happens inside it) and
#   aims half a millisecond early, because tokio's timer fires on the first millisecond tick after
#   a deadline; on a VM, wake-ups can still add to it. So a second line, for information only,
#   gives the delay the naive loop actually saw (its time per call at L ms minus at 0 ms: both pay
#   the same client and service time) and migrate's efficiency against the bound at that delay.
#   The goal stays judged against the nominal bound.
# - The sink is not Convex: memory only, no schema validation, plain HTTP/1.1 on loopback (no
#   TLS), a fixed delay per reply. It measures the client: how well it keeps its mutations in
#   flight and what each document costs it. Absolute rates against a real deployment will be
#   lower; the ratio and the efficiency are what carry over.
# - migrate, the sink and node share this machine's cores (the sink is single-threaded); at 0 ms
#   they compete, which is why the sink's CPU time is printed beside migrate's.
# - The naive loop awaits each batch before sending the next: at 20 ms it takes at least
#   documents / 100 x 20 ms (200 s per million) and usually more. That is why it runs once per
#   latency; progress lines go to stderr between measurements.

set -euo pipefail

# Goals (the issue): at 20 ms, docs/s >= GOAL_EFFICIENCY x bound (with and without slots); at
# 0 ms, docs/s >= GOAL_DOCS_AT_0. Judged at the largest size.
GOAL_EFFICIENCY=0.95
GOAL_DOCS_AT_0=100000
BOUND_CALLS=16
BATCH=100
# name:latency:sink flags. The naive loop runs in the scenarios without slots.
SCENARIOS=("0ms:0:" "20ms:20:" "20ms-16-slots:20:--slots 16")
# BENCH_SCENARIOS="20ms-16-slots" runs only the scenarios named (a quick look at one).
if [[ -n ${BENCH_SCENARIOS:-} ]]; then
  chosen=()
  for scenario in "${SCENARIOS[@]}"; do
    [[ " $BENCH_SCENARIOS " == *" ${scenario%%:*} "* ]] && chosen+=("$scenario")
  done
  ((${#chosen[@]})) || { echo "BENCH_SCENARIOS names none of: ${SCENARIOS[*]%%:*}" >&2; exit 2; }
  SCENARIOS=("${chosen[@]}")
fi

BENCH_SIZES=${BENCH_SIZES:-1000000}
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench.sh"

bench_setup cargo psql node awk sync
bench_node naive-import.mjs
naive=$node_script

source "$(dirname "${BASH_SOURCE[0]}")/lib/sink.sh"

bench_start
sink_build
bench_header "(medians; naive once per latency), node $node_version, migrate import with no flags," \
  "batches of $BATCH, convex-sink"

data=$tmp/data plan=$tmp/plan convex=$tmp/convex
clk_tck=$(getconf CLK_TCK)

# 1234567 -> 1,234,567
commas() { awk -v n="$1" 'BEGIN { s = sprintf("%d", n); o = ""
  while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
  print s o }'; }

# Stops the sink; sets sink_cpu (seconds, user+sys), sink_inserted, sink_peak (most requests held
# at once) and sink_no_slot (429s for want of a slot), and dies unless it inserted EXPECTED
# documents and replaced none.
stop_sink() {
  local expected=$1 ticks stats replaced
  ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$sink_pid/stat")
  sink_cpu=$(calc '%.2f' "$ticks / $clk_tck")
  stop_sink_process
  stats=$(grep '^convex-sink: requests=' "$tmp/sink.err" | tail -n 1) \
    || die "no stats line from convex-sink: $(cat "$tmp/sink.err")"
  sink_inserted=$(sed -n 's/.* inserted=\([0-9]*\).*/\1/p' <<<"$stats")
  replaced=$(sed -n 's/.* replaced=\([0-9]*\).*/\1/p' <<<"$stats")
  sink_peak=$(sed -n 's/.* peak_in_flight=\([0-9]*\).*/\1/p' <<<"$stats")
  sink_no_slot=$(sed -n 's/.* no_slot=\([0-9]*\).*/\1/p' <<<"$stats")
  sink_busy=$(sed -n 's/.* slot_busy_micros=\([0-9]*\).*/\1/p' <<<"$stats")
  if [[ $sink_inserted != "$expected" || $replaced != 0 ]]; then
    die "the sink holds the wrong documents (expected inserted=$expected replaced=0): $stats"
  fi
}

declare -A t_of cpu_of rss_of sinkcpu_of peak_of noslot_of calls_of busy_of
declare -A t_naive_of cpu_naive_of rss_naive_of sinkcpu_naive_of
largest=""
for n in "${size_list[@]}"; do
  bench_load "$n"

  s=$(now)
  export_and_plan "$data" "$plan" "$convex"
  setup_migrate --data-dir "$data" --plan-dir "$plan" transform --no-progress
  # The Convex table init chose, and its file (transformed/manifest.json; one table).
  read -r convex_table doc_file documents < <("$node_bin" -e '
    const m = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (m.tables.length !== 1) throw new Error("expected one table, found " + m.tables.length);
    const t = m.tables[0];
    console.log(t.table, t.file, t.documents);' "$data/transformed/manifest.json") \
    || die "cannot read $data/transformed/manifest.json"
  doc_file=$data/$doc_file
  lines=$(wc -l <"$doc_file")
  ((documents == n && lines == n)) \
    || die "rows=$n: transform made $documents documents ($lines lines in $doc_file)"
  log "rows=$n: exported, planned and transformed in $(elapsed "$s" "$(now)") s (not a result);" \
    "Convex table $convex_table"

  for scenario in "${SCENARIOS[@]}"; do
    IFS=: read -r name latency sink_flags <<<"$scenario"
    read -ra sink_args <<<"$sink_flags"
    times=() cpus=() rsss=() sink_cpus=() peaks=() noslots=() calls=() busies=()
    for ((r = 1; r <= repeat; r++)); do
      rm -rf "$data/state.sqlite" "$data/state.sqlite-wal" "$data/state.sqlite-shm" \
        "$data/rejects/import"
      sync
      start_sink "$latency" "${sink_args[@]}"
      result=$(cd "$tmp/cwd" && measure "$tmp/migrate.out" "$tmp/migrate.err" \
        "$bin" --data-dir "$data" --plan-dir "$plan" --no-progress import) \
        || die "migrate import failed: $(tail -n 5 "$tmp/migrate.err")"
      read -r secs kib cpu <<<"$result"
      if [[ $name == 0ms && $r == 1 ]]; then
        log "rows=$n: migrate verify (untimed)"
        vs=$(now)
        setup_migrate --data-dir "$data" --plan-dir "$plan" --no-progress verify
        log "rows=$n: verified in $(elapsed "$vs" "$(now)") s: $(tail -n 1 "$tmp/setup.out")"
      fi
      stop_sink "$n"
      [[ -z $(find "$data/rejects/import" -type f 2>/dev/null) ]] \
        || die "migrate import wrote rejects: $(ls "$data/rejects/import")"
      in_flight=$(sed -n 's/^calls in flight: up to \([0-9]*\).*/\1/p' "$tmp/migrate.out")
      [[ -n $in_flight ]] || die "no 'calls in flight' line in migrate's summary"
      times+=("$secs") cpus+=("$cpu") rsss+=("$kib") sink_cpus+=("$sink_cpu")
      peaks+=("$sink_peak") noslots+=("$sink_no_slot") calls+=("$in_flight")
      # With slots: the share of migrate's wall time the slots were busy.
      busies+=("$(calc '%.4f' "$sink_busy / ($BOUND_CALLS * $secs * 1000000)")")
      log "rows=$n $name run $r/$repeat: migrate $secs s" \
        "($(commas "$(calc '%d' "$n / $secs")") docs/s), $kib KiB, cpu $cpu s, calls in flight up" \
        "to $in_flight; sink cpu $sink_cpu s, held at most $sink_peak, refused $sink_no_slot for want of a slot"
    done
    key=$n/$name
    t_of[$key]=$(median "${times[@]}")
    cpu_of[$key]=$(median "${cpus[@]}")
    rss_of[$key]=$(median "${rsss[@]}")
    sinkcpu_of[$key]=$(median "${sink_cpus[@]}")
    peak_of[$key]=$(calc '%d' "$(median "${peaks[@]}")")
    noslot_of[$key]=$(calc '%d' "$(median "${noslots[@]}")")
    calls_of[$key]=$(calc '%d' "$(median "${calls[@]}")")
    busy_of[$key]=$(median "${busies[@]}")

    [[ -z $sink_flags ]] || continue
    floor=$(calc '%.0f' "$n / $BATCH * $latency / 1000")
    log "rows=$n $name: naive import (sequential batches of $BATCH$( ((latency == 0)) \
      || echo "; at least $floor s of latency alone"))"
    sync
    start_sink "$latency"
    result=$(cd "$tmp/cwd" && measure "$tmp/naive.out" "$tmp/naive.err" "$node_bin" "$naive" \
      "$CONVEX_URL" "$CONVEX_DEPLOY_KEY" migrate:upsert "$convex_table" "$doc_file") \
      || die "naive-import.mjs failed"
    read -r secs kib cpu <<<"$result"
    stop_sink "$n"
    grep -q "^imported $n documents" "$tmp/naive.err" \
      || die "naive-import.mjs: $(cat "$tmp/naive.err")"
    t_naive_of[$key]=$secs cpu_naive_of[$key]=$cpu rss_naive_of[$key]=$kib
    sinkcpu_naive_of[$key]=$sink_cpu
    log "rows=$n $name: naive $secs s ($(commas "$(calc '%d' "$n / $secs")") docs/s)," \
      "$kib KiB, cpu $cpu s; sink cpu $sink_cpu s"
  done
  rm -rf "$data" "$plan" "$convex"

  echo
  echo "rows=$n (documents checked in the sink after every run; migrate verify after the first at 0 ms)"
  for scenario in "${SCENARIOS[@]}"; do
    IFS=: read -r name latency sink_flags <<<"$scenario"
    key=$n/$name
    t=${t_of[$key]}
    rate=$(calc '%.0f' "$n / $t")
    if ((latency > 0)); then
      bound=$(calc '%.0f' "$BOUND_CALLS * $BATCH * 1000 / $latency")
      bound_text="bound $(commas "$bound") docs/s, efficiency $(calc '%.1f' "100 * $rate / $bound")%"
    else
      bound_text="bound: none at 0 ms"
    fi
    if [[ -n ${t_naive_of[$key]:-} ]]; then
      tn=${t_naive_of[$key]}
      naive_text="naive $(printf '%.2f' "$tn") s, $(commas "$(calc '%.0f' "$n / $tn")") docs/s | migrate/naive $(calc '%.1f' "$tn / $t")x"
    else
      naive_text="naive: not run (one call at a time is the same with slots)"
    fi
    printf '%-14s migrate %.2f s, %s docs/s | %s | %s\n' \
      "$name:" "$t" "$(commas "$rate")" "$naive_text" "$bound_text"
    if [[ -n $sink_flags ]]; then
      printf '               the sink'"'"'s %s slots were busy %s%% of migrate'"'"'s wall time (the sink'"'"'s own count of time calls held a slot)\n' \
        "$BOUND_CALLS" "$(calc '%.1f' "100 * ${busy_of[$key]}")"
    fi
    printf '               migrate: calls in flight up to %s; peak RSS %s MiB, CPU %.2f s (%.2f cores) | sink: held at most %s calls, refused %s for want of a slot, CPU %.2f s (%.2f cores)\n' \
      "${calls_of[$key]}" "$(calc '%.1f' "${rss_of[$key]} / 1024")" "${cpu_of[$key]}" \
      "$(calc '%f' "${cpu_of[$key]} / $t")" "${peak_of[$key]}" "${noslot_of[$key]}" \
      "${sinkcpu_of[$key]}" "$(calc '%f' "${sinkcpu_of[$key]} / $t")"
    if [[ -n ${t_naive_of[$key]:-} ]]; then
      printf '               naive: peak RSS %s MiB, CPU %.2f s, sink CPU %.2f s\n' \
        "$(calc '%.1f' "${rss_naive_of[$key]} / 1024")" "${cpu_naive_of[$key]}" \
        "${sinkcpu_naive_of[$key]}"
    fi
    # The naive loop at this latency (the slots scenario shares the plain one's: one call at a
    # time never meets the slot limit).
    naive_key=$n/${latency}ms
    if ((latency > 0)) && [[ -n ${t_naive_of[$naive_key]:-} && -n ${t_naive_of[$n/0ms]:-} ]]; then
      delay=$(calc '%.2f' "(${t_naive_of[$naive_key]} - ${t_naive_of[$n/0ms]}) * 1000 / ($n / $BATCH)")
      if [[ $(calc '%d' "($delay > 0)") == 1 ]]; then
        real_bound=$(calc '%.0f' "$BOUND_CALLS * $BATCH * 1000 / $delay")
        printf '               delay the naive loop saw: %s ms per call (its time per call at %s ms minus at 0 ms); %s x %s at that delay: %s docs/s, migrate at %s%% of it (information, not the goal)\n' \
          "$delay" "$latency" "$BOUND_CALLS" "$BATCH" "$(commas "$real_bound")" "$(calc '%.1f' "100 * $rate / $real_bound")"
      fi
    fi
  done
  largest=$n
done

echo
n=$largest
if [[ -n ${t_of[$n/0ms]:-} ]]; then
  rate0=$(calc '%.0f' "$n / ${t_of[$n/0ms]}")
  echo "goal at 0 ms: >= $(commas "$GOAL_DOCS_AT_0") docs/s at rows=$n: $(commas "$rate0") docs/s" \
    "$(verdict "$(calc '%d' "($rate0 >= $GOAL_DOCS_AT_0)")")"
fi
for scenario in "${SCENARIOS[@]}"; do
  IFS=: read -r name latency sink_flags <<<"$scenario"
  ((latency > 0)) || continue
  if [[ -n $sink_flags ]]; then
    # Slots: the bound is the slots kept busy, whatever each call really took.
    busy=${busy_of[$n/$name]}
    echo "goal $name: the $BOUND_CALLS slots busy >= $(calc '%.0f' "100 * $GOAL_EFFICIENCY")% of" \
      "migrate's wall time at rows=$n: $(calc '%.1f' "100 * $busy")%" \
      "$(verdict "$(calc '%d' "($busy >= $GOAL_EFFICIENCY)")")"
    continue
  fi
  bound=$(calc '%.0f' "$BOUND_CALLS * $BATCH * 1000 / $latency")
  efficiency=$(calc '%.3f' "$n / ${t_of[$n/$name]} / $bound")
  echo "goal $name: >= $(calc '%.0f' "100 * $GOAL_EFFICIENCY")% of $BOUND_CALLS x $BATCH /" \
    "$latency ms = $(commas "$bound") docs/s at rows=$n: $(calc '%.1f' "100 * $efficiency")%" \
    "$(verdict "$(calc '%d' "($efficiency >= $GOAL_EFFICIENCY)")")"
done
