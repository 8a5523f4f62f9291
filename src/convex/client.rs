//! Convex's HTTP API as import and verify use it: one reqwest client (rustls, connection pool,
//! timeouts) calling `/api/query` and `/api/mutation` with the deploy key, retrying what is safe
//! to retry, and turning replies into values or errors that say what to do.
//!
//! Retries: timeouts, connection errors, 429, 500, 502, 503 and 504 are retried with exponential
//! backoff and full jitter, because every write migrate sends is an upsert by legacy id and may
//! be applied twice. A 500 is Convex failing, not the function: a function that throws is a 200
//! with `"status": "error"`. A function error, a refused key or a bad request is never retried:
//! sending it again cannot change the answer. A `Retry-After` on a refused call is waited for
//! (and holds every other call too), capped at five minutes.
//!
//! Every attempt takes a slot from the client's [`Limiter`] first: how many calls are in flight
//! adapts to how the deployment answers, up to `--concurrency`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::limiter::{Limiter, LimiterStats, Outcome};
use crate::settings::Secret;

/// `--concurrency`'s default: the most calls in flight the limiter may reach. Convex's smallest
/// plan runs 16 mutations at once and queues the rest, which the limiter sees as rising latency;
/// larger plans run 256 to 1024.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// The longest `Retry-After` honoured; a longer one is waited for this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `Convex-Client`: Convex refuses a value without a `-<semver>` part.
const CLIENT_NAME: &str = concat!("migrate-", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    Query,
    Mutation,
    /// An action: the auth presets' tests sign in through Better Auth with one.
    Action,
}

impl FunctionKind {
    fn route(self) -> &'static str {
        match self {
            FunctionKind::Query => "api/query",
            FunctionKind::Mutation => "api/mutation",
            FunctionKind::Action => "api/action",
        }
    }
}

/// How hard to try before giving up on a call that keeps failing for transient reasons.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub retries: u32,
    /// The first backoff's upper bound; it doubles per attempt up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The longest wait before retry `attempt` (0 for the first retry): `base_delay` doubled
    /// per attempt, capped at `max_delay`.
    fn backoff_bound(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(1 << attempt.min(16)).min(self.max_delay)
    }

    /// Full jitter: a uniformly random wait in `[0, backoff_bound(attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.backoff_bound(attempt).mul_f64(fastrand::f64())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The function ran and threw (or Convex refused its arguments): HTTP 200 with
    /// `"status": "error"`. Its writes were rolled back.
    #[error("{path}: {message}")]
    Function { path: String, message: String },
    /// 401 or 403: the deploy key is wrong, or for another deployment.
    #[error("Convex refused the deploy key: HTTP {status} {code}: {message}")]
    DeployKey { status: u16, code: String, message: String },
    /// Another 4xx: the request itself is wrong; sending it again cannot help.
    #[error("Convex refused the call to {path}: HTTP {status} {code}: {message}")]
    Refused { path: String, status: u16, code: String, message: String },
    /// Transient failures that outlasted every retry. `url` is the deployment (validated: no
    /// credentials); `answered` says whether the last attempt got an HTTP reply at all.
    #[error(
        "{}: {last} ({attempts} attempts)",
        if *answered {
            format!("Convex at `{url}` kept failing")
        } else {
            format!("cannot reach Convex at `{url}`")
        }
    )]
    Unavailable { url: String, attempts: u32, last: String, answered: bool },
    /// A 200 reply that is not Convex's envelope: the URL points at something else.
    #[error("the reply to {path} is not from Convex: {detail}")]
    NotConvex { path: String, detail: String },
}

impl CallError {
    /// The deployment has no such function: the generated module is not deployed.
    pub fn is_missing_function(&self) -> bool {
        matches!(self, CallError::Function { message, .. }
            if message.contains("Could not find function") || message.contains("Could not find public function"))
    }

    /// A function error that depends on the documents sent (a validator, a missing parent),
    /// not on the deployment (no such function, a table the module does not know): only such
    /// an error is worth narrowing down to the documents that cause it.
    pub fn is_about_the_documents(&self) -> bool {
        matches!(self, CallError::Function { message, .. } if !message.contains("unknown table"))
            && !self.is_missing_function()
    }
}

/// `{"status": "success" | "error", ...}`, Convex's reply to a function call. A plain struct,
/// not a tagged enum: serde buffers tagged enums, and a borrowed `RawValue` cannot be buffered.
#[derive(Deserialize)]
struct Envelope<'a> {
    status: &'a str,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
}

