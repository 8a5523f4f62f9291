//! `migrate transform`: raw rows → Convex documents, following the mapping plan.
//!
//! Reads `manifest.json` and `raw/`, writes `transformed/<convexTable>.jsonl` (one
//! [`document line`](docs/transformed-format.md) per document, references still in legacy form
//! for import to resolve), `rejects/<schema>.<table>.jsonl` for rows that cannot become valid
//! Convex documents, and `transformed/manifest.json` last. The conversions themselves are pure
//! (`convert`, `document`); this module streams files through them.

mod auth;
mod convert;
mod direct;
mod document;
mod error;
#[cfg(test)]
mod fuzz;
mod keys;
mod row;
mod storage_path;
mod unique;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Raw};

pub use self::convert::convert as convert_value;
use self::direct::{DirectPlan, Scratch};
use self::document::{
    Columns, Lookups, MergedEntry, MergedFields, MergedRow, Outcome, ParentKeys, StorageObjects,
    Transformed,
};
pub use self::error::TransformError;
use self::row::{Row, RowShape};
use self::unique::{ID_HASHES_IN_MEMORY, IdHashes, id_hash};
use crate::catalog::{Catalog, TableName};
use crate::data_dir::{self, DataDir, DataDirError, JsonlWriter};
use crate::import::line_index::{self, LineIndexWriter};
use crate::manifest::{ExportedTable, Manifest};
use crate::output::{Reporter, Unit};
use crate::plan::{self, Plan, ReferencePlan, TablePlan};

/// Bumped when the transformed format changes incompatibly.
///
/// 2: `sources`, every source table's rows accounted for.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone)]
pub struct TransformOptions {
    /// Write nothing; keep `sample` documents per table and the first rejects for the report.
    pub dry_run: bool,
    pub sample: usize,
    /// Stop once more rows than this were rejected. `None`: never stop early.
    pub max_rejected: Option<u64>,
    /// Set from another thread (Ctrl-C) to stop between blocks of rows; nothing is finalized.
    pub cancel: Arc<AtomicBool>,
}

/// `transformed/manifest.json`: what transform produced, for import and verify.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformManifest {
    pub format_version: u32,
    pub tool: String,
    /// The plan's hash: import refuses to continue a half-done import under another plan.
    pub plan_hash: String,
    /// The export this was made from.
    pub snapshot_taken_at: String,
    pub tables: Vec<TableReport>,
    /// Every exported table's rows, accounted for: what became of each (verify adds them up
    /// against the export's manifest).
    pub sources: Vec<SourceAccount>,
}

