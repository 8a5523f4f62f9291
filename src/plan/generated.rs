//! Files `migrate init` generates and people may edit (the first plan, `convex/schema.ts`,
//! `convex/migrate.ts`).
//!
//! Each starts with a marker line holding the hash of what was generated below it. A later run
//! rewrites a file only when its content still matches its marker, i.e. nobody edited it;
//! otherwise it refuses unless forced.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data_dir::{self, DataDirError};
use crate::exit_code;

const MARKER: &str = "migrate:generated blake3:";

#[derive(Debug, thiserror::Error)]
pub enum GeneratedError {
    #[error("`{}` was edited since migrate generated it", path.display())]
    Edited { path: PathBuf },
    #[error(transparent)]
    Io(#[from] DataDirError),
}

impl GeneratedError {
    pub fn exit_code(&self) -> u8 {
        match self {
            GeneratedError::Edited { .. } => exit_code::USAGE,
            GeneratedError::Io(_) => exit_code::LOCAL_IO,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            GeneratedError::Edited { .. } => Some(
                "keep it (nothing was changed), or pass --force to overwrite it and lose the edits"
                    .into(),
            ),
            GeneratedError::Io(error) => error.hint(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

/// Writes `body` to `path` behind a marker line (`comment` is the line-comment prefix: `#`,
/// `//`), unless the file exists and a person edited it (and `force` is off).
pub fn write(
    path: &Path,
    comment: &str,
    body: &str,
    force: bool,
) -> Result<Written, GeneratedError> {
    let contents = format!("{comment} {MARKER}{}\n{body}", blake3::hash(body.as_bytes()).to_hex());
    let existing = match std::fs::read_to_string(path) {
        Ok(existing) => Some(existing),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(DataDirError::new("read", path)(e).into()),
    };
    let written = match &existing {
        None => Written::Created,
        Some(existing) if *existing == contents => return Ok(Written::Unchanged),
        Some(existing) if force || untouched(existing) => Written::Updated,
        Some(_) => return Err(GeneratedError::Edited { path: path.to_path_buf() }),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(DataDirError::new("create", parent))?;
    }
    data_dir::write_atomically(path, contents.as_bytes())?;
    Ok(written)
}

/// True when the file's body still hashes to what its marker line says.
fn untouched(existing: &str) -> bool {
    let Some((first, body)) = existing.split_once('\n') else { return false };
    first
        .split_once(MARKER)
        .is_some_and(|(_, hash)| hash.trim() == blake3::hash(body.as_bytes()).to_hex().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_rewritten_until_a_person_edits_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("convex/schema.ts");
        assert_eq!(write(&path, "//", "one\n", false).unwrap(), Written::Created);
        assert_eq!(write(&path, "//", "one\n", false).unwrap(), Written::Unchanged);
        assert_eq!(write(&path, "//", "two\n", false).unwrap(), Written::Updated);
        let edited = std::fs::read_to_string(&path).unwrap().replace("two", "mine");
        std::fs::write(&path, &edited).unwrap();
        assert!(matches!(write(&path, "//", "three\n", false), Err(GeneratedError::Edited { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited, "a refusal changes nothing");
        assert_eq!(write(&path, "//", "three\n", true).unwrap(), Written::Updated);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("three\n"));
    }

    #[test]
    fn a_file_without_a_marker_counts_as_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0001_initial.toml");
        std::fs::write(&path, "# hand written\n").unwrap();
        assert!(matches!(write(&path, "#", "x = 1\n", false), Err(GeneratedError::Edited { .. })));
    }
}