/// `{"code": ..., "message": ...}`, Convex's body for a non-2xx reply.
#[derive(Deserialize, Default)]
struct SystemError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// One deployment, one connection pool. Cheap to clone.
#[derive(Clone)]
pub struct ConvexClient {
    http: reqwest::Client,
    base: Arc<str>,
    /// `Convex <deploy key>`, marked sensitive so that no HTTP layer logs it.
    authorization: reqwest::header::HeaderValue,
    retry: RetryPolicy,
    /// Shared by every clone, so that retries are told once per burst for the whole import.
    retries: Arc<RetryNotice>,
    /// Shared by every clone: how many attempts may be in flight.
    limiter: Arc<Limiter>,
}

/// Tells retries at the default (warn) level without a line per retry: the first retry of a
/// burst, then at most one summary per [`RetryNotice::SUMMARY_EVERY`] while the burst lasts.
/// A burst ends after [`RetryNotice::BURST_GAP`] without a retry.
#[derive(Debug)]
struct RetryNotice {
    /// `host:port` of the deployment, never its userinfo.
    host: String,
    state: std::sync::Mutex<NoticeState>,
}

#[derive(Debug, Default)]
struct NoticeState {
    last_retry: Option<Instant>,
    window_start: Option<Instant>,
    /// Retries since the last line.
    untold: u64,
}

/// What [`RetryNotice::note`] says, if anything.
#[derive(Debug, PartialEq, Eq)]
enum Notice {
    First,
    Summary { retries: u64, seconds: u64 },
}

impl RetryNotice {
    const BURST_GAP: Duration = Duration::from_secs(10);
    const SUMMARY_EVERY: Duration = Duration::from_secs(5);

    fn new(url: &str) -> Self {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| "the deployment".to_owned());
        RetryNotice { host, state: Default::default() }
    }

    fn note(&self, now: Instant) -> Option<Notice> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let new_burst = state.last_retry.is_none_or(|last| now - last >= Self::BURST_GAP);
        state.last_retry = Some(now);
        if new_burst {
            state.window_start = Some(now);
            state.untold = 0;
            return Some(Notice::First);
        }
        state.untold += 1;
        let start = state.window_start.unwrap_or(now);
        if now - start >= Self::SUMMARY_EVERY {
            let notice = Notice::Summary {
                retries: state.untold,
                seconds: (now - start).as_secs_f64().round() as u64,
            };
            state.window_start = Some(now);
            state.untold = 0;
            return Some(notice);
        }
        None
    }

    fn tell(&self, reason: &str) {
        match self.note(Instant::now()) {
            Some(Notice::First) => tracing::warn!(
                "calls to `{}` are being retried: {reason}; the deployment is overloaded or \
                 slow: fewer calls are sent at once until it keeps up",
                self.host
            ),
            Some(Notice::Summary { retries, seconds }) => tracing::warn!(
                "retried {retries} calls to `{}` in the last {seconds} s (last: {reason})",
                self.host
            ),
            None => {}
        }
    }
}

impl std::fmt::Debug for ConvexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConvexClient").field("url", &self.base).finish_non_exhaustive()
    }
}

