//! `migrate verify`: proof against the source that every exported row arrived.
//!
//! Two parts. [`reconcile`]: every row of the export (its manifest's counts, its raw files
//! checked against them) is a document, merged into a document, left out by a plan rule, in a
//! table the plan skips, or rejected; the counts must add up, and rejected rows fail verify
//! unless accepted by number. [`compare`]: every Convex table is read back
//! (`migrate:readBack`, references resolved on the server to the parent's table and legacy id)
//! and compared with `transformed/<table>.jsonl` document by document: a fingerprint of the
//! plain fields ([`canonical`]) and each reference by legacy identity, so that ids, which
//! differ per deployment, never need to match. Memory stays bounded: a large table is compared
//! one hash partition at a time. Reported: documents missing from Convex, documents Convex has
//! that the source does not, documents that differ (with the field), legacy ids held by two
//! documents, references that resolve to no document, and documents that share values on fields
//! a unique index of the source covers ([`unique`]: Convex does not enforce uniqueness).

pub mod canonical;
mod compare;
mod ranges;
mod reconcile;
mod unique;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use self::canonical::{Entries, fingerprint_entries, raw_str, value_fingerprint};
use self::compare::{Counts, Found, Locator, Record, Spool, Spooled, Target};
use self::ranges::Range;
pub use self::reconcile::TableVerify;
use crate::convex::client::{ConvexClient, FunctionKind, request_body};
use crate::data_dir::{DataDir, DataDirError};
use crate::import::order::TableStep;
use crate::import::transformed::TransformedFile;
use crate::import::{ConvexTarget, ImportError, Inputs, check_module};
use crate::manifest::Manifest;
use crate::output::{Reporter, Unit};
use crate::transform::TableReport;

/// Documents of one table compared in memory; a larger table is spilled into partitions of
/// about this many. A record is ~100 bytes plus the legacy id and references, per side. Once a
/// table is spilled at all, every record is, so smaller partitions cost only more files: this
/// keeps peak memory at a 100,000-document table's whatever the size.
pub const MEMORY_LIMIT: u64 = 100_000;

/// Tables read back at once.
const TABLES_AT_ONCE: usize = 2;

/// Pages of one table requested at once: its `_creationTime` ranges read side by side, each
/// its own chain of pages, as import keeps batches in flight.
const READERS: usize = 8;
/// A table is split into up to this many ranges per reader, so that ranges of uneven size
/// (times of documents imported in bursts) still keep every reader busy.
const RANGES_PER_READER: usize = 4;

/// `migrate:readBack` page size: at most this many documents…
const MAX_PAGE: u64 = 4000;
/// … at most this many `db.get`s of parents (index ranges: Convex allows 4,096 per query) …
const MAX_PARENT_READS: u64 = 4000;
/// … and about this many bytes of documents (Convex reads at most 16 MiB per query).
const PAGE_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Differences listed in the report (all are counted).
    pub show: usize,
    /// Rows rejected by transform that the user accepts: verify passes only when exactly this
    /// many were. `None`: any rejected row fails verify.
    pub accept_rejected: Option<u64>,
    /// See [`MEMORY_LIMIT`].
    pub memory_limit: u64,
    /// Where large tables are spilled; `None`: `data/.verify`. Verifies of several deployments
    /// running at once each have their own.
    pub spill: Option<PathBuf>,
}

