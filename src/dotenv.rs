//! Reads `.env` from the working directory into the environment, before the command line is
//! parsed, without overriding variables that are already set.

use std::path::Path;

/// A `.env` that exists but cannot be read. The message never quotes the file's lines: they
/// hold secrets.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `.env`: {reason}")]
pub struct DotenvError {
    reason: String,
}

pub fn load(path: &Path) -> Result<(), DotenvError> {
    match dotenvy::from_path(path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let number = std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.lines().position(|l| l == line))
                .map(|i| format!(" {}", i + 1))
                .unwrap_or_default();
            Err(DotenvError { reason: format!("line{number} is not `NAME=value`") })
        }
        Err(dotenvy::Error::Io(e)) => Err(DotenvError { reason: e.to_string() }),
        Err(_) => Err(DotenvError { reason: "it is not a valid .env file".into() }),
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