impl ConvexClient {
    /// `url` is the deployment URL (`https://happy-animal-123.convex.cloud`), already validated.
    pub fn new(
        url: &str,
        deploy_key: &Secret,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Mozilla's roots and the system's, where a company's own authority (or a
        // TLS-inspecting proxy's) is installed.
        let roots = crate::tls_roots::default_store();
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').into(),
            authorization: {
                let mut value = reqwest::header::HeaderValue::from_str(&format!(
                    "Convex {}",
                    deploy_key.expose()
                ))
                .map_err(|_| {
                    anyhow::anyhow!("CONVEX_DEPLOY_KEY holds characters an HTTP header cannot")
                })?;
                value.set_sensitive(true);
                value
            },
            retry,
            retries: Arc::new(RetryNotice::new(url)),
            limiter: Arc::new(Limiter::new(DEFAULT_CONCURRENCY)),
        })
    }

    /// The same client with at most `ceiling` calls in flight (`--concurrency`).
    pub fn with_concurrency(mut self, ceiling: usize) -> Self {
        self.limiter = Arc::new(Limiter::new(ceiling));
        self
    }

    /// Calls allowed in flight now: callers that queue work keep about this many ready.
    pub fn concurrency(&self) -> usize {
        self.limiter.limit()
    }

    pub fn concurrency_stats(&self) -> LimiterStats {
        self.limiter.stats()
    }

    /// Calls `path` with `args` (already in Convex's tagged encoding); returns the value.
    pub async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        kind: FunctionKind,
        path: &str,
        args: &serde_json::Value,
    ) -> Result<T, CallError> {
        let body = request_body(path, args.to_string().as_bytes());
        self.call_body(kind, path, body.into(), |raw| {
            serde_json::from_str(raw.get()).map_err(|e| e.to_string())
        })
        .await
    }

    /// Calls `path` with a request body built by [`request_body`]; `decode` reads the value.
    /// The body is shared between retries, never copied.
    pub async fn call_body<T>(
        &self,
        kind: FunctionKind,
        path: &str,
        body: bytes::Bytes,
        decode: impl Fn(&RawValue) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let url = format!("{}/{}", self.base, kind.route());
        let request = || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        };
        self.exchange(path, request, |text| decode_reply(path, text, &decode)).await
    }

    /// Calls `path`, a function of the component mounted as `component`, through
    /// `POST /api/function` with `componentPath` (what `npx convex run --component` sends;
    /// admin only).
    pub async fn call_in_component<T: for<'de> Deserialize<'de>>(
        &self,
        component: &str,
        path: &str,
        args: &serde_json::Value,
    ) -> Result<T, CallError> {
        let body = serde_json::json!({
            "componentPath": component,
            "path": path,
            "args": args,
            "format": "convex_encoded_json",
        });
        let body = bytes::Bytes::from(body.to_string());
        let url = format!("{}/api/function", self.base);
        let request = || {
            self.http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        };
        let decode = |raw: &RawValue| serde_json::from_str(raw.get()).map_err(|e| e.to_string());
        self.exchange(path, request, |text| decode_reply(path, text, &decode)).await
    }

    /// `GET /api/<route>?<query>`, one of Convex's HTTP endpoints that are no function (the
    /// streaming export's `list_snapshot`), with the same retries; the reply is plain JSON.
    pub async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<T, CallError> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/{route}", self.base), query)
            .map_err(|e| CallError::Refused {
                path: route.to_owned(),
                status: 0,
                code: "InvalidUrl".into(),
                message: e.to_string(),
            })?;
        let request = || self.http.get(url.clone());
        self.exchange(route, request, |text| {
            serde_json::from_str(text)
                .map_err(|e| CallError::NotConvex { path: route.to_owned(), detail: e.to_string() })
        })
        .await
    }

    /// Sends what `request` builds until it gets an answer, retrying what is transient.
    async fn exchange<T>(
        &self,
        path: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
        decode: impl Fn(&str) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let mut attempt = 0;
        loop {
            // The slot is taken before the request starts, so its timeout never counts time
            // spent waiting here.
            let permit = self.limiter.acquire().await;
            let reply = self.attempt(request(), path).await;
            let (transient, answered, retry_after) = match reply {
                Ok(Reply::Done(text)) => {
                    permit.finish(Outcome::Replied);
                    return decode(&text);
                }
                Ok(Reply::Transient { reason, retry_after }) => {
                    permit.finish(Outcome::PushedBack { retry_after });
                    // Said with the retry, so that a long wait is never a silent one.
                    let reason = match retry_after {
                        Some(wait) => format!("{reason} (Retry-After: {} s)", wait.as_secs()),
                        None => reason,
                    };
                    (reason, true, retry_after)
                }
                // Only a refused or failed connection is "cannot reach"; a timeout was sent.
                Err(reason) => {
                    let timed_out = reason.starts_with("timed out");
                    permit.finish(if timed_out {
                        Outcome::PushedBack { retry_after: None }
                    } else {
                        Outcome::Other
                    });
                    let answered = !reason.starts_with("cannot connect");
                    (reason, answered, None)
                }
                Ok(Reply::Failed(error)) => {
                    permit.finish(Outcome::Other);
                    return Err(error);
                }
            };
            if attempt >= self.retry.retries {
                return Err(CallError::Unavailable {
                    url: crate::settings::redact_url(&self.base),
                    attempts: attempt + 1,
                    last: transient,
                    answered,
                });
            }
            let delay = self.retry.delay(attempt).max(retry_after.unwrap_or_default());
            tracing::debug!(path, attempt, ?delay, reason = %transient, "retrying");
            self.retries.tell(&transient);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange. `Err` is a transport failure worth retrying.
    async fn attempt(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Reply, String> {
        let response = request
            .header(reqwest::header::AUTHORIZATION, self.authorization.clone())
            .header("Convex-Client", CLIENT_NAME)
            .send()
            .await
            .map_err(|e| transport_reason(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| retry_after(value.to_str().ok()?, std::time::SystemTime::now()));
        let text = response.text().await.map_err(|e| transport_reason(&e))?;
        if status == 200 {
            return Ok(Reply::Done(text));
        }
        let error: SystemError = serde_json::from_str(&text).unwrap_or_default();
        let message =
            if error.message.is_empty() { text.chars().take(300).collect() } else { error.message };
        // A proxy or a server that echoes the request (its `Authorization` header) in an error
        // body would print the deploy key with the message.
        let (code, message) = (self.scrub(&error.code), self.scrub(&message));
        Ok(match status {
            429 | 500 | 502 | 503 | 504 => {
                Reply::Transient { reason: format!("HTTP {status} {code}: {message}"), retry_after }
            }
            401 | 403 => Reply::Failed(CallError::DeployKey { status, code, message }),
            _ => Reply::Failed(CallError::Refused { path: path.to_owned(), status, code, message }),
        })
    }
}

/// Why one upload of a file's bytes failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Worth another attempt, with a new upload URL and the bytes read again.
    #[error("{0}")]
    Transient(String),
    #[error("Convex refused the upload: {0}")]
    Refused(String),
}

impl ConvexClient {
    /// One upload the way Convex apps upload: POSTs `body` (streamed, never held whole) to
    /// `upload_url` (from `ctx.storage.generateUploadUrl()`) with `content_type`; Convex answers
    /// `{"storageId": …}`. A stream cannot be sent twice: the caller retries a
    /// [`UploadError::Transient`] with a new URL and the bytes opened again. The attempt takes
    /// a slot of the client's limiter like any call.
    pub async fn upload<S>(
        &self,
        upload_url: &str,
        content_type: &str,
        size: u64,
        body: S,
    ) -> Result<String, UploadError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let permit = self.limiter.acquire().await;
        let sent = self
            .http
            .post(upload_url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header("Convex-Client", CLIENT_NAME)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                permit.finish(Outcome::Other);
                return Err(UploadError::Transient(transport_reason(&e)));
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| UploadError::Transient(transport_reason(&e)));
        // An upload's round trip is its bytes' transfer (and their reading from the source), not
        // a call's wait in the deployment's queue: as a sample beside the calls' it would look
        // like a queue (or hide one) and hold the limit at a few. It counts in flight, and a
        // refusal shrinks the limit; only calls measure the round trip.
        permit.finish(match status {
            429 | 503 => Outcome::PushedBack { retry_after: None },
            _ => Outcome::Other,
        });
        let text = text?;
        #[derive(Deserialize)]
        struct Uploaded {
            #[serde(rename = "storageId")]
            storage_id: String,
        }
        match status {
            200 => serde_json::from_str::<Uploaded>(&text).map(|u| u.storage_id).map_err(|e| {
                UploadError::Refused(format!("the reply is not {{\"storageId\": …}}: {e}"))
            }),
            408 | 429 | 500 | 502 | 503 | 504 => {
                Err(UploadError::Transient(format!("HTTP {status}: {}", self.scrub(&text))))
            }
            _ => Err(UploadError::Refused(format!("HTTP {status}: {}", self.scrub(&text)))),
        }
    }

    /// The retry policy calls follow; uploads follow it too.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// `text` from the server with the deploy key, and its secret part after the last `|`,
    /// replaced by `[redacted]`.
    fn scrub(&self, text: &str) -> String {
        let key = self.authorization.to_str().unwrap_or_default().trim_start_matches("Convex ");
        let secret = key.rsplit('|').next().unwrap_or_default();
        let mut text = text.to_owned();
        for part in [key, secret] {
            if part.len() >= 8 && text.contains(part) {
                text = text.replace(part, "[redacted]");
            }
        }
        text
    }
}

enum Reply {
    /// HTTP 200: a result or a function error, in Convex's envelope.
    Done(String),
    /// Worth retrying; not before `retry_after` when the reply said so.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Failed(CallError),
}

fn decode_reply<T>(
    path: &str,
    text: &str,
    decode: &impl Fn(&RawValue) -> Result<T, String>,
) -> Result<T, CallError> {
    let not_convex = |detail: String| CallError::NotConvex { path: path.to_owned(), detail };
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| not_convex(e.to_string()))?;
    match (envelope.status, envelope.value, envelope.error_message) {
        ("success", Some(value), _) => decode(value).map_err(not_convex),
        // A function that returns nothing.
        ("success", None, _) => decode(RawValue::NULL).map_err(not_convex),
        ("error", _, message) => {
            Err(CallError::Function { path: path.to_owned(), message: message.unwrap_or_default() })
        }
        (status, ..) => Err(not_convex(format!("status `{status}`"))),
    }
}

