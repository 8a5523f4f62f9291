//! Reads `.env.local`, then `.env`, from the working directory into the environment, before
//! the command line is parsed, without overriding variables that are already set: the real
//! environment wins, then `.env.local`, then `.env`, as in the Convex CLI (which loads
//! `.env.local` first, then `.env`, with dotenv's no-override rule).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;

/// Which file set each variable a file set, for `--show-settings` and error messages.
static ORIGINS: OnceLock<HashMap<String, &'static str>> = OnceLock::new();

/// Loads `.env.local` then `.env` from `dir`, recording which file set each variable.
pub fn load_all(dir: &Path) -> Result<(), DotenvError> {
    let mut origins = HashMap::new();
    for file in [".env.local", ".env"] {
        let before: HashSet<OsString> = std::env::vars_os().map(|(name, _)| name).collect();
        load(&dir.join(file))?;
        for (name, _) in std::env::vars_os() {
            if !before.contains(&name) {
                origins.insert(name.to_string_lossy().into_owned(), file);
            }
        }
    }
    let _ = ORIGINS.set(origins);
    Ok(())
}

/// The file (`.env.local`, `.env`) a variable came from; `None` for the environment.
pub fn origin(name: &str) -> Option<&'static str> {
    ORIGINS.get()?.get(name).copied()
}

/// A `.env` that exists but cannot be read. The message never quotes the file's lines: they
/// hold secrets.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{file}`: {reason}")]
pub struct DotenvError {
    file: String,
    reason: String,
}

pub fn load(path: &Path) -> Result<(), DotenvError> {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let number = std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.lines().position(|l| l == line))
                .map(|i| format!(" {}", i + 1))
                .unwrap_or_default();
            Err(DotenvError { file, reason: format!("line{number} is not `NAME=value`") })
        }
        Err(dotenvy::Error::Io(e)) => Err(DotenvError { file, reason: e.to_string() }),
        Err(_) => Err(DotenvError { file, reason: "it is not a valid .env file".into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_is_named_by_number_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "MIGRATE_OK_VAR_FOR_TEST=1\nDATABASE_URL postgres://u:hunter2@h/db\n",
        )
        .unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert_eq!(message, "cannot read `.env`: line 2 is not `NAME=value`");
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn a_missing_file_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(&dir.path().join(".env")).is_ok());
    }
}
