//! What a deployment last received: the transformed files of its last completed import or
//! sync, kept as hard links (a copy where the file system has none) beside its state, in
//! `sent/` next to `state.sqlite` (`data/sent/` for the single path, `data/deployments/<id>/sent/`
//! for the others; parked and brought back with the state). `migrate sync` diffs the new
//! transformed files against these. Recording costs no copy: transform writes a new file under
//! a new inode, so the link keeps the old contents.
//!
//! `sent/manifest.json` lists each table's file, lines and BLAKE3 as transform's manifest had
//! them; the files are named by their checksum, so the manifest, written last, always describes
//! files that are there, and files it no longer names are removed after it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::line_index;
use super::order::TableStep;
use super::state::place::StatePlace;
use super::transformed::TransformedFile;
use crate::data_dir::{DataDir, DataDirError, create_private_dir, remove_if_exists};
use crate::transform::TransformManifest;

/// `sent/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentRecord {
    pub plan_hash: String,
    pub tables: Vec<SentTable>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentTable {
    pub table: String,
    /// File name inside `sent/`.
    pub file: String,
    pub documents: u64,
    pub checksum: String,
    /// The legacy id field its documents had (a plan may change it).
    pub legacy_field: String,
}

impl SentRecord {
    /// The table's file as sent, to read and check against its checksum.
    pub fn file(&self, place: &StatePlace, table: &str) -> Option<TransformedFile> {
        let entry = self.tables.iter().find(|t| t.table == table)?;
        Some(TransformedFile {
            path: dir(place).join(&entry.file),
            lines: entry.documents,
            checksum: entry.checksum.clone(),
        })
    }
}

/// `sent/` beside the place's state file.
pub fn dir(place: &StatePlace) -> PathBuf {
    place.state.with_file_name("sent")
}

/// The record of what the deployment last received; `None` when no import or sync completed
/// for it since sync exists.
pub fn read(place: &StatePlace) -> Result<Option<SentRecord>, DataDirError> {
    let path = dir(place).join("manifest.json");
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DataDirError::new("read", &path)(e)),
    }
}

/// Records `manifest`'s files (in `data_dir`) as what the deployment holds now.
pub fn record(
    data_dir: &DataDir,
    manifest: &TransformManifest,
    order: &[TableStep],
    place: &StatePlace,
) -> Result<(), DataDirError> {
    let sent = dir(place);
    create_private_dir(&sent)?;
    let mut tables = Vec::new();
    for report in &manifest.tables {
        let Some(file) = TransformedFile::of(data_dir, report) else { continue };
        let hex = file.checksum.trim_start_matches("blake3:");
        let name = format!("{}.{}.jsonl", report.table, &hex[..hex.len().min(16)]);
        let link = sent.join(&name);
        if !link.exists() {
            link_or_copy(&file.path, &link)?;
            // Its line index, when transform wrote one (a copy's is stale: sync builds it).
            let index = line_index::path_of(&file.path);
            if index.exists() {
                link_or_copy(&index, &line_index::path_of(&link))?;
            }
        }
        tables.push(SentTable {
            table: report.table.clone(),
            file: name,
            documents: file.lines,
            checksum: file.checksum,
            legacy_field: order
                .iter()
                .find(|s| s.table == report.table)
                .map(|s| s.legacy_field.clone())
                .unwrap_or_default(),
        });
    }
    let record = SentRecord { plan_hash: manifest.plan_hash.clone(), tables };
    let text = serde_json::to_vec_pretty(&record).expect("the record serializes");
    crate::data_dir::write_atomically(&sent.join("manifest.json"), &text)?;
    // Files the manifest no longer names (an earlier record's).
    let entries = std::fs::read_dir(&sent).map_err(DataDirError::new("read", &sent))?;
    for entry in entries {
        let path = entry.map_err(DataDirError::new("read", &sent))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let file = name.strip_suffix(".lines").unwrap_or(&name);
        if name != "manifest.json" && !record.tables.iter().any(|t| t.file == file) {
            remove_if_exists(&path)?;
        }
    }
    Ok(())
}

/// A hard link to `from` at `to`; a copy where links are not possible (another file system).
fn link_or_copy(from: &Path, to: &Path) -> Result<(), DataDirError> {
    let partial = to.with_extension("partial");
    remove_if_exists(&partial)?;
    if std::fs::hard_link(from, &partial).is_err() {
        std::fs::copy(from, &partial).map_err(DataDirError::new("copy", from))?;
    }
    std::fs::rename(&partial, to).map_err(DataDirError::new("rename into place", to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_the_old_contents_when_transform_writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        std::fs::create_dir_all(dir.path().join("transformed")).unwrap();
        let write = |text: &str| {
            let path = dir.path().join("transformed/users.jsonl");
            let partial = dir.path().join("transformed/.users.jsonl.partial");
            std::fs::write(&partial, text).unwrap();
            std::fs::rename(&partial, &path).unwrap();
            format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex())
        };
        let manifest = |checksum: String| -> TransformManifest {
            serde_json::from_value(serde_json::json!({
                "format_version": 2, "tool": "t", "plan_hash": "p", "snapshot_taken_at": "",
                "sources": [],
                "tables": [{"table": "users", "sources": [], "file": "transformed/users.jsonl",
                    "rows": 1, "documents": 1, "filtered": 0, "dropped": 0, "rejected": 0,
                    "bytes": 4, "checksum": checksum}],
            }))
            .unwrap()
        };
        let place = StatePlace::activate(&data, "a").unwrap();
        record(&data, &manifest(write("old\n")), &[], &place).unwrap();
        write("new\n");
        let sent = read(&place).unwrap().unwrap();
        let file = sent.file(&place, "users").unwrap();
        assert_eq!(std::fs::read_to_string(&file.path).unwrap(), "old\n");
        record(&data, &manifest(write("newer\n")), &[], &place).unwrap();
        let names = std::fs::read_dir(super::dir(&place)).unwrap().count();
        assert_eq!(names, 2, "the manifest and the one file it names");
    }
}
