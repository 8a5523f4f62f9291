//! The HTTP side: Convex's routes, wire checks and reply shapes, with latency and faults
//! applied around each call.
//!
//! Order of events for one request: route → a slot when slots are limited (429
//! `TooManyConcurrentRequests` when none frees up in time; the latency starts with the slot) →
//! `fail_all` → fault draw (`unavailable` and
//! `reset_before` stop here) → `Convex-Client` check (400 `InvalidVersion`) → deploy key (401
//! `BadAdminKey`) → body (400 `BadJsonBody`: not JSON, `args` not an object, or `format` not
//! `convex_encoded_json`, stricter than Convex on purpose) → the function, under the store's lock → the reply,
//! sent after `latency`, held for `stall_for` instead when stalled, or dropped with the
//! connection on `reset_after`.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;

use crate::faults::{Fault, FaultDice};
use crate::functions::{self, Kind};
use crate::json::{self, Str};
use crate::stats::{Counters, Outcome};
use crate::store::{Store, Thrown};

/// Everything the server and the handle share.
pub(crate) struct Shared {
    pub admin_key: String,
    pub plan_json: String,
    pub store: Mutex<Store>,
    pub dice: Mutex<FaultDice>,
    pub fail_all: AtomicBool,
    pub latency_micros: AtomicU64,
    pub counters: Counters,
    /// The slots calls run in, and how long one waits for a slot.
    pub slots: Option<(Arc<tokio::sync::Semaphore>, Option<Duration>)>,
    pub retry_after: Mutex<Option<Duration>>,
    /// Arrival of each request since `started`.
    pub arrivals: Mutex<Vec<Duration>>,
    pub started: std::time::Instant,
    /// `_storage` and `migrateFiles` (crate::files).
    pub files: Mutex<crate::files::FileStorage>,
    /// `http://127.0.0.1:<port>`: upload URLs point here.
    pub base_url: String,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn dice(&self) -> MutexGuard<'_, FaultDice> {
        self.dice.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }

    /// A 429 or 503 reply, with `Retry-After` when one is set.
    fn refusal(&self, mut reply: Reply) -> Reply {
        if let Some(wait) = *self.retry_after.lock().unwrap_or_else(PoisonError::into_inner) {
            let seconds = HeaderValue::from(wait.as_secs_f64().ceil() as u64);
            reply.headers_mut().insert(hyper::header::RETRY_AFTER, seconds);
        }
        reply
    }
}

type Reply = Response<Full<Bytes>>;

/// Returned by the service to make hyper close the connection without a reply.
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (fault injection)")
    }
}

impl std::error::Error for Hangup {}

/// Accepts connections until `shutdown` completes; each connection is served on a task of its
/// own, and dropped with the runtime.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors or a connection reset while queued: try again shortly.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(shared.clone(), request));
            // An error here is a client gone away or a deliberate hangup: nothing to report.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Reply, Hangup> {
    let kind = match (request.method(), request.uri().path()) {
        (&Method::POST, "/api/storage/upload") => return Ok(upload(&shared, request).await),
        (&Method::POST, "/api/query") => Kind::Query,
        (&Method::POST, "/api/mutation") => Kind::Mutation,
        (_, path) => {
            let message = format!("{} {path} is not a route of this sink", request.method());
            return Ok(system_error(StatusCode::NOT_FOUND, "NotFound", &message));
        }
    };
    shared.arrivals.lock().unwrap_or_else(PoisonError::into_inner).push(shared.started.elapsed());
    let _in_flight = shared.counters.call_started();
    let _slot = match &shared.slots {
        None => None,
        Some((slots, queue_for)) => {
            let slot = slots.clone().acquire_owned();
            let slot = match queue_for {
                Some(wait) => tokio::time::timeout(*wait, slot).await.ok(),
                None => Some(slot.await),
            };
            match slot {
                Some(slot) => {
                    let slot = slot.expect("the slots are never closed");
                    Some((slot, shared.counters.slot_taken()))
                }
                None => {
                    shared.counters.request(Outcome::NoSlot);
                    return Ok(shared.refusal(too_many_requests()));
                }
            }
        }
    };
    let latency = Deadline::after(shared.latency());
    if shared.fail_all.load(Ordering::Relaxed) {
        latency.wait().await;
        shared.counters.request(Outcome::FailedAll);
        return Ok(shared.refusal(overloaded()));
    }
    let fault = shared.dice().draw();
    match fault {
        Fault::Unavailable { overloaded: is_overloaded } => {
            latency.wait().await;
            shared.counters.request(Outcome::Unavailable);
            return Ok(shared.refusal(if is_overloaded {
                overloaded()
            } else {
                too_many_requests()
            }));
        }
        Fault::ResetBefore => {
            latency.wait().await;
            shared.counters.request(Outcome::ResetBefore);
            return Err(Hangup);
        }
        Fault::None | Fault::ResetAfter | Fault::Stall(_) => {}
    }
    let (reply, outcome) = process(&shared, kind, request).await;
    match fault {
        Fault::ResetAfter => {
            latency.wait().await;
            shared.counters.request(Outcome::ResetAfter);
            Err(Hangup)
        }
        Fault::Stall(stall_for) => {
            shared.counters.request(Outcome::Stalled);
            tokio::time::sleep(stall_for).await;
            Ok(reply)
        }
        _ => {
            latency.wait().await;
            shared.counters.request(outcome);
            Ok(reply)
        }
    }
}

