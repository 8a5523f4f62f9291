//! Removing migrated files from a deployment (docs/files.md, "Rollback" and "Sync"): rollback
//! removes every file the migration recorded, sync those whose `storage.objects` rows are gone.
//!
//! Only files a `migrateFiles` record names are removed, each with its record, through the
//! generated `migrate:removeFiles` a batch at a time (by key and storage id, so a path recorded
//! again since with new bytes is left alone). Nothing is checkpointed: the records are the
//! state. A run stopped half-way left the records of the files it did not reach, and the next
//! run lists and removes those; a batch whose reply was lost names its files again when sent
//! again, and removes nothing twice. A file whose upload was cut off before its record is not
//! the migration's as far as this module knows, and stays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{BucketCount, FilesError, Recorded, list_recorded};
use crate::convex::client::{ConvexClient, FunctionKind};
use crate::output::{Reporter, Unit};

/// Files per `migrate:removeFiles` call: each removes a stored file and a record, two writes.
pub const MAX_PER_CALL: usize = 100;

/// What a rollback did with the migrated files.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FilesRollback {
    /// Files `migrateFiles` recorded when the rollback began.
    pub recorded: u64,
    /// Of those, removed with their records (`--dry-run`: that would be).
    pub removed: u64,
    /// Their bytes, as recorded.
    pub removed_bytes: u64,
    /// Per bucket, the files and bytes removed (or that would be).
    pub buckets: BTreeMap<String, BucketCount>,
}

/// Removes every file `migrateFiles` records, with its record, `batch` files per call
/// (`dry_run`: counts them, removes nothing). Files the application stored itself are not
/// recorded there and stay.
pub async fn rollback(
    client: &ConvexClient,
    dry_run: bool,
    batch: usize,
    reporter: &dyn Reporter,
) -> Result<FilesRollback, FilesError> {
    let mut records: Vec<Recorded> = list_recorded(client).await?.into_values().collect();
    records.sort_by(|a, b| (&a.bucket, &a.path).cmp(&(&b.bucket, &b.path)));
    let recorded = records.len() as u64;
    let gone = if dry_run { records } else { remove(client, records, batch, reporter).await? };
    let buckets = bucket_counts(&gone);
    Ok(FilesRollback {
        recorded,
        removed: gone.len() as u64,
        removed_bytes: buckets.values().map(|b| b.bytes).sum(),
        buckets,
    })
}

/// Files and recorded bytes per bucket.
fn bucket_counts(records: &[Recorded]) -> BTreeMap<String, BucketCount> {
    let mut buckets: BTreeMap<String, BucketCount> = BTreeMap::new();
    for record in records {
        let count = buckets.entry(record.bucket.clone()).or_default();
        count.files += 1;
        count.bytes += record.size as u64;
    }
    buckets
}

/// Removes `records`' files and records, `batch` per call; the records now gone (removed by
/// this run or before it). A record whose path was recorded again since (another storage id)
/// is left and not returned.
pub async fn remove(
    client: &ConvexClient,
    records: Vec<Recorded>,
    batch: usize,
    reporter: &dyn Reporter,
) -> Result<Vec<Recorded>, FilesError> {
    #[derive(Deserialize)]
    struct Removed {
        gone: Vec<String>,
    }
    let mut progress =
        reporter.table_started("files (removing)", Some(records.len() as u64), Unit::Files);
    let mut gone = Vec::with_capacity(records.len());
    let mut done = 0;
    for chunk in records.chunks(batch.clamp(1, MAX_PER_CALL)) {
        let files: Vec<_> =
            chunk.iter().map(|r| json!({"key": r.key(), "storageId": r.storage_id})).collect();
        let removed: Removed = client
            .call(FunctionKind::Mutation, "migrate:removeFiles", &json!({ "files": files }))
            .await
            .map_err(|source| FilesError::Remove { name: chunk[0].key(), source })?;
        let removed: std::collections::HashSet<String> = removed.gone.into_iter().collect();
        for record in chunk {
            if removed.contains(&record.key()) {
                gone.push(record.clone());
            } else {
                tracing::warn!(file = %record.key(), "recorded again since it was listed: kept");
            }
        }
        done += chunk.len() as u64;
        progress.rows(done);
    }
    progress.finished(done);
    Ok(gone)
}