impl TransformManifest {
    /// Reads `transformed/manifest.json` of `data_dir`: `None` when there is none (no
    /// transform yet, or one that did not finish).
    pub fn read(data_dir: &DataDir) -> Result<Option<Self>, crate::manifest::ManifestError> {
        crate::manifest::read_versioned(
            &data_dir.path("transformed/manifest.json"),
            FORMAT_VERSION,
            |m: &Self| m.format_version,
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableReport {
    /// The Convex table.
    pub table: String,
    /// The source table and the tables merged into it.
    pub sources: Vec<String>,
    /// `transformed/<table>.jsonl`, relative to the data directory (absent in a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub rows: u64,
    pub documents: u64,
    pub filtered: u64,
    pub dropped: u64,
    pub rejected: u64,
    /// Timestamp values (in written documents) whose microseconds were not a multiple of 1000:
    /// policy `ms` keeps whole milliseconds, so their sub-millisecond digits were dropped.
    #[serde(default)]
    pub sub_ms_dropped: u64,
    /// References (in written documents) that found no parent and were set to null or kept as
    /// the legacy value under their orphan policy.
    #[serde(default)]
    pub orphan_references: u64,
    /// Password hashes in written documents by format (`bcrypt`, `argon2`, `scrypt`, `other`,
    /// `none`): counted for the tables an auth preset shapes (`transform::auth`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub password_hashes: BTreeMap<String, u64>,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// What became of one source table's rows. `rows` = `documents` + `merged` + the sum of
/// `filtered` + `skipped` + `rejected`, always.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceAccount {
    /// `schema.table`.
    pub table: String,
    /// The Convex table its rows become documents of, or are merged into; none when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Rows read from the raw file.
    pub rows: u64,
    /// Rows that became documents of `target`.
    pub documents: u64,
    /// Rows whose fields were merged into documents of `target`.
    pub merged: u64,
    /// Rows left out by a plan rule, per rule (`filter …`, `orphans drop …`).
    pub filtered: BTreeMap<String, u64>,
    /// Rows of a table the plan does not migrate.
    pub skipped: u64,
    /// Rows written to `rejects/<schema>.<table>.jsonl`.
    pub rejected: u64,
}

impl SourceAccount {
    pub fn filtered_total(&self) -> u64 {
        self.filtered.values().sum()
    }
}

/// The name of a row filter, as it is counted: `filter \`column\` <condition>`.
fn filter_rule(filter: &plan::RowFilter) -> String {
    use plan::Condition;
    let condition = match &filter.condition {
        Condition::IsNull => "is_null".to_owned(),
        Condition::IsNotNull => "is_not_null".to_owned(),
        Condition::Equals(value) => format!("equals {value}"),
        Condition::NotEquals(value) => format!("not_equals {value}"),
        Condition::In(values) => format!("in {}", Raw::Array(values.clone())),
    };
    format!("filter `{}` {condition}", filter.column)
}

/// The name of an orphan policy `drop`, as it is counted.
fn drop_rule(reference: &ReferencePlan) -> String {
    format!("orphans drop `{}`", reference.field)
}

/// The names of a table's orphan policies `drop`, in the order of [`Outcome::Dropped`]'s index:
/// its references', then its file columns'.
fn drop_rules(table: &TablePlan) -> impl Iterator<Item = String> + '_ {
    let files = table.files.iter().map(|f| format!("orphans drop `{}`", f.field));
    table.references.iter().map(drop_rule).chain(files)
}

/// How many ways a row of `table` can be dropped for a missing parent or object.
fn drop_ways(table: &TablePlan) -> usize {
    table.references.len() + table.files.len()
}

/// A row that could not become a document, as written to `rejects/`.
#[derive(Debug, Clone, Serialize)]
pub struct RejectRecord {
    pub table: String,
    /// 1-based line of the raw file.
    pub line: u64,
    /// The row's legacy id columns and their raw values.
    pub key: Map<String, Raw>,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TransformReport {
    pub dry_run: bool,
    pub plan_hash: String,
    pub tables: Vec<TableReport>,
    pub skipped: Vec<String>,
    pub warnings: Vec<String>,
    pub rows: u64,
    pub documents: u64,
    pub rejected: u64,
    /// Of `rejected`: rows whose legacy id other rows of their Convex table hold too.
    pub duplicate_ids: u64,
    /// True when `--max-rejected` stopped the run before every table was done.
    pub stopped_early: bool,
    /// The first rejects (all of them in the rejects files).
    pub first_rejects: Vec<RejectRecord>,
    /// Dry run: sample document lines per table, pretty-printed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<(String, Vec<serde_json::Value>)>,
    pub seconds: f64,
}

const FIRST_REJECTS: usize = 10;

/// Runs transform over the export in `data_dir` with the plan in `plan_dir`.
pub fn transform(
    data_dir: &DataDir,
    plan_dir: &Path,
    options: &TransformOptions,
    reporter: &dyn Reporter,
) -> Result<TransformReport, TransformError> {
    let manifest = read_manifest(data_dir)?;
    let plan = plan::load(plan_dir, &manifest.catalog)?;
    transform_with(data_dir, &plan, options, reporter)
}

/// [`transform`] with a plan already resolved against the export's catalog (a target's: the
/// plan with its row filters, `targets`).
pub fn transform_with(
    data_dir: &DataDir,
    plan: &plan::Plan,
    options: &TransformOptions,
    reporter: &dyn Reporter,
) -> Result<TransformReport, TransformError> {
    let started = Instant::now();
    let manifest = read_manifest(data_dir)?;
    let files: HashMap<&TableName, &ExportedTable> =
        manifest.tables.iter().map(|t| (&t.table, t)).collect();
    let raw = |table: &TableName| -> Result<&ExportedTable, TransformError> {
        files
            .get(table)
            .copied()
            .ok_or_else(|| TransformError::NotExported { table: table.clone() })
    };

    let transformed_dir = data_dir.root().join("transformed");
    let rejects_dir = data_dir.root().join("rejects");
    if !options.dry_run {
        data_dir::remove_if_exists(&transformed_dir.join("manifest.json"))?;
        data_dir.prepare(&transformed_dir)?;
        data_dir.prepare(&rejects_dir)?;
        remove_jsonl_files(&transformed_dir)?;
        remove_jsonl_files(&rejects_dir)?;
    }

    let run = Run {
        data_dir,
        options,
        rejected: AtomicU64::new(0),
        duplicate_ids: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_rejects: Mutex::new(Vec::new()),
        rejects: Mutex::new(HashMap::new()),
    };
    let catalog = &manifest.catalog;
    let forms = reference_forms(plan, catalog)?;
    let parents = parent_keys(plan, catalog, &raw, &run)?;
    let objects = storage_objects(plan, data_dir)?;
    let mut reports = Vec::new();
    let mut sources = Vec::new();
    let mut samples = Vec::new();
    for (table, forms) in plan.tables.iter().zip(forms) {
        if run.stopping() {
            break;
        }
        let MergedTables {
            fields: merged,
            forms: merged_forms,
            sub_ms: merged_sub_ms,
            accounts: mut merged_accounts,
        } = merged_fields(table, catalog, &raw, &run)?;
        let lookups = Lookups {
            parents: table.references.iter().map(|r| &parents[&r.parent]).collect(),
            forms,
            merged: &merged,
            merged_forms,
            objects: &objects,
        };
        let (mut report, account, sample) = transform_table(
            table,
            raw(&table.source)?,
            &shape(catalog, &table.source),
            &lookups,
            &run,
            reporter,
        )?;
        report.sub_ms_dropped += merged_sub_ms;
        if !run.stopping() {
            reject_merged_into_nothing(table, &merged, &mut merged_accounts, &run)?;
        }
        reports.push(report);
        sources.push(account);
        sources.extend(merged_accounts);
        if options.dry_run {
            samples.push((table.target.clone(), sample));
        }
    }
    if options.cancel.load(Ordering::Relaxed) {
        return Err(TransformError::Interrupted);
    }
    let stopped_early = run.stopping();
    run.finish_rejects()?;

    let rejected = run.rejected.load(Ordering::Relaxed);
    for table in &plan.skipped {
        if let Some(exported) = files.get(table) {
            sources.push(SourceAccount {
                table: table.to_string(),
                rows: exported.rows,
                skipped: exported.rows,
                ..SourceAccount::default()
            });
        }
    }
    sources.sort_by(|a, b| a.table.cmp(&b.table));
    let mut warnings = plan.warnings.clone();
    warnings.extend(auth::not_carried(plan, &sources));
    if !options.dry_run && !stopped_early {
        let transform_manifest = TransformManifest {
            format_version: FORMAT_VERSION,
            tool: concat!("migrate ", env!("CARGO_PKG_VERSION")).into(),
            plan_hash: plan.hash.clone(),
            snapshot_taken_at: manifest.snapshot.taken_at.clone(),
            tables: reports.clone(),
            sources,
        };
        let mut json = serde_json::to_vec_pretty(&transform_manifest).expect("serializes");
        json.push(b'\n');
        data_dir::write_atomically(&transformed_dir.join("manifest.json"), &json)?;
    }
    Ok(TransformReport {
        dry_run: options.dry_run,
        plan_hash: plan.hash.clone(),
        rows: reports.iter().map(|t| t.rows).sum(),
        documents: reports.iter().map(|t| t.documents).sum(),
        tables: reports,
        skipped: plan.skipped.iter().map(ToString::to_string).collect(),
        warnings,
        rejected,
        duplicate_ids: run.duplicate_ids.load(Ordering::Relaxed),
        stopped_early,
        first_rejects: run.first_rejects.into_inner().expect("no poisoned lock"),
        samples,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn read_manifest(data_dir: &DataDir) -> Result<Manifest, TransformError> {
    use crate::manifest::ManifestError;
    match Manifest::read(data_dir) {
        Ok(Some(manifest)) => Ok(manifest),
        Ok(None) => Err(TransformError::NoExport { data_dir: data_dir.root().to_path_buf() }),
        Err(ManifestError::Unreadable(error)) => Err(error.into()),
        Err(ManifestError::Invalid { path, reason }) => {
            Err(TransformError::BadManifest { path, reason: reason.to_string() })
        }
    }
}

fn remove_jsonl_files(dir: &Path) -> Result<(), TransformError> {
    for entry in std::fs::read_dir(dir).map_err(DataDirError::new("read", dir))? {
        let path = entry.map_err(DataDirError::new("read", dir))?.path();
        // Files, and their line indexes (whole, or left partial by a run that stopped).
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let index = name.ends_with(".jsonl.lines")
            || (name.contains(".jsonl.lines.") && name.ends_with(".partial"));
        if name.ends_with(".jsonl") || index {
            data_dir::remove_if_exists(&path)?;
        }
    }
    Ok(())
}

/// Shared state of one transform run.
struct Run<'a> {
    data_dir: &'a DataDir,
    options: &'a TransformOptions,
    rejected: AtomicU64,
    /// Rows rejected because their legacy id repeats.
    duplicate_ids: AtomicU64,
    stop: AtomicBool,
    first_rejects: Mutex<Vec<RejectRecord>>,
    /// One rejects file per source table, opened on its first reject.
    rejects: Mutex<HashMap<TableName, JsonlWriter>>,
}

impl Run<'_> {
    /// Whether to stop: too many rejects, or cancelled.
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.options.cancel.load(Ordering::Relaxed)
    }

    fn record_reject(
        &self,
        source: &TableName,
        record: RejectRecord,
    ) -> Result<(), TransformError> {
        let total = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        if self.options.max_rejected.is_some_and(|max| total > max) {
            self.stop.store(true, Ordering::Relaxed);
        }
        {
            let mut first = self.first_rejects.lock().expect("no poisoned lock");
            if first.len() < FIRST_REJECTS {
                first.push(record.clone());
            }
        }
        if self.options.dry_run {
            return Ok(());
        }
        let mut writers = self.rejects.lock().expect("no poisoned lock");
        let writer = match writers.entry(source.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let path = self.data_dir.path(&format!("rejects/{}.jsonl", source.file_stem()));
                entry.insert(JsonlWriter::create(path)?)
            }
        };
        serde_json::to_writer(&mut *writer.buffer(), &record).expect("a reject serializes");
        writer.buffer().push(b'\n');
        writer.end_lines(1)?;
        Ok(())
    }

    fn finish_rejects(&self) -> Result<(), TransformError> {
        let writers = std::mem::take(&mut *self.rejects.lock().expect("no poisoned lock"));
        for (_, writer) in writers {
            writer.finish()?;
        }
        Ok(())
    }
}

/// Streams a raw file's rows in order with their 1-based line numbers (`each` returns false to
/// stop), checking the file against the manifest once read through.
fn for_each_row(
    data_dir: &DataDir,
    exported: &ExportedTable,
    shape: &RowShape,
    mut each: impl FnMut(u64, &Row<'_>) -> Result<bool, TransformError>,
) -> Result<(), TransformError> {
    let path = data_dir.path(&exported.file);
    let mut blocks = RawBlocks::open(&path)?;
    while let Some(block) = blocks.next_block()? {
        let mut values = Vec::new();
        for (number, line) in block.lines() {
            let row = Row::parse_reusing(line, shape, values)
                .map_err(|e| corrupt_raw(&path, number, e))?;
            if !each(number, &row)? {
                return Ok(());
            }
            values = row.into_values();
        }
    }
    blocks.verify(exported)
}

fn corrupt_raw(path: &Path, line: u64, error: row::LineError) -> TransformError {
    TransformError::CorruptRaw { file: path.to_path_buf(), line, reason: error.to_string() }
}

/// The columns of `table`'s raw file, from the export's catalog.
fn shape(catalog: &Catalog, table: &TableName) -> RowShape {
    RowShape::new(
        catalog.table(table).into_iter().flat_map(|t| t.columns.iter().map(|c| c.name.as_str())),
    )
}

/// Per table of the plan, per reference: the child's key forms when the key is matched by
/// canonical form (`keys`), `None` when by its printed form. A key Postgres compares in a way
/// migrate cannot reproduce stops the run here, before any row.
fn reference_forms(
    plan: &Plan,
    catalog: &Catalog,
) -> Result<Vec<Vec<Option<Vec<keys::KeyForm>>>>, TransformError> {
    plan.tables
        .iter()
        .map(|table| {
            table
                .references
                .iter()
                .map(|reference| {
                    let parent = plan
                        .table(&reference.parent)
                        .expect("plan resolution only makes references to migrated tables");
                    match keys::forms(catalog, table, reference, parent) {
                        Ok(forms) if forms.is_printed() => Ok(None),
                        Ok(forms) => Ok(Some(forms.child)),
                        Err(unmatchable) => {
                            Err(TransformError::UnmatchableKey(Box::new(error::UnmatchableKey {
                                table: table.source.clone(),
                                what: format!("reference `{}`", reference.constraint),
                                parent: reference.parent.clone(),
                                column: unmatchable.column,
                                reason: unmatchable.reason,
                            })))
                        }
                    }
                })
                .collect()
        })
        .collect()
}

/// For every parent table some reference points at: the legacy ids of its rows that pass its
/// filters (rows it drops or rejects are not known here; verify catches references to them),
/// with their canonical keys when some key column prints equal values differently.
fn parent_keys<'a>(
    plan: &Plan,
    catalog: &Catalog,
    raw: &impl Fn(&TableName) -> Result<&'a ExportedTable, TransformError>,
    run: &Run<'_>,
) -> Result<HashMap<TableName, ParentKeys>, TransformError> {
    let mut all = HashMap::new();
    for reference in plan.tables.iter().flat_map(|t| &t.references) {
        if all.contains_key(&reference.parent) {
            continue;
        }
        let parent = plan
            .table(&reference.parent)
            .expect("plan resolution only makes references to migrated tables");
        let parent_table = catalog.table(&reference.parent);
        let forms: Vec<keys::KeyForm> = parent
            .legacy_id
            .columns
            .iter()
            .map(|c| {
                parent_table
                    .and_then(|t| t.column(c))
                    .map_or(keys::KeyForm::Printed, keys::parent_form)
            })
            .collect();
        let mut keys = ParentKeys::new(&forms);
        let shape = shape(catalog, &reference.parent);
        let key = shape.positions(parent.legacy_id.columns.iter().map(String::as_str));
        let mut canonical = String::new();
        for_each_row(run.data_dir, raw(&reference.parent)?, &shape, |_, row| {
            if document::passes(row, &parent.filters)
                && let Ok(legacy) = document::legacy_id(row, &parent.legacy_id.columns, &key)
            {
                let canonical = keys.is_canonical().then(|| {
                    let texts = key.iter().map(|&p| row.text_at(p));
                    keys::write_canonical_key(texts, &forms, &mut canonical);
                    canonical.clone()
                });
                if let Err(other) = keys.insert(legacy.clone(), canonical) {
                    return Err(TransformError::AmbiguousKeys {
                        table: reference.parent.clone(),
                        first: other,
                        second: legacy,
                    });
                }
            }
            Ok(true)
        })?;
        all.insert(reference.parent.clone(), keys);
    }
    Ok(all)
}

/// The keys of the objects `storage.objects` lists, when some table has a file column (their
/// values are checked against it); empty otherwise.
fn storage_objects(plan: &Plan, data_dir: &DataDir) -> Result<StorageObjects, TransformError> {
    if plan.tables.iter().all(|t| t.files.is_empty()) {
        return Ok(StorageObjects::default());
    }
    Ok(crate::files::read_objects(data_dir)?.iter().map(|o| o.name()).collect())
}

/// What [`merged_fields`] gathers for one table from the tables merged into it.
struct MergedTables {
    fields: MergedFields,
    /// The target's key forms, when merged rows are keyed canonically.
    forms: Option<Vec<keys::KeyForm>>,
    /// Merged timestamps that lost sub-millisecond digits.
    sub_ms: u64,
    accounts: Vec<SourceAccount>,
}

/// The fields merged tables add to `table`'s documents, by legacy id (or, when some `on` key
/// prints equal values differently, by canonical key, with the target's key forms to look it up
/// with), how many of their timestamps lost sub-millisecond digits, and what became of each
/// merged table's rows. Rows that cannot be converted are rejected under their own table.
fn merged_fields<'a>(
    table: &TablePlan,
    catalog: &Catalog,
    raw: &impl Fn(&TableName) -> Result<&'a ExportedTable, TransformError>,
    run: &Run<'_>,
) -> Result<MergedTables, TransformError> {
    let mut merged = MergedFields::new();
    let mut sub_ms = 0;
    let mut forms = Vec::new();
    let mut accounts = Vec::new();
    for merge in &table.merges {
        let found = keys::column_forms(
            catalog,
            &merge.source,
            &merge.on,
            &table.source,
            &table.legacy_id.columns,
        )
        .map_err(|unmatchable| {
            TransformError::UnmatchableKey(Box::new(error::UnmatchableKey {
                table: merge.source.clone(),
                what: format!("merge key `{}`", merge.on.join("`, `")),
                parent: table.source.clone(),
                column: unmatchable.column,
                reason: unmatchable.reason,
            }))
        })?;
        forms.push(found);
    }
    // One keying for every merged table: canonical as soon as one needs it.
    let target_forms = (!forms.iter().all(keys::ReferenceForms::is_printed))
        .then(|| forms.first().map(|f| f.parent.clone()))
        .flatten();
    for (index, (merge, forms)) in table.merges.iter().zip(&forms).enumerate() {
        let shape = shape(catalog, &merge.source);
        let columns = Columns::new(&shape, &merge.on, &merge.fields);
        let timestamps = MsTimestamp::of(&merge.fields, &columns);
        let mut account = SourceAccount {
            table: merge.source.to_string(),
            target: Some(table.target.clone()),
            ..SourceAccount::default()
        };
        let mut filtered_by = vec![0u64; merge.filters.len()];
        for_each_row(run.data_dir, raw(&merge.source)?, &shape, |line, row| {
            account.rows += 1;
            if let Some(rule) = document::failing_filter(row, &merge.filters) {
                filtered_by[rule] += 1;
                return Ok(true);
            }
            match document::merged_row(row, &merge.on, &merge.fields, &columns, table.nulls) {
                Ok((key, fields)) => {
                    account.merged += 1;
                    sub_ms += timestamps.iter().map(|t| t.dropped(row)).sum::<u64>();
                    let key = match target_forms {
                        Some(_) => {
                            let mut canonical = String::new();
                            let texts = columns.key.iter().map(|&p| row.text_at(p));
                            keys::write_canonical_key(texts, &forms.child, &mut canonical);
                            canonical
                        }
                        None => key,
                    };
                    let entry = merged.entry(key).or_default();
                    entry.fields.extend(fields);
                    entry.rows.push(MergedRow {
                        merge: index,
                        line,
                        key: document::key_of(row, &merge.on),
                    });
                }
                Err(rejection) => {
                    account.rejected += 1;
                    run.record_reject(
                        &merge.source,
                        reject_record(&merge.source, line, rejection),
                    )?;
                }
            }
            Ok(!run.stopping())
        })?;
        // A second row of this merged table for one document would overwrite the first one's
        // fields, so it stops the run instead.
        let rows_of = |entry: &MergedEntry| entry.rows.iter().filter(|r| r.merge == index).count();
        let repeated: Vec<(&String, usize)> = merged
            .iter()
            .map(|(id, entry)| (id, rows_of(entry)))
            .filter(|&(_, rows)| rows > 1)
            .collect();
        if let Some(&(id, rows)) = repeated.iter().min() {
            return Err(TransformError::MergeNotOneToOne {
                merged: merge.source.to_string(),
                target: table.source.to_string(),
                rows: rows as u64,
                ids: repeated.len() as u64,
                id: id.clone(),
            });
        }
        for (filter, count) in merge.filters.iter().zip(filtered_by) {
            if count > 0 {
                *account.filtered.entry(filter_rule(filter)).or_default() += count;
            }
        }
        accounts.push(account);
    }
    Ok(MergedTables { fields: merged, forms: target_forms, sub_ms, accounts })
}

/// A field under policy `ms` (or an array of them), to count the values that lose
/// sub-millisecond digits.
struct MsTimestamp {
    position: Option<usize>,
    array: bool,
    /// What the field's default loses, for rows where the column is NULL.
    default: u64,
}

impl MsTimestamp {
    fn of(fields: &[plan::FieldPlan], columns: &Columns) -> Vec<MsTimestamp> {
        fields
            .iter()
            .zip(&columns.fields)
            .filter_map(|(field, &position)| {
                let array = match &field.conversion {
                    plan::Conversion::TimestampMs { .. } => false,
                    plan::Conversion::Array(element)
                        if matches!(**element, plan::Conversion::TimestampMs { .. }) =>
                    {
                        true
                    }
                    _ => return None,
                };
                let default = field
                    .default
                    .as_ref()
                    .map_or(0, |d| convert::sub_ms_dropped(&d.to_string(), array));
                Some(MsTimestamp { position, array, default })
            })
            .collect()
    }

