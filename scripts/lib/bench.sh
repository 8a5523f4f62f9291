# Sourced by scripts/bench-*.sh: what every benchmark does the same way. Each script loads
# ../shared/bench/users.sql into a database of its own, runs `migrate` and a baseline on the
# same data in the same run, and reports medians, ratios, peak memory and goals.
#
# Sourcing defines functions and these settings, read from the environment (each script's header
# says only what differs for it: a default, the disk space it needs):
#   BENCH_DATABASE_URL  admin URL (default postgres://postgres@127.0.0.1:5432/postgres); the
#                       script (re)creates the database `migrate_bench` on that server and works
#                       only in it (so two benchmarks cannot run at once on one server)
#   BENCH_SIZES         row counts to load (default "100000 1000000"); run smallest first
#   BENCH_REPEAT        runs of each measurement; the median is kept (default 3)
#   BENCH_KEEP=1        keep the `migrate_bench` database afterwards (default: dropped)
#   BENCH_RSS_TOOL      gnu-time or python3 (default: gnu-time when /usr/bin/time exists)
#   BENCH_TMPDIR        where the outputs are written (default $TMPDIR or /tmp)
#   BENCH_SHARED        the shared baselines' directory (default ../shared/bench beside the
#                       repository; a worktree elsewhere names it)
#   BENCH_DB            the database's name (default migrate_bench): another name lets two
#                       benchmarks share a server
#
# A script then calls, in this order:
#   bench_setup TOOL...  checks the settings and that each TOOL is on PATH, picks the peak-RSS
#                        tool, makes the temp dir $tmp (removed on exit, with the database)
#   bench_node SCRIPT    (scripts that run node) sets $node_bin, $node_version and $node_script
#                        (../shared/bench/SCRIPT, which must exist)
#   bench_start          builds the release binary ($bin), clears migrate's environment,
#                        (re)creates the database ($url; $server is its version), sets $commit
#   bench_header TEXT... prints the report's first line: name, commit, UTC date, server, cores,
#                        BENCH_REPEAT, then TEXT
#   bench_load N         loads N rows into bench_users, vacuumed and read once (heap warm)
#   measure OUT ERR CMD...  runs CMD, prints "<wall s> <peak RSS KiB> <CPU user+sys s>"
# and the helpers log, die, now, elapsed, median, calc, verdict, human_rows, rss_flatness,
# setup_migrate, export_and_plan, line_byte_count, check_lines.
#
# Peak RSS comes from GNU time at /usr/bin/time (Debian/Ubuntu: `apt-get install time`; it is not
# in minimal or container images), else from python3 (in most Debian installs, though not in
# minimal images) polling the program's VmHWM in /proc (see hwm_poller below for why not
# getrusage). Nothing is installed: the script stops and says what to install when neither is
# there. Wall time is taken with `date +%s.%N` around the process (GNU time's own %e has only
# 10 ms resolution); CPU time (user+sys, 10 ms resolution) from the kernel's accounting of the
# process and the threads and children it waited for.

# The script's name for messages and the report: bench-export, bench-transform, bench-import.
bench_name=$(basename "$0" .sh)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=$(cd "${BENCH_SHARED:-$repo/../shared/bench}" && pwd)
admin_url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
sizes=${BENCH_SIZES:-100000 1000000}
repeat=${BENCH_REPEAT:-3}
keep=${BENCH_KEEP:-0}
db=${BENCH_DB:-migrate_bench}
table=bench_users

