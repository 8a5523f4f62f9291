//! What stops a transform (as opposed to a rejected row, which is recorded and counted).

use std::path::PathBuf;

use crate::catalog::TableName;
use crate::data_dir::DataDirError;
use crate::exit_code;
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("no export in `{}`: `manifest.json` is missing", data_dir.display())]
    NoExport { data_dir: PathBuf },
    #[error("`{}` cannot be read: {reason}", path.display())]
    BadManifest { path: PathBuf, reason: String },
    #[error("table `{table}` is in the plan but not in the export")]
    NotExported { table: TableName },
    #[error("`{}` line {line} is not a raw row: {reason}", file.display())]
    CorruptRaw { file: PathBuf, line: u64, reason: String },
    #[error("`{}` is not the file the export wrote for `{table}` (row count or checksum differs)", file.display())]
    RawChanged { file: PathBuf, table: TableName },
    #[error(
        "`{merged}` has {rows} rows for legacy id `{id}` of `{target}` ({ids} id{} with several rows): merging keeps one row per document, the others would be lost",
        if *ids == 1 { "" } else { "s" }
    )]
    MergeNotOneToOne { merged: String, target: String, id: String, rows: u64, ids: u64 },
    /// `TransformOptions::cancel` was set; the command reports it as its interruption.
    #[error("transform was cancelled")]
    Interrupted,
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

impl TransformError {
    pub fn exit_code(&self) -> u8 {
        match self {
            TransformError::Plan(error) => error.exit_code(),
            TransformError::DataDir(_) => exit_code::LOCAL_IO,
            TransformError::Interrupted => exit_code::INTERRUPTED,
            _ => exit_code::USAGE,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            TransformError::NoExport { .. } | TransformError::NotExported { .. } => {
                Some("run `migrate export` first (with the same --data-dir)".into())
            }
            TransformError::BadManifest { .. }
            | TransformError::CorruptRaw { .. }
            | TransformError::RawChanged { .. } => {
                Some("the export was changed or cut short: run `migrate export` again".into())
            }
            TransformError::MergeNotOneToOne { merged, .. } => Some(format!(
                "keep `{merged}` a table of its own (remove its `merge_into`), or add a `filter` \
                 that leaves at most one row per document"
            )),
            TransformError::Interrupted => None,
            TransformError::Plan(error) => error.hint(),
            TransformError::DataDir(error) => error.hint(),
        }
    }
}