    fn dropped(&self, row: &Row<'_>) -> u64 {
        match row.text_at(self.position) {
            "null" => self.default,
            text => convert::sub_ms_dropped(text, self.array),
        }
    }
}

/// Rows of merged tables whose fields no written document took (their target row is missing,
/// filtered or rejected) are rejected under their own table, not counted as merged: counted as
/// merged, their fields would be lost while verify called every row accounted for.
fn reject_merged_into_nothing(
    table: &TablePlan,
    merged: &MergedFields,
    accounts: &mut [SourceAccount],
    run: &Run<'_>,
) -> Result<(), TransformError> {
    let mut untaken: Vec<(&MergedRow, &str)> = merged
        .iter()
        .filter(|(_, entry)| !entry.taken.load(Ordering::Relaxed))
        .flat_map(|(id, entry)| entry.rows.iter().map(move |row| (row, id.as_str())))
        .collect();
    untaken.sort_by_key(|(row, _)| (row.merge, row.line));
    for (row, id) in untaken {
        let merge = &table.merges[row.merge];
        let reason = format!(
            "no document of `{target}` has legacy id `{id}` to merge this row into (the row of \
             `{source}` it belongs to is missing, filtered out or rejected), so its fields would \
             be lost",
            target = table.target,
            source = table.source,
        );
        let record = RejectRecord {
            table: merge.source.to_string(),
            line: row.line,
            key: row.key.clone(),
            field: merge.on.join(","),
            reason,
        };
        run.record_reject(&merge.source, record)?;
        let account = &mut accounts[row.merge];
        account.merged -= 1;
        account.rejected += 1;
    }
    Ok(())
}

fn reject_record(table: &TableName, line: u64, rejection: document::Rejection) -> RejectRecord {
    RejectRecord {
        table: table.to_string(),
        line,
        key: rejection.key,
        field: rejection.field,
        reason: rejection.reason,
    }
}

/// Rows are read in blocks of about this size and transformed in parallel, block by block;
/// results are written in order, so the output does not depend on the number of threads.
const BLOCK_BYTES: usize = 1 << 20;
/// Blocks in flight per worker thread: one being transformed, one waiting. Bounds memory to a
/// few MiB per core whatever the table size (more buys no speed: measured at 4 and 8 per
/// worker, and with 128 KiB to 2 MiB blocks, on 2 cores).
const BLOCKS_PER_WORKER: u64 = 2;

/// What one block of rows became.
#[derive(Default)]
struct BlockResult {
    /// The block's bytes, back to be read into again.
    input: Vec<u8>,
    lines: Vec<u8>,
    rows: u64,
    documents: u64,
    filtered: u64,
    dropped: u64,
    sub_ms: u64,
    /// References that found no parent, set to null or kept as legacy values by their policy.
    orphans: u64,
    /// Password hashes by format (auth presets' shaped tables).
    hash_formats: BTreeMap<&'static str, u64>,
    /// Rows left out per filter of the table plan, and per reference whose orphans are dropped.
    filtered_by: Vec<u64>,
    dropped_by: Vec<u64>,
    rejects: Vec<RejectRecord>,
    /// The [`id_hash`] of each document's legacy id.
    ids: Vec<u64>,
    /// The [`line_index::line_hash`] and length (newline excluded) of each document's line.
    line_hashes: Vec<(u128, u64)>,
    samples: Vec<serde_json::Value>,
}

fn transform_table(
    table: &TablePlan,
    exported: &ExportedTable,
    shape: &RowShape,
    lookups: &Lookups<'_>,
    run: &Run<'_>,
    reporter: &dyn Reporter,
) -> Result<(TableReport, SourceAccount, Vec<serde_json::Value>), TransformError> {
    let file = format!("transformed/{}.jsonl", table.target);
    let mut filtered_by = vec![0u64; table.filters.len()];
    let mut dropped_by = vec![0u64; drop_ways(table)];
    let path_out = run.data_dir.path(&file);
    let mut writer = if run.options.dry_run {
        None
    } else {
        Some((JsonlWriter::create(path_out.clone())?, LineIndexWriter::create(&path_out)?))
    };
    let mut progress =
        reporter.table_started(&table.source.to_string(), Some(exported.rows), Unit::Rows);
    let mut report = TableReport {
        table: table.target.clone(),
        sources: std::iter::once(&table.source)
            .chain(table.merges.iter().map(|m| &m.source))
            .map(ToString::to_string)
            .collect(),
        file: None,
        rows: 0,
        documents: 0,
        filtered: 0,
        dropped: 0,
        rejected: 0,
        sub_ms_dropped: 0,
        orphan_references: 0,
        password_hashes: BTreeMap::new(),
        bytes: 0,
        checksum: None,
    };
    let mut samples = Vec::new();
    let path = run.data_dir.path(&exported.file);
    let columns = Columns::new(shape, &table.legacy_id.columns, &table.fields);
    let sample = if run.options.dry_run { run.options.sample } else { 0 };
    let direct = DirectPlan::compile(table, shape, &columns);
    let context = TableContext {
        path: &path,
        table,
        shape,
        columns: &columns,
        timestamps: MsTimestamp::of(&table.fields, &columns),
        direct: direct.as_ref(),
        lookups,
        samples: sample,
    };
    let mut blocks = RawBlocks::open(&path)?;
    let id_dir = if run.options.dry_run {
        run.data_dir.root().to_path_buf()
    } else {
        run.data_dir.path("transformed")
    };
    let mut ids = IdHashes::new(&id_dir, &table.target, ID_HASHES_IN_MEMORY);
    let mut absorb = |result: BlockResult| -> Result<(Vec<u8>, Spare), TransformError> {
        report.rows += result.rows;
        report.documents += result.documents;
        report.filtered += result.filtered;
        report.dropped += result.dropped;
        report.sub_ms_dropped += result.sub_ms;
        report.orphan_references += result.orphans;
        for (format, count) in &result.hash_formats {
            *report.password_hashes.entry((*format).to_owned()).or_default() += count;
        }
        report.rejected += result.rejects.len() as u64;
        for (total, count) in filtered_by.iter_mut().zip(&result.filtered_by) {
            *total += count;
        }
        for (total, count) in dropped_by.iter_mut().zip(&result.dropped_by) {
            *total += count;
        }
        for reject in result.rejects {
            if run.stopping() {
                break;
            }
            run.record_reject(&table.source, reject)?;
        }
        ids.extend(&result.ids)?;
        let room = run.options.sample.saturating_sub(samples.len());
        samples.extend(result.samples.into_iter().take(room));
        if let Some((writer, index)) = writer.as_mut() {
            writer.write_lines(&result.lines, result.documents)?;
            for &(hash, len) in &result.line_hashes {
                index.push(hash, len)?;
            }
        }
        progress.rows(report.rows);
        Ok((result.input, (result.lines, result.ids, result.line_hashes)))
    };
    // A pipeline: this thread reads (and hashes) blocks and writes (and hashes) results in
    // order, while the pool transforms up to `in_flight` blocks, so reading, transforming
    // and writing overlap. Buffers go round: memory stays a few MiB, and pages are not faulted
    // in afresh for every block.
    type BlockOutcome = Result<BlockResult, TransformError>;
    let (done, finished) = mpsc::channel::<(u64, std::thread::Result<BlockOutcome>)>();
    let mut outcome = Ok(());
    let mut spare_lines: Vec<Spare> = Vec::new();
    let in_flight = BLOCKS_PER_WORKER * rayon::current_num_threads() as u64;
    rayon::in_place_scope(|scope| {
        let mut waiting = BTreeMap::new();
        let (mut sent, mut written) = (0u64, 0u64);
        let mut reading = true;
        loop {
            while reading && sent - written < in_flight && outcome.is_ok() && !run.stopping() {
                match blocks.next_block() {
                    Ok(Some(block)) => {
                        let done = done.clone();
                        let spare = spare_lines.pop().unwrap_or_default();
                        let context = &context;
                        scope.spawn(move |_| {
                            // A panic (a bug) is reported too, not left to block `recv`.
                            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                transform_block(block, spare, context)
                            }));
                            let _ = done.send((sent, result));
                        });
                        sent += 1;
                    }
                    Ok(None) => reading = false,
                    Err(e) => outcome = Err(e),
                }
            }
            if written == sent {
                break;
            }
            let (number, result) = finished.recv().expect("every spawned block reports");
            waiting.insert(number, result.unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            while let Some(result) = waiting.remove(&written) {
                written += 1;
                if outcome.is_err() {
                    continue;
                }
                match result.and_then(&mut absorb) {
                    Ok((input, spare)) => {
                        blocks.recycle(input);
                        spare_lines.push(spare);
                    }
                    Err(e) => outcome = Err(e),
                }
            }
        }
    });
    outcome?;
    progress.finished(report.rows);
    if !run.stopping() {
        blocks.verify(exported)?;
        if let Some((writer, index)) = writer {
            let digest = writer.finish()?;
            index.finish(&path_out, &digest.checksum)?;
            report.file = Some(file);
            report.bytes = digest.bytes;
            report.checksum = Some(digest.checksum);
        }
        let repeated = ids.repeated()?;
        if !repeated.is_empty() {
            reject_repeated_ids(&context, exported, &repeated, &mut report, run)?;
        }
    }
    // After the duplicate check, which moves documents to the rejects.
    let mut account = SourceAccount {
        table: table.source.to_string(),
        target: Some(table.target.clone()),
        rows: report.rows,
        documents: report.documents,
        rejected: report.rejected,
        ..SourceAccount::default()
    };
    let rules = table.filters.iter().map(filter_rule).zip(filtered_by);
    let drops = drop_rules(table).zip(dropped_by);
    for (rule, count) in rules.chain(drops) {
        if count > 0 {
            *account.filtered.entry(rule).or_default() += count;
        }
    }
    Ok((report, account, samples))
}

