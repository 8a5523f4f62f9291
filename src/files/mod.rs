//! Supabase Storage objects into Convex file storage (docs/files.md). Owns the list of objects
//! (`storage.objects` as export wrote it), reading their bytes from the plan's `[files] source`
//! (`source`), uploading them the way Convex apps upload (an upload URL from the generated
//! `migrate:generateUploadUrl`, then the bytes, through `convex::client`), recording each in the
//! deployment's `migrateFiles` table, and checking them for verify.
//!
//! The deployment's `migrateFiles` records are what makes a run resumable: each is written only
//! after Convex holds the bytes (`recordFiles` checks size and SHA-256 against `_storage`), and a
//! later run skips every object recorded with its bytes still stored. Deleting `data/` loses
//! nothing.

pub mod remove;
pub mod source;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalog::TableName;
use crate::convex::client::{CallError, ConvexClient, FunctionKind, UploadError};
use crate::convex::limiter::LimiterStats;
use crate::data_dir::DataDir;
use crate::exit_code;
use crate::import::state::{State, StateError};
use crate::output::{Reporter, Unit};
pub use source::{FilesSource, SourceError};

/// One row of `storage.objects`: what to upload, where it belongs.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageObject {
    pub bucket: String,
    pub path: String,
    pub owner: Option<String>,
    /// `metadata.size`, when the row has it.
    pub size: Option<u64>,
    /// `metadata.mimetype`, when the row has it.
    pub content_type: Option<String>,
    /// What Supabase changes whenever the object's bytes change: the row's `version` (a new
    /// one per upload), else `metadata.eTag`; recorded with the file, so that sync knows an
    /// object unchanged without reading its bytes again.
    pub version: Option<String>,
}

impl StorageObject {
    pub fn name(&self) -> String {
        format!("{}/{}", self.bucket, self.path)
    }

    fn content_type(&self) -> &str {
        self.content_type.as_deref().unwrap_or("application/octet-stream")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(
        "the plan has `[files]` but the export holds no `storage.objects`: export the `storage` schema (`--schemas public,storage`, or `--tables storage.objects,…`)"
    )]
    NotExported,
    #[error("reading `{path}` line {line}: {message}")]
    Raw { path: String, line: u64, message: String },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("uploading `{name}`")]
    Call {
        name: String,
        #[source]
        source: CallError,
    },
    #[error("removing the migrated file `{name}` (and those after it in its batch)")]
    Remove {
        name: String,
        #[source]
        source: CallError,
    },
    #[error("uploading `{name}`: {message}")]
    Upload { name: String, message: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "{count} of the objects `storage.objects` lists are not in the files source `{url}`, e.g. `{first}`; every other object was uploaded"
    )]
    Missing { count: u64, first: String, url: String },
}

impl FilesError {
    pub fn exit_code(&self) -> u8 {
        match self {
            FilesError::NotExported | FilesError::Source(SourceError::Unsupported { .. }) => {
                exit_code::USAGE
            }
            FilesError::Raw { .. } | FilesError::State(_) => exit_code::LOCAL_IO,
            FilesError::Source(_) => exit_code::SOURCE_FAILURE,
            FilesError::Call { .. } | FilesError::Remove { .. } | FilesError::Upload { .. } => {
                exit_code::CONVEX_FAILURE
            }
            FilesError::Missing { .. } => exit_code::REJECTED_ROWS,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            FilesError::Source(SourceError::Open { .. } | SourceError::Read { .. }) => Some(
                "S3 credentials and endpoint come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
                 AWS_REGION and AWS_ENDPOINT_URL"
                    .into(),
            ),
            FilesError::Missing { .. } => Some(
                "put the missing objects into the source, or delete their rows from \
                 `storage.objects`, then run import again: what is uploaded is not sent twice"
                    .into(),
            ),
            FilesError::Call { source, .. } | FilesError::Remove { source, .. }
                if source.is_missing_function() =>
            {
                Some(
                    "deploy the Convex app with the `migrate.ts` that `migrate init` wrote for a \
                     plan with `[files]`"
                        .into(),
                )
            }
            _ => None,
        }
    }
}

