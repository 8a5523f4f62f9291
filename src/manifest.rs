//! `manifest.json`: what `export` produced, the contract between export and every later stage.
//!
//! Written last and atomically by `export`, and removed when an export starts, so a manifest
//! that exists always describes complete files.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, TableName};
use crate::data_dir::{self, DataDirError, FileDigest};

/// Bumped when the manifest or the raw form changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// `migrate <version>` that wrote it.
    pub tool: String,
    pub source: Source,
    pub snapshot: Snapshot,
    pub schemas: Vec<String>,
    /// One entry per exported table, in name order.
    pub tables: Vec<ExportedTable>,
    pub catalog: Catalog,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The connection URL without its password.
    pub url: String,
    pub database: String,
    pub server_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the snapshot's transaction started, UTC, microseconds.
    pub taken_at: String,
    /// `pg_current_snapshot()`: xmin:xmax:xip-list, to correlate with the server's logs.
    pub transaction_snapshot: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedTable {
    #[serde(flatten)]
    pub table: TableName,
    /// Relative to the data directory: `raw/<schema>.<table>.jsonl`.
    pub file: String,
    /// Rows written: one line each.
    pub rows: u64,
    pub bytes: u64,
    /// `blake3:<hex>` of the file's bytes.
    pub checksum: String,
}

impl ExportedTable {
    pub fn new(table: TableName, file: String, digest: FileDigest) -> Self {
        Self { table, file, rows: digest.lines, bytes: digest.bytes, checksum: digest.checksum }
    }
}

impl Manifest {
    pub fn write(&self, path: &Path) -> Result<(), DataDirError> {
        let mut json = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        json.push(b'\n');
        data_dir::write_atomically(path, &json)
    }
}