/// A block of whole lines of a raw file, and the line number of its first line.
struct Block {
    first_line: u64,
    bytes: Vec<u8>,
}

impl Block {
    /// The non-empty lines with their 1-based numbers in the file.
    fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let bytes = &self.bytes[..];
        let mut start = 0;
        memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]).enumerate().filter_map(
            move |(i, end)| {
                let line = &bytes[start.min(end)..end];
                start = end + 1;
                (!line.is_empty()).then_some((self.first_line + i as u64, line))
            },
        )
    }
}

/// Reads a raw file in blocks of whole lines, hashing every byte for [`RawBlocks::verify`].
struct RawBlocks {
    path: std::path::PathBuf,
    file: File,
    hasher: blake3::Hasher,
    carry: Vec<u8>,
    /// Buffers of blocks already transformed, to read into again.
    spare: Vec<Vec<u8>>,
    next_line: u64,
    done: bool,
}

impl RawBlocks {
    fn open(path: &Path) -> Result<Self, TransformError> {
        let file = File::open(path).map_err(DataDirError::new("open", path))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            hasher: blake3::Hasher::new(),
            carry: Vec::new(),
            spare: Vec::new(),
            next_line: 1,
            done: false,
        })
    }

    /// The next block of whole lines, `None` at the end of the file.
    fn next_block(&mut self) -> Result<Option<Block>, TransformError> {
        while !self.done {
            let (mut bytes, start) = self.buffer_with_carry();
            let mut filled = start;
            while filled < bytes.len() {
                let n = self
                    .file
                    .read(&mut bytes[filled..])
                    .map_err(DataDirError::new("read", &self.path))?;
                if n == 0 {
                    self.done = true;
                    break;
                }
                self.hasher.update(&bytes[filled..filled + n]);
                filled += n;
            }
            bytes.truncate(filled);
            // Keep a trailing partial line for the next block.
            if !self.done {
                match memchr::memrchr(b'\n', &bytes) {
                    Some(end) => {
                        self.carry.extend_from_slice(&bytes[end + 1..]);
                        bytes.truncate(end + 1);
                    }
                    None => {
                        self.carry = bytes;
                        continue;
                    }
                }
            }
            if bytes.is_empty() {
                continue;
            }
            let lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
            let lines = lines + u64::from(bytes.last() != Some(&b'\n'));
            let block = Block { first_line: self.next_line, bytes };
            self.next_line += lines;
            return Ok(Some(block));
        }
        Ok(None)
    }

    /// A buffer of the carried partial line and `BLOCK_BYTES` to read into after it, and the
    /// carried line's length. A spare buffer keeps its length, so that only bytes it never had
    /// are zeroed (std's `read_to_end` would not zero, but reads in small steps at first).
    fn buffer_with_carry(&mut self) -> (Vec<u8>, usize) {
        let start = self.carry.len();
        let mut bytes = if start > BLOCK_BYTES / 2 {
            // A long line: grow its buffer rather than copy it again.
            std::mem::take(&mut self.carry)
        } else {
            let mut bytes = self.spare.pop().unwrap_or_default();
            if bytes.len() < start {
                bytes.resize(start, 0);
            }
            bytes[..start].copy_from_slice(&self.carry);
            self.carry.clear();
            bytes
        };
        bytes.reserve_exact((start + BLOCK_BYTES).saturating_sub(bytes.len()));
        bytes.resize(start + BLOCK_BYTES, 0);
        (bytes, start)
    }

    /// Takes back a block's buffer to read into again.
    fn recycle(&mut self, bytes: Vec<u8>) {
        self.spare.push(bytes);
    }

    /// Checks the whole file against the export's manifest.
    fn verify(&self, exported: &ExportedTable) -> Result<(), TransformError> {
        let checksum = format!("blake3:{}", self.hasher.finalize().to_hex());
        if self.next_line - 1 != exported.rows || checksum != exported.checksum {
            return Err(TransformError::RawChanged {
                file: self.path.clone(),
                table: exported.table.clone(),
            });
        }
        Ok(())
    }
}