impl VerifyOptions {
    pub fn new(show: usize, accept_rejected: Option<u64>) -> Self {
        Self { show, accept_rejected, memory_limit: MEMORY_LIMIT, spill: None }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Every row accounted for, none rejected (or exactly the accepted number), and Convex
    /// holds exactly the transformed documents: exit 0.
    pub verified: bool,
    /// Convex holds exactly the transformed documents.
    pub identical: bool,
    /// No two documents of a table share values on fields unique in the source.
    pub unique: bool,
    /// Every exported row is accounted for and the files agree with the manifests.
    pub accounted: bool,
    /// Rows in the export.
    pub source_rows: u64,
    /// Rows rejected by transform (lines in `rejects/`).
    pub rejected: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_rejected: Option<u64>,
    /// One row per source table.
    pub tables: Vec<TableVerify>,
    /// What does not add up in the reconciliation, one sentence each.
    pub problems: Vec<String>,
    /// The first `--show` differences (every one is counted in `tables`).
    pub differences: Vec<Difference>,
    /// When the deployment's ledger says this import was rolled back: the migrated documents
    /// still in Convex (those changed since the import, kept). Verify then passes when there
    /// are none, and documents the migration did not write do not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBackCheck>,
    pub seconds: f64,
}

/// What verify checks of a rolled-back import.
#[derive(Debug, Clone, Serialize)]
pub struct RolledBackCheck {
    /// Migrated documents (legacy ids of the transformed files) still in Convex.
    pub remaining: u64,
    /// Convex table → its migrated documents still there, for tables that have any.
    pub tables: BTreeMap<String, u64>,
    /// With `[files]`: the files the migration recorded (`migrateFiles`) still there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub table: String,
    pub legacy_id: String,
    /// `missing`, `extra`, `different`, `duplicate`, `unresolved reference` or `not unique`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub detail: String,
    /// The transformed file's line of a document whose fields differ, to name them later.
    #[serde(skip)]
    source_line: Option<u64>,
}

/// Reconciles the export with transform's accounts and compares every table in Convex with
/// `transformed/`.
pub async fn verify(
    data_dir: &DataDir,
    inputs: &Inputs,
    target: &ConvexTarget,
    options: &VerifyOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<VerifyReport, ImportError> {
    let started = Instant::now();
    let export = Manifest::read(data_dir).map_err(ImportError::from)?.ok_or_else(|| {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        ImportError::DataDir(DataDirError::new("read", data_dir.manifest_path())(missing))
    })?;
    let client = target.client()?;
    let info = check_module(&client, inputs).await?;
    // The ledger's latest word on an import of this plan: rolled back changes what is checked;
    // finalized, how documents without legacy ids are matched.
    let entries = crate::ledger::list(&client).await?;
    let latest = crate::ledger::latest_of_plan(&entries, &inputs.manifest.plan_hash);
    let status = latest.map(|e| e.status);
    let rolled_back = status == Some(crate::ledger::Status::RolledBack);
    let finalized = matches!(
        status,
        Some(crate::ledger::Status::Finalized | crate::ledger::Status::Finalizing)
    );
    let ids = if finalized {
        let identity = crate::deployment::identity(&target.url, Some(target.deploy_key.expose()));
        Some(Arc::new(finalized_ids(data_dir, &identity, inputs)?))
    } else {
        None
    };
    let references: BTreeMap<String, BTreeMap<String, String>> =
        info.tables.into_iter().map(|(table, module)| (table, module.references)).collect();

    // The raw files are hashed while the tables are compared.
    let raw_check = {
        let (data_dir, export) = (data_dir.clone(), export.clone());
        tokio::task::spawn_blocking(move || reconcile::check_raw_files(&data_dir, &export))
    };
    let spill = options.spill.clone().unwrap_or_else(|| data_dir.path(".verify"));
    remove_spill(&spill)?;
    let no_references = BTreeMap::new();
    let tables = inputs.order.iter().enumerate().map(|(i, step)| {
        let table = TableRun {
            client: &client,
            data_dir,
            report: inputs.manifest.tables.iter().find(|t| t.table == step.table),
            step,
            references: references.get(&step.table).unwrap_or(&no_references),
            options,
            spill: spill.join(i.to_string()),
            ids: ids.clone(),
        };
        table.verify(reporter.clone())
    });
    let compared: Vec<(Counts, Vec<Found>)> =
        futures_util::stream::iter(tables).buffered(TABLES_AT_ONCE).try_collect().await?;
    remove_spill(&spill)?;
    let mut problems = raw_check.await.expect("hashing raw files does not panic");

    let mut differences = Vec::new();
    let mut counts = BTreeMap::new();
    for (step, (table_counts, found)) in inputs.order.iter().zip(compared) {
        counts.insert(step.table.clone(), table_counts);
        differences.extend(found.into_iter().map(|f| Difference {
            table: step.table.clone(),
            legacy_id: f.legacy_id,
            kind: f.kind,
            field: f.field,
            detail: f.detail,
            source_line: f.source_line,
        }));
    }
    if rolled_back {
        // Documents gone, and documents the migration did not write, are what a rollback
        // leaves: only a migrated document still there is a difference.
        differences.retain(|d| d.kind != "missing" && d.kind != "extra");
    }
    differences.truncate(options.show);
    // After finalize, `migrate:get` (by legacy id) finds nothing: the differences keep their
    // fingerprint detail.
    if !finalized {
        name_differing_fields(&client, data_dir, inputs, &mut differences, &references).await?;
    }

    let (tables, reconciliation) =
        reconcile::reconcile(data_dir, &export, &inputs.manifest, &inputs.order, &counts)?;
    problems.extend(reconciliation);
    let accounted = problems.is_empty();
    let rejected: u64 = tables.iter().map(|t| t.rejected).sum();
    match options.accept_rejected {
        None if rejected > 0 => problems.push(format!(
            "{rejected} row{} rejected by transform (listed in rejects/): fix them and run \
             transform again, or accept them with `--accept-rejected {rejected}`",
            if rejected == 1 { " was" } else { "s were" }
        )),
        Some(accepted) if accepted != rejected => problems.push(format!(
            "`--accept-rejected {accepted}` accepts {accepted} rejected row{}, but transform \
             rejected {rejected}",
            if accepted == 1 { "" } else { "s" }
        )),
        _ => {}
    }
    let identical = counts
        .values()
        .all(|c| c.missing + c.extra + c.different + c.duplicates + c.unresolved_references == 0);
    let unique = counts.values().all(|c| c.not_unique == 0);
    let rolled_back = rolled_back.then(|| {
        let tables: BTreeMap<String, u64> = counts
            .iter()
            .map(|(table, c)| (table.clone(), c.documents - c.missing))
            .filter(|(_, remaining)| *remaining > 0)
            .collect();
        RolledBackCheck { remaining: tables.values().sum(), tables, files: None }
    });
    let verified = match &rolled_back {
        Some(check) => check.remaining == 0 && problems.is_empty(),
        None => identical && unique && problems.is_empty(),
    };
    Ok(VerifyReport {
        verified,
        rolled_back,
        identical,
        unique,
        accounted,
        source_rows: export.tables.iter().map(|t| t.rows).sum(),
        rejected,
        accepted_rejected: options.accept_rejected,
        tables,
        problems,
        differences,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn remove_spill(dir: &Path) -> Result<(), ImportError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(DataDirError::new("remove", dir)(e).into())
        }
        _ => Ok(()),
    }
}

/// One table to compare.
struct TableRun<'a> {
    client: &'a ConvexClient,
    data_dir: &'a DataDir,
    /// Transform's report of it (`None`: transform wrote no file for it).
    report: Option<&'a TableReport>,
    step: &'a TableStep,
    /// Reference field → parent table.
    references: &'a BTreeMap<String, String>,
    options: &'a VerifyOptions,
    /// Where its partitions are spilled, if it needs any.
    spill: PathBuf,
    /// After `migrate finalize`: each migrated document's Convex id → its table and legacy id.
    ids: Option<Arc<FinalizedIds>>,
}

/// Convex id → (table, legacy id), from `data/finalize/`.
type FinalizedIds = HashMap<String, (String, String)>;

/// The ids `migrate finalize` recorded before it took the legacy ids out: verify then matches
/// documents, and references, through them. Held in memory (about 100 bytes a document).
fn finalized_ids(
    data_dir: &DataDir,
    identity: &str,
    inputs: &Inputs,
) -> Result<FinalizedIds, ImportError> {
    let mut ids = HashMap::new();
    for step in &inputs.order {
        for recorded in
            crate::finalize::recorded_ids(data_dir, identity, &step.table)?.unwrap_or_default()
        {
            ids.insert(recorded.id, (step.table.clone(), recorded.legacy_id));
        }
    }
    Ok(ids)
}

/// `migrate:readBack`'s answer, its documents borrowed from the reply's text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<'a> {
    #[serde(borrow)]
    page: Vec<ReadBack<'a>>,
    is_done: bool,
    continue_cursor: String,
}

