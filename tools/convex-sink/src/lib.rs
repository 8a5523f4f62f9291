//! A fast in-memory stand-in for a Convex deployment running the generated `convex/migrate.ts`.
//!
//! It speaks Convex's HTTP API (`POST /api/query`, `POST /api/mutation`, the deploy-key and
//! `Convex-Client` checks, `{"status": ...}` replies and `{"code", "message"}` system errors) and
//! runs the functions of `docs/convex-module.md` (`migrate:info`, `upsert`, `patchRefs`, `page`,
//! `get`, `remove`, `ledgerWrite`, `ledgerRead`) on tables kept in memory, without schema
//! validation. Each call is atomic: a function that throws leaves nothing behind. On top of that it injects the faults a real
//! deployment shows (overload, lost connections, lost replies, stalls) at seeded random rates,
//! and can run a limited number of calls at once (`Slots`), queueing the others as Convex does.
//!
//! `migrate`'s throughput benchmark starts the `convex-sink` binary; its integration tests start
//! one in-process with [`Sink::start`] and steer it through the [`SinkHandle`].
//!
//! The server runs on a single-threaded tokio runtime on a thread of its own: the benchmark
//! gives the sink one of the machine's two cores, and one thread keeps it from taking both.
//!
//! Dependencies, and why each is here:
//! - `tokio` (current-thread runtime, TCP, timers, signals): the async runtime hyper runs on;
//!   the latency knob and stalls are timers that hold one reply without blocking the others.
//! - `hyper` + `hyper-util` + `http-body-util` + `bytes`: HTTP/1.1 with keep-alive, like Convex's
//!   front end, at a small cost per request; a service error closes the connection without a
//!   reply, which is how the reset faults are made.
//! - `serde` + `serde_json` (`raw_value`): request bodies are read borrowing from the request,
//!   document fields are kept as raw JSON text, never as `Value` trees. The other features match
//!   the main crate's, so the workspace compiles `serde_json` once.
//! - `rustc-hash`: the legacy-id indexes are hash maps on the hot path; FxHash is the cheapest.
//! - `fastrand`: the seeded generator that draws faults, so a fault test replays exactly.
//! - `clap`: the binary's flags.
//!
//! Modules: [`plan`] reads the plan; [`id`] makes document ids; `store` owns the tables and
//! atomicity; `functions` is the contract's semantics, decoding calls and encoding results;
//! [`faults`] and [`stats`] hold the fault rates and counters; `server` is the HTTP side;
//! `sink` starts a server and holds the handle; `json` has the raw-JSON helpers.
//!
//! Throughput (examples/throughput.rs, release build, 100 documents of ~330 bytes per call over 8
//! keep-alive connections, latency 0, the sink pinned to one core): about 350,000 to 430,000
//! inserts and 690,000 replacements per second, the sink's one core saturated.
//!
//! ```
//! use convex_sink::{Faults, Plan, Sink, SinkConfig};
//!
//! let plan = Plan::from_json(
//!     r#"{"version":1,"planHash":"blake3:00","tables":{"users":{"legacyIdField":"legacyId","references":{}}}}"#,
//! )?;
//! let sink = Sink::start(SinkConfig { seed: 7, ..SinkConfig::new(plan) })?;
//! // Give `sink.url()` and `sink.admin_key()` to the client, then steer the sink:
//! sink.set_faults(Faults { reset_after: 0.1, ..Faults::none() })?;
//! sink.set_fail_all(true);
//! assert_eq!(sink.stats().requests, 0);
//! assert!(sink.documents("users").is_empty());
//! # Ok::<(), convex_sink::SinkError>(())
//! ```

mod error;
pub mod faults;
mod files;
mod functions;
pub mod id;
mod json;
pub mod plan;
mod server;
mod sink;
pub mod stats;
mod store;

pub use error::SinkError;
pub use faults::Faults;
pub use plan::Plan;
pub use sink::{Sink, SinkConfig, SinkHandle, Slots};
pub use stats::Stats;
