//! `migrate sync`: after a new export and transform, makes a deployment equal to the new
//! transformed data by sending only its difference with what the deployment last received
//! (`import::sent`, recorded by every completed import or sync). docs/sync.md.
//!
//! - [`diff`]: one table's inserted, updated, unchanged and deleted documents, in bounded memory.
//!
//! The documents to send are written as a transformed-like directory (`sync/transformed/`
//! beside the deployment's state) and sent by import itself, with its own state
//! (`sync/state.sqlite`): upserts by legacy id with references resolved on the server, the
//! second pass for cycle references, checkpoints, so an interrupted sync resumes (the diff is
//! made again, byte for byte the same). Deletes follow, children first (`migrate:remove`, by
//! legacy id: safe to send twice). Last, the deployment's import state is marked complete for
//! the new files (a later `import` sends nothing) and they become the new "last sent".
//!
//! With `[files]`, the Supabase Storage objects follow the same course (`files::sync`): new and
//! changed objects are uploaded before the documents are sent (documents may name them), files
//! whose `storage.objects` rows are gone are removed after the documents' deletes.

pub mod diff;

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use self::diff::TableDiff;
use crate::convex::client::FunctionKind;
use crate::data_dir::{DataDir, DataDirError, JsonlWriter};
use crate::files::sync::{FilesSync, Pending};
use crate::files::{FilesError, FilesSource};
use crate::import::sent::{self, SentRecord};
use crate::import::state::place::StatePlace;
use crate::import::state::{Acked, Checkpointer, ImportReject, Pass, State};
use crate::import::transformed::TransformedFile;
use crate::import::{self, ImportError, ImportOptions, Inputs};
use crate::output::Reporter;
use crate::plan::codegen::STORAGE_TABLE;

/// Legacy ids per `migrate:remove` call.
const DELETE_BATCH: usize = 100;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub import: ImportOptions,
    /// Delete the documents whose source rows are gone (`--no-deletes` turns it off).
    pub deletes: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub plan_hash: String,
    pub tables: Vec<TableSync>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Documents sent by upserts (this run; a resumed sync counts what it sent itself).
    pub sent: u64,
    pub rejected: u64,
    /// Whether deletes were sent (`--no-deletes` leaves them in Convex).
    pub deletes_sent: bool,
    /// Seconds spent diffing, sending documents, deleting, and in all.
    pub diff_seconds: f64,
    pub send_seconds: f64,
    pub delete_seconds: f64,
    pub seconds: f64,
    /// The files of `[files]`: uploaded, deleted, unchanged (none without `[files]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesSync>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableSync {
    pub table: String,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// `sync/` beside the deployment's state: the diff's spill, the documents to send and their
/// import state.
fn work_dir(place: &StatePlace) -> PathBuf {
    place.state.with_file_name("sync")
}

/// Diffs every table of `inputs` against what the deployment last received; `work` takes the
/// spill and the deletes files.
fn diff_all(
    inputs: &Inputs,
    place: &StatePlace,
    sent: &SentRecord,
    data_dir: &DataDir,
    work: &Path,
    replaced: &HashSet<String>,
) -> Result<Vec<TableDiff>, ImportError> {
    crate::data_dir::create_private_dir(work)?;
    // Documents Convex refused last time are sent again, changed or not; so are those naming a
    // file whose bytes changed (a new storage id for an unchanged line).
    let refused = State::open_read_only(&place.state)?;
    let mut diffs = Vec::with_capacity(inputs.order.len());
    for step in &inputs.order {
        let mut resend: HashSet<String> = match &refused {
            Some(state) => state.rejects(&step.table)?.into_iter().map(|r| r.legacy_id).collect(),
            None => HashSet::new(),
        };
        if !replaced.is_empty() {
            resend.extend(naming_files(data_dir, inputs, step, replaced)?);
        }
        let report = inputs.manifest.tables.iter().find(|t| t.table == step.table);
        let Some(new) = report.and_then(|r| TransformedFile::of(data_dir, r)) else {
            diffs.push(TableDiff::default());
            continue;
        };
        let old = sent.file(place, &step.table);
        let old_field = sent
            .tables
            .iter()
            .find(|t| t.table == step.table && !t.legacy_field.is_empty())
            .map_or(step.legacy_field.as_str(), |t| t.legacy_field.as_str());
        // The old file's ids are read with the field it had; a renamed field makes every
        // document new to the diff (and the documents Convex holds under the old field stay).
        let old = old.filter(|_| old_field == step.legacy_field);
        diffs.push(diff::diff(&step.table, old.as_ref(), &new, &step.legacy_field, &resend, work)?);
    }
    for gone in sent.tables.iter().filter(|t| !inputs.order.iter().any(|s| s.table == t.table)) {
        tracing::warn!(
            "table `{}` was sent before but is not in the plan any more: sync leaves its documents",
            gone.table
        );
    }
    Ok(diffs)
}

