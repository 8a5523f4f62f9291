//! `manifest.json`: what `export` produced, the contract between export and every later stage.
//!
//! Written last and atomically by `export`, and removed when an export starts, so a manifest
//! that exists always describes complete files.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, TableName};
use crate::data_dir::{self, DataDir, DataDirError, FileDigest};

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

/// Where the rows came from: a server, or a dump file restored into a throwaway cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Source {
    Server {
        /// The connection URL without its password.
        url: String,
        database: String,
        server_version: String,
        /// `<system identifier>:<timeline>:<database oid>`: which cluster, history and database
        /// were read (none when the user may not read them). `export --incremental` starts only
        /// from an export of the same.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        identity: Option<String>,
    },
    /// `--from-dump`: the file's name, size and checksum instead of a server.
    Dump { dump: crate::dump::DumpFile },
    /// `--from-convex`: a Convex deployment (its URL; never its key), or one of its components.
    Convex {
        convex: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component: Option<String>,
    },
}

impl Source {
    /// The server's URL (without its password), or the dump file's name.
    pub fn describe(&self) -> String {
        match self {
            Source::Server { url, .. } => url.clone(),
            Source::Dump { dump } => format!("the dump {}", dump.file),
            Source::Convex { convex, component: None } => format!("the Convex deployment {convex}"),
            Source::Convex { convex, component: Some(component) } => {
                format!("the component {component} of the Convex deployment {convex}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the snapshot's transaction started, UTC, microseconds.
    pub taken_at: String,
    /// `pg_current_snapshot()`: xmin:xmax:xip-list, to correlate with the server's logs.
    pub transaction_snapshot: String,
}

impl Snapshot {
    /// The oldest transaction still running when the snapshot was taken (64 bits), when the
    /// snapshot is recorded.
    pub fn xmin(&self) -> Option<u64> {
        xmin_of(&self.transaction_snapshot)
    }
}

/// The xmin of a `xmin:xmax:xip-list` snapshot text.
pub fn xmin_of(transaction_snapshot: &str) -> Option<u64> {
    transaction_snapshot.split(':').next()?.parse().ok()
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
    /// Reads `manifest.json` of `data_dir`: `None` when there is none (no export yet).
    pub fn read(data_dir: &DataDir) -> Result<Option<Self>, ManifestError> {
        read_versioned(&data_dir.manifest_path(), FORMAT_VERSION, |m: &Self| m.format_version)
    }

    pub fn write(&self, path: &Path) -> Result<(), DataDirError> {
        let mut json = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        json.push(b'\n');
        data_dir::write_atomically(path, &json)
    }
}

/// Why a manifest that exists cannot be used. A missing one is not an error: each reader
/// returns `None`, and each caller says what to run first.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// It cannot be read: permissions, a file where a directory should be, a failing disk.
    #[error(transparent)]
    Unreadable(#[from] DataDirError),
    /// It was read and is not a manifest this version of migrate can use.
    #[error("`{}` cannot be read", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        reason: Invalid,
    },
}

/// What is wrong with a manifest that was read.
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// Not JSON, or not the manifest's shape: cut short, or edited by hand.
    #[error("{0}")]
    NotJson(serde_json::Error),
    /// Written by another version of migrate.
    #[error("format version {found} is not {expected}: another version of migrate wrote it")]
    OtherVersion { found: u32, expected: u32 },
}

/// Reads a manifest of format version `expected` at `path`; `None` when the file does not
/// exist. A manifest whose format version differs is reported as such even when the rest no
/// longer has the shape this version expects.
pub(crate) fn read_versioned<T: DeserializeOwned>(
    path: &Path,
    expected: u32,
    format_version: impl Fn(&T) -> u32,
) -> Result<Option<T>, ManifestError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DataDirError::new("read", path)(e).into()),
    };
    let invalid = |reason| ManifestError::Invalid { path: path.to_owned(), reason };
    let found = match serde_json::from_str::<T>(&text) {
        Ok(manifest) if format_version(&manifest) == expected => return Ok(Some(manifest)),
        Ok(manifest) => format_version(&manifest),
        Err(error) => {
            #[derive(Deserialize)]
            struct Versioned {
                format_version: u32,
            }
            match serde_json::from_str::<Versioned>(&text) {
                Ok(Versioned { format_version }) if format_version != expected => format_version,
                _ => return Err(invalid(Invalid::NotJson(error))),
            }
        }
    };
    Err(invalid(Invalid::OtherVersion { found, expected }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Small {
        format_version: u32,
        name: String,
    }

    fn read(text: Option<&str>) -> Result<Option<Small>, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        if let Some(text) = text {
            std::fs::write(&path, text).unwrap();
        }
        read_versioned(&path, 1, |m: &Small| m.format_version)
    }

    #[test]
    fn a_manifest_is_missing_unreadable_not_json_of_another_version_or_fine() {
        assert!(read(None).unwrap().is_none());
        assert_eq!(
            read(Some(r#"{"format_version": 1, "name": "a"}"#)).unwrap(),
            Some(Small { format_version: 1, name: "a".into() })
        );
        let Err(ManifestError::Invalid { reason: Invalid::NotJson(error), .. }) =
            read(Some(r#"{"format_version": 1, "na"#))
        else {
            panic!("a truncated manifest is not JSON");
        };
        assert!(error.to_string().starts_with("EOF while parsing"), "{error}");
        for other in [r#"{"format_version": 2, "name": "a"}"#, r#"{"format_version": 2}"#] {
            let error = read(Some(other)).unwrap_err();
            let ManifestError::Invalid { reason, .. } = &error else { panic!("{error:?}") };
            assert_eq!(
                reason.to_string(),
                "format version 2 is not 1: another version of migrate wrote it"
            );
        }

        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, "{}").unwrap();
        let error =
            read_versioned(&not_a_dir.join("manifest.json"), 1, |m: &Small| m.format_version)
                .unwrap_err();
        assert!(matches!(error, ManifestError::Unreadable(DataDirError { action: "read", .. })));
    }
}