/// One document of a page: its fields, and each reference field's parent (null: the id is
/// no document's; absent: the field holds no id of the parent table).
#[derive(Deserialize)]
struct ReadBack<'a> {
    #[serde(borrow)]
    doc: Entries<'a>,
    #[serde(default)]
    refs: BTreeMap<String, Option<SourceRef>>,
}

impl TableRun<'_> {
    async fn verify(
        self,
        reporter: Arc<dyn Reporter>,
    ) -> Result<(Counts, Vec<Found>), ImportError> {
        let documents = self.report.map_or(0, |t| t.documents);
        let partitions = compare::partitions_for(documents, self.options.memory_limit);
        let table = self.step.table.clone();

        // The file is read on one thread, Convex's pages reduced on another, while this task
        // fetches the next page.
        let source = {
            let file = self.report.and_then(|t| TransformedFile::of(self.data_dir, t));
            let (spill, legacy_field) = (self.spill.clone(), self.step.legacy_field.clone());
            let references = self.references.clone();
            // After finalize the documents lost their legacy ids: matched by them through the
            // recorded ids, they are not a field to compare.
            let skip_legacy = self.ids.is_some();
            tokio::task::spawn_blocking(move || -> Result<Spooled, ImportError> {
                let mut spool = Spool::new(&spill, "source", partitions)?;
                if let Some(file) = file {
                    read_source(&file, &legacy_field, &references, skip_legacy, &mut spool)?;
                }
                Ok(spool.finish()?)
            })
        };
        let num_items = page_size(self.report, self.references.len());
        let ranges = self.ranges(documents, num_items).await?;
        let read = Arc::new(AtomicU64::new(0));
        // Pages are reduced to records as they are decoded, by the task that fetched them;
        // this thread only spools the records.
        let (pages, mut received) = tokio::sync::mpsc::channel::<(Vec<Record>, Vec<unique::Entry>)>(
            READERS.min(ranges.len()) + 2,
        );
        let convex = {
            let spill = self.spill.clone();
            tokio::task::spawn_blocking(move || -> Result<(Spooled, unique::Spool), ImportError> {
                let mut spool = Spool::new(&spill, "convex", partitions)?;
                let mut unique = unique::Spool::new(&spill, partitions)?;
                while let Some((records, entries)) = received.blocking_recv() {
                    for record in records {
                        spool.push(record)?;
                    }
                    for entry in entries {
                        unique.push(entry)?;
                    }
                }
                Ok((spool.finish()?, unique))
            })
        };

        let progress = std::sync::Mutex::new(reporter.table_started(
            &format!("{table} (Convex)"),
            Some(documents),
            Unit::Documents,
        ));
        let fetched: Result<(), ImportError> = {
            let (client, table, pages, progress, read) =
                (self.client, &table, &pages, &progress, &read);
            let (legacy_field, references) = (&self.step.legacy_field, self.references);
            let ids = self.ids.as_deref();
            let unique_keys = &self.step.unique;
            futures_util::stream::iter(ranges.iter().enumerate())
            .map(|(i, range)| async move {
                let mut cursor = Value::Null;
                // The read-back order: by range, then by page, whichever page comes in first,
                // so that the first differences listed are the same every run.
                let mut ordinal = (i as u64) << 40;
                loop {
                    let mut args =
                        serde_json::json!({"table": table, "cursor": cursor, "numItems": num_items});
                    if let Some(from) = range.from {
                        args["from"] = from.into();
                    }
                    if let Some(to) = range.to {
                        args["to"] = to.into();
                    }
                    let body = request_body("migrate:readBack", args.to_string().as_bytes());
                    let decode = |value: &RawValue| {
                        let page: Page<'_> =
                            serde_json::from_str(value.get()).map_err(|e| e.to_string())?;
                        let mut entries = Vec::new();
                        let records: Vec<Record> = (ordinal + 1..)
                            .zip(&page.page)
                            .map(|(at, read)| {
                                let record =
                                    reduce_convex(read, legacy_field, references, at, ids);
                                if let Locator::Convex { id, .. } = &record.at {
                                    let (doc, legacy) = (&read.doc, &record.legacy);
                                    entries.extend(unique::entries(doc, unique_keys, legacy, id, at));
                                }
                                record
                            })
                            .collect();
                        Ok(((records, entries), page.is_done, page.continue_cursor))
                    };
                    let (reduced, is_done, next) = client
                        .call_body(FunctionKind::Query, "migrate:readBack", body.into(), decode)
                        .await
                        .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
                    let count = reduced.0.len() as u64;
                    ordinal += count;
                    read.fetch_add(count, Ordering::Relaxed);
                    // A closed channel: the spooling thread stopped on an error, reported below.
                    if pages.send(reduced).await.is_err() || is_done {
                        return Ok(());
                    }
                    if let Ok(mut progress) = progress.lock() {
                        progress.rows(read.load(Ordering::Relaxed));
                    }
                    cursor = Value::String(next);
                }
            })
            .buffer_unordered(READERS)
            .try_collect()
            .await
        };
        drop(pages);
        let mut progress = progress.into_inner().unwrap_or_else(|e| e.into_inner());
        let convex = convex.await.expect("reducing pages does not panic");
        let source = source.await.expect("reading the transformed file does not panic");
        fetched?;
        let ((convex, unique), source) = (convex?, source?);
        progress.finished(read.load(Ordering::Relaxed));

        let show = self.options.show;
        let unique_keys = self.step.unique.clone();
        tokio::task::spawn_blocking(move || -> Result<(Counts, Vec<Found>), ImportError> {
            let (mut counts, mut found) = (Counts::default(), Vec::new());
            compare::compare(source, convex, show, &mut counts, &mut found)?;
            let mut not_unique = Vec::new();
            unique.check(&unique_keys, show, &mut counts, &mut not_unique)?;
            found.extend(not_unique);
            found.truncate(show);
            Ok((counts, found))
        })
        .await
        .expect("comparing does not panic")
    }
}

