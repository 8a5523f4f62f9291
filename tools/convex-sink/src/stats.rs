//! Counters of what the sink did: requests by how they ended, and documents written.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters. Every request to `/api/query` or `/api/mutation` counts once in
/// `requests` and once in exactly one of the outcome counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    /// Answered `{"status":"success"}`.
    pub succeeded: u64,
    /// Answered `{"status":"error"}`: the function threw, nothing applied.
    pub function_errors: u64,
    /// Refused at the wire: 400, 401 or 404.
    pub wire_errors: u64,
    /// Answered 503 or 429 by the `unavailable` fault.
    pub unavailable: u64,
    /// Answered 503 because `fail_all` was on.
    pub failed_all: u64,
    /// Answered 429 because no slot freed up in time (`Slots::queue_for`).
    pub no_slot: u64,
    /// The most requests the sink held at once (waiting for a slot included).
    pub peak_in_flight: u64,
    /// With slots: microseconds calls held a slot, summed. Divided by slots × a client's wall
    /// time, how busy the client kept the deployment.
    pub slot_busy_micros: u64,
    /// Connection closed before anything was applied.
    pub reset_before: u64,
    /// Applied, then the connection was closed without a reply.
    pub reset_after: u64,
    /// Applied, reply held for `stall_for` (counted when the stall begins).
    pub stalled: u64,
    /// Documents inserted, replaced, patched (`patchRefs`) and deleted by applied calls.
    pub inserted: u64,
    pub replaced: u64,
    pub patched: u64,
    pub deleted: u64,
    /// Calls of the ledger functions (`ledgerRead`, `ledgerWrite`) answered with success: import
    /// makes one or two before its first batch, and one after its last.
    pub ledger_calls: u64,
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    FunctionError,
    WireError,
    Unavailable,
    FailedAll,
    ResetBefore,
    ResetAfter,
    Stalled,
    NoSlot,
}

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    outcomes: [AtomicU64; 9],
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    slot_busy_micros: AtomicU64,
    inserted: AtomicU64,
    replaced: AtomicU64,
    patched: AtomicU64,
    deleted: AtomicU64,
    ledger_calls: AtomicU64,
}

impl Counters {
    pub fn request(&self, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn call_started(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    /// Counts the time a slot is held until the guard is dropped.
    pub fn slot_taken(&self) -> SlotHeld<'_> {
        SlotHeld { counters: self, since: std::time::Instant::now() }
    }

    pub fn wrote(&self, writes: crate::functions::Writes) {
        self.inserted.fetch_add(writes.inserted, Ordering::Relaxed);
        self.replaced.fetch_add(writes.replaced, Ordering::Relaxed);
        self.patched.fetch_add(writes.patched, Ordering::Relaxed);
        self.deleted.fetch_add(writes.deleted, Ordering::Relaxed);
        self.ledger_calls.fetch_add(writes.ledger_calls, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let outcome = |o: Outcome| get(&self.outcomes[o as usize]);
        Stats {
            requests: get(&self.requests),
            succeeded: outcome(Outcome::Succeeded),
            function_errors: outcome(Outcome::FunctionError),
            wire_errors: outcome(Outcome::WireError),
            unavailable: outcome(Outcome::Unavailable),
            failed_all: outcome(Outcome::FailedAll),
            no_slot: outcome(Outcome::NoSlot),
            peak_in_flight: get(&self.peak_in_flight),
            slot_busy_micros: get(&self.slot_busy_micros),
            reset_before: outcome(Outcome::ResetBefore),
            reset_after: outcome(Outcome::ResetAfter),
            stalled: outcome(Outcome::Stalled),
            inserted: get(&self.inserted),
            replaced: get(&self.replaced),
            patched: get(&self.patched),
            deleted: get(&self.deleted),
            ledger_calls: get(&self.ledger_calls),
        }
    }
}

/// A request the sink holds; see [`Counters::call_started`].
pub(crate) struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A slot held; see [`Counters::slot_taken`].
pub(crate) struct SlotHeld<'a> {
    counters: &'a Counters,
    since: std::time::Instant,
}

impl Drop for SlotHeld<'_> {
    fn drop(&mut self) {
        let micros = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.counters.slot_busy_micros.fetch_add(micros, Ordering::Relaxed);
    }
}