/// Where a sync keeps the keys of the files it replaces until its documents are sent.
const REPLACED_FILES: &str = "replaced-files.json";

/// The keys of the objects whose files are replaced (new bytes, so a new storage id): those of
/// `pending`, and those an earlier sync killed after uploading them left in `work`. With
/// `keep`, written there before any upload: a resumed sync finds those files holding their
/// bytes, unchanged, and would not otherwise know the documents naming them still hold the old
/// ids. `work` goes when the sync completes.
fn replaced_files(
    work: &Path,
    pending: Option<&Pending>,
    keep: bool,
) -> Result<HashSet<String>, ImportError> {
    let path = work.join(REPLACED_FILES);
    let mut keys: HashSet<String> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ImportError::BadLine {
            path: path.clone(),
            line: 1,
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => return Err(DataDirError::new("read", &path)(e).into()),
    };
    let new = pending.map_or(0, |p| p.replaced.difference(&keys).count());
    keys.extend(pending.into_iter().flat_map(|p| p.replaced.iter().cloned()));
    if keep && new > 0 {
        crate::data_dir::create_private_dir(work)?;
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        let text = serde_json::to_vec(&sorted).expect("strings serialize");
        let temporary = work.join(format!("{REPLACED_FILES}.tmp"));
        std::fs::write(&temporary, text).map_err(DataDirError::new("write", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(DataDirError::new("rename", &path))?;
    }
    Ok(keys)
}

/// The legacy ids of `step`'s documents (in the new transformed file) with a file field naming
/// one of `keys` (a reference to `_storage` whose legacy id is the object's key).
pub(crate) fn naming_files(
    data_dir: &DataDir,
    inputs: &Inputs,
    step: &import::order::TableStep,
    keys: &HashSet<String>,
) -> Result<Vec<String>, ImportError> {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(default, borrow)]
        refs: std::collections::BTreeMap<Cow<'a, str>, Target<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Target<'a> {
        #[serde(borrow)]
        table: Cow<'a, str>,
        #[serde(borrow, rename = "legacyId")]
        legacy_id: Cow<'a, str>,
    }
    if step.file_fields.is_empty() {
        return Ok(Vec::new());
    }
    let report = inputs.manifest.tables.iter().find(|t| t.table == step.table);
    let Some(file) = report.and_then(|r| TransformedFile::of(data_dir, r)) else {
        return Ok(Vec::new());
    };
    let storage = format!("\"{STORAGE_TABLE}\"");
    let finder = memchr::memmem::Finder::new(storage.as_bytes());
    let mut naming = Vec::new();
    file.for_each_line(|line, text| {
        if finder.find(text).is_none() {
            return Ok(true);
        }
        let bad = |reason: String| ImportError::BadLine { path: file.path.clone(), line, reason };
        let parsed: Line<'_> = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let names = |(field, t): (&Cow<'_, str>, &Target<'_>)| {
            step.file_fields.iter().any(|f| f == field)
                && t.table == STORAGE_TABLE
                && keys.contains(&*t.legacy_id)
        };
        if parsed.refs.iter().any(names) {
            let legacy_id = import::batches::legacy_id_of(text, &step.legacy_field).map_err(bad)?;
            naming.extend(legacy_id);
        }
        Ok(true)
    })?;
    Ok(naming)
}

fn no_record(place: &StatePlace) -> ImportError {
    ImportError::NoSyncBase {
        reason: format!(
            "no completed import of this deployment is recorded (`{}`)",
            sent::dir(place).join("manifest.json").display()
        ),
    }
}