/// The `_creationTime` ranges to read a table of about `documents` in: one for a table of a
/// page or two, else split between its first and last creation time (`migrate:creationTimes`).
impl TableRun<'_> {
    async fn ranges(&self, documents: u64, num_items: u64) -> Result<Vec<Range>, ImportError> {
        let pages = documents.div_ceil(num_items.max(1));
        if pages <= 2 {
            return Ok(vec![Range { from: None, to: None }]);
        }
        #[derive(Deserialize)]
        struct Times {
            first: Option<f64>,
            last: Option<f64>,
        }
        let table = &self.step.table;
        let args = serde_json::json!({ "table": table });
        let times: Times = self
            .client
            .call(FunctionKind::Query, "migrate:creationTimes", &args)
            .await
            .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
        let n = (pages as usize).min(READERS * RANGES_PER_READER);
        Ok(match (times.first, times.last) {
            (Some(first), Some(last)) => ranges::split(first, last, n),
            _ => vec![Range { from: None, to: None }],
        })
    }
}

/// Documents per `migrate:readBack` call for a table of `report`'s average document size with
/// `references` reference fields: within Convex's limits per query, and large for speed.
fn page_size(report: Option<&TableReport>, references: usize) -> u64 {
    let average = report.filter(|t| t.documents > 0).map_or(1024, |t| t.bytes / t.documents);
    let by_bytes = PAGE_BYTES / average.max(64);
    let by_parents = MAX_PARENT_READS / (references as u64).max(1);
    by_bytes.min(by_parents).clamp(1, MAX_PAGE)
}

