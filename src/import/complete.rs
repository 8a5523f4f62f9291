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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::state::{Acked, Checkpointer, ImportReject};
    use crate::transform::{FORMAT_VERSION, TableReport};

    const PLAN: &str = "blake3:plan";

    /// A data directory whose transform wrote `teams` (2 documents) and `members` (3) under
    /// [`PLAN`], and whose state holds an import of them under `plan`, each table's first pass
    /// acknowledged up to `upserted` lines, refusing `refused` members, the run ending `outcome`.
    fn imported(plan: &str, upserted: u64, refused: u64, outcome: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::new(dir.path());
        let table = |name: &str, documents: u64| TableReport {
            table: name.into(),
            sources: vec![format!("public.{name}")],
            file: Some(format!("transformed/{name}.jsonl")),
            rows: documents,
            documents,
            filtered: 0,
            dropped: 0,
            rejected: 0,
            sub_ms_dropped: 0,
            orphan_references: 0,
            password_hashes: Default::default(),
            bytes: 0,
            checksum: Some(format!("blake3:{name}")),
        };
        let manifest = TransformManifest {
            format_version: FORMAT_VERSION,
            tool: "migrate test".into(),
            plan_hash: PLAN.into(),
            snapshot_taken_at: "2026-12-05T00:00:00Z".into(),
            tables: vec![table("teams", 2), table("members", 3)],
            sources: Vec::new(),
        };
        std::fs::create_dir_all(data_dir.path("transformed")).unwrap();
        std::fs::write(
            data_dir.path("transformed/manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();

        let state = State::open(&data_dir.path("state.sqlite")).unwrap();
        state.set_meta("plan_hash", plan).unwrap();
        let run = state.run_started("import").unwrap();
        for report in &manifest.tables {
            state.reset_table(&report.table, report.checksum.as_deref().unwrap()).unwrap();
        }
        let writer = Checkpointer::spawn(state);
        for report in &manifest.tables {
            let end = upserted.min(report.documents) + 1;
            let rejects = (0..refused)
                .filter(|_| report.table == "members")
                .map(|line| ImportReject {
                    table: report.table.clone(),
                    line: line + 1,
                    legacy_id: (line + 1).to_string(),
                    message: "Validator error".into(),
                })
                .collect();
            let (table, written) = (report.table.clone(), end - 1);
            let acked =
                Acked { table, pass: Pass::Upsert, first_line: 1, end_line: end, written, rejects };
            writer.record(acked).unwrap();
        }
        let (state, written) = writer.finish();
        written.unwrap();
        state.run_finished(run, outcome).unwrap();
        dir
    }

    fn check(dir: &tempfile::TempDir) -> Result<Completed, String> {
        completed(&DataDir::new(dir.path()), PLAN).map_err(|e| e.to_string())
    }

    #[test]
    fn an_import_is_complete_when_its_last_run_completed_every_line_and_refused_nothing() {
        let done = check(&imported(PLAN, 3, 0, "completed")).unwrap();
        assert_eq!((done.tables, done.documents), (2, 5));

        let refused = check(&imported(PLAN, 3, 1, "completed")).unwrap_err();
        assert!(refused.contains("Convex refused 1 document of table `members`"), "{refused}");
        let short = check(&imported(PLAN, 2, 0, "completed")).unwrap_err();
        assert!(short.contains("table `members`: 2 of its 3 documents are imported"), "{short}");
        let interrupted = check(&imported(PLAN, 3, 0, "interrupted")).unwrap_err();
        assert!(interrupted.contains("was interrupted"), "{interrupted}");
        let other = check(&imported("blake3:other", 3, 0, "completed")).unwrap_err();
        assert!(other.contains("holds no import under this plan"), "{other}");

        let nothing = tempfile::tempdir().unwrap();
        let error = check(&nothing).unwrap_err();
        assert!(error.contains("nothing was transformed"), "{error}");
        let dir = imported(PLAN, 3, 0, "completed");
        std::fs::remove_file(dir.path().join("state.sqlite")).unwrap();
        assert!(check(&dir).unwrap_err().contains("holds no import"));
    }
}
