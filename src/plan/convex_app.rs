//! The Convex app folder `migrate init` writes into (`--convex-dir`): `migrateTables.ts` (the
//! migrated tables) and `migrate.ts` (the functions import and verify call) are migrate's own;
//! `schema.ts` is the app's. migrate writes `schema.ts` only into an app that has none (or
//! rewrites the one it wrote, while nobody has edited it); an app's own schema is read, never
//! written: its tables are checked against the migrated ones, and the person is told the lines
//! that spread the migrated tables into it.
//!
//! Also what `transform` and `status` check: whether the generated files were made from the
//! current plan.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::app_schema::{self, AppSchema};
use super::changes::{self, Sections};
use super::codegen::{self, CycleFields, LEDGER_TABLE, TABLES_EXPORT};
use super::generated::{self, GeneratedError, Written};
use super::migrate_ts::migrate_ts;
use super::model::Plan;
use crate::data_dir::DataDirError;

/// The files migrate generates from the plan, by name in the Convex dir.
pub const GENERATED_FILES: [&str; 2] = ["migrateTables.ts", "migrate.ts"];

/// What `migrate init` did in the Convex dir.
#[derive(Debug, Clone, Serialize)]
pub struct ConvexFiles {
    pub tables: FileOutcome,
    pub module: FileOutcome,
    pub schema: FileOutcome,
    /// When the app's own `schema.ts` does not spread the migrated tables yet: the lines to add
    /// (an import, and an entry of `defineSchema({...})`).
    pub schema_lines: Option<Vec<String>>,
    /// What the app's own schema spreads besides the migrated tables (`authTables`): init
    /// cannot see the tables these hold.
    pub unchecked_spreads: Vec<String>,
}

/// One file and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    pub path: String,
    /// `created`, `updated`, `unchanged`, or `kept` (the app's own, or edited by a person, left
    /// as it is).
    pub status: String,
    /// What an update changed (a compact diff), when it is worth showing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
}

/// Writes the generated files for `plan` into `convex_dir`; `force` overwrites migrate's own
/// files a person edited, never a file migrate did not write. Refuses, changing nothing, when
/// the app's own schema defines a table the plan migrates into.
pub fn write(convex_dir: &Path, plan: &Plan, force: bool) -> Result<ConvexFiles, GeneratedError> {
    write_for(convex_dir, plan, force, CycleFields::DuringImport)
}

/// [`write`], the references in foreign-key cycles as `cycle_fields` says.
pub fn write_for(
    convex_dir: &Path,
    plan: &Plan,
    force: bool,
    cycle_fields: CycleFields,
) -> Result<ConvexFiles, GeneratedError> {
    write_tables(convex_dir, plan, force, &codegen::migrate_tables_ts_for(plan, cycle_fields))
}

/// [`write`] for after `migrate finalize`: `migrateTables.ts` without the `by_legacy_id`
/// indexes, the legacy id fields optional unless `kept`.
pub fn write_finalized(
    convex_dir: &Path,
    plan: &Plan,
    force: bool,
    kept: bool,
) -> Result<ConvexFiles, GeneratedError> {
    write_tables(convex_dir, plan, force, &codegen::migrate_tables_ts_finalized(plan, kept))
}