/// A Convex document reduced: its plain fields fingerprinted, its references as the server
/// resolved them.
fn reduce_convex(
    read: &ReadBack<'_>,
    legacy_field: &str,
    references: &BTreeMap<String, String>,
    ordinal: u64,
    finalized: Option<&FinalizedIds>,
) -> Record {
    let ReadBack { doc, refs } = read;
    // After finalize, a document without its legacy id is known by its Convex id.
    let by_id = |value: &RawValue| {
        let id = raw_str(value)?;
        finalized?.get(id.as_ref()).cloned()
    };
    let legacy = match doc.get(legacy_field) {
        Some(value) => raw_str(value).map_or_else(|| raw_json(value), String::from),
        None => doc.get("_id").and_then(by_id).map(|(_, legacy)| legacy).unwrap_or_default(),
    };
    let fields = fingerprint_entries(doc, |k| {
        skipped(k, references) || (finalized.is_some() && k == legacy_field)
    });
    let id = doc.get("_id").and_then(raw_str).map(String::from).unwrap_or_default();
    let mut targets: Vec<(String, Target)> = doc
        .0
        .iter()
        .filter(|(k, _)| references.contains_key(k.as_ref()))
        .map(|(field, value)| {
            let target = match (refs.get(field.as_ref()), by_id(value)) {
                (Some(Some(parent)), _) => {
                    Target::Document(parent.table.clone(), parent.legacy_id.clone())
                }
                (_, Some((table, legacy))) => Target::Document(table, legacy),
                _ => Target::Plain(raw_json(value)),
            };
            (field.to_string(), target)
        })
        .collect();
    targets.sort();
    targets.dedup_by(|a, b| a.0 == b.0);
    Record { legacy, fields, references: targets, at: Locator::Convex { ordinal, id } }
}

