//! Starting a sink and steering it: [`Sink::start`] binds 127.0.0.1 and serves on a thread of its
//! own (a single-threaded tokio runtime), so the caller needs no runtime and may have one; the
//! [`SinkHandle`] changes faults and latency, reads counters and documents, edits documents
//! behind the client's back, and stops the server when dropped.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::error::SinkError;
use crate::faults::{FaultDice, Faults};
use crate::plan::Plan;
use crate::server::{self, Shared};
use crate::stats::{Counters, Stats};
use crate::store::{Store, write_doc};

/// How to start a sink. `SinkConfig { latency, ..SinkConfig::new(plan) }` changes one setting.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub plan: Plan,
    /// The deploy key clients must send as `Authorization: Convex <admin_key>`.
    pub admin_key: String,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How long every reply waits before it is sent.
    pub latency: Duration,
    pub faults: Faults,
    /// Seeds the fault draws and the ids.
    pub seed: u64,
    /// At most this many calls run at once, as on a real deployment; `None`: no limit.
    pub slots: Option<Slots>,
    /// Sent as `Retry-After` (whole seconds) with every 429 and 503.
    pub retry_after: Option<Duration>,
}

/// How many calls run at once, and what happens to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slots {
    pub calls: usize,
    /// How long a call waits for a slot before it is answered 429
    /// `TooManyConcurrentRequests` (Convex: about 5 s); `None`: as long as it takes (a local
    /// runtime that runs one call at a time). The latency starts when a call gets its slot.
    pub queue_for: Option<Duration>,
}

impl SinkConfig {
    /// Any free port, key `convex-sink-admin-key`, no latency, no faults, seed 1.
    pub fn new(plan: Plan) -> SinkConfig {
        SinkConfig {
            plan,
            admin_key: "convex-sink-admin-key".to_owned(),
            port: 0,
            latency: Duration::ZERO,
            faults: Faults::none(),
            seed: 1,
            slots: None,
            retry_after: None,
        }
    }
}

/// Starts sinks.
pub struct Sink;

impl Sink {
    /// Binds the port and starts serving on a new thread; the sink answers as soon as this
    /// returns.
    pub fn start(config: SinkConfig) -> Result<SinkHandle, SinkError> {
        config.faults.check()?;
        let listener = TcpListener::bind(("127.0.0.1", config.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            admin_key: config.admin_key,
            plan_json: config.plan.json().to_owned(),
            store: Mutex::new(Store::new(&config.plan, config.seed)),
            dice: Mutex::new(FaultDice::new(config.faults, config.seed)),
            fail_all: AtomicBool::new(false),
            latency_micros: AtomicU64::new(micros(config.latency)),
            counters: Counters::default(),
            slots: config.slots.map(|slots| {
                (Arc::new(tokio::sync::Semaphore::new(slots.calls.max(1))), slots.queue_for)
            }),
            retry_after: Mutex::new(config.retry_after),
            arrivals: Mutex::new(Vec::new()),
            started: std::time::Instant::now(),
            files: Mutex::default(),
            base_url: format!("http://{addr}"),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = shared.clone();
        let thread = std::thread::Builder::new().name("convex-sink".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("a non-blocking listener inside a runtime");
                server::serve(listener, serving, async {
                    let _ = stopped.await;
                })
                .await;
            });
            // Dropping the runtime here drops every connection, stalled replies included.
        })?;
        Ok(SinkHandle { shared, addr, stop: Some(stop), thread: Some(thread) })
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A running sink; dropping it stops the server and closes its connections.
pub struct SinkHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SinkHandle {
    /// `http://127.0.0.1:<port>`, the deployment URL to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_key(&self) -> &str {
        &self.shared.admin_key
    }

    /// Changes the fault rates from the next request on.
    pub fn set_faults(&self, faults: Faults) -> Result<(), SinkError> {
        faults.check()?;
        self.shared.dice().set(faults);
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.shared.dice().faults()
    }

    /// While on, every request is answered 503 `Overloaded` and nothing is applied.
    pub fn set_fail_all(&self, on: bool) {
        self.shared.fail_all.store(on, Ordering::Relaxed);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.latency_micros.store(micros(latency), Ordering::Relaxed);
    }

    /// From the next refusal on, 429 and 503 replies carry `Retry-After` (`None`: none).
    pub fn set_retry_after(&self, wait: Option<Duration>) {
        *self.shared.retry_after.lock().unwrap_or_else(|e| e.into_inner()) = wait;
    }

