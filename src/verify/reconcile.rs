//! Every exported row accounted for: per source table, the export's row count (from
//! `manifest.json`, its raw file checked against it) must equal the documents it became (counted
//! in the transformed file), the rows merged into another table's documents, the rows a plan
//! rule left out, the rows of a table the plan skips, and the rows rejected (counted in
//! `rejects/`). What verify cannot count itself (merged, filtered, skipped) comes from
//! transform's manifest.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;

use serde::Serialize;

use super::compare::Counts;
use crate::data_dir::{DataDir, DataDirError};
use crate::import::order::TableStep;
use crate::manifest::Manifest;
use crate::transform::{SourceAccount, TransformManifest};

/// One source table's row in the report: what became of its rows, and, for the table whose
/// rows are a Convex table's documents, how Convex compares with them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableVerify {
    /// `schema.table` in the source.
    pub source: String,
    /// The Convex table its rows became documents of, or were merged into.
    pub table: Option<String>,
    /// `documents`, `merged` (into `table`'s documents), `skipped` (the plan does not migrate
    /// it) or `unknown` (transform's manifest does not account for it).
    pub role: &'static str,
    /// Rows in the export (its manifest).
    pub source_rows: u64,
    /// Documents in the transformed file (counted).
    pub documents: u64,
    pub merged: u64,
    /// Rows left out by plan rules, in all and per rule.
    pub filtered: u64,
    pub filtered_by_rule: BTreeMap<String, u64>,
    pub skipped: u64,
    /// Lines in `rejects/<schema>.<table>.jsonl` (counted).
    pub rejected: u64,
    /// `source_rows` − (`documents` + `merged` + `filtered` + `skipped` + `rejected`): rows
    /// nothing accounts for (negative: more than were exported). Must be 0.
    pub unaccounted: i64,
    /// Convex against the transformed file (`documents` tables only).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Counts>,
}

/// Checks every raw file against the export's manifest (line count and BLAKE3); returns what
/// differs, one message per file.
pub fn check_raw_files(data_dir: &DataDir, export: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for table in &export.tables {
        let path = data_dir.path(&table.file);
        match digest(&path) {
            Ok((lines, checksum)) if lines == table.rows && checksum == table.checksum => {}
            Ok((lines, _)) => problems.push(format!(
                "`{}` changed since export ({lines} lines, the manifest says {}): source rows \
                 are taken from the manifest",
                table.file, table.rows
            )),
            Err(error) => {
                problems.push(format!("{error}: source rows are taken from the manifest"))
            }
        }
    }
    problems
}

/// The number of lines and the `blake3:` checksum of a file.
fn digest(path: &std::path::Path) -> Result<(u64, String), DataDirError> {
    let mut file = File::open(path).map_err(DataDirError::new("open", path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0; 1 << 20];
    let mut lines = 0;
    loop {
        let n = file.read(&mut buffer).map_err(DataDirError::new("read", path))?;
        if n == 0 {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &buffer[..n]).count() as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((lines, format!("blake3:{}", hasher.finalize().to_hex())))
}

/// Lines of `rejects/<stem>.jsonl`: 0 when there is no such file.
pub fn count_rejects(data_dir: &DataDir, stem: &str) -> Result<u64, DataDirError> {
    let path = data_dir.path(&format!("rejects/{stem}.jsonl"));
    match File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(DataDirError::new("open", &path)(e)),
        Ok(_) => digest(&path).map(|(lines, _)| lines),
    }
}

/// The report's rows, in import order (each Convex table's own source, then the tables merged
/// into it), then skipped tables; and what does not add up.
pub fn reconcile(
    data_dir: &DataDir,
    export: &Manifest,
    transformed: &TransformManifest,
    order: &[TableStep],
    compared: &BTreeMap<String, Counts>,
) -> Result<(Vec<TableVerify>, Vec<String>), DataDirError> {
    let mut problems = Vec::new();
    let accounts: BTreeMap<&str, &SourceAccount> =
        transformed.sources.iter().map(|a| (a.table.as_str(), a)).collect();
    // Each Convex table's sources: its own first, then the merged ones.
    let mut rank: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, step) in order.iter().enumerate() {
        if let Some(report) = transformed.tables.iter().find(|t| t.table == step.table) {
            for (j, source) in report.sources.iter().enumerate() {
                rank.insert(source.as_str(), (i, j));
            }
        }
    }
    let mut rows = Vec::new();
    for exported in &export.tables {
        let name = exported.table.to_string();
        let rejected = count_rejects(data_dir, &exported.table.file_stem())?;
        let mut row = TableVerify {
            source: name.clone(),
            source_rows: exported.rows,
            rejected,
            role: "unknown",
            ..TableVerify::default()
        };
        match accounts.get(name.as_str()) {
            None => problems.push(format!(
                "`{name}`: transform's manifest does not account for its {} rows",
                exported.rows
            )),
            Some(account) => {
                row.table = account.target.clone();
                row.merged = account.merged;
                row.filtered = account.filtered_total();
                row.filtered_by_rule = account.filtered.clone();
                row.skipped = account.skipped;
                row.role = match (&account.target, rank.get(name.as_str())) {
                    (Some(target), Some((_, 0))) => {
                        let counts = compared.get(target).copied().unwrap_or_default();
                        row.documents = counts.documents;
                        row.comparison = Some(counts);
                        "documents"
                    }
                    (Some(_), _) => "merged",
                    (None, _) => "skipped",
                };
                if rejected != account.rejected {
                    problems.push(format!(
                        "`{name}`: `rejects/{}.jsonl` has {rejected} lines, transform recorded {} \
                         rejected rows",
                        exported.table.file_stem(),
                        account.rejected
                    ));
                }
            }
        }
        let accounted = row.documents + row.merged + row.filtered + row.skipped + row.rejected;
        row.unaccounted = exported.rows as i64 - accounted as i64;
        if row.unaccounted != 0 {
            problems.push(format!(
                "`{name}`: {} rows exported, {accounted} accounted for ({} documents, {} merged, \
                 {} filtered, {} skipped, {} rejected): a gap of {}",
                exported.rows,
                row.documents,
                row.merged,
                row.filtered,
                row.skipped,
                row.rejected,
                row.unaccounted,
            ));
        }
        rows.push(row);
    }
    for account in &transformed.sources {
        if !export.tables.iter().any(|t| t.table.to_string() == account.table) {
            problems.push(format!(
                "`{}`: transform's manifest accounts for a table the export does not have",
                account.table
            ));
        }
    }
    rows.sort_by_key(|row| {
        rank.get(row.source.as_str()).copied().unwrap_or((usize::MAX, usize::MAX))
    });
    Ok((rows, problems))
}