/// A `Retry-After` header: seconds, or an HTTP date (RFC 9110 10.2.3); capped at
/// [`MAX_RETRY_AFTER`]. A date in the past is no wait; a value that is neither is ignored.
fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What went wrong on the wire, without the URL (it is in every message already) or headers.
fn transport_reason(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "connection failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

/// `{"path": ..., "args": <args>, "format": "convex_encoded_json"}` around args that are
/// already JSON text.
pub fn request_body(path: &str, args: &[u8]) -> Vec<u8> {
    request_body_with(path, args.len(), |body| body.extend_from_slice(args))
}

/// [`request_body`] with the arguments written in place by `write_args` (`args_len` of them,
/// about): a batch's documents are copied once, into the body.
pub fn request_body_with(
    path: &str,
    args_len: usize,
    write_args: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut body = Vec::with_capacity(args_len + path.len() + 64);
    body.extend_from_slice(b"{\"path\":");
    crate::json_text::write_string(&mut body, path);
    body.extend_from_slice(b",\"args\":");
    write_args(&mut body);
    body.extend_from_slice(b",\"format\":\"convex_encoded_json\"}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_told_once_per_burst_then_summarised() {
        let notice = RetryNotice::new("http://user:secret@127.0.0.1:3210");
        assert_eq!(notice.host, "127.0.0.1:3210");
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(notice.note(at(0)), Some(Notice::First));
        for ms in (100..5_000).step_by(100) {
            assert_eq!(notice.note(at(ms)), None, "{ms} ms");
        }
        assert_eq!(notice.note(at(5_000)), Some(Notice::Summary { retries: 50, seconds: 5 }));
        assert_eq!(notice.note(at(6_000)), None);
        // ten quiet seconds end the burst; the next retry starts a new one
        assert_eq!(notice.note(at(16_000)), Some(Notice::First));
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        // RFC 9110's example date is 1,445,412,480 s after the epoch.
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn the_request_body_is_convex_s_shape() {
        let body = request_body("migrate:upsert", br#"{"table":"users"}"#);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"path": "migrate:upsert", "args": {"table": "users"}, "format": "convex_encoded_json"})
        );
    }

    #[test]
    fn backoff_bound_doubles_from_the_base_up_to_the_max() {
        let policy = RetryPolicy {
            retries: 20,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let bounds: Vec<u64> =
            (0..8).map(|attempt| policy.backoff_bound(attempt).as_millis() as u64).collect();
        assert_eq!(bounds, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(policy.backoff_bound(u32::MAX), Duration::from_secs(2));

        // No overflow: a bound that would not fit a `Duration` is the max.
        let huge = RetryPolicy { retries: 1, base_delay: Duration::MAX, max_delay: Duration::MAX };
        assert_eq!(huge.backoff_bound(0), Duration::MAX);
        assert_eq!(huge.backoff_bound(40), Duration::MAX);
    }

    #[test]
    fn jittered_delays_spread_over_zero_to_the_bound() {
        let policy = RetryPolicy {
            retries: 20,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        for attempt in 0..8 {
            let bound = policy.backoff_bound(attempt);
            let delays: Vec<Duration> = (0..1000).map(|_| policy.delay(attempt)).collect();
            assert!(delays.iter().all(|&d| d <= bound), "attempt {attempt}: above {bound:?}");
            // Uniform over [0, bound]: 1000 draws all in one half has odds of 2^-1000.
            assert!(delays.iter().any(|&d| d < bound / 2), "attempt {attempt}: none below half");
            assert!(delays.iter().any(|&d| d > bound / 2), "attempt {attempt}: none above half");
        }
    }

    #[test]
    fn replies_decode_into_values_and_function_errors() {
        let decode =
            |raw: &RawValue| serde_json::from_str::<u32>(raw.get()).map_err(|e| e.to_string());
        assert_eq!(decode_reply("m:f", r#"{"status":"success","value":7}"#, &decode).unwrap(), 7);
        let error = decode_reply("m:f", r#"{"status":"error","errorMessage":"boom"}"#, &decode)
            .unwrap_err();
        assert!(matches!(error, CallError::Function { ref message, .. } if message == "boom"));
        let error = decode_reply("m:f", "<html>", &decode).unwrap_err();
        assert!(matches!(error, CallError::NotConvex { .. }));
    }
}
