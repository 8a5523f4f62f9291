//! `convex-sink`: serves a generated `convex/migrate.ts` in memory over Convex's HTTP API until
//! SIGTERM or Ctrl-C, then prints its counters to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use convex_sink::{Faults, Plan, Sink, SinkConfig, Slots, Stats};

/// mimalloc, as migrate: a stored document is a few small allocations, and glibc's allocator
/// (arena growth, page faults) was a fifth of the sink's time in the targets benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fast in-memory stand-in for a Convex deployment running migrate's generated functions.
///
/// Prints `listening on http://127.0.0.1:<port>` on stdout once it answers.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The generated module whose `const PLAN = ...;` line gives the tables.
    #[arg(long)]
    module: PathBuf,
    /// The deploy key clients must send (`Authorization: Convex <KEY>`).
    #[arg(long)]
    admin_key: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Milliseconds every reply waits before it is sent.
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    /// Share of requests answered 503 Overloaded / 429 TooManyConcurrentRequests.
    #[arg(long, default_value_t = 0.0)]
    unavailable: f64,
    /// Share of requests whose connection is closed before anything is applied.
    #[arg(long, default_value_t = 0.0)]
    reset_before: f64,
    /// Share of requests applied, then their connection closed without a reply.
    #[arg(long, default_value_t = 0.0)]
    reset_after: f64,
    /// Share of requests applied, then their reply held for --stall-ms.
    #[arg(long, default_value_t = 0.0)]
    stall: f64,
    /// How long a stalled reply is held, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    stall_ms: u64,
    /// Seed of the fault draws and the ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Calls run at once, as on a real deployment (Convex's smallest plan: 16); the others wait
    /// for a slot. 0: no limit.
    #[arg(long, default_value_t = 0)]
    slots: usize,
    /// Milliseconds a call waits for a slot before it is answered 429
    /// TooManyConcurrentRequests (Convex: about 5000); 0: as long as it takes.
    #[arg(long, default_value_t = 5_000)]
    slot_wait_ms: u64,
    /// Seconds sent as `Retry-After` with every 429 and 503.
    #[arg(long)]
    retry_after: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("convex-sink: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let plan = Plan::from_module_file(&args.module).map_err(|e| e.to_string())?;
    if !(args.latency_ms >= 0.0 && args.latency_ms.is_finite()) {
        return Err(format!("--latency-ms {} is not a duration", args.latency_ms));
    }
    let config = SinkConfig {
        admin_key: args.admin_key,
        port: args.port,
        latency: Duration::from_secs_f64(args.latency_ms / 1000.0),
        faults: Faults {
            unavailable: args.unavailable,
            reset_before: args.reset_before,
            reset_after: args.reset_after,
            stall: args.stall,
            stall_for: Duration::from_millis(args.stall_ms),
        },
        seed: args.seed,
        slots: (args.slots > 0).then(|| Slots {
            calls: args.slots,
            queue_for: (args.slot_wait_ms > 0).then(|| Duration::from_millis(args.slot_wait_ms)),
        }),
        retry_after: args.retry_after.map(Duration::from_secs),
        ..SinkConfig::new(plan)
    };
    let sink = Sink::start(config).map_err(|e| e.to_string())?;
    println!("listening on {}", sink.url());
    wait_for_signal().map_err(|e| format!("cannot wait for signals: {e}"))?;
    eprintln!("{}", describe(&sink.stats()));
    sink.shutdown();
    Ok(())
}

fn wait_for_signal() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result?,
        }
        Ok(())
    })
}

fn describe(stats: &Stats) -> String {
    let Stats {
        requests,
        succeeded,
        function_errors,
        wire_errors,
        unavailable,
        failed_all,
        no_slot,
        peak_in_flight,
        slot_busy_micros,
        reset_before,
        reset_after,
        stalled,
        inserted,
        replaced,
        patched,
        deleted,
        ledger_calls,
    } = stats;
    format!(
        "convex-sink: requests={requests} succeeded={succeeded} function_errors={function_errors} \
         wire_errors={wire_errors} unavailable={unavailable} failed_all={failed_all} \
         no_slot={no_slot} peak_in_flight={peak_in_flight} slot_busy_micros={slot_busy_micros} \
         reset_before={reset_before} reset_after={reset_after} stalled={stalled} \
         inserted={inserted} replaced={replaced} patched={patched} deleted={deleted} \
         ledger_calls={ledger_calls}"
    )
}