/// What every block of a table is transformed with.
struct TableContext<'a> {
    path: &'a Path,
    table: &'a TablePlan,
    shape: &'a RowShape,
    columns: &'a Columns,
    /// Fields under policy `ms`, whose dropped sub-millisecond digits are counted.
    timestamps: Vec<MsTimestamp>,
    direct: Option<&'a DirectPlan>,
    lookups: &'a Lookups<'a>,
    /// Sample documents to keep (dry run).
    samples: usize,
}

/// A finished block's output buffers, to transform another block into: lines, id hashes and
/// line hashes.
type Spare = (Vec<u8>, Vec<u64>, Vec<(u128, u64)>);

/// Transforms a block's rows, writing their lines and id hashes into `spare` buffers.
fn transform_block(
    block: Block,
    spare: Spare,
    context: &TableContext<'_>,
) -> Result<BlockResult, TransformError> {
    let (lines, ids, line_hashes) = spare;
    let mut result = BlockResult {
        lines,
        ids,
        line_hashes,
        filtered_by: vec![0; context.table.filters.len()],
        dropped_by: vec![0; drop_ways(context.table)],
        ..BlockResult::default()
    };
    result.lines.clear();
    result.ids.clear();
    result.line_hashes.clear();
    result.lines.reserve_exact(block.bytes.len() + block.bytes.len() / 4);
    let mut scratch = Scratch::default();
    let mut values = Vec::new();
    for (number, line) in block.lines() {
        let row = Row::parse_reusing(line, context.shape, std::mem::take(&mut values))
            .map_err(|e| corrupt_raw(context.path, number, e))?;
        transform_line(&row, number, context, &mut scratch, &mut result);
        values = row.into_values();
    }
    result.input = block.bytes;
    Ok(result)
}