/// The objects export read from `storage.objects`, in its order; rows without a bucket or a
/// name (folders' placeholders in old projects) are left out.
pub fn read_objects(data_dir: &DataDir) -> Result<Vec<StorageObject>, FilesError> {
    let path = data_dir.path(&DataDir::raw_file(&TableName::new("storage", "objects")));
    let text = std::fs::read_to_string(&path).map_err(|_| FilesError::NotExported)?;
    let (mut objects, mut unnamed) = (Vec::new(), 0u64);
    for (i, line) in text.lines().enumerate() {
        let raw = |message: String| FilesError::Raw {
            path: path.display().to_string(),
            line: i as u64 + 1,
            message,
        };
        let row: serde_json::Value = serde_json::from_str(line).map_err(|e| raw(e.to_string()))?;
        let text_of = |key: &str| row.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(bucket), Some(path)) = (text_of("bucket_id"), text_of("name")) else {
            unnamed += 1;
            continue;
        };
        let metadata = row.get("metadata");
        let size = metadata.and_then(|m| m.get("size")).and_then(|s| match s {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        let content_type = metadata
            .and_then(|m| m.get("mimetype").or_else(|| m.get("contentType")))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let etag = metadata.and_then(|m| m.get("eTag")).and_then(|v| v.as_str());
        let version = match (text_of("version").filter(|v| !v.is_empty()), etag) {
            (Some(version), _) => Some(format!("version:{version}")),
            (None, Some(etag)) if !etag.is_empty() => Some(format!("etag:{etag}")),
            _ => None,
        };
        objects.push(StorageObject {
            bucket,
            path,
            owner: text_of("owner").or_else(|| text_of("owner_id")),
            size,
            content_type,
            version,
        });
    }
    if unnamed > 0 {
        tracing::warn!("{unnamed} rows of `storage.objects` have no bucket or no name: no file");
    }
    Ok(objects)
}

/// Files and bytes per bucket (bytes as `storage.objects` states them), for `--dry-run`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BucketCount {
    pub files: u64,
    pub bytes: u64,
}

pub fn per_bucket(objects: &[StorageObject]) -> BTreeMap<String, BucketCount> {
    let mut buckets: BTreeMap<String, BucketCount> = BTreeMap::new();
    for object in objects {
        let count = buckets.entry(object.bucket.clone()).or_default();
        count.files += 1;
        count.bytes += object.size.unwrap_or(0);
    }
    buckets
}

/// What an upload run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilesReport {
    pub files: u64,
    /// Uploaded by this run.
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    /// Recorded by an earlier run with their bytes still stored: not sent again.
    pub resumed: u64,
    pub buckets: BTreeMap<String, BucketCount>,
    /// How many calls and uploads the client's limiter let in flight.
    pub concurrency: LimiterStats,
    /// Keys (`<bucket>/<path>`) of the objects recorded before with other bytes, uploaded again:
    /// a new storage id, which the documents naming them must be sent again to hold.
    pub replaced: BTreeSet<String>,
}

/// A `migrateFiles` record as `migrate:filesPage` returns it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub bucket: String,
    pub path: String,
    pub storage_id: String,
    pub size: f64,
    pub content_type: String,
    pub sha256: String,
    pub stored: Option<Stored>,
    /// The object's `version` (or eTag) when it was uploaded ([`StorageObject::version`]).
    #[serde(default)]
    pub version: Option<String>,
}

impl Recorded {
    /// Whether this record's bytes are still stored, with the size `storage.objects` states for
    /// `object` (when it states one): what import needs to skip the object.
    pub fn holds(&self, object: &StorageObject) -> bool {
        self.stored.as_ref().is_some_and(|s| s.size == self.size && s.sha256 == self.sha256)
            && object.size.is_none_or(|size| size as f64 == self.size)
    }

    /// `<bucket>/<path>`, the record's key in `migrateFiles`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.bucket, self.path)
    }
}

/// What Convex's `_storage` holds of a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub size: f64,
    pub sha256: String,
    pub content_type: Option<String>,
}

/// Every `migrateFiles` record, by bucket and path.
pub async fn recorded(
    client: &ConvexClient,
) -> Result<HashMap<(String, String), Recorded>, CallError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        page: Vec<Recorded>,
        is_done: bool,
        continue_cursor: String,
    }
    let mut all = HashMap::new();
    let mut cursor = serde_json::Value::Null;
    loop {
        let page: Page = client
            .call(
                FunctionKind::Query,
                "migrate:filesPage",
                &json!({"cursor": cursor, "numItems": 1000}),
            )
            .await?;
        for record in page.page {
            all.insert((record.bucket.clone(), record.path.clone()), record);
        }
        if page.is_done {
            return Ok(all);
        }
        cursor = json!(page.continue_cursor);
    }
}