log() { printf '%s\n' "$*" >&2; }
die() { log "$bench_name: $*"; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.3f", e - s }'; }

# Median of the arguments (mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
verdict() { awk -v c="$1" 'BEGIN { print (c ? "PASS" : "MISS") }'; }

human_rows() { awk -v n="$1" 'BEGIN {
  if (n >= 1e6 && n % 1e6 == 0) printf "%dM", n / 1e6
  else if (n >= 1e3 && n % 1e3 == 0) printf "%dk", n / 1e3
  else printf "%d", n }'; }

# Checks the settings, then that every argument is a command on PATH; sets size_list (sorted,
# unique), rss_tool, url, tmp, and the traps that remove $tmp and the database on exit.
bench_setup() {
  [[ $repeat =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer, not '$repeat'"
  read -r -a size_list <<<"$sizes"
  ((${#size_list[@]} > 0)) || die "BENCH_SIZES is empty"
  local n tool
  for n in "${size_list[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_SIZES holds '$n', not a positive row count"
  done
  mapfile -t size_list < <(printf '%s\n' "${size_list[@]}" | sort -n -u)
  for tool in "$@"; do
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

  url=$(bench_url "$admin_url")

  tmp=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/migrate-bench.XXXXXX")
  db_created=0
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# The same server and credentials as the admin URL, database `migrate_bench`.
bench_url() {
  local url=$1 query=
  if [[ $url == *\?* ]]; then query="?${url#*\?}"; url=${url%%\?*}; fi
  [[ $url == *://* ]] || die "BENCH_DATABASE_URL must be a postgres:// URL"
  local scheme=${url%%://*} rest=${url#*://}
  printf '%s://%s/%s%s\n' "$scheme" "${rest%%/*}" "$db" "$query"
}

# Quiet psql: no NOTICEs ("table does not exist, skipping") on the report's stderr.
quiet_options="${PGOPTIONS:-} -c client_min_messages=warning"
admin() { PGOPTIONS=$quiet_options psql "$admin_url" -X -q -v ON_ERROR_STOP=1 "$@"; }
bench() { PGOPTIONS=$quiet_options psql "$url" -X -q -v ON_ERROR_STOP=1 "$@"; }

bench_cleanup() {
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

# The python3 fallback for peak RSS. Not getrusage(RUSAGE_CHILDREN): Linux folds the memory the
# child had before exec (a copy of the python interpreter, 5-14 MiB) into its max RSS. Instead
# poll VmHWM (the high-water mark of the exec'd program only) every 5 ms while the child runs;
# it agrees with GNU time within a few hundred KiB, but can miss a spike in the last 5 ms. The
# wall time is taken around the child only, so python's own start-up (30-50 ms) is not counted.
# CPU time does come from getrusage(RUSAGE_CHILDREN): the child's few instructions before exec
# are nothing next to the program's. Writes "<wall seconds> <peak KiB> <cpu seconds>".
hwm_poller='
import os, resource, shutil, subprocess, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
target = os.path.realpath(shutil.which(argv[0]) or argv[0])
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
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    print(f"{ended[0] - started:.3f} {peak} {usage.ru_utime + usage.ru_stime:.2f}", file=f)
sys.exit(child.returncode)
'

# Runs a command with stdout/stderr to files; prints "<wall seconds> <max RSS KiB> <CPU seconds,
# user+sys>".
measure() {
  local out=$1 err=$2; shift 2
  local s e rc=0 wall kib cpu
  s=$(now)
  case $rss_tool in
    gnu-time) /usr/bin/time -f '%M %U %S' -o "$tmp/rss" "$@" >"$out" 2>"$err" || rc=$? ;;
    python3) python3 -c "$hwm_poller" "$tmp/rss" "$@" >"$out" 2>"$err" || rc=$? ;;
  esac
  e=$(now)
  if ((rc != 0)); then
    log "failed (exit $rc): $*"
    cat "$err" >&2
    return "$rc"
  fi
  case $rss_tool in
    gnu-time)
      wall=$(elapsed "$s" "$e")
      read -r kib cpu < <(tail -n 1 "$tmp/rss" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }')
      ;;
    python3) read -r wall kib cpu <"$tmp/rss" ;;
  esac
  if [[ ! $kib =~ ^[0-9]+$ ]] || ((kib == 0)); then
    # python3: /proc/PID/exe never was $1 (a wrapper script that runs the real program?).
    log "no peak RSS measured for: $* (BENCH_RSS_TOOL=$rss_tool)"
    return 1
  fi
  printf '%s %s %s\n' "$wall" "$kib" "$cpu"
}

# Builds the binary, clears migrate's environment, (re)creates the database.
bench_start() {
  # The commit measured, read before the build; -dirty when tracked files differ from it
  # (untracked ones do not count, as with `git describe --dirty`).
  commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null) || commit='?'
  if [[ $commit != '?' ]] && ! git -C "$repo" diff --quiet HEAD -- 2>/dev/null; then
    commit+=-dirty
  fi
  log "building: cargo build --profile dist"
  (cd "$repo" && cargo build --profile dist --quiet) || die "cargo build --profile dist failed"
  bin=$repo/target/dist/migrate
  [[ -x $bin ]] || die "no binary at $bin"

  # migrate reads DATABASE_URL, MIGRATE_* and a .env in its working directory: run it from
  # $tmp/cwd with none of those set, so only the flags the script passes count.
  local name
  while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(MIGRATE_|DATABASE_URL$|RUST_LOG$)' || true)
  mkdir -p "$tmp/cwd"

  log "database: $db (recreated on the BENCH_DATABASE_URL server)"
  admin -c "drop database if exists $db" >/dev/null
  admin -c "create database $db" >/dev/null
  db_created=1

  server=$(bench -At -c "show server_version")
  log "rss via $rss_tool, outputs in $tmp"
}

# Prints the report's first line (stdout): "NAME: commit C, DATE, PostgreSQL V, N cores,
# BENCH_REPEAT=R TEXT...", the date in UTC.
bench_header() {
  echo "$bench_name: commit $commit, $(date -u +%Y-%m-%dT%H:%M:%SZ), PostgreSQL $server," \
    "$(nproc) cores, BENCH_REPEAT=$repeat $*"
}

# Node and one of the shared scripts it runs; sets node_bin (absolute: the python3 RSS fallback
# recognizes the program by its executable's path), node_version and node_script.
bench_node() {
  node_bin=$(command -v node) || die "needs node on PATH"
  node_version=$("$node_bin" --version) || die "node --version failed"
  node_script=$shared/$1
  [[ -r $node_script ]] || die "no $node_script"
}

# Runs migrate from $tmp/cwd for an untimed step; its output (in $tmp/setup.out and .err) only
# shows when it fails.
setup_migrate() {
  (cd "$tmp/cwd" && "$bin" "$@" >"$tmp/setup.out" 2>"$tmp/setup.err") || {
    cat "$tmp/setup.out" "$tmp/setup.err" >&2
    die "migrate $*: failed"
  }
}

# The untimed setup the transform and import benchmarks share: empties DATA, PLAN and CONVEX,
# then `migrate export --tables bench_users [EXPORT_ARG...]` to DATA and `migrate init` with no
# database URL, which writes the plan and the module from the export's manifest.
#   export_and_plan DATA PLAN CONVEX [EXPORT_ARG...]
export_and_plan() {
  local data=$1 plan=$2 convex=$3
  shift 3
  rm -rf "$data" "$plan" "$convex"
  setup_migrate export --database-url "$url" --tables "$table" "$@" --data-dir "$data" \
    --no-progress
  setup_migrate init --data-dir "$data" --plan-dir "$plan" --convex-dir "$convex" --no-progress
}

# Sets the variables named LINES_VAR and BYTES_VAR to FILE's line and byte counts.
#   line_byte_count FILE LINES_VAR BYTES_VAR
line_byte_count() {
  local -n lines_of_file=$2 bytes_of_file=$3
  lines_of_file=$(wc -l <"$1") && bytes_of_file=$(wc -c <"$1") || die "cannot count $1"
}

# Counts migrate's output FILE into mig_lines and mig_bytes, and dies unless it and the
# baseline's output (BASELINE_LINES) both hold N lines.
#   check_lines N FILE MIGRATE_LABEL BASELINE_LABEL BASELINE_LINES
check_lines() {
  local n=$1 file=$2 label=$3 baseline_label=$4 baseline_lines=$5
  line_byte_count "$file" mig_lines mig_bytes
  if ((mig_lines != n || baseline_lines != n)); then
    die "line counts disagree at rows=$n: $label $mig_lines, $baseline_label $baseline_lines"
  fi
}

# Loads N rows (timed, for information only), VACUUM ANALYZE, then reads the whole heap once
# with a forced sequential scan (a plain count(*) on a freshly vacuumed table is answered from
# the smallest index and would leave the heap cold).
bench_load() {
  local n=$1 s count
  log "rows=$n: loading users.sql"
  s=$(now)
  bench -v rows="$n" -f "$shared/users.sql" >/dev/null
  bench -c "vacuum analyze $table"
  bench -At -c "set enable_indexonlyscan = off; set enable_indexscan = off;
                set enable_bitmapscan = off; select count(*) from $table" >/dev/null
  log "rows=$n: loaded and warmed in $(elapsed "$s" "$(now)") s (not a result)"
  count=$(bench -At -c "select count(*) from $table")
  ((count == n)) || die "bench_users holds $count rows, expected $n"
}

# Prints the peak RSS flatness line and sets `flat` to PASS, MISS or SKIP: "flat" means the
# largest size's peak RSS is at most FLAT_FACTOR (set by the script) times the smallest size's.
#   rss_flatness LABEL SMALLEST_ROWS SMALLEST_MIB LARGEST_ROWS LARGEST_MIB
rss_flatness() {
  local label=$1 small=$2 small_mib=$3 large=$4 large_mib=$5 growth
  if [[ $small != "$large" ]]; then
    growth=$(calc '%.2f' "$large_mib / $small_mib")
    printf '%s %s %s MiB -> %s %s MiB (x%s, goal: flat, <= x%s)\n' \
      "$label" "$(human_rows "$small")" "$small_mib" "$(human_rows "$large")" "$large_mib" \
      "$growth" "$FLAT_FACTOR"
    flat=$(verdict "$(calc '%d' "$growth <= $FLAT_FACTOR")")
  else
    echo "$label flatness: n/a (one size)"
    flat="SKIP (needs two sizes)"
  fi
}
