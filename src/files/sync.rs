//! `migrate sync`'s part for files (docs/files.md, "Sync"): makes the deployment's migrated
//! files those `storage.objects` lists now, with the source's bytes.
//!
//! The difference is with what the deployment records (`migrateFiles`), not with a local record:
//! an object with no record is **new**; one whose record's bytes are no longer stored, whose
//! size `storage.objects` states otherwise, or whose bytes in the source (read again and
//! hashed) have another SHA-256 is **changed**; a record whose object `storage.objects` no
//! longer lists is **gone**. New and changed objects are uploaded by import's own machinery
//! (`recordFiles` gives a changed path its new file and deletes the old one); gone files are
//! removed with their records by [`super::remove`], unless `--no-deletes`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde::Serialize;

use super::{
    FilesError, FilesSource, Recorded, SourceError, StorageObject, adopt_sent, list_recorded,
    remove, send_all,
};
use crate::convex::client::ConvexClient;
use crate::import::state::State;
use crate::output::Reporter;

/// What sync did (or, `dry_run`, would do) with the files.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FilesSync {
    pub dry_run: bool,
    /// Objects `storage.objects` lists.
    pub files: u64,
    /// Objects with no record: uploaded.
    pub new: u64,
    /// Objects recorded with other bytes (or whose stored file is gone): uploaded again.
    pub changed: u64,
    /// Objects recorded with their bytes: not sent.
    pub unchanged: u64,
    /// Records whose object `storage.objects` no longer lists.
    pub gone: u64,
    /// Uploaded by this run, and their bytes.
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    /// Gone files removed with their records by this run, and their recorded bytes.
    pub deleted: u64,
    pub deleted_bytes: u64,
    /// Whether gone files were removed (`--no-deletes` leaves them in Convex).
    pub deletes_sent: bool,
    /// Per bucket: what is to upload and to delete.
    pub buckets: BTreeMap<String, BucketSync>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BucketSync {
    /// New and changed objects, and their bytes as `storage.objects` states them.
    pub upload: u64,
    pub upload_bytes: u64,
    /// Gone files, and their recorded bytes.
    pub delete: u64,
    pub delete_bytes: u64,
}

/// The difference, and what was done of it so far.
pub struct Pending {
    upload: Vec<StorageObject>,
    gone: Vec<Recorded>,
    /// Keys (`<bucket>/<path>`) of the recorded objects whose bytes changed: their upload gives
    /// them a new storage id, which the documents naming them must be sent again to hold.
    pub replaced: HashSet<String>,
    pub report: FilesSync,
}

/// The difference between `objects` (with the source's bytes) and the deployment's records.
/// With `state` (not a dry run), files a killed run sent but did not record are recorded
/// first, as import does.
pub async fn diff(
    client: &ConvexClient,
    source: &Arc<FilesSource>,
    objects: &[StorageObject],
    concurrency: usize,
    state: Option<&Arc<Mutex<State>>>,
) -> Result<Pending, FilesError> {
    let mut recorded = list_recorded(client).await?;
    if let Some(state) = state {
        adopt_sent(&mut recorded, client, source, objects, state).await?;
    }
    let mut report =
        FilesSync { dry_run: state.is_none(), files: objects.len() as u64, ..FilesSync::default() };
    let recorded = Arc::new(recorded);
    // The bytes of each object recorded with them, read again (a replaced object keeps its
    // path, and often its size); the others need no reading.
    let mut checks = futures_util::stream::iter(objects.to_vec())
        .map(|object| {
            let (source, recorded) = (source.clone(), recorded.clone());
            async move {
                let record = recorded.get(&(object.bucket.clone(), object.path.clone()));
                let change = match record {
                    None => Change::New,
                    Some(record) if !record.holds(&object) => Change::Changed,
                    // Supabase gives an object a new version (and eTag) with new bytes: the
                    // same one recorded is the same bytes, not read again.
                    Some(record)
                        if object.version.is_some() && record.version == object.version =>
                    {
                        Change::Unchanged
                    }
                    Some(record) => match source.digest(&object.bucket, &object.path).await {
                        Ok((_, sha256)) if sha256 == record.sha256 => Change::Unchanged,
                        Ok(_) => Change::Changed,
                        Err(SourceError::Missing { .. }) => {
                            tracing::warn!(
                                object = %object.name(),
                                "not in the files source any more: its file in Convex is kept"
                            );
                            Change::Unchanged
                        }
                        Err(e) => return Err(FilesError::from(e)),
                    },
                };
                Ok((object, change))
            }
        })
        .buffered(concurrency.max(1));
    let mut upload = Vec::new();
    let mut replaced = HashSet::new();
    while let Some(checked) = checks.next().await {
        let (object, change) = checked?;
        match change {
            Change::Unchanged => {
                report.unchanged += 1;
                continue;
            }
            Change::New => report.new += 1,
            Change::Changed => {
                report.changed += 1;
                replaced.insert(object.name());
            }
        }
        let bucket = report.buckets.entry(object.bucket.clone()).or_default();
        bucket.upload += 1;
        bucket.upload_bytes += object.size.unwrap_or(0);
        upload.push(object);
    }
    let listed: HashSet<(&str, &str)> =
        objects.iter().map(|o| (o.bucket.as_str(), o.path.as_str())).collect();
    let mut gone: Vec<Recorded> = recorded
        .values()
        .filter(|r| !listed.contains(&(r.bucket.as_str(), r.path.as_str())))
        .cloned()
        .collect();
    gone.sort_by(|a, b| (&a.bucket, &a.path).cmp(&(&b.bucket, &b.path)));
    for record in &gone {
        let bucket = report.buckets.entry(record.bucket.clone()).or_default();
        bucket.delete += 1;
        bucket.delete_bytes += record.size as u64;
    }
    report.gone = gone.len() as u64;
    Ok(Pending { upload, gone, replaced, report })
}

enum Change {
    New,
    Changed,
    Unchanged,
}

impl Pending {
    /// Whether anything is to upload.
    pub fn to_upload(&self) -> bool {
        !self.upload.is_empty()
    }

    /// Whether any recorded file's object is gone from `storage.objects`.
    pub fn to_delete(&self) -> bool {
        !self.gone.is_empty()
    }

    /// Uploads the new and changed objects.
    pub async fn upload(
        &mut self,
        client: &ConvexClient,
        source: &Arc<FilesSource>,
        concurrency: usize,
        state: &Arc<Mutex<State>>,
        reporter: &dyn Reporter,
    ) -> Result<(), FilesError> {
        let todo = std::mem::take(&mut self.upload);
        let sent = send_all(client, source, todo, concurrency, state, reporter).await?;
        self.report.uploaded = sent.files;
        self.report.uploaded_bytes = sent.bytes;
        Ok(())
    }

    /// Removes the gone files with their records, `batch` per call.
    pub async fn delete(
        &mut self,
        client: &ConvexClient,
        batch: usize,
        reporter: &dyn Reporter,
    ) -> Result<(), FilesError> {
        let gone = std::mem::take(&mut self.gone);
        let removed = remove::remove(client, gone, batch, reporter).await?;
        self.report.deleted = removed.len() as u64;
        self.report.deleted_bytes = removed.iter().map(|r| r.size as u64).sum();
        self.report.deletes_sent = true;
        Ok(())
    }
}
