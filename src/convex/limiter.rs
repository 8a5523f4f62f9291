//! How many calls may be in flight to one deployment: an adaptive limit, in the spirit of TCP
//! Vegas and Netflix's concurrency-limits, between 1 and a ceiling (`--concurrency`).
//!
//! A deployment says it is full in two ways. Loudly: 429 (`TooManyConcurrentRequests`,
//! `TooManyWrites`), 503 (`Overloaded`) or a call that times out; the limit is then halved, at
//! most once per round trip, and a `Retry-After` on the reply holds every new call until it
//! passes. Quietly: replies slow down because calls wait in the deployment's queue (Convex's
//! smallest plan runs 16 mutations at once and queues the rest; a local runtime runs one at a
//! time). The limiter keeps the fastest round trip seen lately as the baseline and estimates how
//! many calls are queued: `limit × (1 − baseline / smoothed round trip)`. Below a few it grows
//! (doubling per round trip until the first sign of congestion, then one per round trip), above
//! a few more it shrinks by one. It grows only while the calls fill it: a limit nobody uses says
//! nothing about the deployment.
//!
//! Every attempt takes a [`Permit`] before it is sent, so a call never starts its timeout while
//! it waits in our own queue, and retries obey the limit too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Where the limit starts: low, so that a one-at-a-time deployment never sees a crowd.
const INITIAL_LIMIT: f64 = 4.0;

/// How long a baseline round trip is trusted: at least this long and at least
/// [`BASELINE_ROUND_TRIPS`] smoothed round trips. Then the limit drops to a quarter for two
/// round trips (BBR's ProbeRTT) and the fastest reply of those is the new baseline: a queue
/// in the deployment cannot become the baseline, and a deployment that got slower for good
/// (larger documents) is not judged against a round trip it can no longer give.
const BASELINE_WINDOW: Duration = Duration::from_secs(10);
const BASELINE_ROUND_TRIPS: u32 = 30;

/// Weight of a new round trip in the smoothed one.
const SMOOTHING: f64 = 0.25;

/// The shared limit. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Limiter {
    ceiling: usize,
    state: Mutex<State>,
    freed: tokio::sync::Notify,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    slow_start: bool,
    /// The fastest round trip since `baseline_since`, seconds.
    baseline: Option<f64>,
    baseline_since: Option<Instant>,
    /// While the baseline is measured again: until when, and the limit to go back to.
    probe: Option<(Instant, f64)>,
    /// Seconds.
    smoothed: Option<f64>,
    /// No second decrease before this: one round trip after the last.
    hold_until: Option<Instant>,
    /// No new call before this (a `Retry-After`).
    paused_until: Option<Instant>,
    peak: usize,
    backoffs: u64,
}

/// What the limiter did, for the import summary.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct LimiterStats {
    /// `--concurrency`.
    pub ceiling: usize,
    /// The highest limit reached.
    pub peak: usize,
    /// The limit at the end.
    pub last: usize,
    /// Times the deployment pushed back (429, 503, timeouts, rising latency) and the limit
    /// shrank.
    pub backoffs: u64,
}

/// How an attempt ended, as far as the limit is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// A reply (a result or a function error): its round trip is a sample.
    Replied,
    /// 429, 503 or a timeout; `retry_after` when the reply said how long to wait.
    PushedBack { retry_after: Option<Duration> },
    /// Anything else (a refused connection, a 4xx, an upload's reply): no sample.
    Other,
}

/// One attempt in flight. Dropping it without [`Permit::finish`] frees the slot with no sample.
pub struct Permit<'a> {
    limiter: &'a Limiter,
    sent: Instant,
    finished: bool,
}

