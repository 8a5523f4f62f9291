//! `migrate status`: where each table stands, read from the data directory alone (the export's
//! manifest, transform's manifest, the import state); nothing is contacted.

use serde::Serialize;

use crate::data_dir::DataDir;
use crate::import::state::{Pass, State};
use crate::manifest::Manifest;
use crate::transform::TransformManifest;

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

pub fn status(data_dir: &DataDir) -> anyhow::Result<StatusReport> {
    let export: Option<Manifest> = read_json(&data_dir.manifest_path())?;
    let transformed: Option<TransformManifest> =
        read_json(&data_dir.path("transformed/manifest.json"))?;
    let state_path = data_dir.path("state.sqlite");
    let state = if state_path.exists() { Some(State::open(&state_path)?) } else { None };
    let mut tables = Vec::new();
    for table in transformed.iter().flat_map(|t| &t.tables) {
        let (imported, patched, refused) = match &state {
            Some(state) if state.table_checksum(&table.table)? == table.checksum => (
                state.written(&table.table, Pass::Upsert)?,
                state.written(&table.table, Pass::PatchRefs)?,
                state.rejects(&table.table)?.len() as u64,
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
    let runs = match &state {
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
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("`{}` cannot be read: {e}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::data_dir::DataDirError::new("read", path)(e).into()),
    }
}