fn write_tables(
    convex_dir: &Path,
    plan: &Plan,
    force: bool,
    tables_ts: &str,
) -> Result<ConvexFiles, GeneratedError> {
    let schema_path = convex_dir.join("schema.ts");
    let schema_text = read(&schema_path)?;
    // The app's own schema: any schema.ts migrate did not write, or one it wrote and a person
    // has edited since.
    let app_schema = schema_text
        .as_deref()
        .filter(|text| !generated::untouched(text))
        .map(|text| (app_schema::scan(text), generated::has_marker(text)));
    if let Some((scanned, generated_before)) = &app_schema {
        // A component's tables live in the component: the app may have tables of those names.
        let migrated: Vec<&str> = plan
            .tables
            .iter()
            .filter(|t| t.component.is_none())
            .map(|t| t.target.as_str())
            .chain(std::iter::once(LEDGER_TABLE))
            .collect();
        let tables: Vec<String> =
            scanned.tables.iter().filter(|t| migrated.contains(&t.as_str())).cloned().collect();
        if !tables.is_empty() {
            return Err(GeneratedError::Collision {
                schema: schema_path,
                tables,
                generated_before: *generated_before,
            });
        }
    }

    let tables_path = convex_dir.join(GENERATED_FILES[0]);
    let module_path = convex_dir.join(GENERATED_FILES[1]);
    // Either file refused is both unwritten: the two always come from the same plan.
    for path in [&tables_path, &module_path] {
        if let Some(text) = read(path)? {
            generated::check(path, &text, force)?;
        }
    }
    let tables = write_generated(&tables_path, tables_ts, force, Some(Sections::ConvexTables))?;
    // Its changes show in migrateTables.ts: a diff of its one-line plan would say nothing more.
    let module = write_generated(&module_path, &migrate_ts(plan), force, None)?;

    let (schema, schema_lines, unchecked_spreads) = match app_schema {
        None => {
            let written = generated::write(&schema_path, "//", &codegen::schema_ts(), false)?;
            (outcome(&schema_path, written, None), None, Vec::new())
        }
        Some((scanned, _)) => {
            let lines = (!scanned.spreads(TABLES_EXPORT)).then(|| codegen::schema_lines().to_vec());
            let others = scanned.spreads.iter().filter(|s| !is_ours(s)).cloned().collect();
            let kept = FileOutcome {
                path: schema_path.display().to_string(),
                status: "kept".into(),
                changes: None,
            };
            (kept, lines, others)
        }
    };
    Ok(ConvexFiles { tables, module, schema, schema_lines, unchecked_spreads })
}

fn is_ours(spread: &str) -> bool {
    AppSchema { spreads: vec![spread.to_owned()], ..AppSchema::default() }.spreads(TABLES_EXPORT)
}

/// Writes one of migrate's files, with what changed since its last version.
fn write_generated(
    path: &Path,
    body: &str,
    force: bool,
    sections: Option<Sections>,
) -> Result<FileOutcome, GeneratedError> {
    let previous = read(path)?;
    let written = generated::write(path, "//", body, force)?;
    let changes = match (written, previous, sections) {
        (Written::Updated, Some(previous), Some(sections)) => {
            changes::diff(&previous, body, sections)
        }
        _ => None,
    };
    Ok(outcome(path, written, changes))
}

fn outcome(path: &Path, written: Written, changes: Option<String>) -> FileOutcome {
    let status = match written {
        Written::Created => "created",
        Written::Updated => "updated",
        Written::Unchanged => "unchanged",
    };
    FileOutcome { path: path.display().to_string(), status: status.into(), changes }
}

fn read(path: &Path) -> Result<Option<String>, GeneratedError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DataDirError::new("read", path)(e).into()),
    }
}

/// Generated files in `convex_dir` made from another plan than `plan_hash`, with the plan
/// each records; files that are missing or record no plan are left out.
pub fn stale_files(convex_dir: &Path, plan_hash: &str) -> Vec<(PathBuf, String)> {
    let mut stale = Vec::new();
    // schema.ts: as an earlier migrate wrote it, with the tables inside.
    for name in GENERATED_FILES.iter().chain(&["schema.ts"]) {
        let path = convex_dir.join(name);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        if let Some(recorded) = codegen::recorded_plan_hash(&text)
            && recorded != plan_hash
        {
            stale.push((path, recorded.to_owned()));
        }
    }
    stale
}

/// The warning `transform` and `status` give when the Convex files were generated from another
/// plan than `plan_hash`.
pub fn stale_warning(convex_dir: &Path, plan_hash: &str) -> Option<String> {
    let stale = stale_files(convex_dir, plan_hash);
    let (_, recorded) = stale.first()?;
    let files: Vec<String> = stale.iter().map(|(p, _)| format!("`{}`", p.display())).collect();
    Some(format!(
        "{} {} generated from another plan ({}) than the current one ({}): run `migrate init` \
         again, then deploy the Convex app (`npx convex deploy`) before importing",
        files.join(" and "),
        if files.len() == 1 { "was" } else { "were" },
        short(recorded),
        short(plan_hash),
    ))
}