fn report(inputs: &Inputs, diffs: &[TableDiff], dry_run: bool) -> SyncReport {
    let tables: Vec<TableSync> = inputs
        .order
        .iter()
        .zip(diffs)
        .map(|(step, d)| TableSync {
            table: step.table.clone(),
            inserted: d.inserted,
            updated: d.updated,
            deleted: d.deleted,
            unchanged: d.unchanged,
            rejected: 0,
        })
        .collect();
    SyncReport {
        dry_run,
        plan_hash: inputs.manifest.plan_hash.clone(),
        inserted: tables.iter().map(|t| t.inserted).sum(),
        updated: tables.iter().map(|t| t.updated).sum(),
        deleted: tables.iter().map(|t| t.deleted).sum(),
        unchanged: tables.iter().map(|t| t.unchanged).sum(),
        tables,
        sent: 0,
        rejected: 0,
        deletes_sent: false,
        diff_seconds: 0.0,
        send_seconds: 0.0,
        delete_seconds: 0.0,
        seconds: 0.0,
        files: None,
    }
}

/// `--dry-run`: the counts per table, nothing sent, nothing recorded. With `[files]`, the
/// files to upload and delete, from the deployment's records (read, never written).
pub async fn dry_run(
    data_dir: &DataDir,
    inputs: &Inputs,
    options: &ImportOptions,
) -> Result<SyncReport, ImportError> {
    let place = &options.place;
    let sent = sent::read(place)?.ok_or_else(|| no_record(place))?;
    let files = files_diff(data_dir, inputs, options, None).await?;
    let replaced = replaced_files(&work_dir(place), files.as_ref().map(|f| &f.pending), false)?;
    let work = work_dir(place).join("dry-run");
    let diffs = diff_all(inputs, place, &sent, data_dir, &work, &replaced);
    remove_dir(&work)?;
    let mut report = report(inputs, &diffs?, true);
    report.files = files.map(|f| f.pending.report);
    Ok(report)
}

/// What sync's part for files works with: the source, a client, the difference.
struct FilesWork {
    source: Arc<FilesSource>,
    client: crate::convex::client::ConvexClient,
    pending: Pending,
}

/// The difference of `storage.objects` and the source's bytes with the deployment's records,
/// when the plan has `[files]`; with `state`, files a killed run sent are recorded first.
async fn files_diff(
    data_dir: &DataDir,
    inputs: &Inputs,
    options: &ImportOptions,
    state: Option<&Arc<Mutex<State>>>,
) -> Result<Option<FilesWork>, ImportError> {
    let Some(plan) = &inputs.files else { return Ok(None) };
    let objects = crate::files::read_objects(data_dir)?;
    let source = Arc::new(FilesSource::open(&plan.source, &plan.at).map_err(FilesError::from)?);
    let client = options.target.client()?.with_concurrency(options.concurrency);
    let pending =
        crate::files::sync::diff(&client, &source, &objects, options.concurrency, state).await?;
    Ok(Some(FilesWork { source, client, pending }))
}