/// When the reply to a request may go: `latency` after the request arrived, whatever the work
/// in between took.
struct Deadline(Option<tokio::time::Instant>);

impl Deadline {
    fn after(latency: Duration) -> Self {
        // tokio's timer fires on the first millisecond tick after a deadline, 0.5 ms late on
        // average; aiming half a millisecond early makes the mean delay the one asked for.
        let early = Duration::from_micros(500).min(latency);
        Deadline((!latency.is_zero()).then(|| tokio::time::Instant::now() + latency - early))
    }

    async fn wait(&self) {
        if let Some(at) = self.0 {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// `{"path": ..., "args": ..., "format": ...}`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    path: Str<'a>,
    #[serde(borrow)]
    args: &'a RawValue,
    #[serde(borrow)]
    format: Option<Str<'a>>,
}

/// The wire checks and the call itself; the call's writes are counted here, as they happen.
async fn process(shared: &Shared, kind: Kind, request: Request<Incoming>) -> (Reply, Outcome) {
    let headers = request.headers();
    if let Some(client) = headers.get("convex-client")
        && !client.to_str().is_ok_and(is_client_version)
    {
        let value = String::from_utf8_lossy(client.as_bytes());
        let message = format!("The Convex-Client header {value:?} is not <name>-<semver>");
        return wire_error(StatusCode::BAD_REQUEST, "InvalidVersion", &message);
    }
    let authorized = headers.get(AUTHORIZATION).is_some_and(|value| {
        value.as_bytes().strip_prefix(b"Convex ") == Some(shared.admin_key.as_bytes())
    });
    if !authorized {
        let message = "The provided admin key was invalid for this instance";
        return wire_error(StatusCode::UNAUTHORIZED, "BadAdminKey", message);
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return wire_error(StatusCode::BAD_REQUEST, "BadJsonBody", &e.to_string()),
    };
    let envelope: Envelope<'_> = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            let message = format!("Failed to deserialize the request body: {e}");
            return wire_error(StatusCode::BAD_REQUEST, "BadJsonBody", &message);
        }
    };
    if !envelope.args.get().starts_with('{') {
        let message = "The request body must be {\"path\": string, \"args\": object, \"format\": \"convex_encoded_json\"}";
        return wire_error(StatusCode::BAD_REQUEST, "BadJsonBody", message);
    }
    if envelope.format.as_deref() != Some("convex_encoded_json") {
        // Convex would answer in a lossy encoding, which migrate must never rely on.
        let message = "this sink answers only \"format\": \"convex_encoded_json\"";
        return wire_error(StatusCode::BAD_REQUEST, "BadJsonBody", message);
    }
    let args = envelope.args;
    if crate::files::is_files_function(&envelope.path) {
        let mut files = shared.files.lock().unwrap_or_else(PoisonError::into_inner);
        return match files.call(&shared.base_url, kind, &envelope.path, args) {
            Ok(value) => (success(&value), Outcome::Succeeded),
            Err(Thrown(message)) => (thrown(&message), Outcome::FunctionError),
        };
    }
    let result = {
        let mut store = shared.store();
        functions::call(&mut store, &shared.plan_json, kind, &envelope.path, args)
    };
    match result {
        Ok((value, writes)) => {
            shared.counters.wrote(writes);
            (success(&value), Outcome::Succeeded)
        }
        Err(Thrown(message)) => (thrown(&message), Outcome::FunctionError),
    }
}

