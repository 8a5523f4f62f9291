//! `migrate rollback`: removes from a deployment every document the import wrote, and nothing
//! else.
//!
//! What the import wrote is what `transformed/` holds: each table's legacy ids, read from its
//! transformed file, are looked up in Convex (`migrate:get`, through the `by_legacy_id` index) a
//! batch at a time, children's tables first. A document found is removed only when its plain
//! fields are still those of its transformed line (the fingerprint verify compares,
//! [`crate::verify::canonical`]; references and system fields left out): one the application
//! changed since is listed and kept, unless `--force`. Removal is by Convex id and legacy id
//! together (`migrate:removeDocs`), so a document the application wrote is never touched, even
//! one that holds a legacy id the migration also used.
//!
//! With `[files]`, the files the migration stored go after the documents: every file a
//! `migrateFiles` record names, with its record (`files::remove`); the files the application
//! stored itself are recorded nowhere there and stay. A stored file cannot be changed in place,
//! so there is no "changed since the import" for files: `--force` does not apply to them.
//!
//! Nothing is checkpointed: every step is safe to repeat (a document already removed is not
//! found), so a rollback killed at any point finishes when run again. The deployment's ledger
//! says `rolling_back` while it runs and `rolled_back` once every table is done; then the
//! import state's checkpoints are dropped, since they describe documents that are gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::convex::client::{ConvexClient, FunctionKind};
use crate::data_dir::DataDir;
use crate::files::remove::FilesRollback;
use crate::import::state::{self, State};
use crate::import::transformed::TransformedFile;
use crate::import::{ImportError, Inputs, check_module};
use crate::ledger::{self, LedgerError, Status};
use crate::output::{Reporter, Unit};
use crate::verify::canonical::{Entries, Fingerprint, fingerprint_entries, raw_str};

/// What stops a rollback before it removes anything, beyond the ledger's refusals.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(
        "`transformed/{table}.jsonl` changed since it was imported: rollback finds what import \
         wrote through the transformed files, and would leave behind documents this one no \
         longer lists"
    )]
    TransformedSinceImport { table: String },
}

impl RollbackError {
    pub fn exit_code(&self) -> u8 {
        crate::exit_code::USAGE
    }

    pub fn hint(&self) -> Option<String> {
        Some(
            "roll back with the transformed data that was imported (run `migrate transform` on \
             that export again), or pass --force to roll back what the files list now"
                .into(),
        )
    }
}

/// `migrate:get` takes at most this many legacy ids.
const MAX_GET: usize = 1000;

#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// Print what would be removed; remove nothing, write nothing to the ledger.
    pub dry_run: bool,
    /// Remove documents changed since the import too.
    pub force: bool,
    /// Legacy ids looked up (and documents removed) per call.
    pub batch_size: usize,
    /// The deployment's import state (`import::state::place`).
    pub state: std::path::PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub dry_run: bool,
    pub import_id: String,
    pub plan_hash: String,
    /// Children's tables first: the order documents are removed in.
    pub tables: Vec<TableRollback>,
    /// Documents removed (`--dry-run`: that would be).
    pub removed: u64,
    /// Documents changed in Convex since the import and kept (without `--force`).
    pub kept: u64,
    /// The changed documents, kept or (with `--force`) removed.
    pub changed: Vec<Changed>,
    /// The files `[files]` stored, removed with their `migrateFiles` records (none without
    /// `[files]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesRollback>,
    /// Where the deployment's ledger says the migration stands now.
    pub status: Option<Status>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableRollback {
    pub table: String,
    /// Lines of the transformed file: the documents the import may have written.
    pub documents: u64,
    /// Of those, found in Convex.
    pub found: u64,
    pub removed: u64,
    /// Changed since the import, kept.
    pub kept: u64,
}

/// A document whose plain fields are no longer what the import wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Changed {
    pub table: String,
    pub legacy_id: String,
    pub id: String,
    pub removed: bool,
}

/// One document of a transformed file, reduced to what rollback compares.
struct Written {
    legacy: String,
    fields: Fingerprint,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    doc: Entries<'a>,
}