fn transform_line(
    row: &Row<'_>,
    number: u64,
    context: &TableContext<'_>,
    scratch: &mut Scratch,
    result: &mut BlockResult,
) {
    let TableContext { table, columns, lookups, .. } = *context;
    result.rows += 1;
    let start = result.lines.len();
    // The fast path writes most rows; the general path gives every other row its document or
    // the precise reason it has none.
    let written = match context.direct {
        Some(_) if let Some(rule) = document::failing_filter(row, &table.filters) => {
            result.filtered += 1;
            result.filtered_by[rule] += 1;
            return;
        }
        Some(direct) => direct.write_line(row, lookups, scratch, &mut result.lines).ok(),
        None => None,
    };
    if let Some(hash) = written {
        result.ids.push(hash);
    } else {
        match document::transform_row(row, table, columns, lookups) {
            Outcome::Document(transformed) => {
                write_document_line(&transformed, table, &mut result.lines);
                result.ids.push(id_hash(&transformed.legacy_id));
                result.orphans += u64::from(transformed.orphans);
                if let Some(format) = transformed.hash_format {
                    *result.hash_formats.entry(format).or_default() += 1;
                }
            }
            Outcome::Filtered => {
                result.filtered += 1;
                if let Some(rule) = document::failing_filter(row, &table.filters) {
                    result.filtered_by[rule] += 1;
                }
                return;
            }
            Outcome::Dropped(reference) => {
                result.dropped += 1;
                result.dropped_by[reference] += 1;
                return;
            }
            Outcome::Rejected(rejection) => {
                result.rejects.push(reject_record(&table.source, number, rejection));
                return;
            }
        }
    }
    result.documents += 1;
    let line = &result.lines[start..result.lines.len() - 1];
    result.line_hashes.push((line_index::line_hash(line), line.len() as u64));
    for timestamp in &context.timestamps {
        result.sub_ms += timestamp.dropped(row);
    }
    if result.samples.len() < context.samples {
        let line = &result.lines[start..];
        result.samples.push(serde_json::from_slice(line).expect("we wrote JSON"));
    }
}

