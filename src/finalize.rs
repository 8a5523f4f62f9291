//! `migrate finalize`: after go-live, takes the legacy-id scaffolding the migration added out
//! of a deployment.
//!
//! In order, each step safe to repeat, so that a finalize stopped anywhere finishes when run
//! again:
//! 1. the ledger must say this data's import completed (or is being finalized);
//! 2. each table's Convex id per legacy id is recorded in `data/finalize/<table>.jsonl`
//!    (`migrate:page`, only documents whose legacy id is one of `transformed/`'s), once: a file
//!    under its final name is complete, and a later run keeps it. Verify matches documents
//!    through it once their legacy ids are gone;
//! 3. `migrateTables.ts` is written without the `by_legacy_id` indexes, the legacy id fields
//!    optional (`codegen::LegacyIds::Finalized`);
//! 4. the ledger says `finalizing`: from here on import and rollback refuse;
//! 5. unless the plan keeps them (`[finalize] keep_legacy_ids = true`), the legacy id fields are
//!    patched out, a batch of ids at a time (`migrate:unsetLegacyIds`). Convex refuses that
//!    patch until the schema of step 3 is deployed: finalize then stops, saying so;
//! 6. the ledger says `finalized`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::convex::client::{CallError, ConvexClient, FunctionKind};
use crate::data_dir::{DataDir, write_atomically};
use crate::exit_code;
use crate::import::state::{self, State};
use crate::import::transformed::TransformedFile;
use crate::import::{ImportError, Inputs, check_module};
use crate::ledger::{self, LedgerError, Status};
use crate::output::{Reporter, Unit};
use crate::plan::convex_app::ConvexFiles;
use crate::verify::canonical::{Entries, raw_str};

/// Documents per `migrate:page` call while the ids are recorded.
const PAGE: u64 = 1000;

#[derive(Debug, Clone)]
pub struct FinalizeOptions {
    /// Documents patched per call.
    pub batch_size: usize,
    /// Overwrite a `migrateTables.ts` edited by a person.
    pub force: bool,
    /// The deployment's import state (`import::state::place`).
    pub state: std::path::PathBuf,
    /// The deployment's identity ([`crate::deployment::identity`]): its recorded ids are its own.
    pub identity: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FinalizeReport {
    pub import_id: String,
    pub plan_hash: String,
    /// The plan keeps the legacy id fields: nothing was patched.
    pub kept_legacy_ids: bool,
    pub tables: Vec<TableFinalize>,
    /// `migrateTables.ts` as written (deploy it).
    pub convex: ConvexFiles,
    pub status: Status,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TableFinalize {
    pub table: String,
    /// Migrated documents whose Convex id is recorded.
    pub recorded: u64,
    /// Documents whose legacy id field this run took out.
    pub patched: u64,
}

/// What stops a finalize, beyond the ledger's refusals.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("Convex refused to take the legacy ids out of `{table}`")]
    NotDeployed {
        table: String,
        #[source]
        source: CallError,
    },
}

impl FinalizeError {
    pub fn exit_code(&self) -> u8 {
        exit_code::CONVEX_FAILURE
    }

    pub fn hint(&self) -> Option<String> {
        Some(
            "deploy the app with the migrateTables.ts `migrate finalize` just wrote (`npx convex \
             deploy`: its legacy id fields are optional), then run `migrate finalize` again"
                .into(),
        )
    }
}

/// One line of `data/finalize/<table>.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedId {
    pub id: String,
    pub legacy_id: String,
}

/// Where finalize records a table's ids of the deployment `identity`.
pub fn ids_path(data_dir: &DataDir, identity: &str, table: &str) -> std::path::PathBuf {
    data_dir.path(&format!("finalize/{identity}/{table}.jsonl"))
}

/// The ids finalize recorded for `table`, if it did.
pub fn recorded_ids(
    data_dir: &DataDir,
    identity: &str,
    table: &str,
) -> Result<Option<Vec<RecordedId>>, ImportError> {
    let path = ids_path(data_dir, identity, table);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::data_dir::DataDirError::new("read", &path)(e).into()),
    };
    let mut ids = Vec::new();
    for (line, text) in (1..).zip(text.lines()) {
        let parsed = serde_json::from_str(text).map_err(|e| ImportError::BadLine {
            path: path.clone(),
            line,
            reason: e.to_string(),
        })?;
        ids.push(parsed);
    }
    Ok(Some(ids))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    page: Vec<Box<serde_json::value::RawValue>>,
    is_done: bool,
    continue_cursor: String,
}

