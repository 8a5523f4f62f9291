//! The data directory: where each stage's files live, and how they are written.
//!
//! Invariant: a file under its final name is complete. Writers fill a hidden `.*.partial` file,
//! fsync it and rename it into place; anything interrupted leaves only a `.partial`, which the
//! next run removes. The directory is created readable by its owner only: it holds user data.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::TableName;

const PARTIAL_SUFFIX: &str = ".partial";

/// An I/O failure in the data directory, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} `{}`", path.display())]
pub struct DataDirError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl DataDirError {
    pub fn new(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| DataDirError { action, path, source }
    }

    pub fn hint(&self) -> Option<String> {
        match self.source.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Some(
                "check the permissions of the data directory, or choose another with --data-dir"
                    .into(),
            ),
            io::ErrorKind::StorageFull => {
                Some("free some disk space and run the command again".into())
            }
            io::ErrorKind::NotADirectory => Some(
                "a path in the data directory is a file where a directory is expected: check \
                 --data-dir (MIGRATE_DATA_DIR)"
                    .into(),
            ),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn raw_dir(&self) -> PathBuf {
        self.root.join("raw")
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// `raw/<schema>.<table>.jsonl`, relative to the data directory (as the manifest records it).
    pub fn raw_file(table: &TableName) -> String {
        format!("raw/{}.jsonl", table.file_stem())
    }

    /// Creates `dir` (and the data directory) owner-only, and removes partial files an
    /// interrupted run left in it.
    pub fn prepare(&self, dir: &Path) -> Result<(), DataDirError> {
        create_private_dir(&self.root)?;
        create_private_dir(dir)?;
        let entries = fs::read_dir(dir).map_err(DataDirError::new("read", dir))?;
        for entry in entries {
            let path = entry.map_err(DataDirError::new("read", dir))?.path();
            let name =
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') && name.ends_with(PARTIAL_SUFFIX) {
                fs::remove_file(&path).map_err(DataDirError::new("remove", &path))?;
            }
        }
        Ok(())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(DataDirError::new("create", dir))
}

/// What a finished file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileDigest {
    pub lines: u64,
    pub bytes: u64,
    /// `blake3:<hex>` of the file's bytes.
    pub checksum: String,
}

/// Writes a JSONL file that appears under its final name only once [`finish`]ed. Dropping it
/// unfinished removes the partial file.
///
/// Callers append whole lines to [`buffer`] and call [`end_lines`] (or hand over whole blocks
/// to [`write_lines`]); the writer flushes in large blocks and hashes exactly the bytes it
/// writes. Every [`SYNC_EVERY`] bytes a helper thread syncs what is written so far, so the disk
/// works while we do and the `fsync` in [`finish`] finds little left to write.
///
/// [`finish`]: JsonlWriter::finish
/// [`buffer`]: JsonlWriter::buffer
/// [`end_lines`]: JsonlWriter::end_lines
/// [`write_lines`]: JsonlWriter::write_lines
pub struct JsonlWriter {
    final_path: PathBuf,
    partial_path: PathBuf,
    file: Option<File>,
    buffer: Vec<u8>,
    hasher: blake3::Hasher,
    lines: u64,
    bytes: u64,
    /// Bytes written since the last background sync started.
    unsynced: u64,
    syncing: Option<std::thread::JoinHandle<io::Result<()>>>,
}

const FLUSH_AT: usize = 1 << 20;
/// Bytes written between background syncs.
const SYNC_EVERY: u64 = 32 << 20;

impl JsonlWriter {
    pub fn create(final_path: PathBuf) -> Result<Self, DataDirError> {
        let name =
            final_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let partial_path = final_path.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"));
        let file =
            File::create(&partial_path).map_err(DataDirError::new("create", &partial_path))?;
        Ok(Self {
            final_path,
            partial_path,
            file: Some(file),
            buffer: Vec::with_capacity(FLUSH_AT + (FLUSH_AT >> 2)),
            hasher: blake3::Hasher::new(),
            lines: 0,
            bytes: 0,
            unsynced: 0,
            syncing: None,
        })
    }

    /// The buffer to append complete lines to.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Counts `lines` appended to the buffer and flushes it when it is large.
    pub fn end_lines(&mut self, lines: u64) -> Result<(), DataDirError> {
        self.lines += lines;
        if self.buffer.len() >= FLUSH_AT { self.flush() } else { Ok(()) }
    }

