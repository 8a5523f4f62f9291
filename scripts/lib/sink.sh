# The fast Convex stand-in (tools/convex-sink) for the benches that import into it: its build,
# its start with a latency per reply, its stop, and a cleanup that stops one an interruption
# left running. Source after scripts/lib/bench.sh (it uses $repo, $tmp, log, die, bench_cleanup)
# and set $convex (the generated convex/ dir, whose migrate.ts the sink runs) before start_sink.

sink_pid=""
# A sink left running by an interruption is stopped before the lib's cleanup runs.
bench_sink_cleanup() {
  local status=$?
  set +e
  if [[ -n $sink_pid ]]; then
    kill -TERM "$sink_pid" 2>/dev/null
    wait "$sink_pid" 2>/dev/null
  fi
  (exit "$status")
  bench_cleanup
}
trap bench_sink_cleanup EXIT

# Builds the sink (release); sets sink_bin. migrate reads CONVEX_URL and CONVEX_DEPLOY_KEY: only
# the script's own count. The key is a throwaway shared with the local sink.
sink_build() {
  log "building: cargo build --profile dist -p convex-sink"
  (cd "$repo" && cargo build --profile dist --quiet -p convex-sink) || die "cargo build -p convex-sink failed"
  sink_bin=$repo/target/dist/convex-sink
  [[ -x $sink_bin ]] || die "no binary at $sink_bin"
  unset CONVEX_URL CONVEX_DEPLOY_KEY
  export CONVEX_DEPLOY_KEY="bench-$RANDOM$RANDOM"
}

# Starts a fresh sink with LATENCY ms per reply (default 0) and any further convex-sink flags
# (e.g. --slots 16); sets sink_pid and exports CONVEX_URL.
start_sink() {
  local latency=${1:-0} i
  shift || true
  # Emptied here, not only by the redirection: that happens in the child, after the first read.
  : >"$tmp/sink.out"
  "$sink_bin" --module "$convex/migrate.ts" --admin-key "$CONVEX_DEPLOY_KEY" --port 0 \
    --latency-ms "$latency" "$@" >"$tmp/sink.out" 2>"$tmp/sink.err" &
  sink_pid=$!
  for ((i = 0; i < 200; i++)); do
    CONVEX_URL=$(sed -n 's/^listening on //p' "$tmp/sink.out")
    [[ -z $CONVEX_URL ]] || break
    kill -0 "$sink_pid" 2>/dev/null || { cat "$tmp/sink.err" >&2; sink_pid=""; die "convex-sink exited"; }
    sleep 0.05
  done
  [[ -n $CONVEX_URL ]] || die "convex-sink printed no 'listening on' line in 10 s"
  export CONVEX_URL
}

# Stops the sink, which must exit cleanly on SIGTERM.
stop_sink_process() {
  kill -TERM "$sink_pid"
  wait "$sink_pid" || { cat "$tmp/sink.err" >&2; sink_pid=""; die "convex-sink failed on SIGTERM"; }
  sink_pid=""
}
