//! `migrate status`: where each table stands, read from the data directory alone (the export's
//! manifest, transform's manifest, the import state); nothing is contacted.

use std::path::Path;

use serde::Serialize;

use crate::data_dir::DataDir;
use crate::import::ImportError;
use crate::import::state::{Pass, State, StateError};
use crate::manifest::{Manifest, ManifestError};
use crate::transform::{TransformError, TransformManifest};

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// When the export's snapshot was taken; `None` before any export.
    pub exported_at: Option<String>,
    pub export_tables: Vec<(String, u64)>,
    /// The plan the transformed data was made with; `None` before any transform.
    pub transformed_with: Option<String>,
    pub tables: Vec<TableStatus>,
    /// The last runs recorded in the import state, newest first.
    pub runs: Vec<RunRecord>,
    /// What needs doing before an import: the Convex files made from another plan.
    pub warnings: Vec<String>,
    /// `--ledger`: the deployment's ledger, oldest entry first (read by the command, not here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger: Option<Vec<crate::ledger::Entry>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub sources: Vec<String>,
    pub documents: u64,
    pub rejected_by_transform: u64,
    /// Documents acknowledged by Convex (first pass), and references patched (second pass).
    pub imported: u64,
    pub patched: u64,
    pub refused_by_convex: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
}

/// Reads the data directory and changes nothing in it: the import state is opened read-only,
/// and one written by another version of migrate counts as none (nothing imported). Also
/// checks the Convex files in `convex_dir` against the plan in `plan_dir` (a plan dir that
/// cannot be read is left to the commands that use it).
pub fn status(
    data_dir: &DataDir,
    plan_dir: &Path,
    convex_dir: &Path,
) -> anyhow::Result<StatusReport> {
    status_at(data_dir, &data_dir.path("state.sqlite"), plan_dir, convex_dir)
}

/// [`status`] with the import state of one deployment (`state`: see `import::state::place`).
pub fn status_at(
    data_dir: &DataDir,
    state: &Path,
    plan_dir: &Path,
    convex_dir: &Path,
) -> anyhow::Result<StatusReport> {
    let export = match Manifest::read(data_dir) {
        Ok(export) => export,
        Err(ManifestError::Unreadable(error)) => return Err(error.into()),
        Err(ManifestError::Invalid { path, reason }) => {
            let reason = reason.to_string();
            return Err(TransformError::BadManifest { path, reason }.into());
        }
    };
    let transformed = TransformManifest::read(data_dir).map_err(ImportError::from)?;
    let state = State::open_read_only(state).map_err(ImportError::from)?;
    let (tables, runs) =
        import_progress(state.as_ref(), transformed.as_ref()).map_err(ImportError::from)?;
    Ok(StatusReport {
        exported_at: export.as_ref().map(|m| m.snapshot.taken_at.clone()),
        export_tables: export
            .iter()
            .flat_map(|m| &m.tables)
            .map(|t| (t.table.to_string(), t.rows))
            .collect(),
        transformed_with: transformed.map(|t| t.plan_hash),
        tables,
        runs,
        warnings: crate::plan::current_hash(plan_dir)
            .ok()
            .and_then(|hash| crate::plan::convex_app::stale_warning(convex_dir, &hash))
            .into_iter()
            .chain(crate::plan::convex_app::after_import_warning(convex_dir))
            .collect(),
        ledger: None,
    })
}

/// Where a deployment's import stands, as one word: `pending` (nothing imported), `running`
/// (a run started and did not finish: running now, or killed), `completed`, `interrupted`,
/// `failed` (the last run's outcome).
pub fn import_stage(report: &StatusReport) -> &'static str {
    let last = report.runs.iter().find(|r| r.command == "import");
    match last.map(|r| (r.finished_at.is_some(), r.outcome.as_deref())) {
        None => "pending",
        Some((false, _)) => "running",
        Some((true, Some("completed"))) => "completed",
        Some((true, Some("interrupted"))) => "interrupted",
        Some((true, _)) => "failed",
    }
}

/// Each transformed table with what the state says was imported of it (nothing when the state
/// belongs to another transformed file), and the last runs.
fn import_progress(
    state: Option<&State>,
    transformed: Option<&TransformManifest>,
) -> Result<(Vec<TableStatus>, Vec<RunRecord>), StateError> {
    let mut tables = Vec::new();
    for table in transformed.iter().flat_map(|t| &t.tables) {
        let (imported, patched, refused) = match state {
            Some(state) if state.table_checksum(&table.table)? == table.checksum => (
                state.written(&table.table, Pass::Upsert)?,
                state.written(&table.table, Pass::PatchRefs)?,
                state.rejected(&table.table)?,
            ),
            _ => (0, 0, 0),
        };
        tables.push(TableStatus {
            table: table.table.clone(),
            sources: table.sources.clone(),
            documents: table.documents,
            rejected_by_transform: table.rejected,
            imported,
            patched,
            refused_by_convex: refused,
        });
    }
    let runs = match state {
        Some(state) => state
            .recent_runs(5)?
            .into_iter()
            .map(|(command, started_at, finished_at, outcome)| RunRecord {
                command,
                started_at,
                finished_at,
                outcome,
            })
            .collect(),
        None => Vec::new(),
    };
    Ok((tables, runs))
}