    /// Appends complete lines, written through without a copy into the buffer.
    pub fn write_lines(&mut self, bytes: &[u8], lines: u64) -> Result<(), DataDirError> {
        self.flush()?;
        let file = self.file.as_mut().expect("a writer is written only before it finishes");
        file.write_all(bytes).map_err(DataDirError::new("write", &self.partial_path))?;
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.lines += lines;
        self.written(bytes.len())
    }

    /// Starts a background sync once enough is written and the last one is done.
    fn written(&mut self, bytes: usize) -> Result<(), DataDirError> {
        self.unsynced += bytes as u64;
        if self.unsynced < SYNC_EVERY || self.syncing.as_ref().is_some_and(|s| !s.is_finished()) {
            return Ok(());
        }
        self.wait_for_sync()?;
        let file = self.file.as_ref().expect("a writer syncs only before it finishes");
        let file = file.try_clone().map_err(DataDirError::new("sync", &self.partial_path))?;
        self.syncing = Some(std::thread::spawn(move || file.sync_data()));
        self.unsynced = 0;
        Ok(())
    }

    fn wait_for_sync(&mut self) -> Result<(), DataDirError> {
        match self.syncing.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Err(e))) => Err(DataDirError::new("sync", &self.partial_path)(e)),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            Some(Ok(Ok(()))) | None => Ok(()),
        }
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes written to the file so far: the offset in it of the buffer's first byte.
    pub fn flushed_bytes(&self) -> u64 {
        self.bytes
    }

    fn flush(&mut self) -> Result<(), DataDirError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let file = self.file.as_mut().expect("a writer is flushed only before it finishes");
        file.write_all(&self.buffer).map_err(DataDirError::new("write", &self.partial_path))?;
        self.hasher.update(&self.buffer);
        self.bytes += self.buffer.len() as u64;
        let written = self.buffer.len();
        self.buffer.clear();
        self.written(written)
    }

    /// Flushes, syncs and renames the file into place.
    pub fn finish(mut self) -> Result<FileDigest, DataDirError> {
        self.flush()?;
        self.wait_for_sync()?;
        let file = self.file.take().expect("finish runs once");
        file.sync_all().map_err(DataDirError::new("sync", &self.partial_path))?;
        drop(file);
        fs::rename(&self.partial_path, &self.final_path)
            .map_err(DataDirError::new("rename into place", &self.final_path))?;
        sync_parent(&self.final_path)?;
        Ok(FileDigest {
            lines: self.lines,
            bytes: self.bytes,
            checksum: format!("blake3:{}", self.hasher.finalize().to_hex()),
        })
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.partial_path);
        }
    }
}

/// Writes a whole small file (the manifest) atomically: partial file, fsync, rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), DataDirError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"));
    let mut file = File::create(&partial).map_err(DataDirError::new("create", &partial))?;
    file.write_all(contents).map_err(DataDirError::new("write", &partial))?;
    file.sync_all().map_err(DataDirError::new("sync", &partial))?;
    fs::rename(&partial, path).map_err(DataDirError::new("rename into place", path))?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> Result<(), DataDirError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    File::open(parent).and_then(|dir| dir.sync_all()).map_err(DataDirError::new("sync", parent))
}

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> Result<(), DataDirError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DataDirError::new("remove", path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_finished_and_its_digest_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut writer = JsonlWriter::create(path.clone()).unwrap();
        writer.buffer().extend_from_slice(b"{\"a\":1}\n{\"a\":2}\n");
        writer.end_lines(2).unwrap();
        assert!(!path.exists());
        let digest = writer.finish().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(digest.lines, 2);
        assert_eq!(digest.bytes, 16);
        assert_eq!(
            digest.checksum,
            format!("blake3:{}", blake3::hash(b"{\"a\":1}\n{\"a\":2}\n").to_hex())
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no partial file left");
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing_and_prepare_sweeps_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        data.prepare(&data.raw_dir()).unwrap();
        let path = data.raw_dir().join("t.jsonl");
        let mut writer = JsonlWriter::create(path.clone()).unwrap();
        writer.buffer().extend_from_slice(&vec![b'x'; FLUSH_AT + 1]);
        writer.end_lines(1).unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(data.raw_dir()).unwrap().count(), 0);

        fs::write(data.raw_dir().join(".left.jsonl.partial"), b"half").unwrap();
        fs::write(data.raw_dir().join("kept.jsonl"), b"{}\n").unwrap();
        data.prepare(&data.raw_dir()).unwrap();
        let names: Vec<_> =
            fs::read_dir(data.raw_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["kept.jsonl"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        data.prepare(&data.raw_dir()).unwrap();
        let mode = fs::metadata(data.root()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