/// Rolls back the import of `inputs` from the deployment `client` talks to; `data_dir` holds
/// the transformed files and the import state.
pub async fn rollback(
    client: &ConvexClient,
    data_dir: &DataDir,
    inputs: &Inputs,
    options: &RollbackOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<RollbackReport, ImportError> {
    let started = Instant::now();
    let info = check_module(client, inputs).await?;
    let entries = ledger::list(client).await?;
    ledger::check_not_finalized(&entries, "rollback")?;
    let plan_hash = inputs.manifest.plan_hash.clone();
    let state_path = options.state.clone();
    let state = State::open_read_only(&state_path)?;
    // The state's import, when this deployment's ledger knows it (a state of another
    // deployment names another import).
    let from_state = match &state {
        Some(state) => state.meta(state::IMPORT_ID)?,
        None => None,
    }
    .filter(|id| entries.iter().any(|e| e.import_id == *id));
    if let (Some(state), Some(_)) = (&state, &from_state) {
        // The documents of a table transformed again since its import are not the ones the
        // transformed file lists now: some would be left behind without a word.
        for table in &inputs.manifest.tables {
            let imported = state.table_checksum(&table.table)?;
            if let Some(imported) = imported
                && Some(&imported) != table.checksum.as_ref()
                && !options.force
            {
                return Err(
                    RollbackError::TransformedSinceImport { table: table.table.clone() }.into()
                );
            }
        }
    }
    drop(state);
    // Without the import's state (another machine, or rolled back once already), the ledger's
    // latest import of this plan.
    let import_id = from_state
        .or_else(|| {
            entries
                .iter()
                .filter(|e| e.plan_hash == plan_hash)
                .max_by(|a, b| a.updated_at.total_cmp(&b.updated_at))
                .map(|e| e.import_id.clone())
        })
        .ok_or_else(|| LedgerError::NoImport {
            command: "roll back",
            plan_hash: plan_hash.clone(),
        })?;
    if !options.dry_run {
        ledger::write(client, &import_id, &inputs.plan, Status::RollingBack, None).await?;
    }

    let mut tables = Vec::new();
    let mut changed = Vec::new();
    let batch = options.batch_size.clamp(1, MAX_GET);
    for step in inputs.order.iter().rev() {
        let table = &step.table;
        let references = info.tables.get(table).map(|t| t.references.clone()).unwrap_or_default();
        let skip = |k: &str| k == "_id" || k == "_creationTime" || references.contains_key(k);
        let report = inputs.manifest.tables.iter().find(|t| t.table == *table);
        let mut written = Vec::new();
        if let Some(file) = report.and_then(|t| TransformedFile::of(data_dir, t)) {
            file.for_each_line(|line, text| {
                let bad =
                    |reason: String| ImportError::BadLine { path: file.path.clone(), line, reason };
                let parsed: Line<'_> =
                    serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
                let Some(legacy) = parsed.doc.get(&step.legacy_field).and_then(raw_str) else {
                    return Err(bad(format!("no string field `{}`", step.legacy_field)));
                };
                let fields = fingerprint_entries(&parsed.doc, skip);
                written.push(Written { legacy: legacy.into_owned(), fields });
                Ok(true)
            })?;
        }
        let mut row = TableRollback {
            table: table.clone(),
            documents: written.len() as u64,
            ..TableRollback::default()
        };
        let mut progress = reporter.table_started(table, Some(row.documents), Unit::Documents);
        let mut looked_up = 0;
        for chunk in written.chunks(batch) {
            let legacy_ids: Vec<&str> = chunk.iter().map(|w| w.legacy.as_str()).collect();
            let args = serde_json::json!({ "table": table, "legacyIds": legacy_ids });
            let found: Vec<Option<Box<RawValue>>> = client
                .call(FunctionKind::Query, "migrate:get", &args)
                .await
                .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
            let mut remove = Vec::new();
            for (written, doc) in chunk.iter().zip(found) {
                let Some(doc) = doc else { continue };
                let entries: Entries<'_> =
                    serde_json::from_str(doc.get()).map_err(|e| ImportError::Convex {
                        table: table.clone(),
                        source: crate::convex::client::CallError::Function {
                            path: "migrate:get".into(),
                            message: format!("not a document: {e}"),
                        },
                    })?;
                row.found += 1;
                let id = entries.get("_id").and_then(raw_str).map(|s| s.into_owned());
                let id = id.unwrap_or_default();
                if fingerprint_entries(&entries, skip) != written.fields {
                    changed.push(Changed {
                        table: table.clone(),
                        legacy_id: written.legacy.clone(),
                        id: id.clone(),
                        removed: options.force,
                    });
                    if !options.force {
                        row.kept += 1;
                        continue;
                    }
                }
                remove.push(serde_json::json!({ "id": id, "legacyId": written.legacy }));
            }
            row.removed += if options.dry_run || remove.is_empty() {
                remove.len() as u64
            } else {
                /// `gone`, not `deleted`: a call applied once whose reply was lost deletes
                /// nothing when sent again, yet its documents were removed.
                #[derive(Deserialize)]
                struct Removed {
                    gone: u64,
                }
                let args = serde_json::json!({ "table": table, "docs": remove });
                let removed: Removed = client
                    .call(FunctionKind::Mutation, "migrate:removeDocs", &args)
                    .await
                    .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
                removed.gone
            };
            looked_up += chunk.len() as u64;
            progress.rows(looked_up);
        }
        progress.finished(looked_up);
        tables.push(row);
    }

    // After the documents, which may hold the files' storage ids.
    let files = match &inputs.files {
        Some(_) => Some(
            crate::files::remove::rollback(client, options.dry_run, batch, reporter.as_ref())
                .await?,
        ),
        None => None,
    };

    let removed = tables.iter().map(|t| t.removed).sum();
    let kept = tables.iter().map(|t| t.kept).sum();
    let mut status = entries
        .iter()
        .filter(|e| e.import_id == import_id && e.plan_hash == plan_hash)
        .map(|e| e.status)
        .next_back();
    if !options.dry_run {
        let mut counts = BTreeMap::from([
            ("removed".to_owned(), removed),
            ("kept".to_owned(), kept),
            ("found".to_owned(), tables.iter().map(|t| t.found).sum()),
        ]);
        if let Some(files) = &files {
            counts.insert("files_removed".to_owned(), files.removed);
        }
        let entry =
            ledger::write(client, &import_id, &inputs.plan, Status::RolledBack, Some(&counts))
                .await?;
        status = Some(entry.status);
        // The checkpoints describe documents that are gone: the next import starts over.
        if let Some(state) = State::open_read_only(&state_path)? {
            drop(state);
            State::open(&state_path)?.reset_all()?;
        }
    }
    Ok(RollbackReport {
        dry_run: options.dry_run,
        import_id,
        plan_hash,
        tables,
        removed,
        kept,
        changed,
        files,
        status,
        seconds: started.elapsed().as_secs_f64(),
    })
}