/// Moves every document whose legacy id other documents of the table hold too from the
/// transformed file to the rejects. `repeated` are the [`id_hash`]es seen more than once: the
/// rows with those hashes are read again to compare their actual ids (hashes can collide), and
/// the file is written again (a partial file renamed into place) without the repeated ids.
/// Memory grows with the number of ids that repeat, not with the table.
fn reject_repeated_ids(
    context: &TableContext<'_>,
    exported: &ExportedTable,
    repeated: &[u64],
    report: &mut TableReport,
    run: &Run<'_>,
) -> Result<(), TransformError> {
    let TableContext { table, shape, columns, lookups, .. } = *context;
    // The legacy id of a row that became a document, when its hash repeats. The outcome is
    // the one the first pass had: both paths give the same document for the same row.
    let suspect = |row: &Row<'_>| -> Option<String> {
        let id = document::legacy_id(row, &table.legacy_id.columns, &columns.key).ok()?;
        repeated.binary_search(&id_hash(&id)).ok()?;
        let outcome = document::transform_row(row, table, columns, lookups);
        matches!(outcome, Outcome::Document(_)).then_some(id)
    };
    let mut holders: FxHashMap<String, u64> = FxHashMap::default();
    for_each_row(run.data_dir, exported, shape, |_, row| {
        if let Some(id) = suspect(row) {
            *holders.entry(id).or_default() += 1;
        }
        Ok(!run.options.cancel.load(Ordering::Relaxed))
    })?;
    holders.retain(|_, rows| *rows > 1);
    if holders.is_empty() || run.options.cancel.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut moved = 0;
    for_each_row(run.data_dir, exported, shape, |line, row| {
        if let Some(id) = suspect(row)
            && let Some(&rows) = holders.get(&id)
        {
            let reason = format!(
                "legacy id `{id}` is held by {rows} rows of `{source}`; a legacy id must be \
                 unique (Convex would keep one document of them); hint: set \
                 `tables.\"{source}\".legacy_id` in the plan to columns whose values are unique",
                source = table.source
            );
            let record = RejectRecord {
                table: table.source.to_string(),
                line,
                key: document::key_of(row, &table.legacy_id.columns),
                field: table.legacy_id.field.clone(),
                reason,
            };
            run.record_reject(&table.source, record)?;
            moved += 1;
            // Merged rows this document took have no document now: they are rejected after
            // the table (`reject_merged_into_nothing`), not counted as merged.
            if let Some(entry) = document::merged_entry(row, columns, lookups, &id) {
                entry.taken.store(false, Ordering::Relaxed);
            }
        }
        Ok(!run.stopping())
    })?;
    report.documents -= moved;
    report.rejected += moved;
    run.duplicate_ids.fetch_add(moved, Ordering::Relaxed);
    let Some(file) = report.file.as_ref().filter(|_| !run.stopping()) else {
        return Ok(());
    };
    let path = run.data_dir.path(file);
    let mut lines = BufReader::with_capacity(
        1 << 20,
        File::open(&path).map_err(DataDirError::new("open", &path))?,
    );
    let mut writer = JsonlWriter::create(path.clone())?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).map_err(|e| DataDirError::new("read", &path)(e))? == 0
        {
            break;
        }
        let id = line_legacy_id(&line, &table.legacy_id.field).expect("transform wrote this line");
        if !holders.contains_key(&id) {
            writer.buffer().extend_from_slice(&line);
            writer.end_lines(1)?;
        }
    }
    let digest = writer.finish()?;
    debug_assert_eq!(digest.lines, report.documents);
    // The index transform wrote describes the file as it was; sync builds one again.
    data_dir::remove_if_exists(&line_index::path_of(&path))?;
    report.bytes = digest.bytes;
    report.checksum = Some(digest.checksum);
    Ok(())
}