/// A raw value as compact JSON, the same text whoever wrote it.
fn raw_json(value: &RawValue) -> String {
    serde_json::from_str::<Value>(value.get())
        .map_or_else(|_| value.get().to_owned(), |v| v.to_string())
}

/// A transformed line's document, to name the fields that differ.
#[derive(Deserialize)]
struct SourceLine {
    doc: Map<String, Value>,
}

/// A transformed line as verify reduces it: the document's values left as text.
#[derive(Deserialize)]
struct SourceEntries<'a> {
    #[serde(borrow)]
    doc: Entries<'a>,
    #[serde(default)]
    refs: BTreeMap<String, SourceRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceRef {
    table: String,
    legacy_id: String,
}

/// Reduces every line of the transformed file into `spool`.
fn read_source(
    file: &TransformedFile,
    legacy_field: &str,
    reference_fields: &BTreeMap<String, String>,
    skip_legacy: bool,
    spool: &mut Spool,
) -> Result<(), ImportError> {
    // Checked against transform's manifest as it is read, as import checks it: compared with a
    // file cut short, Convex would look complete.
    file.for_each_line(|line, text| {
        let bad = |reason: String| ImportError::BadLine { path: file.path.clone(), line, reason };
        let parsed: SourceEntries<'_> =
            serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let Some(legacy) = parsed.doc.get(legacy_field).and_then(raw_str) else {
            return Err(bad(format!("no string field `{legacy_field}`")));
        };
        let legacy = legacy.into_owned();
        let fields = fingerprint_entries(&parsed.doc, |k| {
            skipped(k, reference_fields) || (skip_legacy && k == legacy_field)
        });
        let mut references: Vec<(String, Target)> = parsed
            .doc
            .0
            .iter()
            .filter(|(k, _)| reference_fields.contains_key(k.as_ref()))
            .map(|(k, v)| (k.to_string(), Target::Plain(raw_json(v))))
            .collect();
        for (field, reference) in parsed.refs {
            references.push((field, Target::Document(reference.table, reference.legacy_id)));
        }
        references.sort();
        spool.push(Record { legacy, fields, references, at: Locator::Line(line) })?;
        Ok(true)
    })
}

