//! A freshly `initdb`-ed data directory kept per PostgreSQL version, so the next restore starts
//! from a copy of it: copying takes a fifth of `initdb`'s time, and a restore of a small dump is
//! mostly setup.
//!
//! The template sits in the user's cache directory (`$XDG_CACHE_HOME/migrate`, else
//! `~/.cache/migrate`; `MIGRATE_CACHE_DIR` overrides), owner-only. It is written once, right
//! after an `initdb` and before the server first starts (so it holds no state of any restore),
//! under a temporary name renamed into place; a template that fails to start a server is removed
//! and the cluster made with `initdb`. Only the cluster's own configuration (`pg_hba.conf`,
//! server options) is written after the copy, as after `initdb`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cluster::Binaries;

/// Where templates are kept, or `None` when no cache directory can be named.
fn cache_root() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("MIGRATE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("migrate"))
}

/// The template for these binaries: one per exact version (`15.19`), as `initdb` writes files
/// that only servers of that version read with certainty.
pub fn path(binaries: &Binaries) -> Option<PathBuf> {
    let version: String = binaries
        .version
        .split_whitespace()
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    Some(cache_root()?.join(format!("restore-template-{version}")))
}

/// Whether `template` looks like a complete data directory of `major`.
pub fn usable(template: &Path, major: u32) -> bool {
    std::fs::read_to_string(template.join("PG_VERSION"))
        .is_ok_and(|text| text.trim() == major.to_string())
        && template.join("global/pg_control").is_file()
}

/// Copies `template` to `data` (which must not exist), owners and modes kept.
pub fn copy(template: &Path, data: &Path) -> std::io::Result<()> {
    run_cp(template, data)
}

/// Keeps a copy of `data`, a data directory `initdb` just wrote, as the template. Best effort:
/// a cache that cannot be written costs the next run an `initdb`, nothing more.
pub fn save(data: &Path, template: &Path) {
    let Some(parent) = template.parent() else { return };
    if let Err(error) = create_owner_only(parent) {
        tracing::debug!(dir = %parent.display(), %error, "no cache for the restore template");
        return;
    }
    let partial = parent.join(format!(".partial-{}-{:08x}", std::process::id(), fastrand::u32(..)));
    let saved = run_cp(data, &partial).and_then(|()| std::fs::rename(&partial, template));
    if let Err(error) = saved {
        // Another run may have saved it first; either way this copy is not needed.
        let _ = std::fs::remove_dir_all(&partial);
        tracing::debug!(template = %template.display(), %error, "restore template not saved");
    } else {
        tracing::debug!(template = %template.display(), "restore template saved");
    }
}

/// Removes a template that did not work.
pub fn discard(template: &Path) {
    if let Err(error) = std::fs::remove_dir_all(template) {
        tracing::warn!(template = %template.display(), %error, "cannot remove the restore template");
    }
}

fn create_owner_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// `cp -a`: a data directory holds files owned by the `postgres` user when migrate runs as
/// root, and only `cp` keeps owners without code of our own for every file type.
fn run_cp(from: &Path, to: &Path) -> std::io::Result<()> {
    let output = Command::new("cp").arg("-a").arg("--").arg(from).arg(to).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(String::from_utf8_lossy(&output.stderr).trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_is_usable_only_when_its_version_and_control_file_are_there() {
        let dir = std::env::temp_dir().join(format!("migrate-template-test-{}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join("global")).unwrap();
        assert!(!usable(&dir, 15), "no PG_VERSION");
        std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
        assert!(!usable(&dir, 15), "no pg_control");
        std::fs::write(dir.join("global/pg_control"), b"x").unwrap();
        assert!(usable(&dir, 15));
        assert!(!usable(&dir, 16), "another major version");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_template_per_exact_version() {
        let binaries = |version: &str| Binaries {
            dir: PathBuf::from("/usr/lib/postgresql/15/bin"),
            version: version.into(),
            major: 15,
        };
        let a = path(&binaries("15.19 (Debian 15.19-0+deb12u1)")).unwrap();
        let b = path(&binaries("15.20 (Debian 15.20-0+deb12u1)")).unwrap();
        assert_eq!(a.file_name().unwrap(), "restore-template-15.19");
        assert_ne!(a, b);
    }
}