/// `POST /api/storage/upload?token=…`: the body streamed through SHA-256 (never held whole),
/// then `{"storageId": …}`, as Convex answers an upload URL.
async fn upload(shared: &Shared, request: Request<Incoming>) -> Reply {
    use sha2::Digest as _;
    let token = request.uri().query().and_then(|q| q.strip_prefix("token=")).unwrap_or_default();
    let known = shared.files.lock().unwrap_or_else(PoisonError::into_inner).take_token(token);
    if !known {
        return system_error(StatusCode::BAD_REQUEST, "InvalidUploadToken", "unknown upload token");
    }
    let mut body = request.into_body();
    let (mut hasher, mut size) = (sha2::Sha256::new(), 0u64);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    size += data.len() as u64;
                }
            }
            Err(e) => return system_error(StatusCode::BAD_REQUEST, "BadUpload", &e.to_string()),
        }
    }
    let sha256 = base64_standard(&hasher.finalize());
    let id = shared.files.lock().unwrap_or_else(PoisonError::into_inner).store(size, sha256);
    json_reply(StatusCode::OK, format!("{{\"storageId\":\"{id}\"}}"))
}

/// Standard base64 with padding, as Convex writes `_storage.sha256`.
fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `<name>-<semver>`, the name possibly holding dashes itself (`npm-cli-1.2.3`).
fn is_client_version(value: &str) -> bool {
    value.match_indices('-').any(|(at, _)| at > 0 && is_semver(&value[at + 1..]))
}

/// `MAJOR.MINOR.PATCH`, optionally `-prerelease` and `+build`.
fn is_semver(s: &str) -> bool {
    let (rest, build) = match s.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let identifiers_ok = |part: Option<&str>| {
        part.is_none_or(|p| {
            p.split('.').all(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        })
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && identifiers_ok(pre)
        && identifiers_ok(build)
}

fn json_reply(status: StatusCode, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

fn success(value: &str) -> Reply {
    let mut body = String::with_capacity(value.len() + 48);
    body.push_str("{\"status\":\"success\",\"value\":");
    body.push_str(value);
    body.push_str(",\"logLines\":[]}");
    json_reply(StatusCode::OK, body)
}

fn thrown(message: &str) -> Reply {
    let mut body = String::from("{\"status\":\"error\",\"errorMessage\":");
    json::write_str(&mut body, message);
    body.push_str(",\"logLines\":[]}");
    json_reply(StatusCode::OK, body)
}

fn system_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let mut body = String::from("{\"code\":");
    json::write_str(&mut body, code);
    body.push_str(",\"message\":");
    json::write_str(&mut body, message);
    body.push('}');
    json_reply(status, body)
}

fn wire_error(status: StatusCode, code: &str, message: &str) -> (Reply, Outcome) {
    (system_error(status, code, message), Outcome::WireError)
}

fn overloaded() -> Reply {
    let message = "The deployment is overloaded; back off and try again";
    system_error(StatusCode::SERVICE_UNAVAILABLE, "Overloaded", message)
}

fn too_many_requests() -> Reply {
    let message = "Too many concurrent requests; back off and try again";
    system_error(StatusCode::TOO_MANY_REQUESTS, "TooManyConcurrentRequests", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_versions_need_a_semver_part() {
        for good in ["migrate-0.1.0", "npm-cli-1.2.3", "npm-cli-0.0.0-alpha-1", "x-1.0.0+build.5"] {
            assert!(is_client_version(good), "{good}");
        }
        for bad in
            ["migrate", "migrate-", "-1.0.0", "migrate-1.0", "migrate-v1.0.0", "migrate-1.0.x"]
        {
            assert!(!is_client_version(bad), "{bad}");
        }
    }
}