/// Whether a field is left out of a document's fingerprint: system fields and references.
fn skipped(field: &str, reference_fields: &BTreeMap<String, String>) -> bool {
    field == "_id" || field == "_creationTime" || reference_fields.contains_key(field)
}

/// `migrate:get` takes at most this many legacy ids.
const MAX_GET: usize = 1000;

/// For documents whose plain fields differ, reads both sides again (each table's file once,
/// up to the last line needed; each table's documents in Convex with one `migrate:get` call per
/// [`MAX_GET`] of them) and names the fields.
async fn name_differing_fields(
    client: &ConvexClient,
    data_dir: &DataDir,
    inputs: &Inputs,
    differences: &mut [Difference],
    references: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), ImportError> {
    let mut lines_by_table: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for d in differences.iter() {
        if let Some(line) = d.source_line {
            lines_by_table.entry(d.table.as_str()).or_default().insert(line);
        }
    }
    let mut sources: HashMap<(String, u64), Map<String, Value>> = HashMap::new();
    for (table, lines) in lines_by_table {
        let report = inputs.manifest.tables.iter().find(|t| t.table == table);
        let Some(file) = report.and_then(|t| TransformedFile::of(data_dir, t)) else { continue };
        let last = lines.last().copied().unwrap_or(0);
        file.for_each_line(|line, text| {
            if lines.contains(&line)
                && let Ok(parsed) = serde_json::from_slice::<SourceLine>(text)
            {
                sources.insert((table.to_owned(), line), parsed.doc);
            }
            Ok(line < last)
        })?;
    }
    // Per table, the differences (by index) whose source line was read, in list order.
    let mut wanted: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, difference) in differences.iter().enumerate() {
        let Some(line) = difference.source_line else { continue };
        if sources.contains_key(&(difference.table.clone(), line)) {
            wanted.entry(difference.table.clone()).or_default().push(index);
        }
    }
    for (table, indexes) in wanted {
        let table_references = references.get(&table);
        for chunk in indexes.chunks(MAX_GET) {
            let legacy_ids: Vec<&str> =
                chunk.iter().map(|&i| differences[i].legacy_id.as_str()).collect();
            let args = serde_json::json!({"table": table, "legacyIds": legacy_ids});
            let convex: Vec<Option<Map<String, Value>>> = client
                .call(FunctionKind::Query, "migrate:get", &args)
                .await
                .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
            for (&index, convex) in chunk.iter().zip(convex) {
                let Some(convex) = convex else { continue };
                let difference = &mut differences[index];
                let Some(line) = difference.source_line else { continue };
                let Some(source) = sources.get(&(table.clone(), line)) else { continue };
                name_fields(difference, source, &convex, table_references);
            }
        }
    }
    Ok(())
}

/// Names the fields in which `source` and `convex` differ, references and system fields left
/// out, in `difference`: the first with both values, the others by name.
fn name_fields(
    difference: &mut Difference,
    source: &Map<String, Value>,
    convex: &Map<String, Value>,
    table_references: Option<&BTreeMap<String, String>>,
) {
    let skip = |k: &str| {
        k == "_id" || k == "_creationTime" || table_references.is_some_and(|r| r.contains_key(k))
    };
    let mut fields: Vec<&String> =
        source.keys().chain(convex.keys()).filter(|k| !skip(k)).collect();
    fields.sort();
    fields.dedup();
    let differing: Vec<String> = fields
        .into_iter()
        .filter(|k| source.get(*k).map(value_fingerprint) != convex.get(*k).map(value_fingerprint))
        .map(|k| k.to_string())
        .collect();
    if let Some(first) = differing.first() {
        let shown =
            |v: Option<&Value>| v.map_or("nothing".to_owned(), |v| truncate(&v.to_string()));
        difference.detail = format!(
            "Convex has {}, the source has {}",
            shown(convex.get(first)),
            shown(source.get(first))
        );
        if differing.len() > 1 {
            difference.detail.push_str(&format!(
                " (and {} more fields differ: {})",
                differing.len() - 1,
                differing[1..].join(", ")
            ));
        }
        difference.field = Some(first.clone());
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}
