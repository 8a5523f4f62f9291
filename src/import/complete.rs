//! Whether an import is complete, from the data directory alone (nothing is contacted): the
//! last `migrate import` run completed, under the plan `plan`, and the import state holds every
//! table of the transformed data as it is now, each line of it acknowledged and nothing
//! refused. What `migrate init --after-import` requires before it writes a schema whose
//! references in foreign-key cycles are required: a run completes only once its second pass
//! has patched every one of them in.

use super::error::ImportError;
use super::state::{Pass, Run, State};
use crate::data_dir::DataDir;
use crate::transform::TransformManifest;

/// What the completed import holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Completed {
    pub tables: usize,
    pub documents: u64,
    /// When the run that completed it finished (UTC, as the state records it).
    pub finished_at: String,
}

/// Checks that the import of the transformed data in `data_dir`, made with the plan whose hash
/// is `plan_hash`, is complete; [`ImportError::NotComplete`] says what is missing.
pub fn completed(data_dir: &DataDir, plan_hash: &str) -> Result<Completed, ImportError> {
    let not = |reason: String| ImportError::NotComplete { reason };
    let manifest = TransformManifest::read(data_dir)?.ok_or_else(|| {
        not("nothing was transformed: `transformed/manifest.json` is missing".into())
    })?;
    if manifest.plan_hash != plan_hash {
        return Err(not(format!(
            "the transformed data was made with plan {}, the plan files hash to {plan_hash}",
            manifest.plan_hash
        )));
    }
    let path = data_dir.path("state.sqlite");
    let state = State::open_read_only(&path)?
        .ok_or_else(|| not(format!("`{}` holds no import", path.display())))?;
    if state.meta("plan_hash")?.as_deref() != Some(plan_hash) {
        return Err(not(format!("`{}` holds no import under this plan", path.display())));
    }
    let finished_at = match state.last_run("import")? {
        Some(Run { finished_at: Some(finished_at), outcome: Some(outcome), .. })
            if outcome == "completed" =>
        {
            finished_at
        }
        Some(Run { started_at, outcome, .. }) => {
            return Err(not(format!(
                "the last `migrate import`, started {started_at}, {}",
                match outcome.as_deref() {
                    Some("interrupted") => "was interrupted",
                    Some(_) => "failed",
                    None => "did not finish",
                }
            )));
        }
        None => return Err(not("no `migrate import` has run".into())),
    };
    let mut documents = 0;
    for table in &manifest.tables {
        if state.table_checksum(&table.table)? != table.checksum {
            return Err(not(format!(
                "table `{}` was transformed again since it was imported",
                table.table
            )));
        }
        // Every line of the first pass, found or refused, is in an acknowledged batch.
        let mut next = 1;
        for (first, end) in state.acked_ranges(&table.table, Pass::Upsert)? {
            if first > next {
                break;
            }
            next = next.max(end);
        }
        if next <= table.documents {
            return Err(not(format!(
                "table `{}`: {} of its {} documents are imported",
                table.table,
                next - 1,
                table.documents
            )));
        }
        let refused = state.rejected(&table.table)?;
        if refused > 0 {
            return Err(not(format!(
                "Convex refused {refused} document{} of table `{}` (data/rejects/import/{}.jsonl)",
                if refused == 1 { "" } else { "s" },
                table.table,
                table.table
            )));
        }
        documents += table.documents;
    }
    Ok(Completed { tables: manifest.tables.len(), documents, finished_at })
}