/// [`recorded`], its error naming the function.
pub(crate) async fn list_recorded(
    client: &ConvexClient,
) -> Result<HashMap<(String, String), Recorded>, FilesError> {
    recorded(client)
        .await
        .map_err(|source| FilesError::Call { name: "migrate:filesPage".into(), source })
}

/// What an import's upload will send: every object not already recorded with its bytes
/// stored ([`plan_upload`]), sent by [`UploadPlan::send`]. Between the two the caller learns
/// which recorded objects get new bytes (`report.replaced`), before any of them is sent.
pub struct UploadPlan {
    todo: Vec<StorageObject>,
    pub report: FilesReport,
    state: Arc<Mutex<State>>,
}

/// Lists the deployment's records (recording first the files a killed run sent) and sorts
/// `objects` into those to send and those recorded with their bytes.
pub async fn plan_upload(
    client: &ConvexClient,
    source: &Arc<FilesSource>,
    objects: &[StorageObject],
    state: State,
) -> Result<UploadPlan, FilesError> {
    let state = Arc::new(Mutex::new(state));
    let mut recorded = list_recorded(client).await?;
    adopt_sent(&mut recorded, client, source, objects, &state).await?;
    let mut report = FilesReport {
        files: objects.len() as u64,
        buckets: per_bucket(objects),
        ..FilesReport::default()
    };
    let mut todo = Vec::new();
    for object in objects {
        let record = recorded.get(&(object.bucket.clone(), object.path.clone()));
        match record {
            Some(record) if record.holds(object) => report.resumed += 1,
            Some(_) => {
                report.replaced.insert(object.name());
                todo.push(object.clone());
            }
            None => todo.push(object.clone()),
        }
    }
    Ok(UploadPlan { todo, report, state })
}

impl UploadPlan {
    /// Uploads the objects to send, at most `concurrency` at once, each streamed from the source
    /// and retried like batches. An object the source lacks is counted and named in the error at
    /// the end, after every other object is uploaded.
    pub async fn send(
        self,
        client: &ConvexClient,
        source: &Arc<FilesSource>,
        concurrency: usize,
        reporter: &dyn Reporter,
    ) -> Result<FilesReport, FilesError> {
        let UploadPlan { todo, mut report, state } = self;
        let sent = send_all(client, source, todo, concurrency, &state, reporter).await?;
        report.uploaded = sent.files;
        report.uploaded_bytes = sent.bytes;
        report.concurrency = client.concurrency_stats();
        Ok(report)
    }
}

/// Files and bytes one [`send_all`] uploaded.
pub(crate) struct Sent {
    pub files: u64,
    pub bytes: u64,
}