    /// When each request arrived, measured from the sink's start, in arrival order.
    pub fn arrivals(&self) -> Vec<Duration> {
        self.shared.arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The number of documents in `table`. Panics if the plan has no such table.
    pub fn count(&self, table: &str) -> usize {
        let store = self.shared.store();
        store.live_count(table_of(&store, table))
    }

    /// Every document of `table` in insertion order, as `migrate:page` returns them (`_id`,
    /// `_creationTime`, references as ids). Panics if the plan has no such table.
    pub fn documents(&self, table: &str) -> Vec<Value> {
        let store = self.shared.store();
        let t = table_of(&store, table);
        let (docs, _, _) = store.page(t, 0, usize::MAX);
        docs.into_iter().map(doc_value).collect()
    }

    /// The first document of `table` with this legacy id, as `migrate:get` returns it.
    pub fn document(&self, table: &str, legacy_id: &str) -> Option<Value> {
        let store = self.shared.store();
        let t = table_of(&store, table);
        store.first_slot(t, legacy_id).map(|slot| doc_value(store.doc(t, slot)))
    }

    /// Inserts a document as it would be stored (references as ids; `_id` and `_creationTime`
    /// ignored), even if one with its legacy id exists: a way to make duplicates. Returns its id.
    pub fn insert_raw(&self, table: &str, doc: Value) -> String {
        let Value::Object(mut fields) = doc else { panic!("insert_raw takes a JSON object") };
        fields.remove("_id");
        fields.remove("_creationTime");
        let mut store = self.shared.store();
        let t = table_of(&store, table);
        let legacy = legacy_of(&store, t, &fields);
        let body = Value::Object(fields).to_string().into_boxed_str();
        let id = store.atomically(|s| Ok(s.insert(t, legacy.as_deref(), body)));
        id.expect("an insert cannot throw").as_str().to_owned()
    }

    /// Changes the first document of `table` with this legacy id in place (id and creation time
    /// kept; a changed legacy id field re-indexes it). Returns whether there was one.
    pub fn modify(
        &self,
        table: &str,
        legacy_id: &str,
        f: impl FnOnce(&mut Map<String, Value>),
    ) -> bool {
        let mut store = self.shared.store();
        let t = table_of(&store, table);
        let Some(slot) = store.first_slot(t, legacy_id) else { return false };
        let mut fields: Map<String, Value> =
            serde_json::from_str(&store.doc(t, slot).body).expect("stored bodies are JSON objects");
        f(&mut fields);
        fields.remove("_id");
        fields.remove("_creationTime");
        let legacy = legacy_of(&store, t, &fields);
        let body = Value::Object(fields).to_string().into_boxed_str();
        let done = store.atomically(|s| {
            s.replace(t, slot, body);
            if legacy.as_deref() != Some(legacy_id) {
                s.reindex(t, slot, Some(legacy_id), legacy.as_deref());
            }
            Ok(())
        });
        done.is_ok()
    }

    /// The `migrateFiles` records (`migrate:recordFiles`): `<bucket>/<path>` → storage id.
    pub fn file_records(&self) -> std::collections::BTreeMap<String, String> {
        self.shared.files.lock().unwrap_or_else(|e| e.into_inner()).records()
    }

    /// The storage ids of every stored file, recorded or not.
    pub fn stored_files(&self) -> std::collections::BTreeSet<String> {
        self.shared.files.lock().unwrap_or_else(|e| e.into_inner()).stored_ids()
    }

    /// Stores a file the way the application's own upload would (no `migrateFiles` record):
    /// its storage id.
    pub fn store_file(&self, size: u64, sha256: &str) -> String {
        self.shared.files.lock().unwrap_or_else(|e| e.into_inner()).store(size, sha256.to_owned())
    }

    /// Every record of the module's ledger table (`migrate:ledgerWrite`), in no particular order.
    pub fn ledger(&self) -> Vec<Value> {
        let store = self.shared.store();
        let records = store.ledger_records();
        records.into_iter().map(|r| serde_json::from_str(r).expect("records are JSON")).collect()
    }

    /// Empties every table and the ledger, as if the deployment were wiped or replaced by a
    /// fresh one at the same URL. The counters are kept.
    pub fn clear(&self) {
        self.shared.store().clear();
    }

    /// Stops the server and waits for its thread (also what dropping the handle does).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn table_of(store: &Store, table: &str) -> usize {
    store.table_index(table).unwrap_or_else(|e| panic!("{}", e.0))
}

fn legacy_of(store: &Store, t: usize, fields: &Map<String, Value>) -> Option<String> {
    fields.get(&*store.table(t).legacy_field).and_then(Value::as_str).map(str::to_owned)
}

fn doc_value(doc: &crate::store::Doc) -> Value {
    let mut text = String::new();
    write_doc(&mut text, doc);
    serde_json::from_str(&text).expect("documents are JSON")
}