/// The legacy id of a document line.
fn line_legacy_id(line: &[u8], field: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        doc: HashMap<&'a str, &'a serde_json::value::RawValue>,
    }
    let line: Line<'_> = serde_json::from_slice(line).ok()?;
    serde_json::from_str(line.doc.get(field)?.get()).ok()
}

/// A reference in a document line up to its parent's legacy id:
/// `"field":{"table":"parent","legacyId":`.
fn write_reference_head(out: &mut Vec<u8>, reference: &ReferencePlan) {
    use crate::json_text::write_string;
    write_string(out, &reference.field);
    out.extend_from_slice(b":{\"table\":");
    write_string(out, &reference.parent_target);
    out.extend_from_slice(b",\"legacyId\":");
}

/// One line of `transformed/<table>.jsonl`:
/// `{"doc":{…},"refs":{"field":{"table":"…","legacyId":"…"}}}` with the document in Convex's
/// tagged encoding; `refs` is left out when empty.
fn write_document_line(transformed: &Transformed, table: &TablePlan, out: &mut Vec<u8>) {
    use crate::json_text::write_string;
    out.extend_from_slice(b"{\"doc\":");
    crate::convex::value::write_document(out, &transformed.document);
    if !transformed.references.is_empty() || !transformed.files.is_empty() {
        out.extend_from_slice(b",\"refs\":{");
        for (i, (index, parent)) in transformed.references.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_reference_head(out, &table.references[*index]);
            write_string(out, parent);
            out.push(b'}');
        }
        // A file column is a reference to `_storage` whose legacy id is the object's key.
        for (i, (index, key)) in transformed.files.iter().enumerate() {
            if i > 0 || !transformed.references.is_empty() {
                out.push(b',');
            }
            write_string(out, &table.files[*index].field);
            out.extend_from_slice(b":{\"table\":");
            write_string(out, plan::codegen::STORAGE_TABLE);
            out.extend_from_slice(b",\"legacyId\":");
            write_string(out, key);
            out.push(b'}');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}\n");
}
