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
        "{} of `{}` cannot be matched to `{}` as Postgres matches it: {}",
        .0.what, .0.table, .0.parent, .0.reason
    )]
    UnmatchableKey(Box<UnmatchableKey>),
    #[error(
        "`{table}` has the keys `{first}` and `{second}`, which migrate would take for one value \
         when matching references to them"
    )]
    AmbiguousKeys { table: TableName, first: String, second: String },
    #[error(
        "`{merged}` has {rows} rows for legacy id `{id}` of `{target}` ({ids} id{} with several rows): merging keeps one row per document, the others would be lost",
        if *ids == 1 { "" } else { "s" }
    )]
    MergeNotOneToOne { merged: String, target: String, id: String, rows: u64, ids: u64 },
    /// `TransformOptions::cancel` was set; the command reports it as its interruption.
    #[error("transform was cancelled")]
    Interrupted,
    /// `storage.objects`, which file columns are checked against, could not be read.
    #[error(transparent)]
    StorageObjects(#[from] crate::files::FilesError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
}

/// A reference whose key Postgres compares in a way migrate cannot reproduce.
#[derive(Debug)]
pub struct UnmatchableKey {
    pub table: TableName,
    /// ``reference `posts_author_id_fkey` ``, or ``merge key `user_id` ``.
    pub what: String,
    pub parent: TableName,
    pub column: String,
    pub reason: String,
}

impl TransformError {
    pub fn exit_code(&self) -> u8 {
        match self {
            TransformError::Plan(error) => error.exit_code(),
            TransformError::StorageObjects(error) => error.exit_code(),
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
            TransformError::UnmatchableKey(key) => Some(format!(
                "give `{}`.`{}` and its parent key in `{}` a deterministic collation and the same \
                 type (or store the values in one spelling) and export again; or `skip = true` \
                 for `{}`, which keeps `{}` a plain field",
                key.table, key.column, key.parent, key.parent, key.column
            )),
            TransformError::AmbiguousKeys { table, .. } => Some(format!(
                "the two keys of `{table}` differ only in ways this type's equality ignores \
                 elsewhere (case, padding, trailing zeros); make the keys distinct in one \
                 spelling, or `skip = true` for `{table}`"
            )),
            TransformError::MergeNotOneToOne { merged, .. } => Some(format!(
                "keep `{merged}` a table of its own (remove its `merge_into`), or add a `filter` \
                 that leaves at most one row per document"
            )),
            TransformError::Interrupted => None,
            TransformError::Plan(error) => error.hint(),
            TransformError::StorageObjects(error) => error.hint(),
            TransformError::DataDir(error) => error.hint(),
        }
    }
}