impl Limiter {
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1);
        let limit = INITIAL_LIMIT.min(ceiling as f64);
        Limiter {
            ceiling,
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                slow_start: true,
                baseline: None,
                baseline_since: None,
                probe: None,
                smoothed: None,
                hold_until: None,
                paused_until: None,
                peak: limit as usize,
                backoffs: 0,
            }),
            freed: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls allowed in flight now.
    pub fn limit(&self) -> usize {
        self.state().limit as usize
    }

    pub fn stats(&self) -> LimiterStats {
        let state = self.state();
        LimiterStats {
            ceiling: self.ceiling,
            peak: state.peak,
            last: state.limit as usize,
            backoffs: state.backoffs,
        }
    }

    /// Waits for a free slot (and for a `Retry-After` to pass), then takes it.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            // Registered before the check, so that a slot freed in between is not missed.
            let freed = self.freed.notified();
            let wait = {
                let mut state = self.state();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ if state.in_flight < state.limit as usize => {
                        state.in_flight += 1;
                        return Permit { limiter: self, sent: Instant::now(), finished: false };
                    }
                    _ => None,
                }
            };
            match wait {
                Some(pause) => tokio::time::sleep(pause).await,
                None => freed.await,
            }
        }
    }

    fn release(&self, sent: Instant, outcome: Outcome) {
        let now = Instant::now();
        {
            let mut state = self.state();
            state.on_outcome(now - sent, outcome, now, self.ceiling);
            state.in_flight -= 1;
        }
        self.freed.notify_waiters();
    }
}

impl Permit<'_> {
    pub fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.limiter.release(self.sent, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.limiter.release(self.sent, Outcome::Other);
        }
    }
}

impl State {
    fn on_outcome(&mut self, rtt: Duration, outcome: Outcome, now: Instant, ceiling: usize) {
        match outcome {
            Outcome::Replied => self.on_reply(rtt, now, ceiling),
            Outcome::PushedBack { retry_after } => {
                if let Some(wait) = retry_after {
                    let until = now + wait;
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                }
                self.decrease(now, |limit| limit / 2.0);
            }
            Outcome::Other => {}
        }
    }

    fn on_reply(&mut self, rtt: Duration, now: Instant, ceiling: usize) {
        let sample = rtt.as_secs_f64().max(1e-6);
        let smoothed = match self.smoothed {
            Some(s) => s + SMOOTHING * (sample - s),
            None => sample,
        };
        self.smoothed = Some(smoothed);
        self.baseline = Some(self.baseline.map_or(sample, |b| b.min(sample)));
        let since = *self.baseline_since.get_or_insert(now);
        match self.probe {
            Some((until, restore)) if now >= until => {
                self.probe = None;
                self.limit = restore;
            }
            Some(_) => return,
            None => {
                let trusted = BASELINE_WINDOW
                    .max(Duration::from_secs_f64(smoothed.min(60.0)) * BASELINE_ROUND_TRIPS);
                if now - since >= trusted {
                    let probe_for = Duration::from_secs_f64(2.0 * smoothed.min(60.0));
                    self.probe = Some((now + probe_for, self.limit));
                    self.limit = (self.limit / 4.0).floor().max(1.0);
                    self.baseline = None;
                    self.baseline_since = Some(now);
                    return;
                }
            }
        }
        let baseline = self.baseline.unwrap_or(sample);
        let queued = self.limit * (1.0 - baseline / smoothed).max(0.0);
        let log = self.limit.log10().max(1.0);
        let (alpha, beta) = (3.0 * log, 6.0 * log);
        if queued > beta {
            self.decrease(now, |limit| limit - log);
        } else if queued < alpha && self.in_flight + 1 >= self.limit as usize {
            // Slow start adds one per reply: the limit doubles per round trip.
            let step = if self.slow_start { 1.0 } else { 1.0 / self.limit };
            self.limit = (self.limit + step).min(ceiling as f64);
            self.peak = self.peak.max(self.limit as usize);
        } else if queued >= alpha {
            self.slow_start = false;
        }
    }