/// The warning `transform` and `status` give when `migrateTables.ts` was written for after an
/// import (`migrate init --after-import`): importing again under it fails.
pub fn after_import_warning(convex_dir: &Path) -> Option<String> {
    let path = convex_dir.join(GENERATED_FILES[0]);
    let text = std::fs::read_to_string(&path).ok()?;
    codegen::written_after_import(&text).then(|| {
        format!(
            "`{}` was written by `migrate init --after-import`: its references in foreign-key \
             cycles are required, so an import would fail; run `migrate init` and deploy the \
             Convex app before importing again",
            path.display()
        )
    })
}

/// `blake3:0123456789ab`: enough of a hash to tell two plans apart.
fn short(hash: &str) -> &str {
    let end = hash.find(':').map_or(0, |colon| colon + 1) + 12;
    hash.get(..end).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::codegen::TABLES_MODULE;

    fn plan(hash: &str, targets: &[&str]) -> Plan {
        use crate::catalog::TableName;
        use crate::plan::model::{LegacyId, NullPolicy, TablePlan};
        Plan {
            tables: targets
                .iter()
                .map(|t| TablePlan {
                    source: TableName::new("public", *t),
                    target: (*t).to_owned(),
                    legacy_id: LegacyId { field: "legacyId".into(), columns: vec!["id".into()] },
                    fields: Vec::new(),
                    references: Vec::new(),
                    files: Vec::new(),
                    filters: Vec::new(),
                    merges: Vec::new(),
                    nulls: NullPolicy::Omit,
                    indexes: Default::default(),
                    component: None,
                })
                .collect(),
            skipped: Vec::new(),
            hash: hash.to_owned(),
            warnings: Vec::new(),
            files: None,
        }
    }

    const APP_SCHEMA: &str = "import { defineSchema, defineTable } from \"convex/server\";\n\
        import { v } from \"convex/values\";\n\n\
        export default defineSchema({\n  messages: defineTable({ body: v.string() }),\n});\n";

    #[test]
    fn an_app_without_a_schema_gets_one_that_spreads_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(dir.path(), &plan("blake3:1", &["users"]), false).unwrap();
        assert_eq!(
            [&files.tables.status, &files.module.status, &files.schema.status],
            ["created"; 3]
        );
        assert_eq!(files.schema_lines, None);
        let schema = std::fs::read_to_string(dir.path().join("schema.ts")).unwrap();
        assert!(schema.contains(&format!("from \"./{TABLES_MODULE}\"")), "{schema}");

        // A second run changes nothing; an edited schema.ts is kept, and spreads the tables.
        let files = write(dir.path(), &plan("blake3:1", &["users"]), false).unwrap();
        assert_eq!(files.schema.status, "unchanged");
        let edited = schema.replace("// Your own tables go here.", "notes: defineTable({}),");
        std::fs::write(dir.path().join("schema.ts"), &edited).unwrap();
        let files = write(dir.path(), &plan("blake3:2", &["users"]), true).unwrap();
        assert_eq!((files.schema.status.as_str(), &files.schema_lines), ("kept", &None));
        assert_eq!(files.tables.status, "updated");
        assert_eq!(std::fs::read_to_string(dir.path().join("schema.ts")).unwrap(), edited);
    }

    #[test]
    fn an_apps_own_schema_is_never_written_and_gets_the_lines_to_add() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.ts"), APP_SCHEMA).unwrap();
        for force in [false, true] {
            let files = write(dir.path(), &plan("blake3:1", &["users"]), force).unwrap();
            assert_eq!(files.schema.status, "kept");
            assert_eq!(files.schema_lines, Some(codegen::schema_lines().to_vec()));
            assert_eq!(std::fs::read_to_string(dir.path().join("schema.ts")).unwrap(), APP_SCHEMA);
        }
    }

    #[test]
    fn other_spreads_are_named_as_unchecked_and_a_spread_of_the_tables_needs_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let schema =
            APP_SCHEMA.replace("  messages:", "  ...authTables,\n  ...migrateTables,\n  messages:");
        std::fs::write(dir.path().join("schema.ts"), schema).unwrap();
        let files = write(dir.path(), &plan("blake3:1", &["users"]), false).unwrap();
        assert_eq!(files.unchecked_spreads, ["authTables"]);
        assert_eq!(files.schema_lines, None);
    }

    #[test]
    fn a_table_of_the_app_that_the_plan_also_migrates_into_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("schema.ts"), APP_SCHEMA).unwrap();
        let error = write(dir.path(), &plan("blake3:1", &["users", "messages"]), false);
        let Err(GeneratedError::Collision { tables, generated_before, .. }) = error else {
            panic!("{error:?}")
        };
        assert_eq!((tables, generated_before), (vec!["messages".to_owned()], false));
        assert!(!dir.path().join("migrateTables.ts").exists(), "nothing is written");
        assert!(!dir.path().join("migrate.ts").exists(), "nothing is written");
    }

    #[test]
    fn a_schema_of_an_earlier_migrate_is_upgraded_untouched_and_named_when_edited() {
        // The layout of earlier versions: schema.ts generated with the tables inside.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.ts");
        let old = "import { defineSchema, defineTable } from \"convex/server\";\n\
                   export default defineSchema({\n  users: defineTable({}),\n});\n";
        generated::write(&path, "//", old, false).unwrap();
        let files = write(dir.path(), &plan("blake3:1", &["users"]), false).unwrap();
        assert_eq!(files.schema.status, "updated");
        assert!(std::fs::read_to_string(&path).unwrap().ends_with(&codegen::schema_ts()));

        std::fs::remove_file(&path).unwrap();
        generated::write(&path, "//", old, false).unwrap();
        let edited = std::fs::read_to_string(&path).unwrap() + "// mine\n";
        std::fs::write(&path, &edited).unwrap();
        let error = write(dir.path(), &plan("blake3:1", &["users"]), false);
        let Err(GeneratedError::Collision { generated_before: true, .. }) = &error else {
            panic!("{error:?}")
        };
        assert!(error.unwrap_err().hint().unwrap().contains("spread `...migrateTables` instead"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    }

    #[test]
    fn an_edited_module_stops_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &plan("blake3:1", &["users"]), false).unwrap();
        let module = dir.path().join("migrate.ts");
        let edited = std::fs::read_to_string(&module).unwrap() + "// mine\n";
        std::fs::write(&module, &edited).unwrap();
        let tables = std::fs::read_to_string(dir.path().join("migrateTables.ts")).unwrap();
        let error = write(dir.path(), &plan("blake3:2", &["users", "posts"]), false);
        assert!(matches!(error, Err(GeneratedError::Edited { .. })), "{error:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join("migrateTables.ts")).unwrap(), tables);
        let files = write(dir.path(), &plan("blake3:2", &["users", "posts"]), true).unwrap();
        assert_eq!(
            (files.tables.status.as_str(), files.module.status.as_str()),
            ("updated", "updated")
        );
        let changes = files.tables.changes.unwrap();
        assert!(changes.contains("+  posts: defineTable({"), "{changes}");
    }

    #[test]
    fn stale_files_are_those_recording_another_plan() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stale_warning(dir.path(), "blake3:1"), None, "no files, nothing to say");
        write(dir.path(), &plan("blake3:0123456789abcdef", &["users"]), false).unwrap();
        assert_eq!(stale_warning(dir.path(), "blake3:0123456789abcdef"), None);
        let warning = stale_warning(dir.path(), "blake3:fedcba9876543210").unwrap();
        let tables = dir.path().join("migrateTables.ts");
        let module = dir.path().join("migrate.ts");
        assert_eq!(
            warning,
            format!(
                "`{}` and `{}` were generated from another plan (blake3:0123456789ab) than the \
                 current one (blake3:fedcba987654): run `migrate init` again, then deploy the \
                 Convex app (`npx convex deploy`) before importing",
                tables.display(),
                module.display()
            )
        );
    }
}