/// Runs the sync.
pub async fn sync(
    data_dir: &DataDir,
    inputs: &Inputs,
    options: &SyncOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<SyncReport, ImportError> {
    let started = Instant::now();
    let place = &options.import.place;
    let sent = sent::read(place)?.ok_or_else(|| no_record(place))?;
    // The import the record is of must still be the deployment's (a rollback forgets it), even
    // when nothing changed and nothing is sent.
    if marker(place)?.is_none() {
        return Err(no_record(place));
    }
    // With `[files]` the deployment is read anyway (its `migrateFiles` records): its base is
    // checked first, before a file a killed run sent is recorded. Files are diffed before the
    // documents: a replaced file sends the documents naming it again.
    let files_state = match &inputs.files {
        Some(_) => {
            check_base(&options.import, place).await?;
            Some(Arc::new(Mutex::new(State::open(&place.state)?)))
        }
        None => None,
    };
    let mut files = files_diff(data_dir, inputs, &options.import, files_state.as_ref()).await?;
    let work = work_dir(place);
    let replaced = replaced_files(&work, files.as_ref().map(|f| &f.pending), true)?;
    let diffs = diff_all(inputs, place, &sent, data_dir, &work, &replaced)?;
    let mut report = report(inputs, &diffs, false);
    report.diff_seconds = started.elapsed().as_secs_f64();

    let files_to_upload = files.as_ref().is_some_and(|f| f.pending.to_upload());
    let files_to_delete = options.deletes && files.as_ref().is_some_and(|f| f.pending.to_delete());

    let to_send = diffs.iter().any(|d| !d.send.is_empty());
    let to_delete = options.deletes && diffs.iter().any(|d| d.deletes.is_some());
    if (to_send || to_delete) && files_state.is_none() {
        check_base(&options.import, place).await?;
    }
    // Files first: the documents sent next may name them.
    if let (Some(files), Some(state)) = (&mut files, &files_state)
        && files_to_upload
    {
        let concurrency = options.import.concurrency;
        let (client, source) = (&files.client, &files.source);
        files.pending.upload(client, source, concurrency, state, reporter.as_ref()).await?;
    }
    drop(files_state);
    let mut delta_rejects: Vec<Vec<ImportReject>> = vec![Vec::new(); diffs.len()];
    if to_send {
        let sending = Instant::now();
        let delta = write_delta(data_dir, inputs, &diffs, &work)?;
        let delta_options = ImportOptions {
            place: StatePlace {
                identity: place.identity.clone(),
                state: work.join("state.sqlite"),
                rejects_dir: work.join("rejects"),
                spill: place.spill.clone(),
            },
            // The sync's own state: another diff (new data, or a plan) starts it over.
            force: true,
            record_sent: false,
            ..options.import.clone()
        };
        let imported =
            import::import(&DataDir::new(&work), &delta, &delta_options, reporter.clone()).await?;
        report.sent = imported.sent;
        let state = State::open(&delta_options.place.state)?;
        for ((step, diff), rejects) in inputs.order.iter().zip(&diffs).zip(&mut delta_rejects) {
            // Lines of the sent file are lines of the new file: `diff.send[line - 1]`.
            *rejects = state
                .rejects(&step.table)?
                .into_iter()
                .map(|r| ImportReject { line: diff.send[r.line as usize - 1].0, ..r })
                .collect();
        }
        report.send_seconds = sending.elapsed().as_secs_f64();
    }
    if to_delete {
        let deleting = Instant::now();
        delete_gone(&options.import, inputs, &diffs).await?;
        report.deletes_sent = true;
        report.delete_seconds = deleting.elapsed().as_secs_f64();
    }
    // Files last: the documents that named the gone ones are deleted or changed by now.
    if let Some(files) = &mut files
        && files_to_delete
    {
        let deleting = Instant::now();
        let batch = options.import.batch_size;
        files.pending.delete(&files.client, batch, reporter.as_ref()).await?;
        report.delete_seconds += deleting.elapsed().as_secs_f64();
    }
    report.files = files.map(|f| f.pending.report);
    for (table, rejects) in report.tables.iter_mut().zip(&delta_rejects) {
        table.rejected = rejects.len() as u64;
    }
    report.rejected = delta_rejects.iter().map(|r| r.len() as u64).sum();
    mark_complete(inputs, place, delta_rejects)?;
    sent::record(data_dir, &inputs.manifest, &inputs.order, place)?;
    remove_dir(&work)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Refuses to send a difference to a deployment that does not hold the import it is the
/// difference from (emptied, or replaced at the same URL): the marker of that import must be
/// in its ledger.
async fn check_base(options: &ImportOptions, place: &StatePlace) -> Result<(), ImportError> {
    let Some(marker) = marker(place)? else {
        return Err(no_record(place));
    };
    let client = options.target.client()?;
    let record: Option<serde::de::IgnoredAny> = client
        .call(FunctionKind::Query, "migrate:ledgerRead", &serde_json::json!({ "importId": marker }))
        .await?;
    if record.is_none() {
        return Err(ImportError::NoSyncBase {
            reason: "the deployment holds no marker of the import sync would send the difference \
                     from (emptied, or another deployment at the same URL)"
                .into(),
        });
    }
    Ok(())
}

/// The marker of the deployment's import, from its state (none: no import, or rolled back).
fn marker(place: &StatePlace) -> Result<Option<String>, ImportError> {
    let state = State::open_read_only(&place.state)?;
    Ok(state.map(|s| s.meta(import::state::IMPORT_ID)).transpose()?.flatten())
}

/// `work/transformed/<table>.jsonl`: each table's lines to send, in the new file's order; and a
/// manifest naming them (tables with nothing to send have no file).
fn write_delta(
    data_dir: &DataDir,
    inputs: &Inputs,
    diffs: &[TableDiff],
    work: &Path,
) -> Result<Inputs, ImportError> {
    let dir = work.join("transformed");
    crate::data_dir::create_private_dir(&dir)?;
    let mut manifest = inputs.manifest.clone();
    for (step, diff) in inputs.order.iter().zip(diffs) {
        let Some(report) = manifest.tables.iter_mut().find(|t| t.table == step.table) else {
            continue;
        };
        let new = TransformedFile::of(data_dir, report);
        let (Some(new), false) = (new, diff.send.is_empty()) else {
            report.file = None;
            report.documents = 0;
            continue;
        };
        let relative = format!("transformed/{}.jsonl", step.table);
        let mut writer = JsonlWriter::create(work.join(&relative))?;
        diff::lines_at(&new, &diff.send, |_, text| {
            let buffer = writer.buffer();
            buffer.extend_from_slice(text);
            buffer.push(b'\n');
            Ok(writer.end_lines(1)?)
        })?;
        let digest = writer.finish()?;
        report.file = Some(relative);
        report.documents = digest.lines;
        report.bytes = digest.bytes;
        report.checksum = Some(digest.checksum);
    }
    // Files (`[files]`) are not this difference's: sync uploads them itself, before.
    Ok(Inputs { manifest, order: inputs.order.clone(), plan: inputs.plan.clone(), files: None })
}

/// Deletes the documents whose rows are gone, children's tables first (the reverse of import's
/// order): by then every child that stays points elsewhere, its upsert sent before. A table's
/// batches go concurrently, as many in flight as the limiter allows: each names other documents.
async fn delete_gone(
    options: &ImportOptions,
    inputs: &Inputs,
    diffs: &[TableDiff],
) -> Result<(), ImportError> {
    use futures_util::{StreamExt, TryStreamExt};
    let client = options.target.client()?.with_concurrency(options.concurrency);
    for (step, diff) in inputs.order.iter().zip(diffs).rev() {
        let Some(path) = &diff.deletes else { continue };
        let mut batches = Vec::new();
        diff::read_deletes(path, DELETE_BATCH, |ids| {
            batches.push(ids);
            Ok(())
        })?;
        let (client, table) = (&client, &step.table);
        futures_util::stream::iter(batches)
            .map(|ids| async move {
                let args = serde_json::json!({ "table": table, "legacyIds": ids });
                client
                    .call::<serde::de::IgnoredAny>(FunctionKind::Mutation, "migrate:remove", &args)
                    .await
                    .map_err(|source| ImportError::Convex { table: table.clone(), source })
            })
            .buffer_unordered(options.concurrency.max(1))
            .try_for_each(|_| async { Ok(()) })
            .await?;
    }
    Ok(())
}

/// Marks the deployment's import state complete for the new transformed files: every line
/// acknowledged in both passes, the refused documents recorded at their new lines, the plan
/// the new one. A later `migrate import` then sends nothing.
fn mark_complete(
    inputs: &Inputs,
    place: &StatePlace,
    rejects: Vec<Vec<ImportReject>>,
) -> Result<(), ImportError> {
    let state = State::open(&place.state)?;
    let run = state.run_started("sync")?;
    state.set_meta("plan_hash", &inputs.manifest.plan_hash)?;
    let mut acks = Vec::new();
    for (step, rejects) in inputs.order.iter().zip(rejects) {
        let Some(report) = inputs.manifest.tables.iter().find(|t| t.table == step.table) else {
            continue;
        };
        state.reset_table(&step.table, report.checksum.as_deref().unwrap_or_default())?;
        if report.documents == 0 {
            continue;
        }
        let written = report.documents - rejects.len() as u64;
        let ack = |pass, rejects| Acked {
            table: step.table.clone(),
            pass,
            first_line: 1,
            end_line: report.documents + 1,
            written,
            rejects,
        };
        if !step.deferred.is_empty() {
            acks.push(ack(Pass::PatchRefs, Vec::new()));
        }
        acks.push(ack(Pass::Upsert, rejects));
    }
    let checkpointer = Checkpointer::spawn(state);
    for ack in acks {
        checkpointer.record(ack)?;
    }
    let (state, written) = checkpointer.finish();
    written?;
    state.run_finished(run, "completed")?;
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<(), DataDirError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(DataDirError::new("remove", dir)(e))
        }
        _ => Ok(()),
    }
}