    fn decrease(&mut self, now: Instant, to: impl Fn(f64) -> f64) {
        if self.hold_until.is_some_and(|until| now < until) {
            return;
        }
        self.slow_start = false;
        self.limit = to(self.limit).max(1.0);
        if let Some((_, restore)) = &mut self.probe {
            *restore = to(*restore).max(1.0);
        }
        self.backoffs += 1;
        let round_trip = Duration::from_secs_f64(self.smoothed.unwrap_or(0.1).min(60.0));
        self.hold_until = Some(now + round_trip);
        tracing::debug!(limit = self.limit, "the deployment pushed back: fewer calls in flight");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a deployment that answers in `service(in_flight)` for `rounds` round trips of a
    /// caller that always fills the limit; returns the limit after each round.
    fn simulate(ceiling: usize, rounds: usize, service: impl Fn(usize) -> Duration) -> Vec<usize> {
        let limiter = Limiter::new(ceiling);
        let mut now = Instant::now();
        let mut limits = vec![];
        for _ in 0..rounds {
            let mut state = limiter.state();
            let calls = state.limit as usize;
            let rtt = service(calls);
            now += rtt;
            for _ in 0..calls {
                // The caller keeps the limit full: a reply finds `limit` calls in flight.
                state.in_flight = state.limit as usize;
                state.on_outcome(rtt, Outcome::Replied, now, ceiling);
            }
            state.in_flight = 0;
            limits.push(state.limit as usize);
        }
        limits
    }

    #[test]
    fn a_deployment_that_keeps_its_latency_gets_the_ceiling_quickly() {
        let limits = simulate(64, 10, |_| Duration::from_millis(20));
        assert_eq!(limits[..5], [8, 16, 32, 64, 64]);
    }

    #[test]
    fn a_one_at_a_time_deployment_gets_a_few_calls_never_a_crowd() {
        // Each call waits for every call ahead of it: round trip = calls x service time.
        let limits = simulate(64, 200, |calls| Duration::from_secs(calls as u64));
        let settled = &limits[100..];
        assert!(settled.iter().all(|&l| (1..=12).contains(&l)), "{settled:?}");
    }

    #[test]
    fn a_deployment_with_sixteen_slots_is_kept_just_above_full() {
        // Up to 16 calls run at once in 20 ms; more wait in the deployment's queue.
        let limits = simulate(256, 400, |calls| {
            Duration::from_millis(20) * (calls.div_ceil(16).max(1) as u32)
        });
        let settled = &limits[200..];
        // Full nine rounds in ten; the others measure the baseline again at a quarter.
        let full = settled.iter().filter(|&&l| l >= 16).count();
        assert!(full * 10 >= settled.len() * 9, "{settled:?}");
        assert!(settled.iter().all(|&l| l <= 40), "{settled:?}");
    }

    #[test]
    fn push_back_halves_once_per_round_trip_and_retry_after_pauses() {
        let limiter = Limiter::new(64);
        let now = Instant::now();
        let mut state = limiter.state();
        state.limit = 32.0;
        state.smoothed = Some(0.1);
        let pushed = Outcome::PushedBack { retry_after: Some(Duration::from_secs(2)) };
        state.on_outcome(Duration::from_millis(100), pushed, now, 64);
        assert_eq!(state.limit, 16.0);
        // A burst of refusals from the same round trip counts once.
        for _ in 0..10 {
            state.on_outcome(Duration::from_millis(100), pushed, now, 64);
        }
        assert_eq!(state.limit, 16.0);
        assert_eq!(state.backoffs, 1);
        assert_eq!(state.paused_until, Some(now + Duration::from_secs(2)));
        let later = now + Duration::from_millis(150);
        state.on_outcome(
            Duration::from_millis(100),
            Outcome::PushedBack { retry_after: None },
            later,
            64,
        );
        assert_eq!(state.limit, 8.0);
        for _ in 0..20 {
            state.hold_until = None;
            state.on_outcome(Duration::ZERO, Outcome::PushedBack { retry_after: None }, later, 64);
        }
        assert_eq!(state.limit, 1.0, "never below one call");
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let limiter = Limiter::new(64);
        let mut state = limiter.state();
        let now = Instant::now();
        for _ in 0..100 {
            state.in_flight = 1;
            state.on_outcome(Duration::from_millis(20), Outcome::Replied, now, 64);
        }
        assert_eq!(state.limit, INITIAL_LIMIT);
    }

    #[tokio::test]
    async fn permits_wait_for_a_free_slot() {
        let limiter = Limiter::new(2);
        let first = limiter.acquire().await;
        let _second = limiter.acquire().await;
        let third = tokio::time::timeout(Duration::from_millis(50), limiter.acquire()).await;
        assert!(third.is_err(), "a third call went past a limit of 2");
        first.finish(Outcome::Other);
        let third = tokio::time::timeout(Duration::from_secs(5), limiter.acquire()).await;
        assert!(third.is_ok(), "a freed slot was not handed on");
    }
}