/// Uploads `todo`, at most `concurrency` at once, each streamed from the source and retried like
/// batches, with progress in files and bytes. An object the source lacks is counted and named
/// in the error at the end, after every other object is uploaded.
pub(crate) async fn send_all(
    client: &ConvexClient,
    source: &Arc<FilesSource>,
    todo: Vec<StorageObject>,
    concurrency: usize,
    state: &Arc<Mutex<State>>,
    reporter: &dyn Reporter,
) -> Result<Sent, FilesError> {
    let total_bytes: u64 = todo.iter().map(|o| o.size.unwrap_or(0)).sum();
    let mut files_bar = reporter.table_started("files", Some(todo.len() as u64), Unit::Files);
    let mut bytes_bar = reporter.table_started("files (bytes)", Some(total_bytes), Unit::Bytes);
    let mut uploads = futures_util::stream::iter(todo)
        .map(|object| {
            let (client, source, state) = (client.clone(), source.clone(), state.clone());
            async move {
                let result = upload_one(&client, &source, &object, &state).await;
                (object, result)
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut sent = Sent { files: 0, bytes: 0 };
    let (mut missing, mut first_missing) = (0, None);
    while let Some((object, result)) = uploads.next().await {
        match result {
            Ok(size) => {
                sent.files += 1;
                sent.bytes += size;
                files_bar.rows(sent.files);
                bytes_bar.rows(sent.bytes);
            }
            Err(FilesError::Source(SourceError::Missing { .. })) => {
                tracing::warn!(object = %object.name(), "not in the files source");
                missing += 1;
                first_missing.get_or_insert_with(|| object.name());
            }
            Err(e) => return Err(e),
        }
    }
    files_bar.finished(sent.files);
    bytes_bar.finished(sent.bytes);
    if let Some(first) = first_missing {
        return Err(FilesError::Missing { count: missing, first, url: source.url().to_owned() });
    }
    Ok(sent)
}

/// One object: an upload URL, the bytes streamed there (hashed on the way), then its record.
/// A transient failure starts again with a new URL and the bytes read again.
async fn upload_one(
    client: &ConvexClient,
    source: &FilesSource,
    object: &StorageObject,
    state: &Mutex<State>,
) -> Result<u64, FilesError> {
    let name = object.name();
    let since = now_ms();
    lock(state).file_sending(&object.bucket, &object.path, since)?;
    let call_error = |source| FilesError::Call { name: name.clone(), source };
    let retry = client.retry_policy();
    let mut attempt = 0;
    let (storage_id, size, sha256) = loop {
        let url: String = client
            .call(FunctionKind::Mutation, "migrate:generateUploadUrl", &json!({}))
            .await
            .map_err(call_error)?;
        let opened = source.open_object(&object.bucket, &object.path).await?;
        let digest = source::Digest::default();
        let body = digest.wrap(opened.stream);
        let failure = match client.upload(&url, object.content_type(), opened.size, body).await {
            Ok(storage_id) => {
                let (size, sha256) = digest.finish();
                if size == opened.size {
                    break (storage_id, size, sha256);
                }
                format!("read {size} of {} bytes", opened.size)
            }
            Err(UploadError::Transient(reason)) => {
                // Every byte went out: Convex may have stored them and the reply been lost.
                // A file with their SHA-256 that nobody records is theirs; sending them again
                // would leave it behind.
                let (size, sha256) = digest.finish();
                if size == opened.size
                    && let Some(storage_id) =
                        find_stored(client, object, size, &sha256, since).await?
                {
                    break (storage_id, size, sha256);
                }
                reason
            }
            Err(UploadError::Refused(message)) => {
                return Err(FilesError::Upload { name, message });
            }
        };
        if attempt >= retry.retries {
            return Err(FilesError::Upload {
                name,
                message: format!("{failure} ({} attempts)", attempt + 1),
            });
        }
        tracing::debug!(object = %name, attempt, reason = %failure, "retrying the upload");
        tokio::time::sleep(retry.delay(attempt)).await;
        attempt += 1;
    };
    record(client, object, &storage_id, size, &sha256, state).await?;
    Ok(size)
}

/// Records `object` as stored under `storage_id`, in the deployment, then in the state.
async fn record(
    client: &ConvexClient,
    object: &StorageObject,
    storage_id: &str,
    size: u64,
    sha256: &str,
    state: &Mutex<State>,
) -> Result<(), FilesError> {
    let mut file = json!({
        "bucket": object.bucket,
        "path": object.path,
        "owner": object.owner,
        "storageId": storage_id,
        "size": size as f64,
        "contentType": object.content_type(),
        "sha256": sha256,
    });
    if let Some(version) = &object.version {
        file["version"] = json!(version);
    }
    let record = json!({ "files": [file] });
    let _: serde_json::Value = client
        .call(FunctionKind::Mutation, "migrate:recordFiles", &record)
        .await
        .map_err(|source| FilesError::Call { name: object.name(), source })?;
    let (bucket, path, content_type) = (&object.bucket, &object.path, object.content_type());
    lock(state).file_recorded(bucket, path, storage_id, size, content_type, sha256)?;
    Ok(())
}

/// Files a killed run sent but did not record: when Convex stored their bytes (a stored file
/// nobody records, with the source's SHA-256 and size, stored since the run began sending),
/// they are recorded now instead of being sent twice. Reads each such object once more.
pub(crate) async fn adopt_sent(
    recorded: &mut HashMap<(String, String), Recorded>,
    client: &ConvexClient,
    source: &FilesSource,
    objects: &[StorageObject],
    state: &Mutex<State>,
) -> Result<(), FilesError> {
    let sending = lock(state).files_sending()?;
    let by_name: HashMap<(&str, &str), &StorageObject> =
        objects.iter().map(|o| ((o.bucket.as_str(), o.path.as_str()), o)).collect();
    for file in sending {
        let key = (file.bucket.clone(), file.path.clone());
        let Some(object) = by_name.get(&(file.bucket.as_str(), file.path.as_str())) else {
            continue;
        };
        let (size, sha256) = match source.digest(&file.bucket, &file.path).await {
            Ok(digest) => digest,
            Err(SourceError::Missing { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if recorded.get(&key).is_some_and(|r| r.sha256 == sha256) {
            continue;
        }
        let found = find_stored(client, object, size, &sha256, file.since_ms).await?;
        if let Some(storage_id) = found {
            tracing::info!(object = %object.name(), "recording the bytes a killed run sent");
            record(client, object, &storage_id, size, &sha256, state).await?;
            let content_type = object.content_type().to_owned();
            let stored =
                Some(Stored { size: size as f64, sha256: sha256.clone(), content_type: None });
            recorded.insert(
                key.clone(),
                Recorded {
                    bucket: key.0,
                    path: key.1,
                    storage_id,
                    size: size as f64,
                    content_type,
                    sha256,
                    stored,
                    version: object.version.clone(),
                },
            );
        }
    }
    Ok(())
}

/// A stored file nobody records, holding these bytes, stored since `since_ms` (less a minute:
/// the deployment's clock is not ours).
async fn find_stored(
    client: &ConvexClient,
    object: &StorageObject,
    size: u64,
    sha256: &str,
    since_ms: i64,
) -> Result<Option<String>, FilesError> {
    let args = json!({"sha256": sha256, "size": size as f64, "since": (since_ms - 60_000) as f64});
    client
        .call(FunctionKind::Query, "migrate:findStored", &args)
        .await
        .map_err(|source| FilesError::Call { name: object.name(), source })
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().expect("no thread panics holding the state")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Verify's part for files: every object recorded, its bytes stored in Convex with the size and
/// SHA-256 of the source's bytes (read again). One sentence per problem.
pub async fn verify(
    client: &ConvexClient,
    source: Arc<FilesSource>,
    objects: &[StorageObject],
    concurrency: usize,
) -> Result<Vec<String>, FilesError> {
    let recorded = Arc::new(list_recorded(client).await?);
    let mut checks = futures_util::stream::iter(objects.to_vec())
        .map(|object| {
            let (source, recorded) = (source.clone(), recorded.clone());
            async move { check_one(&source, &recorded, &object).await }
        })
        .buffered(concurrency.max(1));
    let mut problems = Vec::new();
    while let Some(problem) = checks.next().await {
        problems.extend(problem?);
    }
    let known: std::collections::HashSet<(&str, &str)> =
        objects.iter().map(|o| (o.bucket.as_str(), o.path.as_str())).collect();
    let mut extra: Vec<_> = recorded
        .keys()
        .filter(|(b, p)| !known.contains(&(b.as_str(), p.as_str())))
        .map(|(b, p)| format!("file `{b}/{p}` is in Convex but not in `storage.objects`"))
        .collect();
    extra.sort();
    problems.extend(extra);
    Ok(problems)
}

async fn check_one(
    source: &FilesSource,
    recorded: &HashMap<(String, String), Recorded>,
    object: &StorageObject,
) -> Result<Option<String>, FilesError> {
    let name = object.name();
    let Some(record) = recorded.get(&(object.bucket.clone(), object.path.clone())) else {
        return Ok(Some(format!("file `{name}` is missing in Convex")));
    };
    let Some(stored) = &record.stored else {
        return Ok(Some(format!(
            "file `{name}`: its storage id {} holds no file in Convex",
            record.storage_id
        )));
    };
    let (size, sha256) = match source.digest(&object.bucket, &object.path).await {
        Ok(digest) => digest,
        Err(SourceError::Missing { .. }) => {
            return Ok(Some(format!("file `{name}` is not in the files source any more")));
        }
        Err(e) => return Err(e.into()),
    };
    if stored.size != size as f64 || stored.sha256 != sha256 {
        return Ok(Some(format!(
            "file `{name}` differs: the source has {size} bytes with SHA-256 {sha256}, Convex stores {} bytes with SHA-256 {}",
            stored.size, stored.sha256
        )));
    }
    if let Some(stored_type) = &stored.content_type
        && stored_type != &record.content_type
    {
        return Ok(Some(format!(
            "file `{name}`: Convex stores it as `{stored_type}`, recorded as `{}`",
            record.content_type
        )));
    }
    Ok(None)
}