/// Finalizes the import of `inputs` in the deployment `client` talks to; writes the Convex
/// files into `convex_dir` and reads the plan option from `plan_dir`.
pub async fn finalize(
    client: &ConvexClient,
    data_dir: &DataDir,
    inputs: &Inputs,
    plan_dir: &Path,
    convex_dir: &Path,
    options: &FinalizeOptions,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<FinalizeReport> {
    let started = Instant::now();
    let kept = crate::plan::keep_legacy_ids(plan_dir)?;
    check_module(client, inputs).await?;
    let entries = ledger::list(client).await.map_err(ImportError::from)?;
    let plan_hash = inputs.manifest.plan_hash.clone();
    let latest = ledger::latest_of_plan(&entries, &plan_hash).ok_or_else(|| {
        LedgerError::NoImport { command: "finalize", plan_hash: plan_hash.clone() }
    })?;
    if !matches!(latest.status, Status::Completed | Status::Finalizing | Status::Finalized) {
        return Err(LedgerError::NotCompleted { status: latest.status }.into());
    }
    let from_state = match State::open_read_only(&options.state)? {
        Some(state) => state.meta(state::IMPORT_ID)?,
        None => None,
    }
    .filter(|id| entries.iter().any(|e| e.import_id == *id));
    let import_id = from_state.unwrap_or_else(|| latest.import_id.clone());

    // 1. Each migrated document's id, before anything is taken out.
    let mut tables = Vec::new();
    for step in &inputs.order {
        let table = &step.table;
        let recorded = match recorded_ids(data_dir, &options.identity, table)? {
            Some(ids) => ids.len() as u64,
            None => {
                record_ids(client, data_dir, &options.identity, inputs, step, &reporter).await?
            }
        };
        tables.push(TableFinalize { table: table.clone(), recorded, patched: 0 });
    }

    // 2. The schema without the legacy id indexes, for the app to deploy.
    let plan = crate::plan::load(
        plan_dir,
        &crate::manifest::Manifest::read(data_dir)
            .map_err(ImportError::from)?
            .ok_or_else(|| ImportError::NotExported { path: data_dir.manifest_path() })?
            .catalog,
    )?;
    let convex = crate::plan::convex_app::write_finalized(convex_dir, &plan, options.force, kept)?;

    // 3. From here on, import and rollback refuse.
    ledger::write(client, &import_id, &inputs.plan, Status::Finalizing, None)
        .await
        .map_err(ImportError::from)?;

    // 4. The legacy ids out of the documents.
    if !kept {
        let batch = options.batch_size.max(1);
        for row in &mut tables {
            let ids = recorded_ids(data_dir, &options.identity, &row.table)?.unwrap_or_default();
            let mut progress = reporter.table_started(
                &format!("{} (legacy ids)", row.table),
                Some(ids.len() as u64),
                Unit::Documents,
            );
            let mut done = 0;
            for chunk in ids.chunks(batch) {
                #[derive(Deserialize)]
                struct Patched {
                    patched: u64,
                }
                let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
                let args = serde_json::json!({ "table": row.table, "ids": ids });
                let patched: Patched = client
                    .call(FunctionKind::Mutation, "migrate:unsetLegacyIds", &args)
                    .await
                    .map_err(|source| match source {
                        function @ CallError::Function { .. } => {
                            anyhow::Error::from(FinalizeError::NotDeployed {
                                table: row.table.clone(),
                                source: function,
                            })
                        }
                        other => {
                            ImportError::Convex { table: row.table.clone(), source: other }.into()
                        }
                    })?;
                row.patched += patched.patched;
                done += chunk.len() as u64;
                progress.rows(done);
            }
            progress.finished(done);
        }
    }

    let counts = BTreeMap::from([
        ("recorded".to_owned(), tables.iter().map(|t| t.recorded).sum::<u64>()),
        ("patched".to_owned(), tables.iter().map(|t| t.patched).sum()),
    ]);
    let entry = ledger::write(client, &import_id, &inputs.plan, Status::Finalized, Some(&counts))
        .await
        .map_err(ImportError::from)?;
    Ok(FinalizeReport {
        import_id,
        plan_hash,
        kept_legacy_ids: kept,
        tables,
        convex,
        status: entry.status,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Reads `step`'s table whole and writes `data/finalize/<table>.jsonl`: the Convex id of each
/// document whose legacy id is one of the transformed file's.
async fn record_ids(
    client: &ConvexClient,
    data_dir: &DataDir,
    identity: &str,
    inputs: &Inputs,
    step: &crate::import::order::TableStep,
    reporter: &Arc<dyn Reporter>,
) -> Result<u64, ImportError> {
    let table = &step.table;
    let mut migrated = HashSet::new();
    let report = inputs.manifest.tables.iter().find(|t| t.table == *table);
    if let Some(file) = report.and_then(|t| TransformedFile::of(data_dir, t)) {
        file.for_each_line(|line, text| {
            #[derive(Deserialize)]
            struct Line<'a> {
                #[serde(borrow)]
                doc: Entries<'a>,
            }
            let parsed: Line<'_> = serde_json::from_slice(text).map_err(|e| {
                ImportError::BadLine { path: file.path.clone(), line, reason: e.to_string() }
            })?;
            if let Some(legacy) = parsed.doc.get(&step.legacy_field).and_then(raw_str) {
                migrated.insert(legacy.into_owned());
            }
            Ok(true)
        })?;
    }
    let mut progress = reporter.table_started(&format!("{table} (ids)"), None, Unit::Documents);
    let mut text = Vec::new();
    let (mut cursor, mut read, mut recorded) = (serde_json::Value::Null, 0, 0);
    loop {
        let args = serde_json::json!({ "table": table, "cursor": cursor, "numItems": PAGE });
        let page: Page = client
            .call(FunctionKind::Query, "migrate:page", &args)
            .await
            .map_err(|source| ImportError::Convex { table: table.clone(), source })?;
        for doc in &page.page {
            let Ok(doc) = serde_json::from_str::<Entries<'_>>(doc.get()) else { continue };
            let legacy = doc.get(&step.legacy_field).and_then(raw_str);
            let id = doc.get("_id").and_then(raw_str);
            if let (Some(legacy), Some(id)) = (legacy, id)
                && migrated.contains(legacy.as_ref())
            {
                let line = RecordedId { id: id.into_owned(), legacy_id: legacy.into_owned() };
                serde_json::to_writer(&mut text, &line).expect("ids serialize");
                text.push(b'\n');
                recorded += 1;
            }
        }
        read += page.page.len() as u64;
        progress.rows(read);
        if page.is_done {
            break;
        }
        cursor = serde_json::Value::String(page.continue_cursor);
    }
    progress.finished(read);
    let path = ids_path(data_dir, identity, table);
    data_dir.prepare(path.parent().expect("finalize/ is a folder"))?;
    write_atomically(&path, &text)?;
    Ok(recorded)
}
